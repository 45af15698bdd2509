package imagematch_test

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
)

// Two fixed, well-formed manifest digests.
var (
	digestA = "sha256:" + strings.Repeat("a", 64)
	digestB = "sha256:" + strings.Repeat("b", 64)
)

// mustParse parses s or fails the test: the inputs here are all valid.
func mustParse(t testing.TB, s string) imagematch.Ref {
	t.Helper()
	r, ok := imagematch.Parse(s)
	if !ok {
		t.Fatalf("Parse(%q): not an image reference", s)
	}
	return r
}

func mustParseAll(t testing.TB, ss []string) []imagematch.Ref {
	t.Helper()
	refs := make([]imagematch.Ref, 0, len(ss))
	for _, s := range ss {
		refs = append(refs, mustParse(t, s))
	}
	return refs
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want imagematch.Ref
	}{
		{
			name: "short form gets docker.io",
			in:   "rancher/x:1",
			want: imagematch.Ref{Raw: "rancher/x:1", Full: "docker.io/rancher/x:1", Name: "docker.io/rancher/x", Path: "rancher/x", Tag: "1"},
		},
		{
			name: "full form unchanged",
			in:   "docker.io/rancher/x:1",
			want: imagematch.Ref{Raw: "docker.io/rancher/x:1", Full: "docker.io/rancher/x:1", Name: "docker.io/rancher/x", Path: "rancher/x", Tag: "1"},
		},
		{
			name: "legacy index.docker.io host is docker.io",
			in:   "index.docker.io/rancher/x:1",
			want: imagematch.Ref{Raw: "index.docker.io/rancher/x:1", Full: "docker.io/rancher/x:1", Name: "docker.io/rancher/x", Path: "rancher/x", Tag: "1"},
		},
		{
			name: "library image, name only, gets library/ and :latest",
			in:   "busybox",
			want: imagematch.Ref{Raw: "busybox", Full: "docker.io/library/busybox:latest", Name: "docker.io/library/busybox", Path: "library/busybox", Tag: "latest"},
		},
		{
			name: "library image with tag",
			in:   "busybox:1.36",
			want: imagematch.Ref{Raw: "busybox:1.36", Full: "docker.io/library/busybox:1.36", Name: "docker.io/library/busybox", Path: "library/busybox", Tag: "1.36"},
		},
		{
			name: "name only gets :latest",
			in:   "rancher/x",
			want: imagematch.Ref{Raw: "rancher/x", Full: "docker.io/rancher/x:latest", Name: "docker.io/rancher/x", Path: "rancher/x", Tag: "latest"},
		},
		{
			name: "digest only stays without tag",
			in:   "rancher/x@" + digestA,
			want: imagematch.Ref{Raw: "rancher/x@" + digestA, Full: "docker.io/rancher/x@" + digestA, Name: "docker.io/rancher/x", Path: "rancher/x", Digest: digestA},
		},
		{
			name: "tag and digest keeps both",
			in:   "rancher/x:1@" + digestA,
			want: imagematch.Ref{Raw: "rancher/x:1@" + digestA, Full: "docker.io/rancher/x:1@" + digestA, Name: "docker.io/rancher/x", Path: "rancher/x", Tag: "1", Digest: digestA},
		},
		{
			name: "registry with port",
			in:   "registry.local:5000/rancher/x:1",
			want: imagematch.Ref{Raw: "registry.local:5000/rancher/x:1", Full: "registry.local:5000/rancher/x:1", Name: "registry.local:5000/rancher/x", Path: "rancher/x", Tag: "1"},
		},
		{
			name: "registry with port, name only gets :latest",
			in:   "registry.local:5000/rancher/x",
			want: imagematch.Ref{Raw: "registry.local:5000/rancher/x", Full: "registry.local:5000/rancher/x:latest", Name: "registry.local:5000/rancher/x", Path: "rancher/x", Tag: "latest"},
		},
		{
			name: "mirror prefix is part of the path",
			in:   "registry.local/mirror/rancher/x:1",
			want: imagematch.Ref{Raw: "registry.local/mirror/rancher/x:1", Full: "registry.local/mirror/rancher/x:1", Name: "registry.local/mirror/rancher/x", Path: "mirror/rancher/x", Tag: "1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := imagematch.Parse(tt.in)
			if !ok {
				t.Fatalf("Parse(%q): ok=false, want true", tt.in)
			}
			if got != tt.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"rancher/Xy:1",          // uppercase repository
		"docker.io/Rancher/x:1", // uppercase repository after the host
		"rancher/X",             // uppercase repository
		"rancher/x :1",          // space
		" rancher/x:1",          // leading space
		"rancher/x:1 ",          // trailing space
		"rancher/x:",            // empty tag
		"rancher/x@sha256",      // digest without hex
		"rancher/x@sha256:abc",
		":1",
		"rancher//x",
	} {
		t.Run(fmt.Sprintf("%q", in), func(t *testing.T) {
			if got, ok := imagematch.Parse(in); ok {
				t.Errorf("Parse(%q) = %+v, ok=true; want ok=false", in, got)
			}
		})
	}
}

func TestFromNamed(t *testing.T) {
	tests := []struct {
		in   string
		want imagematch.Ref
	}{
		{
			in:   "rancher/x:1",
			want: imagematch.Ref{Raw: "docker.io/rancher/x:1", Full: "docker.io/rancher/x:1", Name: "docker.io/rancher/x", Path: "rancher/x", Tag: "1"},
		},
		{
			in:   "busybox",
			want: imagematch.Ref{Raw: "docker.io/library/busybox:latest", Full: "docker.io/library/busybox:latest", Name: "docker.io/library/busybox", Path: "library/busybox", Tag: "latest"},
		},
		{
			in:   "registry.local:5000/rancher/x@" + digestB,
			want: imagematch.Ref{Raw: "registry.local:5000/rancher/x@" + digestB, Full: "registry.local:5000/rancher/x@" + digestB, Name: "registry.local:5000/rancher/x", Path: "rancher/x", Digest: digestB},
		},
		{
			in:   "rancher/x:1@" + digestA,
			want: imagematch.Ref{Raw: "docker.io/rancher/x:1@" + digestA, Full: "docker.io/rancher/x:1@" + digestA, Name: "docker.io/rancher/x", Path: "rancher/x", Tag: "1", Digest: digestA},
		},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, err := reference.ParseNormalizedNamed(tt.in)
			if err != nil {
				t.Fatalf("ParseNormalizedNamed(%q): %v", tt.in, err)
			}
			// FromNamed has no written form: Raw is the normalised one.
			if got := imagematch.FromNamed(n); got != tt.want {
				t.Errorf("FromNamed(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestRulesSameRepositoryAndTag(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		// Expected with OtherRegistries off and on.
		sameRepoOff, sameRepoOn bool
		sameTagOff, sameTagOn   bool
	}{
		{
			name: "same name and tag, short and full form",
			a:    "rancher/x:1", b: "docker.io/rancher/x:1",
			sameRepoOff: true, sameRepoOn: true, sameTagOff: true, sameTagOn: true,
		},
		{
			name: "same name and tag, different digests",
			a:    "rancher/x:1@" + digestA, b: "rancher/x:1@" + digestB,
			sameRepoOff: true, sameRepoOn: true, sameTagOff: true, sameTagOn: true,
		},
		{
			name: "same name and tag, digest on one side only",
			a:    "rancher/x:1@" + digestA, b: "rancher/x:1",
			sameRepoOff: true, sameRepoOn: true, sameTagOff: true, sameTagOn: true,
		},
		{
			name: "other host, same path",
			a:    "registry.local:5000/rancher/x:1", b: "docker.io/rancher/x:1",
			sameRepoOff: false, sameRepoOn: true, sameTagOff: false, sameTagOn: true,
		},
		{
			name: "two non-default hosts, same path",
			a:    "registry.local:5000/rancher/x:1", b: "registry.rancher.com/rancher/x:1",
			sameRepoOff: false, sameRepoOn: true, sameTagOff: false, sameTagOn: true,
		},
		{
			name: "mirror prefix: path differs",
			a:    "registry.local/mirror/rancher/x:1", b: "docker.io/rancher/x:1",
			sameRepoOff: false, sameRepoOn: false, sameTagOff: false, sameTagOn: false,
		},
		{
			name: "same name, tags differ",
			a:    "rancher/x:1", b: "rancher/x:2",
			sameRepoOff: true, sameRepoOn: true, sameTagOff: false, sameTagOn: false,
		},
		{
			name: "other host, tags differ",
			a:    "registry.local:5000/rancher/x:1", b: "rancher/x:2",
			sameRepoOff: false, sameRepoOn: true, sameTagOff: false, sameTagOn: false,
		},
		{
			name: "name only is :latest",
			a:    "rancher/x", b: "rancher/x:latest",
			sameRepoOff: true, sameRepoOn: true, sameTagOff: true, sameTagOn: true,
		},
		{
			name: "first side digest only",
			a:    "rancher/x@" + digestA, b: "rancher/x:1@" + digestA,
			sameRepoOff: true, sameRepoOn: true, sameTagOff: false, sameTagOn: false,
		},
		{
			name: "second side digest only",
			a:    "rancher/x:1@" + digestA, b: "rancher/x@" + digestA,
			sameRepoOff: true, sameRepoOn: true, sameTagOff: false, sameTagOn: false,
		},
		{
			name: "both digest only, same digest: no tag to compare",
			a:    "rancher/x@" + digestA, b: "rancher/x@" + digestA,
			sameRepoOff: true, sameRepoOn: true, sameTagOff: false, sameTagOn: false,
		},
		{
			name: "different paths, same tag",
			a:    "rancher/x:1", b: "rancher/y:1",
			sameRepoOff: false, sameRepoOn: false, sameTagOff: false, sameTagOn: false,
		},
	}
	for _, tt := range tests {
		for _, other := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/OtherRegistries=%t", tt.name, other), func(t *testing.T) {
				a, b := mustParse(t, tt.a), mustParse(t, tt.b)
				rules := imagematch.Rules{OtherRegistries: other}
				wantRepo, wantTag := tt.sameRepoOff, tt.sameTagOff
				if other {
					wantRepo, wantTag = tt.sameRepoOn, tt.sameTagOn
				}
				// Both relations are symmetric.
				for _, p := range [][2]imagematch.Ref{{a, b}, {b, a}} {
					if got := rules.SameRepository(p[0], p[1]); got != wantRepo {
						t.Errorf("SameRepository(%s, %s) = %t, want %t", p[0].Full, p[1].Full, got, wantRepo)
					}
					if got := rules.SameTag(p[0], p[1]); got != wantTag {
						t.Errorf("SameTag(%s, %s) = %t, want %t", p[0].Full, p[1].Full, got, wantTag)
					}
				}
			})
		}
	}
}

