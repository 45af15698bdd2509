package remover

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// id makes a realistic image ID from one hex digit.
func id(c string) string { return "sha256:" + strings.Repeat(c, 64) }

func digest(c string) string { return "sha256:" + strings.Repeat(c, 64) }

func mustPlan(t testing.TB, refs ...string) []reference.Named {
	t.Helper()
	p, err := imagelist.Parse(strings.NewReader(strings.Join(refs, "\n")), "test plan")
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

func TestDecide(t *testing.T) {
	x1 := Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1"}, Size: 100}
	y1 := Image{ID: id("b"), RepoTags: []string{"docker.io/rancher/y:1"}, Size: 200}
	pause36 := Image{ID: id("3"), RepoTags: []string{"registry.k8s.io/pause:3.6"}, Size: 300}
	pause310 := Image{ID: id("4"), RepoTags: []string{"registry.k8s.io/pause:3.10"}, Size: 400}
	defaults := DefaultOptions()
	noRewrite := Options{MatchOtherRegistries: false}
	prune := Options{MatchOtherRegistries: true, PruneDangling: true}

	cases := []struct {
		name       string
		plan       []string
		images     []Image
		containers []Container
		sandboxes  Sandboxes
		opts       Options
		want       Decisions
	}{
		{
			name:   "exact match is removed",
			plan:   []string{"docker.io/rancher/x:1"},
			images: []Image{x1, y1},
			opts:   defaults,
			want:   Decisions{Images: []ImageDecision{{Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Remove: true}}},
		},
		{
			name:   "short tag on the node matches the normalised plan",
			plan:   []string{"rancher/x:1"},
			images: []Image{{ID: id("a"), RepoTags: []string{"rancher/x:1"}}},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: Image{ID: id("a"), RepoTags: []string{"rancher/x:1"}}, Refs: []string{"docker.io/rancher/x:1"}, Remove: true,
			}}},
		},
		{
			name:   "untagged plan entry means latest",
			plan:   []string{"busybox"},
			images: []Image{{ID: id("a"), RepoTags: []string{"docker.io/library/busybox:latest"}}},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: Image{ID: id("a"), RepoTags: []string{"docker.io/library/busybox:latest"}}, Refs: []string{"docker.io/library/busybox:latest"}, Remove: true,
			}}},
		},
		{
			name:   "registry rewrite matches when on",
			plan:   []string{"docker.io/rancher/x:1"},
			images: []Image{{ID: id("a"), RepoTags: []string{"registry.local:5000/rancher/x:1"}}},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: Image{ID: id("a"), RepoTags: []string{"registry.local:5000/rancher/x:1"}}, Refs: []string{"docker.io/rancher/x:1"}, Remove: true,
			}}},
		},
		{
			name:   "registry rewrite does not match when off",
			plan:   []string{"docker.io/rancher/x:1"},
			images: []Image{{ID: id("a"), RepoTags: []string{"registry.local:5000/rancher/x:1"}}},
			opts:   noRewrite,
			want:   Decisions{NotPresent: []string{"docker.io/rancher/x:1"}},
		},
		{
			name: "registry rewrite needs the same path and the same tag",
			plan: []string{"docker.io/rancher/x:1"},
			images: []Image{
				{ID: id("a"), RepoTags: []string{"registry.local:5000/mirror/rancher/x:1"}},
				{ID: id("b"), RepoTags: []string{"registry.local:5000/rancher/x:2"}},
				{ID: id("c"), RepoTags: []string{"registry.local:5000/rancher/xx:1"}},
			},
			opts: defaults,
			want: Decisions{NotPresent: []string{"docker.io/rancher/x:1"}},
		},
		{
			name: "one planned reference may match images under two registries",
			plan: []string{"docker.io/rancher/x:1"},
			images: []Image{
				{ID: id("b"), RepoTags: []string{"registry.local/rancher/x:1"}},
				{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1"}},
			},
			opts: defaults,
			want: Decisions{Images: []ImageDecision{
				{Image: Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1"}}, Refs: []string{"docker.io/rancher/x:1"}, Remove: true},
				{Image: Image{ID: id("b"), RepoTags: []string{"registry.local/rancher/x:1"}}, Refs: []string{"docker.io/rancher/x:1"}, Remove: true},
			}},
		},
		{
			name:       "in use through ImageRef",
			plan:       []string{"docker.io/rancher/x:1"},
			images:     []Image{x1},
			containers: []Container{{ID: "c1", ImageRef: x1.ID}},
			opts:       defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Reason: report.ReasonInUse, Detail: "used by container c1",
			}}},
		},
		{
			name:       "in use through the container image naming a short tag",
			plan:       []string{"docker.io/rancher/x:1"},
			images:     []Image{x1},
			containers: []Container{{ID: "c1", Image: "rancher/x:1"}},
			opts:       defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Reason: report.ReasonInUse, Detail: "used by container c1",
			}}},
		},
		{
			name:       "in use through the container image naming the ID",
			plan:       []string{"docker.io/rancher/x:1"},
			images:     []Image{x1},
			containers: []Container{{ID: "c1", Image: x1.ID}, {ID: "c2", Image: strings.TrimPrefix(x1.ID, "sha256:")[:12]}, {ID: "c3", ImageRef: y1.ID}},
			opts:       defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Reason: report.ReasonInUse, Detail: "used by containers c1 and 1 more",
			}}},
		},
		{
			name:       "in use through ImageID or a digested ImageRef",
			plan:       []string{"docker.io/rancher/x:1", "docker.io/rancher/y:1"},
			images:     []Image{x1, {ID: y1.ID, RepoTags: y1.RepoTags, RepoDigests: []string{"docker.io/rancher/y@" + digest("d")}}},
			containers: []Container{{ID: "c1", ImageID: x1.ID}, {ID: "c2", ImageRef: "rancher/y@" + digest("d")}},
			opts:       defaults,
			want: Decisions{Images: []ImageDecision{
				{Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Reason: report.ReasonInUse, Detail: "used by container c1"},
				{Image: Image{ID: y1.ID, RepoTags: y1.RepoTags, RepoDigests: []string{"docker.io/rancher/y@" + digest("d")}}, Refs: []string{"docker.io/rancher/y:1"}, Reason: report.ReasonInUse, Detail: "used by container c2"},
			}},
		},
		{
			name:       "pinned is kept, and pinned wins over in use",
			plan:       []string{"docker.io/rancher/x:1", "docker.io/rancher/y:1"},
			images:     []Image{{ID: x1.ID, RepoTags: x1.RepoTags, Pinned: true}, {ID: y1.ID, RepoTags: y1.RepoTags, Pinned: true}},
			containers: []Container{{ID: "c1", ImageRef: y1.ID}},
			opts:       defaults,
			want: Decisions{Images: []ImageDecision{
				{Image: Image{ID: x1.ID, RepoTags: x1.RepoTags, Pinned: true}, Refs: []string{"docker.io/rancher/x:1"}, Reason: report.ReasonPinned, Detail: "the runtime pins the image"},
				{Image: Image{ID: y1.ID, RepoTags: y1.RepoTags, Pinned: true}, Refs: []string{"docker.io/rancher/y:1"}, Reason: report.ReasonPinned, Detail: "the runtime pins the image"},
			}},
		},
		{
			name:      "sandbox image in use by a sandbox is kept, other images are not affected",
			plan:      []string{pause36.RepoTags[0], "docker.io/rancher/x:1"},
			images:    []Image{pause36, pause310, x1},
			sandboxes: Sandboxes{ConfiguredImage: pause310.RepoTags[0], List: []Sandbox{{ID: "s1", Image: pause36.RepoTags[0]}}},
			opts:      defaults,
			want: Decisions{Images: []ImageDecision{
				{Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Remove: true},
				{Image: pause36, Refs: []string{pause36.RepoTags[0]}, Reason: report.ReasonInUse, Detail: "used by pod sandbox s1"},
			}},
		},
		{
			name:      "sandbox image named by a short reference or the ID is in use",
			plan:      []string{"docker.io/rancher/mirrored-pause:3.6", pause310.RepoTags[0]},
			images:    []Image{{ID: id("7"), RepoTags: []string{"docker.io/rancher/mirrored-pause:3.6"}}, pause310},
			sandboxes: Sandboxes{List: []Sandbox{{ID: "s2", Image: "rancher/mirrored-pause:3.6"}, {ID: "s1", Image: pause310.ID}, {ID: "s3", Image: "rancher/mirrored-pause:3.6"}}},
			opts:      defaults,
			want: Decisions{Images: []ImageDecision{
				{Image: Image{ID: id("7"), RepoTags: []string{"docker.io/rancher/mirrored-pause:3.6"}}, Refs: []string{"docker.io/rancher/mirrored-pause:3.6"}, Reason: report.ReasonInUse, Detail: "used by pod sandboxes s2 and 1 more"},
				{Image: pause310, Refs: []string{pause310.RepoTags[0]}, Reason: report.ReasonInUse, Detail: "used by pod sandbox s1"},
			}},
		},
		{
			name:       "an image used by a container and a sandbox names the container first",
			plan:       []string{"docker.io/rancher/x:1"},
			images:     []Image{x1},
			containers: []Container{{ID: "c9", ImageRef: x1.ID}},
			sandboxes:  Sandboxes{List: []Sandbox{{ID: "s1", Image: "rancher/x:1"}}},
			opts:       defaults,
			want: Decisions{Images: []ImageDecision{
				{Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Reason: report.ReasonInUse, Detail: "used by container c9 and 1 more containers or pod sandboxes"},
			}},
		},
		{
			name:      "configured sandbox image no sandbox uses is kept as pinned",
			plan:      []string{pause310.RepoTags[0], "docker.io/rancher/x:1"},
			images:    []Image{pause310, x1},
			sandboxes: Sandboxes{ConfiguredImage: pause310.RepoTags[0]},
			opts:      defaults,
			want: Decisions{Images: []ImageDecision{
				{Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Remove: true},
				{Image: pause310, Refs: []string{pause310.RepoTags[0]}, Reason: report.ReasonPinned, Detail: "the runtime's configured sandbox image (registry.k8s.io/pause:3.10), which new pods need"},
			}},
		},
		{
			name:      "configured sandbox image named short and used by a sandbox is pinned: pinned wins over in use",
			plan:      []string{"docker.io/rancher/mirrored-pause:3.6"},
			images:    []Image{{ID: id("7"), RepoTags: []string{"docker.io/rancher/mirrored-pause:3.6"}}},
			sandboxes: Sandboxes{ConfiguredImage: "rancher/mirrored-pause:3.6", List: []Sandbox{{ID: "s1"}}},
			opts:      defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: Image{ID: id("7"), RepoTags: []string{"docker.io/rancher/mirrored-pause:3.6"}}, Refs: []string{"docker.io/rancher/mirrored-pause:3.6"},
				Reason: report.ReasonPinned, Detail: "the runtime's configured sandbox image (rancher/mirrored-pause:3.6), which new pods need",
			}}},
		},
		{
			name:      "the runtime's pinned flag wins over the configured sandbox image",
			plan:      []string{pause310.RepoTags[0]},
			images:    []Image{{ID: pause310.ID, RepoTags: pause310.RepoTags, Pinned: true}},
			sandboxes: Sandboxes{ConfiguredImage: pause310.RepoTags[0]},
			opts:      defaults,
			want: Decisions{Images: []ImageDecision{
				{Image: Image{ID: pause310.ID, RepoTags: pause310.RepoTags, Pinned: true}, Refs: []string{pause310.RepoTags[0]}, Reason: report.ReasonPinned, Detail: "the runtime pins the image"},
			}},
		},
		{
			name:      "a sandbox image under another registry is not the configured one, and is removed when nothing uses it",
			plan:      []string{"docker.io/rancher/mirrored-pause:3.6"},
			images:    []Image{{ID: id("7"), RepoTags: []string{"registry.local/rancher/mirrored-pause:3.6"}}},
			sandboxes: Sandboxes{ConfiguredImage: "docker.io/rancher/mirrored-pause:3.6"},
			opts:      defaults,
			want: Decisions{Images: []ImageDecision{
				{Image: Image{ID: id("7"), RepoTags: []string{"registry.local/rancher/mirrored-pause:3.6"}}, Refs: []string{"docker.io/rancher/mirrored-pause:3.6"}, Remove: true},
			}},
		},
		{
			name:   "multi-tag image with an unplanned tag is still needed",
			plan:   []string{"docker.io/rancher/x:1"},
			images: []Image{{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1", "docker.io/rancher/x:latest"}}},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1", "docker.io/rancher/x:latest"}}, Refs: []string{"docker.io/rancher/x:1"},
				Reason: report.ReasonStillNeeded, Detail: "also tagged docker.io/rancher/x:latest, which the plan does not name",
			}}},
		},
		{
			name:   "multi-tag image with every tag planned is removed once",
			plan:   []string{"docker.io/rancher/x:1", "docker.io/rancher/x:1.0"},
			images: []Image{{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1.0", "rancher/x:1"}}},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1.0", "rancher/x:1"}}, Refs: []string{"docker.io/rancher/x:1", "docker.io/rancher/x:1.0"}, Remove: true,
			}}},
		},
		{
			name:   "image listed twice is decided once, knowing all its tags",
			plan:   []string{"docker.io/rancher/x:1"},
			images: []Image{x1, {ID: x1.ID, RepoTags: []string{"docker.io/rancher/keep:1"}}},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: Image{ID: x1.ID, RepoTags: []string{"docker.io/rancher/keep:1", "docker.io/rancher/x:1"}, Size: 100}, Refs: []string{"docker.io/rancher/x:1"},
				Reason: report.ReasonStillNeeded, Detail: "also tagged docker.io/rancher/keep:1, which the plan does not name",
			}}},
		},
		{
			name:   "a tag under another registry is covered by the rewrite",
			plan:   []string{"docker.io/rancher/x:1"},
			images: []Image{{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1", "registry.local/rancher/x:1"}}},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1", "registry.local/rancher/x:1"}}, Refs: []string{"docker.io/rancher/x:1"}, Remove: true,
			}}},
		},
		{
			name:   "without the rewrite, a tag under another registry is still needed",
			plan:   []string{"docker.io/rancher/x:1"},
			images: []Image{{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1", "registry.local/rancher/x:1"}}},
			opts:   noRewrite,
			want: Decisions{Images: []ImageDecision{{
				Image: Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1", "registry.local/rancher/x:1"}}, Refs: []string{"docker.io/rancher/x:1"},
				Reason: report.ReasonStillNeeded, Detail: "also tagged registry.local/rancher/x:1, which the plan does not name",
			}}},
		},
		{
			name:   "a tag that does not parse keeps the image",
			plan:   []string{"docker.io/rancher/x:1"},
			images: []Image{{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1", "<none>:<none>"}}},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1", "<none>:<none>"}}, Refs: []string{"docker.io/rancher/x:1"},
				Reason: report.ReasonStillNeeded, Detail: "also tagged <none>:<none>, which the plan does not name",
			}}},
		},
		{
			name:   "missing image is not present",
			plan:   []string{"docker.io/rancher/gone:1", "docker.io/rancher/x:1"},
			images: []Image{x1},
			opts:   defaults,
			want: Decisions{
				Images:     []ImageDecision{{Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Remove: true}},
				NotPresent: []string{"docker.io/rancher/gone:1"},
			},
		},
		{
			name: "digest plan entry matches RepoDigests only",
			plan: []string{"docker.io/rancher/x@" + digest("d"), "docker.io/rancher/y@" + digest("e"), "docker.io/rancher/z@" + digest("f")},
			images: []Image{
				{ID: id("a"), RepoDigests: []string{"docker.io/rancher/x@" + digest("d")}},
				{ID: id("b"), RepoTags: []string{"docker.io/rancher/y:1"}, RepoDigests: []string{"docker.io/rancher/y@" + digest("e")}},
				{ID: id("c"), RepoTags: []string{"docker.io/rancher/z:1"}, RepoDigests: []string{"docker.io/rancher/z@" + digest("9")}},
			},
			opts: defaults,
			want: Decisions{
				Images: []ImageDecision{
					{Image: Image{ID: id("a"), RepoDigests: []string{"docker.io/rancher/x@" + digest("d")}}, Refs: []string{"docker.io/rancher/x@" + digest("d")}, Remove: true},
					{
						Image: Image{ID: id("b"), RepoTags: []string{"docker.io/rancher/y:1"}, RepoDigests: []string{"docker.io/rancher/y@" + digest("e")}}, Refs: []string{"docker.io/rancher/y@" + digest("e")},
						Reason: report.ReasonStillNeeded, Detail: "also tagged docker.io/rancher/y:1, which the plan does not name",
					},
				},
				NotPresent: []string{"docker.io/rancher/z@" + digest("f")},
			},
		},
		{
			name: "prune dangling keeps dangling images in use or pinned",
			plan: nil,
			images: []Image{
				x1,
				{ID: id("d"), Size: 7},
				{ID: id("e"), Size: 8},
				{ID: id("f"), Pinned: true},
				{ID: id("c"), RepoDigests: []string{"docker.io/rancher/c@" + digest("c")}},
				{ID: id("8"), RepoDigests: []string{"registry.k8s.io/pause@" + digest("8")}},
				{ID: id("9")},
			},
			containers: []Container{{ID: "c1", ImageRef: id("e")}},
			sandboxes:  Sandboxes{ConfiguredImage: "registry.k8s.io/pause@" + digest("8"), List: []Sandbox{{ID: "s1", Image: id("9")}}},
			opts:       prune,
			want: Decisions{Dangling: []Image{
				{ID: id("c"), RepoDigests: []string{"docker.io/rancher/c@" + digest("c")}},
				{ID: id("d"), Size: 7},
			}},
		},
		{
			name:   "dangling images stay without prune",
			images: []Image{x1, {ID: id("d")}},
			opts:   defaults,
			want:   Decisions{},
		},
		{
			name:   "an untagged image the plan names by digest is planned, not dangling",
			plan:   []string{"docker.io/rancher/x@" + digest("d")},
			images: []Image{{ID: id("a"), RepoDigests: []string{"docker.io/rancher/x@" + digest("d")}}},
			opts:   prune,
			want: Decisions{Images: []ImageDecision{
				{Image: Image{ID: id("a"), RepoDigests: []string{"docker.io/rancher/x@" + digest("d")}}, Refs: []string{"docker.io/rancher/x@" + digest("d")}, Remove: true},
			}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := mustPlan(t, tc.plan...)
			got := Decide(plan, tc.images, tc.containers, tc.sandboxes, tc.opts)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Decide:\n got %s\nwant %s", toJSON(t, got), toJSON(t, tc.want))
			}
			assertSafe(t, plan, tc.images, tc.containers, tc.sandboxes, tc.opts, got)
		})
	}
}

