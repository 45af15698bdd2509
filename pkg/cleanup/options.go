package cleanup

import (
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/workqueue"
)

// RepoAddress says how the repo is dialed.
type RepoAddress string

const (
	// RepoAddressEndpoint dials the Ready endpoint's own address and port from
	// the EndpointSlice: no cluster DNS and no kube-proxy, both of which are
	// often still restarting when an upgrade completes.
	RepoAddressEndpoint RepoAddress = "endpoint"
	// RepoAddressService dials http://upgrade-repo-<upgrade>.<namespace>, as
	// Harvester does.
	RepoAddressService RepoAddress = "service"
)

// Options configure the controller. DefaultOptions fills every field.
type Options struct {
	// Namespace holds the Upgrades and their repo Services; "" means all.
	Namespace string
	// Selector picks the repo's EndpointSlices.
	Selector labels.Selector
	// RepoAddress says how the repo is dialed.
	RepoAddress RepoAddress
	// Policy keeps images the plan must not remove. With Config.Removal, New
	// plans under its matching rules (RemovalOptions.MatchOtherRegistries),
	// so that planner and remover agree whatever the Policy was built with.
	Policy Policy
	// Queue sets the workqueue's rate limits.
	Queue workqueue.Settings
	// MaxRetries is how many rate-limited retries one sync gets before its
	// key is dropped until the next event or resync; a fetch that fails that
	// many times while the repo stays Ready records Failed instead.
	MaxRetries int
	// ShutdownTimeout bounds how long Run waits, once stopped, for items in
	// flight before cancelling them.
	ShutdownTimeout time.Duration
	// UpgradeResync is how often every Upgrade is synced again, so a key
	// dropped after its retries comes back: the resync period of the
	// Upgrade informer the controller makes when Config.Upgrades is nil;
	// with a host's informer, whose resync is the host's (10 hours for
	// Harvester's, none for some), the controller enqueues its Upgrades at
	// this period itself. 0: no resync of the controller's own.
	UpgradeResync time.Duration
	// Skip switches every cleanup off: at completion each Upgrade records
	// Skipped (SkipAnnotation does it for one).
	Skip bool
	// CatchUp names older versions whose images every plan also removes,
	// for the Upgrades without CatchUpAnnotation (see CatchUpVersions).
	CatchUp []string
}

// logDetail is the verbosity of lines that explain a decision further; the
// decisions themselves log at 0.
const logDetail = 2

// DefaultNamespace is where Harvester runs its upgrades and their repos.
const DefaultNamespace = "harvester-system"

// DefaultSelector matches the labels Harvester puts on the repo Service, which
// the EndpointSlice controller copies onto its slices.
const DefaultSelector = informers.UpgradeComponentLabel + "=repo"

// DefaultOptions are the standalone controller's defaults.
func DefaultOptions() Options {
	p, err := NewPolicy(DefaultRetain(), nil)
	if err != nil {
		panic(err) // the defaults are constants; a test covers them
	}
	return Options{
		Namespace:   DefaultNamespace,
		Selector:    labels.SelectorFromSet(labels.Set{informers.UpgradeComponentLabel: "repo"}),
		RepoAddress: RepoAddressEndpoint,
		Policy:      p,
		Queue:       workqueue.DefaultSettings(),
		// With the queue's 1 s base delay doubling per failure, 4 retries
		// come after 1, 2, 4 and 8 s: five attempts in 15 s of waiting.
		// With the fetcher's bound of 2 × 4 s per attempt (two lists,
		// DefaultFetcherOptions) the worst case is 15 + 5*8 = 55 s, so a repo that answers errors
		// is reported Failed within a minute, while a repo that only needs
		// a second or two after Ready (nginx still loading) is caught by the
		// first retries.
		MaxRetries: 4,
		// Kubernetes waits 30 s (terminationGracePeriodSeconds) before
		// SIGKILL; 20 s leaves room to log and exit.
		ShutdownTimeout: 20 * time.Second,
		UpgradeResync:   10 * time.Minute,
	}
}
