package cleanup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
)

// CurrentVersion names the new version's list in the repo's archive.
const CurrentVersion = "current"

// ArchivePath is where the upgrade repo serves the image lists' archive:
// ArchivePath + "<version>/image_list_all.txt".
const ArchivePath = "/harvester-iso/bundle/harvester/images-lists-archive/"

// ListPath is the path of a version's image list on the upgrade repo.
func ListPath(version string) string {
	return ArchivePath + version + "/image_list_all.txt"
}

// Target is where the repo is dialed.
type Target struct {
	// BaseURL is scheme and authority, such as http://10.52.0.17:80.
	BaseURL string
	// Host, when set, is sent as the Host header: the Service's name, so a
	// repo that serves by virtual host answers as it would through the Service.
	Host string
}

// ListFetcher fetches and parses one version's image list from the repo.
type ListFetcher interface {
	FetchList(ctx context.Context, t Target, version string) ([]reference.Named, error)
}

// FetcherOptions bound one list request.
type FetcherOptions struct {
	// ConnectTimeout bounds the TCP connect: a Ready endpoint accepts at once,
	// so waiting long only delays the retry.
	ConnectTimeout time.Duration
	// RequestTimeout bounds the whole request, body included (a slow body).
	RequestTimeout time.Duration
	// MaxBytes bounds the body; real lists are about 100 KiB.
	MaxBytes int64
}

// DefaultFetcherOptions fit an in-cluster repo serving a list of about 100
// KiB: 2 s to connect and 4 s in all per list, so one attempt at both lists
// takes at most 8 s (see workqueue.DefaultSettings for the retry budget), and
// a body limit of 4 MiB, 40 times the largest list seen.
func DefaultFetcherOptions() FetcherOptions {
	return FetcherOptions{ConnectTimeout: 2 * time.Second, RequestTimeout: 4 * time.Second, MaxBytes: 4 << 20}
}

// HTTPFetcher fetches image lists over plain HTTP, as the repo serves them.
type HTTPFetcher struct {
	client   *http.Client
	maxBytes int64
}

// NewHTTPFetcher returns a fetcher that does not follow redirects (a list is
// served where it is asked for; a redirect is a misconfigured repo) and does
// not use HTTP_PROXY: the repo is a pod address inside the cluster.
func NewHTTPFetcher(o FetcherOptions) *HTTPFetcher {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: o.ConnectTimeout}).DialContext,
		ResponseHeaderTimeout: o.RequestTimeout,
		MaxIdleConnsPerHost:   1,
		IdleConnTimeout:       30 * time.Second,
	}
	return &HTTPFetcher{
		client: &http.Client{
			Transport: tr,
			Timeout:   o.RequestTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		maxBytes: o.MaxBytes,
	}
}

// StatusError is a repo answer other than 200 OK.
type StatusError struct {
	URL        string
	StatusCode int
	Status     string
	Location   string
}

func (e *StatusError) Error() string {
	if e.Location != "" {
		return fmt.Sprintf("GET %s: %s (redirect to %s not followed)", e.URL, e.Status, e.Location)
	}
	return fmt.Sprintf("GET %s: %s", e.URL, e.Status)
}

