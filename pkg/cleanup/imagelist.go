package cleanup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/distribution/reference"
)

// ParseImageList reads an image list, one reference per line, as the upgrade
// repo serves it. Blank lines are skipped. Any other line that is not a valid
// image reference fails the whole list, naming source and line, because a
// half-read list would turn into a plan that deletes images still in use.
// References are normalised (rancher/x:1 is docker.io/rancher/x:1, an untagged
// name means :latest); the result is sorted by String() and unique.
func ParseImageList(r io.Reader, source string) ([]reference.Named, error) {
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
			// The library's message may repeat the whole line; keep it short.
			return nil, fmt.Errorf("%s line %d: %q is not an image reference: %s", source, line, truncate(text, 80), truncate(err.Error(), 160))
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

// maxLineBytes bounds one line. A reference is at most 255 bytes of name, 128
// of tag and a digest; anything far longer is not an image list.
const maxLineBytes = 4096

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// versionPattern admits the version strings Harvester uses (v1.4.1,
// v1.5.0-rc3, master-abc123, current) and nothing that could leave the URL's
// path segment: no slash, space, percent, query or fragment.
var versionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

// ValidateVersion rejects a version that would not name exactly one folder of
// the repo's images-lists-archive; field names where the value came from.
func ValidateVersion(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", field)
	}
	if !versionPattern.MatchString(v) || strings.Contains(v, "..") {
		return fmt.Errorf("%s %q is not a version: only letters, digits and . _ + - are allowed, without \"..\"", field, truncate(v, 80))
	}
	return nil
}
