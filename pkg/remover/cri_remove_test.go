package remover

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/fakecri"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

func imageMount(image string) *runtimeapi.Mount {
	return &runtimeapi.Mount{ContainerPath: "/volume", Readonly: true, Image: &runtimeapi.ImageSpec{Image: image}}
}

func TestCRIListContainersReportsImageVolumes(t *testing.T) {
	vol := criImage("1", 10, "docker.io/rancher/data:1")
	other := criImage("2", 20, "docker.io/rancher/app:1")
	srv, c := startNode(t, node{
		images: []*runtimeapi.Image{vol, other},
		containers: []*runtimeapi.Container{
			running("c1", other.Id, other.Id, runtimeapi.ContainerState_CONTAINER_RUNNING),
			running("c2", other.Id, other.Id, runtimeapi.ContainerState_CONTAINER_EXITED),
		},
	})
	srv.SetMounts("c1", &runtimeapi.Mount{ContainerPath: "/etc/x", HostPath: "/etc/x"}, imageMount(vol.Id), imageMount("docker.io/rancher/data:1"))

	got, err := c.ListContainers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []Container{
		{ID: "c1", ImageRef: other.Id, Image: other.Id, ImageVolumes: []string{vol.Id, "docker.io/rancher/data:1"}},
		{ID: "c2", ImageRef: other.Id, Image: other.Id},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListContainers = %+v, want %+v", got, want)
	}
	if calls := srv.ContainerStatusCalls(); !reflect.DeepEqual(calls, []string{"c1", "c2"}) {
		t.Errorf("ContainerStatus calls = %v, want one per container", calls)
	}

	rep, err := Run(testContext(t), c, mustPlan(t, "docker.io/rancher/data:1"), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	assertNeverRemoved(t, srv, vol)
	if e := rep.Images[0]; e.Action != ActionSkipped || e.Reason != report.ReasonInUse || e.Detail != "mounted as an image volume by container c1" {
		t.Errorf("report entry = %+v, want in use, mounted by c1", e)
	}

	t.Run("a container gone since listed is left out", func(t *testing.T) {
		srv.FailContainerStatus("c2", status.Error(codes.NotFound, `an error occurred when try to find container "c2": not found`))
		got, err := c.ListContainers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != "c1" {
			t.Errorf("ListContainers = %+v, want only c1", got)
		}
	})
	t.Run("any other status error fails the listing", func(t *testing.T) {
		srv.FailContainerStatus("c2", errors.New("boom"))
		_, err := c.ListContainers(t.Context())
		if err == nil || !strings.Contains(err.Error(), "ContainerStatus of c2") || !strings.Contains(err.Error(), "boom") {
			t.Errorf("ListContainers error = %v, want one naming the container and the runtime's error", err)
		}
	})
}

func TestRunKeepsImagesOfTheCurrentList(t *testing.T) {
	foo := criImage("1", 10, "docker.io/rancher/foo:v1")
	bar := criImage("2", 20, "docker.io/rancher/bar:v1")
	srv, c := startNode(t, node{images: []*runtimeapi.Image{foo, bar}})
	opts := DefaultOptions()
	opts.Keep = mustPlan(t, "registry.rancher.com/rancher/foo:v1")
	rep, err := Run(testContext(t), c, mustPlan(t, "docker.io/rancher/foo:v1", "docker.io/rancher/bar:v1"), opts)
	if err != nil {
		t.Fatal(err)
	}
	assertNeverRemoved(t, srv, foo)
	want := report.Result{Removed: 1, BytesReclaimed: 20, Skipped: map[report.Reason]int{report.ReasonInCurrentList: 1}}
	if !reflect.DeepEqual(rep.Result, want) {
		t.Errorf("Result = %+v, want %+v", rep.Result, want)
	}
	if e := rep.Images[1]; e.Reason != report.ReasonInCurrentList || !strings.Contains(e.Detail, "registry.rancher.com/rancher/foo:v1") {
		t.Errorf("report entry = %+v, want in-current-list naming the kept reference", e)
	}
}

func deadline(msg string) error    { return status.Error(codes.DeadlineExceeded, msg) }
func unavailable(msg string) error { return status.Error(codes.Unavailable, msg) }

// TestRunRetriesSlowRemovals: one image that the runtime is slow to remove
// fails at most that image, after one retry, and the report says what is
// really gone by listing the images again.
func TestRunRetriesSlowRemovals(t *testing.T) {
	type step = fakecri.RemoveCall
	cases := []struct {
		name        string
		script      []step
		calls       int
		action      Action
		errContains string
		detail      string
	}{
		{name: "deadline exceeded once, then removed", script: []step{{Err: deadline("context deadline exceeded")}}, calls: 2, action: ActionRemoved},
		{name: "unavailable once, then removed", script: []step{{Err: unavailable("connection reset")}}, calls: 2, action: ActionRemoved},
		{name: "hangs past the per-call deadline once, then removed", script: []step{{Hang: true}}, calls: 2, action: ActionRemoved},
		{
			name: "deadline exceeded twice: failed after exactly one retry", script: []step{{Err: deadline("slow disk")}, {Err: deadline("slow disk")}},
			calls: 2, action: ActionFailed, errContains: "slow disk",
		},
		{
			name: "other errors are not retried", script: []step{{Err: status.Error(codes.FailedPrecondition, "image is being used by a snapshot")}},
			calls: 1, action: ActionFailed, errContains: "being used by a snapshot",
		},
		{
			name: "an error, yet the image is gone: removed", script: []step{{Err: status.Error(codes.Internal, "lease expired"), Removes: true}},
			calls: 1, action: ActionRemoved, detail: "no longer listed",
		},
		{
			name: "success, yet the image is still listed: failed", script: []step{{}},
			calls: 1, action: ActionFailed, errContains: "still listed after RemoveImage",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			slow := criImage("1", 10, "docker.io/rancher/slow:1")
			fast := criImage("2", 20, "docker.io/rancher/fast:1")
			srv, c := startNode(t, node{images: []*runtimeapi.Image{slow, fast}})
			srv.ScriptRemove(slow.Id, tc.script...)
			opts := DefaultOptions()
			// Only the hanging call waits this long.
			opts.RemoveTimeout = 100 * time.Millisecond

			rep, err := Run(testContext(t), c, mustPlan(t, "docker.io/rancher/slow:1", "docker.io/rancher/fast:1"), opts)
			if err != nil {
				t.Fatal(err)
			}
			var slowCalls int
			for _, call := range srv.RemoveCalls() {
				if call == slow.Id {
					slowCalls++
				}
			}
			if slowCalls != tc.calls {
				t.Errorf("RemoveImage of the slow image called %d times, want %d", slowCalls, tc.calls)
			}
			var e ImageReport
			for _, e = range rep.Images {
				if e.ImageID == slow.Id {
					break
				}
			}
			if e.Action != tc.action || !strings.Contains(e.Error, tc.errContains) || !strings.Contains(e.Detail, tc.detail) {
				t.Errorf("slow image's entry = %+v, want %s with error %q and detail %q", e, tc.action, tc.errContains, tc.detail)
			}
			r := rep.Result
			if tc.action == ActionRemoved {
				if r.Removed != 2 || r.Failed != 0 || r.BytesReclaimed != 30 || len(r.FailedImages) != 0 || e.Error != "" {
					t.Errorf("Result = %+v, entry %+v; want both removed", r, e)
				}
			} else if r.Removed != 1 || r.Failed != 1 || r.BytesReclaimed != 20 || len(r.FailedImages) != 1 || !strings.Contains(r.FailedImages[0], tc.errContains) {
				t.Errorf("Result = %+v; want fast removed, slow failed with %q", r, tc.errContains)
			}
		})
	}
}

