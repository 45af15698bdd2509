package main

// Adversarial review of issue 15's image: the test names a defect and
// fails while it is there.

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestAdversaryGoEnvFileChangesTheDigest: the README says the build
// "clears GOFLAGS, GOEXPERIMENT and the architecture levels (GOAMD64,
// ...)" so that the same source, Go toolchain and platform give the same
// digest. goBuild only removes those variables from the environment, and
// then the go command reads them from its configuration file (GOENV,
// written by `go env -w`, e.g. `go env -w GOAMD64=v3` on a developer's
// machine or a CI image): the architecture level is not cleared, the
// binaries differ, and so does the image's digest, with the same source,
// toolchain and platform.
func TestAdversaryGoEnvFileChangesTheDigest(t *testing.T) {
	var setting string
	switch runtime.GOARCH {
	case "amd64":
		setting = "GOAMD64=v3"
	case "arm64":
		setting = "GOARM64=v9.0"
	default:
		t.Skipf("no architecture level to set on %s", runtime.GOARCH)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	tag, err := name.NewTag(defaultRef)
	if err != nil {
		t.Fatal(err)
	}
	// Fixed, so the two builds differ in nothing but the go env file.
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")

	t.Setenv("GOENV", "off")
	clean, err := build(root, platform, t.TempDir(), tag, "")
	if err != nil {
		t.Fatal(err)
	}

	goenv := filepath.Join(t.TempDir(), "go.env")
	if err := os.WriteFile(goenv, []byte(setting+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOENV", goenv)
	withFile, err := build(root, platform, t.TempDir(), tag, "")
	if err != nil {
		t.Fatal(err)
	}
	if clean != withFile {
		t.Errorf("same source, toolchain and platform, two digests: %s without a go env file, %s with `go env -w %s` (the level goBuild claims to clear)", clean, withFile, setting)
	}
}
