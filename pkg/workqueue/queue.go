// Package workqueue builds the rate-limited queue of Upgrade keys that feeds
// the cleanup workers, with numbers chosen for one job: a repo that is Ready
// but answers errors gets a few quick retries and is declared Failed within a
// minute.
package workqueue

import (
	"fmt"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// Key identifies an Upgrade by namespace and name. The queue holds keys, never
// objects, so a burst of events for one upgrade is one item and the worker
// always reads the newest state from the cache.
type Key = cache.ObjectName

// Queue is the typed rate-limited queue of Upgrade keys.
type Queue = workqueue.TypedRateLimitingInterface[Key]

// Settings are the queue's rate limits and retry cap.
type Settings struct {
	// Name names the queue in workqueue metrics.
	Name string
	// BaseDelay is the first per-item retry delay; it doubles on each failure.
	BaseDelay time.Duration
	// MaxDelay caps the per-item retry delay.
	MaxDelay time.Duration
	// QPS and Burst bound the retries of all items together.
	QPS   float64
	Burst int
	// MaxRetries is how many times one item is retried before the worker
	// gives up on it.
	MaxRetries int
}

// DefaultSettings are the settings of the standalone controller.
//
// Why these numbers: with a 1 s base doubling per failure, MaxRetries 4 means
// retries after 1, 2, 4 and 8 s: five attempts in 15 s of waiting. With the
// fetcher's 8 s bound per attempt the worst case is 15 + 5*8 = 55 s, so a repo
// that answers errors is reported Failed within a minute, while a repo that
// only needs a second or two after Ready (nginx still loading) is caught by
// the first retries. MaxDelay 30 s only matters for API errors, which use the
// same limiter. The bucket (10 per second, burst 100, client-go's default)
// never delays one upgrade's retries; it stops a storm of failing items from
// hammering the API server and the repo.
func DefaultSettings() Settings {
	return Settings{
		Name:       "upgrade-image-cleanup",
		BaseDelay:  time.Second,
		MaxDelay:   30 * time.Second,
		QPS:        10,
		Burst:      100,
		MaxRetries: 4,
	}
}

// Validate reports the first setting that cannot work.
func (s Settings) Validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("workqueue: name is empty; metrics need it")
	case s.BaseDelay <= 0:
		return fmt.Errorf("workqueue: base delay %v must be positive", s.BaseDelay)
	case s.MaxDelay < s.BaseDelay:
		return fmt.Errorf("workqueue: max delay %v is below base delay %v", s.MaxDelay, s.BaseDelay)
	case s.QPS <= 0 || s.Burst <= 0:
		return fmt.Errorf("workqueue: qps %v and burst %d must be positive", s.QPS, s.Burst)
	case s.MaxRetries < 0:
		return fmt.Errorf("workqueue: max retries %d is negative", s.MaxRetries)
	}
	return nil
}

// New returns a queue with per-item exponential backoff and an overall token
// bucket; a delay is the longer of the two. clk drives the queue's delays, so
// tests step a fake clock instead of sleeping. provider may be nil for
// client-go's global metrics provider.
func New(s Settings, clk clock.WithTicker, provider workqueue.MetricsProvider) (Queue, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	limiter := workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[Key](s.BaseDelay, s.MaxDelay),
		&workqueue.TypedBucketRateLimiter[Key]{Limiter: rate.NewLimiter(rate.Limit(s.QPS), s.Burst)},
	)
	return workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[Key]{
		Name:            s.Name,
		Clock:           clk,
		MetricsProvider: provider,
	}), nil
}
