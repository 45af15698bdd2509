package informers_test

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// port returns a TCP port; protocol nil means TCP, as the API defaults it.
func port(name string, p int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(p), Protocol: ptr.To(corev1.ProtocolTCP)}
}

func udpPort(name string, p int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(p), Protocol: ptr.To(corev1.ProtocolUDP)}
}

// endpoint returns an endpoint with the given conditions; nil leaves a
// condition unset.
func endpoint(ready, terminating *bool, addrs ...string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  addrs,
		Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating},
	}
}

func readyEndpoint(addrs ...string) discoveryv1.Endpoint {
	return endpoint(ptr.To(true), ptr.To(false), addrs...)
}

func endpointSlice(name string, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "harvester-system", Name: name},
		AddressType: at,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func http80() []discoveryv1.EndpointPort { return []discoveryv1.EndpointPort{port("http", 80)} }

func TestReadinessOf(t *testing.T) {
	deleting := endpointSlice("a", discoveryv1.AddressTypeIPv4, http80(), readyEndpoint("10.0.0.1"))
	deleting.DeletionTimestamp = &metav1.Time{}

	tests := []struct {
		name   string
		slices []*discoveryv1.EndpointSlice
		want   []informers.Endpoint
	}{
		{
			name: "empty input is not ready",
		},
		{
			name:   "nil slice is skipped",
			slices: []*discoveryv1.EndpointSlice{nil},
		},
		{
			name: "ready unset counts as ready",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4, http80(),
				endpoint(nil, nil, "10.0.0.1"))},
			want: []informers.Endpoint{{Address: "10.0.0.1", Port: 80}},
		},
		{
			name: "ready false is not ready",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4, http80(),
				endpoint(ptr.To(false), nil, "10.0.0.1"))},
		},
		{
			name: "terminating true is not ready even when ready is true",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4, http80(),
				endpoint(ptr.To(true), ptr.To(true), "10.0.0.1"))},
		},
		{
			name: "terminating false is ready",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4, http80(),
				endpoint(ptr.To(true), ptr.To(false), "10.0.0.1"))},
			want: []informers.Endpoint{{Address: "10.0.0.1", Port: 80}},
		},
		{
			name: "terminating unset is ready",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4, http80(),
				endpoint(ptr.To(true), nil, "10.0.0.1"))},
			want: []informers.Endpoint{{Address: "10.0.0.1", Port: 80}},
		},
		{
			name: "only ready endpoints of a slice are kept",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4, http80(),
				endpoint(ptr.To(false), nil, "10.0.0.1"),
				readyEndpoint("10.0.0.2"),
				endpoint(ptr.To(true), ptr.To(true), "10.0.0.3"))},
			want: []informers.Endpoint{{Address: "10.0.0.2", Port: 80}},
		},
		{
			name:   "slice being deleted is ignored",
			slices: []*discoveryv1.EndpointSlice{deleting},
		},
		{
			name: "FQDN slice is ignored",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeFQDN, http80(),
				readyEndpoint("repo.example.com"))},
		},
		{
			name: "slice without ports is ignored",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4, nil,
				readyEndpoint("10.0.0.1"))},
		},
		{
			name: "slice with only a UDP port is ignored",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4,
				[]discoveryv1.EndpointPort{udpPort("http", 80)}, readyEndpoint("10.0.0.1"))},
		},
		{
			name: "slice whose only port number is nil is ignored",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4,
				[]discoveryv1.EndpointPort{{Name: ptr.To("http")}}, readyEndpoint("10.0.0.1"))},
		},
		{
			name: "slice whose only port number is 0 is ignored",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4,
				[]discoveryv1.EndpointPort{port("http", 0)}, readyEndpoint("10.0.0.1"))},
		},
		{
			name: "port named http is preferred over a lower-numbered port",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4,
				[]discoveryv1.EndpointPort{port("metrics", 81), port("http", 8080)}, readyEndpoint("10.0.0.1"))},
			want: []informers.Endpoint{{Address: "10.0.0.1", Port: 8080}},
		},
		{
			name: "without an http port the lowest TCP port wins",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4,
				[]discoveryv1.EndpointPort{port("b", 9090), udpPort("dns", 53), port("a", 8080)}, readyEndpoint("10.0.0.1"))},
			want: []informers.Endpoint{{Address: "10.0.0.1", Port: 8080}},
		},
		{
			name: "a UDP port named http is not preferred",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4,
				[]discoveryv1.EndpointPort{udpPort("http", 80), port("web", 8080)}, readyEndpoint("10.0.0.1"))},
			want: []informers.Endpoint{{Address: "10.0.0.1", Port: 8080}},
		},
		{
			name: "unset protocol counts as TCP",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4,
				[]discoveryv1.EndpointPort{{Port: ptr.To[int32](8081)}}, readyEndpoint("10.0.0.1"))},
			want: []informers.Endpoint{{Address: "10.0.0.1", Port: 8081}},
		},
		{
			name: "endpoint without addresses is skipped",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4, http80(),
				readyEndpoint(), readyEndpoint("10.0.0.2"))},
			want: []informers.Endpoint{{Address: "10.0.0.2", Port: 80}},
		},
		{
			name: "only the first address of an endpoint is used",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv4, http80(),
				readyEndpoint("10.0.0.3", "10.0.0.4"))},
			want: []informers.Endpoint{{Address: "10.0.0.3", Port: 80}},
		},
		{
			name: "several slices of one Service are merged and sorted",
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("a", discoveryv1.AddressTypeIPv4, http80(), readyEndpoint("10.0.0.2")),
				endpointSlice("b", discoveryv1.AddressTypeIPv4, http80(), readyEndpoint("10.0.0.1")),
			},
			want: []informers.Endpoint{{Address: "10.0.0.1", Port: 80}, {Address: "10.0.0.2", Port: 80}},
		},
		{
			name: "duplicates across slices are removed",
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("a", discoveryv1.AddressTypeIPv4, http80(), readyEndpoint("10.0.0.1")),
				endpointSlice("b", discoveryv1.AddressTypeIPv4, http80(), readyEndpoint("10.0.0.1")),
			},
			want: []informers.Endpoint{{Address: "10.0.0.1", Port: 80}},
		},
		{
			name: "one address on two ports stays two endpoints, ordered by port",
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("a", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("web", 8080)}, readyEndpoint("10.0.0.1")),
				endpointSlice("b", discoveryv1.AddressTypeIPv4, http80(), readyEndpoint("10.0.0.1")),
			},
			want: []informers.Endpoint{{Address: "10.0.0.1", Port: 80}, {Address: "10.0.0.1", Port: 8080}},
		},
		{
			name: "IPv6 slice",
			slices: []*discoveryv1.EndpointSlice{endpointSlice("a", discoveryv1.AddressTypeIPv6, http80(),
				readyEndpoint("fd00:10:52::17"))},
			want: []informers.Endpoint{{Address: "fd00:10:52::17", Port: 80}},
		},
		{
			name: "dual-stack slices are merged",
			slices: []*discoveryv1.EndpointSlice{
				endpointSlice("v6", discoveryv1.AddressTypeIPv6, http80(), readyEndpoint("fd00::1")),
				endpointSlice("v4", discoveryv1.AddressTypeIPv4, http80(), readyEndpoint("10.0.0.1")),
			},
			want: []informers.Endpoint{{Address: "10.0.0.1", Port: 80}, {Address: "fd00::1", Port: 80}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := informers.ReadinessOf(tt.slices)
			if !slices.Equal(got.Endpoints, tt.want) {
				t.Errorf("ReadinessOf() endpoints = %v, want %v", got.Endpoints, tt.want)
			}
			if got.Ready() != (len(tt.want) > 0) {
				t.Errorf("ReadinessOf().Ready() = %v, want %v", got.Ready(), len(tt.want) > 0)
			}
		})
	}
}

