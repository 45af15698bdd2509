package imagecleanup

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	harvesterv1 "github.com/harvester/harvester/pkg/apis/harvesterhci.io/v1beta1"
	"github.com/harvester/harvester/pkg/config"
	harvesterfake "github.com/harvester/harvester/pkg/generated/clientset/versioned/fake"
	ctlharvesterv1 "github.com/harvester/harvester/pkg/generated/controllers/harvesterhci.io"
	"github.com/rancher/lasso/pkg/controller"
	ctlbatch "github.com/rancher/wrangler/v3/pkg/generated/controllers/batch"
	ctlcore "github.com/rancher/wrangler/v3/pkg/generated/controllers/core"
	"github.com/rancher/wrangler/v3/pkg/generic"
	"github.com/rancher/wrangler/v3/pkg/schemes"
	"github.com/rancher/wrangler/v3/pkg/start"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

const (
	namespace       = "harvester-system"
	upgradeName     = "hvst-upgrade-6xk2p"
	previousVersion = "v1.5.1"
	newVersion      = "v1.6.0"
)

// The repo's two lists. The plan is what the previous one has and the new
// one has not, less Harvester's retain list (rancher/harvester-upgrade).
var (
	previousList = []string{
		"docker.io/longhornio/longhorn-manager:v1.8.1",
		"docker.io/rancher/harvester-upgrade:v1.5.1",
		"docker.io/rancher/harvester:v1.5.1",
		"registry.suse.com/suse/sles/15.6/virt-api:1.4.1",
	}
	currentList = []string{
		"docker.io/longhornio/longhorn-manager:v1.8.1",
		"docker.io/rancher/harvester-upgrade:v1.6.0",
		"docker.io/rancher/harvester:v1.6.0",
		"registry.suse.com/suse/sles/15.6/virt-api:1.5.0",
	}
	wantPlan = "docker.io/rancher/harvester:v1.5.1\nregistry.suse.com/suse/sles/15.6/virt-api:1.4.1\n"
)

// upgradeGVR is Harvester's Upgrade resource.
var upgradeGVR = harvesterv1.SchemeGroupVersion.WithResource("upgrades")

// repo serves the two image lists as Harvester's upgrade repo does, and
// counts the requests it gets.
type repo struct {
	*httptest.Server
	mu       sync.Mutex
	requests int
}