func TestDefaultRules(t *testing.T) {
	if !imagematch.DefaultRules().OtherRegistries {
		t.Errorf("DefaultRules().OtherRegistries = false; the remover's default is on")
	}
}

func TestIndexLookup(t *testing.T) {
	tests := []struct {
		name  string
		other bool
		index []string
		look  string
		// want is the Full of the matched reference; "" means no match.
		want    string
		wantWhy imagematch.Why
	}{
		// Same repository and tag.
		{
			name: "same name and tag", other: false,
			index: []string{"rancher/x:1"}, look: "docker.io/rancher/x:1",
			want: "docker.io/rancher/x:1", wantWhy: imagematch.WhySameTag,
		},
		{
			name: "same name and tag, other registries on", other: true,
			index: []string{"rancher/x:1"}, look: "docker.io/rancher/x:1",
			want: "docker.io/rancher/x:1", wantWhy: imagematch.WhySameTag,
		},
		{
			name: "same name and tag, index pins a digest", other: false,
			index: []string{"rancher/x:1@" + digestA}, look: "rancher/x:1",
			want: "docker.io/rancher/x:1@" + digestA, wantWhy: imagematch.WhySameTag,
		},
		{
			name: "same name and tag, lookup pins a digest", other: false,
			index: []string{"rancher/x:1"}, look: "rancher/x:1@" + digestA,
			want: "docker.io/rancher/x:1", wantWhy: imagematch.WhySameTag,
		},
		{
			name: "same name and tag, digests differ", other: true,
			index: []string{"rancher/x:1@" + digestB}, look: "rancher/x:1@" + digestA,
			want: "docker.io/rancher/x:1@" + digestB, wantWhy: imagematch.WhySameTag,
		},
		{
			name: "same name, other tag", other: true,
			index: []string{"rancher/x:2"}, look: "rancher/x:1",
		},
		{
			name: "other path, same tag", other: true,
			index: []string{"rancher/y:1"}, look: "rancher/x:1",
		},
		// Same path and tag under another host.
		{
			name: "other host, other registries on", other: true,
			index: []string{"registry.local:5000/rancher/x:1"}, look: "rancher/x:1",
			want: "registry.local:5000/rancher/x:1", wantWhy: imagematch.WhyOtherRegistry,
		},
		{
			name: "other host with digests, other registries on", other: true,
			index: []string{"registry.local:5000/rancher/x:1@" + digestA}, look: "rancher/x:1@" + digestB,
			want: "registry.local:5000/rancher/x:1@" + digestA, wantWhy: imagematch.WhyOtherRegistry,
		},
		{
			name: "other host, other registries off", other: false,
			index: []string{"registry.local:5000/rancher/x:1"}, look: "rancher/x:1",
		},
		{
			name: "mirror prefix, other registries on", other: true,
			index: []string{"registry.local/mirror/rancher/x:1"}, look: "rancher/x:1",
		},
		// Same digest, any repository.
		{
			name: "same digest, same repository", other: false,
			index: []string{"rancher/x@" + digestA}, look: "rancher/x@" + digestA,
			want: "docker.io/rancher/x@" + digestA, wantWhy: imagematch.WhySameDigest,
		},
		{
			name: "same digest, other repository and host, other registries off", other: false,
			index: []string{"registry.local:5000/rancher/y@" + digestA}, look: "rancher/x@" + digestA,
			want: "registry.local:5000/rancher/y@" + digestA, wantWhy: imagematch.WhySameDigest,
		},
		{
			name: "tag+digest entry found by digest-only lookup", other: false,
			index: []string{"rancher/y:1@" + digestA}, look: "rancher/x@" + digestA,
			want: "docker.io/rancher/y:1@" + digestA, wantWhy: imagematch.WhySameDigest,
		},
		{
			name: "tag+digest entry found by digest-only lookup, same repository", other: true,
			index: []string{"rancher/x:1@" + digestA}, look: "rancher/x@" + digestA,
			want: "docker.io/rancher/x:1@" + digestA, wantWhy: imagematch.WhySameDigest,
		},
		{
			name: "digest-only entry found by tag+digest lookup", other: false,
			index: []string{"rancher/x@" + digestA}, look: "rancher/x:1@" + digestA,
			want: "docker.io/rancher/x@" + digestA, wantWhy: imagematch.WhySameDigest,
		},
		{
			name: "tag differs but digest same", other: true,
			index: []string{"rancher/x:2@" + digestA}, look: "rancher/x:1@" + digestA,
			want: "docker.io/rancher/x:2@" + digestA, wantWhy: imagematch.WhySameDigest,
		},
		{
			name: "different digests, no tag", other: true,
			index: []string{"rancher/x@" + digestB}, look: "rancher/x@" + digestA,
		},
		// Nothing to compare.
		{
			name: "tag-only lookup, digest-only entry", other: true,
			index: []string{"rancher/x@" + digestA}, look: "rancher/x:1",
		},
		{
			name: "name-only lookup is :latest, digest-only entry", other: true,
			index: []string{"rancher/x@" + digestA}, look: "rancher/x",
		},
		{
			name: "digest-only lookup, tag-only entry", other: true,
			index: []string{"rancher/x:1"}, look: "rancher/x@" + digestA,
		},
		// Most specific rule.
		{
			name: "same host preferred, other host indexed first", other: true,
			index: []string{"registry.local:5000/rancher/x:1", "rancher/x:1"}, look: "docker.io/rancher/x:1",
			want: "docker.io/rancher/x:1", wantWhy: imagematch.WhySameTag,
		},
		{
			name: "same host preferred, same host indexed first", other: true,
			index: []string{"rancher/x:1", "registry.local:5000/rancher/x:1"}, look: "docker.io/rancher/x:1",
			want: "docker.io/rancher/x:1", wantWhy: imagematch.WhySameTag,
		},
		{
			name: "same host preferred, non-default host looked up", other: true,
			index: []string{"rancher/x:1", "registry.rancher.com/rancher/x:1", "registry.local:5000/rancher/x:1"}, look: "registry.rancher.com/rancher/x:1",
			want: "registry.rancher.com/rancher/x:1", wantWhy: imagematch.WhySameTag,
		},
		{
			name: "tag match preferred over digest match", other: true,
			index: []string{"rancher/y@" + digestA, "rancher/x:1"}, look: "rancher/x:1@" + digestA,
			want: "docker.io/rancher/x:1", wantWhy: imagematch.WhySameTag,
		},
		{
			name: "other host, other registries off, falls back to digest", other: false,
			index: []string{"registry.local:5000/rancher/x:1@" + digestA}, look: "rancher/x:1@" + digestA,
			want: "registry.local:5000/rancher/x:1@" + digestA, wantWhy: imagematch.WhySameDigest,
		},
		// Empty index.
		{
			name: "empty index", other: true,
			index: nil, look: "rancher/x:1@" + digestA,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := imagematch.Rules{OtherRegistries: tt.other}
			x := imagematch.NewIndex(rules, mustParseAll(t, tt.index))
			p := mustParse(t, tt.look)
			m, ok := x.Lookup(p)
			if tt.want == "" {
				if ok {
					t.Fatalf("Lookup(%s) in %v (OtherRegistries=%t) = %s (%s), want no match", p.Full, tt.index, tt.other, m.Ref.Full, m.Why)
				}
				return
			}
			if !ok {
				t.Fatalf("Lookup(%s) in %v (OtherRegistries=%t): no match, want %s (%s)", p.Full, tt.index, tt.other, tt.want, tt.wantWhy)
			}
			if m.Ref.Full != tt.want || m.Why != tt.wantWhy {
				t.Errorf("Lookup(%s) in %v (OtherRegistries=%t) = %s (%s), want %s (%s)", p.Full, tt.index, tt.other, m.Ref.Full, m.Why, tt.want, tt.wantWhy)
			}
		})
	}
}

