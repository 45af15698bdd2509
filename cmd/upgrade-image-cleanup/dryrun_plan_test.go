package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/standalone"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// TestDryRunPlansAsThePreviewShows holds the
// README's promises:
//
//	"`--match-other-registries` | `true` | passed to the remover; the
//	planner keeps a previous image by the same rule (`pkg/imagematch`)"
//	"`plan` ... `--exclude` and `--match-other-registries` apply as in the
//	controller."
//
// With --dry-run the controller has no RemovalOptions; the binary must still
// plan under --match-other-registries, as `plan` previews it. The dry run's
// plan is the one that later runs ("A plan, once written, stands"). Before
// the fix it planned under the default (on) whatever the flag said.
//
// Minimal input: controller --dry-run --match-other-registries=false;
// previous [docker.io/rancher/foo:v1]; current
// [registry.rancher.com/rancher/foo:v1]. Expected: images.txt is the
// preview's plan, [docker.io/rancher/foo:v1]. Before the fix: empty (kept as
// same-path-and-tag-on-another-registry).
func TestDryRunPlansAsThePreviewShows(t *testing.T) {
	const previous, current = "docker.io/rancher/foo:v1", "registry.rancher.com/rancher/foo:v1"

	// The preview, as an operator runs it.
	dir := t.TempDir()
	prevFile, curFile := filepath.Join(dir, "previous.txt"), filepath.Join(dir, "current.txt")
	if err := os.WriteFile(prevFile, []byte(previous+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(curFile, []byte(current+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pf, err := parsePlanFlags([]string{"--previous", prevFile, "--current", curFile, "--match-other-registries=false"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	preview, err := planOffline(pf.previous, pf.current, pf.policy)
	if err != nil {
		t.Fatal(err)
	}

	// The controller, as the binary builds it, with the same flag.
	f, err := parseFlags([]string{"--dry-run", "--match-other-registries=false"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	kube, dyn := cleanuptest.NewClients(planUpgradeObject("v1.4.2"), planSlice(planUpgrade, "127.0.0.1", 8080, true))
	repo := cleanuptest.NewRepo(map[string][]string{"v1.4.2": {previous}, cleanup.CurrentVersion: {current}})

	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- standalone.Run(ctx, standalone.Clients{Kube: kube, Dynamic: dyn, Clock: clock.RealClock{}, Fetcher: repo}, f.Settings)
	}()
	defer func() { cancel(); <-done }()

	var images string
	err = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		cm, err := kube.CoreV1().ConfigMaps(planNS).Get(ctx, cleanup.PlanConfigMapName(planUpgrade), metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		images = cm.Data[cleanup.PlanKey]
		return true, nil
	})
	if err != nil {
		t.Fatalf("no plan ConfigMap: %v", err)
	}
	got := strings.Fields(images)
	if !slices.Equal(got, preview.Remove) {
		t.Errorf("controller --dry-run --match-other-registries=false planned %q; `plan --match-other-registries=false` previews %q", got, preview.Remove)
	}
}
