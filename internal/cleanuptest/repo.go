package cleanuptest

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
)

// A small pair of lists: previous minus current is the harvester and
// longhorn-manager images (PlannedImages); harvester-upgrade is on the
// retain list; shared is in both under two spellings.
var (
	PreviousImages = []string{
		"rancher/harvester:v1.4.2",
		"docker.io/rancher/harvester-upgrade:v1.4.2",
		"docker.io/longhornio/longhorn-manager:v1.7.2",
		"rancher/shared:v1",
	}
	CurrentImages = []string{
		"docker.io/rancher/harvester:v1.5.0",
		"docker.io/rancher/harvester-upgrade:v1.5.0",
		"docker.io/longhornio/longhorn-manager:v1.8.1",
		"docker.io/rancher/shared:v1",
	}
)

// PlannedImages is the plan of PreviousImages and CurrentImages under the
// default policy, as the controller writes it (images.txt).
const PlannedImages = "docker.io/longhornio/longhorn-manager:v1.7.2\ndocker.io/rancher/harvester:v1.4.2\n"

// SmallLists are PreviousImages and CurrentImages by version, as a Repo
// serves them.
func SmallLists() map[string][]string {
	return map[string][]string{PreviousVersion: PreviousImages, cleanup.CurrentVersion: CurrentImages}
}

// Call is one FetchList call a Repo answered.
type Call struct {
	Target  cleanup.Target
	Version string
	// RepoReady is what the Repo's ReadyWhen said when the call came: the
	// controller's gate, in an Env. False without ReadyWhen.
	RepoReady bool
}

// FetchHook runs on the n-th call (from 0), after it is recorded and
// before it is answered: returning an error fails the call with it, and the
// hook may block, on ctx (a repo that never answers) or on anything else (a
// slow repo that ignores the request's context).
type FetchHook func(ctx context.Context, n int, version string) error

// Repo is the upgrade repo as the controller sees it through
// cleanup.ListFetcher, without HTTP: it serves lists by version and records
// every call. A version it has no list for is answered 404. It is safe for
// concurrent use.
type Repo struct {
	mu    sync.Mutex
	lists map[string][]string
	calls []Call
	ready func() bool
	hook  FetchHook
}

var _ cleanup.ListFetcher = (*Repo)(nil)

// NewRepo serves lists (version → image references).
func NewRepo(lists map[string][]string) *Repo {
	r := &Repo{lists: maps.Clone(lists)}
	if r.lists == nil {
		r.lists = map[string][]string{}
	}
	return r
}

// SetList serves images for version; an empty list is answered as one, as
// a ListFetcher other than the HTTP one may.
func (r *Repo) SetList(version string, images []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lists[version] = images
}

// OnFetch sets the hook every later call runs; nil removes it.
func (r *Repo) OnFetch(h FetchHook) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hook = h
}

// ReadyWhen sets what each call records as RepoReady.
func (r *Repo) ReadyWhen(ready func() bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready = ready
}

// FetchList records the call, runs the hook, and answers version's list.
func (r *Repo) FetchList(ctx context.Context, t cleanup.Target, version string) ([]reference.Named, error) {
	c := Call{Target: t, Version: version}
	r.mu.Lock()
	ready, hook := r.ready, r.hook
	r.mu.Unlock()
	// Outside the lock: the gate's readiness takes locks of its own.
	if ready != nil {
		c.RepoReady = ready()
	}
	r.mu.Lock()
	n := len(r.calls)
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, n, version); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	lines, ok := r.lists[version]
	r.mu.Unlock()
	if !ok {
		return nil, &cleanup.StatusError{URL: t.BaseURL + cleanup.ListPath(version), StatusCode: 404, Status: "404 Not Found"}
	}
	if len(lines) == 0 {
		return nil, nil
	}
	return imagelist.Parse(strings.NewReader(strings.Join(lines, "\n")), version)
}

// Calls returns the calls answered so far, in order.
func (r *Repo) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}
