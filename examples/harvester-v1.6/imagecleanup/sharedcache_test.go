package imagecleanup

import (
	"context"
	"fmt"
	"sort"
	"sync"

	lassoclient "github.com/rancher/lasso/pkg/client"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// kind is one kind the fake shared cache can hand out an informer for.
type kind struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
	// informer makes the informer, over a fake client set.
	informer func() cache.SharedIndexInformer
}

func (k kind) gvk() schema.GroupVersionKind { return k.gvr.GroupVersion().WithKind(k.kind) }

// sharedCache is a lasso SharedCacheFactory over fake client sets, to put
// under Harvester's wrangler factories in a test: everything above it
// (lasso's shared controller factory, the wrangler controllers, Harvester's
// generated factories) is the real code Harvester runs, and the informers
// it hands out are client-go's, listing and watching the fakes. As lasso's,
// it makes an informer when one is first asked for and starts, on Start,
// every informer made so far. It counts what was asked for, so a test can
// say which informers the registration took.
type sharedCache struct {
	clients *sharedClients

	mu        sync.Mutex
	informers map[schema.GroupVersionKind]cache.SharedIndexInformer
	started   map[schema.GroupVersionKind]bool
}

func newSharedCache(scheme *runtime.Scheme, kinds ...kind) *sharedCache {
	c := &sharedCache{
		clients:   &sharedClients{scheme: scheme, kinds: map[schema.GroupVersionKind]kind{}},
		informers: map[schema.GroupVersionKind]cache.SharedIndexInformer{},
		started:   map[schema.GroupVersionKind]bool{},
	}
	for _, k := range kinds {
		c.clients.kinds[k.gvk()] = k
	}
	return c
}

// Made returns the kinds whose informer was asked for, sorted.
func (c *sharedCache) Made() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for gvk := range c.informers {
		out = append(out, gvk.String())
	}
	sort.Strings(out)
	return out
}

func (c *sharedCache) ForResourceKind(gvr schema.GroupVersionResource, kindName string, _ bool) (cache.SharedIndexInformer, error) {
	gvk := gvr.GroupVersion().WithKind(kindName)
	k, ok := c.clients.kinds[gvk]
	if !ok || k.gvr != gvr {
		return nil, fmt.Errorf("fake shared cache: no informer for %s (%s)", gvk, gvr)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if inf, ok := c.informers[gvk]; ok {
		return inf, nil
	}
	inf := k.informer()
	c.informers[gvk] = inf
	return inf, nil
}

func (c *sharedCache) ForKind(gvk schema.GroupVersionKind) (cache.SharedIndexInformer, error) {
	gvr, namespaced, err := c.clients.ResourceForGVK(gvk)
	if err != nil {
		return nil, err
	}
	return c.ForResourceKind(gvr, gvk.Kind, namespaced)
}

func (c *sharedCache) ForObject(obj runtime.Object) (cache.SharedIndexInformer, error) {
	gvk, err := c.clients.GVKForObject(obj)
	if err != nil {
		return nil, err
	}
	return c.ForKind(gvk)
}

func (c *sharedCache) ForResource(gvr schema.GroupVersionResource, namespaced bool) (cache.SharedIndexInformer, error) {
	gvk, err := c.clients.GVKForResource(gvr)
	if err != nil {
		return nil, err
	}
	return c.ForResourceKind(gvr, gvk.Kind, namespaced)
}

func (c *sharedCache) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for gvk := range c.informers {
		c.startLocked(ctx, gvk)
	}
	return nil
}

func (c *sharedCache) StartGVK(ctx context.Context, gvk schema.GroupVersionKind) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.startLocked(ctx, gvk)
	return nil
}

func (c *sharedCache) startLocked(ctx context.Context, gvk schema.GroupVersionKind) {
	inf, ok := c.informers[gvk]
	if !ok || c.started[gvk] {
		return
	}
	c.started[gvk] = true
	go inf.Run(ctx.Done())
}

func (c *sharedCache) WaitForCacheSync(ctx context.Context) map[schema.GroupVersionKind]bool {
	c.mu.Lock()
	informers := make(map[schema.GroupVersionKind]cache.SharedIndexInformer, len(c.informers))
	for gvk, inf := range c.informers {
		informers[gvk] = inf
	}
	c.mu.Unlock()
	synced := map[schema.GroupVersionKind]bool{}
	for gvk, inf := range informers {
		synced[gvk] = cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)
	}
	return synced
}

func (c *sharedCache) SharedClientFactory() lassoclient.SharedClientFactory { return c.clients }

// sharedClients is the lasso SharedClientFactory of a sharedCache: it maps
// kinds to resources from the kinds it was given, and makes objects from
// the scheme as lasso's does (a kind the scheme does not know comes back
// unstructured). Its clients have no REST client: the cleanup writes
// through its own clients, never through wrangler's.
type sharedClients struct {
	scheme *runtime.Scheme
	kinds  map[schema.GroupVersionKind]kind
}

func (f *sharedClients) ForKind(gvk schema.GroupVersionKind) (*lassoclient.Client, error) {
	gvr, namespaced, err := f.ResourceForGVK(gvk)
	if err != nil {
		return nil, err
	}
	return lassoclient.NewClient(gvr, gvk.Kind, namespaced, nil, 0), nil
}

func (f *sharedClients) ForResource(gvr schema.GroupVersionResource, namespaced bool) (*lassoclient.Client, error) {
	gvk, err := f.GVKForResource(gvr)
	if err != nil {
		return nil, err
	}
	return lassoclient.NewClient(gvr, gvk.Kind, namespaced, nil, 0), nil
}

func (f *sharedClients) ForResourceKind(gvr schema.GroupVersionResource, kindName string, namespaced bool) *lassoclient.Client {
	return lassoclient.NewClient(gvr, kindName, namespaced, nil, 0)
}

func (f *sharedClients) NewObjects(gvk schema.GroupVersionKind) (runtime.Object, runtime.Object, error) {
	obj, err := f.scheme.New(gvk)
	if runtime.IsNotRegisteredError(err) {
		return &unstructured.Unstructured{}, &unstructured.UnstructuredList{}, nil
	} else if err != nil {
		return nil, nil, err
	}
	list, err := f.scheme.New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	return obj, list, err
}

func (f *sharedClients) GVKForObject(obj runtime.Object) (schema.GroupVersionKind, error) {
	gvks, _, err := f.scheme.ObjectKinds(obj)
	if err != nil {
		return schema.GroupVersionKind{}, err
	}
	return gvks[0], nil
}

func (f *sharedClients) GVKForResource(gvr schema.GroupVersionResource) (schema.GroupVersionKind, error) {
	for gvk, k := range f.kinds {
		if k.gvr == gvr {
			return gvk, nil
		}
	}
	return schema.GroupVersionKind{}, fmt.Errorf("fake shared cache: no kind for %s", gvr)
}

func (f *sharedClients) IsNamespaced(gvk schema.GroupVersionKind) (bool, error) {
	_, namespaced, err := f.ResourceForGVK(gvk)
	return namespaced, err
}

func (f *sharedClients) ResourceForGVK(gvk schema.GroupVersionKind) (schema.GroupVersionResource, bool, error) {
	k, ok := f.kinds[gvk]
	if !ok {
		return schema.GroupVersionResource{}, false, fmt.Errorf("fake shared cache: no resource for %s", gvk)
	}
	return k.gvr, k.namespaced, nil
}

func (f *sharedClients) IsHealthy(context.Context) bool { return true }
