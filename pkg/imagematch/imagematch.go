// Package imagematch is the one definition of "the same image" that the
// planner, the offline plan preview and the node-side remover share.
//
// The remover finds a node's image for a planned reference by tag (or by
// digest), and CRI's RemoveImage then removes the image with every name it
// has. So whatever the remover would take for the planned image must never
// be an image the new version still ships: the planner keeps a previous
// image when any reference of the current list could match the same node
// image under these rules, and the remover refuses a match that a kept
// reference covers.
package imagematch

import (
	"hash/maphash"
	"iter"
	"slices"
	"strings"

	"github.com/distribution/reference"
)

// Ref is an image reference split into the parts matching compares.
type Ref struct {
	// Raw is the reference as it was written (by a list, a plan or a runtime).
	Raw string
	// Full is the normalised reference: docker.io/rancher/x:1; a name
	// without tag or digest gets :latest.
	Full string
	// Name is the repository with its registry host: docker.io/rancher/x.
	Name string
	// Path is the repository without the registry host: rancher/x.
	Path string
	// Tag and Digest are empty when the reference has none.
	Tag    string
	Digest string
}

// Parse normalises s; ok is false when s is not an image reference.
func Parse(s string) (Ref, bool) {
	n, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Ref{}, false
	}
	r := FromNamed(n)
	r.Raw = s
	return r, true
}