// TestReadinessOfIgnoresOrder checks that the answer does not depend on the
// order in which the lister returns slices or a slice lists its endpoints:
// the gate compares answers to detect changes, so an order-dependent answer
// would report changes that did not happen.
func TestReadinessOfIgnoresOrder(t *testing.T) {
	input := []*discoveryv1.EndpointSlice{
		endpointSlice("a", discoveryv1.AddressTypeIPv4, http80(),
			readyEndpoint("10.0.0.9"), readyEndpoint("10.0.0.10"), endpoint(ptr.To(false), nil, "10.0.0.11"), readyEndpoint("10.0.0.1")),
		endpointSlice("b", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("web", 8080), port("admin", 9000)},
			readyEndpoint("10.0.0.1"), readyEndpoint("10.0.0.2", "10.0.0.3")),
		endpointSlice("c", discoveryv1.AddressTypeIPv4, http80(), readyEndpoint("10.0.0.9"), readyEndpoint("10.0.0.5")),
		endpointSlice("d", discoveryv1.AddressTypeIPv6, http80(), readyEndpoint("fd00::2"), readyEndpoint("fd00::1")),
	}
	want := []informers.Endpoint{
		{Address: "10.0.0.1", Port: 80},
		{Address: "10.0.0.1", Port: 8080},
		{Address: "10.0.0.10", Port: 80},
		{Address: "10.0.0.2", Port: 8080},
		{Address: "10.0.0.5", Port: 80},
		{Address: "10.0.0.9", Port: 80},
		{Address: "fd00::1", Port: 80},
		{Address: "fd00::2", Port: 80},
	}
	base := informers.ReadinessOf(input)
	if !slices.Equal(base.Endpoints, want) {
		t.Fatalf("ReadinessOf() endpoints = %v, want %v", base.Endpoints, want)
	}

	rng := rand.New(rand.NewPCG(1, 2)) // fixed seed: a failure reproduces
	for i := range 50 {
		shuffled := make([]*discoveryv1.EndpointSlice, len(input))
		for j, s := range input {
			shuffled[j] = s.DeepCopy()
			rng.Shuffle(len(shuffled[j].Endpoints), func(a, b int) {
				shuffled[j].Endpoints[a], shuffled[j].Endpoints[b] = shuffled[j].Endpoints[b], shuffled[j].Endpoints[a]
			})
		}
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })

		if got := informers.ReadinessOf(shuffled); !reflect.DeepEqual(got, base) {
			t.Fatalf("permutation %d: ReadinessOf() = %v, want %v", i, got, base)
		}
	}
}

