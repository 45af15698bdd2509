package cleanup_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

func TestJobNameIsABoundedUniqueLabel(t *testing.T) {
	long := strings.Repeat("node-with-a-very-long-name.", 8)
	tests := []struct{ upgrade, node string }{
		{"hvst-upgrade-abc12", "harvester-node-0"},
		{"hvst-upgrade-abc12", "harvester-node-1"},
		{"hvst-upgrade-abc12", long + "a"},
		{"hvst-upgrade-abc12", long + "b"},
		{strings.Repeat("u", 250), "Node_With.Dots"},
		{"hvst-upgrade-abc12", "---"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		name := cleanup.JobName(tt.upgrade, tt.node)
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			t.Errorf("JobName(%q, %q) = %q: %v", tt.upgrade, tt.node, name, errs)
		}
		if seen[name] {
			t.Errorf("JobName(%q, %q) = %q repeats another node's name", tt.upgrade, tt.node, name)
		}
		seen[name] = true
		if again := cleanup.JobName(tt.upgrade, tt.node); again != name {
			t.Errorf("JobName is not deterministic: %q then %q", name, again)
		}
	}
}

// TestRemovalJobSpec reads the Job the controller creates for a node.
func TestRemovalJobSpec(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"harvester-node-0"})
	f.SyncRemoval()
	cm, _ := f.PlanConfigMap()
	plan := cleanup.PlanRef{Namespace: testNS, ConfigMap: cm.Name, UID: cm.UID, Digest: cm.Annotations[cleanup.PlanDigestAnnotation]}
	j := f.RemovalJobs()["harvester-node-0"]
	if j == nil {
		t.Fatalf("no Job on harvester-node-0")
	}

	if j.Name != cleanup.JobName(testUpgrade, "harvester-node-0") || j.Namespace != testNS {
		t.Errorf("job %s/%s", j.Namespace, j.Name)
	}
	wantLabels := map[string]string{informers.UpgradeLabel: testUpgrade, informers.UpgradeComponentLabel: "image-cleanup"}
	for k, v := range wantLabels {
		if j.Labels[k] != v || j.Spec.Template.Labels[k] != v {
			t.Errorf("label %s: job %q, pod %q, want %q", k, j.Labels[k], j.Spec.Template.Labels[k], v)
		}
	}
	if len(j.OwnerReferences) != 1 || j.OwnerReferences[0].UID != plan.UID || j.OwnerReferences[0].Kind != "ConfigMap" {
		t.Errorf("owner = %+v, want the plan ConfigMap", j.OwnerReferences)
	}
	pod := j.Spec.Template.Spec
	if pod.NodeName != "harvester-node-0" || pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("nodeName %q, restartPolicy %q", pod.NodeName, pod.RestartPolicy)
	}
	if *j.Spec.BackoffLimit != 2 || *j.Spec.ActiveDeadlineSeconds != 1800 || *j.Spec.TTLSecondsAfterFinished != 86400 {
		t.Errorf("limits: backoff %d, deadline %d, ttl %d", *j.Spec.BackoffLimit, *j.Spec.ActiveDeadlineSeconds, *j.Spec.TTLSecondsAfterFinished)
	}
	// Exit code 2 is a refusal (bad plan, digest, keep list): a new pod
	// would refuse the same plan, so the Job fails at once.
	if pfp := j.Spec.PodFailurePolicy; pfp == nil || len(pfp.Rules) != 1 || pfp.Rules[0].Action != batchv1.PodFailurePolicyActionFailJob ||
		pfp.Rules[0].OnExitCodes == nil || *pfp.Rules[0].OnExitCodes.ContainerName != "image-remover" ||
		pfp.Rules[0].OnExitCodes.Operator != batchv1.PodFailurePolicyOnExitCodesOpIn || !slices.Equal(pfp.Rules[0].OnExitCodes.Values, []int32{2}) {
		t.Errorf("podFailurePolicy = %+v, want FailJob on the remover's exit code 2", pfp)
	}
	c := pod.Containers[0]
	if c.Image != "registry.example/image-remover:v1" || c.Name != "image-remover" {
		t.Errorf("container %s image %s", c.Name, c.Image)
	}
	wantArgs := []string{
		"--plan=/etc/image-cleanup/images.txt",
		"--keep=/etc/image-cleanup/keep.txt",
		"--plan-digest=" + plan.Digest,
		"--plan-configmap=" + plan.ConfigMap,
		"--runtime-endpoint=unix:///run/cri/cri.sock", "--match-other-registries=true", "--prune-dangling=false",
	}
	if !slices.Equal(c.Command, []string{"/usr/local/bin/image-remover"}) {
		t.Errorf("command = %q: the image's entrypoint is the controller", c.Command)
	}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args = %q, want %q", c.Args, wantArgs)
	}
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("terminationMessagePolicy = %q: a crashed remover writes no result, its log must say why", c.TerminationMessagePolicy)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	if m := mounts["plan"]; !m.ReadOnly || m.MountPath != "/etc/image-cleanup" {
		t.Errorf("plan mount = %+v, want read-only at /etc/image-cleanup", m)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	if v := vols["plan"].ConfigMap; v == nil || v.Name != plan.ConfigMap {
		t.Errorf("plan volume = %+v, want ConfigMap %s", vols["plan"], plan.ConfigMap)
	}
	if v := vols["cri-socket"].HostPath; v == nil || v.Path != "/run/k3s/containerd/containerd.sock" || *v.Type != corev1.HostPathSocket {
		t.Errorf("socket volume = %+v, want RKE2's containerd socket", vols["cri-socket"])
	}
	// Toleration.ToleratesTaint changed its signature after client-go v0.34,
	// which hosts still use: match Exists tolerations by hand.
	tolerated := func(key string, effect corev1.TaintEffect) bool {
		for _, tol := range pod.Tolerations {
			if tol.Operator == corev1.TolerationOpExists && tol.Key == key && (tol.Effect == "" || tol.Effect == effect) {
				return true
			}
		}
		return false
	}
	for _, taint := range []corev1.Taint{
		{Key: "CriticalAddonsOnly", Effect: corev1.TaintEffectNoExecute},
		{Key: "kubevirt.io/drain", Effect: corev1.TaintEffectNoSchedule},
		{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoExecute},
		{Key: "node-role.kubernetes.io/etcd", Effect: corev1.TaintEffectNoExecute},
		{Key: "node.kubernetes.io/unschedulable", Effect: corev1.TaintEffectNoSchedule},
	} {
		if !tolerated(taint.Key, taint.Effect) {
			t.Errorf("does not tolerate %s:%s", taint.Key, taint.Effect)
		}
	}
	sc := c.SecurityContext
	if *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || len(sc.Capabilities.Drop) != 1 {
		t.Errorf("security context too loose: %+v", sc)
	}
	if *pod.AutomountServiceAccountToken {
		t.Error("the remover needs no API token")
	}
}

