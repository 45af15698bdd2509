package cleanup_test

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// Fifth adversarial round over the metrics.
//
// README, "Metrics": upgrade_image_cleanup_ready_to_first_request_seconds
// is "from the gate seeing the repo's endpoint become Ready to the first
// list request, once per Ready phase" (and "Planning early": "once per
// Ready phase, whether the upgrade runs or has completed").
//
// Minimal input: the repo goes Ready once; the first fetch succeeds but
// the API server answers the plan ConfigMap's create with a transient 500;
// the retry fetches again and writes the plan. One Ready phase.
//
// Expected: one sample (1 s, Ready to the first request).
// Actual: two samples: the retry's request, 2 s after Ready, is timed
// as a "first request" too.
// Cause: fetchAndPlan calls memory.forget after a successful fetch, which
// resets the Ready phase's "timed" mark before the plan is written; a
// write that fails then leaves the phase untimed for the next attempt.
func TestAdversary5ReadyToFirstRequestTimedTwiceInOneReadyPhase(t *testing.T) {
	reg := prometheus.NewRegistry()
	creates := 0
	f := newFixture(t, objects(upgrade(), false), cleanuptest.WithRegistry(reg),
		cleanuptest.WithKubeReactor("create", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
			creates++
			if creates == 1 {
				return true, nil, apierrors.NewInternalError(errors.New("etcd leader changed"))
			}
			return false, nil, nil
		}))
	f.WaitRepoReady(false)
	f.next() // WaitingForRepo
	f.SetRepoReady(true)
	f.Clock.Step(time.Second)
	f.next() // fetch, the plan's create refused with a 500: retry
	f.next() // fetch again, plan written
	if f.State() != cleanup.StatePlanned {
		t.Fatalf("setup: state = %s (%s), want Planned", f.State(), f.Annotations()[cleanup.MessageAnnotation])
	}
	if f.RepoEpoch() != 1 {
		t.Fatalf("setup: %d Ready phases, want 1", f.RepoEpoch())
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "upgrade_image_cleanup_ready_to_first_request_seconds" {
			if n := mf.GetMetric()[0].GetHistogram().GetSampleCount(); n != 1 {
				t.Errorf("ready→first request: %d samples in one Ready phase, want 1", n)
			}
			return
		}
	}
	t.Error("upgrade_image_cleanup_ready_to_first_request_seconds is not exported")
}
