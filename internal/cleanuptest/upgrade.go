package cleanuptest

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// The defaults of the builders: Harvester's namespace, an upgrade from
// PreviousVersion to Version, and its repo's pod address.
const (
	Namespace = cleanup.DefaultNamespace
	// UpgradeName is the upgrade most tests look at.
	UpgradeName = "hvst-upgrade-abc12"
	// PreviousVersion is the version upgraded from: status.previousVersion.
	PreviousVersion = "v1.4.2"
	// Version is the version upgraded to: spec.version.
	Version = "v1.5.0"
	// RepoIP is the repo pod's address in a RepoSlice.
	RepoIP = "10.52.0.17"
	// RepoPort is the repo's port in a RepoSlice, named "http".
	RepoPort int32 = 80
)

// UpgradeWrapper builds a Harvester Upgrade. Its methods change the object
// in place and return the wrapper, so they chain; Obj returns the object.
type UpgradeWrapper struct{ u *unstructured.Unstructured }

// Upgrade is upgrade name as Harvester writes it at the end of an upgrade:
// in Namespace, labelled latest, from PreviousVersion to Version, Completed,
// with a UID of its own (the same for the same name and namespace).
func Upgrade(name string) *UpgradeWrapper {
	w := &UpgradeWrapper{u: &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": informers.UpgradeGVR.GroupVersion().String(),
		"kind":       informers.UpgradeKind,
		"metadata": map[string]any{
			"name":   name,
			"labels": map[string]any{cleanup.LatestUpgradeLabel: "true"},
		},
		"spec": map[string]any{"version": Version},
		"status": map[string]any{
			"previousVersion": PreviousVersion,
			"conditions":      []any{map[string]any{"type": "Completed", "status": "True"}},
		},
	}}}
	return w.Namespace(Namespace)
}

// Obj returns the Upgrade.
func (w *UpgradeWrapper) Obj() *unstructured.Unstructured { return w.u }

// Namespace moves the Upgrade, and gives it the UID of its new place.
func (w *UpgradeWrapper) Namespace(ns string) *UpgradeWrapper {
	w.u.SetNamespace(ns)
	return w.UID(UIDOf(ns, w.u.GetName()))
}

// UID sets metadata.uid.
func (w *UpgradeWrapper) UID(uid types.UID) *UpgradeWrapper {
	w.u.SetUID(uid)
	return w
}

// ResourceVersion sets metadata.resourceVersion.
func (w *UpgradeWrapper) ResourceVersion(rv string) *UpgradeWrapper {
	w.u.SetResourceVersion(rv)
	return w
}

// Created sets metadata.creationTimestamp.
func (w *UpgradeWrapper) Created(t time.Time) *UpgradeWrapper {
	w.u.SetCreationTimestamp(metav1.NewTime(t))
	return w
}

// Version sets spec.version.
func (w *UpgradeWrapper) Version(v string) *UpgradeWrapper {
	return w.set(v, "spec", "version")
}

// PreviousVersion sets status.previousVersion.
func (w *UpgradeWrapper) PreviousVersion(v string) *UpgradeWrapper {
	return w.set(v, "status", "previousVersion")
}

// Completed sets the Completed condition True or False.
func (w *UpgradeWrapper) Completed(completed bool) *UpgradeWrapper {
	if completed {
		return w.Condition("Completed", "True")
	}
	return w.Condition("Completed", "False")
}

// Condition sets the status of condition typ, adding it when absent.
func (w *UpgradeWrapper) Condition(typ, status string) *UpgradeWrapper {
	conds, _, _ := unstructured.NestedSlice(w.u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			m["status"] = status
			return w.set(conds, "status", "conditions")
		}
	}
	return w.set(append(conds, map[string]any{"type": typ, "status": status}), "status", "conditions")
}

// Latest sets the label Harvester puts on the latest upgrade, "true" or
// "false".
func (w *UpgradeWrapper) Latest(latest bool) *UpgradeWrapper {
	l := w.u.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l[cleanup.LatestUpgradeLabel] = fmt.Sprint(latest)
	w.u.SetLabels(l)
	return w
}

// Labels replaces the labels; nil removes them all, the latest label too.
func (w *UpgradeWrapper) Labels(l map[string]string) *UpgradeWrapper {
	w.u.SetLabels(maps.Clone(l))
	return w
}

// Annotations replaces the annotations; nil removes them all.
func (w *UpgradeWrapper) Annotations(a map[string]string) *UpgradeWrapper {
	w.u.SetAnnotations(maps.Clone(a))
	return w
}

// Annotate adds one annotation.
func (w *UpgradeWrapper) Annotate(key, value string) *UpgradeWrapper {
	a := w.u.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[key] = value
	w.u.SetAnnotations(a)
	return w
}

// State annotates the cleanup state s, as the controller records it.
func (w *UpgradeWrapper) State(s cleanup.State) *UpgradeWrapper {
	return w.Annotate(cleanup.StateAnnotation, string(s))
}

func (w *UpgradeWrapper) set(v any, fields ...string) *UpgradeWrapper {
	if err := unstructured.SetNestedField(w.u.Object, v, fields...); err != nil {
		panic(err) // the builder made every field on the path a map
	}
	return w
}

// UIDOf is the UID Upgrade gives name in namespace: UUID-shaped, and the
// same on every call, so a test can name it.
func UIDOf(namespace, name string) types.UID {
	s := sha256.Sum256([]byte(namespace + "/" + name))
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16]))
}