// giveUp makes the run's context end during the RemoveImage call of one
// image, as the run's deadline passing would, and has the call fail with
// DeadlineExceeded, as a runtime answers then.
type giveUp struct {
	Runtime
	id     string
	cancel context.CancelFunc
	// removeFirst makes the runtime remove the image before the run's
	// time runs out: the call is cut short, the removal is done.
	removeFirst bool
}

func (g giveUp) RemoveImage(ctx context.Context, id string) error {
	if id != g.id {
		return g.Runtime.RemoveImage(ctx, id)
	}
	if g.removeFirst {
		if err := g.Runtime.RemoveImage(ctx, id); err != nil {
			return err
		}
	}
	g.cancel()
	return status.Error(codes.DeadlineExceeded, "context deadline exceeded")
}

// TestRunRetriesOnlyWithinTheOverallTimeout: once the run's own time is up,
// a call that timed out is not tried again, and nothing else is tried.
func TestRunRetriesOnlyWithinTheOverallTimeout(t *testing.T) {
	slow := criImage("1", 10, "docker.io/rancher/slow:1")
	next := criImage("2", 20, "docker.io/rancher/t:1")
	plan := []string{"docker.io/rancher/slow:1", "docker.io/rancher/t:1"}

	t.Run("the run's context ends during the call", func(t *testing.T) {
		srv, c := startNode(t, node{images: []*runtimeapi.Image{slow, next}})
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		var calls []string
		rt := recordingRuntime{Runtime: giveUp{Runtime: c, id: slow.Id, cancel: cancel}, calls: &calls}
		rep, err := Run(ctx, rt, mustPlan(t, plan...), oneAtATime(DefaultOptions()))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(calls, []string{slow.Id}) || len(srv.RemoveCalls()) != 0 {
			t.Errorf("RemoveImage calls = %v, want the slow one once, not retried, and nothing after", calls)
		}
		if r := rep.Result; r.Removed != 0 || r.Failed != 2 || len(r.FailedImages) != 2 || !strings.Contains(r.FailedImages[1], "not attempted") {
			t.Errorf("Result = %+v, want both failed, the second not attempted", r)
		}
		// The images are listed again even though the run's context ended:
		// both are still there, so both stay failed.
		if rep.RecheckError != "" {
			t.Errorf("RecheckError = %q: the images must be listed again after the run's context ended", rep.RecheckError)
		}
	})

	// The runtime finished the removal, but the answer came after the
	// run's time was up: the listing afterwards still says it is gone.
	t.Run("the run's context ends after the runtime removed the image", func(t *testing.T) {
		_, c := startNode(t, node{images: []*runtimeapi.Image{slow, next}})
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		rep, err := Run(ctx, giveUp{Runtime: c, id: slow.Id, cancel: cancel, removeFirst: true}, mustPlan(t, plan...), oneAtATime(DefaultOptions()))
		if err != nil {
			t.Fatal(err)
		}
		if r := rep.Result; r.Removed != 1 || r.Failed != 1 || rep.RecheckError != "" {
			t.Errorf("Result = %+v (recheck error %q), want the slow image removed, the other not attempted", r, rep.RecheckError)
		}
	})

	t.Run("the run's deadline comes before the call's", func(t *testing.T) {
		srv, c := startNode(t, node{images: []*runtimeapi.Image{slow, next}})
		srv.ScriptRemove(slow.Id, fakecri.RemoveCall{Hang: true})
		// The call's own deadline is minutes away: the run's ends first.
		ctx, cancel := context.WithTimeout(testContext(t), 200*time.Millisecond)
		defer cancel()
		rep, err := Run(ctx, c, mustPlan(t, plan...), oneAtATime(DefaultOptions()))
		if err != nil {
			t.Fatal(err)
		}
		// The second image may or may not be tried: the runtime's side of
		// the deadline can pass a moment before the run's.
		if calls := srv.RemoveCalls(); len(calls) == 0 || calls[0] != slow.Id || slices.Contains(calls[1:], slow.Id) {
			t.Errorf("RemoveImage calls = %v, want the slow one once, not retried", calls)
		}
		// If it is tried, the runtime may remove it even though the answer
		// comes after the deadline; the report must say what the runtime
		// holds afterwards: failed while it is there, removed once gone.
		nextGone := !slices.Contains(srv.ImageIDs(), next.Id)
		want := report.Result{Failed: 2}
		if nextGone {
			want = report.Result{Removed: 1, Failed: 1, BytesReclaimed: imageSize(next)}
		}
		if r := rep.Result; r.Removed != want.Removed || r.Failed != want.Failed || r.BytesReclaimed != want.BytesReclaimed {
			t.Errorf("Result = %+v, want %+v (the second image gone from the runtime: %v); the slow one always failed", r, want, nextGone)
		}
		if !slices.Contains(srv.ImageIDs(), slow.Id) {
			t.Errorf("the slow image is gone from the runtime; its removal never returned")
		}
	})
}

