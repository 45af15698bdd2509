package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/golist"
)

// shippedPlatforms are the platforms releases build the binaries for
// (hack/build-image -platform);
// files for one platform can link what the others do not.
var shippedPlatforms = [][]string{{"GOOS=linux", "GOARCH=amd64"}, {"GOOS=linux", "GOARCH=arm64"}}

// testOnly reports whether p is for tests: package testing and its
// kin, client-go's fakes, and our own test builders.
func testOnly(p string) bool {
	const module = "github.com/upgrade-image-cleanup/upgrade-image-cleanup/"
	return p == "testing" || strings.HasPrefix(p, "testing/") ||
		strings.HasSuffix(p, "/testing") || strings.Contains(p, "/testing/") || strings.HasSuffix(p, "/ktesting") ||
		strings.Contains(p, "/fake") ||
		strings.HasPrefix(p, module+"internal/cleanuptest") || p == module+"internal/testhost"
}

// TestBinariesLinkNoTestCode keeps test-only packages (client-go's fake
// clientsets and k8s.io/client-go/testing, package testing, our test
// builders) out of the shipped binaries, on every platform they ship for:
// they are for the demo (cmd/upgrade-image-cleanup-demo) and the tests,
// and made the controller a third larger.
func TestBinariesLinkNoTestCode(t *testing.T) {
	// client-go links one of them into every program with a typed client
	// from v0.32 on: k8s.io/client-go/gentype, the base of every typed
	// client, holds the generic fakes too (gentype/fake.go), so it imports
	// k8s.io/client-go/testing (kubernetes/kubernetes#137782). Nothing here
	// can drop that edge; the same package imported by anything else fails.
	// Up to v0.31 (go.mod's version, Harvester v1.6's), client-go's
	// util/flowcontrol imports k8s.io/utils/clock/testing for its
	// NewFakeBackOff; the same rule applies to that edge.
	clientEdges := map[string]string{
		"k8s.io/client-go/testing":   "k8s.io/client-go/gentype",
		"k8s.io/utils/clock/testing": "k8s.io/client-go/util/flowcontrol",
	}
	binaries := map[string]string{
		".":                "github.com/upgrade-image-cleanup/upgrade-image-cleanup/cmd/upgrade-image-cleanup",
		"../image-remover": "github.com/upgrade-image-cleanup/upgrade-image-cleanup/cmd/image-remover",
	}
	for dir, self := range binaries {
		for _, env := range shippedPlatforms {
			g, err := golist.Deps(dir, self, env...)
			if err != nil {
				t.Fatal(err)
			}
			offending := g.Matching(func(p string) bool {
				if importer, ok := clientEdges[p]; ok && slices.Equal(g.Importers(p), []string{importer}) {
					return false // client-go's own edge, above
				}
				return testOnly(p)
			})
			if len(offending) > 0 {
				t.Errorf("%s on %s links %d test-only packages; what imports them belongs in the demo or a _test.go file:\n  %s",
					self, strings.Join(env, " "), len(offending), strings.Join(offending, "\n  "))
			}
		}
	}
}
