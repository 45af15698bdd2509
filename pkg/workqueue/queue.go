// Package workqueue builds the typed, rate-limited queue of Upgrade keys
// that feeds the cleanup workers: per-key exponential backoff, so one key's
// retries come quickly at first and then space out, and an overall token
// bucket, so many failing keys together cannot flood what they retry
// against.
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

// Settings are the queue's name and rate limits. How many retries a key
// gets is its user's decision, not the queue's.
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
}

// DefaultSettings are the settings of the standalone controller.
//
// Why these numbers: a 1 s base doubling per failure retries a key after 1,
// 2, 4, 8 s and so on: quick enough for something that needs a second or
// two, spaced out for something that stays broken. MaxDelay 30 s caps the
// spacing, so a key retried for long is still retried twice a minute. The
// bucket (10 per second, burst 100, client-go's default) never delays one
// key's retries; it stops a storm of failing keys from hammering what they
// retry against.
func DefaultSettings() Settings {
	return Settings{
		Name:      "upgrade-image-cleanup",
		BaseDelay: time.Second,
		MaxDelay:  30 * time.Second,
		QPS:       10,
		Burst:     100,
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
	return workqueue.NewTypedRateLimitingQueueWithConfig(NewRateLimiter(s), workqueue.TypedRateLimitingQueueConfig[Key]{
		Name:            s.Name,
		Clock:           clk,
		MetricsProvider: provider,
	}), nil
}

// NewRateLimiter returns the queue's limiter: the longer of a per-key
// exponential delay and an overall token bucket. s must be valid. Its When
// answers what delay the queue would give a key's next retry, without a clock.
func NewRateLimiter(s Settings) workqueue.TypedRateLimiter[Key] {
	return workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[Key](s.BaseDelay, s.MaxDelay),
		&workqueue.TypedBucketRateLimiter[Key]{Limiter: rate.NewLimiter(rate.Limit(s.QPS), s.Burst)},
	)
}
