package informers

import (
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// UpgradeGVR is the resource of Harvester's Upgrade objects. They are read
// through the dynamic client so this module does not depend on Harvester's API
// module (and its pinned Kubernetes versions).
var UpgradeGVR = schema.GroupVersionResource{Group: "harvesterhci.io", Version: "v1beta1", Resource: "upgrades"}

// UpgradeKind is the Kind of UpgradeGVR, for owner references and events.
const UpgradeKind = "Upgrade"

// NewUpgradeInformer returns an informer on the Upgrades in namespace ("" for
// all). The caller starts it. resync re-delivers every Upgrade periodically, so
// an item dropped after its retries comes back.
func NewUpgradeInformer(client dynamic.Interface, namespace string, resync time.Duration) cache.SharedIndexInformer {
	return dynamicinformer.NewFilteredDynamicInformer(client, UpgradeGVR, namespace, resync,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil).Informer()
}
