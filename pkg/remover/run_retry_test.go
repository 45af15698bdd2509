package remover

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/fakecri"
)

// TestRunRetriesADeadlineAnswerWhileTheRunHasTime
// holds README "The remover": "a call that fails with gRPC
// DeadlineExceeded or Unavailable is tried exactly once more, always within
// --timeout (a call cut short by --timeout itself is not retried ...)", with
// "--remove-timeout ... must be > 0 and ≤ --timeout".
//
// Minimal input: --timeout=1m --remove-timeout=1m (allowed), and a runtime
// whose first RemoveImage answers DeadlineExceeded at once (its own
// internal deadline, e.g. containerd's GC lease), long before --timeout.
// The call was not cut short by --timeout, so it must be tried once more.
// Before the fix removeImage decided before the call, from time.Until(deadline)
// <= removeTimeout, that the run was out of time: true for every call once
// remove-timeout equals timeout (and, with the defaults 10m/2m, for every
// call in the last two minutes), so no DeadlineExceeded was retried.
func TestRunRetriesADeadlineAnswerWhileTheRunHasTime(t *testing.T) {
	slow := criImage("1", 10, "docker.io/rancher/slow:1")
	srv, c := startNode(t, node{images: []*runtimeapi.Image{slow}})
	srv.ScriptRemove(slow.Id, fakecri.RemoveCall{Err: deadline("runtime's own deadline: lease expired")})
	ctx, cancel := context.WithTimeout(testContext(t), time.Minute)
	defer cancel()
	opts := DefaultOptions()
	opts.RemoveTimeout = time.Minute // == --timeout, which the binary accepts

	rep, err := Run(ctx, c, mustPlan(t, "docker.io/rancher/slow:1"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if calls := srv.RemoveCalls(); len(calls) != 2 {
		t.Errorf("RemoveImage calls = %v, want 2: the first answered DeadlineExceeded at once, with ~1m of --timeout left", calls)
	}
	if r := rep.Result; r.Removed != 1 || r.Failed != 0 {
		t.Errorf("Result = %+v, want the image removed on the retry", r)
	}
}

// TestRunCountsAnImageTheFirstCallRemovedOnce holds README "The
// remover": a call that fails with DeadlineExceeded "is tried exactly once
// more", and "an image whose RemoveImage answered an error but that is no
// longer listed counts as removed (the detail keeps the error)". No other
// test has the first call remove the image before the retry answers an
// error (a runtime that, unlike containerd, answers NotFound for an image
// it no longer has): the image must count once, as removed, not failed.
func TestRunCountsAnImageTheFirstCallRemovedOnce(t *testing.T) {
	slow := criImage("1", 10, "docker.io/rancher/slow:1")
	srv, c := startNode(t, node{images: []*runtimeapi.Image{slow}})
	srv.ScriptRemove(slow.Id,
		fakecri.RemoveCall{Err: deadline("context deadline exceeded"), Removes: true},
		fakecri.RemoveCall{Err: status.Error(codes.NotFound, "image not known")})
	rep, err := Run(testContext(t), c, mustPlan(t, "docker.io/rancher/slow:1"), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if calls := srv.RemoveCalls(); len(calls) != 2 {
		t.Errorf("RemoveImage calls = %v, want 2", calls)
	}
	r := rep.Result
	if r.Removed != 1 || r.Failed != 0 || r.BytesReclaimed != 10 || len(r.FailedImages) != 0 {
		t.Errorf("Result = %+v, want removed once, 10 bytes, nothing failed", r)
	}
	if e := rep.Images[0]; e.Action != ActionRemoved || e.Error != "" || !strings.Contains(e.Detail, "image not known") {
		t.Errorf("entry = %+v, want removed with the retry's error in the detail", e)
	}
}
