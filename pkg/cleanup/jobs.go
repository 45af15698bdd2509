package cleanup

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// RemovalOptions configure the removal of a plan on the nodes.
type RemovalOptions struct {
	// NodeSelector picks the nodes that get a Job.
	NodeSelector labels.Selector
	// RemoverImage is the image the remover runs in: the standalone image,
	// or a host's own image, already pulled on every node, whose binary
	// mounts the remover (pkg/remover's Main) as a subcommand.
	RemoverImage string
	// RemoverCommand starts the remover inside RemoverImage; the Job passes
	// the remover's flags after it. The default, []string{RemoverPath}, is
	// the standalone image's binary; a host names its own subcommand, such
	// as []string{"harvester", "image-remover"}.
	RemoverCommand []string
	// SocketPath is the container runtime's CRI socket on the node.
	SocketPath string
	// SuccessRatio is the share of nodes whose Job must succeed for the
	// cleanup to be Succeeded.
	SuccessRatio float64
	// MatchOtherRegistries lets the remover match a planned image under
	// another registry host (air-gapped registries rewrite the host).
	MatchOtherRegistries bool
	// PruneDangling also removes untagged, unused, unpinned images.
	PruneDangling bool
	// ImageFsThreshold, when not 0, is disk-pressure mode: a node whose
	// image filesystem holds fewer bytes than this (CRI ImageFsInfo,
	// measured by its remover) removes nothing and is reported skipped.
	ImageFsThreshold uint64
	// Tolerations are added to each Job's pod after its own
	// (removalTolerations), for nodes with taints of their own, such as a
	// dedicated pool's. They add to the built-in ones and never replace
	// them: those let a Job run on a drained or control-plane node.
	Tolerations []corev1.Toleration
	// BackoffLimit, ActiveDeadline and TTLAfterFinished go to each Job.
	BackoffLimit     int32
	ActiveDeadline   time.Duration
	TTLAfterFinished time.Duration
}

// DefaultNodeSelector matches the nodes Harvester manages, as its own cleanup Plan does.
const DefaultNodeSelector = "harvesterhci.io/managed=true"

// DefaultSocketPath is containerd's CRI socket on RKE2, which Harvester runs on.
const DefaultSocketPath = "/run/k3s/containerd/containerd.sock"

// DefaultRemovalOptions leave RemoverImage empty: there is no image to
// guess, the caller must name one. RemoverCommand is the standalone image's
// binary, RemoverPath; a host that runs its own image sets its subcommand.
//
// The Job limits: the remover exits non-zero only when the runtime cannot be
// reached or the plan cannot be read, so 2 retries cover a containerd
// restarting after the upgrade without hiding a broken node; 30 minutes is
// far beyond removing a few hundred images one by one; finished Jobs stay a
// day so a person can read their logs.
func DefaultRemovalOptions() RemovalOptions {
	return RemovalOptions{
		NodeSelector:         labels.SelectorFromSet(labels.Set{"harvesterhci.io/managed": "true"}),
		RemoverCommand:       []string{RemoverPath},
		SocketPath:           DefaultSocketPath,
		SuccessRatio:         1.0,
		MatchOtherRegistries: true,
		BackoffLimit:         2,
		ActiveDeadline:       30 * time.Minute,
		TTLAfterFinished:     24 * time.Hour,
	}
}

