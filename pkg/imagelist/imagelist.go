// Package imagelist reads the image-list format shared by the upgrade repo's
// image_list_all.txt and the cleanup plan's images.txt: one image reference
// per line. The controller and the node-side remover both read it with this
// one parser, so a plan means on the node exactly what it meant when planned.
package imagelist

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
func Parse(r io.Reader, source string) ([]reference.Named, error) {
	var out []reference.Named
	sc := bufio.NewScanner(r)
	// +2 leaves room for the line ending, so the limit is the line's own length.
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
			// The library's message repeats the line as it is: escape it
			// (a repo must not put control bytes on an operator's
			// terminal) and keep it short.
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
	// String() builds a new string on every call: compute each once.
	keyed := make([]keyedRef, len(out))
	for i, n := range out {
		keyed[i] = keyedRef{n.String(), n}
	}
	slices.SortFunc(keyed, func(a, b keyedRef) int { return strings.Compare(a.key, b.key) })
	keyed = slices.CompactFunc(keyed, func(a, b keyedRef) bool { return a.key == b.key })
	out = out[:0]
	for _, k := range keyed {
		out = append(out, k.ref)
	}
	return out, nil
}

type keyedRef struct {
	key string
	ref reference.Named
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
