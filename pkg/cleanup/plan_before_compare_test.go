package cleanup_test

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
)

// parseWithLibrary is imagelist.Parse as it was before its fast path: every
// line through reference.ParseNormalizedNamed, sorted and unique.
func parseWithLibrary(t testing.TB, text []byte) []reference.Named {
	t.Helper()
	var out []reference.Named
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		n, err := reference.ParseNormalizedNamed(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, reference.TagNameOnly(n))
	}
	slices.SortFunc(out, func(a, b reference.Named) int { return strings.Compare(a.String(), b.String()) })
	return slices.CompactFunc(out, func(a, b reference.Named) bool { return a.String() == b.String() })
}

// spellingLists returns a previous and a current list of n lines drawn from
// a small pool of hosts, paths, tags and digests, so that the lists share
// images under other hosts, other spellings and digests, plus 30 chains
// of spellings that take three same-as-kept rounds: what benchUpgradeLists
// has none of.
func spellingLists(n int, seed uint64) (previous, current []byte) {
	r := rand.New(rand.NewPCG(seed, 3))
	hosts := []string{"", "docker.io/", "index.docker.io/", "registry.rancher.com/", "registry.local:5000/", "localhost/"}
	var paths []string
	for i := range 150 {
		paths = append(paths, fmt.Sprintf("rancher/c%d", i), fmt.Sprintf("library/l%d", i), fmt.Sprintf("l%d", i))
	}
	paths = append(paths, "rancher/harvester-upgrade", "longhornio/longhorn-engine", "mirror/rancher/harvester-upgrade")
	digest := func(c byte) string { return "@sha256:" + strings.Repeat(string(c), 64) }
	// The current version moves tags on: v1 and v2 are in both lists, v0
	// only in the previous one, v3 only in the current one.
	prevTags := []string{"", ":v0", ":v1", ":v2", ":v1-hotfix", ":latest"}
	curTags := []string{":v1", ":v2", ":v3", ":latest"}
	digests := []string{"", "", "", "", "", "", digest('a'), digest('b'), digest('c'), digest('d')}
	line := func(tags []string) string {
		s := hosts[r.IntN(len(hosts))] + paths[r.IntN(len(paths))] + tags[r.IntN(len(tags))] + digests[r.IntN(len(digests))]
		if r.IntN(20) == 0 {
			s = " " + s + "\t"
		}
		return s
	}
	var prev, cur bytes.Buffer
	for range n {
		fmt.Fprintln(&prev, line(prevTags))
		fmt.Fprintln(&cur, line(curTags))
	}
	// Chains that take three same-as-kept rounds: x is in both lists; y
	// has x's digest; z has y's path and tag on another host, and a digest
	// that w has too.
	for k := range 30 {
		dx, dz := fmt.Sprintf("@sha256:%064x", 1000+k), fmt.Sprintf("@sha256:%064x", 2000+k)
		fmt.Fprintf(&cur, "docker.io/chain/x%d:v9%s\n", k, dx)
		fmt.Fprintf(&prev, "docker.io/chain/x%d:v9%s\n", k, dx)
		fmt.Fprintf(&prev, "registry.rancher.com/chain/y%d:old%s\n", k, dx)
		fmt.Fprintf(&prev, "registry.local:5000/chain/y%d:old%s\n", k, dz)
		fmt.Fprintf(&prev, "quay.io/chain/w%d:q%s\n", k, dz)
	}
	return prev.Bytes(), cur.Bytes()
}

