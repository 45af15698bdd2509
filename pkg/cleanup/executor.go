package cleanup

import (
	"context"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// Executor removes a written plan's images from the nodes. The controller
// calls it on every reconcile of an upgrade in state Planned or Removing, so
// it must be level-based and idempotent: look at what already runs, start what
// is missing, report progress.
type Executor interface {
	// Execute returns the state to record next, or a zero Outcome to leave
	// the state as it is.
	Execute(ctx context.Context, u informers.Upgrade, plan PlanRef) (Outcome, error)
}

// PlanRef names a written plan.
type PlanRef struct {
	Namespace string
	// ConfigMap is the name of the plan ConfigMap; its PlanKey holds the images.
	ConfigMap string
}

// Outcome is a state transition an Executor asks for.
type Outcome struct {
	State   State
	Message string
	// Annotations are written on the Upgrade in the same patch as the state.
	Annotations map[string]string
	// Summary, on a final outcome, is what the removal did (for metrics).
	Summary *Summary
}

// DryRun is the Executor that removes nothing: the cleanup stops at Planned,
// and the plan ConfigMap shows what would be removed.
type DryRun struct{}

// Execute leaves the state at Planned.
func (DryRun) Execute(context.Context, informers.Upgrade, PlanRef) (Outcome, error) {
	return Outcome{}, nil
}
