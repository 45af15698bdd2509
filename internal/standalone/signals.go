package standalone

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"
)

// OnSignals returns a context that the first SIGINT or SIGTERM cancels: the
// controller stops taking work and lets items in flight finish
// (Settings.ShutdownTimeout). A second signal exits at once, for a person who
// does not want to wait. The returned func stops listening.
func OnSignals(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
			return
		}
		klog.FromContext(parent).Info("Signal received; shutting down (a second signal exits at once)")
		cancel()
		<-sigs
		klog.FromContext(parent).Info("Second signal; exiting now")
		klog.Flush()
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(sigs); cancel() }
}
