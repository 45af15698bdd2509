//go:build e2e

package e2e

import (
	"net"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
)

// serveRepo serves the demo's image lists (cleanuptest.Lists) on l until the
// test ends.
func serveRepo(t *testing.T, l net.Listener) *cleanuptest.HTTPRepo {
	t.Helper()
	return serveRecording(t, l, nil)
}

// serveRecording serves the demo's image lists on l until the test ends,
// letting intercept (when not nil) take over any request.
func serveRecording(t *testing.T, l net.Listener, intercept cleanuptest.Intercept) *cleanuptest.HTTPRepo {
	t.Helper()
	r := cleanuptest.ServeRepo(l, cleanuptest.Lists(), intercept)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// readList returns the lines of one of the demo lists.
func readList(t *testing.T, version string) []string {
	t.Helper()
	lines, err := cleanuptest.ListLines(version)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}
