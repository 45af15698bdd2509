package remover

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
)

// zeroFirst answers ImageFsInfo with 0 bytes used for its first zeros
// calls, as containerd's CRI plugin does after a start until its first
// statistics pass (its sum over an empty snapshot store, stamped now),
// then with the node's figure. zeros < 0: always 0.
type zeroFirst struct {
	*CRI
	zeros int32
	calls atomic.Int32
}

func (z *zeroFirst) ImageFsInfo(ctx context.Context) (ImageFsUsage, error) {
	u, err := z.CRI.ImageFsInfo(ctx)
	if n := z.calls.Add(1); z.zeros < 0 || n <= z.zeros {
		u.UsedBytes = 0
	}
	return u, err
}

// Found by the fourth adversarial review: right after the runtime starts
// (the Jobs run right after an upgrade, when containerd has often just
// restarted), its figure is 0, stamped fresh. Taken as a measurement, any
// threshold would call every node "below" and remove nothing, reported as
// skipped on purpose. A zero figure is not a measurement: Run asks again
// within --image-fs-wait, and without a real figure it removes nothing and
// says it could not check (exit 1: the Job's retries come later).
func TestRunImageFsZeroIsNotAMeasurement(t *testing.T) {
	t.Run("zero, then the real figure: measured", func(t *testing.T) {
		n := startFsNode(t)
		rt := &zeroFirst{CRI: n.cri, zeros: 2}
		opts := DefaultOptions()
		opts.ImageFsThreshold = 1
		rep, _, err := n.run(t, t.Context(), rt, opts)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Result.BelowThreshold || rep.Result.Removed != 2 || rep.Result.ImageFs == nil || rep.Result.ImageFs.UsedBefore != fsUsed {
			t.Errorf("Result = %+v, imageFs %+v; want the real figure %d before, and the removals", rep.Result, rep.Result.ImageFs, fsUsed)
		}
	})
	t.Run("zero all along, with a threshold: nothing removed, not called below", func(t *testing.T) {
		n := startFsNode(t)
		rt := &zeroFirst{CRI: n.cri, zeros: -1}
		opts := DefaultOptions()
		opts.ImageFsThreshold = 1
		rep, _, err := n.run(t, t.Context(), rt, opts)
		if err == nil || !strings.Contains(err.Error(), "cannot check the image filesystem threshold") || rep.Result.BelowThreshold {
			t.Fatalf("Run = %+v, %v; want an error saying the threshold could not be checked", rep.Result, err)
		}
		if calls := n.srv.RemoveCalls(); len(calls) != 0 {
			t.Errorf("RemoveImage calls %v, want none", calls)
		}
	})
	t.Run("zero all along, no threshold: removes, no measured space", func(t *testing.T) {
		n := startFsNode(t)
		rt := &zeroFirst{CRI: n.cri, zeros: -1}
		rep, _, err := n.run(t, t.Context(), rt, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Result.Removed != 2 || rep.Result.ImageFs != nil {
			t.Errorf("Result = %+v, imageFs %+v; want the removals and no measured space (0 is no measurement)", rep.Result, rep.Result.ImageFs)
		}
	})
}
