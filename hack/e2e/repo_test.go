//go:build e2e

package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/repotest"
)

// listsDir holds the demo's image lists, laid out as the repo's archive.
const listsDir = "../../cmd/upgrade-image-cleanup/testdata/images-lists-archive"

// serveRepo serves the demo's image lists on l until the test ends.
func serveRepo(t *testing.T, l net.Listener) *repotest.Repo {
	t.Helper()
	r := repotest.Serve(l, os.DirFS(listsDir))
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// readList returns the lines of one of the demo lists.
func readList(t *testing.T, version string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(listsDir, version, "image_list_all.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}
