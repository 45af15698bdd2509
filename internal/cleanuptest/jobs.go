package cleanuptest

import (
	"context"
	"fmt"
	"maps"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// Node is a node Harvester manages: the default node selector picks it.
func Node(name string) *corev1.Node {
	l, err := labels.ConvertSelectorToLabelsMap(cleanup.DefaultNodeSelector)
	if err != nil {
		panic(err) // a constant, and a plain key=value
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

// RemovalJob is upgrade's removal Job on node in Namespace as far as the
// controller reads one (name, labels, node), still running: a Job an
// earlier run of the controller left.
func RemovalJob(upgrade, node string) *batchv1.Job {
	l := map[string]string{informers.UpgradeLabel: upgrade, informers.UpgradeComponentLabel: cleanup.RemovalComponent}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: cleanup.JobName(upgrade, node), Namespace: Namespace, Labels: l},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(l)},
			Spec: corev1.PodSpec{
				NodeName:      node,
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "image-remover", Image: "registry.invalid/image-remover:test"}},
			},
		}},
	}
}

// FinishedJobStatus is the status the Job controller writes once a Job's one
// pod succeeded (complete) or the Job failed past its backoff limit, with the
// conditions in the order an API server requires: SuccessCriteriaMet before
// Complete, FailureTarget before Failed.
func FinishedJobStatus(complete bool, now metav1.Time) batchv1.JobStatus {
	if complete {
		return batchv1.JobStatus{
			StartTime: &now, CompletionTime: &now, Succeeded: 1,
			Conditions: []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, LastTransitionTime: now, LastProbeTime: now},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, LastTransitionTime: now, LastProbeTime: now},
			},
		}
	}
	const reason, msg = batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit"
	return batchv1.JobStatus{
		StartTime: &now, Failed: 1,
		Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastTransitionTime: now, LastProbeTime: now},
		},
	}
}

// JobPod is the pod the Job controller makes for j, labelled so the
// controller finds it (by the Job's selector, or the job-name label) and
// controlled by j, and
// terminated as the kubelet reports it: the remover's container exited 0
// (succeeded) or 1, leaving msg as its termination message.
func JobPod(j *batchv1.Job, succeeded bool, msg string, now metav1.Time) *corev1.Pod {
	l := maps.Clone(j.Spec.Template.Labels)
	if l == nil {
		l = map[string]string{}
	}
	l[batchv1.JobNameLabel] = j.Name
	phase, code, reason := corev1.PodSucceeded, int32(0), "Completed"
	if !succeeded {
		phase, code, reason = corev1.PodFailed, 1, "Error"
	}
	c := j.Spec.Template.Spec.Containers[0]
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: j.Name + "-x1", Namespace: j.Namespace, Labels: l,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(j, batchv1.SchemeGroupVersion.WithKind("Job"))},
		},
		Spec: *j.Spec.Template.Spec.DeepCopy(),
		Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{
			Name: c.Name, Image: c.Image, ImageID: "sha256:0000",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: code, Reason: reason, Message: msg, StartedAt: now, FinishedAt: now,
			}},
		}}},
	}
}

// PlanDigestOf is the plan digest Job j gives its remover (its
// --plan-digest argument); empty when it gives none.
func PlanDigestOf(j *batchv1.Job) string {
	for _, c := range j.Spec.Template.Spec.Containers {
		for _, arg := range c.Args {
			if d, ok := strings.CutPrefix(arg, "--plan-digest="); ok {
				return d
			}
		}
	}
	return ""
}

// RemoverMessage is the termination message the remover of Job j writes
// for r: r with the digest of the plan j gave it (PlanDigestOf), as the
// remover reports the plan it acted on, unless r says the remover did not
// run (Error) or names a digest of its own.
func RemoverMessage(j *batchv1.Job, r report.Result) (string, error) {
	if r.Error == "" && r.PlanDigest == "" {
		r.PlanDigest = PlanDigestOf(j)
	}
	b, err := r.TerminationMessage()
	return string(b), err
}

// FinishedRemovalJob is upgrade's removal Job on node once it finished
// (complete, or failed) with its pod, whose remover left msg as its
// termination message: FinishJob's result as objects, for a fake clientset
// seeded with them.
func FinishedRemovalJob(upgrade, node string, complete bool, msg string, now metav1.Time) (*batchv1.Job, *corev1.Pod) {
	j := RemovalJob(upgrade, node)
	j.Status = FinishedJobStatus(complete, now)
	return j, JobPod(j, complete, msg, now)
}

// FinishJob plays the Job controller and the kubelet for one removal Job:
// the Job's pod, terminated with msg as the remover's termination message
// (see report.Result.TerminationMessage), then the Job's final status. It
// works against a fake clientset and a real API server alike (no kubelet
// runs there either): the pod's status is written after the pod.
func FinishJob(ctx context.Context, kube kubernetes.Interface, j *batchv1.Job, complete bool, msg string) error {
	now := metav1.Now()
	pod := JobPod(j, complete, msg, now)
	status := pod.Status
	created, err := kube.CoreV1().Pods(j.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create pod of job %s: %w", j.Name, err)
	}
	created.Status = status
	if _, err := kube.CoreV1().Pods(j.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write pod status of job %s: %w", j.Name, err)
	}
	j = j.DeepCopy()
	j.Status = FinishedJobStatus(complete, now)
	if _, err := kube.BatchV1().Jobs(j.Namespace).UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write status of job %s: %w", j.Name, err)
	}
	return nil
}

// RemovalJobs lists upgrade's removal Jobs of its first run in namespace
// by node; two Jobs on one node are an error.
func RemovalJobs(ctx context.Context, kube kubernetes.Interface, namespace, upgrade string) (map[string]*batchv1.Job, error) {
	return RunJobs(ctx, kube, namespace, upgrade, "")
}

// RunJobs is RemovalJobs for the run whose RunIDAnnotation is run ("" for
// the first).
func RunJobs(ctx context.Context, kube kubernetes.Interface, namespace, upgrade, run string) (map[string]*batchv1.Job, error) {
	sel, err := cleanup.RunSelector(upgrade, run)
	if err != nil {
		return nil, err
	}
	list, err := kube.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list removal Jobs of %s: %w", upgrade, err)
	}
	out := map[string]*batchv1.Job{}
	for i := range list.Items {
		j := &list.Items[i]
		node := j.Spec.Template.Spec.NodeName
		if _, dup := out[node]; dup {
			return nil, fmt.Errorf("two removal Jobs of %s on node %s", upgrade, node)
		}
		out[node] = j
	}
	return out, nil
}
