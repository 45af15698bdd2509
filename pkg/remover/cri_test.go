package remover

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/go-logr/logr/testr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/fakecri"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// node is a scripted node: images and containers as containerd lists them
// (ImageRef set to the image ID, ImageId empty).
type node struct {
	images     []*runtimeapi.Image
	containers []*runtimeapi.Container
}

func criImage(idc string, size uint64, tags ...string) *runtimeapi.Image {
	return fakecri.WithSize(&runtimeapi.Image{Id: id(idc), RepoTags: tags}, size)
}

func running(cid, imageRef, image string, state runtimeapi.ContainerState) *runtimeapi.Container {
	return &runtimeapi.Container{Id: cid, ImageRef: imageRef, Image: &runtimeapi.ImageSpec{Image: image}, State: state}
}

// testContext carries a logger that writes to the test's log.
func testContext(t *testing.T) context.Context {
	return klog.NewContext(t.Context(), testr.New(t))
}

// startNode starts a fake runtime and dials it through the real CRI client.
func startNode(t *testing.T, n node) (*fakecri.Server, *CRI) {
	t.Helper()
	srv := fakecri.Start(t, n.images, n.containers)
	c, err := DialCRI(t.Context(), srv.Endpoint(), 5*time.Second)
	if err != nil {
		t.Fatalf("DialCRI: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return srv, c
}

// assertNeverRemoved fails the test if any of the forbidden images was ever
// passed to RemoveImage, by ID or by any name.
func assertNeverRemoved(t *testing.T, srv *fakecri.Server, forbidden ...*runtimeapi.Image) {
	t.Helper()
	for _, call := range srv.RemoveCalls() {
		for _, img := range forbidden {
			if call == img.GetId() || slices.Contains(img.GetRepoTags(), call) || slices.Contains(img.GetRepoDigests(), call) {
				t.Errorf("RemoveImage(%q) was called for image %s, which must be kept", call, img.GetId())
			}
		}
	}
}

// logLines captures log lines, so a test can count them.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, args)
	}, funcr.Options{})
}

