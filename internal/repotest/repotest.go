// Package repotest serves image lists as Harvester's upgrade repo does, for
// the demo and the end-to-end tests, and records every request so they can
// show that nothing was asked before the repo was Ready. It holds the one
// copy of the realistic pair of lists they all serve (Lists), which the
// demo program embeds.
package repotest

import (
	"embed"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
)

// PreviousVersion is the version whose list Lists holds beside the current
// one (cleanup.CurrentVersion).
const PreviousVersion = "v1.4.2"

// archiveDir is where the lists are, beside this file. They are embedded so
// that the demo, a program run from anywhere, carries them, and so that the
// tests of every package read this one copy without a path relative to
// their own directory.
const archiveDir = "images-lists-archive"

//go:embed images-lists-archive
var archive embed.FS

// Lists returns a realistic pair of image lists (Harvester v1.4.2's and a
// current one), laid out as the repo's images-lists-archive:
// <version>/image_list_all.txt. Serve serves it as it is.
func Lists() fs.FS {
	sub, err := fs.Sub(archive, archiveDir)
	if err != nil {
		panic(err) // archiveDir is a valid path, embedded at build time
	}
	return sub
}

// ListFile is the path of version's list inside Lists.
func ListFile(version string) string { return path.Join(version, "image_list_all.txt") }

// ReadList parses version's list from Lists with the parser the controller
// uses.
func ReadList(version string) ([]reference.Named, error) {
	name := ListFile(version)
	f, err := Lists().Open(name)
	if err != nil {
		return nil, fmt.Errorf("read the %s list: %w", version, err)
	}
	defer f.Close()
	return imagelist.Parse(f, name)
}

// ListsPlan is the plan of Lists, from PreviousVersion to the current
// version, under p: with cleanup.DefaultOptions().Policy, the plan the demo
// writes and `plan` previews.
func ListsPlan(p cleanup.Policy) (cleanup.Plan, error) {
	previous, err := ReadList(PreviousVersion)
	if err != nil {
		return cleanup.Plan{}, err
	}
	current, err := ReadList(cleanup.CurrentVersion)
	if err != nil {
		return cleanup.Plan{}, err
	}
	return cleanup.ComputePlan(previous, current, p), nil
}

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