// recordingRuntime records the images RemoveImage is called for.
type recordingRuntime struct {
	Runtime
	calls *[]string
}

func (r recordingRuntime) RemoveImage(ctx context.Context, id string) error {
	*r.calls = append(*r.calls, id)
	return r.Runtime.RemoveImage(ctx, id)
}

// timerLagContext is a context whose deadline has passed while its timer
// has not yet set Err: the moment in which gRPC already answers
// DeadlineExceeded for a call the run's deadline cut.
type timerLagContext struct {
	context.Context
	deadline time.Time
}

func (c timerLagContext) Deadline() (time.Time, bool) { return c.deadline, true }

// TestRemoveImageDoesNotRetryPastTheRunsDeadline: a removal cut by the run's
// deadline is neither retried nor followed by another, even in the moment
// before the context's timer fires; with time left it is retried once.
func TestRemoveImageDoesNotRetryPastTheRunsDeadline(t *testing.T) {
	cut := status.Error(codes.DeadlineExceeded, "context deadline exceeded")
	for _, tc := range []struct {
		name      string
		deadline  time.Duration // from now
		wantCalls int
	}{
		{name: "deadline passed, timer not yet fired", deadline: -time.Millisecond, wantCalls: 0},
		{name: "time left", deadline: time.Hour, wantCalls: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := timerLagContext{Context: testContext(t), deadline: time.Now().Add(tc.deadline)}
			var calls []string
			rt := cutRuntime{recordingRuntime: recordingRuntime{calls: &calls}, err: cut}
			r := removeImage(ctx, rt, id("1"), 0)
			if len(calls) != tc.wantCalls || r.err == nil {
				t.Errorf("RemoveImage calls = %d (error %v), want %d and an error", len(calls), r.err, tc.wantCalls)
			}
		})
	}
	t.Run("cut by the deadline it passed during the call", func(t *testing.T) {
		ctx := timerLagContext{Context: testContext(t), deadline: time.Now().Add(time.Hour)}
		var calls []string
		rt := cutRuntime{recordingRuntime: recordingRuntime{calls: &calls}, err: cut, after: func() { ctx.deadline = time.Now().Add(-time.Millisecond) }}
		r := removeImage(&ctx, rt, id("1"), 0)
		if len(calls) != 1 || r.retried != nil {
			t.Errorf("RemoveImage calls = %d (retried after %v), want 1: the run was out of time", len(calls), r.retried)
		}
	})
}

// cutRuntime records each RemoveImage and answers err; after runs once
// the call is made.
type cutRuntime struct {
	recordingRuntime
	err   error
	after func()
}

func (r cutRuntime) RemoveImage(ctx context.Context, id string) error {
	*r.calls = append(*r.calls, id)
	if r.after != nil {
		r.after()
	}
	return r.err
}
