package imagelist

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
)

const (
	hexA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	hexB = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// describe renders everything the module or the library's helpers can see
// of a reference: its strings, the interfaces it implements, its familiar
// form and imagematch's split of it. Two references that describe alike are
// the same to every caller of Parse.
func describe(n reference.Named) string {
	var b strings.Builder
	describeTo(&b, n, true)
	r := imagematch.FromNamed(n)
	fmt.Fprintf(&b, " imagematch=%+v", r)
	return b.String()
}

func describeTo(b *strings.Builder, n reference.Named, familiar bool) {
	fmt.Fprintf(b, "String=%q Name=%q Domain=%q Path=%q FamiliarString=%q FamiliarName=%q NameOnly=%v",
		n.String(), n.Name(), reference.Domain(n), reference.Path(n), reference.FamiliarString(n), reference.FamiliarName(n), reference.IsNameOnly(n))
	if t, ok := n.(reference.Tagged); ok {
		fmt.Fprintf(b, " Tag=%q", t.Tag())
	}
	if d, ok := n.(reference.Digested); ok {
		fmt.Fprintf(b, " Digest=%q", d.Digest())
	}
	_, nt := n.(reference.NamedTagged)
	_, c := n.(reference.Canonical)
	fmt.Fprintf(b, " NamedTagged=%v Canonical=%v TagNameOnly=%q", nt, c, reference.TagNameOnly(n).String())
	f, ok := n.(interface{ Familiar() reference.Named })
	switch {
	case !ok:
		b.WriteString(" no Familiar()")
	case familiar:
		b.WriteString(" Familiar(){")
		describeTo(b, f.Familiar(), false)
		b.WriteString("}")
	}
}

// library is what Parse returned for every line before parseFast:
// TagNameOnly(ParseNormalizedNamed(s)).
func library(s string) (reference.Named, error) {
	n, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, err
	}
	return reference.TagNameOnly(n), nil
}

// referenceSeeds are single references: what Harvester's lists hold, and the
// forms around the edges of the fast path's grammar.
func referenceSeeds() []string {
	long := func(n int) string { return strings.Repeat("a", n) }
	return []string{
		// Harvester's own lines.
		"docker.io/rancher/harvester:v1.4.1",
		"docker.io/rancher/harvester-upgrade:v1.4.1",
		"docker.io/rancher/hardened-kubernetes:v1.30.7-rke2r1-build20241121",
		"docker.io/rancher/mirrored-banzaicloud-fluentd:v1.14.6-alpine-5",
		"docker.io/longhornio/longhorn-engine:v1.7.2",
		"docker.io/rancher/mirrored-pause:3.6",
		"registry.suse.com/suse/sles/15.6/virt-operator:1.3.1-150600.5.9.1",
		"registry.suse.com/harvester-beta/vmdp:2.5.4.2",
		"ghcr.io/kube-vip/kube-vip-iptables:v0.8.7",
		"registry.k8s.io/sig-storage/csi-snapshotter:v8.1.0",
		"quay.io/ceph/ceph@sha256:" + hexA,
		// Short forms and Docker Hub's spellings.
		"rancher/harvester:v1.4.1", "rancher/harvester", "busybox", "busybox:1.36", "busybox@sha256:" + hexA,
		"docker.io/busybox", "docker.io/library/busybox:1.36", "docker.io/library/a/b:1", "library/busybox",
		"index.docker.io/busybox", "index.docker.io/rancher/x:1", "index.docker.io/library/busybox:latest",
		"index.docker.io:443/x:1", "docker.io:443/x", "docker.io", "docker.io/", "registry-1.docker.io/rancher/x:1",
		// Hosts and ports.
		"myreg.local:5000/rancher/x:1", "127.0.0.1:5000/x", "localhost/x", "localhost:5000/a/b:c", "localhost",
		"localhost:5000", "localhost/x:1@sha256:" + hexA, "foo:5000", "example.com/x", "a-b.c-d/x", "-a.b/x",
		"a.b-/x", "a..b/x", "a.b./x", ".a.b/x", "a.b:/x", "a.b:x/y", "a.b:0005/x", ":5000/x", "host:5000", "foo/bar:5000/x",
		// IPv6-ish hosts: the library takes [::1], the fast path leaves it.
		"[::1]:5000/x:1", "[fe80::1]/x", "[::1]/x", "::1/x", "[::1", "[]/x", "[zz]/x",
		// Digests.
		"rancher/x@sha256:" + hexA, "rancher/x:1@sha256:" + hexA, "rancher/x@sha256:" + hexA[:63],
		"rancher/x@sha256:" + hexA + "0", "rancher/x@sha256:" + strings.ToUpper(hexA),
		"rancher/x@sha512:" + hexA + hexB, "rancher/x@sha384:" + hexA + hexB[:32], "rancher/x@md5:" + hexA[:32],
		"rancher/x@SHA256:" + hexA, "rancher/x@sha256:", "rancher/x@", "rancher/x:1@", "@sha256:" + hexA,
		"sha256:" + hexA, hexA, hexA[:63], hexA + "0", strings.ToUpper(hexA), "rancher/" + hexA,
		// Uppercase.
		"Rancher/x:1", "rancher/X:1", "rancher/x:TAG", "docker.io/Rancher/x", "REGISTRY.example.com/x",
		"Registry.Example.com:5000/rancher/x:V1", "localhost/X", "UPPER",
		// Separators and tags.
		"a__b/c", "a___b/c", "a-_b/c", "a.-b/c", "a--b/c", "a_b.c-d__e/f", "a/_b", "a//b", "/a", "a/", "a:",
		"a@", ":a", "a:1:2", "a:1@sha256:" + hexA + "@x", "a:_t", "a:.t", "a:-t", "a:t.", "a:t/b", "a b",
		"a\tb", "a:" + long(128), "a:" + long(129), "rancher/x:v1.2.3-rc.1+build", "a.b.c/d.e_f__g---h/i",
		// Lengths: 255 bytes of path is the most, library/ counts.
		"rancher/" + long(247), "rancher/" + long(248), "docker.io/rancher/" + long(247), long(246), long(247),
		long(255), "example.com/" + long(255), "example.com/" + long(256), long(60) + "." + long(200) + "/x",
		"", " rancher/x", "rancher/x ", "é/x", "rancher/x:é",
	}
}

