//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// TestTwoUpgradesInParallel runs two upgrades at once, each with its own
// repo (own network namespace, Service, Pod and lists) becoming Ready at a
// different time, through one controller: each repo is asked exactly for its
// own two lists, each plan holds its own diff and belongs to its own Upgrade,
// each upgrade's Jobs are its own, and finishing one upgrade's Jobs finishes
// that upgrade only.
func TestTwoUpgradesInParallel(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// Upgrade A: the demo lists, from v1.4.2.
	a := parallelUpgrade{name: uniqueName("hvst-upgrade-a"), previous: cleanuptest.PreviousVersion, lists: cleanuptest.Lists()}
	// Upgrade B: a small pair of lists from v1.3.9, in short and full forms.
	bDir := t.TempDir()
	b := parallelUpgrade{name: uniqueName("hvst-upgrade-b"), previous: "v1.3.9", lists: os.DirFS(bDir)}
	writeArchiveList(t, bDir, b.previous,
		"rancher/harvester:v1.3.9",
		"docker.io/rancher/harvester-webhook:v1.3.9",
		"longhornio/longhorn-manager:v1.6.9",
		"rancher/harvester-upgrade:v1.3.9", // retained by default
		"docker.io/library/busybox:1.36",   // still in the current list
	)
	writeArchiveList(t, bDir, cleanup.CurrentVersion,
		"rancher/harvester:v1.5.0",
		"rancher/harvester-webhook:v1.5.0",
		"longhornio/longhorn-manager:v1.8.1",
		"busybox:1.36",
	)
	wantB := []string{
		"docker.io/longhornio/longhorn-manager:v1.6.9",
		"docker.io/rancher/harvester-webhook:v1.3.9",
		"docker.io/rancher/harvester:v1.3.9",
	}

	for i, u := range []*parallelUpgrade{&a, &b} {
		u.host = newTestHost(t, 27+i)
		u.repo = cleanuptest.ServeRepo(u.host.listen(t, 8080), u.lists, nil)
		t.Cleanup(func() { _ = u.repo.Close() })
		createRepo(t, ctx, u.name, u.host, 8080)
	}
	startController(t, "controller", "--remover-image", removerImage)
	for _, u := range []*parallelUpgrade{&a, &b} {
		createCompletedUpgrade(t, ctx, u.name, u.previous)
		dumpCleanupObjectsOnFailure(t, u.name)
	}
	awaitCleanupState(t, ctx, a.name, cleanup.StateWaitingForRepo, 30*time.Second)
	awaitCleanupState(t, ctx, b.name, cleanup.StateWaitingForRepo, 30*time.Second)

	// A's repo becomes Ready first; B's stays down until A is removing.
	setPodReady(t, ctx, a.pod(), a.host, true)
	awaitCleanupState(t, ctx, a.name, cleanup.StateRemoving, 30*time.Second)
	if s := upgradeAnnotations(t, ctx, b.name)[cleanup.StateAnnotation]; s != string(cleanup.StateWaitingForRepo) {
		t.Errorf("upgrade B is %q while its repo is not Ready, want WaitingForRepo", s)
	}
	if reqs := b.repo.Requests(); len(reqs) != 0 {
		t.Errorf("B's repo got %d requests before its pod was Ready: %+v", len(reqs), reqs)
	}
	setPodReady(t, ctx, b.pod(), b.host, true)
	awaitCleanupState(t, ctx, b.name, cleanup.StateRemoving, 30*time.Second)

	// Each repo was asked for its own two lists, once each.
	for _, u := range []*parallelUpgrade{&a, &b} {
		var paths []string
		for _, q := range u.repo.Requests() {
			paths = append(paths, q.Path)
		}
		if want := []string{cleanup.ListPath(u.previous), cleanup.ListPath(cleanup.CurrentVersion)}; !slices.Equal(paths, want) {
			t.Errorf("%s's repo got %v, want %v", u.name, paths, want)
		}
	}

	// Each plan holds its own diff and belongs to its own Upgrade.
	aPrev, aCur := parseArchiveList(t, a.lists, a.previous), parseArchiveList(t, a.lists, cleanup.CurrentVersion)
	bAll := append(parseArchiveList(t, b.lists, b.previous), parseArchiveList(t, b.lists, cleanup.CurrentVersion)...)
	for _, u := range []*parallelUpgrade{&a, &b} {
		u.load(t, ctx)
	}
	if len(a.plan) == 0 {
		t.Error("A's plan is empty")
	}
	for _, img := range a.plan {
		switch {
		case !slices.Contains(aPrev, img):
			t.Errorf("A's plan removes %s, which is not in A's previous list", img)
		case slices.Contains(aCur, img):
			t.Errorf("A's plan removes %s, which A's current list still has", img)
		case slices.Contains(bAll, img):
			t.Errorf("A's plan holds %s, one of B's images", img)
		}
	}
	if !slices.Equal(b.plan, wantB) {
		t.Errorf("B's plan = %v, want %v", b.plan, wantB)
	}
	for _, u := range []*parallelUpgrade{&a, &b} {
		if got, want := u.cm.Annotations[cleanup.PlanCountAnnotation], strconv.Itoa(len(u.plan)); got != want {
			t.Errorf("%s's plan says %s images, holds %s", u.name, got, want)
		}
		if got := u.cm.Annotations[cleanup.PreviousVersionAnnotation]; got != u.previous {
			t.Errorf("%s's plan is for %q, want %q", u.name, got, u.previous)
		}
		if r := u.cm.OwnerReferences; len(r) != 1 || r[0].UID != u.uid || r[0].Name != u.name {
			t.Errorf("%s's plan owners = %+v, want its own Upgrade (uid %s)", u.name, r, u.uid)
		}
		if got := u.cm.Labels[informers.UpgradeLabel]; got != u.name {
			t.Errorf("%s's plan is labelled for %q", u.name, got)
		}
	}

	// Each upgrade's Jobs: its own label, owner and plan volume, one per node.
	all, err := env.kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: cleanup.RemovalSelector().String()})
	if err != nil {
		t.Fatal(err)
	}
	ours := 0
	for _, j := range all.Items {
		if l := j.Labels[informers.UpgradeLabel]; l == a.name || l == b.name {
			ours++
		}
	}
	if ours != 2*len(nodeNames) {
		t.Errorf("%d removal Jobs for the two upgrades, want %d", ours, 2*len(nodeNames))
	}
	for _, u := range []*parallelUpgrade{&a, &b} {
		if len(u.jobs) != len(nodeNames) {
			t.Fatalf("%s has %d Jobs, want one per node", u.name, len(u.jobs))
		}
		for _, n := range nodeNames {
			j := u.jobs[n]
			if j == nil {
				t.Fatalf("%s has no Job on %s", u.name, n)
			}
			if !strings.HasPrefix(j.Name, u.name+"-") {
				t.Errorf("Job %s of %s is not named after it", j.Name, u.name)
			}
			if r := j.OwnerReferences; len(r) != 1 || r[0].UID != u.cm.UID {
				t.Errorf("Job %s owners = %+v, want %s's plan (uid %s)", j.Name, r, u.name, u.cm.UID)
			}
			if got := planVolume(j); got != u.cm.Name {
				t.Errorf("Job %s mounts plan ConfigMap %q, want %q", j.Name, got, u.cm.Name)
			}
		}
	}

	// Finishing A's Jobs finishes A only.
	for _, n := range nodeNames {
		finishJob(t, ctx, a.jobs[n], report.Result{Removed: len(a.plan)})
	}
	awaitCleanupState(t, ctx, a.name, cleanup.StateSucceeded, 30*time.Second)
	holdsFalseFor(t, ctx, "upgrade B leaving Removing while its Jobs run", 3*time.Second, func(ctx context.Context) (bool, error) {
		return upgradeAnnotations(t, ctx, b.name)[cleanup.StateAnnotation] != string(cleanup.StateRemoving), nil
	})
	for _, n := range nodeNames {
		finishJob(t, ctx, b.jobs[n], report.Result{Removed: len(b.plan)})
	}
	awaitCleanupState(t, ctx, b.name, cleanup.StateSucceeded, 30*time.Second)

	for _, u := range []*parallelUpgrade{&a, &b} {
		ann := upgradeAnnotations(t, ctx, u.name)
		if ann[cleanup.HarvesterDoneAnnotation] != "true" {
			t.Errorf("%s: %s = %q, want \"true\"", u.name, cleanup.HarvesterDoneAnnotation, ann[cleanup.HarvesterDoneAnnotation])
		}
		var s cleanup.Summary
		if err := json.Unmarshal([]byte(ann[cleanup.SummaryAnnotation]), &s); err != nil {
			t.Fatalf("%s summary: %v", u.name, err)
		}
		if len(s.Nodes) != len(nodeNames) || s.Total.Removed != len(nodeNames)*len(u.plan) {
			t.Errorf("%s summary = %+v, want %d nodes removing %d each", u.name, s, len(nodeNames), len(u.plan))
		}
		for _, n := range s.Nodes {
			if n.Job != u.jobs[n.Node].Name {
				t.Errorf("%s summary names Job %s for %s, want its own %s", u.name, n.Job, n.Node, u.jobs[n.Node].Name)
			}
		}
		if got := len(u.repo.Requests()); got != 2 {
			t.Errorf("%s's repo got %d requests by the end, want 2", u.name, got)
		}
		if jobs := removalJobs(t, ctx, u.name); len(jobs) != len(nodeNames) {
			t.Errorf("%s has %d Jobs after the run, want still %d", u.name, len(jobs), len(nodeNames))
		}
		t.Logf("%s (from %s): %d images planned; %s", u.name, u.previous, len(u.plan), ann[cleanup.MessageAnnotation])
	}
}