// FromNamed splits an already parsed reference.
func FromNamed(n reference.Named) Ref {
	n = reference.TagNameOnly(n)
	r := Ref{Full: n.String(), Name: n.Name(), Path: reference.Path(n)}
	r.Raw = r.Full
	if t, ok := n.(reference.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := n.(reference.Digested); ok {
		r.Digest = d.Digest().String()
	}
	return r
}

// Rules are the remover's matching rules.
type Rules struct {
	// OtherRegistries makes a repository the same under any registry host
	// when its path is the same (docker.io/rancher/x is
	// registry.local:5000/rancher/x), as air-gapped registries rewrite the
	// host. The remover's --match-other-registries; on by default.
	OtherRegistries bool
}

// DefaultRules are the remover's defaults.
func DefaultRules() Rules { return Rules{OtherRegistries: true} }

// SameRepository reports whether a and b name one repository.
func (r Rules) SameRepository(a, b Ref) bool {
	return a.Name == b.Name || (r.OtherRegistries && a.Path == b.Path)
}

// SameTag reports whether a and b name one tag of one repository, whatever
// digest either writes beside it.
func (r Rules) SameTag(a, b Ref) bool {
	return a.Tag != "" && a.Tag == b.Tag && r.SameRepository(a, b)
}

// SameDigest reports whether a and b name one manifest digest of one
// repository: how a planned digest names a node image's repo digest.
func (r Rules) SameDigest(a, b Ref) bool {
	return a.Digest != "" && a.Digest == b.Digest && r.SameRepository(a, b)
}

// Why names the rule by which two references may name one node image.
type Why string

// The rules, as plan output and the remover's reasons show them: one word
// each, so a table column or a script can take them as they are.
const (
	// WhySameTag: same repository and tag (a digest written on either side
	// does not matter: one list may pin it, the other not).
	WhySameTag Why = "same-repository-and-tag"
	// WhyOtherRegistry: same repository path and tag under another registry host.
	WhyOtherRegistry Why = "same-path-and-tag-on-another-registry"
	// WhySameDigest: same manifest digest, in any repository: one image.
	WhySameDigest Why = "same-digest"
)

// Match is a reference of an Index that could name the same node image as
// the one looked up, and why.
type Match struct {
	Ref Ref
	Why Why
}

// Index answers "could any of these references name the same node image as
// this one?" in constant time per lookup, for lists of tens of thousands.
type Index struct {
	rules Rules
	refs  []Ref
	// byName maps Name:Tag, byPath Path:Tag (while rules.OtherRegistries)
	// and byDigest the digest to an index into refs. The keys are
	// substrings of a reference's Full, so building and looking up
	// allocate nothing but the maps.
	byName, byPath, byDigest map[string]int32
}

// NewIndex indexes refs under rules. The Index keeps refs: they must not
// change while it is in use.
func NewIndex(rules Rules, refs []Ref) *Index {
	x := &Index{rules: rules, refs: refs, byName: make(map[string]int32, len(refs))}
	if rules.OtherRegistries {
		x.byPath = make(map[string]int32, len(refs))
	}
	// The first reference in sort order stands for each tag key, so the same
	// lists always give the same match; the first in refs for each digest.
	// Lookup tries the exact name first, so Why is the most specific rule
	// that applies. Walking refs backwards, the last write to a key is the
	// first reference: one map write per key and no read. When refs is not
	// sorted by Full, keepLeast compares.
	sorted := slices.IsSortedFunc(refs, func(a, b Ref) int { return strings.Compare(a.Full, b.Full) })
	for i := len(refs) - 1; i >= 0; i-- {
		r := &refs[i]
		if r.Tag != "" {
			name, path := tagKeys(r)
			if sorted {
				x.byName[name] = int32(i)
				if x.byPath != nil {
					x.byPath[path] = int32(i)
				}
			} else {
				x.keepLeast(x.byName, name, i)
				if x.byPath != nil {
					x.keepLeast(x.byPath, path, i)
				}
			}
		}
		if r.Digest != "" {
			if x.byDigest == nil {
				x.byDigest = map[string]int32{}
			}
			x.byDigest[r.Digest] = int32(i)
		}
	}
	return x
}

// Filter answers "could r share a key with any of the probes?" with
// "maybe" or "no", quickly and in little memory: an Index of only the refs
// it says maybe to answers every probe as an Index of all refs would (a ref
// that shares no key with any probe is one no Lookup of a probe returns).
// It holds two bits per key of a bit set of 16 bits per expected key, so
// about one ref in a hundred that shares no key is a "maybe" too.
type Filter struct {
	rules Rules
	seed  maphash.Seed
	bits  []uint64
}

// NewFilter returns a Filter of the keys of probes, of which there are
// about n.
func NewFilter(rules Rules, n int, probes iter.Seq[Ref]) *Filter {
	size := 1024
	for size < 16*n {
		size *= 2
	}
	f := &Filter{rules: rules, seed: maphash.MakeSeed(), bits: make([]uint64, size/64)}
	for p := range probes {
		if p.Tag != "" {
			name, path := tagKeys(&p)
			f.add(nameKey, name)
			if rules.OtherRegistries {
				f.add(pathKey, path)
			}
		}
		if p.Digest != "" {
			f.add(digestKey, p.Digest)
		}
	}
	return f
}

// MayMatch reports whether r may share a key with one of the probes under
// the rules: false only when it shares none.
func (f *Filter) MayMatch(r Ref) bool {
	if r.Tag != "" {
		name, path := tagKeys(&r)
		if f.has(nameKey, name) || f.rules.OtherRegistries && f.has(pathKey, path) {
			return true
		}
	}
	return r.Digest != "" && f.has(digestKey, r.Digest)
}

// The kinds of key, mixed into the hash, as one string may be a name key
// of one reference and a path key of another.
const (
	nameKey uint64 = iota + 1
	pathKey
	digestKey
)

func (f *Filter) positions(kind uint64, key string) (uint64, uint64) {
	h := maphash.String(f.seed, key) ^ kind*0x9e3779b97f4a7c15
	mask := uint64(len(f.bits)*64 - 1)
	return h & mask, (h >> 32) & mask
}

func (f *Filter) add(kind uint64, key string) {
	a, b := f.positions(kind, key)
	f.bits[a/64] |= 1 << (a % 64)
	f.bits[b/64] |= 1 << (b % 64)
}

func (f *Filter) has(kind uint64, key string) bool {
	a, b := f.positions(kind, key)
	return f.bits[a/64]&(1<<(a%64)) != 0 && f.bits[b/64]&(1<<(b%64)) != 0
}

// keepLeast maps k to refs[i] unless it maps to a reference whose Full sorts
// before it or the same (which, walking backwards, comes first in refs).
func (x *Index) keepLeast(m map[string]int32, k string, i int) {
	if old, ok := m[k]; !ok || x.refs[old].Full >= x.refs[i].Full {
		m[k] = int32(i)
	}
}

// Len is the number of lookup keys; an empty Index matches nothing.
func (x *Index) Len() int {
	if x == nil {
		return 0
	}
	return len(x.byName) + len(x.byPath) + len(x.byDigest)
}

// Lookup returns a reference of the index that could name the same node
// image as p: the same repository (under the rules) and tag, whatever digest
// either writes; or the same digest in any repository.
func (x *Index) Lookup(p Ref) (Match, bool) {
	if x == nil {
		return Match{}, false
	}
	if p.Tag != "" {
		name, path := tagKeys(&p)
		if i, ok := x.byName[name]; ok {
			return Match{Ref: x.refs[i], Why: WhySameTag}, true
		}
		if i, ok := x.byPath[path]; ok {
			r, why := x.refs[i], WhySameTag
			if r.Name != p.Name {
				why = WhyOtherRegistry
			}
			return Match{Ref: r, Why: why}, true
		}
	}
	if p.Digest != "" {
		if i, ok := x.byDigest[p.Digest]; ok {
			return Match{Ref: x.refs[i], Why: WhySameDigest}, true
		}
	}
	return Match{}, false
}

// tagKeys returns what the rules compare of a tagged reference: Name:Tag
// and Path:Tag. Both are substrings of Full (name:tag[@digest]) for any Ref
// that Parse or FromNamed made; others get new strings.
func tagKeys(r *Ref) (name, path string) {
	n := len(r.Name) + 1 + len(r.Tag)
	if len(r.Full) >= n && r.Full[:len(r.Name)] == r.Name && r.Full[len(r.Name)] == ':' && r.Full[len(r.Name)+1:n] == r.Tag {
		name = r.Full[:n]
	} else {
		name = r.Name + ":" + r.Tag
	}
	if strings.HasSuffix(r.Name, r.Path) {
		path = name[len(r.Name)-len(r.Path):]
	} else {
		path = r.Path + ":" + r.Tag
	}
	return name, path
}