// FetchList GETs and parses the image list of version. The version must have
// passed ValidateVersion.
func (f *HTTPFetcher) FetchList(ctx context.Context, t Target, version string) ([]reference.Named, error) {
	if err := ValidateVersion("version", version); err != nil {
		return nil, err
	}
	url := t.BaseURL + ListPath(version)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", url, err)
	}
	if t.Host != "" {
		req.Host = t.Host
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err // *url.Error already names method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, &StatusError{URL: url, StatusCode: resp.StatusCode, Status: resp.Status, Location: resp.Header.Get("Location")}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/html" {
		return nil, invalidList{fmt.Errorf("GET %s: the repo answered an HTML page, not an image list", url)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	if int64(len(body)) > f.maxBytes {
		return nil, invalidList{fmt.Errorf("GET %s: body exceeds %d bytes", url, f.maxBytes)}
	}
	list, err := imagelist.Parse(bytes.NewReader(body), url)
	if err != nil {
		return nil, invalidList{err}
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("GET %s: %w", url, ErrEmptyList)
	}
	return list, nil
}

// invalidList is a 200 OK whose body is not an image list; it only marks the
// error for the fetch metrics, its message is the cause's.
type invalidList struct{ error }

func (e invalidList) Unwrap() error { return e.error }

// ErrEmptyList is an image list without a single image. Either list being
// empty is an error: an empty previous list plans nothing while hiding a
// broken repo, and an empty current list would plan every old image.
var ErrEmptyList = errors.New("image list is empty")

// fetchList fetches one version's list from t; observe, if set, sees the
// request's result. An empty list is an error whatever the fetcher: an
// empty previous list would hide a wrong file behind an empty plan, an
// empty current list would plan every old image.
func fetchList(ctx context.Context, f ListFetcher, t Target, version string, observe func(error)) ([]reference.Named, error) {
	list, err := f.FetchList(ctx, t, version)
	if observe != nil {
		observe(err)
	}
	if err == nil && len(list) == 0 {
		err = ErrEmptyList
	}
	return list, err
}

// fetchLists fetches the previous list, then the current one; a failure of
// the first makes no second request. observe, if set, sees each request's
// result.
func fetchLists(ctx context.Context, f ListFetcher, t Target, previousVersion string, observe func(error)) (previous, current []reference.Named, err error) {
	fetch := func(version string) ([]reference.Named, error) {
		list, err := fetchList(ctx, f, t, version, observe)
		if err != nil {
			return nil, fmt.Errorf("fetch %s list: %w", version, err)
		}
		return list, nil
	}
	if previous, err = fetch(previousVersion); err != nil {
		return nil, nil, err
	}
	if current, err = fetch(CurrentVersion); err != nil {
		return nil, nil, err
	}
	return previous, current, nil
}

// fetchCatchUp fetches the lists of the catch-up versions, in order, after
// the previous and current ones. A version the repo's archive does not
// serve (404) is returned in missing and skipped: an older version may
// predate the archive, and it must not cost the cleanup of the previous
// one. Any other failure is the fetch's, as for the previous list.
func fetchCatchUp(ctx context.Context, f ListFetcher, t Target, versions []string, observe func(error)) (lists [][]reference.Named, fetched, missing []string, err error) {
	for _, v := range versions {
		list, err := fetchList(ctx, f, t, v, observe)
		var se *StatusError
		if errors.As(err, &se) && se.StatusCode == http.StatusNotFound {
			missing = append(missing, v)
			continue
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("fetch %s list (catch-up): %w", v, err)
		}
		lists, fetched = append(lists, list), append(fetched, v)
	}
	return lists, fetched, missing, nil
}

// mergeLists joins image lists into one, sorted by String() and unique, as
// imagelist.Parse returns each.
func mergeLists(lists ...[]reference.Named) []reference.Named {
	var all []reference.Named
	for _, l := range lists {
		all = append(all, l...)
	}
	slices.SortFunc(all, func(a, b reference.Named) int { return strings.Compare(a.String(), b.String()) })
	return slices.CompactFunc(all, func(a, b reference.Named) bool { return a.String() == b.String() })
}

// fetchPlan fetches what the plan of u needs from t (the previous and
// current lists, then the catch-up versions' lists) and computes it.
func fetchPlan(ctx context.Context, f ListFetcher, t Target, u Upgrade, catchUp []string, p Policy, observe func(error)) (Plan, error) {
	previous, current, err := fetchLists(ctx, f, t, u.PreviousVersion, observe)
	if err != nil {
		return Plan{}, err
	}
	extra, fetched, missing, err := fetchCatchUp(ctx, f, t, catchUp, observe)
	if err != nil {
		return Plan{}, err
	}
	plan := ComputePlan(mergeLists(append([][]reference.Named{previous}, extra...)...), current, p)
	plan.CatchUp, plan.CatchUpMissing = fetched, missing
	return plan, nil
}
