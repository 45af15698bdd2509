package cleanup_test

import (
	"maps"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest/fixture"
)

// The flow tests look at one upgrade, the builders' default.
const (
	testNS      = cleanuptest.Namespace
	testUpgrade = cleanuptest.UpgradeName
)

var testKey = cache.ObjectName{Namespace: testNS, Name: testUpgrade}

// flow is a fixture whose tests drive the worker themselves (next), so every
// step is deterministic; only the informers' event delivery is
// asynchronous, and the helpers wait for it.
type flow struct{ *fixture.Fixture }

func newFixture(t *testing.T, objs []runtime.Object, opts ...cleanuptest.ConfigOption) flow {
	t.Helper()
	return flow{fixture.New(t, objs, opts...)}
}

// upgrade is the test Upgrade as Harvester writes it: Completed, latest.
func upgrade() *cleanuptest.UpgradeWrapper { return cleanuptest.Upgrade(testUpgrade) }

// repoSlice is the test upgrade's repo slice, its endpoint Ready or not.
func repoSlice(ready bool) *cleanuptest.SliceWrapper {
	return cleanuptest.RepoSlice(testUpgrade).Ready(ready)
}

// objects are the test Upgrade u and its repo slice, Ready or not.
func objects(u *cleanuptest.UpgradeWrapper, ready bool, more ...runtime.Object) []runtime.Object {
	return append([]runtime.Object{u.Obj(), repoSlice(ready).Obj()}, more...)
}

// next settles, then runs the worker once on the next item, stepping the
// fake clock while only delayed (rate-limited) items are left.
func (f flow) next() {
	f.T.Helper()
	f.Settle()
	f.waitQueued()
	f.Controller.ProcessNextItem(f.Ctx)
}

// waitQueued waits until a key is ready in the queue, stepping the fake
// clock so that delayed keys come due.
func (f flow) waitQueued() {
	f.T.Helper()
	f.WaitFor("an item in the queue", func() bool {
		if f.Controller.QueueLen() > 0 {
			return true
		}
		f.Clock.Step(100 * time.Millisecond)
		return false
	})
}

// requeues is how many retries the queue counted for the test upgrade.
func (f flow) requeues() int { return f.Controller.NumRequeues(testKey) }

// plannedUpgrade is the test Upgrade in state Planned with its plan
// written, as the controller leaves them, plus annotations; the plan has a
// UID, as the API server gives it.
func plannedUpgrade(t *testing.T, annotations map[string]string) (*unstructured.Unstructured, *corev1.ConfigMap) {
	t.Helper()
	u, cm := fixture.PlannedUpgrade(t, upgrade().Obj())
	a := u.GetAnnotations()
	maps.Copy(a, annotations)
	u.SetAnnotations(a)
	cm.UID = "plan-uid"
	return u, cm
}

// newRemovalFixture is a Planned upgrade with its plan written, nodes, and
// removal by Jobs under ratio. extra holds Jobs an earlier run left, and
// config options.
func newRemovalFixture(t *testing.T, ratio float64, nodes []string, extra ...any) flow {
	t.Helper()
	u, cm := plannedUpgrade(t, nil)
	objs := []runtime.Object{u, repoSlice(true).Obj(), cm}
	for _, n := range nodes {
		objs = append(objs, cleanuptest.Node(n))
	}
	opts := []cleanuptest.ConfigOption{cleanuptest.WithRemoval(ratio)}
	for _, e := range extra {
		switch e := e.(type) {
		case runtime.Object:
			objs = append(objs, e)
		case cleanuptest.ConfigOption:
			opts = append(opts, e)
		default:
			t.Fatalf("newRemovalFixture: unexpected %T", e)
		}
	}
	return newFixture(t, objs, opts...)
}
