package informers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// NewEndpointSliceInformer returns an informer on the EndpointSlices in
// namespace that match selector, for a binary that has no shared informer of
// its own. Filtering on the server keeps the cache to the repo's few slices
// however many Services the cluster has. The caller starts it.
func NewEndpointSliceInformer(client kubernetes.Interface, namespace string, selector labels.Selector, resync time.Duration) cache.SharedIndexInformer {
	return discoveryinformers.NewFilteredEndpointSliceInformer(client, namespace, resync,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
		func(o *metav1.ListOptions) { o.LabelSelector = selector.String() })
}
