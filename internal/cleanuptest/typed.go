package cleanuptest

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// TypedUpgrade stands for a host's generated Upgrade type (Harvester's
// harvesterhci.io/v1beta1 Upgrade): the fields the cleanup reads, typed.
type TypedUpgrade struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Version string `json:"version,omitempty"`
	} `json:"spec,omitempty"`
	Status struct {
		PreviousVersion string `json:"previousVersion,omitempty"`
		Conditions      []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions,omitempty"`
	} `json:"status,omitempty"`
}

// DeepCopyObject implements runtime.Object.
func (u *TypedUpgrade) DeepCopyObject() runtime.Object {
	out := *u
	u.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Status.Conditions = append(out.Status.Conditions[:0:0], u.Status.Conditions...)
	return &out
}

// ConvertTypedUpgrade is the cleanup.UpgradeConverter of a TypedUpgrade
// informer, as a host writes one for its own type.
func ConvertTypedUpgrade(obj any) (cleanup.Upgrade, error) {
	t, ok := obj.(*TypedUpgrade)
	if !ok {
		return cleanup.Upgrade{}, fmt.Errorf("cache holds %T, not a *TypedUpgrade", obj)
	}
	u := cleanup.Upgrade{
		Namespace: t.Namespace, Name: t.Name, UID: t.UID, ResourceVersion: t.ResourceVersion,
		Version: t.Spec.Version, PreviousVersion: t.Status.PreviousVersion,
		Labels: t.Labels, Annotations: t.Annotations,
	}
	for _, c := range t.Status.Conditions {
		if c.Type == "Completed" {
			u.Completed = c.Status == "True"
		}
	}
	return u, nil
}

// NewTypedUpgradeInformer is an informer of TypedUpgrades in every
// namespace, read through dyn as a host's typed client would read them.
// Like some hosts' informers, it has no namespace index.
func NewTypedUpgradeInformer(dyn dynamic.Interface) cache.SharedIndexInformer {
	res := dyn.Resource(informers.UpgradeGVR)
	lw := &cache.ListWatch{
		ListFunc: func(opts metav1.ListOptions) (runtime.Object, error) {
			list, err := res.List(context.Background(), opts)
			if err != nil {
				return nil, err
			}
			return toTypedList(list)
		},
		WatchFunc: func(opts metav1.ListOptions) (watch.Interface, error) {
			w, err := res.Watch(context.Background(), opts)
			if err != nil {
				return nil, err
			}
			return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
				if un, ok := e.Object.(*unstructured.Unstructured); ok {
					if t, err := toTyped(un); err == nil {
						e.Object = t
					}
				}
				return e, true
			}), nil
		},
	}
	return cache.NewSharedIndexInformer(&typedListWatch{lw}, &TypedUpgrade{}, 0, cache.Indexers{})
}

// typedListWatch is the typed ListWatch, telling client-go it does not
// stream its initial list.
type typedListWatch struct{ *cache.ListWatch }

// IsWatchListSemanticsUnSupported tells client-go's reflector (v0.35 on,
// where it streams the initial list by default) to list, then watch: the
// fake dynamic client's watch ends no initial stream with a bookmark.
func (l *typedListWatch) IsWatchListSemanticsUnSupported() bool { return true }

// toTypedList turns the dynamic client's list into typed items.
func toTypedList(list *unstructured.UnstructuredList) (*typedUpgradeList, error) {
	out := &typedUpgradeList{ListMeta: metav1.ListMeta{ResourceVersion: list.GetResourceVersion()}}
	for i := range list.Items {
		t, err := toTyped(&list.Items[i])
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, *t)
	}
	return out, nil
}

func toTyped(un *unstructured.Unstructured) (*TypedUpgrade, error) {
	t := &TypedUpgrade{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(un.Object, t); err != nil {
		return nil, fmt.Errorf("upgrade %s/%s: %w", un.GetNamespace(), un.GetName(), err)
	}
	return t, nil
}

// typedUpgradeList is the list the typed informer reads.
type typedUpgradeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TypedUpgrade `json:"items"`
}

func (l *typedUpgradeList) DeepCopyObject() runtime.Object {
	out := &typedUpgradeList{TypeMeta: l.TypeMeta, ListMeta: *l.ListMeta.DeepCopy()}
	for i := range l.Items {
		out.Items = append(out.Items, *l.Items[i].DeepCopyObject().(*TypedUpgrade))
	}
	return out
}

// WithTypedUpgrades gives the controller a host's typed Upgrade informer
// (NewTypedUpgradeInformer) with its converter, as Harvester passes its
// wrangler informer.
func WithTypedUpgrades() ConfigOption {
	return func(c *cleanup.Config) {
		c.Upgrades = NewTypedUpgradeInformer(c.DynamicClient)
		c.ConvertUpgrade = ConvertTypedUpgrade
	}
}
