package remover_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/fakecri"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// The exit codes Main documents; spelled out so that a change to them fails
// here.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

func id(c string) string { return "sha256:" + strings.Repeat(c, 64) }

var (
	oldImage  = fakecri.WithSize(&runtimeapi.Image{Id: id("1"), RepoTags: []string{"docker.io/rancher/harvester:v1.4.2"}}, 1000)
	usedImage = fakecri.WithSize(&runtimeapi.Image{Id: id("2"), RepoTags: []string{"docker.io/rancher/harvester-webhook:v1.4.2"}}, 2000)
	mirrored  = fakecri.WithSize(&runtimeapi.Image{Id: id("3"), RepoTags: []string{"registry.local:5000/rancher/harvester-node:v1.4.2"}}, 3000)
	current   = fakecri.WithSize(&runtimeapi.Image{Id: id("4"), RepoTags: []string{"docker.io/rancher/harvester:v1.5.0"}}, 4000)
	dangling  = fakecri.WithSize(&runtimeapi.Image{Id: id("5")}, 5000)
	pinned    = &runtimeapi.Image{Id: id("6"), RepoTags: []string{"registry.k8s.io/pause:3.6"}, Pinned: true}
)

// mustKeep are the images no run may ever pass to RemoveImage.
var mustKeep = []*runtimeapi.Image{usedImage, current, pinned}

const planText = `docker.io/rancher/harvester:v1.4.2
docker.io/rancher/harvester-webhook:v1.4.2
docker.io/rancher/harvester-node:v1.4.2
registry.k8s.io/pause:3.6
docker.io/rancher/harvester-missing:v1.4.2
`

func startNode(t *testing.T) *fakecri.Server {
	t.Helper()
	return fakecri.Start(t,
		[]*runtimeapi.Image{oldImage, usedImage, mirrored, current, dangling, pinned},
		[]*runtimeapi.Container{
			{Id: "webhook", ImageRef: usedImage.Id, Image: &runtimeapi.ImageSpec{Image: usedImage.Id}, State: runtimeapi.ContainerState_CONTAINER_RUNNING},
			{Id: "harvester", ImageRef: current.Id, Image: &runtimeapi.ImageSpec{Image: current.Id}, State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		})
}

type outcome struct {
	code           int
	stdout, stderr string
	termination    []byte
}

// runIn runs Main with a plan file (unless plan is nil) and a termination
// log in a temporary folder; args come after those.
func runIn(t *testing.T, plan *string, args ...string) outcome {
	t.Helper()
	flags, term := inputs(t, plan)
	return runMain(t, term, func(stdout, stderr io.Writer) int {
		return remover.Main(t.Context(), append(flags, args...), stdout, stderr)
	})
}

// inputs writes plan (unless nil) to a temporary folder and returns the
// flags that name it and a termination log beside it, and the log's path.
func inputs(t *testing.T, plan *string) (flags []string, term string) {
	t.Helper()
	dir := t.TempDir()
	term = filepath.Join(dir, "termination-log")
	flags = []string{"--termination-log", term}
	if plan != nil {
		p := filepath.Join(dir, "images.txt")
		if err := os.WriteFile(p, []byte(*plan), 0o644); err != nil {
			t.Fatal(err)
		}
		flags = append(flags, "--plan", p)
	}
	return flags, term
}

// runMain runs entry, a program's entry point, and collects what it wrote,
// to its outputs and to the termination log term.
func runMain(t *testing.T, term string, entry func(stdout, stderr io.Writer) int) outcome {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := entry(&stdout, &stderr)
	b, err := os.ReadFile(term)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return outcome{code: code, stdout: stdout.String(), stderr: stderr.String(), termination: b}
}

func assertNeverRemoved(t *testing.T, srv *fakecri.Server) {
	t.Helper()
	for _, call := range srv.RemoveCalls() {
		for _, img := range mustKeep {
			if call == img.Id || slices.Contains(img.RepoTags, call) {
				t.Errorf("RemoveImage(%q) was called for an image that must be kept", call)
			}
		}
	}
}

// assertJSONLines checks that every stderr line is a zap JSON object.
func assertJSONLines(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("stderr line is not JSON: %q", sc.Text())
			continue
		}
		lines = append(lines, m)
	}
	return lines
}

