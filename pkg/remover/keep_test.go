package remover

import (
	"reflect"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// TestDecideMatchesLikeImagematch pins the remover's matching to
// imagematch, the one definition of the same image the planner and the
// preview use: a tag entry matches a node tag exactly when Rules.SameTag
// says so, a digested entry a node digest when the digests are equal and
// Rules.SameRepository holds.
func TestDecideMatchesLikeImagematch(t *testing.T) {
	planned := []string{
		"docker.io/rancher/x:1", "rancher/x:2", "registry.local:5000/rancher/x:1", "quay.io/other/x:1",
		"docker.io/rancher/x:1@" + digest("d"), "docker.io/rancher/x@" + digest("d"), "registry.local/rancher/x@" + digest("d"),
		"busybox", "docker.io/library/busybox:latest",
	}
	nodeTags := []string{"docker.io/rancher/x:1", "rancher/x:1", "registry.local:5000/rancher/x:1", "registry.local:5000/mirror/rancher/x:1", "docker.io/rancher/x:2", "busybox:latest"}
	nodeDigests := []string{"docker.io/rancher/x@" + digest("d"), "registry.local/rancher/x@" + digest("d"), "docker.io/rancher/x@" + digest("e")}
	for _, other := range []bool{false, true} {
		rules := imagematch.Rules{OtherRegistries: other}
		for _, p := range planned {
			pr, ok := imagematch.Parse(p)
			if !ok {
				t.Fatalf("parse %q", p)
			}
			for _, tag := range nodeTags {
				tr, _ := imagematch.Parse(tag)
				want := pr.Digest == "" && rules.SameTag(pr, tr)
				d := Decide(mustPlan(t, p), []Image{{ID: id("1"), RepoTags: []string{tag}}}, nil, Sandboxes{}, Options{MatchOtherRegistries: other})
				if got := len(d.Images) == 1; got != want {
					t.Errorf("OtherRegistries=%t: plan %s, node tag %s: matched %t, imagematch says %t", other, p, tag, got, want)
				}
			}
			for _, dg := range nodeDigests {
				dr, _ := imagematch.Parse(dg)
				want := pr.Digest != "" && pr.Digest == dr.Digest && rules.SameRepository(pr, dr)
				d := Decide(mustPlan(t, p), []Image{{ID: id("1"), RepoDigests: []string{dg}}}, nil, Sandboxes{}, Options{MatchOtherRegistries: other})
				if got := len(d.Images) == 1; got != want {
					t.Errorf("OtherRegistries=%t: plan %s, node digest %s: matched %t, imagematch says %t", other, p, dg, got, want)
				}
			}
		}
	}
}

// TestDecideKeepList is the defence in depth behind the planner: whatever
// the plan says, an image the current version's list could name stays.
func TestDecideKeepList(t *testing.T) {
	foo := Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/foo:v1"}, Size: 100}
	fooDigested := Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/foo:v1"}, RepoDigests: []string{"docker.io/rancher/foo@" + digest("d")}, Size: 100}
	untagged := Image{ID: id("b"), RepoDigests: []string{"docker.io/rancher/bar@" + digest("e")}}
	defaults := DefaultOptions()
	noRewrite := Options{MatchOtherRegistries: false}
	inList := func(img Image, ref, detail string) ImageDecision {
		return ImageDecision{Image: img, Refs: []string{ref}, Reason: report.ReasonInCurrentList, Detail: detail}
	}

	cases := []struct {
		name       string
		plan, keep []string
		images     []Image
		containers []Container
		opts       Options
		want       Decisions
	}{
		{
			name:   "same path and tag under another host",
			plan:   []string{"docker.io/rancher/foo:v1"},
			keep:   []string{"registry.rancher.com/rancher/foo:v1"},
			images: []Image{foo},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{inList(foo, "docker.io/rancher/foo:v1",
				"the new version ships registry.rancher.com/rancher/foo:v1 ("+string(imagematch.WhyOtherRegistry)+")")}},
		},
		{
			name:   "without MatchOtherRegistries another host does not keep the image",
			plan:   []string{"docker.io/rancher/foo:v1"},
			keep:   []string{"registry.rancher.com/rancher/foo:v1"},
			images: []Image{foo},
			opts:   noRewrite,
			want:   Decisions{Images: []ImageDecision{{Image: foo, Refs: []string{"docker.io/rancher/foo:v1"}, Remove: true}}},
		},
		{
			name:   "without MatchOtherRegistries the same name still keeps the image",
			plan:   []string{"docker.io/rancher/foo:v1"},
			keep:   []string{"rancher/foo:v1"},
			images: []Image{foo},
			opts:   noRewrite,
			want: Decisions{Images: []ImageDecision{inList(foo, "docker.io/rancher/foo:v1",
				"the new version ships docker.io/rancher/foo:v1 ("+string(imagematch.WhySameTag)+")")}},
		},
		{
			name:   "kept tag with a digest covers the planned tag",
			plan:   []string{"docker.io/rancher/foo:v1"},
			keep:   []string{"docker.io/rancher/foo:v1@" + digest("9")},
			images: []Image{foo},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{inList(foo, "docker.io/rancher/foo:v1",
				"the new version ships docker.io/rancher/foo:v1@"+digest("9")+" ("+string(imagematch.WhySameTag)+")")}},
		},
		{
			name:   "kept tag covers the planned tag with a digest",
			plan:   []string{"docker.io/rancher/foo:v1@" + digest("d")},
			keep:   []string{"docker.io/rancher/foo:v1"},
			images: []Image{fooDigested},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{inList(fooDigested, "docker.io/rancher/foo:v1@"+digest("d"),
				"the new version ships docker.io/rancher/foo:v1 ("+string(imagematch.WhySameTag)+")")}},
		},
		{
			name:   "a digest-only keep reference matches the node's RepoDigests in any repository",
			plan:   []string{"docker.io/rancher/foo:v1"},
			keep:   []string{"quay.io/elsewhere/foo-copy@" + digest("d")},
			images: []Image{fooDigested},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{inList(fooDigested, "docker.io/rancher/foo:v1",
				"the new version ships quay.io/elsewhere/foo-copy@"+digest("d")+" ("+string(imagematch.WhySameDigest)+")")}},
		},
		{
			name:   "another tag in the keep list does not keep the image",
			plan:   []string{"docker.io/rancher/foo:v1"},
			keep:   []string{"docker.io/rancher/foo:v2", "docker.io/rancher/foo@" + digest("8")},
			images: []Image{fooDigested},
			opts:   defaults,
			want:   Decisions{Images: []ImageDecision{{Image: fooDigested, Refs: []string{"docker.io/rancher/foo:v1"}, Remove: true}}},
		},
		{
			name:       "in use wins over in the current list",
			plan:       []string{"docker.io/rancher/foo:v1"},
			keep:       []string{"docker.io/rancher/foo:v1"},
			images:     []Image{foo},
			containers: []Container{{ID: "c1", ImageRef: foo.ID}},
			opts:       defaults,
			want:       Decisions{Images: []ImageDecision{{Image: foo, Refs: []string{"docker.io/rancher/foo:v1"}, Reason: report.ReasonInUse, Detail: "used by container c1"}}},
		},
		{
			name:   "in the current list wins over still needed",
			plan:   []string{"docker.io/rancher/foo:v1"},
			keep:   []string{"docker.io/rancher/foo:v1"},
			images: []Image{{ID: id("a"), RepoTags: []string{"docker.io/rancher/foo:v1", "docker.io/rancher/foo:latest"}}},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{inList(Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/foo:v1", "docker.io/rancher/foo:latest"}}, "docker.io/rancher/foo:v1",
				"the new version ships docker.io/rancher/foo:v1 ("+string(imagematch.WhySameTag)+")")}},
		},
		{
			name:   "pinned wins over in the current list",
			plan:   []string{"docker.io/rancher/foo:v1"},
			keep:   []string{"docker.io/rancher/foo:v1"},
			images: []Image{{ID: id("a"), RepoTags: []string{"docker.io/rancher/foo:v1"}, Pinned: true}},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{{Image: Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/foo:v1"}, Pinned: true}, Refs: []string{"docker.io/rancher/foo:v1"},
				Reason: report.ReasonPinned, Detail: "the runtime pins the image"}}},
		},
		{
			name:   "a dangling image the keep list names by digest is not pruned",
			keep:   []string{"docker.io/rancher/bar@" + digest("e")},
			images: []Image{untagged, {ID: id("c")}},
			opts:   Options{MatchOtherRegistries: true, PruneDangling: true},
			want:   Decisions{Dangling: []Image{{ID: id("c")}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := mustPlan(t, tc.plan...)
			tc.opts.Keep = mustPlan(t, tc.keep...)
			got := Decide(plan, tc.images, tc.containers, Sandboxes{}, tc.opts)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Decide:\n got %s\nwant %s", toJSON(t, got), toJSON(t, tc.want))
			}
			assertSafe(t, plan, tc.images, tc.containers, Sandboxes{}, tc.opts, got)
		})
	}
}

