// Package informers turns cluster state into the facts the cleanup acts on:
// whether an upgrade's repo has a Ready endpoint and at which address (the
// Gate, over EndpointSlices), and the informers the controller watches:
// Upgrades (through the dynamic client, without Harvester's API module),
// Jobs and Nodes. What an Upgrade means to the cleanup is package cleanup's.
package informers
