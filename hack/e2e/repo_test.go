//go:build e2e

package e2e

import (
	"io/fs"
	"net"
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/repotest"
)

// serveRepo serves the demo's image lists (repotest.Lists) on l until the
// test ends.
func serveRepo(t *testing.T, l net.Listener) *repotest.Repo {
	t.Helper()
	r := repotest.Serve(l, repotest.Lists())
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// readList returns the lines of one of the demo lists.
func readList(t *testing.T, version string) []string {
	t.Helper()
	b, err := fs.ReadFile(repotest.Lists(), repotest.ListFile(version))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}
