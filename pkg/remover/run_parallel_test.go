package remover

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/fakecri"
)

// heldRuntime holds every RemoveImage call until the test releases one,
// and records what was in flight and in which order the calls came.
type heldRuntime struct {
	Runtime
	entered chan string   // receives each call's ID as it starts
	release chan struct{} // one value lets one held call go on

	mu          sync.Mutex
	inFlight    int
	maxInFlight int
	// calls is every call to the runtime in order: "list images", "list
	// containers", "list sandboxes", "remove <id>".
	calls []string
}

func newHeldRuntime(rt Runtime) *heldRuntime {
	return &heldRuntime{Runtime: rt, entered: make(chan string, 64), release: make(chan struct{})}
}

func (h *heldRuntime) record(call string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, call)
}

func (h *heldRuntime) ListImages(ctx context.Context) ([]Image, error) {
	h.record("list images")
	return h.Runtime.ListImages(ctx)
}

func (h *heldRuntime) ListContainers(ctx context.Context) ([]Container, error) {
	h.record("list containers")
	return h.Runtime.ListContainers(ctx)
}

func (h *heldRuntime) ListSandboxes(ctx context.Context) (Sandboxes, error) {
	h.record("list sandboxes")
	return h.Runtime.ListSandboxes(ctx)
}

func (h *heldRuntime) RemoveImage(ctx context.Context, id string) error {
	h.mu.Lock()
	h.calls = append(h.calls, "remove "+id)
	h.inFlight++
	h.maxInFlight = max(h.maxInFlight, h.inFlight)
	h.mu.Unlock()
	h.entered <- id
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	h.mu.Lock()
	h.inFlight--
	h.mu.Unlock()
	return h.Runtime.RemoveImage(ctx, id)
}

// TestRunKeepsParallelRemovalsInFlight holds every call until the test
// lets one go: with the bound reached, the next call may start only after
// one ends, so the most in flight at once is exactly the bound.
func TestRunKeepsParallelRemovalsInFlight(t *testing.T) {
	for _, parallel := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("%d in flight", parallel), func(t *testing.T) {
			var images []*runtimeapi.Image
			var plan []string
			for i := range 7 {
				tag := fmt.Sprintf("docker.io/rancher/p%d:1", i)
				images = append(images, criImage(fmt.Sprint(i+1), 10, tag))
				plan = append(plan, tag)
			}
			srv, c := startNode(t, node{images: images})
			rt := newHeldRuntime(c)
			opts := DefaultOptions()
			opts.ParallelRemovals = parallel

			type result struct {
				rep Report
				err error
			}
			done := make(chan result, 1)
			go func() {
				rep, err := Run(testContext(t), rt, mustPlan(t, plan...), opts)
				done <- result{rep, err}
			}()
			// Wait until the bound (or every image) is in flight, then let
			// the calls go one by one, each time waiting for the next to
			// start while the others are still held.
			want := min(parallel, len(images))
			for range want {
				<-rt.entered
			}
			for started := want; started < len(images); started++ {
				rt.release <- struct{}{}
				<-rt.entered
			}
			for range want {
				rt.release <- struct{}{}
			}
			res := <-done
			if res.err != nil {
				t.Fatal(res.err)
			}
			if rt.maxInFlight != want {
				t.Errorf("at most %d RemoveImage calls were in flight, want %d", rt.maxInFlight, want)
			}
			if res.rep.Result.Removed != len(images) || res.rep.Result.Failed != 0 || len(srv.ImageIDs()) != 0 {
				t.Errorf("Result = %+v, images left %v; want all %d removed", res.rep.Result, srv.ImageIDs(), len(images))
			}
		})
	}
}

// TestRunDecidesEverythingBeforeRemoving: in flight together or not, no
// removal starts before the one listing every decision is made on, and
// nothing is listed again until the last removal has ended.
func TestRunDecidesEverythingBeforeRemoving(t *testing.T) {
	a, b, c3, _, n := threeAndAUsedOne()
	_, c := startNode(t, n)
	rt := newHeldRuntime(c)
	close(rt.release) // nothing held: only the order is checked
	if _, err := Run(testContext(t), rt, mustPlan(t, "rancher/a:1", "rancher/b:1", "rancher/c:1", "rancher/used:1"), DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	calls := rt.calls
	if len(calls) != 7 {
		t.Fatalf("runtime calls = %q, want 3 listings, 3 removals, 1 listing", calls)
	}
	if want := []string{"list images", "list containers", "list sandboxes"}; !reflect.DeepEqual(calls[:3], want) {
		t.Errorf("first calls = %q, want %q before any removal", calls[:3], want)
	}
	if got, want := slices.Sorted(slices.Values(calls[3:6])), []string{"remove " + a.Id, "remove " + b.Id, "remove " + c3.Id}; !reflect.DeepEqual(got, want) {
		t.Errorf("removals = %q, want %q (never the image in use)", got, want)
	}
	if calls[6] != "list images" {
		t.Errorf("last call = %q, want the listing that checks the removals", calls[6])
	}
}

// TestRunReportsTheSameWhateverParallelRemovals: the report of a node with
// a removed, a failed, a retried, a kept and a missing image is the same
// one at a time and with any number in flight.
func TestRunReportsTheSameWhateverParallelRemovals(t *testing.T) {
	images := func() []*runtimeapi.Image {
		return []*runtimeapi.Image{
			criImage("1", 10, "docker.io/rancher/a:1"),
			criImage("2", 20, "docker.io/rancher/b:1"),
			criImage("3", 30, "docker.io/rancher/c:1", "docker.io/rancher/c:1.0"),
			criImage("4", 40, "docker.io/rancher/used:1"),
			criImage("5", 50, "docker.io/rancher/e:1"),
		}
	}
	plan := []string{"rancher/a:1", "rancher/b:1", "rancher/c:1", "rancher/c:1.0", "rancher/used:1", "rancher/e:1", "rancher/missing:1"}
	run := func(t *testing.T, parallel int) Report {
		imgs := images()
		srv, c := startNode(t, node{
			images:     imgs,
			containers: []*runtimeapi.Container{running("c1", imgs[3].Id, imgs[3].Id, runtimeapi.ContainerState_CONTAINER_RUNNING)},
		})
		srv.FailRemove(imgs[1].Id, status.Error(codes.FailedPrecondition, "image is being used by a snapshot"))
		srv.ScriptRemove(imgs[4].Id, fakecri.RemoveCall{Err: status.Error(codes.Unavailable, "restarting")}, fakecri.RemoveCall{Removes: true})
		opts := DefaultOptions()
		opts.ParallelRemovals = parallel
		rep, err := Run(testContext(t), c, mustPlan(t, plan...), opts)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	want := run(t, 1)
	if r := want.Result; r.Removed != 3 || r.Failed != 1 || r.Skipped["in-use"] != 1 || r.Skipped["not-present"] != 1 {
		t.Fatalf("one at a time: Result = %+v, want 3 removed, 1 failed, 1 in use, 1 not present", r)
	}
	if i := slices.IndexFunc(want.Images, func(e ImageReport) bool { return e.Ref == "docker.io/rancher/e:1" }); i < 0 || want.Images[i].Action != ActionRemoved {
		t.Fatalf("one at a time: entries %+v, want e removed on its second call", want.Images)
	}
	for _, parallel := range []int{2, 4, 8, MaxParallelRemovals} {
		if got := run(t, parallel); !reflect.DeepEqual(got, want) {
			t.Errorf("%d in flight: report\n%+v\nwant (one at a time)\n%+v", parallel, got, want)
		}
	}
}
