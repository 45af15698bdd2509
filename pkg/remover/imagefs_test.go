package remover

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/fakecri"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// fsNode is a node for the measured-space tests: two images the plan
// removes (100 and 200 bytes), one in use it keeps (400 bytes), on image
// filesystems using 10000 bytes, with timestamps by a fake clock the test
// shares with Run.
type fsNode struct {
	srv  *fakecri.Server
	cri  *CRI
	fc   *clocktesting.FakeClock
	plan []string
	used *runtimeapi.Image
}

const fsUsed = 10000

func startFsNode(t *testing.T) fsNode {
	t.Helper()
	a := criImage("1", 100, "docker.io/rancher/a:1")
	b := criImage("2", 200, "docker.io/rancher/b:1")
	used := criImage("3", 400, "docker.io/rancher/used:1")
	srv, c := startNode(t, node{
		images:     []*runtimeapi.Image{a, b, used},
		containers: []*runtimeapi.Container{running("c1", used.Id, used.Id, runtimeapi.ContainerState_CONTAINER_RUNNING)},
	})
	fc := clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	srv.SetClock(fc)
	srv.SetImageFsUsage(fsUsed)
	return fsNode{srv: srv, cri: c, fc: fc, plan: []string{"docker.io/rancher/a:1", "docker.io/rancher/b:1", "docker.io/rancher/used:1"}, used: used}
}

// lagging makes the node's ImageFsInfo answer a figure a second old, taken
// before anything is removed, until its refreshEvery-th call (0: never).
func (n fsNode) lagging(refreshEvery int) {
	n.srv.LagImageFs(refreshEvery)
	n.fc.Step(time.Second)
}

// clockStep is how far run moves the clock each time Run waits on it: a
// divisor of imageFsPollInterval and of the waits the tests give, so that
// the clock never passes a timer's time.
const clockStep = 100 * time.Millisecond

// run runs Run on the node with opts, its clock the node's fake one, which
// it steps by clockStep whenever Run waits on it, until Run returns. It
// returns Run's answer and how far the clock moved: the test waits for Run,
// never for time.
func (n fsNode) run(t *testing.T, ctx context.Context, rt Runtime, opts Options) (Report, time.Duration, error) {
	t.Helper()
	opts.Clock = n.fc
	start := n.fc.Now()
	type answer struct {
		rep Report
		err error
	}
	done := make(chan answer, 1)
	go func() {
		rep, err := Run(ctx, rt, mustPlan(t, n.plan...), opts)
		done <- answer{rep, err}
	}()
	for {
		var a *answer
		err := wait.PollUntilContextTimeout(t.Context(), time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			select {
			case got := <-done:
				a = &got
				return true, nil
			default:
				return n.fc.HasWaiters(), nil
			}
		})
		if err != nil {
			t.Fatalf("Run neither returned nor waited on its clock: %v", err)
		}
		if a != nil {
			return a.rep, n.fc.Since(start), a.err
		}
		n.fc.Step(clockStep)
	}
}

func TestRunMeasuresImageFs(t *testing.T) {
	removed := report.Result{Removed: 2, BytesReclaimed: 300, Skipped: map[report.Reason]int{report.ReasonInUse: 1}}
	with := func(r report.Result, fs report.ImageFs) report.Result {
		r.ImageFs = &fs
		return r
	}
	cases := []struct {
		name string
		// lag: the node's figure lags (refreshing every lag-th call, or
		// never when 0); -1: it is current at every call.
		lag    int
		wait   time.Duration
		dryRun bool
		want   report.Result
		// calls is how many ImageFsInfo calls Run makes; waited how far
		// its clock moved.
		calls  int
		waited time.Duration
	}{
		{name: "the figure is current", lag: -1, wait: DefaultImageFsWait,
			want: with(removed, report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed - 300}), calls: 2},
		{name: "the figure refreshes on the third call: Run waits for it", lag: 3, wait: DefaultImageFsWait,
			want: with(removed, report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed - 300}), calls: 3, waited: imageFsPollInterval},
		{name: "the figure never refreshes: the last one, stale, after the whole wait", lag: 0, wait: DefaultImageFsWait,
			want:  with(removed, report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed, Stale: true}),
			calls: 1 + 1 + int(DefaultImageFsWait/imageFsPollInterval), waited: DefaultImageFsWait},
		{name: "a wait that is not a whole number of polls ends on time", lag: 0, wait: 2500 * time.Millisecond,
			want:  with(removed, report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed, Stale: true}),
			calls: 1 + 4, waited: 2500 * time.Millisecond},
		{name: "no wait: the figure the runtime has", lag: 0, wait: 0,
			want: with(removed, report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed, Stale: true}), calls: 2},
		{name: "dry run: measured once, after = before", lag: -1, wait: DefaultImageFsWait, dryRun: true,
			want:  report.Result{Skipped: map[report.Reason]int{report.ReasonInUse: 1}, ImageFs: &report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed}},
			calls: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := startFsNode(t)
			if tc.lag >= 0 {
				n.lagging(tc.lag)
			}
			opts := DefaultOptions()
			opts.ImageFsWait, opts.DryRun = tc.wait, tc.dryRun
			rep, waited, err := n.run(t, testContext(t), n.cri, opts)
			if err != nil {
				t.Fatal(err)
			}
			assertNeverRemoved(t, n.srv, n.used)
			if !reflect.DeepEqual(rep.Result, tc.want) {
				t.Errorf("Result = %+v, imageFs %+v; want %+v, imageFs %+v", rep.Result, rep.Result.ImageFs, tc.want, tc.want.ImageFs)
			}
			if got := n.srv.ImageFsInfoCalls(); got != tc.calls {
				t.Errorf("ImageFsInfo calls = %d, want %d", got, tc.calls)
			}
			if waited != tc.waited {
				t.Errorf("Run waited %v by its clock, want %v", waited, tc.waited)
			}
		})
	}
}