// TestIndexLookupKeepsRaw checks that the matched Ref is the indexed one,
// with its Raw as written, not a reconstruction.
func TestIndexLookupKeepsRaw(t *testing.T) {
	in := mustParse(t, "registry.local:5000/rancher/x:1")
	x := imagematch.NewIndex(imagematch.DefaultRules(), []imagematch.Ref{in})
	m, ok := x.Lookup(mustParse(t, "rancher/x:1"))
	if !ok || m.Ref != in {
		t.Errorf("Lookup = %+v, %t; want %+v, true", m.Ref, ok, in)
	}
}

func TestIndexEmpty(t *testing.T) {
	p := mustParse(t, "rancher/x:1@"+digestA)
	for _, other := range []bool{false, true} {
		rules := imagematch.Rules{OtherRegistries: other}
		for name, x := range map[string]*imagematch.Index{
			"nil":        nil,
			"nil refs":   imagematch.NewIndex(rules, nil),
			"empty refs": imagematch.NewIndex(rules, []imagematch.Ref{}),
		} {
			t.Run(fmt.Sprintf("%s/OtherRegistries=%t", name, other), func(t *testing.T) {
				if n := x.Len(); n != 0 {
					t.Errorf("Len() = %d, want 0", n)
				}
				if m, ok := x.Lookup(p); ok {
					t.Errorf("Lookup(%s) = %s (%s), want no match", p.Full, m.Ref.Full, m.Why)
				}
			})
		}
	}
}

