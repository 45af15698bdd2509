// Package repotest serves image lists as Harvester's upgrade repo does, for
// the demo and the end-to-end tests, and records every request so they can
// show that nothing was asked before the repo was Ready.
package repotest

import (
	"io/fs"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// Request is one request the repo answered.
type Request struct {
	At   time.Time
	Path string
}

// Repo is an HTTP server over a folder laid out as the repo's
// images-lists-archive (<version>/image_list_all.txt).
type Repo struct {
	srv *http.Server

	mu   sync.Mutex
	reqs []Request
}

// Serve answers on l from archive until Close.
func Serve(l net.Listener, archive fs.FS) *Repo {
	r := &Repo{}
	files := http.StripPrefix(cleanup.ArchivePath, http.FileServerFS(archive))
	r.srv = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r.mu.Lock()
			r.reqs = append(r.reqs, Request{At: time.Now(), Path: req.URL.Path})
			r.mu.Unlock()
			files.ServeHTTP(w, req)
		}),
	}
	go func() { _ = r.srv.Serve(l) }()
	return r
}

// Requests returns the requests answered so far, in order.
func (r *Repo) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Close stops the server.
func (r *Repo) Close() error { return r.srv.Close() }