func TestRunImageFsWithNothingToRemoveAsksOnce(t *testing.T) {
	n := startFsNode(t)
	n.plan = []string{"docker.io/rancher/used:1", "docker.io/rancher/missing:1"}
	rep, _, err := n.run(t, testContext(t), n.cri, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if fs := rep.Result.ImageFs; fs == nil || *fs != (report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed}) || n.srv.ImageFsInfoCalls() != 1 {
		t.Errorf("ImageFs = %+v after %d calls, want %d before and after from one call", fs, n.srv.ImageFsInfoCalls(), fsUsed)
	}
}

// hideImageFs is a Runtime that has no ImageFsInfo, as one written before
// it: embedding the interface hides CRI's method.
type hideImageFs struct{ Runtime }

// failImageFsAfterRemove makes the node's ImageFsInfo fail from the first
// removal on.
type failImageFsAfterRemove struct {
	*CRI
	srv *fakecri.Server
	err error
}

func (f failImageFsAfterRemove) RemoveImage(ctx context.Context, id string) error {
	f.srv.FailImageFs(f.err)
	return f.CRI.RemoveImage(ctx, id)
}

// cancelAfterRemoveFs is cancelAfterRemove that keeps CRI's ImageFsInfo.
type cancelAfterRemoveFs struct {
	*CRI
	cancel context.CancelFunc
}

func (c cancelAfterRemoveFs) RemoveImage(ctx context.Context, id string) error {
	err := c.CRI.RemoveImage(ctx, id)
	c.cancel()
	return err
}