func TestIndexLenNonEmpty(t *testing.T) {
	for _, other := range []bool{false, true} {
		x := imagematch.NewIndex(imagematch.Rules{OtherRegistries: other}, mustParseAll(t, []string{"rancher/x:1"}))
		if x.Len() == 0 {
			t.Errorf("OtherRegistries=%t: Len() = 0 for an index of one tagged reference", other)
		}
	}
}

// pool returns every reference the property test draws from: each host,
// path, tag and digest of small pools. A reference with neither tag nor
// digest is name only and parses as :latest.
func pool(t testing.TB) []imagematch.Ref {
	t.Helper()
	var refs []imagematch.Ref
	for _, host := range []string{"docker.io", "registry.rancher.com", "registry.local:5000"} {
		for _, path := range []string{"rancher/a", "rancher/b", "library/c"} {
			for _, tag := range []string{"", "v1", "v2"} {
				for _, dg := range []string{"", digestA, digestB} {
					s := host + "/" + path
					if tag != "" {
						s += ":" + tag
					}
					if dg != "" {
						s += "@" + dg
					}
					refs = append(refs, mustParse(t, s))
				}
			}
		}
	}
	return refs
}

// couldMatch is the definition Lookup must agree with, pair by pair.
func couldMatch(rules imagematch.Rules, p, r imagematch.Ref) bool {
	return rules.SameTag(p, r) || (p.Digest != "" && p.Digest == r.Digest)
}

