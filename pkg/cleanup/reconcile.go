package cleanup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/workqueue"
)

// CurrentVersion names the new version's list in the repo's archive.
const CurrentVersion = "current"

// sync brings one upgrade's cleanup one step further. attempt is how many
// times the key was retried through the rate limiter. It returns an error only
// for a failure worth a rate-limited retry.
func (c *Controller) sync(ctx context.Context, key workqueue.Key, attempt int) error {
	logger := klog.FromContext(ctx)
	if c.opts.Namespace != "" && key.Namespace != c.opts.Namespace {
		return nil // a shared Upgrade informer may carry other namespaces; they are not ours
	}
	u, found, err := c.upgrades.Get(key)
	if err != nil {
		// A malformed object stays malformed until it changes; its update event brings it back.
		logger.Error(err, "Skipping malformed Upgrade")
		return nil
	}
	if !found {
		// Not here, or not yet: the repo's slices may be seen before the
		// Upgrade. What the gate saw is kept until the Upgrade is deleted.
		return nil
	}
	// Harvester acts only on the Upgrade labelled latest; so do we.
	if !u.Completed || u.Labels[LatestUpgradeLabel] != "true" {
		return nil
	}
	state, phase := State(u.Annotations[StateAnnotation]), Phase(u.Annotations[FailedPhaseAnnotation])
	switch {
	case state == StateSucceeded || u.Annotations[HarvesterDoneAnnotation] == "true":
		return nil
	case state == StatePlanned || state == StateRemoving:
		return c.execute(ctx, u)
	case state == StateFailed && phase != "" && phase != PhaseFetch:
		// The plan could not be stored or trusted, or the removal failed:
		// the repo coming and going says nothing about that; only a person
		// re-arms it (by removing the state annotation).
		return nil
	}
	if err := ValidateVersion("status.previousVersion", u.PreviousVersion); err != nil {
		return c.fail(ctx, u, PhaseFetch, "cannot fetch image lists: "+err.Error())
	}

	// A plan already written (restart after writing it, a stale cache, a
	// Planned patch that did not land, or a person re-arming a failed
	// removal) stands, whether the repo is up or not: fetching again could
	// only make a second, different plan.
	cm, err := c.existingPlan(ctx, u)
	if err != nil {
		return c.planFailed(ctx, u, err)
	}
	ready, epoch, err := c.gate.Readiness(key)
	if err != nil {
		return err
	}
	switch {
	case state == StateFailed && phase == "" && cm != nil:
		// Failed after planning, recorded by a version that wrote no phase.
		return nil
	case cm != nil:
		return c.planned(ctx, u, cm)
	case state == StateFailed && ready.Ready() && !c.rearmed(key, epoch):
		return nil // failed in this Ready phase; the next one re-arms it
	}
	if !ready.Ready() {
		// No request, no requeue: the gate enqueues the key when an endpoint
		// is Ready. Already waiting: recorded once, and a more telling
		// message (the repo went away during a fetch) is kept.
		if state == StateWaitingForRepo {
			return nil
		}
		msg := "waiting for a Ready endpoint of Service " + informers.RepoServicePrefix + u.Name
		if state == StateFailed {
			msg = "re-armed after failure, waiting for a Ready endpoint of Service " + informers.RepoServicePrefix + u.Name
		}
		return c.setState(ctx, u, StateWaitingForRepo, msg)
	}

	target := c.target(u, ready, attempt)
	c.timeFirstRequest(key, epoch)
	previous, current, err := c.fetchLists(ctx, target, u.PreviousVersion)
	if err != nil {
		return c.fetchFailed(ctx, u, epoch, attempt, err)
	}
	c.forgetFailure(key)
	plan := ComputePlan(previous, current, c.opts.Policy)
	cm, created, err := c.writePlan(ctx, u, plan)
	if err != nil {
		return c.planFailed(ctx, u, err)
	}
	if created {
		c.metrics.imagesPlanned.Add(float64(len(plan.Remove)))
	}
	logger.V(logDetail).Info("Plan written", "configMap", cm.Name, "remove", len(plan.Remove), "kept", len(plan.Kept), "repo", target.BaseURL)
	return c.planned(ctx, u, cm)
}

// planned records Planned for a written plan, with the plan's digest, once
// the plan is checked: a plan this upgrade does not own, or whose content is
// not what its digest says, is Failed and never run.
func (c *Controller) planned(ctx context.Context, u Upgrade, cm *corev1.ConfigMap) error {
	digest, err := checkPlan(cm)
	if err != nil {
		return c.fail(ctx, u, PhasePlan, err.Error())
	}
	return c.record(ctx, u, Outcome{State: StatePlanned, Message: planMessage(cm), Annotations: map[string]string{PlanDigestAnnotation: digest}})
}

// planFailed records Failed when the plan cannot be written and retrying
// cannot help: the plan's place is taken by a ConfigMap the Upgrade does not
// own, or the API server refused the plan itself. Any other error is retried.
func (c *Controller) planFailed(ctx context.Context, u Upgrade, err error) error {
	var foreign *foreignPlanError
	if errors.As(err, &foreign) || isPermanent(err) {
		return c.fail(ctx, u, PhasePlan, err.Error())
	}
	return err
}