// TestDecideImageVolumes: an image mounted into a container as a volume
// (KEP-4639) is in use like the container's own image.
func TestDecideImageVolumes(t *testing.T) {
	x1 := Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1"}}
	y1 := Image{ID: id("b"), RepoTags: []string{"docker.io/rancher/y:1"}}
	dangling := Image{ID: id("c")}
	containers := []Container{
		{ID: "c1", ImageRef: id("f"), ImageVolumes: []string{x1.ID}},
		{ID: "c2", ImageRef: id("f"), ImageVolumes: []string{"rancher/y:1", dangling.ID}},
		{ID: "c3", ImageRef: y1.ID},
	}
	got := Decide(mustPlan(t, "docker.io/rancher/x:1", "docker.io/rancher/y:1"), []Image{x1, y1, dangling}, containers, Sandboxes{}, Options{PruneDangling: true})
	want := Decisions{Images: []ImageDecision{
		{Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Reason: report.ReasonInUse, Detail: "mounted as an image volume by container c1"},
		{Image: y1, Refs: []string{"docker.io/rancher/y:1"}, Reason: report.ReasonInUse, Detail: "used by container c3 and 1 more containers or pod sandboxes"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decide:\n got %s\nwant %s", toJSON(t, got), toJSON(t, want))
	}
	if d := describeUsers([]user{{kindVolume, "c1"}, {kindVolume, "c2"}}); d != "mounted as an image volume by containers c1 and 1 more" {
		t.Errorf("two image volume users: %q", d)
	}
}