// Validate reports the first option that cannot work, naming its flag.
func (o RemovalOptions) Validate() error {
	switch {
	case o.NodeSelector == nil:
		return fmt.Errorf("--node-selector is missing")
	case o.RemoverImage == "":
		return fmt.Errorf("--remover-image is required to remove images (or use --dry-run)")
	case len(o.RemoverCommand) == 0:
		return fmt.Errorf("--remover-command is empty: name the command that starts the remover in --remover-image (the standalone image's is %s)", RemoverPath)
	case slices.ContainsFunc(o.RemoverCommand, func(w string) bool { return strings.TrimSpace(w) == "" }):
		return fmt.Errorf("--remover-command %q has an empty word", o.RemoverCommand)
	case slices.ContainsFunc(o.RemoverCommand, func(w string) bool { return strings.TrimSpace(w) != w }):
		// The Job runs the words without a shell: " harvester" or
		// "harvester image-remover" as one word is no executable.
		return fmt.Errorf("--remover-command %q has a word with surrounding whitespace; give each word separately", o.RemoverCommand)
	case !strings.HasPrefix(o.SocketPath, "/"):
		return fmt.Errorf("--runtime-socket %q must be an absolute path on the node", o.SocketPath)
	case o.SuccessRatio <= 0 || o.SuccessRatio > 1:
		return fmt.Errorf("--success-ratio %v must be in (0, 1]", o.SuccessRatio)
	case o.ImageFsThreshold > report.MaxThreshold:
		return fmt.Errorf("--image-fs-threshold %d bytes: must be at most 8Pi, as the remover reads it", o.ImageFsThreshold)
	case o.BackoffLimit < 0 || o.ActiveDeadline <= 0 || o.TTLAfterFinished < 0:
		return fmt.Errorf("job limits: backoffLimit %d, activeDeadline %v, ttlAfterFinished %v must not be negative (deadline positive)", o.BackoffLimit, o.ActiveDeadline, o.TTLAfterFinished)
	}
	return ValidateTolerations(o.Tolerations)
}

// TolerationsFlag is the controller's flag for RemovalOptions.Tolerations,
// which ValidateTolerations' errors name.
const TolerationsFlag = "--removal-tolerations"

// ValidateTolerations reports the first of tols that the API server would
// refuse in a pod, naming its index and field, such as
// --removal-tolerations[1].effect: it checks what Kubernetes' validation of
// a pod's tolerations checks, so that a bad one stops the controller at
// start instead of failing the creation of every Job.
func ValidateTolerations(tols []corev1.Toleration) error {
	for i, t := range tols {
		field := func(name string) string { return fmt.Sprintf("%s[%d].%s", TolerationsFlag, i, name) }
		quoted := func(s string) string { return fmt.Sprintf("%q", imagelist.Truncate(s, 80)) }
		switch {
		case t.Key == "" && t.Operator != corev1.TolerationOpExists:
			return fmt.Errorf("%s: empty, which only operator Exists allows (matching every taint)", field("key"))
		case t.Key != "" && len(validation.IsQualifiedName(t.Key)) > 0:
			return fmt.Errorf("%s: %s is not a qualified name: %s", field("key"), quoted(t.Key), strings.Join(validation.IsQualifiedName(t.Key), "; "))
		case t.Operator != "" && t.Operator != corev1.TolerationOpExists && t.Operator != corev1.TolerationOpEqual:
			return fmt.Errorf("%s: %s is not one of \"\", Exists, Equal", field("operator"), quoted(string(t.Operator)))
		case t.Operator == corev1.TolerationOpExists && t.Value != "":
			return fmt.Errorf("%s: %s must be empty with operator Exists", field("value"), quoted(t.Value))
		case t.Operator != corev1.TolerationOpExists && len(validation.IsValidLabelValue(t.Value)) > 0:
			// Equal compares the value with a taint's, which is a label value.
			return fmt.Errorf("%s: %s is not a label value: %s", field("value"), quoted(t.Value), strings.Join(validation.IsValidLabelValue(t.Value), "; "))
		case t.Effect != "" && t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectPreferNoSchedule && t.Effect != corev1.TaintEffectNoExecute:
			return fmt.Errorf("%s: %s is not one of \"\", NoSchedule, PreferNoSchedule, NoExecute", field("effect"), quoted(string(t.Effect)))
		case t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute:
			return fmt.Errorf("%s: %d needs effect NoExecute, not %s", field("tolerationSeconds"), *t.TolerationSeconds, quoted(string(t.Effect)))
		}
	}
	return nil
}

