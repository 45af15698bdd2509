package cleanup_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// podLists counts the LIST requests for pods the fake clientset served.
func podLists(f flow) int {
	n := 0
	for _, a := range f.Kube.Actions() {
		if a.GetVerb() == "list" && a.GetResource().Resource == "pods" {
			n++
		}
	}
	return n
}

// The summary reads every node's result from one LIST of the run's pods,
// however many nodes there are (one LIST per Job spent one API token per
// node at once), and still gives each node its own Job's result.
func TestSummaryListsPodsOnce(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c", "node-d", "node-e"}
	f := newRemovalFixture(t, 1, nodes)
	f.SyncRemoval()
	removed := map[string]int{}
	for i, n := range nodes {
		r := nodeResult
		r.Removed = i + 1
		removed[n] = r.Removed
		f.FinishJob(n, true, r)
	}
	before := podLists(f)
	f.SyncRemoval()
	if f.State() != cleanup.StateSucceeded {
		t.Fatalf("state = %s, want Succeeded: %s", f.State(), f.Annotations()[cleanup.MessageAnnotation])
	}
	if n := podLists(f) - before; n != 1 {
		t.Errorf("the summary of %d nodes listed pods %d times, want once", len(nodes), n)
	}
	for _, n := range f.Summary().Nodes {
		if n.Result == nil || n.Result.Removed != removed[n.Node] {
			t.Errorf("node %s: result %+v, want its own Job's (removed %d)", n.Node, n.Result, removed[n.Node])
		}
	}
}

// A LIST of the pods that fails is not a summary without results: a
// transient error is returned for the queue to retry, the Upgrade stays
// Removing, and the next sync summarizes; a refusal no retry mends fails
// the removal, naming it.
func TestSummaryPodListFailure(t *testing.T) {
	for _, tt := range []struct {
		name      string
		err       error
		wantState cleanup.State
	}{
		{"transient", errors.New("connection reset by peer"), cleanup.StateRemoving},
		{"forbidden", apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("no RBAC rule")), cleanup.StateFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var failing atomic.Bool
			f := newRemovalFixture(t, 1, []string{"node-a", "node-b"},
				cleanuptest.WithKubeReactor("list", "pods", func(clienttesting.Action) (bool, runtime.Object, error) {
					if failing.Load() {
						return true, nil, tt.err
					}
					return false, nil, nil
				}))
			f.SyncRemoval()
			f.FinishJob("node-a", true, nodeResult)
			f.FinishJob("node-b", true, nodeResult)
			failing.Store(true)
			f.Settle()
			if err := f.SettleRemoval(); err != nil {
				t.Fatal(err)
			}
			err := f.Sync(f.Key)
			if got := f.State(); got != tt.wantState {
				t.Fatalf("state = %s after the pod LIST failed (%v), want %s; sync: %v", got, tt.err, tt.wantState, err)
			}
			if tt.wantState == cleanup.StateRemoving {
				if err == nil || !strings.Contains(err.Error(), "list the pods of the removal Jobs") {
					t.Errorf("sync = %v, want the LIST's error for the queue to retry", err)
				}
				failing.Store(false)
				f.SyncRemoval()
				if s := f.Summary(); f.State() != cleanup.StateSucceeded || s.Total.Removed != 2*nodeResult.Removed {
					t.Errorf("after the retry: state %s, summary %+v; want Succeeded with both nodes' results", f.State(), s)
				}
				return
			}
			f.WantFailed(cleanup.PhaseRemoval, "list the pods of the removal Jobs", "forbidden")
		})
	}
}
