package cleanuptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// ClockStart is when an Env's fake clock starts.
var ClockStart = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// DefaultTimeout bounds each wait of an Env.
const DefaultTimeout = 10 * time.Second

// NewClients returns fake clientsets holding objs: the Upgrades
// (unstructured) in a dynamic client that can list them, everything else in
// the Kubernetes one.
func NewClients(objs ...runtime.Object) (*kubefake.Clientset, *dynamicfake.FakeDynamicClient) {
	var kubeObjs, dynObjs []runtime.Object
	for _, o := range objs {
		if _, ok := o.(*unstructured.Unstructured); ok {
			dynObjs = append(dynObjs, o)
		} else {
			kubeObjs = append(kubeObjs, o)
		}
	}
	return kubefake.NewClientset(kubeObjs...),
		dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
			map[schema.GroupVersionResource]string{informers.UpgradeGVR: "UpgradeList"}, dynObjs...)
}

// Env is the controller's world in memory: fake clientsets, the four
// informers it reads (not started until Start), a fake recorder and clock,
// and a Repo. NewController wires the controller over them; the helpers
// look at the upgrade Key and wait on conditions, never sleep.
type Env struct {
	Ctx context.Context
	// Key is the Upgrade the helpers read, and whose repo slices they write.
	Key      cache.ObjectName
	Kube     *kubefake.Clientset
	Dynamic  *dynamicfake.FakeDynamicClient
	Recorder *record.FakeRecorder
	Clock    *clocktesting.FakeClock
	Repo     *Repo
	// Options are the controller's: DefaultOptions until NewController
	// sets what it was built with.
	Options cleanup.Options

	EndpointSlices, Upgrades, Jobs, Nodes cache.SharedIndexInformer

	Controller *cleanup.Controller
	// Timeout bounds each wait.
	Timeout time.Duration

	watches *Watches
}

// NewEnv returns an Env over clients holding objs (see NewClients). Key is
// the first Upgrade of objs, else Namespace/UpgradeName; Repo serves
// SmallLists. Reactors prepended to Kube or Dynamic before Start see every
// request: the fakes' reaction chains are not safe to change once an
// informer lists through them.
func NewEnv(ctx context.Context, objs ...runtime.Object) *Env {
	e := &Env{
		Ctx:      ctx,
		Key:      cache.ObjectName{Namespace: Namespace, Name: UpgradeName},
		Recorder: record.NewFakeRecorder(100),
		Clock:    clocktesting.NewFakeClock(ClockStart),
		Repo:     NewRepo(SmallLists()),
		Options:  cleanup.DefaultOptions(),
		Timeout:  DefaultTimeout,
	}
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			e.Key = cache.ObjectName{Namespace: u.GetNamespace(), Name: u.GetName()}
			break
		}
	}
	e.Kube, e.Dynamic = NewClients(objs...)
	e.watches = TrackWatches(e.Kube, e.Dynamic)
	e.EndpointSlices = informers.NewEndpointSliceInformer(e.Kube, e.Options.Namespace, e.Options.Selector, 0)
	e.Upgrades = informers.NewUpgradeInformer(e.Dynamic, e.Options.Namespace, 0)
	e.Jobs = informers.NewJobInformer(e.Kube, e.Options.Namespace, cleanup.RemovalSelector(), 0)
	e.Nodes = informers.NewNodeInformer(e.Kube, cleanup.DefaultRemovalOptions().NodeSelector, 0)
	return e
}

// ConfigOption changes the controller's Config before NewController builds it.
type ConfigOption func(*cleanup.Config)

// WithKubeReactor and WithDynamicReactor prepend a reactor to the fake
// clientsets, before the informers start.
func WithKubeReactor(verb, resource string, fn clienttesting.ReactionFunc) ConfigOption {
	return func(c *cleanup.Config) { c.KubeClient.(*kubefake.Clientset).PrependReactor(verb, resource, fn) }
}

// WithDynamicReactor: see WithKubeReactor.
func WithDynamicReactor(verb, resource string, fn clienttesting.ReactionFunc) ConfigOption {
	return func(c *cleanup.Config) {
		c.DynamicClient.(*dynamicfake.FakeDynamicClient).PrependReactor(verb, resource, fn)
	}
}

// WithRemoval removes planned images with Jobs (DefaultRemovalOptions, a
// remover image, and ratio as the success ratio) instead of the dry run.
func WithRemoval(ratio float64) ConfigOption {
	return func(c *cleanup.Config) {
		o := cleanup.DefaultRemovalOptions()
		o.RemoverImage = "registry.example/image-remover:v1"
		o.SuccessRatio = ratio
		c.Removal = &o
	}
}

