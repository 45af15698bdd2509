package imagelist

import (
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// parseFast returns what reference.TagNameOnly(reference.ParseNormalizedNamed(s))
// returns, for the forms image lists are made of:
//
//	[host[:port]/]path[:tag][@sha256:hex]
//
// with a lowercase host name (or localhost), a path of lowercase components,
// a tag of at most 128 characters and a sha256 digest in lowercase hex. ok is
// false for anything else (an uppercase or IPv6 host, another digest
// algorithm, a path over 255 bytes, an invalid line): Parse then asks the
// library, which takes or refuses it with its own message. It runs no
// regular expression and allocates only when normalising changes the text
// (rancher/x:1 is docker.io/rancher/x:1); the result keeps s or a substring
// of it. FuzzParseMatchesReference checks it against the library.
func parseFast(s string) (reference.Named, bool) {
	// The library refuses a bare 64-character hex string: it is an image ID.
	if len(s) == 64 && isLowerHex(s) {
		return nil, false
	}
	// Split the host as the library's splitDockerDomain does: the part
	// before the first slash is a host when it is localhost or has a dot or
	// a colon; index.docker.io is docker.io; anything else is on docker.io.
	// same says whether the normalised reference is s itself, so far.
	domain, rest, same := defaultDomain, s, false
	if first, after, found := strings.Cut(s, "/"); found {
		switch {
		case first == defaultDomain:
			rest, same = after, true
		case first == legacyDefaultDomain:
			rest = after
		case first == "localhost" || strings.ContainsAny(first, ".:"):
			if !validHost(first) {
				return nil, false
			}
			domain, rest, same = first, after, true
		}
		// Otherwise first is the path's first component: an uppercase one
		// (a host to the library) fails validPath below and falls back.
	}
	end := strings.IndexAny(rest, ":@")
	if end < 0 {
		end = len(rest)
	}
	path, tail := rest[:end], rest[end:]
	if !validPath(path) {
		return nil, false
	}
	var tag, dgst string
	if strings.HasPrefix(tail, ":") {
		tag, tail = tail[1:], ""
		if i := strings.IndexByte(tag, '@'); i >= 0 {
			tag, tail = tag[:i], tag[i:]
		}
		if !validTag(tag) {
			return nil, false
		}
	}
	if tail != "" {
		const sha256 = "@sha256:"
		if len(tail) != len(sha256)+64 || !strings.HasPrefix(tail, sha256) || !isLowerHex(tail[len(sha256):]) {
			return nil, false
		}
		dgst = tail[1:]
	}
	// docker.io/x is docker.io/library/x, an official image.
	library := ""
	if domain == defaultDomain && !strings.Contains(path, "/") {
		library, same = officialRepoPrefix, false
	}
	if len(library)+len(path) > reference.RepositoryNameTotalLengthMax {
		return nil, false
	}
	latest := ""
	if tag == "" && dgst == "" {
		tag, latest, same = defaultTag, ":"+defaultTag, false
	}
	full := s
	if !same {
		full = domain + "/" + library + rest + latest
	}
	r := parts{s: full, pathAt: int32(len(domain) + 1)}
	r.nameEnd = r.pathAt + int32(len(library)+len(path))
	r.tagEnd = r.nameEnd
	if tag != "" {
		r.tagEnd += int32(1 + len(tag))
	}
	switch {
	case dgst == "":
		return tagged{r}, true
	case tag == "":
		return canonical{r}, true
	default:
		return taggedCanonical{r}, true
	}
}

// The library's constants (unexported there).
const (
	defaultDomain       = "docker.io"
	legacyDefaultDomain = "index.docker.io"
	officialRepoPrefix  = "library/"
	defaultTag          = "latest"
)

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// validHost reports whether h is localhost or a lowercase domain name, with
// an optional port: a subset of the grammar's
// host[:port-number], where a domain component is
// [a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9].
func validHost(h string) bool {
	name, port, hasPort := strings.Cut(h, ":")
	if hasPort {
		if port == "" {
			return false
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return false
			}
		}
	}
	for more := true; more; {
		var c string
		c, name, more = strings.Cut(name, ".")
		if c == "" || !isLowerAlnum(c[0]) || !isLowerAlnum(c[len(c)-1]) {
			return false
		}
		for i := 1; i < len(c)-1; i++ {
			if !isLowerAlnum(c[i]) && c[i] != '-' {
				return false
			}
		}
	}
	return true
}

