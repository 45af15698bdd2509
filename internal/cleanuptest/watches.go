package cleanuptest

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/watch"
	clienttesting "k8s.io/client-go/testing"
)

// watchable is what both fake clientsets offer: a reaction chain and the
// tracker behind it.
type watchable interface {
	PrependWatchReactor(resource string, reaction clienttesting.WatchReactionFunc)
	Tracker() clienttesting.ObjectTracker
}

// Watches records which resources watches were started on through some fake
// clientsets. The fakes' tracker has no resource versions, so a write made
// after an informer lists but before it watches is never delivered to it:
// an informer that has synced may still miss it, and a level-based
// controller then waits for ever on a cache that never changes. Whoever
// writes after starting informers over fakes waits here first.
type Watches struct {
	mu      sync.Mutex
	started map[string]int
	changed chan struct{} // closed and replaced on every start
}

// TrackWatches starts recording the watches made through fakes from now on.
// Its reactor serves each watch from the fake's tracker itself, so the
// watch is registered before it is counted.
func TrackWatches(fakes ...watchable) *Watches {
	w := &Watches{started: map[string]int{}, changed: make(chan struct{})}
	for _, f := range fakes {
		tracker := f.Tracker()
		f.PrependWatchReactor("*", func(action clienttesting.Action) (bool, watch.Interface, error) {
			watcher, err := tracker.Watch(action.GetResource(), action.GetNamespace())
			if err != nil {
				return false, nil, err
			}
			w.mu.Lock()
			w.started[action.GetResource().Resource]++
			close(w.changed)
			w.changed = make(chan struct{})
			w.mu.Unlock()
			return true, watcher, nil
		})
	}
	return w
}

// Wait returns once a watch has started on each of resources since
// TrackWatches, or an error naming those still missing when ctx ends.
func (w *Watches) Wait(ctx context.Context, resources ...string) error {
	for {
		w.mu.Lock()
		var missing []string
		for _, r := range resources {
			if w.started[r] == 0 {
				missing = append(missing, r)
			}
		}
		changed := w.changed
		w.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("no watch started on %v: %w", missing, ctx.Err())
		}
	}
}
