package cleanup

import (
	"context"
	"fmt"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// Run waits for the informers' caches, runs workers until ctx ends, then
// stops taking items, lets the items in flight finish and returns.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if workers < 1 {
		return fmt.Errorf("cleanup: workers is %d, need at least 1", workers)
	}
	defer utilruntime.HandleCrash()
	logger := klog.FromContext(ctx)
	defer c.queue.ShutDown()
	// Informers the controller owns run for as long as Run does, and are
	// waited for before it returns.
	var ownedDone wait.Group
	ownedCtx, stopOwned := context.WithCancel(ctx)
	defer func() { stopOwned(); ownedDone.Wait() }()
	for _, inf := range c.owned {
		ownedDone.Start(func() { inf.Run(ownedCtx.Done()) })
	}
	if !cache.WaitForNamedCacheSync(c.opts.Queue.Name, ctx.Done(), c.synced...) {
		// Only a stop ends the wait: a clean shutdown, if an early one.
		logger.Info("Stopped before the informer caches synced")
		return nil
	}
	if c.resyncUpgrades {
		ownedDone.Start(func() { c.resync(ownedCtx) })
	}
	logger.Info("Starting workers", "workers", workers)
	// Items in flight run on a context of their own, cut only
	// ShutdownTimeout after ctx ends: a stop lets a fetch, a plan write or a
	// state patch finish instead of leaving it half done.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg wait.Group
	for range workers {
		wg.Start(func() {
			// As in client-go's controllers: a panic is logged through
			// klog before it ends the process, and a restart re-reads all.
			defer utilruntime.HandleCrash()
			// Checking ctx before each item stops intake at once.
			for ctx.Err() == nil && c.processNextItem(workCtx) {
			}
		})
	}
	<-ctx.Done()
	logger.Info("Stopping: no new items; letting items in flight finish", "timeout", c.opts.ShutdownTimeout)
	c.queue.ShutDown()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-c.clock.After(c.opts.ShutdownTimeout):
		logger.Info("Shutdown timeout reached; cancelling items in flight")
		cancelWork()
		<-finished
	}
	logger.Info("Workers stopped")
	return nil
}

// resync enqueues every Upgrade of the namespace each
// Options.UpgradeResync until ctx ends, on the controller's clock, as the
// informer it makes itself would.
func (c *Controller) resync(ctx context.Context) {
	t := c.clock.NewTicker(c.opts.UpgradeResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			for _, u := range c.upgrades.List(c.opts.Namespace) {
				c.queue.Add(u.Key())
			}
		}
	}
}

func (c *Controller) processNextItem(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	logger := klog.FromContext(ctx).WithValues("upgrade", key.String())
	ctx = klog.NewContext(ctx, logger)
	attempt := c.queue.NumRequeues(key)
	err := c.sync(ctx, key, attempt)
	switch DecideRequeue(err, ctx.Err() != nil, attempt, c.opts.MaxRetries) {
	case RequeueNone:
		c.queue.Forget(key)
	case RequeueStopping:
		// The queue takes no more items; a restart re-reads all.
	case RequeueStale:
		// Not a failure: decide again once the cache has the newer object,
		// keeping the retry count a fetch failure may have used.
		logger.V(logDetail).Info("Upgrade changed since it was read; syncing again")
		c.queue.AddAfter(key, staleRetryDelay)
	case RequeueRateLimited:
		logger.Info("Sync failed; retrying with backoff", "attempt", attempt+1, "err", err)
		c.queue.AddRateLimited(key)
	case RequeueDrop:
		// Dropped, not lost: the next event or resync brings the key back.
		logger.Error(err, "Sync failed; dropping until the next event", "attempts", attempt+1)
		c.queue.Forget(key)
	}
	return true
}

// Sync runs one gather–decide–apply pass for key now, outside the queue, as
// a worker would (the queue's retry count for key is its attempt). A host
// that drives its own queue calls it; so do tests. A key outside
// Options.Namespace is not the controller's: nothing is done. It returns an
// error only for a failure worth a retry.
func (c *Controller) Sync(ctx context.Context, key cache.ObjectName) error {
	if !c.ours(key) {
		return nil
	}
	return c.sync(ctx, key, c.queue.NumRequeues(key))
}

// RepoReadiness returns what the controller's gate says of the repo of key
// now: its Ready endpoints, and how many not-ready → ready transitions the
// gate has seen. A host can show it; tests wait on it.
func (c *Controller) RepoReadiness(key cache.ObjectName) (informers.Readiness, uint64, error) {
	return c.gate.Readiness(key)
}
