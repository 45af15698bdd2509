package workqueue_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/workqueue"
)

func TestSettingsValidate(t *testing.T) {
	valid := workqueue.DefaultSettings()
	with := func(f func(*workqueue.Settings)) workqueue.Settings {
		s := valid
		f(&s)
		return s
	}
	tests := []struct {
		name     string
		settings workqueue.Settings
		// wantErr is a substring of the error; "" means valid.
		wantErr string
	}{
		{name: "defaults", settings: valid},
		{name: "max delay equal to base delay", settings: with(func(s *workqueue.Settings) { s.MaxDelay = s.BaseDelay })},
		{name: "empty name", settings: with(func(s *workqueue.Settings) { s.Name = "" }), wantErr: "name"},
		{name: "zero base delay", settings: with(func(s *workqueue.Settings) { s.BaseDelay = 0 }), wantErr: "base delay"},
		{name: "negative base delay", settings: with(func(s *workqueue.Settings) { s.BaseDelay = -time.Second }), wantErr: "base delay"},
		{name: "max delay below base delay", settings: with(func(s *workqueue.Settings) { s.MaxDelay = s.BaseDelay - 1 }), wantErr: "max delay"},
		{name: "zero qps", settings: with(func(s *workqueue.Settings) { s.QPS = 0 }), wantErr: "qps"},
		{name: "negative qps", settings: with(func(s *workqueue.Settings) { s.QPS = -1 }), wantErr: "qps"},
		{name: "zero burst", settings: with(func(s *workqueue.Settings) { s.Burst = 0 }), wantErr: "burst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.settings.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error about %q", err, tt.wantErr)
			}
			q, err := workqueue.New(tt.settings, clocktesting.NewFakeClock(time.Now()), nil)
			if err == nil || q != nil {
				t.Fatalf("New() with invalid settings = %v, %v; want nil and an error", q, err)
			}
		})
	}
}

// newQueue returns a queue on a fake clock. The delaying queue runs a 10 s
// heartbeat ticker that wakes its loop at times the test cannot observe;
// setting the clock back an hour after the ticker was made keeps it from
// firing, so the only timers that fire are those of delayed items, and they
// fire synchronously inside Step.
func newQueue(t *testing.T, s workqueue.Settings) (workqueue.Queue, *clocktesting.FakeClock) {
	t.Helper()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	q, err := workqueue.New(s, clk, nil)
	if err != nil {
		t.Fatalf("New(%+v): %v", s, err)
	}
	t.Cleanup(q.ShutDown)
	clk.SetTime(start.Add(-time.Hour))
	return q, clk
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// retryDelay calls AddRateLimited(key) on an empty queue and returns how much
// fake time passes before the queue hands key out, to within step. It checks
// that the queue stays empty until then, takes the key and marks it done
// without Forget, so the limiter keeps counting its failures.
func retryDelay(t *testing.T, q workqueue.Queue, clk *clocktesting.FakeClock, key workqueue.Key, step time.Duration) time.Duration {
	t.Helper()
	if q.Len() != 0 {
		t.Fatalf("queue holds %d items before AddRateLimited, want 0", q.Len())
	}
	idle := clk.Waiters() // the heartbeat ticker
	q.AddRateLimited(key)
	// The delaying queue takes the item in a goroutine and arms a timer for it.
	waitFor(t, "the queue to hold the item back", func() bool { return clk.Waiters() == idle+1 || q.Len() > 0 })

	var waited time.Duration
	for clk.Waiters() > idle {
		if q.Len() != 0 {
			t.Fatalf("queue handed the item out after %v, before its timer fired", waited)
		}
		if waited > time.Hour {
			t.Fatalf("item still held back after %v", waited)
		}
		clk.Step(step)
		waited += step
	}
	// The timer fired inside Step; the queue's goroutine adds the item.
	waitFor(t, "the item to be queued", func() bool { return q.Len() == 1 })
	got, shutdown := q.Get()
	if shutdown || got != key {
		t.Fatalf("Get() = %v, %v; want %v", got, shutdown, key)
	}
	q.Done(got)
	return waited
}

func TestAddRateLimitedDoublesDelayUpToMaxDelay(t *testing.T) {
	s := workqueue.DefaultSettings()
	q, clk := newQueue(t, s)
	key := workqueue.Key{Namespace: "harvester-system", Name: "hvst-upgrade-abc"}

	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := retryDelay(t, q, clk, key, 250*time.Millisecond); got != w {
			t.Fatalf("retry %d: delay %v, want %v", i+1, got, w)
		}
		if n := q.NumRequeues(key); n != i+1 {
			t.Fatalf("after retry %d: NumRequeues = %d, want %d", i+1, n, i+1)
		}
	}

	// Another key has its own count.
	other := workqueue.Key{Namespace: "harvester-system", Name: "hvst-upgrade-def"}
	if got := retryDelay(t, q, clk, other, 250*time.Millisecond); got != s.BaseDelay {
		t.Errorf("first retry of another key: delay %v, want %v", got, s.BaseDelay)
	}
}

func TestForgetResetsBackoff(t *testing.T) {
	q, clk := newQueue(t, workqueue.DefaultSettings())
	key := workqueue.Key{Namespace: "harvester-system", Name: "hvst-upgrade-abc"}

	for range 3 {
		retryDelay(t, q, clk, key, 250*time.Millisecond)
	}
	if n := q.NumRequeues(key); n != 3 {
		t.Fatalf("NumRequeues = %d, want 3", n)
	}
	q.Forget(key)
	if n := q.NumRequeues(key); n != 0 {
		t.Fatalf("after Forget: NumRequeues = %d, want 0", n)
	}
	if got := retryDelay(t, q, clk, key, 250*time.Millisecond); got != time.Second {
		t.Errorf("after Forget: delay %v, want the base delay 1s", got)
	}
}

func TestAddCollapsesOneKey(t *testing.T) {
	q, _ := newQueue(t, workqueue.DefaultSettings())
	key := workqueue.Key{Namespace: "harvester-system", Name: "hvst-upgrade-abc"}

	for range 10 {
		q.Add(key)
	}
	if n := q.Len(); n != 1 {
		t.Fatalf("after 10 Add of one key: Len = %d, want 1", n)
	}
	got, shutdown := q.Get()
	if shutdown || got != key {
		t.Fatalf("Get() = %v, %v; want %v", got, shutdown, key)
	}
	if n := q.Len(); n != 0 {
		t.Fatalf("after Get: Len = %d, want 0", n)
	}

	// Adds while the key is processed fold into one more round, after Done.
	q.Add(key)
	q.Add(key)
	if n := q.Len(); n != 0 {
		t.Fatalf("Add during processing: Len = %d, want 0 until Done", n)
	}
	q.Done(key)
	if n := q.Len(); n != 1 {
		t.Fatalf("after Done: Len = %d, want 1", n)
	}
}
