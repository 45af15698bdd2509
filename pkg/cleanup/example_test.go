package cleanup_test

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// ExampleNew shows how a host binary runs the controller: with its own
// clients, its own informers (which it starts), its own event recorder and
// its own context. Here the clients are fakes holding a completed upgrade
// whose repo is not Ready yet (made by the tests' builders; a host has real
// clients).
func ExampleNew() {
	const ns, name = cleanuptest.Namespace, "hvst-upgrade-x"
	kube, dyn := cleanuptest.NewClients(
		cleanuptest.Upgrade(name).Obj(),
		cleanuptest.RepoSlice(name).Ready(false).Obj(),
	)

	// The host's informers. A host with a shared EndpointSlice informer
	// passes that one instead: the controller filters it itself.
	opts := cleanup.DefaultOptions()
	slices := informers.NewEndpointSliceInformer(kube, opts.Namespace, opts.Selector, 0)
	upgrades := informers.NewUpgradeInformer(dyn, opts.Namespace, 10*time.Minute)

	c, err := cleanup.New(cleanup.Config{
		KubeClient:     kube,
		DynamicClient:  dyn,
		EndpointSlices: slices,
		Upgrades:       upgrades,
		Recorder:       record.NewFakeRecorder(10),
		Clock:          clock.RealClock{},
		Options:        opts, // DryRun executor: stops at Planned
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// The host starts its informers; the controller never does.
	ctx, cancel := context.WithCancel(context.Background())
	go slices.Run(ctx.Done())
	go upgrades.Run(ctx.Done())
	done := make(chan error)
	go func() { done <- c.Run(ctx, 2) }()

	var state string
	_ = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		u, err := dyn.Resource(informers.UpgradeGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		state = u.GetAnnotations()[cleanup.StateAnnotation]
		return state != "", nil
	})
	fmt.Println(state)

	cancel()
	fmt.Println(<-done)
	// Output:
	// WaitingForRepo
	// <nil>
}
