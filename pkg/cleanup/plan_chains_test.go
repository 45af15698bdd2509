package cleanup

import (
	"slices"
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
)

// TestSameAsKeptChainsThroughKeptSpellings holds README "Plan": "An image
// kept by the retain list or an exclusion is kept under every spelling the
// previous list has for it by the same rules (same-as-kept)", and the table
// row "a repository on the retain list, an --exclude match, and every other
// spelling of that image in the previous list | kept ... same-as-kept".
//
// previous: docker.io/rancher/x:1 (excluded), docker.io/rancher/x:1@sha256:D
// (same-as-kept: same repository and tag) and docker.io/rancher/x@sha256:D,
// which is the same repository and the same digest as that kept spelling:
// the remover takes it for the excluded node image (tag x:1, digest D).
// Before the fix the planner compared what was left only with the images
// retain or exclude kept, not with the ones it kept as same-as-kept, so the
// third spelling was planned.
func TestSameAsKeptChainsThroughKeptSpellings(t *testing.T) {
	d := "sha256:" + strings.Repeat("d", 64)
	policy, err := NewPolicy(DefaultRetain(), []string{"docker.io/rancher/x:1"})
	if err != nil {
		t.Fatal(err)
	}
	prev, err := imagelist.Parse(strings.NewReader("docker.io/rancher/x:1\ndocker.io/rancher/x:1@"+d+"\ndocker.io/rancher/x@"+d+"\n"), "previous")
	if err != nil {
		t.Fatal(err)
	}
	cur, err := imagelist.Parse(strings.NewReader("docker.io/rancher/other:2\n"), "current")
	if err != nil {
		t.Fatal(err)
	}
	plan := ComputePlan(prev, cur, policy)

	// The remover takes the planned digest for the excluded node image.
	planned, err := imagelist.Parse(strings.NewReader(lines(plan.Remove)), PlanKey)
	if err != nil {
		t.Fatal(err)
	}
	keep, err := imagelist.Parse(strings.NewReader(lines(plan.Keep)), KeepKey)
	if err != nil {
		t.Fatal(err)
	}
	opts := remover.DefaultOptions()
	opts.Keep = keep
	// The excluded image as a node holds it when it was pulled by digest
	// (rancher/x:1@sha256:D pins it; the node lists its repo digest).
	node := remover.Image{ID: "sha256:" + strings.Repeat("a", 64), RepoDigests: []string{"docker.io/rancher/x@" + d}}
	dec := remover.Decide(planned, []remover.Image{node}, nil, remover.Sandboxes{}, opts)
	for _, di := range dec.Images {
		t.Logf("remover matched node image %v for planned %v: remove=%v reason %q %s (keep.txt %v)", di.Image.RepoDigests, di.Refs, di.Remove, di.Reason, di.Detail, plan.Keep)
	}
	if slices.Contains(plan.Remove, "docker.io/rancher/x@"+d) {
		t.Errorf("plan removes docker.io/rancher/x@%s, the same repository and digest as the kept spelling docker.io/rancher/x:1@%s of the excluded image; want it kept (same-as-kept)\nremove %v\nkept %+v", d, d, plan.Remove, plan.Kept)
	}
}

// The same chain from the current list: previous x:1@sha256:D is kept
// because the new version ships x:1; previous x@sha256:D names that very
// image by its digest, so it is kept too, and keep.txt carries the digest
// for the remover.
func TestSameAsKeptFromTheCurrentList(t *testing.T) {
	d := "sha256:" + strings.Repeat("d", 64)
	policy, err := NewPolicy(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := imagelist.Parse(strings.NewReader("docker.io/rancher/x:1@"+d+"\ndocker.io/rancher/x@"+d+"\n"), "previous")
	if err != nil {
		t.Fatal(err)
	}
	cur, err := imagelist.Parse(strings.NewReader("docker.io/rancher/x:1\n"), "current")
	if err != nil {
		t.Fatal(err)
	}
	plan := ComputePlan(prev, cur, policy)
	if len(plan.Remove) != 0 {
		t.Errorf("remove = %q, want nothing: both name the image the new version ships", plan.Remove)
	}
	want := Kept{Image: "docker.io/rancher/x@" + d, Rule: RuleSameAsKept, Match: "docker.io/rancher/x:1@" + d, Why: "same-digest"}
	if !slices.Contains(plan.Kept, want) {
		t.Errorf("kept = %+v, want %+v", plan.Kept, want)
	}
	if !slices.Contains(plan.Keep, "docker.io/rancher/x:1@"+d) {
		t.Errorf("keep.txt = %q, want the kept previous image with its digest", plan.Keep)
	}
}
