package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestImage builds the image twice from the repository, as hack/build-image
// does (Go build included), and checks what the second build wrote to disk:
// one digest, the two binaries and nothing else, and the config.
func TestImage(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	tag, err := name.NewTag(defaultRef)
	if err != nil {
		t.Fatal(err)
	}
	var digests []v1.Hash
	var dirs []string
	for range 2 {
		dir := t.TempDir()
		d, err := build(root, platform, dir, tag, "")
		if err != nil {
			t.Fatal(err)
		}
		digests, dirs = append(digests, d), append(dirs, dir)
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds of one source, two digests: %s and %s", digests[0], digests[1])
	}

	img := readLayout(t, dirs[1], digests[1])
	if mt, err := img.MediaType(); err != nil || mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %q (%v), want %q", mt, err, types.OCIManifestSchema1)
	}

	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Config.Entrypoint, []string{"/usr/local/bin/upgrade-image-cleanup"}; !slices.Equal(got, want) {
		t.Errorf("entrypoint %q, want %q", got, want)
	}
	if len(cfg.Config.Cmd) != 0 {
		t.Errorf("cmd %q, want none", cfg.Config.Cmd)
	}
	if got, want := cfg.Config.User, "65532:65532"; got != want {
		t.Errorf("user %q, want %q", got, want)
	}
	if cfg.OS != platform.OS || cfg.Architecture != platform.Architecture {
		t.Errorf("platform %s/%s, want %s", cfg.OS, cfg.Architecture, platform)
	}

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	files := readTar(t, layers[0])
	for _, bin := range []string{"usr/local/bin/upgrade-image-cleanup", "usr/local/bin/image-remover"} {
		f, ok := files[bin]
		if !ok {
			t.Errorf("no %s in the image", bin)
			continue
		}
		if f.hdr.Typeflag != tar.TypeReg || f.hdr.Mode != 0o755 || f.hdr.Uid != 0 || f.hdr.Gid != 0 {
			t.Errorf("%s: type %q mode %o owner %d:%d, want a regular file, 0755, 0:0",
				bin, f.hdr.Typeflag, f.hdr.Mode, f.hdr.Uid, f.hdr.Gid)
		}
		if !f.hdr.ModTime.Equal(cfg.Created.Time) {
			t.Errorf("%s: mtime %s, want the created time %s", bin, f.hdr.ModTime, cfg.Created.Time)
		}
		// Static: no program interpreter (dynamic loader) to find on scratch.
		e, err := elf.NewFile(bytes.NewReader(f.body))
		if err != nil {
			t.Errorf("%s: %v", bin, err)
			continue
		}
		for _, prog := range e.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked (PT_INTERP)", bin)
			}
		}
	}
	if _, ok := files["bin/sh"]; ok {
		t.Error("the image has /bin/sh")
	}
	want := []string{"usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/image-remover", "usr/local/bin/upgrade-image-cleanup"}
	if got := sortedKeys(files); !slices.Equal(got, want) {
		t.Errorf("image files %q, want only %q", got, want)
	}
}

// readLayout reads the image with digest back from the layout at dir, as a
// consumer would: through index.json.
func readLayout(t *testing.T, dir string, digest v1.Hash) v1.Image {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != digest {
		t.Fatalf("index.json lists %+v, want one manifest %s", m.Manifests, digest)
	}
	if ref := m.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; ref != defaultRef {
		t.Errorf("ref.name %q, want %q", ref, defaultRef)
	}
	img, err := idx.Image(digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type tarFile struct {
	hdr  *tar.Header
	body []byte
}

func readTar(t *testing.T, layer v1.Layer) map[string]tarFile {
	t.Helper()
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]tarFile{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = tarFile{hdr: hdr, body: body}
	}
}