func TestRemovesAndReports(t *testing.T) {
	srv := startNode(t)
	plan := planText
	out := runIn(t, &plan, "--runtime-endpoint", srv.Endpoint(), "--prune-dangling")
	if out.code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", out.code, out.stderr)
	}
	assertNeverRemoved(t, srv)
	calls := srv.RemoveCalls()
	slices.Sort(calls)
	if want := []string{oldImage.Id, mirrored.Id, dangling.Id}; !reflect.DeepEqual(calls, want) {
		t.Errorf("RemoveImage calls = %v, want %v", calls, want)
	}

	want := report.Result{
		Removed:         2,
		Skipped:         map[report.Reason]int{report.ReasonInUse: 1, report.ReasonPinned: 1, report.ReasonNotPresent: 1},
		BytesReclaimed:  1000 + 3000 + 5000,
		DanglingRemoved: 1,
		// The plan it acted on, for the controller to check.
		PlanDigest: imagelist.Digest([]byte(planText)),
	}
	got, err := report.ParseResult(out.termination)
	if err != nil {
		t.Fatalf("termination log %q: %v", out.termination, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("termination result = %+v, want %+v", got, want)
	}

	var rep remover.Report
	if err := json.Unmarshal([]byte(out.stdout), &rep); err != nil {
		t.Fatalf("stdout is not a report: %v\n%s", err, out.stdout)
	}
	if !reflect.DeepEqual(rep.Result, want) || len(rep.Images) != 6 {
		t.Errorf("report = %+v, want the same result and 5 planned + 1 dangling entries", rep)
	}
	if strings.Count(out.stdout, "\n") != 1 {
		t.Errorf("stdout has %d lines, want the report on one line", strings.Count(out.stdout, "\n"))
	}

	// One line per decision (5 planned, 1 dangling), plus start and summary.
	lines := assertJSONLines(t, out.stderr)
	var msgs []string
	for _, l := range lines {
		msgs = append(msgs, l["msg"].(string))
	}
	if len(lines) != 8 || msgs[0] != "Removing planned images" || msgs[7] != "Image removal done" {
		t.Errorf("log messages = %q, want start, 6 decisions, summary", msgs)
	}
}

func TestRemovalFailureStillExitsZero(t *testing.T) {
	srv := startNode(t)
	srv.FailRemove(oldImage.Id, os.ErrPermission)
	plan := planText
	out := runIn(t, &plan, "--runtime-endpoint", srv.Socket) // a bare path works too
	if out.code != exitOK {
		t.Fatalf("exit code %d, want 0 (failures are in the result); stderr:\n%s", out.code, out.stderr)
	}
	assertNeverRemoved(t, srv)
	got, err := report.ParseResult(out.termination)
	if err != nil {
		t.Fatal(err)
	}
	if got.Failed != 1 || got.Removed != 1 || len(got.FailedImages) != 1 || !strings.HasPrefix(got.FailedImages[0], "docker.io/rancher/harvester:v1.4.2: ") {
		t.Errorf("result = %+v, want 1 failed naming docker.io/rancher/harvester:v1.4.2, 1 removed", got)
	}
	if !slices.Contains(srv.ImageIDs(), oldImage.Id) || slices.Contains(srv.ImageIDs(), mirrored.Id) {
		t.Errorf("images left = %v, want the failed one kept and the other removed", srv.ImageIDs())
	}
}

func TestOptions(t *testing.T) {
	t.Run("dry run removes nothing", func(t *testing.T) {
		srv := startNode(t)
		plan := planText
		out := runIn(t, &plan, "--runtime-endpoint", srv.Endpoint(), "--dry-run", "--prune-dangling")
		if out.code != exitOK || len(srv.RemoveCalls()) != 0 {
			t.Fatalf("exit %d, calls %v; want 0 and none\n%s", out.code, srv.RemoveCalls(), out.stderr)
		}
		var rep remover.Report
		if err := json.Unmarshal([]byte(out.stdout), &rep); err != nil || !rep.DryRun || rep.WouldRemove != 3 {
			t.Errorf("report %+v, %v; want a dry run that would remove 3", rep, err)
		}
	})
	t.Run("registry rewrite off", func(t *testing.T) {
		srv := startNode(t)
		plan := planText
		out := runIn(t, &plan, "--runtime-endpoint", srv.Endpoint(), "--match-other-registries=false")
		if out.code != exitOK {
			t.Fatalf("exit %d\n%s", out.code, out.stderr)
		}
		if calls := srv.RemoveCalls(); !reflect.DeepEqual(calls, []string{oldImage.Id}) {
			t.Errorf("RemoveImage calls = %v, want only the exact match", calls)
		}
	})
	t.Run("empty plan still prunes", func(t *testing.T) {
		srv := startNode(t)
		plan := "\n"
		out := runIn(t, &plan, "--runtime-endpoint", srv.Endpoint(), "--prune-dangling")
		if out.code != exitOK {
			t.Fatalf("exit %d\n%s", out.code, out.stderr)
		}
		if calls := srv.RemoveCalls(); !reflect.DeepEqual(calls, []string{dangling.Id}) {
			t.Errorf("RemoveImage calls = %v, want only the dangling image", calls)
		}
		if r, err := report.ParseResult(out.termination); err != nil || r.DanglingRemoved != 1 || r.Removed != 0 {
			t.Errorf("result %+v, %v", r, err)
		}
	})
}

func TestRuntimeUnreachableExitsOne(t *testing.T) {
	dir, err := os.MkdirTemp("", "cri")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "containerd.sock")
	plan := planText
	out := runIn(t, &plan, "--runtime-endpoint", "unix://"+sock)
	if out.code != exitRuntime {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", out.code, out.stderr)
	}
	if !strings.Contains(string(out.termination), sock) || !strings.Contains(out.stderr, sock) {
		t.Errorf("termination log %q and stderr %q should name the socket %s", out.termination, out.stderr, sock)
	}
	// A failed run writes a result whose Error says why, so that the
	// controller can show it.
	if r, err := report.ParseResult(out.termination); err != nil || !strings.Contains(r.Error, sock) || r.Removed != 0 {
		t.Errorf("termination log %q: %+v, %v; want a result whose error names the socket", out.termination, r, err)
	}
	if out.stdout != "" {
		t.Errorf("stdout = %q, want no report", out.stdout)
	}
	assertJSONLines(t, out.stderr)
}