func (l *logLines) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func TestRunThroughCRI(t *testing.T) {
	free := criImage("1", 100, "docker.io/rancher/free:1")
	inUse := criImage("2", 200, "docker.io/rancher/used:1")
	usedByTag := criImage("3", 300, "docker.io/rancher/used-by-tag:1")
	pinned := criImage("4", 400, "registry.k8s.io/pause:3.6")
	pinned.Pinned = true
	multiKeep := criImage("5", 500, "docker.io/rancher/multi:1", "docker.io/rancher/multi:latest")
	multiAll := criImage("6", 600, "docker.io/rancher/both:1", "docker.io/rancher/both:1.0")
	rewritten := criImage("7", 700, "registry.local:5000/rancher/rewritten:1")
	unplanned := criImage("8", 800, "docker.io/rancher/current:2")
	dangling := criImage("9", 900)
	danglingInUse := criImage("a", 1000)
	n := node{
		images: []*runtimeapi.Image{free, inUse, usedByTag, pinned, multiKeep, multiAll, rewritten, unplanned, dangling, danglingInUse},
		containers: []*runtimeapi.Container{
			running("c-running", inUse.Id, "", runtimeapi.ContainerState_CONTAINER_RUNNING), // ImageRef only, ImageId empty: containerd
			running("c-exited", "", "rancher/used-by-tag:1", runtimeapi.ContainerState_CONTAINER_EXITED),
			running("c-sandbox", pinned.Id, pinned.Id, runtimeapi.ContainerState_CONTAINER_RUNNING),
			running("c-dangling", danglingInUse.Id, danglingInUse.Id, runtimeapi.ContainerState_CONTAINER_CREATED),
		},
	}
	srv, c := startNode(t, n)
	plan := mustPlan(t,
		"docker.io/rancher/free:1", "docker.io/rancher/used:1", "docker.io/rancher/used-by-tag:1",
		"registry.k8s.io/pause:3.6", "docker.io/rancher/multi:1", "docker.io/rancher/both:1",
		"docker.io/rancher/both:1.0", "docker.io/rancher/rewritten:1", "docker.io/rancher/missing:1",
	)
	var logs logLines
	ctx := klog.NewContext(t.Context(), logs.logger())

	rep, err := Run(ctx, c, plan, Options{MatchOtherRegistries: true, PruneDangling: true})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	assertNeverRemoved(t, srv, inUse, usedByTag, pinned, multiKeep, unplanned, danglingInUse)
	calls := srv.RemoveCalls()
	slices.Sort(calls)
	if want := []string{free.Id, multiAll.Id, rewritten.Id, dangling.Id}; !reflect.DeepEqual(calls, want) {
		t.Errorf("RemoveImage calls = %v, want each removable image once, by ID: %v", calls, want)
	}
	if got, want := srv.ImageIDs(), []string{inUse.Id, usedByTag.Id, pinned.Id, multiKeep.Id, unplanned.Id, danglingInUse.Id}; !reflect.DeepEqual(got, want) {
		t.Errorf("images left = %v, want %v", got, want)
	}
	if f := srv.ContainerFilters(); len(f) != 1 || f[0] != nil {
		t.Errorf("ListContainers filters = %v, want one call without a filter (all states)", f)
	}

	want := report.Result{
		Removed:         3,
		Skipped:         map[report.Reason]int{report.ReasonInUse: 2, report.ReasonPinned: 1, report.ReasonStillNeeded: 1, report.ReasonNotPresent: 1},
		BytesReclaimed:  100 + 600 + 700 + 900,
		DanglingRemoved: 1,
	}
	if !reflect.DeepEqual(rep.Result, want) {
		t.Errorf("Result = %+v, want %+v", rep.Result, want)
	}
	msg, err := rep.Result.TerminationMessage()
	if err != nil {
		t.Fatal(err)
	}
	if back, err := report.ParseResult(msg); err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("termination message %s read back as %+v, %v", msg, back, err)
	}

	type line struct {
		ref    string
		action Action
		reason report.Reason
		id     string
	}
	var gotLines []line
	for _, e := range rep.Images {
		gotLines = append(gotLines, line{e.Ref, e.Action, e.Reason, e.ImageID})
	}
	wantLines := []line{
		{"docker.io/rancher/both:1", ActionRemoved, "", multiAll.Id},
		{"docker.io/rancher/both:1.0", ActionRemoved, "", multiAll.Id},
		{"docker.io/rancher/free:1", ActionRemoved, "", free.Id},
		{"docker.io/rancher/missing:1", ActionSkipped, report.ReasonNotPresent, ""},
		{"docker.io/rancher/multi:1", ActionSkipped, report.ReasonStillNeeded, multiKeep.Id},
		{"docker.io/rancher/rewritten:1", ActionRemoved, "", rewritten.Id},
		{"docker.io/rancher/used-by-tag:1", ActionSkipped, report.ReasonInUse, usedByTag.Id},
		{"docker.io/rancher/used:1", ActionSkipped, report.ReasonInUse, inUse.Id},
		{"registry.k8s.io/pause:3.6", ActionSkipped, report.ReasonPinned, pinned.Id},
		{"", ActionRemoved, "", dangling.Id},
	}
	if !reflect.DeepEqual(gotLines, wantLines) {
		t.Errorf("report lines:\n got %+v\nwant %+v", gotLines, wantLines)
	}
	if e := rep.Images[len(rep.Images)-1]; !e.Dangling || e.Size != 900 {
		t.Errorf("dangling entry = %+v, want Dangling and its size", e)
	}
	if e := rep.Images[4]; e.Detail != "also tagged docker.io/rancher/multi:latest, which the plan does not name" {
		t.Errorf("still-needed detail = %q", e.Detail)
	}

	// One log line per decision: 7 images decided (one of them for two
	// references), 1 reference not present, 1 dangling image removed.
	if got := logs.get(); len(got) != 9 {
		t.Errorf("%d log lines, want 9 (one per decision):\n%s", len(got), strings.Join(got, "\n"))
	} else if !strings.Contains(got[8], `"dangling"=true`) {
		t.Errorf("last log line %s, want the dangling image marked as such", got[8])
	}
}