func serveRepo(t *testing.T) *repo {
	t.Helper()
	r := &repo{}
	lists := map[string]string{
		cleanup.ListPath(previousVersion):        strings.Join(previousList, "\n") + "\n",
		cleanup.ListPath(cleanup.CurrentVersion): strings.Join(currentList, "\n") + "\n",
	}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests++
		r.mu.Unlock()
		body, ok := lists[req.URL.Path]
		if !ok {
			http.NotFound(w, req)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *repo) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// slice is the EndpointSlice of the upgrade's repo Service
// upgrade-repo-<upgrade>, its one endpoint at the repo's address.
func (r *repo) slice(t *testing.T, ready bool) *discoveryv1.EndpointSlice {
	t.Helper()
	host, port, err := net.SplitHostPort(r.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	svc := "upgrade-repo-" + upgradeName
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      svc + "-x7k2q",
			Namespace: namespace,
			Labels: map[string]string{
				discoveryv1.LabelServiceName:       svc,
				"harvesterhci.io/upgrade":          upgradeName,
				"harvesterhci.io/upgradeComponent": "repo",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{host},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(p)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
}

// completedUpgrade is an Upgrade as Harvester leaves it when it succeeded:
// labelled latest, Completed, with the version it upgraded from.
func completedUpgrade() *harvesterv1.Upgrade {
	u := &harvesterv1.Upgrade{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace,
			Name:      upgradeName,
			UID:       "5b0e7c3a-upgrade",
			Labels:    map[string]string{cleanup.LatestUpgradeLabel: "true"},
		},
		Spec:   harvesterv1.UpgradeSpec{Version: newVersion},
		Status: harvesterv1.UpgradeStatus{PreviousVersion: previousVersion},
	}
	harvesterv1.UpgradeCompleted.True(u)
	return u
}

// harvester is Harvester's controller binary in memory: a
// *config.Management whose factories are Harvester's own generated ones
// and wrangler's, all over one lasso shared controller factory as in
// Harvester's server, with a fake shared cache under it; Harvester's typed
// fake client set holds the Upgrades, client-go's the rest.
type harvester struct {
	management *config.Management
	cache      *sharedCache
	harvester  *harvesterfake.Clientset
	kube       *kubefake.Clientset
	dynamic    *dynamicfake.FakeDynamicClient
	recorder   *record.FakeRecorder
	// newClients hands register the fakes and counts its calls.
	newClients  func(*config.Management) (clients, error)
	clientsMade int
}

// harvesterScheme is built as Harvester's server builds its scheme
// (pkg/server): Harvester's types, then every kind wrangler's generated
// controllers registered.
func harvesterScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := harvesterv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := schemes.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func newHarvester(t *testing.T, scheme *runtime.Scheme, objs ...runtime.Object) *harvester {
	t.Helper()
	var harvObjs, kubeObjs []runtime.Object
	for _, o := range objs {
		if _, ok := o.(*harvesterv1.Upgrade); ok {
			harvObjs = append(harvObjs, o)
		} else {
			kubeObjs = append(kubeObjs, o)
		}
	}
	h := &harvester{
		harvester: harvesterfake.NewSimpleClientset(harvObjs...),
		kube:      kubefake.NewClientset(kubeObjs...),
		dynamic:   dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{upgradeGVR: "UpgradeList"}),
		recorder:  record.NewFakeRecorder(100),
	}
	// The cleanup patches the Upgrade through its dynamic client; here the
	// patch lands in Harvester's typed fake, which the Upgrade informer
	// watches, as both read one API server in Harvester.
	h.dynamic.PrependReactor("patch", "upgrades", func(action clienttesting.Action) (bool, runtime.Object, error) {
		p := action.(clienttesting.PatchAction)
		u, err := h.harvester.HarvesterhciV1beta1().Upgrades(p.GetNamespace()).Patch(context.Background(), p.GetName(), p.GetPatchType(), p.GetPatch(), metav1.PatchOptions{})
		if err != nil {
			return true, nil, err
		}
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(u)
		return true, &unstructured.Unstructured{Object: obj}, err
	})
	h.newClients = func(*config.Management) (clients, error) {
		h.clientsMade++
		return clients{kube: h.kube, dynamic: h.dynamic, recorder: h.recorder}, nil
	}

	// lasso caches a namespaced kind with a namespace index.
	namespaced := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
	h.cache = newSharedCache(scheme,
		kind{gvr: upgradeGVR, kind: "Upgrade", namespaced: true, informer: func() cache.SharedIndexInformer {
			upgrades := h.harvester.HarvesterhciV1beta1().Upgrades(metav1.NamespaceAll)
			return cache.NewSharedIndexInformer(&cache.ListWatch{
				ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
					return upgrades.List(context.Background(), o)
				},
				WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
					return upgrades.Watch(context.Background(), o)
				},
			}, &harvesterv1.Upgrade{}, 0, namespaced)
		}},
		kind{gvr: discoveryv1.SchemeGroupVersion.WithResource("endpointslices"), kind: "EndpointSlice", namespaced: true, informer: func() cache.SharedIndexInformer {
			return discoveryinformers.NewEndpointSliceInformer(h.kube, metav1.NamespaceAll, 0, namespaced)
		}},
		kind{gvr: batchv1.SchemeGroupVersion.WithResource("jobs"), kind: "Job", namespaced: true, informer: func() cache.SharedIndexInformer {
			return batchinformers.NewJobInformer(h.kube, metav1.NamespaceAll, 0, namespaced)
		}},
		kind{gvr: corev1.SchemeGroupVersion.WithResource("nodes"), kind: "Node", informer: func() cache.SharedIndexInformer {
			return coreinformers.NewNodeInformer(h.kube, 0, cache.Indexers{})
		}},
	)

	opts := &generic.FactoryOptions{SharedControllerFactory: controller.NewSharedControllerFactory(h.cache, nil)}
	restConfig := &rest.Config{Host: "https://harvester.invalid"}
	harv, err := ctlharvesterv1.NewFactoryFromConfigWithOptions(restConfig, opts)
	if err != nil {
		t.Fatal(err)
	}
	core, err := ctlcore.NewFactoryFromConfigWithOptions(restConfig, opts)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := ctlbatch.NewFactoryFromConfigWithOptions(restConfig, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.management = &config.Management{
		HarvesterFactory: harv,
		CoreFactory:      core,
		BatchFactory:     batch,
		RestConfig:       restConfig,
	}
	return h
}

