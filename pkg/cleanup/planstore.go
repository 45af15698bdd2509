package cleanup

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// The plan ConfigMap.
const (
	// PlanKey is the ConfigMap key holding one reference per line.
	PlanKey = "images.txt"
	// KeepKey holds the current list, normalised: the remover refuses to
	// remove any image it covers, whatever the plan says.
	KeepKey = "keep.txt"
	// PlanDigestAnnotation, on the plan ConfigMap and on the Upgrade, is
	// imagelist.Digest of PlanKey's content. The controller starts no Job
	// unless both agree with the content, and each Job's remover checks the
	// file it reads against it.
	PlanDigestAnnotation = "harvesterhci.io/image-cleanup-plan-digest"
	// PlanComponent is the harvesterhci.io/upgradeComponent label value of plan objects.
	PlanComponent = "image-cleanup"
	// PreviousVersionAnnotation records which version's list the plan came from.
	PreviousVersionAnnotation = "harvesterhci.io/image-cleanup-previous-version"
	// PlanCountAnnotation records how many images the plan removes.
	PlanCountAnnotation = "harvesterhci.io/image-cleanup-images"
	// PlanCatchUpAnnotation lists the catch-up versions whose lists were
	// planned.
	PlanCatchUpAnnotation = "harvesterhci.io/image-cleanup-catch-up-planned"
	// PlanCatchUpMissingAnnotation lists the catch-up versions the repo's
	// archive does not serve (404).
	PlanCatchUpMissingAnnotation = "harvesterhci.io/image-cleanup-catch-up-missing"
	// PlannedEarlyAnnotation is "true" when the plan was written while the
	// upgrade ran (before Completed).
	PlannedEarlyAnnotation = "harvesterhci.io/image-cleanup-planned-early"
	// maxPlanBytes keeps the ConfigMap (both keys) under the API server's
	// 1 MiB object limit, with room for its metadata.
	maxPlanBytes = 1000 * 1000
)

// PlanConfigMapName is the name of upgrade's plan ConfigMap.
func PlanConfigMapName(upgrade string) string { return upgrade + "-image-cleanup" }

// planConfigMap builds the plan ConfigMap, owned by the Upgrade so the garbage
// collector removes it with the Upgrade. A plan that cannot be stored (a name
// or label the API would refuse, a size over its limit) is a permanentError:
// retrying cannot help.
func planConfigMap(u Upgrade, p Plan) (*corev1.ConfigMap, error) {
	name := PlanConfigMapName(u.Name)
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return nil, permanent(fmt.Errorf("plan ConfigMap name %q: %s", name, strings.Join(errs, "; ")))
	}
	// The Upgrade's name is a label value on the plan and its Jobs.
	if errs := validation.IsValidLabelValue(u.Name); len(errs) > 0 {
		return nil, permanent(fmt.Errorf("upgrade name %q cannot be the value of label %s: %s", u.Name, informers.UpgradeLabel, strings.Join(errs, "; ")))
	}
	images, keep := lines(p.Remove), lines(p.Keep)
	if n := len(images) + len(keep); n > maxPlanBytes {
		return nil, permanent(fmt.Errorf("plan of %d images (%s) and %d kept (%s) is %d bytes, over the ConfigMap limit of %d",
			len(p.Remove), PlanKey, len(p.Keep), KeepKey, n, maxPlanBytes))
	}
	annotations := map[string]string{
		PreviousVersionAnnotation: u.PreviousVersion,
		PlanCountAnnotation:       strconv.Itoa(len(p.Remove)),
		PlanDigestAnnotation:      imagelist.Digest([]byte(images)),
	}
	if len(p.CatchUp) > 0 {
		annotations[PlanCatchUpAnnotation] = strings.Join(p.CatchUp, ",")
	}
	if len(p.CatchUpMissing) > 0 {
		annotations[PlanCatchUpMissingAnnotation] = strings.Join(p.CatchUpMissing, ",")
	}
	if !u.Completed {
		annotations[PlannedEarlyAnnotation] = "true"
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: u.Namespace,
			Labels: map[string]string{
				informers.UpgradeLabel:          u.Name,
				informers.UpgradeComponentLabel: PlanComponent,
			},
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: informers.UpgradeGVR.GroupVersion().String(),
				Kind:       informers.UpgradeKind,
				Name:       u.Name,
				UID:        u.UID,
				Controller: ptr.To(true),
			}},
		},
		// The name too: a pod cannot see which ConfigMap its volume
		// comes from, and the remover refuses a plan folder that names
		// another than its --plan-configmap.
		Data: map[string]string{PlanKey: images, KeepKey: keep, report.PlanNameKey: name},
	}, nil
}

// lines is the list file format: one entry per line.
func lines(ss []string) string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.String()
}

