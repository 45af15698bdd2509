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
	defaults := DefaultOptions()
	noRewrite := Options{MatchOtherRegistries: false}
	prune := Options{MatchOtherRegistries: true, PruneDangling: true}

	cases := []struct {
		name       string
		plan       []string
		images     []Image
		containers []Container
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
				Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Reason: ReasonInUse, Detail: "used by container c1",
			}}},
		},
		{
			name:       "in use through the container image naming a short tag",
			plan:       []string{"docker.io/rancher/x:1"},
			images:     []Image{x1},
			containers: []Container{{ID: "c1", Image: "rancher/x:1"}},
			opts:       defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Reason: ReasonInUse, Detail: "used by container c1",
			}}},
		},
		{
			name:       "in use through the container image naming the ID",
			plan:       []string{"docker.io/rancher/x:1"},
			images:     []Image{x1},
			containers: []Container{{ID: "c1", Image: x1.ID}, {ID: "c2", Image: strings.TrimPrefix(x1.ID, "sha256:")[:12]}, {ID: "c3", ImageRef: y1.ID}},
			opts:       defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Reason: ReasonInUse, Detail: "used by containers c1 and 1 more",
			}}},
		},
		{
			name:       "in use through ImageID or a digested ImageRef",
			plan:       []string{"docker.io/rancher/x:1", "docker.io/rancher/y:1"},
			images:     []Image{x1, {ID: y1.ID, RepoTags: y1.RepoTags, RepoDigests: []string{"docker.io/rancher/y@" + digest("d")}}},
			containers: []Container{{ID: "c1", ImageID: x1.ID}, {ID: "c2", ImageRef: "rancher/y@" + digest("d")}},
			opts:       defaults,
			want: Decisions{Images: []ImageDecision{
				{Image: x1, Refs: []string{"docker.io/rancher/x:1"}, Reason: ReasonInUse, Detail: "used by container c1"},
				{Image: Image{ID: y1.ID, RepoTags: y1.RepoTags, RepoDigests: []string{"docker.io/rancher/y@" + digest("d")}}, Refs: []string{"docker.io/rancher/y:1"}, Reason: ReasonInUse, Detail: "used by container c2"},
			}},
		},
		{
			name:       "pinned is kept, and pinned wins over in use",
			plan:       []string{"docker.io/rancher/x:1", "docker.io/rancher/y:1"},
			images:     []Image{{ID: x1.ID, RepoTags: x1.RepoTags, Pinned: true}, {ID: y1.ID, RepoTags: y1.RepoTags, Pinned: true}},
			containers: []Container{{ID: "c1", ImageRef: y1.ID}},
			opts:       defaults,
			want: Decisions{Images: []ImageDecision{
				{Image: Image{ID: x1.ID, RepoTags: x1.RepoTags, Pinned: true}, Refs: []string{"docker.io/rancher/x:1"}, Reason: ReasonPinned, Detail: "the runtime pins the image"},
				{Image: Image{ID: y1.ID, RepoTags: y1.RepoTags, Pinned: true}, Refs: []string{"docker.io/rancher/y:1"}, Reason: ReasonPinned, Detail: "the runtime pins the image"},
			}},
		},
		{
			name:   "multi-tag image with an unplanned tag is still needed",
			plan:   []string{"docker.io/rancher/x:1"},
			images: []Image{{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1", "docker.io/rancher/x:latest"}}},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1", "docker.io/rancher/x:latest"}}, Refs: []string{"docker.io/rancher/x:1"},
				Reason: ReasonStillNeeded, Detail: "also tagged docker.io/rancher/x:latest, which the plan does not name",
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
				Reason: ReasonStillNeeded, Detail: "also tagged docker.io/rancher/keep:1, which the plan does not name",
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
				Reason: ReasonStillNeeded, Detail: "also tagged registry.local/rancher/x:1, which the plan does not name",
			}}},
		},
		{
			name:   "a tag that does not parse keeps the image",
			plan:   []string{"docker.io/rancher/x:1"},
			images: []Image{{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1", "<none>:<none>"}}},
			opts:   defaults,
			want: Decisions{Images: []ImageDecision{{
				Image: Image{ID: id("a"), RepoTags: []string{"docker.io/rancher/x:1", "<none>:<none>"}}, Refs: []string{"docker.io/rancher/x:1"},
				Reason: ReasonStillNeeded, Detail: "also tagged <none>:<none>, which the plan does not name",
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
						Reason: ReasonStillNeeded, Detail: "also tagged docker.io/rancher/y:1, which the plan does not name",
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
			},
			containers: []Container{{ID: "c1", ImageRef: id("e")}},
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
			got := Decide(plan, tc.images, tc.containers, tc.opts)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Decide:\n got %s\nwant %s", toJSON(t, got), toJSON(t, tc.want))
			}
			assertSafe(t, plan, tc.images, tc.containers, tc.opts, got)
		})
	}
}

// assertSafe checks the safety rules on Decide's output independently of its
// implementation: nothing pinned, nothing a container names plainly, and
// nothing with a tag outside the plan is removed; dangling means untagged.
func assertSafe(t *testing.T, plan []reference.Named, images []Image, containers []Container, opts Options, d Decisions) {
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
		"docker.io/rancher/d:1", "docker.io/rancher/gone:1", "docker.io/rancher/e:1",
	}
	images := []Image{
		{ID: id("1"), RepoTags: []string{"docker.io/rancher/a:1"}},
		{ID: id("2"), RepoTags: []string{"registry.local/rancher/a:1", "rancher/b:1"}},
		{ID: id("3"), RepoTags: []string{"docker.io/rancher/c:1", "docker.io/rancher/keep:1"}},
		{ID: id("4"), RepoTags: []string{"docker.io/rancher/d:1"}},
		{ID: id("5"), RepoTags: []string{"docker.io/rancher/e:1"}, Pinned: true},
		{ID: id("6")},
		{ID: id("7")},
	}
	containers := []Container{{ID: "c2", ImageRef: id("4")}, {ID: "c1", Image: "rancher/d:1"}, {ID: "c3", ImageRef: id("7")}}
	opts := Options{MatchOtherRegistries: true, PruneDangling: true}

	want := Decide(mustPlan(t, plan...), images, containers, opts)
	if len(want.Images) != 5 || len(want.NotPresent) != 1 || len(want.Dangling) != 1 {
		t.Fatalf("unexpected baseline decisions: %s", toJSON(t, want))
	}
	if got := want.Images[3].Detail; got != "used by containers c1 and 1 more" {
		t.Errorf("detail of the image used twice = %q, want the containers in sorted order", got)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		p, imgs, ctrs := slices.Clone(plan), slices.Clone(images), slices.Clone(containers)
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
		got := Decide(named, imgs, ctrs, opts)
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