// fetchFailed decides what a failed fetch means. If the repo stopped being
// Ready, the failure says nothing about the repo: wait for Ready again, with
// no retry spent. If it stayed Ready, retry through the rate limiter up to the
// cap, then record Failed.
func (c *Controller) fetchFailed(ctx context.Context, u Upgrade, epoch uint64, attempt int, fetchErr error) error {
	logger := klog.FromContext(ctx)
	if ctx.Err() != nil {
		return fetchErr // shutting down: the failure is ours, not the repo's
	}
	now, nowEpoch, err := c.gate.Readiness(u.Key())
	if err != nil {
		return err
	}
	switch {
	case !now.Ready():
		logger.Info("Fetch failed after the repo went not ready; waiting for Ready", "err", fetchErr)
		return c.setState(ctx, u, StateWaitingForRepo, "repo went not ready during the fetch: "+fetchErr.Error())
	case nowEpoch != epoch:
		// The repo went away and came back during the fetch: a new Ready
		// phase with a fresh retry budget (the worker forgets the count).
		logger.Info("Fetch failed across a repo restart; fetching again", "err", fetchErr)
		c.queue.Add(u.Key())
		return nil
	case attempt < c.opts.Queue.MaxRetries:
		return fmt.Errorf("fetch image lists while the repo is Ready: %w", fetchErr)
	}
	err = c.fail(ctx, u, PhaseFetch, fmt.Sprintf("fetching the image lists failed %d times while the repo was Ready; waiting for the repo to restart: %v", attempt+1, fetchErr))
	if err == nil {
		// Only a failure that is on the Upgrade is pinned to this Ready phase.
		c.recordFailure(u.Key(), epoch)
	}
	return err
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

// target picks where to dial: a Ready endpoint, the next one on each retry so
// that one dead endpoint among several Ready ones does not take every
// attempt; or the Service's DNS name.
func (c *Controller) target(u Upgrade, r informers.Readiness, attempt int) Target {
	svc := informers.RepoServicePrefix + u.Name + "." + u.Namespace
	if c.opts.RepoAddress == RepoAddressService {
		return Target{BaseURL: "http://" + svc}
	}
	ep := r.Endpoints[attempt%len(r.Endpoints)]
	return Target{BaseURL: "http://" + net.JoinHostPort(ep.Address, strconv.Itoa(int(ep.Port))), Host: svc}
}

// execute hands a written plan to the executor and records what it reports.
// The plan is checked first, on every sync: a plan deleted, replaced or
// changed since it was planned fails the cleanup, and no Job starts.
func (c *Controller) execute(ctx context.Context, u Upgrade) error {
	name := PlanConfigMapName(u.Name)
	cm, err := c.existingPlan(ctx, u)
	var foreign *foreignPlanError
	switch {
	case errors.As(err, &foreign):
		return c.fail(ctx, u, PhasePlan, err.Error())
	case err != nil:
		return err
	case cm == nil:
		return c.fail(ctx, u, PhaseRemoval, fmt.Sprintf("plan ConfigMap %s/%s is gone; remove the annotation %s to plan again", u.Namespace, name, StateAnnotation))
	}
	digest, err := checkPlan(cm)
	if err != nil {
		return c.fail(ctx, u, PhasePlan, err.Error())
	}
	if recorded := u.Annotations[PlanDigestAnnotation]; recorded != digest {
		return c.fail(ctx, u, PhasePlan, fmt.Sprintf("plan ConfigMap %s/%s: %s has digest %s, but the upgrade recorded %q when it was planned; not running it: delete the ConfigMap and remove the annotation %s to plan again",
			u.Namespace, name, PlanKey, digest, recorded, StateAnnotation))
	}
	out, err := c.executor.Execute(ctx, u, PlanRef{Namespace: u.Namespace, ConfigMap: cm.Name, UID: cm.UID, Digest: digest})
	if err != nil {
		return fmt.Errorf("execute plan: %w", err)
	}
	if out.State == "" {
		return nil
	}
	if err := c.record(ctx, u, out); err != nil {
		return err
	}
	if out.Summary != nil && c.firstFinal(u) {
		c.metrics.removed(out.Summary)
	}
	return nil
}

// firstFinal reports whether u's final outcome is recorded for the first
// time in this process: a cache still showing Removing can make the same
// final write twice (the API server refuses the second as a conflict, a fake
// does not), and totals must count once.
func (c *Controller) firstFinal(u Upgrade) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finalized[u.UID] {
		return false
	}
	c.finalized[u.UID] = true
	return true
}

// timeFirstRequest observes, once per Ready phase the gate saw begin, the
// time from Ready to the first list request.
func (c *Controller) timeFirstRequest(key workqueue.Key, epoch uint64) {
	since, ok := c.gate.ReadySince(key, epoch)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.measured[key] == epoch+1 {
		return
	}
	c.measured[key] = epoch + 1
	c.metrics.readyToFirstRequest.Observe(c.clock.Since(since).Seconds())
}

func (c *Controller) recordFailure(key workqueue.Key, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failedIn[key] = epoch
}

func (c *Controller) forgetFailure(key workqueue.Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.failedIn, key)
	delete(c.measured, key)
}

// rearmed reports whether a Failed upgrade's repo began a new Ready phase
// since the failure. A failure this process did not see (it was recorded
// before a restart) is pinned to the current phase, so the next one re-arms it.
func (c *Controller) rearmed(key workqueue.Key, epoch uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	failed, known := c.failedIn[key]
	if !known {
		c.failedIn[key] = epoch
		return false
	}
	return epoch > failed
}
