//go:build linux

// The remover's --plan-configmap check against the kubelet's own code: the
// root module cannot import k8s.io/kubernetes, and this module already
// does. Run as root (it bind-mounts a folder read-only), as .ci/run does:
//
//	cd hack/controlplane && go test ./...
package tools_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	volumeutil "k8s.io/kubernetes/pkg/volume/util"
)

// The plan ConfigMap's keys (the root module's cleanup.PlanKey, KeepKey and
// report.PlanNameKey) and the exit codes of image-remover.
const (
	planKey     = "images.txt"
	keepKey     = "keep.txt"
	nameKey     = "configmap-name"
	exitRuntime = 1
	exitRefused = 2
)

// TestRemoverReadsTheKubeletsConfigMapVolume writes a plan ConfigMap's
// keys with the kubelet's AtomicWriter, as the ConfigMap volume plugin
// does, and runs the image-remover binary on them with --plan-configmap:
// mounted read-write it is refused for that alone (so the layout and the
// name passed); bind-mounted read-only it passes the check and goes on to
// the runtime (here none, so it exits 1 naming the socket); and after the
// kubelet's update of the volume to another ConfigMap's name, it is
// refused for the name.
func TestRemoverReadsTheKubeletsConfigMapVolume(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: it bind-mounts the volume read-only, as the kubelet's readOnly mount does")
	}
	bin := filepath.Join(t.TempDir(), "image-remover")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/image-remover")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build image-remover: %v\n%s", err, out)
	}

	dir := filepath.Join(t.TempDir(), "plan")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string) {
		t.Helper()
		w, err := volumeutil.NewAtomicWriter(dir, "configmap-volume-test")
		if err != nil {
			t.Fatal(err)
		}
		payload := map[string]volumeutil.FileProjection{
			planKey: {Data: []byte("docker.io/rancher/harvester:v1.4.2\n"), Mode: 0o644},
			keepKey: {Data: []byte("docker.io/rancher/harvester:v1.5.0\n"), Mode: 0o644},
			nameKey: {Data: []byte(name), Mode: 0o644},
		}
		if err := w.Write(payload, nil); err != nil {
			t.Fatalf("AtomicWriter.Write: %v", err)
		}
	}
	socket := filepath.Join(t.TempDir(), "no-runtime.sock")
	run := func(t *testing.T, wantCode int, want string) {
		t.Helper()
		term := filepath.Join(t.TempDir(), "termination-log")
		cmd := exec.CommandContext(t.Context(), bin,
			"--plan="+filepath.Join(dir, planKey), "--keep="+filepath.Join(dir, keepKey),
			"--plan-configmap=u-image-cleanup", "--runtime-endpoint=unix://"+socket,
			"--termination-log="+term)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != wantCode {
			t.Fatalf("image-remover: %v, want exit code %d; stderr:\n%s", err, wantCode, stderr.String())
		}
		b, err := os.ReadFile(term)
		if err != nil {
			t.Fatal(err)
		}
		var result struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(b, &result); err != nil {
			t.Fatalf("termination log %q: %v", b, err)
		}
		if !strings.Contains(result.Error, want) {
			t.Errorf("the result's error %q does not say %q", result.Error, want)
		}
	}

	write("u-image-cleanup")
	t.Run("read-write", func(t *testing.T) { run(t, exitRefused, "mounted read-write") })

	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mount %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	t.Run("read-only", func(t *testing.T) { run(t, exitRuntime, socket) })

	// The kubelet updates the volume by writing beside it and swapping
	// ..data; its mount is not read-only to the kubelet.
	if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT, ""); err != nil {
		t.Fatalf("remount %s read-write: %v", dir, err)
	}
	write("v-image-cleanup")
	if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	t.Run("updated to another ConfigMap", func(t *testing.T) {
		run(t, exitRefused, `holds ConfigMap "v-image-cleanup", not "u-image-cleanup"`)
	})
}