// FuzzParseMatchesReference checks parseFast against the library: whatever
// it accepts, the library accepts, with a result no caller can tell apart;
// whatever the library refuses, it refuses. Parse, fast path and fallback
// together, accepts exactly the lines the library does. Run it longer with
//
//	go test -run XXX -fuzz FuzzParseMatchesReference -fuzztime 60s ./pkg/imagelist
func FuzzParseMatchesReference(f *testing.F) {
	for _, s := range referenceSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := library(s)
		got, ok := parseFast(s)
		switch {
		case ok && err != nil:
			t.Fatalf("parseFast(%q) = %q, the library refuses it: %v", s, got, err)
		case ok:
			if g, w := describe(got), describe(want); g != w {
				t.Fatalf("parseFast(%q):\n got %s\nwant %s", s, g, w)
			}
		}
		// A line as Parse reads it: trimmed, on its own.
		if s != strings.TrimSpace(s) || s == "" || strings.ContainsAny(s, "\n") || len(s) > maxLineBytes {
			return
		}
		list, perr := Parse(strings.NewReader(s), "fuzz")
		if (perr == nil) != (err == nil) {
			t.Fatalf("Parse(%q) error %v, the library's %v", s, perr, err)
		}
		if perr == nil {
			if len(list) != 1 || describe(list[0]) != describe(want) {
				t.Fatalf("Parse(%q) = %q, want %q", s, list, want)
			}
		}
	})
}

// The fast path takes the forms lists are made of; the library has the rest.
func TestParseFastTakesTheCommonForms(t *testing.T) {
	for _, s := range []string{
		"docker.io/rancher/harvester:v1.4.1", "rancher/harvester:v1.4.1", "rancher/harvester", "busybox",
		"busybox:1.36", "docker.io/busybox", "docker.io/library/busybox:1.36", "index.docker.io/rancher/x:1",
		"registry.suse.com/suse/sles/15.6/virt-operator:1.3.1-150600.5.9.1", "localhost/x", "localhost:5000/a/b:c",
		"myreg.local:5000/rancher/x:1", "127.0.0.1:5000/x", "rancher/x@sha256:" + hexA,
		"rancher/x:1@sha256:" + hexA, "rancher/x:TAG_1.2-3", "a__b/c-d/e---f.g",
	} {
		got, ok := parseFast(s)
		if !ok {
			t.Errorf("parseFast(%q) falls back", s)
			continue
		}
		want, err := library(s)
		if err != nil {
			t.Fatalf("library(%q): %v", s, err)
		}
		if g, w := describe(got), describe(want); g != w {
			t.Errorf("parseFast(%q):\n got %s\nwant %s", s, g, w)
		}
	}
	for _, s := range []string{
		"[::1]:5000/x:1", "Registry.example.com/x", "rancher/x@sha512:" + hexA + hexB, "rancher/X", hexA,
		// The library takes a first component with a dot that is no host
		// name as a path on no registry at all.
		"a__b.c-d/e",
	} {
		if got, ok := parseFast(s); ok {
			t.Errorf("parseFast(%q) = %q, want a fallback", s, got)
		}
	}
}

