package cleanuptest

import (
	"context"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// Objects for a real control plane (hack/local-cluster), where the
// EndpointSlice controller writes the repo's slices from its Service and
// Pod, and no kubelet runs: the end-to-end tests and the benchmarks.

// CRDPath is the Upgrade CRD operators install on clusters without
// Harvester, from the repository's root.
const CRDPath = "deploy/crd/crd-upgrades.yaml"

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// PrepareCluster installs what the controller needs on a bare control
// plane: the Upgrade CRD from crdFile, namespace, and the Nodes (the
// EndpointSlice controller looks the repo pod's node up; removal Jobs go to
// them). What exists already is kept. It returns once Upgrades are served.
func PrepareCluster(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, crdFile, namespace string, nodes ...string) error {
	f, err := os.Open(crdFile)
	if err != nil {
		return err
	}
	defer f.Close()
	crd := &unstructured.Unstructured{}
	if err := utilyaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&crd.Object); err != nil {
		return fmt.Errorf("decode %s: %w", crdFile, err)
	}
	if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create the Upgrade CRD: %w", err)
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace: %w", err)
	}
	for _, name := range nodes {
		if _, err := kube.CoreV1().Nodes().Create(ctx, Node(name), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node: %w", err)
		}
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := dyn.Resource(informers.UpgradeGVR).Namespace(namespace).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil, nil
	})
}

// repoSelector is what Harvester's repo Service selects its pod by.
func repoSelector(upgrade string) map[string]string {
	return map[string]string{informers.UpgradeLabel: upgrade, informers.UpgradeComponentLabel: "repo"}
}

// RepoService is upgrade's repo Service in Namespace as Harvester creates
// it: port 80 to the pod's targetPort.
func RepoService(upgrade string, targetPort int32) *corev1.Service {
	l := repoSelector(upgrade)
	l["harvesterhci.io/creator"] = "harvester"
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: informers.RepoServicePrefix + upgrade, Namespace: Namespace, Labels: l},
		Spec: corev1.ServiceSpec{
			Selector: repoSelector(upgrade),
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(targetPort), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// RepoPodName is the name RepoPod gives upgrade's repo pod.
func RepoPodName(upgrade string) string { return informers.RepoServicePrefix + upgrade + "-7d9f8" }

// RepoPod is upgrade's repo pod in Namespace, bound to node, listening on
// port; its status is for the caller to write, as a kubelet would.
func RepoPod(upgrade, node string, port int32) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: RepoPodName(upgrade), Namespace: Namespace, Labels: repoSelector(upgrade)},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "repo", Image: "registry.invalid/repo:test", Ports: []corev1.ContainerPort{{ContainerPort: port}}}},
		},
	}
}