// checkLookup compares x.Lookup(p) with a brute-force scan of refs.
func checkLookup(t *testing.T, rules imagematch.Rules, refs []imagematch.Ref, x *imagematch.Index, p imagematch.Ref) {
	t.Helper()
	want, sameName := false, false
	for _, r := range refs {
		if couldMatch(rules, p, r) {
			want = true
		}
		if p.Tag != "" && r.Name == p.Name && r.Tag == p.Tag {
			sameName = true
		}
	}
	m, ok := x.Lookup(p)
	if ok != want {
		t.Fatalf("OtherRegistries=%t, index %v: Lookup(%s) found=%t (%s %s), brute force says %t",
			rules.OtherRegistries, fulls(refs), p.Full, ok, m.Ref.Full, m.Why, want)
	}
	if !ok {
		return
	}
	if !couldMatch(rules, p, m.Ref) {
		t.Fatalf("OtherRegistries=%t, index %v: Lookup(%s) = %s, which does not match it", rules.OtherRegistries, fulls(refs), p.Full, m.Ref.Full)
	}
	if !contains(refs, m.Ref) {
		t.Fatalf("OtherRegistries=%t, index %v: Lookup(%s) = %+v, not an indexed reference", rules.OtherRegistries, fulls(refs), p.Full, m.Ref)
	}
	// Why names a rule that holds for the pair.
	switch m.Why {
	case imagematch.WhySameTag:
		if m.Ref.Name != p.Name || m.Ref.Tag != p.Tag || p.Tag == "" {
			t.Fatalf("Lookup(%s) = %s with Why %q", p.Full, m.Ref.Full, m.Why)
		}
	case imagematch.WhyOtherRegistry:
		if !rules.OtherRegistries || m.Ref.Name == p.Name || m.Ref.Path != p.Path || m.Ref.Tag != p.Tag || p.Tag == "" {
			t.Fatalf("OtherRegistries=%t: Lookup(%s) = %s with Why %q", rules.OtherRegistries, p.Full, m.Ref.Full, m.Why)
		}
	case imagematch.WhySameDigest:
		if p.Digest == "" || m.Ref.Digest != p.Digest {
			t.Fatalf("Lookup(%s) = %s with Why %q", p.Full, m.Ref.Full, m.Why)
		}
	default:
		t.Fatalf("Lookup(%s) = %s with unknown Why %q", p.Full, m.Ref.Full, m.Why)
	}
	// The most specific rule: a same-host reference with the tag wins.
	if sameName && m.Why != imagematch.WhySameTag {
		t.Fatalf("OtherRegistries=%t, index %v: Lookup(%s) = %s (%s), but a same-name reference with the tag is indexed",
			rules.OtherRegistries, fulls(refs), p.Full, m.Ref.Full, m.Why)
	}
}