// assertSafe checks the safety rules on Decide's output independently of its
// implementation: nothing pinned, nothing a container or sandbox names
// plainly, not the configured sandbox image, and nothing with a tag outside
// the plan is removed; dangling means untagged.
func assertSafe(t *testing.T, plan []reference.Named, images []Image, containers []Container, sandboxes Sandboxes, opts Options, d Decisions) {
	t.Helper()
	planned := map[string]bool{}
	for _, p := range plan {
		planned[p.String()] = true
		if opts.MatchOtherRegistries {
			if tagged, ok := p.(reference.Tagged); ok {
				planned["*/"+reference.Path(p)+":"+tagged.Tag()] = true
			}
		}
	}
	var removed []Image
	for _, dec := range d.Images {
		if dec.Remove {
			removed = append(removed, dec.Image)
		}
	}
	removed = append(removed, d.Dangling...)
	for _, img := range removed {
		for _, orig := range images {
			if orig.ID == img.ID && orig.Pinned {
				t.Errorf("pinned image %s is to be removed", img.ID)
			}
		}
		for _, c := range containers {
			if c.ImageRef == img.ID || c.ImageID == img.ID || c.Image == img.ID {
				t.Errorf("image %s used by container %s is to be removed", img.ID, c.ID)
			}
		}
		names := slices.Concat([]string{img.ID}, img.RepoTags, img.RepoDigests)
		for _, sb := range sandboxes.List {
			if slices.Contains(names, sb.Image) {
				t.Errorf("image %s used by pod sandbox %s is to be removed", img.ID, sb.ID)
			}
		}
		if slices.Contains(names, sandboxes.ConfiguredImage) {
			t.Errorf("the configured sandbox image %s is to be removed", img.ID)
		}
	}
	for _, dec := range d.Images {
		if !dec.Remove {
			continue
		}
		for _, tag := range dec.Image.RepoTags {
			n, err := reference.ParseNormalizedNamed(tag)
			if err != nil {
				t.Errorf("image %s with unparsable tag %q is to be removed", dec.Image.ID, tag)
				continue
			}
			n = reference.TagNameOnly(n)
			wild := "*/" + reference.Path(n) + ":" + n.(reference.Tagged).Tag()
			if !planned[n.String()] && !planned[wild] {
				t.Errorf("image %s is to be removed with its unplanned tag %s", dec.Image.ID, tag)
			}
		}
	}
	for _, img := range d.Dangling {
		if len(img.RepoTags) > 0 {
			t.Errorf("tagged image %s is to be removed as dangling", img.ID)
		}
	}
}

