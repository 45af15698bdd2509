package imagematch_test

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
)

// oldIndex is Index as it was before its keys became substrings of Full:
// one map of Refs by "name N:T" and "path P:T" strings built per reference
// and per lookup. TestIndexMatchesOldIndex holds the Index to it.
type oldIndex struct {
	rules    imagematch.Rules
	byTag    map[string]imagematch.Ref
	byDigest map[string]imagematch.Ref
}

func newOldIndex(rules imagematch.Rules, refs []imagematch.Ref) *oldIndex {
	x := &oldIndex{rules: rules, byTag: make(map[string]imagematch.Ref, len(refs)), byDigest: map[string]imagematch.Ref{}}
	for _, r := range refs {
		if r.Tag != "" {
			for _, k := range []string{oldExactKey(r), x.tagKey(r)} {
				if old, ok := x.byTag[k]; !ok || old.Full > r.Full {
					x.byTag[k] = r
				}
			}
		}
		if r.Digest != "" {
			if _, ok := x.byDigest[r.Digest]; !ok {
				x.byDigest[r.Digest] = r
			}
		}
	}
	return x
}

func (x *oldIndex) Len() int { return len(x.byTag) + len(x.byDigest) }

func (x *oldIndex) Lookup(p imagematch.Ref) (imagematch.Match, bool) {
	if p.Tag != "" {
		if r, ok := x.byTag[oldExactKey(p)]; ok {
			return imagematch.Match{Ref: r, Why: imagematch.WhySameTag}, true
		}
		if r, ok := x.byTag[x.tagKey(p)]; ok {
			why := imagematch.WhySameTag
			if r.Name != p.Name {
				why = imagematch.WhyOtherRegistry
			}
			return imagematch.Match{Ref: r, Why: why}, true
		}
	}
	if p.Digest != "" {
		if r, ok := x.byDigest[p.Digest]; ok {
			return imagematch.Match{Ref: r, Why: imagematch.WhySameDigest}, true
		}
	}
	return imagematch.Match{}, false
}

func (x *oldIndex) tagKey(r imagematch.Ref) string {
	if x.rules.OtherRegistries {
		return "path " + r.Path + ":" + r.Tag
	}
	return oldExactKey(r)
}

func oldExactKey(r imagematch.Ref) string { return "name " + r.Name + ":" + r.Tag }

// TestIndexMatchesOldIndex checks that Index finds, for every probe, the
// very reference (and rule) the old Index found, and counts the same keys,
// and that an Index of what a Filter of some probes lets through finds the
// same for those probes:
// over lists drawn from the pool, with duplicates and several spellings of
// one reference (Raw differs), sorted by Full or not, and Refs built by
// hand whose Full does not spell Name and Tag.
func TestIndexMatchesOldIndex(t *testing.T) {
	all := pool(t)
	for _, s := range []string{"rancher/a:v1", "index.docker.io/rancher/a:v1", "registry.local:5000/rancher/a:v1@" + digestB} {
		all = append(all, mustParse(t, s))
	}
	all = append(all,
		imagematch.Ref{Raw: "odd", Full: "odd", Name: "registry.rancher.com/rancher/a", Path: "rancher/a", Tag: "v1"},
		imagematch.Ref{Raw: "odd2", Full: "x/rancher/a:v2", Name: "x/rancher/a", Path: "other/a", Tag: "v2", Digest: digestA},
	)
	rng := rand.New(rand.NewSource(2))
	lists := [][]imagematch.Ref{nil, all}
	for i := 0; i < 400; i++ {
		list := make([]imagematch.Ref, rng.Intn(20))
		for j := range list {
			list[j] = all[rng.Intn(len(all))]
		}
		// Sorted by Full, as the planner's lists are, NewIndex takes
		// another path.
		sorted := slices.Clone(list)
		slices.SortStableFunc(sorted, func(a, b imagematch.Ref) int { return strings.Compare(a.Full, b.Full) })
		lists = append(lists, list, sorted)
	}
	for _, other := range []bool{false, true} {
		rules := imagematch.Rules{OtherRegistries: other}
		for _, list := range lists {
			x, old := imagematch.NewIndex(rules, list), newOldIndex(rules, list)
			if x.Len() != old.Len() {
				t.Fatalf("OtherRegistries=%t, index %v: Len() = %d, the old index's %d", other, fulls(list), x.Len(), old.Len())
			}
			for _, p := range all {
				m, ok := x.Lookup(p)
				wm, wok := old.Lookup(p)
				if m != wm || ok != wok {
					t.Fatalf("OtherRegistries=%t, index %v: Lookup(%+v) = %+v, %t; the old index's %+v, %t", other, fulls(list), p, m, ok, wm, wok)
				}
			}
			probes := make([]imagematch.Ref, rng.Intn(8))
			for j := range probes {
				probes[j] = all[rng.Intn(len(all))]
			}
			xf := imagematch.NewIndex(rules, filtered(rules, list, probes))
			for _, p := range probes {
				m, ok := xf.Lookup(p)
				wm, wok := old.Lookup(p)
				if m != wm || ok != wok {
					t.Fatalf("OtherRegistries=%t, index %v for probes %v: Lookup(%+v) = %+v, %t; the old index's %+v, %t", other, fulls(list), fulls(probes), p, m, ok, wm, wok)
				}
			}
		}
	}
}

// filtered is the refs a Filter of probes lets through, in order.
func filtered(rules imagematch.Rules, refs, probes []imagematch.Ref) []imagematch.Ref {
	f := imagematch.NewFilter(rules, len(probes), slices.Values(probes))
	var out []imagematch.Ref
	for _, r := range refs {
		if f.MayMatch(r) {
			out = append(out, r)
		}
	}
	return out
}

// A Filter leaves out what no probe could match.
func TestFilterLeavesOutTheRest(t *testing.T) {
	var refs []string
	for i := range 1000 {
		refs = append(refs, fmt.Sprintf("docker.io/rancher/c%d:v1", i))
	}
	probe := mustParse(t, "registry.local:5000/rancher/c7:v1")
	through := filtered(imagematch.DefaultRules(), mustParseAll(t, refs), []imagematch.Ref{probe})
	if len(through) > 10 {
		t.Errorf("a filter of one probe lets %d of 1,000 references through", len(through))
	}
	x := imagematch.NewIndex(imagematch.DefaultRules(), through)
	if m, ok := x.Lookup(probe); !ok || m.Ref.Full != "docker.io/rancher/c7:v1" || m.Why != imagematch.WhyOtherRegistry {
		t.Errorf("Lookup(%s) = %+v, %t", probe.Full, m, ok)
	}
}