func TestReadinessReadyAndEqual(t *testing.T) {
	one := informers.Readiness{Endpoints: []informers.Endpoint{{Address: "10.0.0.1", Port: 80}}}
	tests := []struct {
		name      string
		a, b      informers.Readiness
		wantEqual bool
	}{
		{name: "zero values", wantEqual: true},
		{name: "nil and empty endpoints", a: informers.Readiness{Endpoints: []informers.Endpoint{}}, wantEqual: true},
		{name: "same endpoints", a: one, b: informers.Readiness{Endpoints: []informers.Endpoint{{Address: "10.0.0.1", Port: 80}}}, wantEqual: true},
		{name: "ready and not ready", a: one},
		{name: "other address", a: one, b: informers.Readiness{Endpoints: []informers.Endpoint{{Address: "10.0.0.2", Port: 80}}}},
		{name: "other port", a: one, b: informers.Readiness{Endpoints: []informers.Endpoint{{Address: "10.0.0.1", Port: 8080}}}},
		{name: "one more endpoint", a: one, b: informers.Readiness{Endpoints: []informers.Endpoint{{Address: "10.0.0.1", Port: 80}, {Address: "10.0.0.2", Port: 80}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Equal(tt.b); got != tt.wantEqual {
				t.Errorf("a.Equal(b) = %v, want %v", got, tt.wantEqual)
			}
			if got := tt.b.Equal(tt.a); got != tt.wantEqual {
				t.Errorf("b.Equal(a) = %v, want %v", got, tt.wantEqual)
			}
		})
	}

	if (informers.Readiness{}).Ready() {
		t.Error("Readiness{}.Ready() = true, want false")
	}
	if (informers.Readiness{Endpoints: []informers.Endpoint{}}).Ready() {
		t.Error("Readiness with empty endpoints: Ready() = true, want false")
	}
	if !one.Ready() {
		t.Error("Readiness with one endpoint: Ready() = false, want true")
	}
}

func TestUpgradeOf(t *testing.T) {
	tests := []struct {
		name     string
		labels   map[string]string
		wantName string
		wantOK   bool
	}{
		{
			name: "upgrade label wins over the service name",
			labels: map[string]string{
				informers.UpgradeLabel:       "hvst-upgrade-a",
				discoveryv1.LabelServiceName: "upgrade-repo-hvst-upgrade-b",
			},
			wantName: "hvst-upgrade-a",
			wantOK:   true,
		},
		{
			name:     "service name without the prefix names the upgrade",
			labels:   map[string]string{discoveryv1.LabelServiceName: "upgrade-repo-hvst-upgrade-b"},
			wantName: "hvst-upgrade-b",
			wantOK:   true,
		},
		{
			name: "empty upgrade label falls back to the service name",
			labels: map[string]string{
				informers.UpgradeLabel:       "",
				discoveryv1.LabelServiceName: "upgrade-repo-hvst-upgrade-b",
			},
			wantName: "hvst-upgrade-b",
			wantOK:   true,
		},
		{
			name:   "service name without the prefix is not a repo",
			labels: map[string]string{discoveryv1.LabelServiceName: "harvester"},
		},
		{
			name:   "prefix in the middle of the service name is not a repo",
			labels: map[string]string{discoveryv1.LabelServiceName: "my-upgrade-repo-x"},
		},
		{
			name:   "service name that is only the prefix names no upgrade",
			labels: map[string]string{discoveryv1.LabelServiceName: "upgrade-repo-"},
		},
		{
			name: "no labels",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Labels: tt.labels}}
			name, ok := informers.UpgradeOf(s)
			if name != tt.wantName || ok != tt.wantOK {
				t.Errorf("UpgradeOf() = %q, %v; want %q, %v", name, ok, tt.wantName, tt.wantOK)
			}
		})
	}
}
