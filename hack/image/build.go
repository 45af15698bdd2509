package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// commands are the packages the image holds, built into /usr/local/bin
// under their last path element.
var commands = []string{"./cmd/upgrade-image-cleanup", "./cmd/image-remover"}

// goBuild builds the commands of the module at root for platform, static
// and stripped, and returns them by file name.
//
// The environment is the caller's minus what would change the output
// without changing the source: GOFLAGS (tags, -race, -cover), the
// architecture levels (GOAMD64, GOARM64 ...; the defaults are the portable
// ones), GOEXPERIMENT. The go command reads an unset (or empty) variable
// from its configuration file (`go env -w`), so that file is switched off
// (GOENV=off); the settings that only say where modules and caches come
// from are read first and passed on, so a proxy configured there still
// serves the build. VCS stamping is off: the revision is a label of the
// image instead, and a dirty tree then builds the same binaries as its
// files. What remains an input is the source and the Go toolchain.
func goBuild(root string, platform v1.Platform) (map[string][]byte, error) {
	out, err := os.MkdirTemp("", "build-image-bin-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)

	fetch, err := fetchSettings(root)
	if err != nil {
		return nil, err
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GOFLAGS", "GOEXPERIMENT", "GOOS", "GOARCH", "CGO_ENABLED",
			"GO386", "GOAMD64", "GOARM", "GOARM64", "GOMIPS", "GOMIPS64", "GOPPC64", "GORISCV64", "GOWASM":
			return true
		}
		return false
	})
	env = append(env, fetch...)
	env = append(env, "GOENV=off", "CGO_ENABLED=0", "GOOS="+platform.OS, "GOARCH="+platform.Architecture)
	if platform.Architecture == "arm" && platform.Variant != "" {
		env = append(env, "GOARM="+strings.TrimPrefix(platform.Variant, "v"))
	}

	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out + string(filepath.Separator)}
	cmd := exec.Command("go", append(args, commands...)...)
	cmd.Dir = root
	cmd.Env = env
	cmd.Stdout = os.Stderr // stdout is the digest's
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build %s: %w", strings.Join(commands, " "), err)
	}
	bins := make(map[string][]byte, len(commands))
	for _, c := range commands {
		name := filepath.Base(c)
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			return nil, err
		}
		bins[name] = b
	}
	return bins, nil
}

// fetchedFrom are the go env settings that say where modules, checksums,
// toolchains and caches come from: they change no byte of the binaries.
var fetchedFrom = []string{"GOPROXY", "GOSUMDB", "GOPRIVATE", "GONOPROXY", "GONOSUMDB",
	"GOINSECURE", "GOTOOLCHAIN", "GOMODCACHE", "GOCACHE", "GOVCS", "GOAUTH"}

// fetchSettings returns fetchedFrom as the caller's go command sees them
// (environment and configuration file), as NAME=value pairs.
func fetchSettings(root string) ([]string, error) {
	cmd := exec.Command("go", append([]string{"env", "-json"}, fetchedFrom...)...)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	var vals map[string]string
	if err := json.Unmarshal(b, &vals); err != nil {
		return nil, fmt.Errorf("go env -json: %w", err)
	}
	var env []string
	for _, k := range fetchedFrom {
		if v := vals[k]; v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env, nil
}

// sourceDate is the image's creation time: SOURCE_DATE_EPOCH when set
// (https://reproducible-builds.org/specs/source-date-epoch/), else the
// commit time of HEAD, else the Unix epoch (a source tree without git).
func sourceDate(root string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	out, err := git(root, "log", "-1", "--format=%ct")
	if err != nil {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("commit time %q: %w", out, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// revision is HEAD's commit, "-dirty" appended when files differ from it
// (untracked ones included, ignored ones not); empty without git.
func revision(root string) string {
	rev, err := git(root, "rev-parse", "HEAD")
	if err != nil {
		return ""
	}
	if changed, err := git(root, "status", "--porcelain"); err == nil && changed != "" {
		rev += "-dirty"
	}
	return rev
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		return "", err
	}
	return strings.TrimSpace(stdout.String()), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
