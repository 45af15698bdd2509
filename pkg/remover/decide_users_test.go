package remover

import (
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// TestDecideUsersNamingTagAndDigest holds the
// README's promise (The remover, safety rules):
//
//	"never an image any container uses, running or not (`in-use`): by image
//	ID, by the tag or digest the container names"
//	"never an image a container mounts as an image volume ... (`in-use`)"
//	"never the image of a pod sandbox, running or not (`in-use`)"
//
// A reference that names both the tag and the digest
// (`rancher/x:v1@sha256:…`, the form pinned charts write and a runtime may
// report as the spec's image, an image volume's image or a sandbox's
// image) names the node image by its tag and by its digest. The runtime
// lists those apart, so imageIndex.lookup must look the reference up under
// both; it once knew only `name:tag` and `name@digest` keys, and the image
// was not seen as used.
//
// Minimal input: plan [docker.io/rancher/x:v1]; node image ID a, tags
// [docker.io/rancher/x:v1], digests [docker.io/rancher/x@sha256:d…]; a user
// naming it only as "docker.io/rancher/x:v1@sha256:d…" (no image ID).
// Expected: kept, in-use. Before the fix: Remove=true.
func TestDecideUsersNamingTagAndDigest(t *testing.T) {
	img := Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:v1"}, RepoDigests: []string{"docker.io/rancher/x@" + digest("d")}}
	both := "docker.io/rancher/x:v1@" + digest("d")
	short := "rancher/x:v1@" + digest("d")
	cases := []struct {
		name       string
		containers []Container
		sandboxes  Sandboxes
	}{
		{name: "container image", containers: []Container{{ID: "c1", Image: both}}},
		{name: "container image, short form", containers: []Container{{ID: "c1", Image: short}}},
		{name: "container image ref", containers: []Container{{ID: "c1", ImageRef: both}}},
		{name: "image volume", containers: []Container{{ID: "c1", Image: id("f"), ImageVolumes: []string{both}}}},
		{name: "pod sandbox", sandboxes: Sandboxes{List: []Sandbox{{ID: "s1", Image: both}}}},
		// "never ... the runtime's configured sandbox (pause) image" (pinned).
		{name: "configured sandbox image", sandboxes: Sandboxes{ConfiguredImage: both}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(mustPlan(t, "docker.io/rancher/x:v1"), []Image{img}, tt.containers, tt.sandboxes, DefaultOptions())
			want := report.ReasonInUse
			if tt.sandboxes.ConfiguredImage != "" {
				want = report.ReasonPinned
			}
			if len(d.Images) != 1 {
				t.Fatalf("decisions = %+v, want one for the image", d)
			}
			if got := d.Images[0]; got.Remove || got.Reason != want {
				t.Errorf("image used as %q: remove=%v reason=%q detail=%q; want kept, %s", both, got.Remove, got.Reason, got.Detail, want)
			}
		})
	}
}
