// Package harvesterhost shows how Harvester's controller binary embeds the
// cleanup: a register function with the shape of Harvester's
// (func(context.Context, *config.Management, config.Options) error), run by
// the host inside its own leader election, over the host's own clients and
// the host's own, already shared EndpointSlice informer. It imports nothing
// of Harvester: Management and Options stand in for the fields it uses.
package harvesterhost

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// Management stands in for the fields of Harvester's config.Management that
// Register uses.
type Management struct {
	ClientSet  kubernetes.Interface
	RestConfig *rest.Config
	// EndpointSlices is the host's EndpointSlice informer (Harvester's
	// DiscoveryFactory...EndpointSlice().Informer()): created by the host,
	// started by the host once every register function has run.
	EndpointSlices cache.SharedIndexInformer
	// Jobs and Nodes, when both set, turn on removal on the nodes
	// (BatchFactory and CoreFactory informers in Harvester).
	Jobs, Nodes cache.SharedIndexInformer
}

// Options stands in for Harvester's config.Options.
type Options struct {
	HCIMode bool
	// Namespace is where the Upgrades run: harvester-system.
	Namespace string
	// RemoverImage is the image the removal Jobs run: Harvester's own,
	// already pulled on every node.
	RemoverImage string
	// RemoverCommand starts the remover in RemoverImage: Harvester's binary
	// and the subcommand that mounts pkg/remover's Main, such as
	// []string{"harvester", "image-remover"}. Empty: the standalone image's
	// binary (cleanup.RemoverPath).
	RemoverCommand []string
}

// Register has the shape of Harvester's register functions. Harvester calls
// every register function inside its leader-election callback, so the
// controller needs no election of its own: it runs until ctx, the leader's
// context, ends.
func Register(ctx context.Context, m *Management, o Options) error {
	return register(ctx, m, o, func(c *rest.Config) (dynamic.Interface, error) { return dynamic.NewForConfig(c) })
}

// register takes the dynamic client's constructor so a test can hand it a fake.
func register(ctx context.Context, m *Management, o Options, newDynamic func(*rest.Config) (dynamic.Interface, error)) error {
	if !o.HCIMode {
		return nil // as Harvester's upgrade controller: only in HCI mode
	}
	dyn, err := newDynamic(m.RestConfig)
	if err != nil {
		return fmt.Errorf("image cleanup: dynamic client: %w", err)
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: m.ClientSet.CoreV1().Events("")})
	opts := cleanup.DefaultOptions()
	opts.Namespace = o.Namespace
	cfg := cleanup.Config{
		KubeClient:     m.ClientSet,
		DynamicClient:  dyn, // Upgrades: the controller makes and runs its own informer from it
		EndpointSlices: m.EndpointSlices,
		Recorder:       broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "harvester-image-cleanup"}),
		Clock:          clock.RealClock{},
		Options:        opts,
	}
	if m.Jobs != nil && m.Nodes != nil {
		removal := cleanup.DefaultRemovalOptions()
		removal.RemoverImage = o.RemoverImage
		if len(o.RemoverCommand) > 0 {
			removal.RemoverCommand = o.RemoverCommand
		}
		cfg.Removal, cfg.Jobs, cfg.Nodes = &removal, m.Jobs, m.Nodes
	}
	c, err := cleanup.New(cfg)
	if err != nil {
		broadcaster.Shutdown()
		return fmt.Errorf("image cleanup: %w", err)
	}
	go func() {
		defer broadcaster.Shutdown()
		if err := c.Run(ctx, 2); err != nil {
			klog.FromContext(ctx).Error(err, "Image cleanup stopped")
		}
	}()
	return nil
}