func TestRunImageFsUnmeasured(t *testing.T) {
	t.Run("a runtime without ImageFsInfo: no ImageFs, the run goes on", func(t *testing.T) {
		n := startFsNode(t)
		rep, _, err := n.run(t, testContext(t), hideImageFs{n.cri}, DefaultOptions())
		if err != nil || rep.Result.ImageFs != nil || rep.Result.Removed != 2 || n.srv.ImageFsInfoCalls() != 0 {
			t.Errorf("Run = %+v, %v; want 2 removed, no ImageFs, no ImageFsInfo call", rep.Result, err)
		}
	})
	t.Run("ImageFsInfo unimplemented: no ImageFs, the run goes on", func(t *testing.T) {
		srv, c := startNode(t, node{images: []*runtimeapi.Image{criImage("1", 100, "docker.io/rancher/a:1")}})
		rep, err := Run(testContext(t), c, mustPlan(t, "docker.io/rancher/a:1"), DefaultOptions())
		if err != nil || rep.Result.ImageFs != nil || rep.Result.Removed != 1 || srv.ImageFsInfoCalls() != 1 {
			t.Errorf("Run = %+v, %v after %d ImageFsInfo calls; want 1 removed, no ImageFs, one call", rep.Result, err, srv.ImageFsInfoCalls())
		}
	})
	t.Run("ImageFsInfo failing: no ImageFs, the run goes on", func(t *testing.T) {
		n := startFsNode(t)
		n.srv.FailImageFs(status.Error(codes.Internal, "boom"))
		rep, _, err := n.run(t, testContext(t), n.cri, DefaultOptions())
		if err != nil || rep.Result.ImageFs != nil || rep.Result.Removed != 2 || n.srv.ImageFsInfoCalls() != 1 {
			t.Errorf("Run = %+v, %v; want 2 removed, no ImageFs, one call", rep.Result, err)
		}
	})
	t.Run("ImageFsInfo failing after the removals: before, stale", func(t *testing.T) {
		n := startFsNode(t)
		rt := failImageFsAfterRemove{CRI: n.cri, srv: n.srv, err: status.Error(codes.Unavailable, "restarting")}
		rep, waited, err := n.run(t, testContext(t), rt, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		if fs := rep.Result.ImageFs; fs == nil || *fs != (report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed, Stale: true}) || waited != DefaultImageFsWait {
			t.Errorf("ImageFs = %+v after waiting %v, want the figure from before, stale, after the whole wait", fs, waited)
		}
	})
	t.Run("unimplemented after the removals: before, stale, at once", func(t *testing.T) {
		n := startFsNode(t)
		rt := failImageFsAfterRemove{CRI: n.cri, srv: n.srv, err: status.Error(codes.Unimplemented, "gone")}
		rep, waited, err := n.run(t, testContext(t), rt, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		if fs := rep.Result.ImageFs; fs == nil || *fs != (report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed, Stale: true}) || waited != 0 {
			t.Errorf("ImageFs = %+v after waiting %v, want the figure from before, stale, without waiting", fs, waited)
		}
	})
	t.Run("the run's context ended: one more call, no wait", func(t *testing.T) {
		n := startFsNode(t)
		n.lagging(0)
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		rep, waited, err := n.run(t, ctx, cancelAfterRemoveFs{CRI: n.cri, cancel: cancel}, oneAtATime(DefaultOptions()))
		if err != nil {
			t.Fatal(err)
		}
		if fs := rep.Result.ImageFs; fs == nil || *fs != (report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed, Stale: true}) || waited != 0 || n.srv.ImageFsInfoCalls() != 2 {
			t.Errorf("ImageFs = %+v after waiting %v and %d calls, want the lagging figure, stale, from one call after the removals", fs, waited, n.srv.ImageFsInfoCalls())
		}
		if rep.Result.Removed != 1 || rep.Result.Failed != 1 {
			t.Errorf("Result = %+v, want 1 removed and 1 not attempted", rep.Result)
		}
	})
}

func TestRunImageFsThreshold(t *testing.T) {
	below := func(threshold uint64) report.Result {
		return report.Result{BelowThreshold: true, Threshold: threshold, ImageFs: &report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed}}
	}
	cases := []struct {
		name      string
		threshold uint64
		dryRun    bool
		// unmeasured: the node's ImageFsInfo answers this; hide: the
		// Runtime has no ImageFsInfo.
		unmeasured error
		hide       bool
		want       report.Result
		// wantErr is what Run's error says; unsupported: it wraps
		// ErrImageFsUnsupported.
		wantErr     string
		unsupported bool
	}{
		{name: "below: nothing listed nor removed", threshold: fsUsed + 1, want: below(fsUsed + 1)},
		{name: "below, dry run", threshold: fsUsed + 1, dryRun: true, want: below(fsUsed + 1)},
		{name: "at the threshold: removes", threshold: fsUsed, want: report.Result{
			Removed: 2, BytesReclaimed: 300, Skipped: map[report.Reason]int{report.ReasonInUse: 1}, Threshold: fsUsed,
			ImageFs: &report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed - 300},
		}},
		{name: "above: removes", threshold: 1, want: report.Result{
			Removed: 2, BytesReclaimed: 300, Skipped: map[report.Reason]int{report.ReasonInUse: 1}, Threshold: 1,
			ImageFs: &report.ImageFs{UsedBefore: fsUsed, UsedAfter: fsUsed - 300},
		}},
		{name: "unimplemented: fails, removes nothing", threshold: 1, unmeasured: status.Error(codes.Unimplemented, "method ImageFsInfo not implemented"),
			wantErr: "cannot check the image filesystem threshold (1 bytes), so nothing is removed", unsupported: true},
		{name: "no ImageFsInfo: fails, removes nothing", threshold: 1, hide: true,
			wantErr: "the Runtime has no ImageFsInfo", unsupported: true},
		{name: "failing: fails, removes nothing", threshold: 1, unmeasured: status.Error(codes.Unavailable, "restarting"),
			wantErr: "restarting"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := startFsNode(t)
			var rt Runtime = n.cri
			if tc.hide {
				rt = hideImageFs{n.cri}
			}
			if tc.unmeasured != nil {
				n.srv.FailImageFs(tc.unmeasured)
			}
			var logs logLines
			ctx := klog.NewContext(t.Context(), logs.logger())
			opts := DefaultOptions()
			opts.ImageFsThreshold, opts.DryRun = tc.threshold, tc.dryRun
			rep, _, err := n.run(t, ctx, rt, opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, ErrImageFsUnsupported) != tc.unsupported {
					t.Errorf("Run error = %v, want one saying %q (ErrImageFsUnsupported: %t)", err, tc.wantErr, tc.unsupported)
				}
				if calls := n.srv.RemoveCalls(); len(calls) != 0 || len(n.srv.ContainerFilters()) != 0 {
					t.Errorf("RemoveImage calls %v, %d ListContainers calls; want the runtime not listed", calls, len(n.srv.ContainerFilters()))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertNeverRemoved(t, n.srv, n.used)
			if !reflect.DeepEqual(rep.Result, tc.want) {
				t.Errorf("Result = %+v, imageFs %+v; want %+v, imageFs %+v", rep.Result, rep.Result.ImageFs, tc.want, tc.want.ImageFs)
			}
			if !tc.want.BelowThreshold {
				return
			}
			if calls := n.srv.RemoveCalls(); len(calls) != 0 || len(n.srv.ContainerFilters()) != 0 || rep.Images == nil || len(rep.Images) != 0 || rep.DryRun != tc.dryRun {
				t.Errorf("RemoveImage calls %v, %d ListContainers calls, report %+v; want nothing listed nor removed, no images", calls, len(n.srv.ContainerFilters()), rep)
			}
			lines := logs.get()
			if len(lines) != 1 || !strings.Contains(lines[0], "below the threshold") ||
				!strings.Contains(lines[0], `"imageFsUsed"=10000`) || !strings.Contains(lines[0], `"imageFsThreshold"=10001`) {
				t.Errorf("log = %q, want one line saying so with both figures", lines)
			}
		})
	}
}

