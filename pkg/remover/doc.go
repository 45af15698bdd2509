// Package remover is the node side of the cleanup: it matches the planned
// references to the container runtime's images over CRI, decides every one
// on a single listing, and then removes (several at once) only those that
// are safe to remove (not pinned, not in use, not named by the current
// version's image list, carrying no tag the plan does not name). Main is the command each cleanup Job runs: as the standalone
// image's cmd/image-remover, or mounted as a subcommand of a host's own
// binary (harvester image-remover), with the same flags and rules.
package remover
