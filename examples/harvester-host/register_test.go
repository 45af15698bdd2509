package harvesterhost

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// hostInformer is the host's shared informer, counting who runs it: only
// the host may.
type hostInformer struct {
	cache.SharedIndexInformer
	runs atomic.Int32
}

func (h *hostInformer) Run(stop <-chan struct{}) {
	h.runs.Add(1)
	h.SharedIndexInformer.Run(stop)
}

func (h *hostInformer) RunWithContext(ctx context.Context) {
	h.runs.Add(1)
	h.SharedIndexInformer.Run(ctx.Done())
}

// TestHostInformerDrivesThePipeline is Harvester's startup order: the host
// builds its shared informers, calls the register functions inside its
// leader callback, then starts its informers. The host's EndpointSlice
// informer (unfiltered, all namespaces, as a shared factory hands it out)
// drives the cleanup to a plan, and only the host ever runs it.
func TestHostInformerDrivesThePipeline(t *testing.T) {
	const ns, upgrade = cleanuptest.Namespace, "hvst-upgrade-host1"
	repo, err := cleanuptest.ServeLists()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = repo.Close() })
	slice := cleanuptest.RepoSlice(upgrade).Namespace(ns).ByServiceName().Address(repo.IP()).Port(repo.Port()).Ready(false).Obj()
	other := slice.DeepCopy() // a slice in another namespace the host's informer also holds
	other.Namespace, other.Name = "default", "unrelated"
	kube, dyn := cleanuptest.NewClients(cleanuptest.Upgrade(upgrade).Namespace(ns).Obj(), slice, other)

	slices := &hostInformer{SharedIndexInformer: discoveryinformers.NewEndpointSliceInformer(kube, "", 0, cache.Indexers{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &Management{ClientSet: kube, RestConfig: &rest.Config{Host: "https://harvester.invalid"}, EndpointSlices: slices}
	err = register(ctx, m, Options{HCIMode: true, Namespace: ns}, func(*rest.Config) (dynamic.Interface, error) { return dyn, nil })
	if err != nil {
		t.Fatal(err)
	}
	go slices.Run(ctx.Done()) // the host starts its factories after registering

	state := func() string {
		u, err := dyn.Resource(informers.UpgradeGVR).Namespace(ns).Get(ctx, upgrade, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return u.GetAnnotations()[cleanup.StateAnnotation]
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	poll("WaitingForRepo", func() bool { return state() == string(cleanup.StateWaitingForRepo) })
	if n := len(repo.Requests()); n != 0 {
		t.Fatalf("%d requests before the repo was Ready", n)
	}
	cleanuptest.SetReady(slice, true)
	if _, err := kube.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("Planned", func() bool { return state() == string(cleanup.StatePlanned) })
	cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, cleanup.PlanConfigMapName(upgrade), metav1.GetOptions{})
	if err != nil || cm.Data[cleanup.PlanKey] == "" {
		t.Fatalf("plan ConfigMap: %v %v", cm, err)
	}
	if n := len(repo.Requests()); n != 2 {
		t.Errorf("%d requests to the repo, want 2", n)
	}
	if n := slices.runs.Load(); n != 1 {
		t.Errorf("the host's informer was run %d times, want once, by the host", n)
	}
}

// TestHostImageRunsTheRemover: Harvester's Jobs run the remover in
// Harvester's own image, through the subcommand its binary mounts, with the
// remover's flags as for the standalone image; without a command they run
// the standalone image's binary.
func TestHostImageRunsTheRemover(t *testing.T) {
	tests := []struct {
		name        string
		command     []string
		wantCommand []string
	}{
		{"host subcommand", []string{"harvester", "image-remover"}, []string{"harvester", "image-remover"}},
		{"no command", nil, []string{cleanup.RemoverPath}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const ns, upgrade, node, image = cleanuptest.Namespace, "hvst-upgrade-host2", "harvester-node-0", "rancher/harvester:v1.5.0"
			repo, err := cleanuptest.ServeLists()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = repo.Close() })
			slice := cleanuptest.RepoSlice(upgrade).Namespace(ns).ByServiceName().Address(repo.IP()).Port(repo.Port()).Ready(true).Obj()
			kube, dyn := cleanuptest.NewClients(cleanuptest.Upgrade(upgrade).Namespace(ns).Obj(), slice, cleanuptest.Node(node))

			// The host's informers, unfiltered and indexed as its shared
			// factories hand them out, started by the host after registering.
			byNamespace := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
			m := &Management{
				ClientSet: kube, RestConfig: &rest.Config{Host: "https://harvester.invalid"},
				EndpointSlices: discoveryinformers.NewEndpointSliceInformer(kube, "", 0, byNamespace),
				Jobs:           batchinformers.NewJobInformer(kube, "", 0, byNamespace),
				Nodes:          coreinformers.NewNodeInformer(kube, 0, cache.Indexers{}),
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			o := Options{HCIMode: true, Namespace: ns, RemoverImage: image, RemoverCommand: tt.command}
			if err := register(ctx, m, o, func(*rest.Config) (dynamic.Interface, error) { return dyn, nil }); err != nil {
				t.Fatal(err)
			}
			for _, inf := range []cache.SharedIndexInformer{m.EndpointSlices, m.Jobs, m.Nodes} {
				go inf.Run(ctx.Done())
			}

			var job *batchv1.Job
			err = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
				j, err := kube.BatchV1().Jobs(ns).Get(ctx, cleanup.JobName(upgrade, node), metav1.GetOptions{})
				job = j
				return err == nil, nil
			})
			if err != nil {
				t.Fatalf("waiting for the removal Job on %s: %v", node, err)
			}
			c := job.Spec.Template.Spec.Containers[0]
			if c.Image != image || !slices.Equal(c.Command, tt.wantCommand) {
				t.Errorf("container runs %q in %s, want %q in %s", c.Command, c.Image, tt.wantCommand, image)
			}
			if !slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--plan-digest=sha256:") }) {
				t.Errorf("args = %q, want the remover's flags, --plan-digest among them", c.Args)
			}
		})
	}
}

// TestNotInHCIMode registers nothing, as Harvester's upgrade controller.
func TestNotInHCIMode(t *testing.T) {
	called := false
	err := register(context.Background(), &Management{}, Options{}, func(*rest.Config) (dynamic.Interface, error) {
		called = true
		return nil, nil
	})
	if err != nil || called {
		t.Errorf("register outside HCI mode: err %v, built a client: %v", err, called)
	}
}
