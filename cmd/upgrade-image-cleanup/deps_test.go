package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/golist"
)

// TestBinaryLinksNoTestClients keeps client-go's fake clientsets and
// k8s.io/client-go/testing out of the shipped binary: they are for the demo
// (cmd/upgrade-image-cleanup-demo) and the tests, and made the binary a
// third larger.
func TestBinaryLinksNoTestClients(t *testing.T) {
	g, err := golist.Deps(".", "github.com/upgrade-image-cleanup/upgrade-image-cleanup/cmd/upgrade-image-cleanup")
	if err != nil {
		t.Fatal(err)
	}
	// client-go links one of them into every program with a typed client
	// from v0.32 on: k8s.io/client-go/gentype, the base of every typed
	// client, holds the generic fakes too (gentype/fake.go), so it imports
	// k8s.io/client-go/testing (kubernetes/kubernetes#137782). Nothing here
	// can drop that edge; the same package imported by anything else fails.
	const clientTesting, gentype = "k8s.io/client-go/testing", "k8s.io/client-go/gentype"
	offending := g.Matching(func(p string) bool {
		if p == clientTesting && slices.Equal(g.Importers(p), []string{gentype}) {
			t.Logf("%s is linked, imported only by %s (client-go's own, kubernetes/kubernetes#137782)", p, gentype)
			return false
		}
		return strings.Contains(p, "/fake") || p == clientTesting
	})
	if len(offending) > 0 {
		t.Errorf("the controller binary links %d test-only packages; what imports them belongs in the demo or a _test.go file (go list -deps ./cmd/upgrade-image-cleanup):\n  %s",
			len(offending), strings.Join(offending, "\n  "))
	}
}
