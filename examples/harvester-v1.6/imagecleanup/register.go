// Package imagecleanup registers the upgrade image cleanup in Harvester
// v1.6's controller binary. Register has the shape of Harvester's register
// functions (registerFunc in pkg/controller/master/setup.go) and builds the
// controller from Harvester's own *config.Management: its informers come
// from Harvester's factories, over the one shared cache Harvester starts
// after every register function has run, and its clients from the
// Management's client set and REST config. Harvester calls it inside its
// leader election, so the controller takes no Lease of its own.
//
// This package is its own module (examples/harvester-v1.6), built with
// Harvester v1.6.0's go line and replace directives; hack/verify-harvester
// checks that adding it changes no module version Harvester's upgrade
// controller builds with.
package imagecleanup

import (
	"context"
	"fmt"

	"github.com/harvester/harvester/pkg/config"
	"github.com/harvester/harvester/pkg/version"
	"github.com/rancher/lasso/pkg/controller"
	ctldiscovery "github.com/rancher/wrangler/v3/pkg/generated/controllers/discovery"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// Component names the cleanup's events and log lines.
const Component = "harvester-image-cleanup"

// Settings are what the cleanup needs beyond Harvester's config.Options.
type Settings struct {
	// RemoverImage is the image of each node's removal Job.
	RemoverImage string
	// RemoverCommand starts the remover in RemoverImage; empty means the
	// standalone image's binary (cleanup.RemoverPath).
	RemoverCommand []string
	// DryRun stops each cleanup at Planned: the plan is written, no Job
	// runs.
	DryRun bool
	// Workers is how many upgrades are processed in parallel, at least 1.
	Workers int
	// Skip switches every cleanup off (harvester#6625), as the controller's
	// --skip; the annotation harvesterhci.io/image-cleanup-skip does it
	// for one Upgrade.
	Skip bool
	// CatchUp names older versions whose images every plan also removes,
	// as --catch-up.
	CatchUp []string
	// ImageFsThreshold, in bytes, removes only on nodes whose image
	// filesystem holds at least this much, as --image-fs-threshold; 0: on
	// every node.
	ImageFsThreshold uint64
	// Tolerations are added to each removal Job after its own, for nodes
	// with taints of their own, as --removal-tolerations; they never
	// replace the built-in ones, which let a Job run on a drained or
	// control-plane node.
	Tolerations []corev1.Toleration
}

// DefaultSettings run the remover from Harvester's own image, at the
// version of the running controller (the upgrade's new version, which no
// cleanup removes), as `harvester image-remover`: the Harvester binary with
// this module's remover (cmd/image-remover) added as a subcommand.
func DefaultSettings() Settings {
	return Settings{
		RemoverImage:   "rancher/harvester:" + version.Version,
		RemoverCommand: []string{"harvester", "image-remover"},
		Workers:        2,
	}
}

// Register is NewRegister(DefaultSettings()): the line to add to
// Harvester's registerFuncs.
func Register(ctx context.Context, management *config.Management, options config.Options) error {
	return register(ctx, management, options, DefaultSettings(), harvesterClients)
}

// NewRegister returns a register function of Harvester's shape that runs
// the cleanup with s.
func NewRegister(s Settings) func(context.Context, *config.Management, config.Options) error {
	return func(ctx context.Context, management *config.Management, options config.Options) error {
		return register(ctx, management, options, s, harvesterClients)
	}
}

// clients are what the controller writes through.
type clients struct {
	kube     kubernetes.Interface
	dynamic  dynamic.Interface
	recorder record.EventRecorder
}

// harvesterClients are the Management's: its client set, a dynamic client
// on its REST config (the cleanup's status writes are merge patches of its
// own annotations, which the typed wrangler client cannot send), and an
// event recorder as Harvester's controllers make one.
func harvesterClients(m *config.Management) (clients, error) {
	dyn, err := dynamic.NewForConfig(m.RestConfig)
	if err != nil {
		return clients{}, err
	}
	return clients{kube: m.ClientSet, dynamic: dyn, recorder: m.NewRecorder(Component, "", "")}, nil
}

// register takes the clients' constructor so that a test can hand it
// fakes; everything else comes from the Management.
func register(ctx context.Context, m *config.Management, o config.Options, s Settings, newClients func(*config.Management) (clients, error)) error {
	if !o.HCIMode {
		return nil // as Harvester's upgrade controller
	}
	if s.Workers < 1 {
		return fmt.Errorf("image cleanup: Settings.Workers is %d, need at least 1", s.Workers)
	}
	// The informers must be obtained now: Harvester starts its factories,
	// and with them every informer obtained so far, once all register
	// functions have returned. All come from its one shared controller
	// factory. Harvester v1.6 has no discovery factory in Management, so
	// the EndpointSlice informer comes from wrangler's discovery
	// controllers over that same shared factory.
	shared := m.CoreFactory.ControllerFactory()
	if err := checkScheme(shared); err != nil {
		return err
	}
	cfg := cleanup.Config{
		EndpointSlices: ctldiscovery.New(shared).V1().EndpointSlice().Informer(),
		// Harvester's typed Upgrade informer, the one its own upgrade
		// controller reads; ConvertUpgrade reads it for the cleanup.
		Upgrades:       m.HarvesterFactory.Harvesterhci().V1beta1().Upgrade().Informer(),
		ConvertUpgrade: ConvertUpgrade,
		Clock:          clock.RealClock{},
		Options:        cleanup.DefaultOptions(),
	}
	cfg.Options.Namespace = o.Namespace
	cfg.Options.Skip, cfg.Options.CatchUp = s.Skip, s.CatchUp
	if !s.DryRun {
		removal := cleanup.DefaultRemovalOptions()
		removal.RemoverImage = s.RemoverImage
		removal.ImageFsThreshold = s.ImageFsThreshold
		removal.Tolerations = s.Tolerations
		if len(s.RemoverCommand) > 0 {
			removal.RemoverCommand = s.RemoverCommand
		}
		cfg.Removal = &removal
		cfg.Jobs = m.BatchFactory.Batch().V1().Job().Informer()
		cfg.Nodes = m.CoreFactory.Core().V1().Node().Informer()
	}
	cl, err := newClients(m)
	if err != nil {
		return fmt.Errorf("image cleanup: %w", err)
	}
	cfg.KubeClient, cfg.DynamicClient, cfg.Recorder = cl.kube, cl.dynamic, cl.recorder
	c, err := cleanup.New(cfg)
	if err != nil {
		return fmt.Errorf("image cleanup: %w", err)
	}
	go func() {
		// ctx is the leader's: the controller works while Harvester leads.
		if err := c.Run(ctx, s.Workers); err != nil {
			logrus.WithError(err).Error("Image cleanup stopped")
		}
	}()
	return nil
}

// checkScheme makes sure the shared factory's scheme knows EndpointSlices.
// Lasso caches a kind its scheme does not know as unstructured objects,
// which the cleanup cannot read; Harvester's scheme takes wrangler's
// registered kinds, discovery.k8s.io/v1 among them once this package is
// linked.
func checkScheme(f controller.SharedControllerFactory) error {
	gvk := discoveryv1.SchemeGroupVersion.WithKind("EndpointSlice")
	obj, _, err := f.SharedCacheFactory().SharedClientFactory().NewObjects(gvk)
	if err != nil {
		return fmt.Errorf("image cleanup: %s: %w", gvk, err)
	}
	if _, ok := obj.(*discoveryv1.EndpointSlice); !ok {
		return fmt.Errorf("image cleanup: the shared controller factory's scheme does not know %s (it would cache %T)", gvk, obj)
	}
	return nil
}