func contains(refs []imagematch.Ref, r imagematch.Ref) bool {
	for _, x := range refs {
		if x == r {
			return true
		}
	}
	return false
}

func fulls(refs []imagematch.Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Full
	}
	return out
}

// TestIndexLookupMatchesBruteForce checks Lookup against the pairwise
// definition for every probe of the pool, over lists drawn from it with a
// fixed seed (and the whole pool as one list), under both rules.
func TestIndexLookupMatchesBruteForce(t *testing.T) {
	all := pool(t)
	rng := rand.New(rand.NewSource(1))
	lists := [][]imagematch.Ref{nil, all}
	for i := 0; i < 400; i++ {
		n := rng.Intn(10)
		list := make([]imagematch.Ref, n)
		for j := range list {
			list[j] = all[rng.Intn(len(all))]
		}
		lists = append(lists, list)
	}
	for _, other := range []bool{false, true} {
		rules := imagematch.Rules{OtherRegistries: other}
		for _, list := range lists {
			x := imagematch.NewIndex(rules, list)
			for _, p := range all {
				checkLookup(t, rules, list, x, p)
			}
		}
	}
}

// FuzzParse checks that a parsed reference's normalised form parses to the
// same parts, and that an index of a reference finds that reference.
// Under plain go test only the seeds run.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"busybox", "rancher/x:1", "docker.io/rancher/x:1", "index.docker.io/rancher/x",
		"registry.local:5000/rancher/x:1", "registry.local/mirror/rancher/x:1",
		"rancher/x@" + digestA, "rancher/x:1@" + digestB, "localhost/x", "localhost:5000/a/b/c:v1.2.3",
		"", "Rancher/x", "rancher/x :1", "rancher/x@sha256:abc",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := imagematch.Parse(s)
		if !ok {
			return
		}
		if r.Raw != s {
			t.Fatalf("Parse(%q).Raw = %q", s, r.Raw)
		}
		if r.Tag == "" && r.Digest == "" {
			t.Fatalf("Parse(%q) = %+v: neither tag nor digest", s, r)
		}
		if !strings.HasSuffix(r.Name, "/"+r.Path) {
			t.Fatalf("Parse(%q) = %+v: Name does not end in Path", s, r)
		}
		again, ok := imagematch.Parse(r.Full)
		if !ok {
			t.Fatalf("Parse(%q).Full = %q does not parse", s, r.Full)
		}
		again.Raw = r.Raw
		if again != r {
			t.Fatalf("Parse(Parse(%q).Full) = %+v, want %+v", s, again, r)
		}
		for _, other := range []bool{false, true} {
			x := imagematch.NewIndex(imagematch.Rules{OtherRegistries: other}, []imagematch.Ref{r})
			m, ok := x.Lookup(r)
			if !ok || m.Ref != r {
				t.Fatalf("OtherRegistries=%t: index of %s: Lookup(itself) = %+v, %t", other, r.Full, m, ok)
			}
		}
	})
}
