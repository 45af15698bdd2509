//go:build e2e

package e2e

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// repo serves the demo's image lists as the upgrade repo does and records
// every request with its arrival time.
type repo struct {
	mu   sync.Mutex
	reqs []repoRequest
}

type repoRequest struct {
	at   time.Time
	path string
}

func serveRepo(t *testing.T, l net.Listener) *repo {
	t.Helper()
	r := &repo{}
	lists, err := filepath.Abs("../../cmd/upgrade-image-cleanup/testdata")
	if err != nil {
		t.Fatal(err)
	}
	files := http.StripPrefix("/harvester-iso/bundle/harvester/", http.FileServer(http.Dir(lists)))
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, repoRequest{at: time.Now(), path: req.URL.Path})
		r.mu.Unlock()
		files.ServeHTTP(w, req)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *repo) requests() []repoRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]repoRequest(nil), r.reqs...)
}

// readList returns the lines of one of the demo lists.
func readList(t *testing.T, version string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../cmd/upgrade-image-cleanup/testdata/images-lists-archive", version, "image_list_all.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}