// threeAndAUsedOne is a node for the removal loop's tests: three images
// nothing uses, a, b and c, and one, used, that container c1 runs.
func threeAndAUsedOne() (a, b, c, used *runtimeapi.Image, n node) {
	a = criImage("1", 10, "docker.io/rancher/a:1")
	b = criImage("2", 20, "docker.io/rancher/b:1")
	c = criImage("3", 30, "docker.io/rancher/c:1")
	used = criImage("4", 40, "docker.io/rancher/used:1")
	return a, b, c, used, node{
		images:     []*runtimeapi.Image{a, b, c, used},
		containers: []*runtimeapi.Container{running("c1", used.Id, used.Id, runtimeapi.ContainerState_CONTAINER_RUNNING)},
	}
}

func TestRunRemovalFailureGoesOn(t *testing.T) {
	a, b, c3, used, n := threeAndAUsedOne()
	srv, c := startNode(t, n)
	srv.FailRemove(b.Id, status.Error(codes.FailedPrecondition, "image is being used by a snapshot"))

	rep, err := Run(testContext(t), c, mustPlan(t, "rancher/a:1", "rancher/b:1", "rancher/c:1", "rancher/used:1"), DefaultOptions())
	if err != nil {
		t.Fatalf("Run returned an error for a failed removal: %v", err)
	}
	assertNeverRemoved(t, srv, used)
	// In flight together (DefaultParallelRemovals): the calls may start in
	// any order.
	if got, want := slices.Sorted(slices.Values(srv.RemoveCalls())), []string{a.Id, b.Id, c3.Id}; !reflect.DeepEqual(got, want) {
		t.Errorf("RemoveImage calls = %v, want %v (removal goes on after a failure)", got, want)
	}
	if got := srv.ImageIDs(); !reflect.DeepEqual(got, []string{b.Id, used.Id}) {
		t.Errorf("images left = %v, want the failed and the used one", got)
	}
	r := rep.Result
	if r.Removed != 2 || r.Failed != 1 || r.BytesReclaimed != 40 || r.Skipped[report.ReasonInUse] != 1 {
		t.Errorf("Result = %+v, want 2 removed, 1 failed, 40 bytes, 1 in use", r)
	}
	if len(r.FailedImages) != 1 || !strings.HasPrefix(r.FailedImages[0], "docker.io/rancher/b:1: ") || !strings.Contains(r.FailedImages[0], "image is being used by a snapshot") {
		t.Errorf("FailedImages = %q, want the reference and the runtime's error", r.FailedImages)
	}
	if e := rep.Images[1]; e.Action != ActionFailed || e.ImageID != b.Id || !strings.Contains(e.Error, "being used by a snapshot") {
		t.Errorf("report entry for b = %+v, want failed with the error", e)
	}
}

// oneAtATime is opts with one RemoveImage call in flight, for tests that
// end the run between two calls.
func oneAtATime(opts Options) Options {
	opts.ParallelRemovals = 1
	return opts
}

// cancelAfterRemove cancels the run's context once the first image is removed.
type cancelAfterRemove struct {
	Runtime
	cancel context.CancelFunc
}

func (c cancelAfterRemove) RemoveImage(ctx context.Context, id string) error {
	err := c.Runtime.RemoveImage(ctx, id)
	c.cancel()
	return err
}

func TestRunStopsCallingTheRuntimeWhenTheContextEnds(t *testing.T) {
	a := criImage("1", 10, "docker.io/rancher/a:1")
	b := criImage("2", 20, "docker.io/rancher/b:1")
	srv, c := startNode(t, node{images: []*runtimeapi.Image{a, b}})
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()

	rep, err := Run(ctx, cancelAfterRemove{Runtime: c, cancel: cancel}, mustPlan(t, "rancher/a:1", "rancher/b:1"), oneAtATime(DefaultOptions()))
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.RemoveCalls(); !reflect.DeepEqual(got, []string{a.Id}) {
		t.Errorf("RemoveImage calls = %v, want only the first before the context ended", got)
	}
	if rep.Result.Removed != 1 || rep.Result.Failed != 1 || len(rep.Result.FailedImages) != 1 ||
		!strings.Contains(rep.Result.FailedImages[0], "not attempted: context canceled") {
		t.Errorf("Result = %+v, want 1 removed and b failed as not attempted", rep.Result)
	}
}