// start starts the factories as Harvester's Management.Start does once
// every register function has returned: sync every cache, then start the
// controllers.
func (h *harvester) start(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := start.All(ctx, 1, h.management.HarvesterFactory, h.management.CoreFactory, h.management.BatchFactory); err != nil {
		t.Fatal(err)
	}
}

// upgrade reads the Upgrade through Harvester's typed client.
func (h *harvester) upgrade(ctx context.Context, t *testing.T) *harvesterv1.Upgrade {
	t.Helper()
	u, err := h.harvester.HarvesterhciV1beta1().Upgrades(namespace).Get(ctx, upgradeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// waitFor polls cond until it holds, failing the test after 30 s.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// TestRegisterDrivesAnUpgradeToAPlan is Harvester's startup over its own
// types: the register function runs before the factories start, takes the
// Upgrade and EndpointSlice informers from Harvester's shared factory, and,
// once Harvester starts it, drives a completed, latest Harvester Upgrade to
// a plan as soon as its repo's endpoint is Ready, not before.
func TestRegisterDrivesAnUpgradeToAPlan(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := serveRepo(t)
	h := newHarvester(t, harvesterScheme(t), completedUpgrade(), r.slice(t, false))

	s := DefaultSettings()
	s.DryRun = true
	if err := register(ctx, h.management, config.Options{HCIMode: true, Namespace: namespace}, s, h.newClients); err != nil {
		t.Fatal(err)
	}
	// A dry run takes no Job or Node informer.
	want := []string{"discovery.k8s.io/v1, Kind=EndpointSlice", "harvesterhci.io/v1beta1, Kind=Upgrade"}
	if got := h.cache.Made(); !reflect.DeepEqual(got, want) {
		t.Fatalf("informers taken from Harvester's shared factory before it starts: %v, want %v", got, want)
	}
	h.start(ctx, t)

	state := func() string { return h.upgrade(ctx, t).Annotations[cleanup.StateAnnotation] }
	waitFor(ctx, t, "WaitingForRepo", func() bool { return state() == string(cleanup.StateWaitingForRepo) })
	if n := r.Requests(); n != 0 {
		t.Fatalf("%d requests to the repo before its endpoint was Ready", n)
	}

	// The repo VM is up: the EndpointSlice controller marks its endpoint Ready.
	if _, err := h.kube.DiscoveryV1().EndpointSlices(namespace).Update(ctx, r.slice(t, true), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, "Planned", func() bool { return state() == string(cleanup.StatePlanned) })

	cm, err := h.kube.CoreV1().ConfigMaps(namespace).Get(ctx, cleanup.PlanConfigMapName(upgradeName), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Data[cleanup.PlanKey]; got != wantPlan {
		t.Errorf("plan %s:\n%s\nwant:\n%s", cleanup.PlanKey, got, wantPlan)
	}
	if owners := cm.OwnerReferences; len(owners) != 1 || owners[0].UID != completedUpgrade().UID || owners[0].Kind != "Upgrade" {
		t.Errorf("plan owned by %+v, want the Upgrade", owners)
	}
	u := h.upgrade(ctx, t)
	if got, want := u.Annotations[cleanup.PlanDigestAnnotation], cm.Annotations[cleanup.PlanDigestAnnotation]; got == "" || got != want {
		t.Errorf("Upgrade's plan digest %q, plan's %q", got, want)
	}
	// Harvester's own fields are untouched: the cleanup only patches its
	// annotations.
	if !harvesterv1.UpgradeCompleted.IsTrue(u) || u.Status.PreviousVersion != previousVersion || u.Spec.Version != newVersion {
		t.Errorf("the Upgrade's spec or status changed: %+v %+v", u.Spec, u.Status)
	}
}

// TestRegisterSkipSetting: Settings.Skip switches Harvester's cleanup off
// (harvester#6625): the completed Upgrade is Skipped, the repo is asked
// nothing, and Harvester's own annotation is set so that its handler goes
// on to delete the repo instead of running its own cleanup.
func TestRegisterSkipSetting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := serveRepo(t)
	h := newHarvester(t, harvesterScheme(t), completedUpgrade(), r.slice(t, true))
	s := DefaultSettings()
	s.Skip = true
	if err := register(ctx, h.management, config.Options{HCIMode: true, Namespace: namespace}, s, h.newClients); err != nil {
		t.Fatal(err)
	}
	h.start(ctx, t)
	waitFor(ctx, t, "Skipped", func() bool {
		return h.upgrade(ctx, t).Annotations[cleanup.StateAnnotation] == string(cleanup.StateSkipped)
	})
	if u := h.upgrade(ctx, t); u.Annotations[cleanup.HarvesterDoneAnnotation] != "true" {
		t.Errorf("Skipped without %s: Harvester's own cleanup would run", cleanup.HarvesterDoneAnnotation)
	}
	if n := r.Requests(); n != 0 {
		t.Errorf("%d requests to the repo of a skipped cleanup", n)
	}
}

// TestRegisterOutsideHCIMode: as Harvester's upgrade controller, the
// cleanup registers nothing unless Harvester runs in HCI mode.
func TestRegisterOutsideHCIMode(t *testing.T) {
	h := newHarvester(t, harvesterScheme(t), completedUpgrade())
	if err := register(context.Background(), h.management, config.Options{Namespace: namespace}, DefaultSettings(), h.newClients); err != nil {
		t.Fatal(err)
	}
	if got := h.cache.Made(); len(got) != 0 || h.clientsMade != 0 {
		t.Errorf("outside HCI mode: informers %v and %d client sets made, want none", got, h.clientsMade)
	}
}

// TestRegisterRefusesNoWorkers: a controller without workers would never
// clean; register says so at once, before taking any informer.
func TestRegisterRefusesNoWorkers(t *testing.T) {
	h := newHarvester(t, harvesterScheme(t), completedUpgrade())
	s := DefaultSettings()
	s.Workers = 0
	err := register(context.Background(), h.management, config.Options{HCIMode: true, Namespace: namespace}, s, h.newClients)
	if err == nil || !strings.Contains(err.Error(), "Workers") {
		t.Fatalf("register: %v, want an error naming Settings.Workers", err)
	}
	if got := h.cache.Made(); len(got) != 0 || h.clientsMade != 0 {
		t.Errorf("after refusing: informers %v and %d client sets made, want none", got, h.clientsMade)
	}
}

// TestRegisterRefusesASchemeWithoutEndpointSlices: lasso would cache
// EndpointSlices unstructured, which the cleanup cannot read, so register
// says so instead of waiting for a repo it could never see.
func TestRegisterRefusesASchemeWithoutEndpointSlices(t *testing.T) {
	s := runtime.NewScheme()
	if err := harvesterv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	h := newHarvester(t, s, completedUpgrade())
	err := register(context.Background(), h.management, config.Options{HCIMode: true, Namespace: namespace}, DefaultSettings(), h.newClients)
	if err == nil || !strings.Contains(err.Error(), "EndpointSlice") {
		t.Fatalf("register: %v, want an error naming EndpointSlice", err)
	}
	if got := h.cache.Made(); len(got) != 0 || h.clientsMade != 0 {
		t.Errorf("after refusing: informers %v and %d client sets made, want none", got, h.clientsMade)
	}
}

// TestRegisterRunsTheRemoverInHarvestersImage: with removal on (the
// default settings), the registration also takes the Job and Node
// informers from Harvester's factories, and each managed node's Job runs
// the remover in Harvester's image through the Harvester binary's
// subcommand.
func TestRegisterRunsTheRemoverInHarvestersImage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const node = "harvester-node-0"
	r := serveRepo(t)
	managed := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"harvesterhci.io/managed": "true"}}}
	h := newHarvester(t, harvesterScheme(t), completedUpgrade(), r.slice(t, true), managed)

	s := DefaultSettings()
	if err := register(ctx, h.management, config.Options{HCIMode: true, Namespace: namespace}, s, h.newClients); err != nil {
		t.Fatal(err)
	}
	want := []string{"/v1, Kind=Node", "batch/v1, Kind=Job", "discovery.k8s.io/v1, Kind=EndpointSlice", "harvesterhci.io/v1beta1, Kind=Upgrade"}
	if got := h.cache.Made(); !reflect.DeepEqual(got, want) {
		t.Fatalf("informers taken from Harvester's shared factory before it starts: %v, want %v", got, want)
	}
	h.start(ctx, t)

	var job *batchv1.Job
	waitFor(ctx, t, "the removal Job on "+node, func() bool {
		j, err := h.kube.BatchV1().Jobs(namespace).Get(ctx, cleanup.JobName(upgradeName, node), metav1.GetOptions{})
		job = j
		return err == nil
	})
	c := job.Spec.Template.Spec.Containers[0]
	if c.Image != s.RemoverImage || !reflect.DeepEqual(c.Command, s.RemoverCommand) {
		t.Errorf("the Job runs %q in %s, want %q in %s", c.Command, c.Image, s.RemoverCommand, s.RemoverImage)
	}
	waitFor(ctx, t, "Removing", func() bool {
		return h.upgrade(ctx, t).Annotations[cleanup.StateAnnotation] == string(cleanup.StateRemoving)
	})
}

