package cleanup

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// Upgrade holds the fields of a Harvester Upgrade that the cleanup reads.
type Upgrade struct {
	Namespace       string
	Name            string
	UID             types.UID
	ResourceVersion string
	// Version is spec.version, the version upgraded to.
	Version string
	// PreviousVersion is status.previousVersion, the version upgraded from.
	PreviousVersion string
	// Completed is true when the Completed condition's status is "True".
	Completed   bool
	Labels      map[string]string
	Annotations map[string]string
}

// Key returns the upgrade's namespace/name.
func (u Upgrade) Key() cache.ObjectName {
	return cache.ObjectName{Namespace: u.Namespace, Name: u.Name}
}

// UpgradeFromUnstructured reads an Upgrade from its unstructured form. A field
// of the wrong type is an error naming the field; absent fields are empty.
func UpgradeFromUnstructured(obj *unstructured.Unstructured) (Upgrade, error) {
	u := Upgrade{
		Namespace:       obj.GetNamespace(),
		Name:            obj.GetName(),
		UID:             obj.GetUID(),
		ResourceVersion: obj.GetResourceVersion(),
		Labels:          obj.GetLabels(),
		Annotations:     obj.GetAnnotations(),
	}
	var err error
	if u.Version, _, err = unstructured.NestedString(obj.Object, "spec", "version"); err != nil {
		return Upgrade{}, fmt.Errorf("upgrade %s/%s: spec.version: %w", u.Namespace, u.Name, err)
	}
	if u.PreviousVersion, _, err = unstructured.NestedString(obj.Object, "status", "previousVersion"); err != nil {
		return Upgrade{}, fmt.Errorf("upgrade %s/%s: status.previousVersion: %w", u.Namespace, u.Name, err)
	}
	conds, _, err := unstructured.NestedSlice(obj.Object, "status", "conditions")
	if err != nil {
		return Upgrade{}, fmt.Errorf("upgrade %s/%s: status.conditions: %w", u.Namespace, u.Name, err)
	}
	for i, c := range conds {
		m, ok := c.(map[string]any)
		if !ok {
			return Upgrade{}, fmt.Errorf("upgrade %s/%s: status.conditions[%d] is %T, not an object", u.Namespace, u.Name, i, c)
		}
		if m["type"] == "Completed" {
			u.Completed = m["status"] == "True"
		}
	}
	return u, nil
}

// UpgradeLister reads Upgrades from an informer's cache.
type UpgradeLister struct {
	indexer cache.Indexer
}

// NewUpgradeLister reads from the cache of an informer made by informers.NewUpgradeInformer.
func NewUpgradeLister(inf cache.SharedIndexInformer) UpgradeLister {
	return UpgradeLister{indexer: inf.GetIndexer()}
}

// Get returns the Upgrade key; found is false when it does not exist. A
// malformed object is an error, never a panic.
func (l UpgradeLister) Get(key cache.ObjectName) (u Upgrade, found bool, err error) {
	obj, exists, err := l.indexer.GetByKey(key.String())
	if err != nil || !exists {
		return Upgrade{}, false, err
	}
	un, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return Upgrade{}, false, fmt.Errorf("upgrade %s: cache holds %T, not an unstructured object", key, obj)
	}
	u, err = UpgradeFromUnstructured(un)
	if err != nil {
		return Upgrade{}, false, err
	}
	return u, true, nil
}

// List returns the well-formed Upgrades in namespace ("" for all); malformed
// objects are left out, as Get would refuse them.
func (l UpgradeLister) List(namespace string) []Upgrade {
	var objs []any
	if namespace == "" {
		objs = l.indexer.List()
	} else {
		objs, _ = l.indexer.ByIndex(cache.NamespaceIndex, namespace)
	}
	var out []Upgrade
	for _, o := range objs {
		un, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		if u, err := UpgradeFromUnstructured(un); err == nil {
			out = append(out, u)
		}
	}
	return out
}
