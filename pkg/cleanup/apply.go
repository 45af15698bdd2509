package cleanup

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/workqueue"
)

// apply performs a. After a fetch it returns what the fetch did, for the
// next decision; otherwise nil, and the error worth a retry, if any.
func (c *Controller) apply(ctx context.Context, s Snapshot, a Action) (*Tried, error) {
	u := s.Upgrade
	switch a.Kind {
	case ActNothing:
		if a.PinFailure {
			c.memory.pinFailure(u.Key(), s.Epoch)
		}
		return nil, nil
	case ActRecord:
		if err := c.record(ctx, u, a.Outcome); err != nil {
			return nil, err
		}
		if a.PinFailure {
			// Only a failure that is on the Upgrade is pinned to its Ready phase.
			epoch := s.Epoch
			if s.Tried != nil {
				epoch = s.Tried.Epoch
			}
			c.memory.pinFailure(u.Key(), epoch)
		}
		return nil, nil
	case ActFetch:
		return c.fetchAndPlan(ctx, s, a.Target), nil
	case ActExecute:
		return nil, c.execute(ctx, u, a.Plan)
	case ActRequeue:
		c.queue.Add(u.Key())
		return nil, nil
	case ActRetry:
		return nil, a.Err
	}
	return nil, fmt.Errorf("unknown action %q", a.Kind)
}

// fetchAndPlan fetches both lists from t, computes the plan and writes it.
func (c *Controller) fetchAndPlan(ctx context.Context, s Snapshot, t Target) *Tried {
	u := s.Upgrade
	tried := &Tried{Epoch: s.Epoch}
	c.timeFirstRequest(u.Key(), s.Epoch)
	// Decide checked the versions.
	catchUp, err := CatchUpVersions(u, c.opts.CatchUp)
	if err != nil {
		tried.FetchErr = err
		return tried
	}
	plan, err := fetchPlan(ctx, c.fetcher, t, u, catchUp, c.opts.Policy, func(err error) {
		c.metrics.listFetches.WithLabelValues(fetchResult(err)).Inc()
	})
	if err != nil {
		tried.FetchErr, tried.Aborted = err, ctx.Err() != nil
		return tried
	}
	c.memory.forget(u.Key())
	cm, created, err := c.writePlan(ctx, u, plan)
	if err != nil {
		tried.WriteErr = err
		return tried
	}
	if created {
		c.metrics.imagesPlanned.Add(float64(len(plan.Remove)))
		when := PlannedAtCompletion
		if !u.Completed {
			when = PlannedEarly
		}
		c.metrics.plansWritten.WithLabelValues(when).Inc()
	}
	klog.FromContext(ctx).V(logDetail).Info("Plan written", "configMap", cm.Name, "remove", len(plan.Remove), "kept", len(plan.Kept), "repo", t.BaseURL,
		"early", !u.Completed, "catchUp", plan.CatchUp, "catchUpMissing", plan.CatchUpMissing)
	return tried
}

// execute hands a checked plan to the executor and records what it reports.
func (c *Controller) execute(ctx context.Context, u Upgrade, p PlanRef) error {
	out, err := c.executor.Execute(ctx, u, p)
	if err != nil {
		return fmt.Errorf("execute plan: %w", err)
	}
	if out.State == "" {
		return nil
	}
	if err := c.record(ctx, u, out); err != nil {
		return err
	}
	// A cache still showing Removing can make the same final write twice
	// (the API server refuses the second as a conflict, a fake does not),
	// and totals must count once.
	if out.Summary != nil && c.memory.firstFinal(u, out.Annotations[SummaryAnnotation]) {
		c.metrics.removed(out.Summary)
	}
	return nil
}

// timeFirstRequest observes, once per Ready phase the gate saw begin, the
// time from Ready to the first list request.
func (c *Controller) timeFirstRequest(key workqueue.Key, epoch uint64) {
	since, ok := c.gate.ReadySince(key, epoch)
	if ok && c.memory.firstRequest(key, epoch) {
		c.metrics.readyToFirstRequest.Observe(c.clock.Since(since).Seconds())
	}
}

// memory is what the controller remembers of each upgrade beyond its
// annotations and the gate: kept per key, and dropped with the Upgrade.
type memory struct {
	mu    sync.Mutex
	byKey map[workqueue.Key]remembered
}

type remembered struct {
	// failedIn is the Ready epoch a fetch failure was recorded in, when
	// failedKnown; a later epoch (the repo went away and came back) re-arms it.
	failedIn    uint64
	failedKnown bool
	// timed is the Ready epoch (plus one) whose first request was timed.
	timed uint64
	// finalized names the Upgrade (UID) and summary whose removal totals
	// were counted.
	finalized string
}

func newMemory() *memory { return &memory{byKey: map[workqueue.Key]remembered{}} }

func (m *memory) failedIn(key workqueue.Key) (uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.byKey[key]
	return r.failedIn, r.failedKnown
}

func (m *memory) pinFailure(key workqueue.Key, epoch uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.byKey[key]
	r.failedIn, r.failedKnown = epoch, true
	m.byKey[key] = r
}

// forget drops the failure after a successful fetch. The timing stays: a
// fetch made again in the same Ready phase (the plan's write failed) is not
// that phase's first request.
func (m *memory) forget(key workqueue.Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.byKey[key]
	r.failedIn, r.failedKnown = 0, false
	m.byKey[key] = r
}

// drop forgets everything of an Upgrade that no longer exists.
func (m *memory) drop(key workqueue.Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byKey, key)
}

// firstRequest reports whether epoch's first request is not yet timed, and
// marks it timed.
func (m *memory) firstRequest(key workqueue.Key, epoch uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.byKey[key]
	if r.timed == epoch+1 {
		return false
	}
	r.timed = epoch + 1
	m.byKey[key] = r
	return true
}

// firstFinal reports whether u's final outcome, whose summary annotation is
// summary, is counted for the first time in this process. The same summary
// written again (a stale cache) counts once; another one (a re-run, a
// removal re-armed by a person with a Job created again) counts too.
func (m *memory) firstFinal(u Upgrade, summary string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.byKey[u.Key()]
	final := string(u.UID) + "/" + imagelist.Digest([]byte(summary))
	if r.finalized == final {
		return false
	}
	r.finalized = final
	m.byKey[u.Key()] = r
	return true
}
