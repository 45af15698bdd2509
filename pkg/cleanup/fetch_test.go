package cleanup_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

const fetchVersion = "v1.4.1"

// testFetcherOptions are small bounds so that the timeout cases end quickly.
func testFetcherOptions() cleanup.FetcherOptions {
	return cleanup.FetcherOptions{ConnectTimeout: 200 * time.Millisecond, RequestTimeout: 200 * time.Millisecond, MaxBytes: 1024}
}

// repo is an httptest server that records the requests it gets.
type repo struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
}

func newRepo(t *testing.T, h http.HandlerFunc) *repo {
	t.Helper()
	r := &repo{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.Clone(context.Background()))
		r.mu.Unlock()
		h(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *repo) recorded() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.requests...)
}

// serve answers body with contentType; "" sends no Content-Type at all
// (net/http would otherwise sniff one).
func serve(contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		} else {
			w.Header()["Content-Type"] = nil
		}
		_, _ = w.Write([]byte(body))
	}
}

func TestFetchListParsesList(t *testing.T) {
	r := newRepo(t, serve("text/plain", "rancher/b:1\n\nrancher/a:1\r\nrancher/a:1\n"))
	f := cleanup.NewHTTPFetcher(testFetcherOptions())

	tests := []struct {
		name     string
		host     string
		wantHost string
	}{
		{name: "Host header from the target", host: "upgrade-repo-hvst-upgrade-abc.harvester-system", wantHost: "upgrade-repo-hvst-upgrade-abc.harvester-system"},
		{name: "Host header from the URL when the target has none", wantHost: strings.TrimPrefix(r.URL, "http://")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.FetchList(context.Background(), cleanup.Target{BaseURL: r.URL, Host: tt.host}, fetchVersion)
			if err != nil {
				t.Fatalf("FetchList(): %v", err)
			}
			want := []string{"docker.io/rancher/a:1", "docker.io/rancher/b:1"}
			if s := refStrings(got); strings.Join(s, " ") != strings.Join(want, " ") {
				t.Errorf("FetchList() = %q, want %q", s, want)
			}
			reqs := r.recorded()
			if len(reqs) != i+1 {
				t.Fatalf("repo got %d requests, want %d", len(reqs), i+1)
			}
			req := reqs[i]
			if req.Method != http.MethodGet || req.URL.Path != cleanup.ListPath(fetchVersion) || req.URL.RawQuery != "" {
				t.Errorf("request %s %s, want GET %s", req.Method, req.URL, cleanup.ListPath(fetchVersion))
			}
			if req.Host != tt.wantHost {
				t.Errorf("Host = %q, want %q", req.Host, tt.wantHost)
			}
		})
	}
}

func TestListPath(t *testing.T) {
	if got, want := cleanup.ListPath("v1.4.1"), "/harvester-iso/bundle/harvester/images-lists-archive/v1.4.1/image_list_all.txt"; got != want {
		t.Errorf("ListPath() = %q, want %q", got, want)
	}
}

func TestFetchListStatusErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
	}{
		{name: "not found", status: http.StatusNotFound},
		{name: "server error", status: http.StatusInternalServerError},
		{name: "no content", status: http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte("docker.io/rancher/x:1\n"))
			})
			f := cleanup.NewHTTPFetcher(testFetcherOptions())

			got, err := f.FetchList(context.Background(), cleanup.Target{BaseURL: r.URL}, fetchVersion)
			var se *cleanup.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("FetchList() = %v, %v; want a *StatusError", got, err)
			}
			if se.StatusCode != tt.status || se.URL != r.URL+cleanup.ListPath(fetchVersion) {
				t.Errorf("StatusError = %+v, want code %d for %s", se, tt.status, r.URL+cleanup.ListPath(fetchVersion))
			}
			if !strings.Contains(err.Error(), se.URL) {
				t.Errorf("error %q does not name the URL", err)
			}
		})
	}
}

func TestFetchListDoesNotFollowRedirects(t *testing.T) {
	target := newRepo(t, serve("text/plain", "rancher/x:1\n"))
	location := target.URL + cleanup.ListPath(fetchVersion)
	r := newRepo(t, func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, location, http.StatusFound)
	})
	f := cleanup.NewHTTPFetcher(testFetcherOptions())

	_, err := f.FetchList(context.Background(), cleanup.Target{BaseURL: r.URL}, fetchVersion)
	var se *cleanup.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusFound || se.Location != location {
		t.Fatalf("FetchList() error = %v, want a StatusError 302 to %s", err, location)
	}
	if !strings.Contains(err.Error(), location) {
		t.Errorf("error %q does not mention the Location", err)
	}
	if n := len(target.recorded()); n != 0 {
		t.Errorf("redirect target got %d requests, want 0", n)
	}
}

