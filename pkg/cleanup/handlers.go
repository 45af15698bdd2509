package cleanup

import (
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// registration is a handler the controller added to a caller's informer.
type registration struct {
	informer cache.SharedIndexInformer
	handle   cache.ResourceEventHandlerRegistration
}

// handle registers h on inf and makes Run wait until h has seen inf's
// initial list.
func (c *Controller) handle(inf cache.SharedIndexInformer, what string, h cache.ResourceEventHandler) error {
	reg, err := inf.AddEventHandler(h)
	if err != nil {
		return fmt.Errorf("register %s handler: %w", what, err)
	}
	c.registrations = append(c.registrations, registration{inf, reg})
	c.synced = append(c.synced, reg.HasSynced)
	return nil
}

func (c *Controller) unregister() {
	for _, r := range c.registrations {
		_ = r.informer.RemoveEventHandler(r.handle)
	}
	c.registrations = nil
}

func (c *Controller) register(cfg Config) error {
	gate, err := informers.NewGate(cfg.Options.Namespace, cfg.Options.Selector, c.queue.Add, cfg.EndpointSlices, c.clock)
	if err != nil {
		return err
	}
	c.gate = gate
	if err := c.handle(cfg.EndpointSlices, "EndpointSlice", gate.Handler()); err != nil {
		return err
	}
	err = c.handle(cfg.Upgrades, "Upgrade", cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueueUpgrade,
		// Resyncs of unchanged Upgrades are kept on purpose: they bring back
		// keys dropped after their retries, so nothing is lost for good.
		UpdateFunc: func(_, cur any) { c.enqueueUpgrade(cur) },
		DeleteFunc: c.upgradeDeleted,
	})
	if err != nil {
		return err
	}
	if c.executor == nil && cfg.Removal != nil {
		return c.registerRemoval(cfg)
	}
	return nil
}

// registerRemoval builds the Job executor and watches Jobs and Nodes: a Job
// that changes brings its upgrade back, and so does a node that joins or
// leaves while a removal is under way.
func (c *Controller) registerRemoval(cfg Config) error {
	if cfg.Jobs == nil || cfg.Nodes == nil {
		return fmt.Errorf("cleanup: Config.Removal needs Config.Jobs and Config.Nodes")
	}
	if err := cfg.Removal.Validate(); err != nil {
		return err
	}
	c.executor = &jobExecutor{
		kube:  c.kube,
		nodes: corelisters.NewNodeLister(cfg.Nodes.GetIndexer()),
		jobs:  batchlisters.NewJobLister(cfg.Jobs.GetIndexer()),
		opts:  *cfg.Removal,
	}
	err := c.handle(cfg.Jobs, "Job", cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueJobUpgrade,
		UpdateFunc: func(_, cur any) { c.enqueueJobUpgrade(cur) },
		DeleteFunc: c.enqueueJobUpgrade,
	})
	if err != nil {
		return err
	}
	return c.handle(cfg.Nodes, "Node", cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueueRemovals() },
		UpdateFunc: func(old, cur any) { c.nodeChanged(old, cur, cfg.Removal.NodeSelector) },
		DeleteFunc: func(any) { c.enqueueRemovals() },
	})
}

func (c *Controller) enqueueJobUpgrade(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	j, ok := obj.(*batchv1.Job)
	if !ok || !RemovalSelector().Matches(labels.Set(j.Labels)) || j.Labels[informers.UpgradeLabel] == "" {
		return
	}
	if key := (cache.ObjectName{Namespace: j.Namespace, Name: j.Labels[informers.UpgradeLabel]}); c.ours(key) {
		c.queue.Add(key)
	}
}

// nodeChanged reacts only to what changes the target set: the node's labels
// (selector) and its deletion. Status heartbeats, every few seconds per node,
// are dropped here.
func (c *Controller) nodeChanged(old, cur any, sel labels.Selector) {
	o, ok1 := old.(*corev1.Node)
	n, ok2 := cur.(*corev1.Node)
	if ok1 && ok2 && sel.Matches(labels.Set(o.Labels)) == sel.Matches(labels.Set(n.Labels)) &&
		(o.DeletionTimestamp == nil) == (n.DeletionTimestamp == nil) {
		return
	}
	c.enqueueRemovals()
}

// enqueueRemovals enqueues every upgrade whose removal is planned or running.
func (c *Controller) enqueueRemovals() {
	for _, u := range c.upgrades.List(c.opts.Namespace) {
		if s := State(u.Annotations[StateAnnotation]); s == StatePlanned || s == StateRemoving {
			c.queue.Add(u.Key())
		}
	}
}

// ours reports whether key is in the controller's namespace: shared
// informers may carry others, and they are not ours. Keys are filtered where
// they enter (the event handlers, Sync); the gate filters its slices, and
// removals are listed in the namespace.
func (c *Controller) ours(key cache.ObjectName) bool {
	return c.opts.Namespace == "" || key.Namespace == c.opts.Namespace
}

func (c *Controller) enqueueUpgrade(obj any) {
	key, err := cache.DeletionHandlingObjectToName(obj)
	if err != nil {
		utilruntime.HandleError(fmt.Errorf("upgrade event: %w", err))
		return
	}
	if c.ours(key) {
		c.queue.Add(key)
	}
}

// HasSynced reports whether every informer the controller uses has been
// listed and its handlers have seen the initial list.
func (c *Controller) HasSynced() bool {
	for _, s := range c.synced {
		if !s() {
			return false
		}
	}
	return true
}

// upgradeDeleted drops what the controller and its gate remember of an
// Upgrade, so memory follows the Upgrades that exist.
func (c *Controller) upgradeDeleted(obj any) {
	key, err := cache.DeletionHandlingObjectToName(obj)
	if err != nil {
		utilruntime.HandleError(fmt.Errorf("upgrade delete event: %w", err))
		return
	}
	c.gate.Forget(key)
	c.memory.drop(key)
}
