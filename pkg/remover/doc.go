// Package remover is the node side of the cleanup: it matches the planned
// references to the container runtime's images over CRI and removes, one at a
// time, only those that are safe to remove (not pinned, not in use, not
// named by the current version's image list, carrying no tag the plan does
// not name). The image-remover binary that each cleanup Job runs is a thin
// layer over it.
package remover
