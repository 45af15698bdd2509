// Package golist asks the go command which packages a package links, as
// `go build` links them (no test files), and which of them import which.
// Tests use it to keep heavy or test-only packages out of what ships.
package golist

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Graph is a package's dependencies: every package it links, and for each
// the listed packages that import it.
type Graph struct {
	// Deps are the linked packages, the listed package last.
	Deps      []string
	importers map[string][]string
}

// Deps lists the dependencies of the package in dir ("." for the caller's
// own: go test runs a test in its package's folder), which must be self,
// with env (such as "GOOS=linux", "GOARCH=arm64": files for other
// platforms link other packages) added to the environment. go test puts its
// own go command first on PATH, so the listing is the toolchain's that runs
// the test.
func Deps(dir, self string, env ...string) (Graph, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return Graph{}, fmt.Errorf("the go command is needed to list dependencies: %w", err)
	}
	cmd := exec.Command(goCmd, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", dir)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return Graph{}, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, ee.Stderr)
		}
		return Graph{}, fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	g := Graph{importers: map[string][]string{}}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		g.Deps = append(g.Deps, fields[0])
		for _, imp := range fields[1:] {
			g.importers[imp] = append(g.importers[imp], fields[0])
		}
	}
	// Without the package itself the listing was of something else, and
	// finding nothing in it would prove nothing.
	if !slices.Contains(g.Deps, self) {
		return Graph{}, fmt.Errorf("%s did not list %s:\n%s", strings.Join(cmd.Args, " "), self, out)
	}
	return g, nil
}

// Importers are the listed packages that import p.
func (g Graph) Importers(p string) []string { return g.importers[p] }

// Matching returns the linked packages for which match is true, each with
// what imports it, as "pkg (imported by a, b)".
func (g Graph) Matching(match func(string) bool) []string {
	var out []string
	for _, p := range g.Deps {
		if match(p) {
			out = append(out, fmt.Sprintf("%s (imported by %s)", p, strings.Join(g.importers[p], ", ")))
		}
	}
	return out
}
