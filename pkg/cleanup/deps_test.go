package cleanup_test

import (
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/golist"
)

// TestLinksNoCRI keeps gRPC and the CRI API out of the controller and so
// out of a host embedding it: what the controller reads of a removal (the
// remover's report) lives in pkg/remover/report, apart from the CRI client.
func TestLinksNoCRI(t *testing.T) {
	g, err := golist.Deps(".", "github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup")
	if err != nil {
		t.Fatal(err)
	}
	heavy := g.Matching(func(p string) bool {
		return strings.HasPrefix(p, "google.golang.org/grpc") || strings.HasPrefix(p, "k8s.io/cri-api") ||
			p == "github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
	})
	if len(heavy) > 0 {
		t.Errorf("pkg/cleanup links %d packages of the node side:\n  %s", len(heavy), strings.Join(heavy, "\n  "))
	}
}