var nodeResult = report.Result{Removed: 2, BytesReclaimed: 3e8, Skipped: map[report.Reason]int{report.ReasonInUse: 1}}

func TestTwoNodesSucceed(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a", "node-b"})
	f.SyncRemoval()
	jobs := f.RemovalJobs()
	if len(jobs) != 2 || jobs["node-a"] == nil || jobs["node-b"] == nil {
		t.Fatalf("jobs by node = %v, want one on node-a and one on node-b", slices.Collect(maps.Keys(jobs)))
	}
	if f.State() != cleanup.StateRemoving {
		t.Fatalf("state = %s, want Removing while Jobs run", f.State())
	}
	// Another sync while they run creates nothing more.
	f.SyncRemoval()
	if n := f.Creates("jobs"); n != 2 {
		t.Errorf("Job creates = %d, want 2", n)
	}
	f.FinishJob("node-a", true, nodeResult)
	f.SyncRemoval()
	if f.State() != cleanup.StateRemoving {
		t.Fatalf("state = %s with one node still running", f.State())
	}
	f.FinishJob("node-b", true, nodeResult)
	f.SyncRemoval()
	a := f.Annotations()
	if cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StateSucceeded || a[cleanup.HarvesterDoneAnnotation] != "true" {
		t.Fatalf("annotations = %v, want Succeeded and Harvester's annotation", a)
	}
	s := f.Summary()
	if len(s.Nodes) != 2 || s.Total.Removed != 4 || s.Total.Skipped[report.ReasonInUse] != 2 || s.Total.BytesReclaimed != 6e8 {
		t.Errorf("summary = %+v", s)
	}
	for _, n := range s.Nodes {
		if n.Outcome != cleanup.NodeSucceeded || n.Result == nil || n.Result.Removed != 2 {
			t.Errorf("node %s: %+v", n.Node, n)
		}
	}
	if !strings.Contains(a[cleanup.MessageAnnotation], "removed 4 images") || !strings.Contains(a[cleanup.MessageAnnotation], "in-use 2") {
		t.Errorf("message %q does not say what was removed and skipped", a[cleanup.MessageAnnotation])
	}
}

