package imagelist_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
)

// benchList returns a synthetic image_list_all.txt of n lines, shaped like
// Harvester's: mostly fully-qualified docker.io references, a fifth from
// registry.suse.com with SUSE's long tags, a few from other registries, some
// in the short form (rancher/x:1) that Parse normalises, and about one in
// fifty pinned by digest. Lines come in shuffled order and with a few
// duplicates, so Parse also sorts and deduplicates. The same seed gives the
// same list.
func benchList(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var buf bytes.Buffer
	for i := range n {
		var line string
		switch p := r.IntN(100); {
		case p < 60:
			line = fmt.Sprintf("docker.io/rancher/mirrored-component-%d:v%d.%d.%d", i, 1+r.IntN(3), r.IntN(30), r.IntN(20))
		case p < 70:
			line = fmt.Sprintf("rancher/hardened-component-%d:v1.%d.%d-build2024%04d", i, r.IntN(30), r.IntN(10), r.IntN(10000))
		case p < 90:
			line = fmt.Sprintf("registry.suse.com/suse/sles/15.6/component-%d:1.%d.%d-150600.%d.%d.1", i, r.IntN(5), r.IntN(20), r.IntN(20), r.IntN(40))
		case p < 98:
			line = fmt.Sprintf("ghcr.io/kube-vip/component-%d:v0.%d.%d", i, r.IntN(9), r.IntN(9))
		default:
			line = fmt.Sprintf("quay.io/ceph/component-%d@sha256:%064x", i, r.Uint64())
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
		if r.IntN(100) == 0 { // the odd duplicate line
			buf.WriteString(line)
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}

// BenchmarkParse parses image lists of 5,000 and 50,000 lines (Harvester's
// real lists have a few hundred).
func BenchmarkParse(b *testing.B) {
	for _, n := range []int{5_000, 50_000} {
		b.Run(fmt.Sprintf("images=%d", n), func(b *testing.B) {
			list := benchList(n, 42)
			b.SetBytes(int64(len(list)))
			b.ReportAllocs()
			for b.Loop() {
				refs, err := imagelist.Parse(bytes.NewReader(list), "bench")
				if err != nil {
					b.Fatal(err)
				}
				if len(refs) != n {
					b.Fatalf("parsed %d references, want %d", len(refs), n)
				}
			}
			b.ReportMetric(float64(len(list)), "list-bytes")
		})
	}
}
