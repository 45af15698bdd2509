package cleanup

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// Annotations on the Upgrade. The state lives on the Upgrade itself, not in
// the controller, so a restart, a second replica or a person with kubectl sees
// the same thing.
const (
	// StateAnnotation holds the cleanup's State.
	StateAnnotation = "harvesterhci.io/image-cleanup-state"
	// MessageAnnotation says why the cleanup is in its state.
	MessageAnnotation = "harvesterhci.io/image-cleanup-message"
	// HarvesterDoneAnnotation is set to "true" by Harvester's own upgrade
	// controller when its cleanup has run (or been skipped); the cleanup then
	// does nothing.
	HarvesterDoneAnnotation = "harvesterhci.io/image-cleanup-plan-completed"
	// LatestUpgradeLabel is "false" on Upgrades that a newer one replaced;
	// Harvester cleans up only after the latest.
	LatestUpgradeLabel = "harvesterhci.io/latestUpgrade"
)

// State is the cleanup's progress for one upgrade.
type State string

// The states, in the order a cleanup normally passes them.
const (
	// StateWaitingForRepo: the upgrade is complete, its repo has no Ready endpoint.
	StateWaitingForRepo State = "WaitingForRepo"
	// StatePlanned: the plan ConfigMap is written.
	StatePlanned State = "Planned"
	// StateRemoving: removal Jobs run on the nodes.
	StateRemoving State = "Removing"
	// StateSucceeded: enough nodes removed the plan; nothing more is done.
	StateSucceeded State = "Succeeded"
	// StateFailed: the message says why; see the README for what re-arms it.
	StateFailed State = "Failed"
)

// maxMessage bounds the message annotation; error chains from HTTP can be long.
const maxMessage = 1024

// errStale says a write was refused because the cache was behind: the sync
// is repeated on fresh state, without spending a retry.
var errStale = errors.New("upgrade changed since it was read")

// record writes an Outcome on the Upgrade: state and message with a merge
// patch that touches only the cleanup's annotations, and an Event. A patch,
// not an update, because Harvester's controller writes the same object. The
// patch carries the resourceVersion the decision was made on, so a decision
// taken on a stale cache fails with a conflict instead of overwriting a
// newer state; the key comes back once the cache has caught up (errStale).
//
// Further annotations go in the same patch as the state, so a reader never
// sees a final state without its summary. The failed phase is written with
// Failed and removed (a JSON null in the merge patch) with any other state.
func (c *Controller) record(ctx context.Context, u Upgrade, o Outcome) error {
	annotations, changed := annotationPatch(u, o)
	if !changed {
		return nil
	}
	s, cur, msg := o.State, State(u.Annotations[StateAnnotation]), annotations[MessageAnnotation].(string)
	meta := map[string]any{"annotations": annotations}
	if u.ResourceVersion != "" {
		meta["resourceVersion"] = u.ResourceVersion
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return fmt.Errorf("encode state patch: %w", err)
	}
	_, err = c.dynamic.Resource(informers.UpgradeGVR).Namespace(u.Namespace).
		Patch(ctx, u.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsConflict(err) {
		return errStale
	}
	if err != nil {
		return fmt.Errorf("record state %s on upgrade %s/%s: %w", s, u.Namespace, u.Name, err)
	}
	klog.FromContext(ctx).Info("Cleanup state changed", "from", cur, "to", s, "message", msg)
	eventType := corev1.EventTypeNormal
	if s == StateFailed {
		eventType = corev1.EventTypeWarning
	}
	c.recorder.Event(upgradeRef(u), eventType, "ImageCleanup"+string(s), msg)
	return nil
}

// annotationPatch is what record writes for o on u: the annotations of a
// merge patch (nil removes one), and whether it changes anything. A pure
// function, so the state machine's tests apply an Outcome as record does.
func annotationPatch(u Upgrade, o Outcome) (map[string]any, bool) {
	// Messages carry text from the repo and the runtime: escaped before it
	// reaches an annotation, an Event and so a person's terminal.
	s, msg := o.State, imagelist.Truncate(imagelist.Printable(o.Message), maxMessage)
	cur := State(u.Annotations[StateAnnotation])
	var phase Phase
	if s == StateFailed {
		phase = o.Phase
		if !o.keepPhase {
			phase = cmp.Or(phase, PhaseRemoval)
		}
	}
	// A re-run's mark lasts while it is Planned or Removing, no longer; a
	// plan recorded Planned anew (not by a re-run) is a first run again.
	_, marked := u.Annotations[RerunningAnnotation]
	dropMark := marked && (s != StatePlanned && s != StateRemoving || o.Annotations[RerunningAnnotation] == "" && s == StatePlanned && cur != StatePlanned)
	same := cur == s && u.Annotations[MessageAnnotation] == msg && Phase(u.Annotations[FailedPhaseAnnotation]) == phase && !dropMark
	for k, v := range o.Annotations {
		if cur, ok := u.Annotations[k]; !ok || cur != v {
			same = false
		}
	}
	if same {
		return nil, false
	}
	annotations := map[string]any{StateAnnotation: string(s), MessageAnnotation: msg, FailedPhaseAnnotation: nil}
	if phase != "" {
		annotations[FailedPhaseAnnotation] = string(phase)
	}
	if dropMark {
		annotations[RerunningAnnotation] = nil
	}
	for k, v := range o.Annotations {
		annotations[k] = v
	}
	return annotations, true
}

// upgradeRef names the Upgrade for events and owner references.
func upgradeRef(u Upgrade) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		APIVersion:      informers.UpgradeGVR.GroupVersion().String(),
		Kind:            informers.UpgradeKind,
		Namespace:       u.Namespace,
		Name:            u.Name,
		UID:             u.UID,
		ResourceVersion: u.ResourceVersion,
	}
}
