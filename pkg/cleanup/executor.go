package cleanup

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
)

// Executor removes a written plan's images from the nodes. It is the
// extension point for a host that removes its own way (Config.Executor);
// without one, Config.Removal runs one Job per node with image-remover, and
// with neither, DryRun stops at Planned.
//
// The controller calls it on every reconcile of an upgrade in state Planned
// or Removing, only after checking the plan (owned by the Upgrade, its
// content the one planned, PlanRef.Digest), so it must be level-based and
// idempotent: look at what already runs, start what is missing, report
// progress. It returns StateRemoving while work runs, then StateSucceeded or
// StateFailed with a message saying why; the Outcome's Annotations are
// written in the same patch (set HarvesterDoneAnnotation with Succeeded so
// Harvester's flow goes on). What it removes must keep the plan's KeepKey
// list under the same matching rules (pkg/imagematch), and never an image
// in use or pinned: pkg/remover's Decide is the reference.
type Executor interface {
	// Execute returns the state to record next, or a zero Outcome to leave
	// the state as it is.
	Execute(ctx context.Context, u Upgrade, plan PlanRef) (Outcome, error)
}

// PlanRef names a written plan that the controller has checked: owned by
// the Upgrade, its content what its digest says.
type PlanRef struct {
	Namespace string
	// ConfigMap is the name of the plan ConfigMap; its PlanKey holds the
	// images, its KeepKey what the remover must keep.
	ConfigMap string
	// UID is the ConfigMap's UID, for owner references.
	UID types.UID
	// Digest is imagelist.Digest of PlanKey's content, for the remover to check.
	Digest string
	// Early is true for a plan written while the upgrade ran.
	Early bool
}

// Outcome is a state transition an Executor asks for.
type Outcome struct {
	State   State
	Message string
	// Phase is the phase that failed, with StateFailed (PhaseRemoval when
	// an Executor leaves it empty).
	Phase Phase
	// Annotations are written on the Upgrade in the same patch as the state.
	Annotations map[string]string
	// Summary, on a final outcome, is what the removal did (for metrics).
	Summary *Summary
	// keepPhase records Phase as it is, also empty (a refusal that leaves
	// an older version's Failed without a phase as it was).
	keepPhase bool
}

// DryRun is the Executor that removes nothing: the cleanup stops at Planned,
// and the plan ConfigMap shows what would be removed.
type DryRun struct{}

// Execute leaves the state at Planned.
func (DryRun) Execute(context.Context, Upgrade, PlanRef) (Outcome, error) {
	return Outcome{}, nil
}
