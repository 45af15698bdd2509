package informers

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Label keys that tie a repo Service, and the EndpointSlices the EndpointSlice
// controller copies its labels onto, to an Upgrade.
const (
	// UpgradeLabel names the Upgrade a repo object belongs to.
	UpgradeLabel = "harvesterhci.io/upgrade"
	// UpgradeComponentLabel says which part of an upgrade an object is ("repo").
	UpgradeComponentLabel = "harvesterhci.io/upgradeComponent"
	// RepoServicePrefix is the prefix of the repo Service's name; the rest is
	// the Upgrade's name.
	RepoServicePrefix = "upgrade-repo-"
)

// Endpoint is one address and port at which the repo answers.
type Endpoint struct {
	Address string
	Port    int32
}

// Readiness is what all EndpointSlices of one Service say about it: the
// endpoints that can take traffic now, sorted and without duplicates.
type Readiness struct {
	Endpoints []Endpoint
}

// Ready reports whether at least one endpoint can take traffic.
func (r Readiness) Ready() bool { return len(r.Endpoints) > 0 }

// Equal reports whether two readiness values name the same endpoints.
func (r Readiness) Equal(o Readiness) bool { return slices.Equal(r.Endpoints, o.Endpoints) }

// ReadinessOf merges the EndpointSlices of one Service into the endpoints a
// client may dial now. It reads the conditions as kube-proxy does: ready nil
// counts as ready (the API defines unknown as ready), terminating true counts as
// not ready. Slices being deleted are skipped, as are FQDN slices (dialing them
// needs DNS, which is what this product avoids) and slices without a TCP port.
// The result does not depend on the order of slices or endpoints.
func ReadinessOf(sls []*discoveryv1.EndpointSlice) Readiness {
	var eps []Endpoint
	for _, s := range sls {
		if s == nil || s.DeletionTimestamp != nil {
			continue
		}
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		port, ok := httpPort(s.Ports)
		if !ok {
			continue
		}
		for _, e := range s.Endpoints {
			if !endpointReady(e) || len(e.Addresses) == 0 {
				continue
			}
			// Every address of one endpoint is the same backend; consumers use the first.
			eps = append(eps, Endpoint{Address: e.Addresses[0], Port: port})
		}
	}
	slices.SortFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(strings.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
	})
	return Readiness{Endpoints: slices.Compact(eps)}
}

func endpointReady(e discoveryv1.Endpoint) bool {
	c := e.Conditions
	if c.Terminating != nil && *c.Terminating {
		return false
	}
	return c.Ready == nil || *c.Ready
}

// httpPort picks the port to dial from a slice's ports: one named "http" if
// there is one, else the lowest TCP port number, so a Service with several
// ports gives the same answer on every call.
func httpPort(ports []discoveryv1.EndpointPort) (int32, bool) {
	var best int32
	for _, p := range ports {
		if p.Port == nil || *p.Port <= 0 || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
			continue
		}
		if p.Name != nil && *p.Name == "http" {
			return *p.Port, true
		}
		if best == 0 || *p.Port < best {
			best = *p.Port
		}
	}
	return best, best != 0
}

// UpgradeOf names the Upgrade a repo EndpointSlice belongs to: its
// harvesterhci.io/upgrade label, else its Service's name without the
// "upgrade-repo-" prefix. ok is false when neither says.
func UpgradeOf(s *discoveryv1.EndpointSlice) (name string, ok bool) {
	if n := s.Labels[UpgradeLabel]; n != "" {
		return n, true
	}
	svc := s.Labels[discoveryv1.LabelServiceName]
	if n, found := strings.CutPrefix(svc, RepoServicePrefix); found && n != "" {
		return n, true
	}
	return "", false
}

// RepoSlices picks, from slices that may hold other Services' slices too,
// those UpgradeOf ties to upgrade. The gate and a one-off reader (the plan
// preview) share it, so both pick the same slices.
func RepoSlices(slices []*discoveryv1.EndpointSlice, upgrade string) []*discoveryv1.EndpointSlice {
	var mine []*discoveryv1.EndpointSlice
	for _, s := range slices {
		if n, ok := UpgradeOf(s); ok && n == upgrade {
			mine = append(mine, s)
		}
	}
	return mine
}