func TestOneNodeFails(t *testing.T) {
	for _, tt := range []struct {
		ratio float64
		want  cleanup.State
	}{{1, cleanup.StateFailed}, {0.5, cleanup.StateSucceeded}} {
		t.Run(fmt.Sprint(tt.ratio), func(t *testing.T) {
			f := newRemovalFixture(t, tt.ratio, []string{"node-a", "node-b"})
			f.SyncRemoval()
			f.FinishJob("node-a", true, nodeResult)
			f.FinishJob("node-b", false, report.Result{})
			f.SyncRemoval()
			a := f.Annotations()
			if cleanup.State(a[cleanup.StateAnnotation]) != tt.want {
				t.Fatalf("state = %s, want %s: %s", a[cleanup.StateAnnotation], tt.want, a[cleanup.MessageAnnotation])
			}
			if (a[cleanup.HarvesterDoneAnnotation] == "true") != (tt.want == cleanup.StateSucceeded) {
				t.Errorf("Harvester's annotation = %q", a[cleanup.HarvesterDoneAnnotation])
			}
			for _, n := range f.Summary().Nodes {
				if n.Node == "node-b" && (n.Outcome != cleanup.NodeFailed || !strings.Contains(n.Message, "BackoffLimitExceeded")) {
					t.Errorf("node-b = %+v, want failed with the Job's reason", n)
				}
			}
		})
	}
}

