package cleanup

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
)

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
		return fmt.Errorf("%s %q is not a version: only letters, digits and . _ + - are allowed, without \"..\"", field, imagelist.Truncate(v, 80))
	}
	return nil
}
