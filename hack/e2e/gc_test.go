//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// TestUpgradeDeletedMidRun deletes an Upgrade while its removal Jobs run: the
// real garbage collector deletes the plan ConfigMap (owned by the Upgrade)
// and the Jobs (owned by the ConfigMap); the controller recreates nothing,
// neither while the collector works nor afterwards, and keeps running.
func TestUpgradeDeletedMidRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		index  int
		policy metav1.DeletionPropagation
	}{
		{"background", 25, metav1.DeletePropagationBackground},
		{"foreground", 26, metav1.DeletePropagationForeground},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			upgrade := uniqueName("hvst-upgrade")
			h := newTestHost(t, tc.index)
			repo := serveRepo(t, h.listen(t, 8080))
			createRepo(t, ctx, upgrade, h, 8080)
			p := startController(t, "controller", "--remover-image", removerImage)
			createCompletedUpgrade(t, ctx, upgrade, "v1.4.2")
			dumpCleanupObjectsOnFailure(t, upgrade)
			setPodReady(t, ctx, cleanuptest.RepoPodName(upgrade), h, true)

			awaitCleanupState(t, ctx, upgrade, cleanup.StateRemoving, 30*time.Second)
			u, err := env.dynamic.Resource(informers.UpgradeGVR).Namespace(ns).Get(ctx, upgrade, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cmName := cleanup.PlanConfigMapName(upgrade)
			cm, err := env.kube.CoreV1().ConfigMaps(ns).Get(ctx, cmName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != u.GetUID() {
				t.Fatalf("plan owners = %+v, want the Upgrade (uid %s)", cm.OwnerReferences, u.GetUID())
			}
			var jobs map[string]*batchv1.Job
			waitFor(t, ctx, "one removal Job per node", 10*time.Second, func(ctx context.Context) (bool, error) {
				jobs = removalJobs(t, ctx, upgrade)
				return len(jobs) == len(nodeNames), nil
			})
			original := map[types.UID]bool{}
			for _, j := range jobs {
				original[j.UID] = true
				if len(j.OwnerReferences) != 1 || j.OwnerReferences[0].UID != cm.UID {
					t.Fatalf("Job %s owners = %+v, want the plan ConfigMap (uid %s)", j.Name, j.OwnerReferences, cm.UID)
				}
			}

			tl := watchUpgradeObjects(t, ctx, upgrade)
			logBefore := len(p.log())
			deletedAt := time.Now()
			if err := env.dynamic.Resource(informers.UpgradeGVR).Namespace(ns).Delete(ctx, upgrade, metav1.DeleteOptions{PropagationPolicy: &tc.policy}); err != nil {
				t.Fatalf("delete Upgrade: %v", err)
			}
			waitFor(t, ctx, "the garbage collector to delete the Upgrade, its plan ConfigMap and its Jobs", 60*time.Second, func(ctx context.Context) (bool, error) {
				if _, err := env.dynamic.Resource(informers.UpgradeGVR).Namespace(ns).Get(ctx, upgrade, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					return false, nil
				}
				if _, err := env.kube.CoreV1().ConfigMaps(ns).Get(ctx, cmName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					return false, nil
				}
				return len(removalJobs(t, ctx, upgrade)) == 0, nil
			})
			goneAt := time.Now()

			// Nothing comes back: no plan, no Job, for a few seconds more.
			holdsFalseFor(t, ctx, "a ConfigMap or Job labelled for the deleted upgrade", 5*time.Second, func(ctx context.Context) (bool, error) {
				cms, err := env.kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: informers.UpgradeLabel + "=" + upgrade})
				if err != nil {
					return false, err
				}
				return len(cms.Items) > 0 || len(removalJobs(t, ctx, upgrade)) > 0, nil
			})
			select {
			case <-p.exited:
				t.Fatalf("the controller exited (%v) after the Upgrade was deleted", p.cmd.ProcessState)
			default:
			}

			events := tl.stop()
			t.Logf("Upgrade deleted (%s): plan and Jobs gone after %v; timeline:\n%scontroller log since the deletion:\n%s",
				tc.policy, goneAt.Sub(deletedAt).Round(time.Millisecond), formatTimeline(events, deletedAt), p.log()[logBefore:])
			// Every object the watch saw created must be one of the run's:
			// the plan and the original Jobs.
			var cmDeleting time.Time
			for _, e := range events {
				switch {
				case e.typ == "CLOSED":
					t.Errorf("the %s watch ended early: a recreated object may have gone unseen", e.kind)
				case e.kind == "Job" && e.typ == watch.Added && !original[e.uid]:
					t.Errorf("BUG: Job %s (uid %s) was created %v after the Upgrade was deleted (%s propagation): "+
						"the controller recreated a removal Job while the garbage collector was deleting them",
						e.name, e.uid, e.at.Sub(deletedAt).Round(time.Millisecond), tc.policy)
				case e.kind == "ConfigMap" && e.typ == watch.Added && e.uid != cm.UID:
					t.Errorf("BUG: ConfigMap %s (uid %s) was created %v after the Upgrade was deleted", e.name, e.uid, e.at.Sub(deletedAt).Round(time.Millisecond))
				case e.kind == "ConfigMap" && e.uid == cm.UID && (e.typ == watch.Deleted || e.deleting) && cmDeleting.IsZero():
					cmDeleting = e.at
				case e.kind == "Job" && original[e.uid] && e.typ == watch.Deleted && (cmDeleting.IsZero() || e.at.Before(cmDeleting)):
					t.Errorf("Job %s was deleted before the deletion of its owner, the plan ConfigMap, began: not by the garbage collector", e.name)
				}
			}
			if got := len(repo.Requests()); got != 2 {
				t.Errorf("the repo got %d requests, want the previous and the current list once each", got)
			}
			if log := p.log(); strings.Contains(log, "panic") {
				t.Errorf("the controller logged a panic:\n%s", log)
			}
		})
	}
}

