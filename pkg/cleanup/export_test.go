package cleanup

import "context"

// Test hooks for the external tests (package cleanup_test): the queue's
// step-by-step processing, which no host needs.

// ProcessNextItem runs the worker once on the next queued key.
func (c *Controller) ProcessNextItem(ctx context.Context) bool { return c.processNextItem(ctx) }

// QueueLen is how many keys are ready to be processed.
func (c *Controller) QueueLen() int { return c.queue.Len() }

// QueueShuttingDown reports whether Run has stopped intake.
func (c *Controller) QueueShuttingDown() bool { return c.queue.ShuttingDown() }

// ShutDownQueue stops the queue of a controller whose Run never ran.
func (c *Controller) ShutDownQueue() { c.queue.ShutDown() }

// MaxRetries is the controller's retry cap.
func (c *Controller) MaxRetries() int { return c.opts.MaxRetries }
