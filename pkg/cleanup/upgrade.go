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

// UpgradeConverter reads an Upgrade from an object of an Upgrade informer's
// cache. A host with a typed Upgrade informer (Harvester's wrangler
// informer of *v1beta1.Upgrade) passes one as Config.ConvertUpgrade, so the
// controller shares that informer instead of opening a second watch. It must
// not modify obj, which is the cache's; an error should name the field.
type UpgradeConverter func(obj any) (Upgrade, error)

// ConvertUnstructuredUpgrade is the UpgradeConverter of the informers made
// by informers.NewUpgradeInformer, whose objects are unstructured.
func ConvertUnstructuredUpgrade(obj any) (Upgrade, error) {
	un, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return Upgrade{}, fmt.Errorf("cache holds %T, not an unstructured object; set Config.ConvertUpgrade for a typed informer", obj)
	}
	return UpgradeFromUnstructured(un)
}

// UpgradeLister reads Upgrades from an informer's cache.
type UpgradeLister struct {
	indexer cache.Indexer
	convert UpgradeConverter
}

// NewUpgradeLister reads from inf's cache through convert; nil convert
// means ConvertUnstructuredUpgrade, for an informer made by
// informers.NewUpgradeInformer.
func NewUpgradeLister(inf cache.SharedIndexInformer, convert UpgradeConverter) UpgradeLister {
	if convert == nil {
		convert = ConvertUnstructuredUpgrade
	}
	return UpgradeLister{indexer: inf.GetIndexer(), convert: convert}
}

// Get returns the Upgrade key; found is false when it does not exist. A
// malformed object is an error, never a panic.
func (l UpgradeLister) Get(key cache.ObjectName) (u Upgrade, found bool, err error) {
	obj, exists, err := l.indexer.GetByKey(key.String())
	if err != nil || !exists {
		return Upgrade{}, false, err
	}
	u, err = l.convert(obj)
	if err != nil {
		return Upgrade{}, false, fmt.Errorf("upgrade %s: %w", key, err)
	}
	// Everything is read and written by the converted name: a converter
	// that returns another one would plan and patch the wrong Upgrade.
	if u.Key() != key {
		return Upgrade{}, false, fmt.Errorf("upgrade %s: the converter returned %s, another key: check Config.ConvertUpgrade", key, u.Key())
	}
	return u, true, nil
}

// List returns the well-formed Upgrades in namespace ("" for all); malformed
// objects are left out, as Get would refuse them. A host's informer may
// lack the namespace index; then every object is read and filtered.
func (l UpgradeLister) List(namespace string) []Upgrade {
	objs := l.indexer.List()
	if namespace != "" {
		if byNS, err := l.indexer.ByIndex(cache.NamespaceIndex, namespace); err == nil {
			objs = byNS
		}
	}
	var out []Upgrade
	for _, o := range objs {
		u, err := l.convert(o)
		if err != nil || (namespace != "" && u.Namespace != namespace) {
			continue
		}
		if key, kerr := cache.MetaNamespaceKeyFunc(o); kerr == nil && key == u.Key().String() {
			out = append(out, u)
		}
	}
	return out
}