func TestFetchListBodyErrors(t *testing.T) {
	maxBytes := testFetcherOptions().MaxBytes
	// exactly returns image list lines of exactly n bytes.
	exactly := func(n int64) string {
		line := "rancher/x:1\n"
		body := strings.Repeat(line, int(n)/len(line))
		return body + strings.Repeat("\n", int(n)-len(body))
	}

	tests := []struct {
		name        string
		contentType string
		body        string
		// wantErr are substrings of the error; empty means success.
		wantErr []string
		wantIs  error
	}{
		{name: "body of exactly MaxBytes is read", contentType: "text/plain", body: exactly(maxBytes)},
		{name: "no Content-Type is accepted", body: "rancher/x:1\n"},
		{name: "HTML page", contentType: "text/html; charset=utf-8", body: "rancher/x:1\n", wantErr: []string{"HTML"}},
		{name: "HTML page, upper case media type", contentType: "Text/HTML", body: "rancher/x:1\n", wantErr: []string{"HTML"}},
		{name: "body over MaxBytes", contentType: "text/plain", body: exactly(maxBytes + 1), wantErr: []string{"exceeds"}},
		{name: "invalid line", contentType: "text/plain", body: "rancher/x:1\n\nnot a reference\n", wantErr: []string{cleanup.ListPath(fetchVersion), "line 3"}},
		{name: "empty body", contentType: "text/plain", body: "", wantIs: cleanup.ErrEmptyList},
		{name: "only blank lines", contentType: "text/plain", body: "\n\r\n  \n", wantIs: cleanup.ErrEmptyList},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t, serve(tt.contentType, tt.body))
			f := cleanup.NewHTTPFetcher(testFetcherOptions())

			got, err := f.FetchList(context.Background(), cleanup.Target{BaseURL: r.URL}, fetchVersion)
			if tt.wantErr == nil && tt.wantIs == nil {
				if err != nil || len(got) == 0 {
					t.Fatalf("FetchList() = %v, %v; want a list", refStrings(got), err)
				}
				return
			}
			if err == nil {
				t.Fatalf("FetchList() = %v, want an error", refStrings(got))
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			for _, s := range append(tt.wantErr, r.URL) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// fetchWithin runs FetchList and fails the test if it does not return within
// limit: a missing timeout shows as a failure, not as a hung test.
func fetchWithin(t *testing.T, f *cleanup.HTTPFetcher, target cleanup.Target, limit time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := f.FetchList(context.Background(), target, fetchVersion)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("FetchList did not return within %v", limit)
		return nil
	}
}

func TestFetchListRequestTimeout(t *testing.T) {
	tests := []struct {
		name string
		// flushFirst makes the handler send headers and part of the body
		// before it stalls.
		flushFirst bool
	}{
		{name: "slow body", flushFirst: true},
		{name: "no response headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stall := make(chan struct{})
			r := newRepo(t, func(w http.ResponseWriter, req *http.Request) {
				if tt.flushFirst {
					w.Header().Set("Content-Type", "text/plain")
					_, _ = w.Write([]byte("rancher/x:1\n"))
					w.(http.Flusher).Flush()
				}
				select {
				case <-stall:
				case <-req.Context().Done():
				}
			})
			t.Cleanup(func() { close(stall) }) // runs before r.Close, which waits for handlers

			f := cleanup.NewHTTPFetcher(testFetcherOptions())
			err := fetchWithin(t, f, cleanup.Target{BaseURL: r.URL}, 10*time.Second)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("FetchList() error = %v, want a timeout", err)
			}
		})
	}
}

func TestFetchListInvalidVersionMakesNoRequest(t *testing.T) {
	r := newRepo(t, serve("text/plain", "rancher/x:1\n"))
	f := cleanup.NewHTTPFetcher(testFetcherOptions())

	for _, v := range []string{"../x", "", "v1/../../etc", "%2e%2e"} {
		if _, err := f.FetchList(context.Background(), cleanup.Target{BaseURL: r.URL}, v); err == nil || !strings.Contains(err.Error(), "version") {
			t.Errorf("FetchList(version %q) error = %v, want one naming the version", v, err)
		}
	}
	if n := len(r.recorded()); n != 0 {
		t.Errorf("repo got %d requests, want 0", n)
	}
}

func TestFetchListConnectionRefused(t *testing.T) {
	r := newRepo(t, serve("text/plain", "rancher/x:1\n"))
	url := r.URL
	r.Close()
	f := cleanup.NewHTTPFetcher(testFetcherOptions())

	err := fetchWithin(t, f, cleanup.Target{BaseURL: url}, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("FetchList() error = %v, want one naming %s", err, url)
	}
}

func TestFetchListHonoursContext(t *testing.T) {
	r := newRepo(t, serve("text/plain", "rancher/x:1\n"))
	f := cleanup.NewHTTPFetcher(testFetcherOptions())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	if _, err := f.FetchList(ctx, cleanup.Target{BaseURL: r.URL}, fetchVersion); !errors.Is(err, context.Canceled) {
		t.Fatalf("FetchList() with a cancelled context: error = %v, want context.Canceled", err)
	}
}

func refStrings(refs []reference.Named) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out
}
