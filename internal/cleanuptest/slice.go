package cleanuptest

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// SliceWrapper builds an EndpointSlice of an upgrade's repo Service. Its
// methods change the slice in place and chain; Obj returns the slice.
type SliceWrapper struct{ s *discoveryv1.EndpointSlice }

// RepoSlice is the slice the EndpointSlice controller writes for upgrade's
// repo Service upgrade-repo-<upgrade> in Namespace: the Service's labels
// (Harvester's upgrade and component labels) plus the service-name label,
// one Ready endpoint at RepoIP, and the TCP port "http" RepoPort.
func RepoSlice(upgrade string) *SliceWrapper {
	svc := informers.RepoServicePrefix + upgrade
	return &SliceWrapper{s: &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      svc + "-abcde",
			Namespace: Namespace,
			Labels: map[string]string{
				discoveryv1.LabelServiceName:    svc,
				informers.UpgradeLabel:          upgrade,
				informers.UpgradeComponentLabel: "repo",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{RepoIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(RepoPort), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}}
}

// Obj returns the slice.
func (w *SliceWrapper) Obj() *discoveryv1.EndpointSlice { return w.s }

// Name renames the slice.
func (w *SliceWrapper) Name(name string) *SliceWrapper {
	w.s.Name = name
	return w
}

// Namespace moves the slice.
func (w *SliceWrapper) Namespace(ns string) *SliceWrapper {
	w.s.Namespace = ns
	return w
}

// ByServiceName drops Harvester's upgrade label: the slice belongs to its
// upgrade by the Service's name only.
func (w *SliceWrapper) ByServiceName() *SliceWrapper {
	delete(w.s.Labels, informers.UpgradeLabel)
	return w
}

// Ready sets the ready condition of every endpoint.
func (w *SliceWrapper) Ready(ready bool) *SliceWrapper {
	SetReady(w.s, ready)
	return w
}

// Address puts the first endpoint at addr alone.
func (w *SliceWrapper) Address(addr string) *SliceWrapper {
	w.s.Endpoints[0].Addresses = []string{addr}
	return w
}

// Port sets the port's number.
func (w *SliceWrapper) Port(port int32) *SliceWrapper {
	w.s.Ports[0].Port = ptr.To(port)
	return w
}

// Endpoints replaces the endpoints; none leaves a slice with no endpoint.
func (w *SliceWrapper) Endpoints(eps ...discoveryv1.Endpoint) *SliceWrapper {
	w.s.Endpoints = eps
	return w
}

// SetReady sets the ready condition of every endpoint of s, as the
// EndpointSlice controller does when the repo pod's readiness changes.
func SetReady(s *discoveryv1.EndpointSlice, ready bool) {
	for i := range s.Endpoints {
		s.Endpoints[i].Conditions.Ready = ptr.To(ready)
	}
}
