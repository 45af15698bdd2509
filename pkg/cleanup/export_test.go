package cleanup

import (
	"context"

	"k8s.io/client-go/tools/cache"
)

// Test hooks for the external tests (package cleanup_test): the queue's
// step-by-step processing, which no host needs.

// ProcessNextItem runs the worker once on the next queued key.
func (c *Controller) ProcessNextItem(ctx context.Context) bool { return c.processNextItem(ctx) }

// QueueLen is how many keys are ready to be processed.
func (c *Controller) QueueLen() int { return c.queue.Len() }

// QueueShuttingDown reports whether Run has stopped intake.
func (c *Controller) QueueShuttingDown() bool { return c.queue.ShuttingDown() }

// NumRequeues is how many retries the queue has counted for key.
func (c *Controller) NumRequeues(key cache.ObjectName) int { return c.queue.NumRequeues(key) }

// Enqueue adds key to the queue, as an event handler would.
func (c *Controller) Enqueue(key cache.ObjectName) { c.queue.Add(key) }

// TakeNextKey takes the next queued key off the queue without processing
// it; false when the queue is shutting down.
func (c *Controller) TakeNextKey() (cache.ObjectName, bool) {
	key, quit := c.queue.Get()
	if quit {
		return cache.ObjectName{}, false
	}
	c.queue.Done(key)
	c.queue.Forget(key)
	return key, true
}
