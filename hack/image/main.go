// Command image-build builds the product's OCI image without a daemon or a
// registry, reproducibly: the same source, Go toolchain and platform give
// the same manifest digest. hack/build-image runs it.
//
// It writes an OCI image layout (and, with -tarball, a `docker save`
// archive) and prints the manifest digest as the last line of stdout.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// defaultRef is the name a development image is given.
const defaultRef = "ghcr.io/upgrade-image-cleanup/upgrade-image-cleanup:dev"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "build-image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("build-image", flag.ContinueOnError)
	root := fs.String("root", "", "the repository's root (the module whose ./cmd/... are built)")
	output := fs.String("output", "", "OCI image layout directory to write (replaced if it holds one); default ROOT/_output/image")
	tarPath := fs.String("tarball", "", "also write a `docker save` archive here (docker load, ctr images import)")
	ref := fs.String("ref", defaultRef, "the image's name in the layout's index and the archive")
	platform := fs.String("platform", "linux/"+runtime.GOARCH, "os/arch[/variant] to build for")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *root == "" {
		return fmt.Errorf("-root is required")
	}
	if *output == "" {
		*output = filepath.Join(*root, "_output", "image")
	}
	p, err := v1.ParsePlatform(*platform)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(*ref, name.StrictValidation)
	if err != nil {
		return err
	}

	digest, err := build(*root, *p, *output, tag, *tarPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "build-image: %s for %s in %s\n", tag, p, *output)
	fmt.Println(digest)
	return nil
}

// build compiles the binaries, assembles the image and writes it; it
// returns the manifest digest.
func build(root string, platform v1.Platform, output string, tag name.Tag, tarPath string) (v1.Hash, error) {
	spec, err := specFor(root, platform)
	if err != nil {
		return v1.Hash{}, err
	}
	img, err := buildImage(spec)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := writeLayout(output, tag.String(), img); err != nil {
		return v1.Hash{}, err
	}
	if tarPath != "" {
		if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
			return v1.Hash{}, err
		}
	}
	return img.Digest()
}

// specFor gathers the image's inputs from the source tree at root.
func specFor(root string, platform v1.Platform) (imageSpec, error) {
	created, err := sourceDate(root)
	if err != nil {
		return imageSpec{}, err
	}
	bins, err := goBuild(root, platform)
	if err != nil {
		return imageSpec{}, err
	}
	labels := map[string]string{
		"org.opencontainers.image.source": "https://github.com/upgrade-image-cleanup/upgrade-image-cleanup",
	}
	if rev := revision(root); rev != "" {
		labels["org.opencontainers.image.revision"] = rev
	}
	return imageSpec{Platform: platform, Binaries: bins, Created: created, Labels: labels}, nil
}