func TestDecideIsDeterministic(t *testing.T) {
	plan := []string{
		"docker.io/rancher/a:1", "docker.io/rancher/b:1", "docker.io/rancher/c:1",
		"docker.io/rancher/d:1", "docker.io/rancher/gone:1", "docker.io/rancher/e:1", "docker.io/rancher/f:1",
	}
	images := []Image{
		{ID: id("1"), RepoTags: []string{"docker.io/rancher/a:1"}},
		{ID: id("2"), RepoTags: []string{"registry.local/rancher/a:1", "rancher/b:1"}},
		{ID: id("3"), RepoTags: []string{"docker.io/rancher/c:1", "docker.io/rancher/keep:1"}},
		{ID: id("4"), RepoTags: []string{"docker.io/rancher/d:1"}},
		{ID: id("5"), RepoTags: []string{"docker.io/rancher/e:1"}, Pinned: true},
		{ID: id("6")},
		{ID: id("7")},
		{ID: id("8"), RepoTags: []string{"docker.io/rancher/f:1"}},
	}
	containers := []Container{{ID: "c2", ImageRef: id("4")}, {ID: "c1", Image: "rancher/d:1"}, {ID: "c3", ImageRef: id("7")}}
	sandboxes := Sandboxes{ConfiguredImage: "rancher/f:1", List: []Sandbox{{ID: "s2", Image: "rancher/a:1"}, {ID: "s1", Image: id("1")}, {ID: "s3"}}}
	opts := Options{MatchOtherRegistries: true, PruneDangling: true}

	want := Decide(mustPlan(t, plan...), images, containers, sandboxes, opts)
	if len(want.Images) != 6 || len(want.NotPresent) != 1 || len(want.Dangling) != 1 {
		t.Fatalf("unexpected baseline decisions: %s", toJSON(t, want))
	}
	if got := want.Images[3].Detail; got != "used by containers c1 and 1 more" {
		t.Errorf("detail of the image used twice = %q, want the containers in sorted order", got)
	}
	if got := want.Images[0].Detail; got != "used by pod sandboxes s1 and 1 more" {
		t.Errorf("detail of the image two sandboxes use = %q, want the sandboxes in sorted order", got)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		p, imgs, ctrs := slices.Clone(plan), slices.Clone(images), slices.Clone(containers)
		sbs := Sandboxes{ConfiguredImage: sandboxes.ConfiguredImage, List: slices.Clone(sandboxes.List)}
		rng.Shuffle(len(sbs.List), func(i, j int) { sbs.List[i], sbs.List[j] = sbs.List[j], sbs.List[i] })
		rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		rng.Shuffle(len(imgs), func(i, j int) { imgs[i], imgs[j] = imgs[j], imgs[i] })
		rng.Shuffle(len(ctrs), func(i, j int) { ctrs[i], ctrs[j] = ctrs[j], ctrs[i] })
		// Reverse the tag order too: it must not change the outcome.
		for k := range imgs {
			imgs[k].RepoTags = slices.Clone(imgs[k].RepoTags)
			slices.Reverse(imgs[k].RepoTags)
		}
		// Bypass imagelist.Parse's sorting: Decide must not rely on it.
		var named []reference.Named
		for _, s := range p {
			n, err := reference.ParseNormalizedNamed(s)
			if err != nil {
				t.Fatal(err)
			}
			named = append(named, n)
		}
		got := Decide(named, imgs, ctrs, sbs, opts)
		// The images keep their own (shuffled) tag order; compare the rest.
		for k := range got.Images {
			slices.Sort(got.Images[k].Image.RepoTags)
		}
		wantSorted := want
		wantSorted.Images = slices.Clone(want.Images)
		for k := range wantSorted.Images {
			wantSorted.Images[k].Image.RepoTags = slices.Sorted(slices.Values(wantSorted.Images[k].Image.RepoTags))
		}
		if !reflect.DeepEqual(got, wantSorted) {
			t.Fatalf("permutation %d:\n got %s\nwant %s", i, toJSON(t, got), toJSON(t, wantSorted))
		}
	}
}

func toJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSandboxWithoutImageRunsTheConfiguredOne checks the fallback directly:
// in Decide's outcome the configured sandbox image is pinned anyway, which
// hides who uses it.
func TestSandboxWithoutImageRunsTheConfiguredOne(t *testing.T) {
	images := []Image{
		{ID: id("1"), RepoTags: []string{"registry.k8s.io/pause:3.10"}},
		{ID: id("2"), RepoTags: []string{"registry.k8s.io/pause:3.6"}},
	}
	sandboxes := Sandboxes{ConfiguredImage: "registry.k8s.io/pause:3.10", List: []Sandbox{{ID: "s1"}, {ID: "s2", Image: "registry.k8s.io/pause:3.6"}}}
	got := newImageIndex(images).usedBy(nil, sandboxes)
	want := [][]user{{{kindSandbox, "s1"}}, {{kindSandbox, "s2"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("usedBy = %v, want %v", got, want)
	}
	// Without a configured image, a sandbox of unknown image uses nothing
	// Decide can name (Run warns about it).
	got = newImageIndex(images).usedBy(nil, Sandboxes{List: []Sandbox{{ID: "s1"}}})
	if !reflect.DeepEqual(got, [][]user{nil, nil}) {
		t.Errorf("usedBy without a configured image = %v, want nothing", got)
	}
}