// objectEvent is one watch event on an upgrade's ConfigMaps or Jobs.
type objectEvent struct {
	at       time.Time
	kind     string
	typ      watch.EventType
	name     string
	uid      types.UID
	deleting bool // deletionTimestamp set
}

// objectTimeline collects watch events until stop.
type objectTimeline struct {
	mu      sync.Mutex
	events  []objectEvent
	closed  []string // watches that ended before stop
	cancel  context.CancelFunc
	done    sync.WaitGroup
	stopped bool
}

// watchUpgradeObjects watches the ConfigMaps and Jobs labelled for upgrade.
// It starts from a cached list's resourceVersion, as an informer does (a
// watch without one needs a consistent read Debian's etcd 3.4 cannot give).
func watchUpgradeObjects(t *testing.T, ctx context.Context, upgrade string) *objectTimeline {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	tl := &objectTimeline{cancel: cancel}
	t.Cleanup(func() { tl.stop() })
	sel := metav1.ListOptions{LabelSelector: informers.UpgradeLabel + "=" + upgrade, ResourceVersion: "0"}
	cms, err := env.kube.CoreV1().ConfigMaps(ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := env.kube.BatchV1().Jobs(ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	cmSel, jobSel := sel, sel
	cmSel.ResourceVersion, jobSel.ResourceVersion = cms.ResourceVersion, jobs.ResourceVersion
	cmW, err := env.kube.CoreV1().ConfigMaps(ns).Watch(ctx, cmSel)
	if err != nil {
		t.Fatal(err)
	}
	jobW, err := env.kube.BatchV1().Jobs(ns).Watch(ctx, jobSel)
	if err != nil {
		cmW.Stop()
		t.Fatal(err)
	}
	for kind, w := range map[string]watch.Interface{"ConfigMap": cmW, "Job": jobW} {
		tl.done.Add(1)
		go func() {
			defer tl.done.Done()
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.ResultChan():
					if !ok {
						tl.mu.Lock()
						tl.closed = append(tl.closed, kind)
						tl.mu.Unlock()
						return
					}
					e := objectEvent{at: time.Now(), kind: kind, typ: ev.Type}
					switch o := ev.Object.(type) {
					case *corev1.ConfigMap:
						e.name, e.uid, e.deleting = o.Name, o.UID, o.DeletionTimestamp != nil
					case *batchv1.Job:
						e.name, e.uid, e.deleting = o.Name, o.UID, o.DeletionTimestamp != nil
					default:
						e.name = fmt.Sprintf("%v", ev.Object)
					}
					tl.mu.Lock()
					tl.events = append(tl.events, e)
					tl.mu.Unlock()
				}
			}
		}()
	}
	return tl
}

// stop ends the watches and returns what they saw; a watch that ended early
// is reported as an event of type "CLOSED".
func (tl *objectTimeline) stop() []objectEvent {
	tl.cancel()
	tl.done.Wait()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if !tl.stopped {
		tl.stopped = true
		for _, k := range tl.closed {
			tl.events = append(tl.events, objectEvent{at: time.Now(), kind: k, typ: "CLOSED"})
		}
	}
	return append([]objectEvent(nil), tl.events...)
}

func formatTimeline(events []objectEvent, since time.Time) string {
	var b strings.Builder
	for _, e := range events {
		del := ""
		if e.deleting {
			del = " (deleting)"
		}
		fmt.Fprintf(&b, "  %+8v %-9s %-8s %s %s%s\n", e.at.Sub(since).Round(time.Millisecond), e.kind, e.typ, e.name, e.uid, del)
	}
	return b.String()
}
