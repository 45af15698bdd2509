package cleanup

import (
	"context"
	"fmt"

	"github.com/distribution/reference"
	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/workqueue"
)

// CurrentVersion names the new version's list in the repo's archive.
const CurrentVersion = "current"

// maxStepsPerSync bounds one sync: a decision, the fetch it may make, and
// the decision on what that fetch did.
const maxStepsPerSync = 3

// sync brings one upgrade's cleanup one step further: gather a Snapshot,
// Decide, apply; after a fetch, once more on what the fetch did. attempt is
// how many times the key was retried through the rate limiter. It returns an
// error only for a failure worth a retry.
func (c *Controller) sync(ctx context.Context, key workqueue.Key, attempt int) error {
	logger := klog.FromContext(ctx)
	var tried *Tried
	for range maxStepsPerSync {
		s, err := c.gather(ctx, key, attempt, tried)
		if err != nil {
			return err
		}
		a := Decide(s, c.decideOptions())
		if a.Kind == ActNothing {
			logger.V(logDetail).Info("Nothing to do", "why", a.Why)
		} else {
			logger.V(logDetail).Info("Decided", "action", a.Kind, "why", a.Why)
		}
		if tried, err = c.apply(ctx, s, a); tried == nil {
			return err
		}
	}
	return fmt.Errorf("no decision after %d steps", maxStepsPerSync) // unreachable: a second fetch needs a second sync
}

// fetchLists fetches the previous list, then the current one; a failure of
// the first makes no second request.
func (c *Controller) fetchLists(ctx context.Context, t Target, previousVersion string) (previous, current []reference.Named, err error) {
	previous, err = c.fetcher.FetchList(ctx, t, previousVersion)
	c.metrics.listFetches.WithLabelValues(fetchResult(err)).Inc()
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s list: %w", previousVersion, err)
	}
	current, err = c.fetcher.FetchList(ctx, t, CurrentVersion)
	c.metrics.listFetches.WithLabelValues(fetchResult(err)).Inc()
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s list: %w", CurrentVersion, err)
	}
	return previous, current, nil
}
