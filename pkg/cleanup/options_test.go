package cleanup_test

import (
	"testing"
	"time"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/workqueue"
)

// TestDefaultRetryBudget pins the arithmetic of DefaultOptions' comment:
// MaxRetries retries after 1, 2, 4 and 8 s of the queue's backoff, so 15 s
// of waiting; with five attempts of two list requests each bounded by the
// fetcher's RequestTimeout, a failing repo is reported within a minute.
func TestDefaultRetryBudget(t *testing.T) {
	o := cleanup.DefaultOptions()
	limiter := workqueue.NewRateLimiter(o.Queue)
	key := workqueue.Key{Namespace: "harvester-system", Name: "hvst-upgrade-abc"}
	var waiting time.Duration
	for range o.MaxRetries {
		waiting += limiter.When(key)
	}
	if waiting != 15*time.Second {
		t.Errorf("waiting over %d retries = %v, want 15s (1+2+4+8)", o.MaxRetries, waiting)
	}
	attempts := time.Duration(o.MaxRetries + 1)
	perAttempt := 2 * cleanup.DefaultFetcherOptions().RequestTimeout // previous and current list
	if worst := waiting + attempts*perAttempt; worst >= time.Minute {
		t.Errorf("worst case %v (%v waiting + %d attempts of %v) is not within a minute", worst, waiting, attempts, perAttempt)
	}
}