// WithRegistry exports the controller's metrics to reg.
func WithRegistry(reg prometheus.Registerer) ConfigOption {
	return func(c *cleanup.Config) { c.Registerer = reg }
}

// WithFetcher fetches the lists with f instead of the Env's Repo.
func WithFetcher(f cleanup.ListFetcher) ConfigOption {
	return func(c *cleanup.Config) { c.Fetcher = f }
}

// WithExecutor runs planned upgrades with ex.
func WithExecutor(ex cleanup.Executor) ConfigOption {
	return func(c *cleanup.Config) { c.Executor = ex }
}

// WithSharedInformers gives the controller informers as a host shares
// them: Upgrades, EndpointSlices and Jobs of every namespace, every Node,
// none filtered by the controller's selectors (it applies them itself).
func WithSharedInformers() ConfigOption {
	return func(c *cleanup.Config) {
		c.Upgrades = informers.NewUpgradeInformer(c.DynamicClient, "", 0)
		c.EndpointSlices = informers.NewEndpointSliceInformer(c.KubeClient, "", labels.Everything(), 0)
		c.Jobs = informers.NewJobInformer(c.KubeClient, "", labels.Everything(), 0)
		c.Nodes = informers.NewNodeInformer(c.KubeClient, labels.Everything(), 0)
	}
}

// NewController builds the controller over the Env (cleanup.New), with
// Repo as its fetcher, after opts; the Env runs the informers opts gave it. Unless a call already has one, the Repo
// records with each call whether the controller's gate saw the repo of Key
// Ready.
func (e *Env) NewController(opts ...ConfigOption) (*cleanup.Controller, error) {
	cfg := cleanup.Config{
		KubeClient: e.Kube, DynamicClient: e.Dynamic,
		EndpointSlices: e.EndpointSlices, Upgrades: e.Upgrades,
		Jobs: e.Jobs, Nodes: e.Nodes,
		Recorder: e.Recorder, Clock: e.Clock, Fetcher: e.Repo,
		Options: e.Options,
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := cleanup.New(cfg)
	if err != nil {
		return nil, err
	}
	e.Controller, e.Options = c, cfg.Options
	e.EndpointSlices, e.Upgrades, e.Jobs, e.Nodes = cfg.EndpointSlices, cfg.Upgrades, cfg.Jobs, cfg.Nodes
	e.Repo.mu.Lock()
	if e.Repo.ready == nil {
		e.Repo.ready = func() bool {
			r, _, _ := c.RepoReadiness(e.Key)
			return r.Ready()
		}
	}
	e.Repo.mu.Unlock()
	return c, nil
}

// Start runs the informers until Ctx ends and waits until the controller's
// handlers (or, without a controller, the informers) have seen the initial
// lists and every informer's watch is registered.
func (e *Env) Start() error {
	infs := []cache.SharedIndexInformer{e.EndpointSlices, e.Upgrades, e.Jobs, e.Nodes}
	for _, inf := range infs {
		go inf.Run(e.Ctx.Done())
	}
	synced := []cache.InformerSynced{}
	if e.Controller != nil {
		synced = append(synced, e.Controller.HasSynced)
	} else {
		for _, inf := range infs {
			synced = append(synced, inf.HasSynced)
		}
	}
	ctx, cancel := context.WithTimeout(e.Ctx, e.Timeout)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return errors.New("the informers' caches did not sync")
	}
	// A write the test makes next must reach the informers: see Watches.
	return e.watches.Wait(ctx, "endpointslices", "upgrades", "jobs", "nodes")
}