// Labels and paths of the removal Jobs.
const (
	// RemovalComponent is the harvesterhci.io/upgradeComponent value of the Jobs.
	RemovalComponent = PlanComponent
	// NodeAnnotation names the node a Job removes images on (node names may
	// be longer than a label value).
	NodeAnnotation = "harvesterhci.io/image-cleanup-node"

	// RemoverPath is where the standalone image holds cmd/image-remover:
	// the default RemoverCommand.
	RemoverPath = "/usr/local/bin/image-remover"

	planMountPath   = "/etc/image-cleanup"
	socketMountPath = "/run/cri/cri.sock"
	removerName     = "image-remover"
)

// JobName is the name of upgrade's removal Job on node in its first run:
// at most 63 characters, readable, and unique per (upgrade, node) through a
// hash of both, so an existing Job is found again and never duplicated.
func JobName(upgrade, node string) string { return runJobName(upgrade, node, "") }

// runJobName is JobName for the run whose RunIDAnnotation is run ("" for
// the first run): each re-run gets Jobs of its own, while the last run's
// finished Jobs keep their logs until their TTL.
func runJobName(upgrade, node, run string) string {
	key := upgrade + "/" + node
	if run != "" {
		key += "/" + run
	}
	sum := sha256.Sum256([]byte(key))
	return fmt.Sprintf("%s-%s-%s", namePart(upgrade, 25), namePart(node, 25), hex.EncodeToString(sum[:])[:8])
}

// RunLabel, on a re-run's Jobs, is the run's RunIDAnnotation; the first
// run's Jobs have none.
const RunLabel = "harvesterhci.io/image-cleanup-run"

// runID is a label value made of any text.
func runID(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])[:16]
}

// RunSelector selects the removal Jobs of upgrade's run: run is the
// Upgrade's RunIDAnnotation, "" for the first run. The annotation is on the
// Upgrade, where anyone who may patch it can write it: a value that is no
// label value is an error naming it, never a panic.
func RunSelector(upgrade, run string) (labels.Selector, error) {
	sel := labels.SelectorFromSet(labels.Set{informers.UpgradeLabel: upgrade, informers.UpgradeComponentLabel: RemovalComponent})
	op, vals := selection.DoesNotExist, []string(nil)
	if run != "" {
		op, vals = selection.Equals, []string{run}
	}
	req, err := labels.NewRequirement(RunLabel, op, vals)
	if err != nil {
		return nil, fmt.Errorf("annotation %s %q on upgrade %s is not a run ID this controller wrote: %w", RunIDAnnotation, imagelist.Truncate(imagelist.Printable(run), 80), upgrade, err)
	}
	return sel.Add(*req), nil
}

// namePart makes s a DNS label fragment of at most n characters.
func namePart(s string, n int) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	if len(b) > n {
		b = b[:n]
	}
	out := strings.Trim(string(b), "-")
	if out == "" {
		out = "x"
	}
	return out
}

// RemovalSelector selects every removal Job (for a label-filtered informer).
func RemovalSelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{informers.UpgradeComponentLabel: RemovalComponent})
}

