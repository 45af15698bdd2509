package cleanuptest_test

import (
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/golist"
)

// TestNoTestingImport keeps package testing out of cleanuptest: the demo
// and hack/bench are programs and link it. Helpers that fail a test belong
// in package fixture.
func TestNoTestingImport(t *testing.T) {
	g, err := golist.Deps(".", "github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest")
	if err != nil {
		t.Fatal(err)
	}
	if linked := g.Matching(func(p string) bool { return p == "testing" }); len(linked) > 0 {
		t.Errorf("cleanuptest links package testing; the demo and hack/bench would too: %s", strings.Join(linked, ", "))
	}
}
