// Package cleanup plans, and hands over for removal, the container images an
// upgrade leaves behind.
//
// The pipeline: an EndpointSlice informer feeds the readiness gate
// (package informers); a change of a repo's readiness, or any change of its
// Upgrade, enqueues the Upgrade's key on a rate-limited queue (package
// workqueue); a worker re-reads the Upgrade and the gate from the caches and
// takes one step: wait for the repo, fetch both image lists from the Ready
// endpoint, write the plan ConfigMap, hand the plan to an Executor. Progress is
// recorded in annotations on the Upgrade, so a restart or a second replica
// picks up where the first left off.
//
// A host binary builds a Controller with New from its own clients and
// informers and calls Run; the controller registers handlers on the informers
// but never starts them.
package cleanup
