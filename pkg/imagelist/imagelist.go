// Package imagelist reads the image-list format shared by the upgrade repo's
// image_list_all.txt and the cleanup plan's images.txt: one image reference
// per line. The controller and the node-side remover both read it with this
// one parser, so a plan means on the node exactly what it meant when planned.
package imagelist

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/distribution/reference"
)

// Parse reads an image list, one reference per line, as the upgrade
// repo serves it. Blank lines are skipped. Any other line that is not a valid
// image reference fails the whole list, naming source and line, because a
// half-read list would turn into a plan that deletes images still in use.
// References are normalised (rancher/x:1 is docker.io/rancher/x:1, an untagged
// name means :latest); the result is sorted by String() and unique.
//
// Each line is normalised as reference.ParseNormalizedNamed and
// reference.TagNameOnly would: common lines by a parser of their own that
// runs no regular expression (parseFast), any other by the library itself.
// The references keep substrings of one copy of the list's text.
func Parse(r io.Reader, source string) ([]reference.Named, error) {
	body, readErr := readList(r)
	refs := make([]keyedRef, 0, strings.Count(body, "\n")+1)
	line := 0
	for rest := body; rest != ""; {
		line++
		raw := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			raw, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		// The raw line's bound is the one the bufio.Scanner this loop
		// replaces had (a buffer of maxLineBytes+2 for line and newline),
		// so a list fails or passes as it always did.
		if len(raw) > maxLineBytes+1 {
			return nil, fmt.Errorf("%s line %d: longer than %d bytes", source, line, maxLineBytes)
		}
		text := strings.TrimSpace(raw)
		if text == "" {
			continue
		}
		if len(text) > maxLineBytes {
			return nil, fmt.Errorf("%s line %d: longer than %d bytes", source, line, maxLineBytes)
		}
		if named, ok := parseFast(text); ok {
			refs = append(refs, keyedRef{named.String(), named})
			continue
		}
		named, err := reference.ParseNormalizedNamed(text)
		if err != nil {
			// The library's message repeats the line as it is: escape it
			// (a repo must not put control bytes on an operator's
			// terminal) and keep it short.
			return nil, fmt.Errorf("%s line %d: %q is not an image reference: %s", source, line, Truncate(text, 80), Truncate(Printable(err.Error()), 160))
		}
		named = reference.TagNameOnly(named)
		refs = append(refs, keyedRef{named.String(), named})
	}
	if readErr != nil {
		return nil, fmt.Errorf("read %s: %w", source, readErr)
	}
	// Sort by the strings computed once, not String() per comparison; a
	// list that comes sorted (as Harvester's do) is only checked.
	if !slices.IsSortedFunc(refs, func(a, b keyedRef) int { return strings.Compare(a.key, b.key) }) {
		sortKeyed(refs)
	}
	refs = slices.CompactFunc(refs, func(a, b keyedRef) bool { return a.key == b.key })
	out := make([]reference.Named, len(refs))
	for i, k := range refs {
		out[i] = k.ref
	}
	return out, nil
}

type keyedRef struct {
	key string
	ref reference.Named
}

// readList reads r to its end into one string, which the references then
// share: it is never written again, so substrings of it are safe to keep.
// It stops early, as the bufio.Scanner Parse used did, at a line too long to
// be one (Parse then reports it) and after 100 reads that return nothing.
func readList(r io.Reader) (string, error) {
	var b strings.Builder
	if l, ok := r.(interface{ Len() int }); ok { // bytes.Reader, strings.Reader, bytes.Buffer
		b.Grow(l.Len())
	}
	chunk := make([]byte, 32<<10)
	lineStart := 0 // where the last line read so far starts in b
	for empty := 0; ; {
		n, err := r.Read(chunk)
		if n < 0 || n > len(chunk) {
			return b.String(), bufio.ErrBadReadCount
		}
		b.Write(chunk[:n])
		if i := bytes.LastIndexByte(chunk[:n], '\n'); i >= 0 {
			lineStart = b.Len() - n + i + 1
		}
		switch {
		case err == io.EOF:
			return b.String(), nil
		case err != nil:
			return b.String(), err
		case b.Len()-lineStart > maxLineBytes+1:
			return b.String(), nil
		case n > 0:
			empty = 0
		default:
			if empty++; empty >= 100 {
				return b.String(), io.ErrNoProgress
			}
		}
	}
}

// maxLineBytes bounds one line. A reference is at most 255 bytes of name, 128
// of tag and a digest; anything far longer is not an image list.
const maxLineBytes = 4096

// Printable escapes control characters and invalid UTF-8 as Go escapes
// (\x1b, \t, \xff) and keeps every printable rune, so text from outside can
// go into a message, a log line or an annotation whole and harmless.
func Printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case strconv.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// Truncate cuts s to at most n bytes, on a rune boundary, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Digest is the digest of a list file's bytes, "sha256:<hex>". The
// controller records it when it writes a plan, and the remover checks the
// file it reads against it, so a Job acts only on the plan that was made.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
