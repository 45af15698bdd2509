package cleanup_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
)

// benchUpgradeLists returns a synthetic previous and current
// image_list_all.txt of n lines each, shaped like an upgrade's: of the
// previous version's images, half are unchanged in the current list, four
// in ten have a new tag, one in ten is gone; the current list adds new
// images to make up n. Both carry the retained repositories (upgrade image,
// Longhorn engine and instance manager, logging) in two versions, a fifth of
// the lines are registry.suse.com references with SUSE's long tags, one in
// ten is in the short form (rancher/x:1). The same seed gives the same lists.
func benchUpgradeLists(n int, seed uint64) (previous, current []byte) {
	r := rand.New(rand.NewPCG(seed, 2))
	ref := func(i int, tag string) string {
		switch i % 10 {
		case 0, 1:
			return fmt.Sprintf("registry.suse.com/suse/sles/15.6/component-%d:%s-150600.3.1", i, tag)
		case 2:
			return fmt.Sprintf("rancher/hardened-component-%d:%s", i, tag)
		case 3:
			return fmt.Sprintf("docker.io/longhornio/csi-component-%d:%s", i, tag)
		default:
			return fmt.Sprintf("docker.io/rancher/mirrored-component-%d:%s", i, tag)
		}
	}
	var prev, cur bytes.Buffer
	retained := []string{"rancher/harvester-upgrade", "longhornio/longhorn-engine", "longhornio/longhorn-instance-manager",
		"rancher/mirrored-banzaicloud-fluentd", "rancher/mirrored-fluent-fluent-bit"}
	for _, repo := range retained {
		fmt.Fprintf(&prev, "docker.io/%s:v1.4.2\n", repo)
		fmt.Fprintf(&cur, "docker.io/%s:v1.5.0\n", repo)
	}
	written := len(retained)
	for i := range n - len(retained) {
		old := fmt.Sprintf("v1.%d.%d", r.IntN(30), r.IntN(20))
		fmt.Fprintln(&prev, ref(i, old))
		switch p := r.IntN(10); {
		case p < 5:
			fmt.Fprintln(&cur, ref(i, old))
			written++
		case p < 9:
			fmt.Fprintln(&cur, ref(i, old+"-1"))
			written++
		}
	}
	for i := n; written < n; i++ {
		fmt.Fprintln(&cur, ref(i, "v2.0.0"))
		written++
	}
	return prev.Bytes(), cur.Bytes()
}

// BenchmarkPlan computes the plan of lists of 5,000 and 50,000 images
// (Harvester's real lists have a few hundred), with Harvester's retain list
// and two exclusion globs:
//
//   - parse+plan: what the controller does once both lists are fetched:
//     imagelist.Parse of both, then cleanup.ComputePlan;
//   - plan: cleanup.ComputePlan alone, on lists parsed beforehand.
func BenchmarkPlan(b *testing.B) {
	policy, err := cleanup.NewPolicy(cleanup.DefaultRetain(), []string{"docker.io/rancher/mirrored-component-1*", "*:*-hotfix"})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{5_000, 50_000} {
		prevText, curText := benchUpgradeLists(n, 7)
		b.Run(fmt.Sprintf("parse+plan/images=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(prevText) + len(curText)))
			b.ReportAllocs()
			var removed int
			for b.Loop() {
				prev, err := imagelist.Parse(bytes.NewReader(prevText), "previous")
				if err != nil {
					b.Fatal(err)
				}
				cur, err := imagelist.Parse(bytes.NewReader(curText), "current")
				if err != nil {
					b.Fatal(err)
				}
				removed = len(cleanup.ComputePlan(prev, cur, policy).Remove)
			}
			b.ReportMetric(float64(removed), "removed")
		})
		b.Run(fmt.Sprintf("plan/images=%d", n), func(b *testing.B) {
			prev, err := imagelist.Parse(bytes.NewReader(prevText), "previous")
			if err != nil {
				b.Fatal(err)
			}
			cur, err := imagelist.Parse(bytes.NewReader(curText), "current")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			var removed int
			for b.Loop() {
				removed = len(cleanup.ComputePlan(prev, cur, policy).Remove)
			}
			b.ReportMetric(float64(removed), "removed")
		})
	}
}
