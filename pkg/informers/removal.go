package informers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// NewJobInformer returns an informer on the Jobs in namespace that match
// selector (the removal Jobs), for a binary without shared informers.
func NewJobInformer(client kubernetes.Interface, namespace string, selector labels.Selector, resync time.Duration) cache.SharedIndexInformer {
	return batchinformers.NewFilteredJobInformer(client, namespace, resync,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
		func(o *metav1.ListOptions) { o.LabelSelector = selector.String() })
}

// NewNodeInformer returns an informer on the Nodes that match selector. A
// node whose labels stop matching leaves the cache, which is what the
// removal needs to see.
func NewNodeInformer(client kubernetes.Interface, selector labels.Selector, resync time.Duration) cache.SharedIndexInformer {
	return coreinformers.NewFilteredNodeInformer(client, resync, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = selector.String() })
}
