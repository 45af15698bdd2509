//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// TestPlanGuards: on a real API server, with its garbage collector, the
// controller runs only the plan it wrote and recorded.
//   - A plan whose images.txt is edited after it was planned is never run:
//     the next sync (a Job finishing) fails the cleanup in phase plan,
//     naming the ConfigMap, and no further Job is created.
//   - Deleting the plan mid-removal, the documented way to stop, fails the
//     cleanup in phase removal (the garbage collector takes its Jobs), and
//     a repo restart does not re-arm it: no fetch, no new plan, no Job.
func TestPlanGuards(t *testing.T) {
	for _, tc := range []struct {
		name  string
		index int
		// tamper changes the plan while the Jobs run.
		tamper func(t *testing.T, ctx context.Context, upgrade string)
		phase  cleanup.Phase
		msg    string
	}{
		{
			name: "plan edited", index: 40, phase: cleanup.PhasePlan, msg: "changed after it was planned",
			tamper: func(t *testing.T, ctx context.Context, upgrade string) {
				cm, err := env.kube.CoreV1().ConfigMaps(ns).Get(ctx, cleanup.PlanConfigMapName(upgrade), metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				cm.Data[cleanup.PlanKey] += "docker.io/rancher/harvester:v1.5.0\n"
				if _, err := env.kube.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "plan deleted", index: 41, phase: cleanup.PhaseRemoval, msg: "is gone",
			tamper: func(t *testing.T, ctx context.Context, upgrade string) {
				err := env.kube.CoreV1().ConfigMaps(ns).Delete(ctx, cleanup.PlanConfigMapName(upgrade), metav1.DeleteOptions{})
				if err != nil {
					t.Fatal(err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			upgrade := uniqueName("hvst-upgrade")
			h := newTestHost(t, tc.index)
			repo := serveRepo(t, h.listen(t, 8080))
			createRepo(t, ctx, upgrade, h, 8080)
			jobs := recordCreations(t, ctx, jobsGVR, informers.UpgradeLabel+"="+upgrade)
			plans := recordCreations(t, ctx, configMapsGVR, informers.UpgradeLabel+"="+upgrade)
			createCompletedUpgrade(t, ctx, upgrade, "v1.4.2")
			dumpOnFailure(t, upgrade, repo.String)
			startController(t, "controller", "--remover-image", removerImage)

			setPodReady(t, ctx, cleanuptest.RepoPodName(upgrade), h, true)
			waitState(t, ctx, upgrade, cleanup.StateRemoving, 30*time.Second)
			running := checkJobsPerNode(t, ctx, upgrade)
			if a := upgradeAnnotations(t, ctx, upgrade); !strings.HasPrefix(a[cleanup.PlanDigestAnnotation], "sha256:") {
				t.Fatalf("Removing without the plan's digest recorded: %v", a)
			}
			fetches := len(repo.Requests())

			tc.tamper(t, ctx, upgrade)
			if tc.phase == cleanup.PhasePlan {
				// A Job finishing brings the upgrade back to a sync.
				finishJob(t, ctx, running[nodeNames[0]], report.Result{Removed: 1})
			}
			a := awaitCleanupState(t, ctx, upgrade, cleanup.StateFailed, 30*time.Second)
			if cleanup.Phase(a[cleanup.FailedPhaseAnnotation]) != tc.phase || !strings.Contains(a[cleanup.MessageAnnotation], tc.msg) ||
				!strings.Contains(a[cleanup.MessageAnnotation], cleanup.PlanConfigMapName(upgrade)) {
				t.Fatalf("phase %q message %q, want phase %s naming the plan ConfigMap and saying %q",
					a[cleanup.FailedPhaseAnnotation], a[cleanup.MessageAnnotation], tc.phase, tc.msg)
			}

			// The repo restarts: that re-arms only a fetch failure.
			if err := flipNotReady(ctx, upgrade, cleanuptest.RepoPodName(upgrade), h); err != nil {
				t.Fatal(err)
			}
			setPodReady(t, ctx, cleanuptest.RepoPodName(upgrade), h, true)
			waitRepoSliceReady(t, ctx, upgrade)
			holdsFalseFor(t, ctx, "a change of the Failed state, a fetch, a new plan or a new Job", 5*time.Second, func(ctx context.Context) (bool, error) {
				a, err := annotationsOf(ctx, upgrade)
				if err != nil {
					return false, nil
				}
				return a[cleanup.StateAnnotation] != string(cleanup.StateFailed) || len(repo.Requests()) != fetches ||
					len(plans.names()) != 1 || len(jobs.names()) != len(nodeNames), nil
			})
			if tc.phase == cleanup.PhaseRemoval {
				_, err := env.kube.CoreV1().ConfigMaps(ns).Get(ctx, cleanup.PlanConfigMapName(upgrade), metav1.GetOptions{})
				if !apierrors.IsNotFound(err) {
					t.Errorf("plan ConfigMap after the repo restart: %v, want NotFound", err)
				}
			}
		})
	}
}
