package cleanup

import (
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
)

// TestPlanKeepsEverySpellingOfAnExcludedImage holds the
// README's table "What is never removed": "a repository on the retain list,
// an `--exclude` match | kept, `retain` / `exclude`", and the flag
// `--exclude`: "glob ... of images never to remove".
//
// An exclusion matches one spelling of an image; another spelling of the
// same node image in the previous list must be kept too (same-as-kept), or
// the remover takes the excluded node image for it. Before the fix the
// planner checked that only against the current list.
//
// Minimal inputs (current list [docker.io/rancher/other:2] in both):
//   - --exclude 'docker.io/rancher/mirrored-*' (the flag's own example);
//     previous [docker.io/rancher/mirrored-x:1,
//     registry.rancher.com/rancher/mirrored-x:1]; node image tagged
//     docker.io/rancher/mirrored-x:1; --match-other-registries (default).
//   - --exclude 'rancher/foo:v1'; previous [rancher/foo:v1,
//     rancher/foo:v1@sha256:d…]; node image tagged docker.io/rancher/foo:v1
//     with digest docker.io/rancher/foo@sha256:d…; --match-other-registries=false.
//
// Expected: the excluded node image is kept. Before the fix: planned and removed.
func TestPlanKeepsEverySpellingOfAnExcludedImage(t *testing.T) {
	d := "sha256:" + strings.Repeat("d", 64)
	cases := []struct {
		name       string
		exclude    string
		previous   []string
		image      remover.Image
		otherHosts bool
	}{
		{
			name:       "another registry host",
			exclude:    "docker.io/rancher/mirrored-*",
			previous:   []string{"docker.io/rancher/mirrored-x:1", "registry.rancher.com/rancher/mirrored-x:1"},
			image:      remover.Image{ID: "sha256:" + strings.Repeat("a", 64), RepoTags: []string{"docker.io/rancher/mirrored-x:1"}},
			otherHosts: true,
		},
		{
			name:     "tag with digest",
			exclude:  "rancher/foo:v1",
			previous: []string{"rancher/foo:v1", "rancher/foo:v1@" + d},
			image:    remover.Image{ID: "sha256:" + strings.Repeat("b", 64), RepoTags: []string{"docker.io/rancher/foo:v1"}, RepoDigests: []string{"docker.io/rancher/foo@" + d}},
		},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			policy, err := NewPolicy(DefaultRetain(), []string{tt.exclude})
			if err != nil {
				t.Fatal(err)
			}
			// The rules the controller plans under for this --match-other-registries.
			policy = policy.WithRules(imagematch.Rules{OtherRegistries: tt.otherHosts})
			prev, err := imagelist.Parse(strings.NewReader(strings.Join(tt.previous, "\n")), "previous")
			if err != nil {
				t.Fatal(err)
			}
			cur, err := imagelist.Parse(strings.NewReader("docker.io/rancher/other:2\n"), "current")
			if err != nil {
				t.Fatal(err)
			}
			plan := ComputePlan(prev, cur, policy)

			// The node side, as the Job runs it: images.txt and keep.txt re-read.
			planned, err := imagelist.Parse(strings.NewReader(lines(plan.Remove)), PlanKey)
			if err != nil {
				t.Fatal(err)
			}
			keep, err := imagelist.Parse(strings.NewReader(lines(plan.Keep)), KeepKey)
			if err != nil {
				t.Fatal(err)
			}
			opts := remover.DefaultOptions()
			opts.MatchOtherRegistries = tt.otherHosts
			opts.Keep = keep
			dec := remover.Decide(planned, []remover.Image{tt.image}, nil, remover.Sandboxes{}, opts)
			for _, di := range dec.Images {
				if di.Remove {
					t.Errorf("the excluded image %v is removed for planned %v (plan %v, kept %+v)", di.Image.RepoTags, di.Refs, plan.Remove, plan.Kept)
				}
			}
		})
	}
}
