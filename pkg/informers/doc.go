// Package informers turns cluster state into the facts the cleanup acts on:
// whether an upgrade's repo has a Ready endpoint and at which address (the
// Gate, over EndpointSlices), and what an Upgrade object says (read through a
// dynamic informer, without Harvester's API module).
package informers