// parallelUpgrade is one of the two upgrades and its repo.
type parallelUpgrade struct {
	name, previous string
	// lists is the repo's archive: <version>/image_list_all.txt.
	lists fs.FS
	host  *testHost
	repo  *cleanuptest.HTTPRepo

	// read once both are Removing
	uid  types.UID
	cm   *corev1.ConfigMap
	plan []string
	jobs map[string]*batchv1.Job
}

func (u *parallelUpgrade) pod() string { return cleanuptest.RepoPodName(u.name) }

// load reads the upgrade's uid, plan and Jobs.
func (u *parallelUpgrade) load(t *testing.T, ctx context.Context) {
	t.Helper()
	obj, err := env.dynamic.Resource(informers.UpgradeGVR).Namespace(ns).Get(ctx, u.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u.uid = obj.GetUID()
	if u.cm, err = env.kube.CoreV1().ConfigMaps(ns).Get(ctx, cleanup.PlanConfigMapName(u.name), metav1.GetOptions{}); err != nil {
		t.Fatalf("%s's plan: %v", u.name, err)
	}
	u.plan = strings.Fields(u.cm.Data[cleanup.PlanKey])
	u.jobs = removalJobs(t, ctx, u.name)
}

// writeArchiveList writes <dir>/<version>/image_list_all.txt.
func writeArchiveList(t *testing.T, dir, version string, images ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, version), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, version, "image_list_all.txt"), []byte(strings.Join(images, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// parseArchiveList reads one list of an archive, normalised as plans are.
func parseArchiveList(t *testing.T, archive fs.FS, version string) []string {
	t.Helper()
	name := cleanuptest.ListFile(version)
	f, err := archive.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	list, err := imagelist.Parse(f, name)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range list {
		out = append(out, n.String())
	}
	return out
}

// planVolume is the ConfigMap a removal Job mounts as its plan (the volume
// named "plan").
func planVolume(j *batchv1.Job) string {
	for _, v := range j.Spec.Template.Spec.Volumes {
		if v.Name == "plan" && v.ConfigMap != nil {
			return v.ConfigMap.Name
		}
	}
	return ""
}
