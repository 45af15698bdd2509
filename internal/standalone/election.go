package standalone

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// LeaseName is the Lease the replicas compete for, in
// Settings.LeaderElectNamespace.
const LeaseName = "upgrade-image-cleanup"

// Election timing, client-go's usual values: a dead leader is replaced
// within about 15 s, and a leader that cannot renew for 10 s stops working
// before another can take over.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// errLostLease ends the process when this replica stops being the leader: its
// workers are stopped by then, and a restart makes it a candidate again.
var errLostLease = errors.New("lost the leader lease")

// election runs work only while this replica holds the Lease.
type election struct {
	elector *leaderelection.LeaderElector
	work    func(context.Context) error
	started atomic.Bool
	done    chan error
}

// newElection prepares an election for the Lease in namespace; run takes
// part in it.
func newElection(ctx context.Context, kube kubernetes.Interface, namespace string) (*election, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("leader election identity: %w", err)
	}
	id := host + "_" + string(uuid.NewUUID())
	logger := klog.FromContext(ctx)
	e := &election{done: make(chan error, 1)}
	e.elector, err = leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: LeaseName},
			Client:     kube.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		},
		LeaseDuration: leaseDuration,
		RenewDeadline: renewDeadline,
		RetryPeriod:   retryPeriod,
		// Released on a clean stop, so the next leader starts at once
		// instead of waiting for the lease to expire.
		ReleaseOnCancel: true,
		Name:            LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				e.started.Store(true)
				logger.Info("Elected leader; starting work", "identity", id)
				e.done <- e.work(lctx)
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(leader string) {
				if leader != id {
					logger.Info("Standing by", "leader", leader)
				}
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("leader election: %w", err)
	}
	return e, nil
}

// leader is the identity of the current leader, "" while unknown.
func (e *election) leader() string { return e.elector.GetLeader() }

// run runs work while this replica holds the lease. It returns when ctx
// ends (work's result) or the lease is lost (errLostLease), in both cases
// after work returned.
func (e *election) run(ctx context.Context, work func(context.Context) error) error {
	e.work = work
	e.elector.Run(ctx) // returns when ctx ends or the lease is lost; work's context is cancelled then
	if !e.started.Load() {
		return nil // stopped while standing by
	}
	werr := <-e.done
	if ctx.Err() != nil {
		return werr
	}
	klog.FromContext(ctx).Info("Lost the leader lease; work stopped")
	return errors.Join(errLostLease, werr)
}
