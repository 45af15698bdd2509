package cleanup

// Permission is one verb on one resource that the controller uses.
type Permission struct {
	Verb, Group, Resource string
	// Namespaced permissions are needed in Options.Namespace; the others
	// cluster-wide.
	Namespaced bool
}

// Permissions lists every API verb the controller uses (removal: with the
// Job executor), so a binary can check them at start and deploy/rbac.yaml
// can be tested against them. Leader election is not in it: whoever elects
// the leader (the host, or the standalone binary) needs its own Lease verbs.
func Permissions(removal bool) []Permission {
	ps := []Permission{
		// The Upgrade informer, and the state written with merge patches.
		{"list", "harvesterhci.io", "upgrades", true},
		{"watch", "harvesterhci.io", "upgrades", true},
		{"patch", "harvesterhci.io", "upgrades", true},
		// The readiness gate's informer.
		{"list", "discovery.k8s.io", "endpointslices", true},
		{"watch", "discovery.k8s.io", "endpointslices", true},
		// The plan: is it written, and by this Upgrade? Write it once.
		{"get", "", "configmaps", true},
		{"create", "", "configmaps", true},
		// One Event per state change; a repeated Event is patched.
		{"create", "", "events", true},
		{"patch", "", "events", true},
	}
	if removal {
		ps = append(ps,
			// The removal Jobs' informer, and one Job per node.
			Permission{"list", "batch", "jobs", true},
			Permission{"watch", "batch", "jobs", true},
			Permission{"create", "batch", "jobs", true},
			// Each finished Job's result, from its pod's termination message.
			Permission{"list", "", "pods", true},
			// The Node informer: which nodes get a Job.
			Permission{"list", "", "nodes", false},
			Permission{"watch", "", "nodes", false},
		)
	}
	return ps
}
