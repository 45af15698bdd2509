package cleanup_test

import (
	"context"
	"fmt"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// ExampleNew shows how a host binary runs the controller: with its own
// clients, its own informers (which it starts), its own event recorder and
// its own context. Here the clients are fakes holding a completed upgrade
// whose repo is not Ready yet.
func ExampleNew() {
	const ns = "harvester-system"
	kube := kubefake.NewClientset(&discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "upgrade-repo-hvst-upgrade-x-1", Namespace: ns, Labels: map[string]string{
			informers.UpgradeLabel: "hvst-upgrade-x", informers.UpgradeComponentLabel: "repo",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.52.0.17"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}}},
		Ports:       []discoveryv1.EndpointPort{{Port: ptr.To[int32](80)}},
	})
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{informers.UpgradeGVR: "UpgradeList"},
		&unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "harvesterhci.io/v1beta1", "kind": "Upgrade",
			"metadata": map[string]any{"name": "hvst-upgrade-x", "namespace": ns, "labels": map[string]any{cleanup.LatestUpgradeLabel: "true"}},
			"status": map[string]any{"previousVersion": "v1.4.2", "conditions": []any{
				map[string]any{"type": "Completed", "status": "True"},
			}},
		}})

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
		u, err := dyn.Resource(informers.UpgradeGVR).Namespace(ns).Get(ctx, "hvst-upgrade-x", metav1.GetOptions{})
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