func TestNodeJoinsMidRun(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.SyncRemoval()
	if _, err := f.Kube.CoreV1().Nodes().Create(f.Ctx, cleanuptest.Node("node-c"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.FinishJob("node-a", true, nodeResult)
	f.SyncRemoval()
	if f.State() != cleanup.StateRemoving || f.RemovalJobs()["node-c"] == nil {
		t.Fatalf("state %s, jobs %v: the new node must get a Job and be waited for", f.State(), slices.Collect(maps.Keys(f.RemovalJobs())))
	}
	f.FinishJob("node-c", true, nodeResult)
	f.SyncRemoval()
	if f.State() != cleanup.StateSucceeded || len(f.Summary().Nodes) != 2 {
		t.Errorf("state %s, summary %+v", f.State(), f.Summary())
	}
}

func TestNodeLeavesMidRun(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a", "node-b"})
	f.SyncRemoval()
	if err := f.Kube.CoreV1().Nodes().Delete(f.Ctx, "node-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.FinishJob("node-a", true, nodeResult)
	f.SyncRemoval()
	if f.State() != cleanup.StateSucceeded {
		t.Fatalf("state = %s: a node that left is not waited for", f.State())
	}
	var left bool
	for _, n := range f.Summary().Nodes {
		left = left || (n.Node == "node-b" && n.Outcome == cleanup.NodeLeft)
	}
	if !left {
		t.Errorf("summary %+v does not say node-b left", f.Summary())
	}
}

func TestRestartMidRunDuplicatesNothing(t *testing.T) {
	// The Jobs an earlier run created: one finished, one running.
	done := cleanuptest.RemovalJob(testUpgrade, "node-a")
	done.Status = cleanuptest.FinishedJobStatus(true, metav1.Now())
	running := cleanuptest.RemovalJob(testUpgrade, "node-b")
	f := newRemovalFixture(t, 1, []string{"node-a", "node-b"}, done, running)
	f.SyncRemoval()
	if n := f.Creates("jobs"); n != 0 {
		t.Errorf("a restarted controller created %d Jobs, want none", n)
	}
	f.FinishJob("node-b", true, nodeResult)
	f.SyncRemoval()
	if f.State() != cleanup.StateSucceeded {
		t.Errorf("state = %s, want Succeeded", f.State())
	}
	// node-a's pod is gone (TTL): its result is missing, its success stands.
	for _, n := range f.Summary().Nodes {
		if n.Node == "node-a" && (n.Outcome != cleanup.NodeSucceeded || !strings.Contains(n.Message, "no result")) {
			t.Errorf("node-a = %+v", n)
		}
	}
}

func TestJobDeletedByHandIsRecreated(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.SyncRemoval()
	name := f.RemovalJobs()["node-a"].Name
	if err := f.Kube.BatchV1().Jobs(testNS).Delete(f.Ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.SyncRemoval()
	if j := f.RemovalJobs()["node-a"]; j == nil || j.Name != name {
		t.Fatalf("jobs = %v, want %s again", f.RemovalJobs(), name)
	}
	if n := f.Creates("jobs"); n != 2 {
		t.Errorf("Job creates = %d, want 2 (the first and its replacement)", n)
	}
}

func TestNoTargetNodeFails(t *testing.T) {
	f := newRemovalFixture(t, 1, nil)
	f.SyncRemoval()
	if a := f.Annotations(); cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StateFailed || !strings.Contains(a[cleanup.MessageAnnotation], "harvesterhci.io/managed=true") {
		t.Errorf("annotations = %v, want Failed naming the selector", a)
	}
}

func TestJobEventsEnqueueTheUpgrade(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.SyncRemoval()
	f.WaitFor("the Job's add event", func() bool { return f.Controller.QueueLen() > 0 })
	for f.Controller.QueueLen() > 0 {
		f.Controller.TakeNextKey()
	}
	f.FinishJob("node-a", true, nodeResult)
	f.WaitFor("the Job's update to enqueue the upgrade", func() bool { return f.Controller.QueueLen() > 0 })
	if key, _ := f.Controller.TakeNextKey(); key != testKey {
		t.Errorf("queued %v, want %v", key, testKey)
	}
}

func TestRemovalNeedsItsInformersAndImage(t *testing.T) {
	o := cleanup.DefaultRemovalOptions()
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--remover-image") {
		t.Errorf("Validate without an image = %v", err)
	}
	o.RemoverImage = "x"
	o.SuccessRatio = 0
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--success-ratio") {
		t.Errorf("Validate with ratio 0 = %v", err)
	}
}

// A removal that failed on the nodes is not re-armed by the repo going away
// (Harvester deletes it, or it restarts): only a person re-arms it.
func TestRemovalFailureIsNotRearmedByTheRepo(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.SyncRemoval()
	f.FinishJob("node-a", false, report.Result{})
	f.SyncRemoval()
	if f.State() != cleanup.StateFailed {
		t.Fatalf("state = %s, want Failed", f.State())
	}
	f.SetRepoReady(false)
	f.SyncRemoval()
	if got := f.State(); got != cleanup.StateFailed {
		t.Errorf("state = %s after the repo went away, want still Failed", got)
	}
	if n := f.Creates("jobs"); n != 1 {
		t.Errorf("Job creates = %d, want 1", n)
	}
}

// Removing the state annotation re-arms a cleanup whose plan is written even
// when the repo is gone: the plan stands, no repo is needed.
func TestRearmedByHandWithThePlanAndNoRepo(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.SetRepoReady(false)
	f.UpdateUpgrade(func(u *unstructured.Unstructured) {
		u.SetAnnotations(nil) // kubectl annotate ... image-cleanup-state-
	})
	f.SyncRemoval()
	if got := f.State(); got != cleanup.StatePlanned {
		t.Fatalf("state = %s, want Planned from the written plan", got)
	}
	f.WantNoFetch()
}

// A remover that exits 1 or 2, or an older one that wrote plain text, is
// shown in its node's line as it said it (escaped), not as a parse error.
func TestFailedNodeShowsWhatTheRemoverSaid(t *testing.T) {
	tests := []struct {
		name    string
		message string
		want    string
	}{
		{name: "result with an error", message: `{"removed":0,"failed":0,"bytesReclaimed":0,"error":"connect to the runtime at unix:///run/cri/cri.sock: connection refused"}`, want: "remover: connect to the runtime at unix:///run/cri/cri.sock: connection refused"},
		{name: "plain text", message: "read plan /etc/image-cleanup/images.txt: line 3: \x1b[31mbad\n", want: `remover: read plan /etc/image-cleanup/images.txt: line 3: \x1b[31mbad`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRemovalFixture(t, 1, []string{"node-a"})
			f.SyncRemoval()
			f.FinishJobWithMessage("node-a", false, tt.message)
			f.SyncRemoval()
			s := f.Summary()
			if len(s.Nodes) != 1 {
				t.Fatalf("summary %+v", s)
			}
			msg := s.Nodes[0].Message
			if !strings.Contains(msg, tt.want) || strings.Contains(msg, "parse remover result") {
				t.Errorf("node message %q, want it to contain %q", msg, tt.want)
			}
			if strings.ContainsAny(f.Annotations()[cleanup.SummaryAnnotation], "\x1b") {
				t.Error("a control byte reached the annotation")
			}
		})
	}
}