// RemovalJob is the Job that removes plan's images on node. It is owned by
// the plan ConfigMap, so deleting the Upgrade removes the plan and its Jobs.
// Exported so that the real-containerd test runs the remover with this
// very pod spec (command, args, mounts, security context), not a copy.
func RemovalJob(u Upgrade, plan PlanRef, node string, o RemovalOptions) *batchv1.Job {
	lbls := map[string]string{informers.UpgradeLabel: u.Name, informers.UpgradeComponentLabel: RemovalComponent}
	run := u.Annotations[RunIDAnnotation]
	if run != "" {
		lbls[RunLabel] = run
	}
	args := []string{
		"--plan=" + planMountPath + "/" + PlanKey,
		"--keep=" + planMountPath + "/" + KeepKey,
		"--plan-digest=" + plan.Digest,
		"--plan-configmap=" + plan.ConfigMap,
		"--runtime-endpoint=unix://" + socketMountPath,
		fmt.Sprintf("--match-other-registries=%t", o.MatchOtherRegistries),
		fmt.Sprintf("--prune-dangling=%t", o.PruneDangling),
	}
	if o.ImageFsThreshold > 0 {
		args = append(args, fmt.Sprintf("--image-fs-threshold=%d", o.ImageFsThreshold))
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        runJobName(u.Name, node, run),
			Namespace:   u.Namespace,
			Labels:      lbls,
			Annotations: map[string]string{NodeAnnotation: node},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "ConfigMap", Name: plan.ConfigMap, UID: plan.UID, Controller: ptr.To(true),
			}},
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To(o.BackoffLimit),
			ActiveDeadlineSeconds:   ptr.To(int64(o.ActiveDeadline / time.Second)),
			TTLSecondsAfterFinished: ptr.To(int32(o.TTLAfterFinished / time.Second)),
			// Exit code 2 is the remover refusing its input (the plan's
			// digest, a bad line, no keep list), or a Go crash: another pod
			// would refuse, or crash on, the same ConfigMap, so the Job
			// fails at once instead of spending its retries, which are for
			// a runtime restarting.
			PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
				Action: batchv1.PodFailurePolicyActionFailJob,
				OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
					ContainerName: ptr.To(removerName),
					Operator:      batchv1.PodFailurePolicyOnExitCodesOpIn,
					Values:        []int32{report.ExitRefused},
				},
			}}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls, Annotations: map[string]string{NodeAnnotation: node}},
				Spec: corev1.PodSpec{
					NodeName:                     node,
					RestartPolicy:                corev1.RestartPolicyNever,
					AutomountServiceAccountToken: ptr.To(false),
					Tolerations:                  tolerations(o.Tolerations),
					Containers: []corev1.Container{{
						Name:  removerName,
						Image: o.RemoverImage,
						// Named, not left to the image's entrypoint: the
						// project's one image holds both binaries and starts
						// the controller by default, and a host's image
						// starts the host. Cloned so that no Job shares the
						// options' array.
						Command: slices.Clone(o.RemoverCommand),
						Args:    args,
						VolumeMounts: []corev1.VolumeMount{
							{Name: "plan", MountPath: planMountPath, ReadOnly: true},
							{Name: "cri-socket", MountPath: socketMountPath},
						},
						// The remover writes its result to the file on every
						// exit it controls; a crash (a Go panic exits 2) leaves
						// none, and then the log's tail says why.
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
						},
						// Root only to reach the root-owned socket; nothing else.
						SecurityContext: &corev1.SecurityContext{
							RunAsUser:                ptr.To[int64](0),
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "plan", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: plan.ConfigMap},
						}}},
						{Name: "cri-socket", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
							Path: o.SocketPath, Type: ptr.To(corev1.HostPathSocket),
						}}},
					},
				},
			},
		},
	}
}

// tolerations are the Job's: the built-in ones, then extra, copied so that
// no Job shares the options' values.
func tolerations(extra []corev1.Toleration) []corev1.Toleration {
	all := removalTolerations()
	for _, t := range extra {
		all = append(all, *t.DeepCopy())
	}
	return all
}

// removalTolerations let the Job run where Harvester's own cleanup runs: on a
// drained node (kubevirt.io/drain, unschedulable), on control-plane and etcd
// nodes, and beside critical add-ons only.
func removalTolerations() []corev1.Toleration {
	return []corev1.Toleration{
		{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
		{Key: "kubevirt.io/drain", Operator: corev1.TolerationOpExists},
		{Key: "node.kubernetes.io/unschedulable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: "node-role.kubernetes.io/etcd", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	}
}
