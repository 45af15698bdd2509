package cleanuptest

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// A write made right after Wait returns reaches the informer: the watch it
// waited for is the one the informer reads.
func TestWatchesWaitForTheInformersWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	kube, dyn := NewClients()
	w := TrackWatches(kube, dyn)
	upgrades := informers.NewUpgradeInformer(dyn, Namespace, 0)
	go upgrades.Run(ctx.Done())
	if err := w.Wait(ctx, "upgrades"); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(informers.UpgradeGVR).Namespace(Namespace).Create(ctx, Upgrade(UpgradeName).Namespace(Namespace).Obj(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextCancel(ctx, time.Millisecond, true, func(context.Context) (bool, error) {
		_, ok, _ := upgrades.GetIndexer().GetByKey(Namespace + "/" + UpgradeName)
		return ok, nil
	})
	if err != nil {
		t.Fatal("the informer never saw the Upgrade created after its watch started")
	}
}

// Without a watch on a resource, Wait ends with ctx and names it.
func TestWatchesWaitNamesWhatIsMissing(t *testing.T) {
	kube, dyn := NewClients()
	w := TrackWatches(kube, dyn)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := w.Wait(ctx, "jobs")
	if err == nil || !strings.Contains(err.Error(), "jobs") {
		t.Fatalf("Wait = %v, want an error naming jobs", err)
	}
}