// TestRegisterTolerationsSetting: Settings.Tolerations reach each node's
// Job after its built-in ones, as --removal-tolerations does; a toleration
// the API server would refuse is refused by register, naming it, instead
// of failing every Job's creation.
func TestRegisterTolerationsSetting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const node = "harvester-node-0"
	r := serveRepo(t)
	managed := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"harvesterhci.io/managed": "true"}}}

	bad := DefaultSettings()
	bad.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: "NoSchedul"}}
	h := newHarvester(t, harvesterScheme(t), completedUpgrade(), r.slice(t, true), managed)
	err := register(ctx, h.management, config.Options{HCIMode: true, Namespace: namespace}, bad, h.newClients)
	if err == nil || !strings.Contains(err.Error(), `[0].effect: "NoSchedul"`) {
		t.Fatalf("register: %v, want an error naming the toleration's effect", err)
	}

	s := DefaultSettings()
	s.Tolerations = []corev1.Toleration{
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "storage", Effect: corev1.TaintEffectNoSchedule},
		{Key: "example.com/gpu", Operator: corev1.TolerationOpExists},
	}
	h = newHarvester(t, harvesterScheme(t), completedUpgrade(), r.slice(t, true), managed)
	if err := register(ctx, h.management, config.Options{HCIMode: true, Namespace: namespace}, s, h.newClients); err != nil {
		t.Fatal(err)
	}
	h.start(ctx, t)
	var job *batchv1.Job
	waitFor(ctx, t, "the removal Job on "+node, func() bool {
		j, err := h.kube.BatchV1().Jobs(namespace).Get(ctx, cleanup.JobName(upgradeName, node), metav1.GetOptions{})
		job = j
		return err == nil
	})
	tols := job.Spec.Template.Spec.Tolerations
	if n := len(tols) - len(s.Tolerations); n <= 0 || !reflect.DeepEqual(tols[n:], s.Tolerations) {
		t.Errorf("the Job's tolerations %+v do not end with the settings' %+v", tols, s.Tolerations)
	} else if !slices.ContainsFunc(tols[:n], func(t corev1.Toleration) bool { return t.Key == "node.kubernetes.io/unschedulable" }) {
		t.Errorf("the Job's tolerations %+v lost the built-in ones", tols)
	}
}
