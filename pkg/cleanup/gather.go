package cleanup

import (
	"context"
	"errors"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/workqueue"
)

// gather reads everything Decide needs about key into one Snapshot: the
// Upgrade from the cache, the plan ConfigMap (one GET: a plan written a
// moment ago must be seen), the repo's readiness from the gate, and what
// this process remembers of earlier failures; for a settled Upgrade, only
// the Upgrade. tried is this sync's own fetch, if it made one.
func (c *Controller) gather(ctx context.Context, key workqueue.Key, attempt int, tried *Tried) (Snapshot, error) {
	s := Snapshot{Attempt: attempt, Tried: tried}
	u, found, err := c.upgrades.Get(key)
	if err != nil {
		s.Malformed = err
		return s, nil
	}
	if !found {
		return s, nil
	}
	s.Found, s.Upgrade = true, u
	if settled(u) != "" {
		return s, nil // Decide needs nothing more
	}
	if s.Plan, err = c.seePlan(ctx, u); err != nil {
		return Snapshot{}, err
	}
	if s.Repo, s.Epoch, err = c.gate.Readiness(key); err != nil {
		return Snapshot{}, err
	}
	s.FailedIn, s.FailedInKnown = c.memory.failedIn(key)
	return s, nil
}

// seePlan reads the plan ConfigMap's presence, owner and digest.
func (c *Controller) seePlan(ctx context.Context, u Upgrade) (PlanSeen, error) {
	cm, err := c.existingPlan(ctx, u)
	var foreign *foreignPlanError
	switch {
	case errors.As(err, &foreign):
		return PlanSeen{Presence: PlanForeign, Foreign: err}, nil
	case err != nil:
		return PlanSeen{}, err
	case cm == nil:
		return PlanSeen{Presence: PlanAbsent}, nil
	}
	digest, invalid := checkPlan(cm)
	return PlanSeen{
		Presence: PlanOwned,
		Ref:      PlanRef{Namespace: cm.Namespace, ConfigMap: cm.Name, UID: cm.UID, Digest: digest, Early: cm.Annotations[PlannedEarlyAnnotation] == "true"},
		Invalid:  invalid,
		Message:  planMessage(cm),
		Contents: planContents(cm),
	}, nil
}
