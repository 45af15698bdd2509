package cleanup

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/workqueue"
)

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
		switch {
		case tried != nil && (tried.FetchErr != nil || tried.WriteErr != nil):
			// What a failed fetch means is the decision an operator asks about.
			logger.Info("Decided on a failed fetch", "action", a.Kind, "why", a.Why, "err", errors.Join(tried.FetchErr, tried.WriteErr))
		case a.Kind == ActNothing:
			logger.V(logDetail).Info("Nothing to do", "why", a.Why)
		default:
			// A recorded state logs its own line; a fetch, its plan.
			logger.V(logDetail).Info("Decided", "action", a.Kind, "why", a.Why)
		}
		if tried, err = c.apply(ctx, s, a); tried == nil {
			return err
		}
	}
	return fmt.Errorf("no decision after %d steps", maxStepsPerSync) // unreachable: a second fetch needs a second sync
}