// WaitFor polls cond, which reads what the informers fill in the
// background, until it holds or Timeout passes.
func (e *Env) WaitFor(what string, cond func() bool) error {
	err := wait.PollUntilContextTimeout(e.Ctx, time.Millisecond, e.Timeout, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

// Settle waits until the Upgrade cache holds what the API holds for Key,
// so the next sync decides on current state.
func (e *Env) Settle() error {
	return e.WaitFor("the Upgrade cache to catch up", func() bool {
		api, err := e.Dynamic.Resource(informers.UpgradeGVR).Namespace(e.Key.Namespace).Get(e.Ctx, e.Key.Name, metav1.GetOptions{})
		cached, exists, _ := e.Upgrades.GetIndexer().GetByKey(e.Key.String())
		if apierrors.IsNotFound(err) {
			return !exists
		}
		if err != nil || !exists {
			return false
		}
		if un, ok := cached.(*unstructured.Unstructured); ok {
			return equality.Semantic.DeepEqual(api.Object, un.Object)
		}
		// A host's typed cache (WithTypedUpgrades) holds only the fields
		// its type has: compare what the controller reads of both.
		want, err := cleanup.UpgradeFromUnstructured(api)
		got, cerr := ConvertTypedUpgrade(cached)
		return err == nil && cerr == nil && equality.Semantic.DeepEqual(want, got)
	})
}

// SettleRemoval waits until the Job and Node caches hold what the API holds.
func (e *Env) SettleRemoval() error {
	return e.WaitFor("the Job and Node caches to catch up", func() bool {
		jobs, err := e.Kube.BatchV1().Jobs(e.Key.Namespace).List(e.Ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		nodes, err := e.Kube.CoreV1().Nodes().List(e.Ctx, metav1.ListOptions{})
		if err != nil || len(e.Jobs.GetStore().List()) != len(jobs.Items) || len(e.Nodes.GetStore().List()) != len(nodes.Items) {
			return false
		}
		for i := range jobs.Items {
			obj, ok, _ := e.Jobs.GetStore().Get(&jobs.Items[i])
			if !ok || len(obj.(*batchv1.Job).Status.Conditions) != len(jobs.Items[i].Status.Conditions) {
				return false
			}
		}
		return true
	})
}

// Sync runs one sync of key now, outside the queue.
func (e *Env) Sync(key cache.ObjectName) error {
	return e.Controller.Sync(e.Ctx, key)
}

// RepoReady is what the controller's gate says of the repo of Key now.
func (e *Env) RepoReady() bool {
	r, _, _ := e.Controller.RepoReadiness(e.Key)
	return r.Ready()
}

// RepoEpoch is how many not-ready → ready transitions of the repo of Key
// the gate has counted.
func (e *Env) RepoEpoch() uint64 {
	_, epoch, _ := e.Controller.RepoReadiness(e.Key)
	return epoch
}

// WaitRepoReady waits until the gate says ready of the repo of Key.
func (e *Env) WaitRepoReady(ready bool) error {
	return e.WaitFor(fmt.Sprintf("the gate to see ready=%v", ready), func() bool { return e.RepoReady() == ready })
}

// SetRepoReady writes the readiness of every endpoint of the repo slices of
// Key, as the EndpointSlice controller does, and waits until the gate sees
// it: for not Ready → Ready, until the gate has counted the new Ready phase
// (the cache shows Ready before the gate's handler has run).
func (e *Env) SetRepoReady(ready bool) error {
	wasReady, before := e.RepoReady(), e.RepoEpoch()
	slices := e.Kube.DiscoveryV1().EndpointSlices(e.Key.Namespace)
	list, err := slices.List(e.Ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	n := 0
	for i := range list.Items {
		s := &list.Items[i]
		if name, ok := informers.UpgradeOf(s); !ok || name != e.Key.Name {
			continue
		}
		n++
		SetReady(s, ready)
		if _, err := slices.Update(e.Ctx, s, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update slice %s: %w", s.Name, err)
		}
	}
	if n == 0 {
		return fmt.Errorf("no repo slice of %v", e.Key)
	}
	if err := e.WaitRepoReady(ready); err != nil || !ready || wasReady {
		return err
	}
	return e.WaitFor("the gate to count a new Ready phase", func() bool { return e.RepoEpoch() > before })
}

// RestartRepo takes the repo's endpoints through not Ready to Ready, and
// so (SetRepoReady) waits until the gate has counted the new Ready phase,
// which a re-arm needs.
func (e *Env) RestartRepo() error {
	if err := e.SetRepoReady(false); err != nil {
		return err
	}
	return e.SetRepoReady(true)
}

// Upgrade reads the Upgrade of Key from the API.
func (e *Env) Upgrade() (*unstructured.Unstructured, error) {
	return e.Dynamic.Resource(informers.UpgradeGVR).Namespace(e.Key.Namespace).Get(e.Ctx, e.Key.Name, metav1.GetOptions{})
}

// UpdateUpgrade changes the Upgrade of Key in the API with change, as a
// person or Harvester would.
func (e *Env) UpdateUpgrade(change func(*unstructured.Unstructured)) error {
	u, err := e.Upgrade()
	if err != nil {
		return err
	}
	change(u)
	_, err = e.Dynamic.Resource(informers.UpgradeGVR).Namespace(e.Key.Namespace).Update(e.Ctx, u, metav1.UpdateOptions{})
	return err
}

// Annotations are the annotations of the Upgrade of Key in the API.
func (e *Env) Annotations() (map[string]string, error) {
	u, err := e.Upgrade()
	if err != nil {
		return nil, err
	}
	return u.GetAnnotations(), nil
}

// State is the cleanup state recorded on the Upgrade of Key.
func (e *Env) State() (cleanup.State, error) {
	a, err := e.Annotations()
	return cleanup.State(a[cleanup.StateAnnotation]), err
}

// Summary is the removal summary recorded on the Upgrade of Key.
func (e *Env) Summary() (cleanup.Summary, error) {
	a, err := e.Annotations()
	if err != nil {
		return cleanup.Summary{}, err
	}
	var s cleanup.Summary
	if err := json.Unmarshal([]byte(a[cleanup.SummaryAnnotation]), &s); err != nil {
		return cleanup.Summary{}, fmt.Errorf("summary annotation: %w", err)
	}
	return s, nil
}

// Patches returns the state each patch of an Upgrade set ("" for a patch
// that set none), in order.
func (e *Env) Patches() ([]cleanup.State, error) {
	var out []cleanup.State
	for _, a := range e.Dynamic.Actions() {
		p, ok := a.(clienttesting.PatchAction)
		if !ok {
			continue
		}
		var body struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(p.GetPatch(), &body); err != nil {
			return nil, fmt.Errorf("patch body %s: %w", p.GetPatch(), err)
		}
		out = append(out, cleanup.State(body.Metadata.Annotations[cleanup.StateAnnotation]))
	}
	return out, nil
}

// Creates counts the create requests for resource ("jobs", "configmaps")
// made through Kube.
func (e *Env) Creates(resource string) int {
	n := 0
	for _, a := range e.Kube.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == resource {
			n++
		}
	}
	return n
}

// PlanConfigMap reads the plan of Key; false when there is none.
func (e *Env) PlanConfigMap() (*corev1.ConfigMap, bool, error) {
	cm, err := e.Kube.CoreV1().ConfigMaps(e.Key.Namespace).Get(e.Ctx, cleanup.PlanConfigMapName(e.Key.Name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return cm, true, nil
}

// Events drains the events recorded so far.
func (e *Env) Events() []string {
	var out []string
	for {
		select {
		case ev := <-e.Recorder.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// RemovalJobs lists the removal Jobs of Key's current run (its
// RunIDAnnotation) by node.
func (e *Env) RemovalJobs() (map[string]*batchv1.Job, error) {
	a, err := e.Annotations()
	if err != nil {
		return nil, err
	}
	return RunJobs(e.Ctx, e.Kube, e.Key.Namespace, e.Key.Name, a[cleanup.RunIDAnnotation])
}

// FinishNodeJob finishes the removal Job of Key on node (see FinishJob).
func (e *Env) FinishNodeJob(node string, complete bool, msg string) error {
	jobs, err := e.RemovalJobs()
	if err != nil {
		return err
	}
	j, ok := jobs[node]
	if !ok {
		return fmt.Errorf("no removal Job on node %s", node)
	}
	return FinishJob(e.Ctx, e.Kube, j, complete, msg)
}

// Run runs the controller's workers until the returned stop is called;
// stop returns Run's result.
func (e *Env) Run(workers int) (stop func() error) {
	ctx, cancel := context.WithCancel(e.Ctx)
	done := make(chan error, 1)
	go func() { done <- e.Controller.Run(ctx, workers) }()
	return func() error { cancel(); return <-done }
}

// StopController stops the controller's queue (and its goroutines) when
// no Run of it is left running: Run on a context already cancelled takes no
// item and shuts the queue down as it returns.
func (e *Env) StopController() error {
	if e.Controller == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(e.Ctx)
	cancel()
	return e.Controller.Run(ctx, 1)
}

// PlannedUpgrade is u in state Planned with its plan written, as the
// controller leaves them: it runs a dry-run controller once over u and a
// Ready repo serving SmallLists, and returns the Upgrade and the plan
// ConfigMap it wrote.
func PlannedUpgrade(ctx context.Context, u *unstructured.Unstructured) (*unstructured.Unstructured, *corev1.ConfigMap, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := NewEnv(ctx, u.DeepCopy(), RepoSlice(u.GetName()).Namespace(u.GetNamespace()).Obj())
	if _, err := e.NewController(); err != nil {
		return nil, nil, err
	}
	defer func() { _ = e.StopController() }()
	if err := e.Start(); err != nil {
		return nil, nil, err
	}
	if err := e.WaitRepoReady(true); err != nil {
		return nil, nil, err
	}
	if err := e.Sync(e.Key); err != nil {
		return nil, nil, err
	}
	planned, err := e.Upgrade()
	if err != nil {
		return nil, nil, err
	}
	if s := cleanup.State(planned.GetAnnotations()[cleanup.StateAnnotation]); s != cleanup.StatePlanned {
		return nil, nil, fmt.Errorf("upgrade %v is %q after a sync, not Planned: %s", e.Key, s, planned.GetAnnotations()[cleanup.MessageAnnotation])
	}
	cm, ok, err := e.PlanConfigMap()
	if err == nil && !ok {
		err = fmt.Errorf("no plan of %v", e.Key)
	}
	return planned, cm, err
}
