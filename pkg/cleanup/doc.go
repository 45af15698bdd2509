// Package cleanup plans, and hands over for removal, the container images an
// upgrade leaves behind.
//
// The pipeline: an EndpointSlice informer feeds the readiness gate
// (package informers); a change of a repo's readiness, or any change of its
// Upgrade, enqueues the Upgrade's key on a rate-limited queue (package
// workqueue); a worker gathers one Snapshot of the Upgrade, its plan and its
// repo, Decide picks one action (wait for the repo, fetch both image lists
// from the Ready endpoint and write the plan ConfigMap, hand the plan to an
// Executor, record a state, retry), and the worker applies it. Decide is a
// pure function; decide_test.go's table is the state machine's
// specification. Progress is recorded in annotations on the Upgrade, so a
// restart or a second replica picks up where the first left off.
//
// # Embedding
//
// There is one API, for a host binary and the standalone one alike: build a
// Controller with New from what the host already has, then call Run.
//
//   - Clients: a kubernetes.Interface and a dynamic.Interface (Upgrades are
//     read through it; this module does not import Harvester's API).
//   - Informers, as cache.SharedIndexInformer: EndpointSlices (required; a
//     shared, unfiltered one is fine, the controller applies its namespace
//     and selector), and for removal on the nodes Jobs and Nodes. The
//     controller registers handlers on them and waits for them to sync; it
//     never starts or stops them: the host does. The Upgrade informer may
//     be the host's too; when Config.Upgrades is nil the controller makes
//     its own from the dynamic client and runs it inside Run.
//   - An event recorder, a clock, and a logger in Run's context.
//
// The controller takes no Lease: it does its work for as long as Run runs.
// A host with its own leader election (Harvester runs every register
// function inside one) calls Run from its leader callback with the leader's
// context; the standalone binary elects with --leader-elect. Writes to the
// Upgrade are merge patches of the controller's annotations only, so the
// host's own controller can keep updating the same object.
//
// go.mod is at the bottom of the supported range, what Harvester v1.6
// builds with (Go 1.24, k8s.io/* v0.31.5), so embedding raises none of the
// host's versions; the packages build and pass their tests up to v0.37.2
// (hack/verify-k8s-range). A host with a typed Upgrade informer passes it
// with Config.ConvertUpgrade. examples/harvester-host is a register
// function of Harvester's shape; examples/harvester-v1.6 is one over
// Harvester v1.6.0's real types (hack/verify-harvester).
package cleanup
