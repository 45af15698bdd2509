package imagelist

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// sortKeyed orders keys as strings.Compare does: over random keys from a
// small alphabet (so that keys are often equal, prefixes of each other, or
// share long prefixes, NUL bytes and 0xff included) and over lists shaped
// like the benchmark's.
func TestSortKeyed(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var lists [][]string
	for n := range 300 {
		list := make([]string, n)
		for i := range list {
			b := []byte(strings.Repeat("docker.io/", r.IntN(3)))
			for range r.IntN(20) {
				b = append(b, "ab:/\x00\xff"[r.IntN(6)])
			}
			list[i] = string(b)
		}
		lists = append(lists, list)
	}
	bench := strings.Fields(string(benchListText(5_000)))
	lists = append(lists, bench, slices.Sorted(slices.Values(bench)), slices.Repeat([]string{"x"}, 100), []string{""})
	for i, list := range lists {
		refs := make([]keyedRef, len(list))
		for j, k := range list {
			refs[j] = keyedRef{key: k}
		}
		sortKeyed(refs)
		want := slices.Sorted(slices.Values(list))
		for j := range refs {
			if refs[j].key != want[j] {
				t.Fatalf("list %d: position %d is %q, want %q", i, j, refs[j].key, want[j])
			}
		}
	}
}

// benchListText is a list shaped like the benchmark's, with duplicates.
func benchListText(n int) []byte {
	r := rand.New(rand.NewPCG(42, 1))
	var b strings.Builder
	for i := range n {
		switch r.IntN(4) {
		case 0:
			fmt.Fprintf(&b, "docker.io/rancher/mirrored-component-%d:v%d.%d\n", i, r.IntN(3), r.IntN(30))
		case 1:
			fmt.Fprintf(&b, "registry.suse.com/suse/sles/15.6/component-%d:1.%d-150600.%d.1\n", i, r.IntN(5), r.IntN(40))
		case 2:
			fmt.Fprintf(&b, "docker.io/rancher/mirrored-component-%d:v%d.%d\n", r.IntN(n), r.IntN(3), r.IntN(30))
		default:
			fmt.Fprintf(&b, "ghcr.io/kube-vip/component-%d:v0.%d\n", i, r.IntN(9))
		}
	}
	return []byte(b.String())
}