// validPath reports whether p is a path of the grammar: components of
// [a-z0-9]+ joined by one separator (".", "_", "__" or any run of "-")
// between alphanumerics, separated by "/".
func validPath(p string) bool {
	alnum := false // p[i-1] is [a-z0-9]
	for i := 0; i < len(p); i++ {
		c := p[i]
		if isLowerAlnum(c) {
			alnum = true
			continue
		}
		if !alnum {
			return false
		}
		switch c {
		case '/', '.':
		case '_':
			if i+1 < len(p) && p[i+1] == '_' {
				i++
			}
		case '-':
			for i+1 < len(p) && p[i+1] == '-' {
				i++
			}
		default:
			return false
		}
		alnum = false
	}
	return alnum
}

// validTag reports whether t matches the grammar's [\w][\w.-]{0,127}.
func validTag(t string) bool {
	if t == "" || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// parts is a parsed reference as offsets into its string, so that every
// accessor returns a substring and allocates nothing.
type parts struct {
	// s is the whole reference: name[:tag][@digest].
	s string
	// pathAt is where the path starts; the domain is s[:pathAt-1], or
	// empty when pathAt is 0 (a familiar reference).
	pathAt int32
	// nameEnd ends the name; tagEnd ends the tag (nameEnd when there is
	// none). A digest, if any, is s[tagEnd+1:].
	nameEnd, tagEnd int32
}

func (r parts) String() string { return r.s }
func (r parts) Name() string   { return r.s[:r.nameEnd] }
func (r parts) Path() string   { return r.s[r.pathAt:r.nameEnd] }

func (r parts) Domain() string {
	if r.pathAt == 0 {
		return ""
	}
	return r.s[:r.pathAt-1]
}

func (r parts) tag() string           { return r.s[r.nameEnd+1 : r.tagEnd] }
func (r parts) digest() digest.Digest { return digest.Digest(r.s[r.tagEnd+1:]) }

// familiar is the library's familiarizeName: docker.io/rancher/x:1 is
// rancher/x:1 and docker.io/library/busybox:1 is busybox:1 (library/a/b
// keeps its prefix); other hosts are kept.
func (r parts) familiar() parts {
	if r.Domain() != defaultDomain {
		return r
	}
	cut := r.pathAt
	if p := r.Path(); strings.HasPrefix(p, officialRepoPrefix) && !strings.Contains(p[len(officialRepoPrefix):], "/") {
		cut += int32(len(officialRepoPrefix))
	}
	return parts{s: r.s[cut:], nameEnd: r.nameEnd - cut, tagEnd: r.tagEnd - cut}
}

// tagged, canonical and taggedCanonical implement the interfaces the
// library's taggedReference, canonicalReference and reference do, and no
// others, so type switches over reference's interfaces (reference.Tagged,
// reference.Digested, IsNameOnly) and its helpers (Path, Domain,
// FamiliarString, FamiliarName) see what they would see for the library's
// value. They are values, so == compares them by value, as it does the
// library's.
type (
	tagged          struct{ parts }
	canonical       struct{ parts }
	taggedCanonical struct{ parts }
)

func (r tagged) Tag() string                    { return r.tag() }
func (r tagged) Familiar() reference.Named      { return tagged{r.familiar()} }
func (r canonical) Digest() digest.Digest       { return r.digest() }
func (r canonical) Familiar() reference.Named   { return canonical{r.familiar()} }
func (r taggedCanonical) Tag() string           { return r.tag() }
func (r taggedCanonical) Digest() digest.Digest { return r.digest() }
func (r taggedCanonical) Familiar() reference.Named {
	return taggedCanonical{r.familiar()}
}