func TestImageFsUsage(t *testing.T) {
	fs := func(ts int64, used uint64) *runtimeapi.FilesystemUsage {
		return &runtimeapi.FilesystemUsage{Timestamp: ts, UsedBytes: &runtimeapi.UInt64Value{Value: used}}
	}
	cases := []struct {
		name string
		fss  []*runtimeapi.FilesystemUsage
		want ImageFsUsage
		ok   bool
	}{
		{"none", nil, ImageFsUsage{}, false},
		{"one", []*runtimeapi.FilesystemUsage{fs(5, 10)}, ImageFsUsage{UsedBytes: 10, CollectedAt: time.Unix(0, 5)}, true},
		{"two: the sum, at the oldest time", []*runtimeapi.FilesystemUsage{fs(7, 10), fs(5, 20)}, ImageFsUsage{UsedBytes: 30, CollectedAt: time.Unix(0, 5)}, true},
		{"one without a time: the time is unknown", []*runtimeapi.FilesystemUsage{fs(0, 10), fs(5, 20)}, ImageFsUsage{UsedBytes: 30}, true},
		{"the last without a time", []*runtimeapi.FilesystemUsage{fs(5, 10), fs(0, 20)}, ImageFsUsage{UsedBytes: 30}, true},
		{"no used bytes", []*runtimeapi.FilesystemUsage{{Timestamp: 5}}, ImageFsUsage{CollectedAt: time.Unix(0, 5)}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := imageFsUsage(tc.fss)
			if !got.CollectedAt.Equal(tc.want.CollectedAt) || got.UsedBytes != tc.want.UsedBytes || ok != tc.ok {
				t.Errorf("imageFsUsage = %+v, %t; want %+v, %t", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestCRIImageFsInfo(t *testing.T) {
	srv, c := startNode(t, node{})
	if _, err := c.ImageFsInfo(t.Context()); !errors.Is(err, ErrImageFsUnsupported) || !strings.Contains(err.Error(), "Unimplemented") {
		t.Errorf("ImageFsInfo of a runtime without it: %v, want ErrImageFsUnsupported with the runtime's answer", err)
	}
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	srv.SetClock(clocktesting.NewFakePassiveClock(at))
	srv.SetImageFsUsage(1234)
	got, err := c.ImageFsInfo(t.Context())
	if err != nil || got.UsedBytes != 1234 || !got.CollectedAt.Equal(at) {
		t.Errorf("ImageFsInfo = %+v, %v; want 1234 bytes at %v", got, err, at)
	}
	srv.FailImageFs(status.Error(codes.Unavailable, "restarting"))
	if _, err := c.ImageFsInfo(t.Context()); err == nil || errors.Is(err, ErrImageFsUnsupported) || !strings.Contains(err.Error(), "restarting") {
		t.Errorf("ImageFsInfo of a failing runtime: %v, want its error, not ErrImageFsUnsupported", err)
	}
}