func TestRunDryRunRemovesNothing(t *testing.T) {
	a := criImage("1", 10, "docker.io/rancher/a:1")
	used := criImage("2", 20, "docker.io/rancher/b:1")
	dangling := criImage("3", 30)
	srv, c := startNode(t, node{
		images:     []*runtimeapi.Image{a, used, dangling},
		containers: []*runtimeapi.Container{running("c1", used.Id, used.Id, runtimeapi.ContainerState_CONTAINER_RUNNING)},
	})
	rep, err := Run(testContext(t), c, mustPlan(t, "rancher/a:1", "rancher/b:1"), Options{MatchOtherRegistries: true, PruneDangling: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if calls := srv.RemoveCalls(); len(calls) != 0 {
		t.Errorf("dry run called RemoveImage: %v", calls)
	}
	if !rep.DryRun || rep.WouldRemove != 2 || rep.Result.Removed != 0 || rep.Result.DanglingRemoved != 0 || rep.Result.BytesReclaimed != 0 || rep.Result.Skipped[report.ReasonInUse] != 1 {
		t.Errorf("dry-run report = %+v, want 2 would-remove, nothing removed, 1 in use", rep)
	}
	if rep.Images[0].Action != ActionWouldRemove || rep.Images[2].Action != ActionWouldRemove {
		t.Errorf("dry-run entries = %+v, want would-remove", rep.Images)
	}
}

func TestRunEmptyPlan(t *testing.T) {
	a := criImage("1", 10, "docker.io/rancher/a:1")
	dangling := criImage("2", 20)
	srv, c := startNode(t, node{images: []*runtimeapi.Image{a, dangling}})

	rep, err := Run(testContext(t), c, nil, DefaultOptions())
	if err != nil || len(srv.RemoveCalls()) != 0 || len(rep.Images) != 0 || rep.Images == nil {
		t.Errorf("empty plan without prune: report %+v, err %v, calls %v; want nothing done and an empty list", rep, err, srv.RemoveCalls())
	}
	rep, err = Run(testContext(t), c, nil, Options{PruneDangling: true})
	if err != nil || !reflect.DeepEqual(srv.RemoveCalls(), []string{dangling.Id}) || rep.Result.DanglingRemoved != 1 || rep.Result.BytesReclaimed != 20 {
		t.Errorf("empty plan with prune: result %+v, err %v, calls %v; want the dangling image removed", rep.Result, err, srv.RemoveCalls())
	}
}

// failingRuntime fails the listing step it is told to.
type failingRuntime struct {
	Runtime
	images, containers, sandboxes error
}

func (f failingRuntime) ListSandboxes(ctx context.Context) (Sandboxes, error) {
	if f.sandboxes != nil {
		return Sandboxes{}, f.sandboxes
	}
	return f.Runtime.ListSandboxes(ctx)
}

func (f failingRuntime) ListImages(ctx context.Context) ([]Image, error) {
	if f.images != nil {
		return nil, f.images
	}
	return f.Runtime.ListImages(ctx)
}

func (f failingRuntime) ListContainers(ctx context.Context) ([]Container, error) {
	if f.containers != nil {
		return nil, f.containers
	}
	return f.Runtime.ListContainers(ctx)
}

func TestRunFailsWhenListingFails(t *testing.T) {
	a := criImage("1", 10, "docker.io/rancher/a:1")
	srv, c := startNode(t, node{images: []*runtimeapi.Image{a}})
	boom := errors.New("boom")
	for name, rt := range map[string]failingRuntime{
		"images":     {Runtime: c, images: boom},
		"containers": {Runtime: c, containers: boom},
		"sandboxes":  {Runtime: c, sandboxes: boom},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Run(testContext(t), rt, mustPlan(t, "rancher/a:1"), DefaultOptions())
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), "list "+name) {
				t.Errorf("Run error = %v, want it to wrap the listing error and say what was listed", err)
			}
		})
	}
	if calls := srv.RemoveCalls(); len(calls) != 0 {
		t.Errorf("RemoveImage called after a failed listing: %v", calls)
	}
}