func TestBadInputExitsTwoAndRemovesNothing(t *testing.T) {
	srv := startNode(t)
	badPlan := "docker.io/rancher/harvester:v1.4.2\nnot a reference!\n"
	goodPlan := planText
	missing := filepath.Join(t.TempDir(), "nope", "images.txt")
	cases := []struct {
		name string
		plan *string
		args []string
		want string
	}{
		{"bad plan line", &badPlan, nil, "line 2"},
		{"plan file missing", nil, []string{"--plan", missing}, "no such file"},
		{"no plan flag", nil, nil, "--plan is required"},
		{"tcp endpoint", &goodPlan, []string{"--runtime-endpoint", "tcp://127.0.0.1:1"}, "--runtime-endpoint"},
		{"relative endpoint", &goodPlan, []string{"--runtime-endpoint", "containerd.sock"}, "must be absolute"},
		{"zero timeout", &goodPlan, []string{"--timeout", "0s"}, "--timeout"},
		{"bad timeout", &goodPlan, []string{"--timeout", "soon"}, "timeout"},
		{"unknown flag", &goodPlan, []string{"--force"}, "force"},
		{"extra argument", &goodPlan, []string{"images.txt"}, "unexpected argument"},
		{"threshold not a quantity", &goodPlan, []string{"--image-fs-threshold=50GB"}, `--image-fs-threshold "50GB": want a quantity`},
		{"negative threshold", &goodPlan, []string{"--image-fs-threshold=-1Gi"}, `--image-fs-threshold "-1Gi": must not be negative`},
		{"threshold too large", &goodPlan, []string{"--image-fs-threshold", "9Pi"}, `--image-fs-threshold "9Pi": must be at most 8Pi`},
		{"negative wait", &goodPlan, []string{"--image-fs-wait=-1s"}, "--image-fs-wait -1s: must not be negative"},
		{"bad wait", &goodPlan, []string{"--image-fs-wait=soon"}, "image-fs-wait"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--runtime-endpoint", srv.Endpoint()}, tc.args...)
			out := runIn(t, tc.plan, args...)
			if out.code != exitUsage {
				t.Fatalf("exit code %d, want 2; stderr:\n%s", out.code, out.stderr)
			}
			if !strings.Contains(out.stderr, tc.want) {
				t.Errorf("stderr %q does not say %q", out.stderr, tc.want)
			}
			if out.stdout != "" {
				t.Errorf("stdout = %q, want nothing", out.stdout)
			}
		})
	}
	if calls := srv.RemoveCalls(); len(calls) != 0 {
		t.Errorf("RemoveImage was called on bad input: %v", calls)
	}
	if got := srv.ContainerFilters(); len(got) != 0 {
		t.Errorf("the runtime was queried on bad input (%d ListContainers calls)", len(got))
	}
	if got := srv.ImageIDs(); len(got) != 6 {
		t.Errorf("images left = %v, want all 6", got)
	}

	// The bad plan is named in the termination log, with its line.
	out := runIn(t, &badPlan, "--runtime-endpoint", srv.Endpoint())
	if !strings.Contains(string(out.termination), "line 2") {
		t.Errorf("termination log %q does not name the bad line", out.termination)
	}
}

func TestHelpExitsZero(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := remover.Main(t.Context(), []string{"-h"}, &stdout, &stderr); code != exitOK || !strings.Contains(stderr.String(), "-runtime-endpoint") {
		t.Errorf("-h: exit %d, stderr %q", code, stderr.String())
	}
}

// A flag error is written to the termination log the command line names,
// wherever --termination-log stands, as for any other exit but -h. Today
// parsing stops at the bad flag and the result goes to the value set before
// it (here the overridden one; with none before it, /dev/termination-log,
// which running as root creates even outside a pod), never to the one named.
func TestFlagErrorGoesToTheNamedTerminationLog(t *testing.T) {
	plan := planText
	flags, overridden := inputs(t, &plan)
	named := filepath.Join(t.TempDir(), "termination-log")
	args := append(flags, "--force", "--termination-log", named)
	out := runMain(t, named, func(stdout, stderr io.Writer) int {
		return remover.Main(t.Context(), args, stdout, stderr)
	})
	if out.code != exitUsage {
		t.Fatalf("exit code %d, want 2; stderr:\n%s", out.code, out.stderr)
	}
	if r := report.ResultFromTermination(string(out.termination)); !strings.Contains(r.Error, "force") {
		t.Errorf("termination log %s holds %q, want the flag error", named, out.termination)
	}
	if b, err := os.ReadFile(overridden); err == nil {
		t.Errorf("the result went to %s, which the command line overrode: %q", overridden, b)
	}
}