// checkPlan reports why cm, which existingPlan or writePlan found owned by
// the Upgrade, is not a plan to run: no keep list, or images.txt not what
// its digest annotation says. It returns the plan's digest.
func checkPlan(cm *corev1.ConfigMap) (string, error) {
	where := fmt.Sprintf("plan ConfigMap %s/%s", cm.Namespace, cm.Name)
	images, ok := cm.Data[PlanKey]
	if !ok {
		return "", fmt.Errorf("%s has no key %s", where, PlanKey)
	}
	if _, ok := cm.Data[KeepKey]; !ok {
		return "", fmt.Errorf("%s has no key %s (the list the remover must keep); it was not written by this controller version: delete it, then remove the annotation %s to plan again", where, KeepKey, StateAnnotation)
	}
	if got, ok := cm.Data[report.PlanNameKey]; !ok || got != cm.Name {
		return "", fmt.Errorf("%s: key %s is %q, want its own name %q (the remover refuses any other); it was not written by this controller version: delete it, then remove the annotation %s to plan again", where, report.PlanNameKey, got, cm.Name, StateAnnotation)
	}
	digest := imagelist.Digest([]byte(images))
	if recorded := cm.Annotations[PlanDigestAnnotation]; recorded != digest {
		return "", fmt.Errorf("%s: %s has digest %s, but the ConfigMap records %q: it changed after it was planned; not running it", where, PlanKey, digest, recorded)
	}
	return digest, nil
}

// existingPlan returns the upgrade's plan ConfigMap if one is already written
// (a restart between writing it and recording Planned, or a stale cache). A
// ConfigMap of that name that this Upgrade does not own is an error: it is
// never overwritten.
func (c *Controller) existingPlan(ctx context.Context, u Upgrade) (*corev1.ConfigMap, error) {
	name := PlanConfigMapName(u.Name)
	cm, err := c.kube.CoreV1().ConfigMaps(u.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get plan ConfigMap %s/%s: %w", u.Namespace, name, err)
	}
	if !ownedBy(cm.OwnerReferences, u) {
		return nil, &foreignPlanError{namespace: u.Namespace, name: name, upgrade: u}
	}
	return cm, nil
}

// foreignPlanError is a ConfigMap in the plan's place that this Upgrade does
// not own: someone else's object, or a leftover of a deleted Upgrade of the
// same name that the garbage collector has not removed yet.
type foreignPlanError struct {
	namespace, name string
	upgrade         Upgrade
}

func (e *foreignPlanError) Error() string {
	return fmt.Sprintf("plan ConfigMap %s/%s exists but is not owned by upgrade %s (uid %s); not using it: delete it, then remove the annotation %s to plan again",
		e.namespace, e.name, e.upgrade.Name, e.upgrade.UID, StateAnnotation)
}

// writePlan creates the plan ConfigMap. A plan is written once: if another
// worker or an earlier run already wrote it, that one stands.
func (c *Controller) writePlan(ctx context.Context, u Upgrade, p Plan) (_ *corev1.ConfigMap, created bool, _ error) {
	cm, err := planConfigMap(u, p)
	if err != nil {
		return nil, false, err
	}
	out, err := c.kube.CoreV1().ConfigMaps(u.Namespace).Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		existing, gerr := c.existingPlan(ctx, u)
		if gerr != nil {
			return nil, false, gerr
		}
		if existing == nil { // created and deleted again in between
			return nil, false, fmt.Errorf("create plan ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
		}
		return existing, false, nil
	}
	if err != nil {
		return nil, false, permanentIfRefused(fmt.Errorf("create plan ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err))
	}
	return out, true, nil
}

func ownedBy(refs []metav1.OwnerReference, u Upgrade) bool {
	for _, r := range refs {
		if r.UID == u.UID && r.Kind == informers.UpgradeKind {
			return true
		}
	}
	return false
}

// planMessage is the state message for a written plan: planContents, and
// whether it was written while the upgrade ran.
func planMessage(cm *corev1.ConfigMap) string {
	when := "at completion"
	if cm.Annotations[PlannedEarlyAnnotation] == "true" {
		when = "while the upgrade ran; removal starts when it completes, without the repo"
	}
	return planContents(cm) + ", " + when
}

// planContents says how many images of which versions a plan removes, and
// where it is.
func planContents(cm *corev1.ConfigMap) string {
	a := cm.Annotations
	versions := a[PreviousVersionAnnotation]
	if v := a[PlanCatchUpAnnotation]; v != "" {
		versions += " and catch-up " + v
	}
	if v := a[PlanCatchUpMissingAnnotation]; v != "" {
		versions += " (catch-up " + v + " skipped: not in the repo's archive)"
	}
	return fmt.Sprintf("%s images of %s planned for removal in ConfigMap %s", a[PlanCountAnnotation], versions, cm.Name)
}