func TestDialCRIUnreachable(t *testing.T) {
	dir, err := os.MkdirTemp("", "cri")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	t.Run("no socket", func(t *testing.T) {
		sock := filepath.Join(dir, "missing.sock")
		start := time.Now()
		_, err := DialCRI(t.Context(), sock, time.Minute)
		if err == nil || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("DialCRI error = %v, want one naming %s", err, sock)
		}
		// Fails on the dial error, not after the timeout.
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("DialCRI took %v to report a missing socket", d)
		}
	})

	t.Run("socket that never answers", func(t *testing.T) {
		sock := filepath.Join(dir, "silent.sock")
		lis, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = lis.Close() })
		_, err = DialCRI(t.Context(), "unix://"+sock, 200*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), sock) || status.Code(errors.Unwrap(err)) != codes.DeadlineExceeded {
			t.Fatalf("DialCRI error = %v, want a deadline naming %s", err, sock)
		}
	})
}

func TestSocketPath(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///run/containerd/containerd.sock": "/run/containerd/containerd.sock",
		"/run/k3s/containerd/containerd.sock":    "/run/k3s/containerd/containerd.sock",
		"unix:///run//x/../containerd.sock":      "/run/containerd.sock",
	} {
		if got, err := SocketPath(in); err != nil || got != want {
			t.Errorf("SocketPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"tcp://127.0.0.1:1234", "unix://relative.sock", "relative.sock", "", "npipe:////./pipe/containerd"} {
		if got, err := SocketPath(bad); err == nil {
			t.Errorf("SocketPath(%q) = %q, want an error", bad, got)
		}
	}
}

func TestCRIMapsContainersAndImages(t *testing.T) {
	img := fakecri.WithSize(&runtimeapi.Image{Id: id("1"), RepoTags: []string{"rancher/a:1"}, RepoDigests: []string{"docker.io/rancher/a@" + digest("d")}, Pinned: true}, 42)
	ctr := &runtimeapi.Container{Id: "c1", ImageRef: id("1"), ImageId: id("2"), Image: &runtimeapi.ImageSpec{Image: "rancher/a:1"}, State: runtimeapi.ContainerState_CONTAINER_UNKNOWN}
	_, c := startNode(t, node{images: []*runtimeapi.Image{img}, containers: []*runtimeapi.Container{ctr}})
	images, err := c.ListImages(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := []Image{{ID: id("1"), RepoTags: []string{"rancher/a:1"}, RepoDigests: []string{"docker.io/rancher/a@" + digest("d")}, Size: 42, Pinned: true}}; !reflect.DeepEqual(images, want) {
		t.Errorf("ListImages = %+v, want %+v", images, want)
	}
	containers, err := c.ListContainers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := []Container{{ID: "c1", ImageRef: id("1"), ImageID: id("2"), Image: "rancher/a:1"}}; !reflect.DeepEqual(containers, want) {
		t.Errorf("ListContainers = %+v, want %+v", containers, want)
	}
	if v := c.Version(); v != "fakecri v0.0.0" {
		t.Errorf("Version = %q", v)
	}
}

// sandbox is a scripted sandbox in the given state with containerd's
// verbose info for image (none when image is empty).
func sandbox(sid, image string, state runtimeapi.PodSandboxState) fakecri.Sandbox {
	sb := fakecri.Sandbox{Sandbox: &runtimeapi.PodSandbox{Id: sid, State: state, Metadata: &runtimeapi.PodSandboxMetadata{Name: sid, Namespace: "kube-system", Uid: sid}}}
	if image != "" {
		sb.Info = fakecri.ContainerdSandboxInfo(image)
	}
	return sb
}

// TestRunKeepsSandboxImages is the upgrade case on a runtime that pins
// nothing (containerd 1.6): the node still runs pods started from the
// previous version's pause image, the runtime is configured with the new
// one, and the plan names both.
func TestRunKeepsSandboxImages(t *testing.T) {
	oldPause := criImage("1", 100, "registry.k8s.io/pause:3.6")
	newPause := criImage("2", 200, "registry.k8s.io/pause:3.10")
	stoppedPause := criImage("3", 300, "docker.io/rancher/mirrored-pause:3.5")
	unusedPause := criImage("4", 400, "registry.k8s.io/pause:3.2")
	other := criImage("5", 500, "docker.io/rancher/x:1")
	srv, c := startNode(t, node{images: []*runtimeapi.Image{oldPause, newPause, stoppedPause, unusedPause, other}})
	srv.SetStatusInfo(fakecri.ContainerdStatusInfo("registry.k8s.io/pause:3.10"))
	srv.SetSandboxes(
		sandbox("s-old", "registry.k8s.io/pause:3.6", runtimeapi.PodSandboxState_SANDBOX_READY),
		sandbox("s-stopped", "rancher/mirrored-pause:3.5", runtimeapi.PodSandboxState_SANDBOX_NOTREADY),
		sandbox("s-new", "", runtimeapi.PodSandboxState_SANDBOX_READY), // no verbose info: the configured image
	)

	rep, err := Run(testContext(t), c, mustPlan(t,
		"registry.k8s.io/pause:3.6", "registry.k8s.io/pause:3.10", "docker.io/rancher/mirrored-pause:3.5",
		"registry.k8s.io/pause:3.2", "docker.io/rancher/x:1",
	), DefaultOptions())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	assertNeverRemoved(t, srv, oldPause, newPause, stoppedPause)
	if got, want := srv.ImageIDs(), []string{oldPause.Id, newPause.Id, stoppedPause.Id}; !reflect.DeepEqual(got, want) {
		t.Errorf("images left = %v, want the three sandbox images", got)
	}
	if f := srv.SandboxFilters(); len(f) != 1 || f[0] != nil {
		t.Errorf("ListPodSandbox filters = %v, want one call without a filter (all states)", f)
	}
	if got, want := srv.SandboxStatusCalls(), []string{"s-old verbose", "s-stopped verbose", "s-new verbose"}; !reflect.DeepEqual(got, want) {
		t.Errorf("PodSandboxStatus calls = %v, want one verbose call per sandbox %v", got, want)
	}
	if rep.SandboxImage != "registry.k8s.io/pause:3.10" {
		t.Errorf("report's SandboxImage = %q, want the configured one", rep.SandboxImage)
	}
	type line struct {
		ref    string
		action Action
		reason report.Reason
		detail string
	}
	var got []line
	for _, e := range rep.Images {
		got = append(got, line{e.Ref, e.Action, e.Reason, e.Detail})
	}
	want := []line{
		{"docker.io/rancher/mirrored-pause:3.5", ActionSkipped, report.ReasonInUse, "used by pod sandbox s-stopped"},
		{"docker.io/rancher/x:1", ActionRemoved, "", ""},
		{"registry.k8s.io/pause:3.10", ActionSkipped, report.ReasonPinned, "the runtime's configured sandbox image (registry.k8s.io/pause:3.10), which new pods need"},
		{"registry.k8s.io/pause:3.2", ActionRemoved, "", ""},
		{"registry.k8s.io/pause:3.6", ActionSkipped, report.ReasonInUse, "used by pod sandbox s-old"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report lines:\n got %+v\nwant %+v", got, want)
	}
	if r := rep.Result; r.Removed != 2 || r.Skipped[report.ReasonInUse] != 2 || r.Skipped[report.ReasonPinned] != 1 || r.BytesReclaimed != 400+500 {
		t.Errorf("Result = %+v, want 2 removed, 2 in use, 1 pinned", r)
	}
}

func TestCRIListSandboxes(t *testing.T) {
	t.Run("containerd", func(t *testing.T) {
		srv, c := startNode(t, node{})
		srv.SetStatusInfo(fakecri.ContainerdStatusInfo("registry.k8s.io/pause:3.6"))
		srv.SetSandboxes(
			sandbox("s1", "registry.k8s.io/pause:3.6", runtimeapi.PodSandboxState_SANDBOX_READY),
			sandbox("s2", "docker.io/rancher/mirrored-pause:3.5", runtimeapi.PodSandboxState_SANDBOX_NOTREADY),
		)
		got, err := c.ListSandboxes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := Sandboxes{ConfiguredImage: "registry.k8s.io/pause:3.6", List: []Sandbox{{ID: "s1", Image: "registry.k8s.io/pause:3.6"}, {ID: "s2", Image: "docker.io/rancher/mirrored-pause:3.5"}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ListSandboxes = %+v, want %+v", got, want)
		}
	})

	t.Run("a runtime that reports neither", func(t *testing.T) {
		srv, c := startNode(t, node{})
		srv.SetSandboxes(sandbox("s1", "", runtimeapi.PodSandboxState_SANDBOX_READY))
		got, err := c.ListSandboxes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := (Sandboxes{List: []Sandbox{{ID: "s1"}}}); !reflect.DeepEqual(got, want) {
			t.Errorf("ListSandboxes = %+v, want %+v", got, want)
		}
	})

	t.Run("info of other shapes is ignored", func(t *testing.T) {
		srv, c := startNode(t, node{})
		srv.SetStatusInfo(map[string]string{"config": `{"sandboxImage": 3}`, "golang": `"go1.22"`})
		srv.SetSandboxes(
			fakecri.Sandbox{Sandbox: &runtimeapi.PodSandbox{Id: "s1"}, Info: map[string]string{"info": "not json"}},
			fakecri.Sandbox{Sandbox: &runtimeapi.PodSandbox{Id: "s2"}, Info: map[string]string{"info": `["image"]`}},
			fakecri.Sandbox{Sandbox: &runtimeapi.PodSandbox{Id: "s3"}, Info: map[string]string{"image": "registry.k8s.io/pause:3.6"}},
			fakecri.Sandbox{Sandbox: &runtimeapi.PodSandbox{Id: "s4"}, Info: map[string]string{"info": `{"image": null, "pid": 1}`}},
		)
		got, err := c.ListSandboxes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := (Sandboxes{List: []Sandbox{{ID: "s1"}, {ID: "s2"}, {ID: "s3"}, {ID: "s4"}}}); !reflect.DeepEqual(got, want) {
			t.Errorf("ListSandboxes = %+v, want %+v", got, want)
		}
	})

	t.Run("a sandbox removed since listed is left out", func(t *testing.T) {
		srv, c := startNode(t, node{})
		srv.SetSandboxes(
			sandbox("gone", "registry.k8s.io/pause:3.6", runtimeapi.PodSandboxState_SANDBOX_NOTREADY),
			sandbox("s1", "registry.k8s.io/pause:3.6", runtimeapi.PodSandboxState_SANDBOX_READY),
		)
		srv.FailSandboxStatus("gone", status.Error(codes.NotFound, `an error occurred when try to find sandbox "gone": not found`))
		got, err := c.ListSandboxes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := (Sandboxes{List: []Sandbox{{ID: "s1", Image: "registry.k8s.io/pause:3.6"}}}); !reflect.DeepEqual(got, want) {
			t.Errorf("ListSandboxes = %+v, want %+v", got, want)
		}
	})

	t.Run("a sandbox whose status fails fails the listing, and Run removes nothing", func(t *testing.T) {
		img := criImage("1", 10, "registry.k8s.io/pause:3.6")
		srv, c := startNode(t, node{images: []*runtimeapi.Image{img}})
		srv.SetSandboxes(sandbox("s1", "registry.k8s.io/pause:3.6", runtimeapi.PodSandboxState_SANDBOX_READY))
		srv.FailSandboxStatus("s1", errors.New("boom"))
		_, err := c.ListSandboxes(t.Context())
		if err == nil || !strings.Contains(err.Error(), "PodSandboxStatus of s1") || !strings.Contains(err.Error(), "boom") {
			t.Errorf("ListSandboxes error = %v, want one naming the sandbox and the runtime's error", err)
		}
		_, err = Run(testContext(t), c, mustPlan(t, "registry.k8s.io/pause:3.6"), DefaultOptions())
		if err == nil || !strings.Contains(err.Error(), "list sandboxes") {
			t.Errorf("Run error = %v, want the listing error", err)
		}
		if calls := srv.RemoveCalls(); len(calls) != 0 {
			t.Errorf("RemoveImage called after a failed listing: %v", calls)
		}
	})
}

func TestRunWarnsWhenSandboxImagesAreUnknown(t *testing.T) {
	srv, c := startNode(t, node{images: []*runtimeapi.Image{criImage("1", 10, "registry.k8s.io/pause:3.6")}})
	srv.SetSandboxes(sandbox("s1", "", runtimeapi.PodSandboxState_SANDBOX_READY), sandbox("s2", "", runtimeapi.PodSandboxState_SANDBOX_READY))
	var logs logLines
	if _, err := Run(klog.NewContext(t.Context(), logs.logger()), c, nil, DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	if got := logs.get(); len(got) != 1 || !strings.Contains(got[0], "Warning") || !strings.Contains(got[0], `"count"=2`) {
		t.Errorf("log lines %q, want one warning counting the 2 sandboxes", got)
	}
}