// An already normalised line costs no copy: the reference is the line.
func TestParseFastKeepsTheLine(t *testing.T) {
	line := "registry.suse.com/suse/sles/15.6/virt-operator:1.3.1"
	got, ok := parseFast(line)
	if !ok {
		t.Fatalf("parseFast(%q) falls back", line)
	}
	if s := got.String(); s != line || unsafe.StringData(s) != unsafe.StringData(line) {
		t.Errorf("String() = %q is a copy of the line", s)
	}
	if n := testing.AllocsPerRun(100, func() { parseFast(line) }); n > 1 {
		t.Errorf("parseFast allocates %v times for a normalised line, want at most 1 (the interface value)", n)
	}
}

// parseWithScanner is Parse as it was before parseFast and readList: a
// bufio.Scanner over the lines, the library for every one.
func parseWithScanner(r io.Reader, source string) ([]reference.Named, error) {
	var out []reference.Named
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxLineBytes+2)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if len(text) > maxLineBytes {
			return nil, fmt.Errorf("%s line %d: longer than %d bytes", source, line, maxLineBytes)
		}
		named, err := reference.ParseNormalizedNamed(text)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %q is not an image reference: %s", source, line, Truncate(text, 80), Truncate(Printable(err.Error()), 160))
		}
		out = append(out, reference.TagNameOnly(named))
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s line %d: longer than %d bytes", source, line+1, maxLineBytes)
		}
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	slices.SortFunc(out, func(a, b reference.Named) int { return strings.Compare(a.String(), b.String()) })
	return slices.CompactFunc(out, func(a, b reference.Named) bool { return a.String() == b.String() }), nil
}

// FuzzParseMatchesScanner checks Parse against parseWithScanner on whole
// lists: the same references, or the same error.
func FuzzParseMatchesScanner(f *testing.F) {
	seeds := referenceSeeds()
	f.Add(strings.Join(seeds, "\n"))
	f.Add(strings.Join(seeds[:20], "\r\n") + "\r\n")
	for _, s := range seeds {
		f.Add(" " + s + "\t\n\n")
	}
	for _, n := range []int{4095, 4096, 4097, 4098, 4099, 8200} {
		f.Add("rancher/x:1\n" + strings.Repeat("a", n) + "\nrancher/y:1\n")
		f.Add("rancher/x:1\n" + strings.Repeat("a", n))
		f.Add("rancher/x:1\n" + strings.Repeat(" ", n-10) + "rancher/y\n")
	}
	f.Add("rancher/x\nrancher/x:latest\ndocker.io/rancher/x\nindex.docker.io/rancher/x:latest\n")
	f.Add("\x00\xff\n\u00a0rancher/x\u0085\n")
	f.Fuzz(func(t *testing.T, input string) {
		got, err := Parse(strings.NewReader(input), "fuzz")
		want, werr := parseWithScanner(strings.NewReader(input), "fuzz")
		if fmt.Sprint(err) != fmt.Sprint(werr) {
			t.Fatalf("Parse() error %v, want %v", err, werr)
		}
		if len(got) != len(want) {
			t.Fatalf("Parse() = %d references, want %d", len(got), len(want))
		}
		for i := range got {
			if g, w := describe(got[i]), describe(want[i]); g != w {
				t.Fatalf("reference %d:\n got %s\nwant %s", i, g, w)
			}
		}
	})
}

// Read errors and readers that return nothing end the list as the
// Scanner's did: an error naming the source, and no references.
func TestParseReadErrors(t *testing.T) {
	boom := errors.New("boom")
	for name, r := range map[string]func() io.Reader{
		"error after lines": func() io.Reader {
			return io.MultiReader(strings.NewReader("rancher/x:1\nrancher/y:1\n"), errReader{boom})
		},
		"error after a bad line": func() io.Reader {
			return io.MultiReader(strings.NewReader("rancher/x:1\nNot A Ref\n"), errReader{boom})
		},
		"no progress":            func() io.Reader { return emptyReader{} },
		"no progress after data": func() io.Reader { return io.MultiReader(strings.NewReader("rancher/x:1\n"), emptyReader{}) },
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(r(), "list")
			want, werr := parseWithScanner(r(), "list")
			if err == nil || fmt.Sprint(err) != fmt.Sprint(werr) || got != nil || want != nil {
				t.Errorf("Parse() = %q, %v; the Scanner's %q, %v", got, err, want, werr)
			}
		})
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

// A stream with a line that never ends is not read to its end.
func TestParseStopsAtALineTooLong(t *testing.T) {
	r := &countingReader{}
	_, err := Parse(r, "list")
	if err == nil || !strings.Contains(err.Error(), "list line 1: longer than 4096 bytes") {
		t.Fatalf("Parse() error %v", err)
	}
	if r.n > 64<<10 {
		t.Errorf("Parse() read %d bytes of an endless line", r.n)
	}
}

type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	r.n += len(p)
	return len(p), nil
}