// TestComputePlanMatchesBefore checks that imagelist.Parse and ComputePlan
// give, for the benchmark's lists and for lists full of other spellings,
// exactly the plan that the library's parser and ComputePlan as it was
// before issue 16 (ComputePlanBefore) give, under the remover's rules both
// ways and with and without retain entries and exclusions.
func TestComputePlanMatchesBefore(t *testing.T) {
	bench, err := cleanup.NewPolicy(cleanup.DefaultRetain(), []string{"docker.io/rancher/mirrored-component-1*", "*:*-hotfix"})
	if err != nil {
		t.Fatal(err)
	}
	spelled, err := cleanup.NewPolicy(append(cleanup.DefaultRetain(), "library/l7"), []string{"l1*", "registry.local:5000/*:v2", "*@sha256:b*"})
	if err != nil {
		t.Fatal(err)
	}
	none, err := cleanup.NewPolicy(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	type lists struct {
		name              string
		previous, current []byte
	}
	var all []lists
	prev, cur := benchUpgradeLists(5_000, 7)
	all = append(all, lists{"bench 5000", prev, cur})
	for seed := range uint64(4) {
		prev, cur := spellingLists(2_000, seed)
		all = append(all, lists{fmt.Sprintf("spellings seed %d", seed), prev, cur})
	}
	prev, cur = spellingLists(2_000, 9)
	all = append(all, lists{"spellings, duplicated and shuffled", prev, cur})
	for _, l := range all {
		prevRefs, err := imagelist.Parse(bytes.NewReader(l.previous), "previous")
		if err != nil {
			t.Fatal(err)
		}
		curRefs, err := imagelist.Parse(bytes.NewReader(l.current), "current")
		if err != nil {
			t.Fatal(err)
		}
		prevLib, curLib := parseWithLibrary(t, l.previous), parseWithLibrary(t, l.current)
		if strings.HasSuffix(l.name, "shuffled") {
			// ComputePlan is documented for Parse's sorted, unique lists;
			// it must not depend on that for its results.
			prevRefs, prevLib = shuffled(prevRefs, prevLib)
			curRefs, curLib = shuffled(curRefs, curLib)
		}
		for name, p := range map[string]cleanup.Policy{"bench policy": bench, "spellings policy": spelled, "no retain, no exclude": none} {
			for _, other := range []bool{true, false} {
				p := p.WithRules(imagematch.Rules{OtherRegistries: other})
				t.Run(fmt.Sprintf("%s/%s/OtherRegistries=%t", l.name, name, other), func(t *testing.T) {
					got := cleanup.ComputePlan(prevRefs, curRefs, p)
					want := cleanup.ComputePlanBefore(prevLib, curLib, p)
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("plan differs from the one before:\n%s", planDiff(got, want))
					}
					if len(want.Remove) == 0 || len(want.Kept) == 0 {
						t.Fatalf("the lists plan %d removals and %d kept: they test nothing", len(want.Remove), len(want.Kept))
					}
					rules := map[cleanup.Rule]int{}
					for _, k := range want.Kept {
						rules[k.Rule]++
					}
					t.Logf("%d removed, kept by rule %v", len(want.Remove), rules)
				})
			}
		}
	}
}

// shuffled returns a and b, two lists of the same references, in one
// random order, with some of them twice.
func shuffled(a, b []reference.Named) ([]reference.Named, []reference.Named) {
	if len(a) != len(b) {
		panic("lists of different lengths")
	}
	r := rand.New(rand.NewPCG(5, 6))
	perm := r.Perm(len(a))
	perm = append(perm, perm[:len(perm)/10]...)
	var sa, sb []reference.Named
	for _, i := range perm {
		sa, sb = append(sa, a[i]), append(sb, b[i])
	}
	return sa, sb
}

// planDiff names the first difference of each of a plan's fields.
func planDiff(got, want cleanup.Plan) string {
	var b strings.Builder
	first := func(field string, g, w []string) {
		for i := range max(len(g), len(w)) {
			var gs, ws string
			if i < len(g) {
				gs = g[i]
			}
			if i < len(w) {
				ws = w[i]
			}
			if gs != ws {
				fmt.Fprintf(&b, "%s[%d] = %q, want %q (lengths %d, %d)\n", field, i, gs, ws, len(g), len(w))
				return
			}
		}
		if (g == nil) != (w == nil) {
			fmt.Fprintf(&b, "%s nil: %t, want %t\n", field, g == nil, w == nil)
		}
	}
	kept := func(ks []cleanup.Kept) []string {
		var out []string
		for _, k := range ks {
			out = append(out, fmt.Sprintf("%+v", k))
		}
		return out
	}
	first("Remove", got.Remove, want.Remove)
	first("Kept", kept(got.Kept), kept(want.Kept))
	first("Keep", got.Keep, want.Keep)
	first("CatchUp", got.CatchUp, want.CatchUp)
	first("CatchUpMissing", got.CatchUpMissing, want.CatchUpMissing)
	return b.String()
}
