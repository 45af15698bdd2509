package cleanuptest

import (
	"bufio"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// StatusHungUp is the Status of a request the repo answered by closing the
// connection.
const StatusHungUp = -1

// Request is one request an HTTPRepo received.
type Request struct {
	At   time.Time
	Host string
	Path string
	// Status is what it was answered (StatusHungUp: the connection was
	// closed); 0 while the answer is not written yet.
	Status int
}

func (q Request) String() string {
	status := fmt.Sprint(q.Status)
	if q.Status == StatusHungUp {
		status = "hung up"
	}
	return fmt.Sprintf("%s %s -> %s", q.At.Format(time.StampMicro), q.Path, status)
}

// Intercept sees each request with its 1-based number before the repo
// serves it, and returns true when it answered the request itself.
type Intercept func(n int, w http.ResponseWriter, req *http.Request) bool

// HTTPRepo serves image lists over HTTP as Harvester's upgrade repo does,
// from a folder laid out as its images-lists-archive
// (<version>/image_list_all.txt) under cleanup.ArchivePath, and records
// every request and its answer, so a test or the demo can show that
// nothing was asked before the repo was Ready.
type HTTPRepo struct {
	srv  *http.Server
	addr *net.TCPAddr

	mu   sync.Mutex
	reqs []Request
}

// ServeRepo answers on l from archive (nil: 404 to everything intercept
// leaves) until Close; intercept may be nil.
func ServeRepo(l net.Listener, archive fs.FS, intercept Intercept) *HTTPRepo {
	r := &HTTPRepo{}
	r.addr, _ = l.Addr().(*net.TCPAddr)
	files := http.NotFoundHandler()
	if archive != nil {
		files = http.StripPrefix(cleanup.ArchivePath, http.FileServerFS(archive))
	}
	r.srv = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r.mu.Lock()
			r.reqs = append(r.reqs, Request{At: time.Now(), Host: req.Host, Path: req.URL.Path})
			n := len(r.reqs)
			r.mu.Unlock()
			sw := &statusWriter{ResponseWriter: w}
			if intercept == nil || !intercept(n, sw, req) {
				files.ServeHTTP(sw, req)
			}
			r.mu.Lock()
			r.reqs[n-1].Status = sw.status
			r.mu.Unlock()
		}),
	}
	go func() { _ = r.srv.Serve(l) }()
	return r
}

// ServeLists serves Lists on a new listener on 127.0.0.1.
func ServeLists() (*HTTPRepo, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the repo: %w", err)
	}
	return ServeRepo(l, Lists(), nil), nil
}

// IP is the address the repo listens on.
func (r *HTTPRepo) IP() string { return r.addr.IP.String() }

// Port is the port the repo listens on.
func (r *HTTPRepo) Port() int32 { return int32(r.addr.Port) }

// Addr is the repo's address, IP:port.
func (r *HTTPRepo) Addr() string { return r.addr.String() }

// URL is the repo's base URL.
func (r *HTTPRepo) URL() string { return "http://" + r.Addr() }

// Requests returns the requests so far, in order of arrival.
func (r *HTTPRepo) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// Count is how many requests asked for path.
func (r *HTTPRepo) Count(path string) int {
	n := 0
	for _, q := range r.Requests() {
		if q.Path == path {
			n++
		}
	}
	return n
}

// String lists the requests, one a line.
func (r *HTTPRepo) String() string {
	reqs := r.Requests()
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests", len(reqs))
	for i, q := range reqs {
		fmt.Fprintf(&b, "\n  %d. %s", i+1, q)
	}
	return b.String()
}

// Close stops the server.
func (r *HTTPRepo) Close() error { return r.srv.Close() }

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer (Flush).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.status = StatusHungUp
	return w.ResponseWriter.(http.Hijacker).Hijack()
}
