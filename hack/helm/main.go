// Command helm-chart writes the manifests of deploy/ from the Helm chart
// deploy/chart/upgrade-image-cleanup, rendered with its default values
// through Helm's own engine; hack/chart runs it:
//
//	go run . generate -root ../.. [-out DIR]
//
// -out (default: -root) is where the files go, under their deploy/ paths;
// `hack/chart verify` generates into a temporary folder and compares.
// The files and the templates each holds are generatedFiles (chart.go).
package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "helm-chart:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || args[0] != "generate" {
		return fmt.Errorf("usage: go run . generate [-root DIR] [-out DIR]")
	}
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	root := fs.String("root", "../..", "the repository's root")
	out := fs.String("out", "", "where to write the files, under their deploy/ paths; default -root")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		*out = *root
	}
	ch, err := loadChart(*root)
	if err != nil {
		return err
	}
	files, err := generate(ch)
	if err != nil {
		return err
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		dst := filepath.Join(*out, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, files[p], 0o644); err != nil {
			return err
		}
		fmt.Println(p)
	}
	return nil
}
