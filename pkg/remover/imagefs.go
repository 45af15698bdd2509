package remover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// ImageFsReporter is implemented by a Runtime that measures the node's
// image filesystems. Run measures them through it when the Runtime it is
// given implements it (CRI does), before deciding and after removing, and
// reports both figures (report.Result.ImageFs); without it, a run
// measures nothing, and fails when Options.ImageFsThreshold is set. It is
// apart from Runtime so that a Runtime written before it still is one.
type ImageFsReporter interface {
	// ImageFsInfo returns the used bytes of the node's image filesystems
	// and when the runtime collected that figure. An error that is (or
	// wraps) ErrImageFsUnsupported says the runtime does not measure them.
	ImageFsInfo(ctx context.Context) (ImageFsUsage, error)
}

// ImageFsUsage is the runtime's figure for the node's image filesystems.
type ImageFsUsage struct {
	// UsedBytes is the sum of the bytes used over the image filesystems
	// the runtime lists.
	UsedBytes uint64
	// CollectedAt is when the runtime computed the figure, by its clock
	// (the node's): the oldest of the filesystems' timestamps. Zero when the
	// runtime gave none; such a figure never counts as measured after a
	// removal.
	CollectedAt time.Time
}

// ErrImageFsUnsupported is the error of an ImageFsInfo whose runtime does
// not measure its image filesystems: its CRI ImageFsInfo answers
// Unimplemented, or lists no image filesystem. Asking again will not help.
var ErrImageFsUnsupported = errors.New("the runtime does not report its image filesystem usage")

// errImageFsNotComputed is a figure of 0 bytes used: containerd's CRI plugin
// answers so after it starts, until its first statistics pass (a sum over
// an empty store, stamped now). The Jobs run right after an upgrade, when
// containerd has often just restarted: a 0 taken for a measurement would
// call every node below any threshold.
var errImageFsNotComputed = errors.New("the runtime reports 0 bytes used by its image filesystems: its figure is not computed yet (a runtime just started)")

// DefaultImageFsWait is Main's default --image-fs-wait: twice containerd's
// default stats_collect_period (10 s in 1.6 and 1.7), the period at which
// its CRI plugin recomputes the figure ImageFsInfo answers with, so that
// one recomputation after the removals falls within it whatever the phase.
const DefaultImageFsWait = 20 * time.Second

// imageFsPollInterval is how often Run asks ImageFsInfo again while it
// waits for a figure collected after the removals: an ImageFsInfo is an
// in-memory sum in containerd, and a figure refreshed every 10 s is then
// read at most a second after it appears.
const imageFsPollInterval = time.Second

// imageFsLateTimeout bounds the one ImageFsInfo call Run makes after the
// removals when its context has already ended (--timeout, SIGTERM): the
// result must still reach the termination log within the kubelet's grace
// period, so Run does not wait for a refresh then.
const imageFsLateTimeout = 5 * time.Second

// imageFsCallTimeout bounds one ImageFsInfo call while Run waits: a runtime
// that does not answer it in this time is asked again at the next poll.
const imageFsCallTimeout = 5 * time.Second

// measureAfter measures the image filesystems after removals that ended at
// since: it asks fsr until it answers with a figure collected at or after
// since, for at most wait by clk, and returns that figure with fresh true.
// If none comes within wait, or ctx ends first, it returns the last figure
// it got with fresh false; if it got none at all, the last error. When ctx
// has already ended, it asks once, under a short bound of its own.
func measureAfter(ctx context.Context, fsr ImageFsReporter, since time.Time, wait time.Duration, clk clock.Clock) (u ImageFsUsage, fresh bool, err error) {
	isFresh := func(u ImageFsUsage) bool {
		return u.UsedBytes > 0 && !u.CollectedAt.IsZero() && !u.CollectedAt.Before(since)
	}
	if ctx.Err() != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), imageFsLateTimeout)
		defer cancel()
		u, err := fsr.ImageFsInfo(lctx)
		return u, err == nil && isFresh(u), err
	}
	deadline := clk.Now().Add(wait)
	have := false
	for {
		cctx, cancel := context.WithTimeout(ctx, imageFsCallTimeout)
		got, cerr := fsr.ImageFsInfo(cctx)
		cancel()
		switch {
		case cerr == nil && isFresh(got):
			return got, true, nil
		case cerr == nil:
			u, have, err = got, true, nil
		case errors.Is(cerr, ErrImageFsUnsupported):
			// It answered before the removals; it will not now.
			if !have {
				err = cerr
			}
			return u, false, err
		default:
			// Not logged per poll: measureAfterRemoving logs the outcome once.
			if !have {
				err = cerr
			}
		}
		left := deadline.Sub(clk.Now())
		if left <= 0 {
			return u, false, err
		}
		t := clk.NewTimer(min(imageFsPollInterval, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return u, false, err
		case <-t.C():
		}
	}
}

// measureBefore measures the image filesystems before anything is removed.
// A runtime without ImageFsReporter (fsr nil) does not measure them. A
// figure of 0 is asked again every imageFsPollInterval for at most wait by
// clk; still 0, it is errImageFsNotComputed, no measurement.
func measureBefore(ctx context.Context, fsr ImageFsReporter, wait time.Duration, clk clock.Clock) (ImageFsUsage, error) {
	if fsr == nil {
		return ImageFsUsage{}, fmt.Errorf("%w (the Runtime has no ImageFsInfo)", ErrImageFsUnsupported)
	}
	deadline := clk.Now().Add(wait)
	for {
		// Bounded on its own: a runtime that hangs on it must not spend
		// the run's --timeout before anything is listed.
		cctx, cancel := context.WithTimeout(ctx, imageFsCallTimeout)
		u, err := fsr.ImageFsInfo(cctx)
		cancel()
		if err != nil || u.UsedBytes > 0 {
			return u, err
		}
		left := deadline.Sub(clk.Now())
		if left <= 0 {
			return u, errImageFsNotComputed
		}
		t := clk.NewTimer(min(imageFsPollInterval, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return u, errImageFsNotComputed
		case <-t.C():
		}
	}
}

// measureAfterRemoving sets fs.UsedAfter and fs.Stale from measureAfter,
// and logs what became of it. Without any figure, UsedAfter stays what it
// is (the figure from before the removals) and Stale is set: the last
// figure the runtime gave is that one.
func measureAfterRemoving(ctx context.Context, fsr ImageFsReporter, removedAt time.Time, wait time.Duration, clk clock.Clock, fs *report.ImageFs) {
	logger := klog.FromContext(ctx)
	u, fresh, err := measureAfter(ctx, fsr, removedAt, wait, clk)
	switch {
	case err != nil:
		fs.Stale = true
		logger.Error(err, "Cannot measure the image filesystems after the removals; reporting the figure from before them as stale")
	case !fresh:
		fs.UsedAfter, fs.Stale = u.UsedBytes, true
		logger.Info("The runtime's image filesystem usage did not refresh after the removals in time; reporting its last figure as stale",
			logKeyFsUsed, u.UsedBytes, logKeyCollected, u.CollectedAt, logKeyWait, wait)
	default:
		fs.UsedAfter = u.UsedBytes
	}
}
