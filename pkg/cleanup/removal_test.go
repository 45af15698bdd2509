package cleanup

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
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
		name := JobName(tt.upgrade, tt.node)
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			t.Errorf("JobName(%q, %q) = %q: %v", tt.upgrade, tt.node, name, errs)
		}
		if seen[name] {
			t.Errorf("JobName(%q, %q) = %q repeats another node's name", tt.upgrade, tt.node, name)
		}
		seen[name] = true
		if again := JobName(tt.upgrade, tt.node); again != name {
			t.Errorf("JobName is not deterministic: %q then %q", name, again)
		}
	}
}

func TestRemovalJobSpec(t *testing.T) {
	u := Upgrade{Namespace: testNS, Name: testUpgrade, UID: testUID}
	plan := PlanRef{Namespace: testNS, ConfigMap: PlanConfigMapName(testUpgrade), UID: "cm-uid", Digest: "sha256:" + strings.Repeat("ab", 32)}
	o := DefaultRemovalOptions()
	o.RemoverImage = "registry.example/image-remover:v1"
	j := removalJob(u, plan, "harvester-node-0", o)

	if j.Name != JobName(testUpgrade, "harvester-node-0") || j.Namespace != testNS {
		t.Errorf("job %s/%s", j.Namespace, j.Name)
	}
	wantLabels := map[string]string{informers.UpgradeLabel: testUpgrade, informers.UpgradeComponentLabel: "image-cleanup"}
	for k, v := range wantLabels {
		if j.Labels[k] != v || j.Spec.Template.Labels[k] != v {
			t.Errorf("label %s: job %q, pod %q, want %q", k, j.Labels[k], j.Spec.Template.Labels[k], v)
		}
	}
	if len(j.OwnerReferences) != 1 || j.OwnerReferences[0].UID != "cm-uid" || j.OwnerReferences[0].Kind != "ConfigMap" {
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
	if c.Image != o.RemoverImage || c.Name != "image-remover" {
		t.Errorf("container %s image %s", c.Name, c.Image)
	}
	wantArgs := []string{
		"--plan=/etc/image-cleanup/images.txt",
		"--keep=/etc/image-cleanup/keep.txt",
		"--plan-digest=" + plan.Digest,
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

func finishedJob(node string, complete bool) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: JobName(testUpgrade, node)}}
	j.Spec.Template.Spec.NodeName = node
	t := batchv1.JobFailed
	if complete {
		t = batchv1.JobComplete
	}
	j.Status.Conditions = []batchv1.JobCondition{{Type: t, Status: corev1.ConditionTrue}}
	return j
}

func runningJob(node string) *batchv1.Job {
	j := finishedJob(node, true)
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue}}
	return j
}

func TestAssessRemoval(t *testing.T) {
	tests := []struct {
		name                   string
		nodes                  []string
		jobs                   []*batchv1.Job
		missing, running, left []string
		finished, targetted    int
	}{
		{name: "fresh", nodes: []string{"b", "a"}, missing: []string{"a", "b"}, targetted: 2},
		{name: "running and done", nodes: []string{"a", "b"}, jobs: []*batchv1.Job{runningJob("a"), finishedJob("b", false)},
			running: []string{"a"}, finished: 1, targetted: 2},
		{name: "node joined", nodes: []string{"a", "b", "c"}, jobs: []*batchv1.Job{finishedJob("a", true), runningJob("b")},
			missing: []string{"c"}, running: []string{"b"}, finished: 1, targetted: 3},
		{name: "node left before its job finished", nodes: []string{"a"}, jobs: []*batchv1.Job{finishedJob("a", true), runningJob("b")},
			left: []string{"b"}, finished: 1, targetted: 1},
		{name: "node left after its job finished", nodes: []string{"a"}, jobs: []*batchv1.Job{finishedJob("a", true), finishedJob("b", true)},
			finished: 2, targetted: 2},
		{name: "no nodes", targetted: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := assessRemoval(tt.nodes, tt.jobs)
			if !slices.Equal(p.missing, tt.missing) || !slices.Equal(p.running, tt.running) || !slices.Equal(p.left, tt.left) ||
				len(p.finished) != tt.finished || p.targetted != tt.targetted {
				t.Errorf("got missing %v running %v left %v finished %d targetted %d", p.missing, p.running, p.left, len(p.finished), p.targetted)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	ok := &remover.Result{Removed: 10, BytesReclaimed: 2e9, Skipped: map[remover.Reason]int{remover.ReasonInUse: 1}}
	tests := []struct {
		name      string
		nodes     []NodeSummary
		ratio     float64
		want      State
		wantInMsg string
	}{
		{name: "all succeed", ratio: 1, want: StateSucceeded, wantInMsg: "2 of 2 nodes succeeded",
			nodes: []NodeSummary{{Node: "a", Outcome: NodeSucceeded, Result: ok}, {Node: "b", Outcome: NodeSucceeded, Result: ok}}},
		{name: "one fails under ratio 1", ratio: 1, want: StateFailed, wantInMsg: "1 of 2 nodes succeeded (need 100%)",
			nodes: []NodeSummary{{Node: "a", Outcome: NodeSucceeded, Result: ok}, {Node: "b", Outcome: NodeFailed, Message: "BackoffLimitExceeded"}}},
		{name: "one fails under ratio 0.5", ratio: 0.5, want: StateSucceeded,
			nodes: []NodeSummary{{Node: "a", Outcome: NodeSucceeded, Result: ok}, {Node: "b", Outcome: NodeFailed}}},
		{name: "two of three under ratio 0.66", ratio: 0.66, want: StateSucceeded,
			nodes: []NodeSummary{{Node: "a", Outcome: NodeSucceeded}, {Node: "b", Outcome: NodeSucceeded}, {Node: "c", Outcome: NodeFailed}}},
		{name: "two of three under ratio 0.67", ratio: 0.67, want: StateFailed,
			nodes: []NodeSummary{{Node: "a", Outcome: NodeSucceeded}, {Node: "b", Outcome: NodeSucceeded}, {Node: "c", Outcome: NodeFailed}}},
		{name: "a node that left does not count", ratio: 1, want: StateSucceeded, wantInMsg: "1 of 1 nodes",
			nodes: []NodeSummary{{Node: "a", Outcome: NodeSucceeded, Result: ok}, {Node: "b", Outcome: NodeLeft}}},
		{name: "only nodes that left", ratio: 1, want: StateFailed,
			nodes: []NodeSummary{{Node: "b", Outcome: NodeLeft}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := summarize(Summary{Nodes: tt.nodes}, tt.ratio)
			if err != nil {
				t.Fatal(err)
			}
			if out.State != tt.want || !strings.Contains(out.Message, tt.wantInMsg) {
				t.Errorf("got %s %q, want %s containing %q", out.State, out.Message, tt.want, tt.wantInMsg)
			}
			if done := out.Annotations[HarvesterDoneAnnotation]; (done == "true") != (tt.want == StateSucceeded) {
				t.Errorf("Harvester's annotation = %q with state %s", done, out.State)
			}
			var s Summary
			if err := json.Unmarshal([]byte(out.Annotations[SummaryAnnotation]), &s); err != nil || len(s.Nodes) != len(tt.nodes) {
				t.Errorf("summary annotation %q: %v", out.Annotations[SummaryAnnotation], err)
			}
		})
	}
}

// removalFixture is a Planned upgrade with its plan written and nodes.
func newRemovalFixture(t *testing.T, ratio float64, nodes []string, extra ...any) *fixture {
	t.Helper()
	u, cm := plannedUpgrade(t, nil)
	objs := []runtime.Object{testSlice(true), cm}
	for _, n := range nodes {
		objs = append(objs, testNode(n))
	}
	opts := []fixtureOption{func(c *Config) {
		o := DefaultRemovalOptions()
		o.RemoverImage = "registry.example/image-remover:v1"
		o.SuccessRatio = ratio
		c.Removal = &o
	}}
	// extra holds Jobs an earlier run left, and fixture options.
	for _, e := range extra {
		switch e := e.(type) {
		case *batchv1.Job:
			objs = append(objs, e)
		case fixtureOption:
			opts = append(opts, e)
		default:
			t.Fatalf("newRemovalFixture: unexpected %T", e)
		}
	}
	return newFixture(t, u, objs, opts...)
}

func testNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"harvesterhci.io/managed": "true"}}}
}

// jobsByNode lists the removal Jobs through the API, by node.
func (f *fixture) jobsByNode() map[string]*batchv1.Job {
	f.t.Helper()
	list, err := f.kube.BatchV1().Jobs(testNS).List(f.ctx, metav1.ListOptions{LabelSelector: RemovalSelector().String()})
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]*batchv1.Job{}
	for i := range list.Items {
		j := &list.Items[i]
		if _, dup := out[j.Spec.Template.Spec.NodeName]; dup {
			f.t.Fatalf("two Jobs for node %s", j.Spec.Template.Spec.NodeName)
		}
		out[j.Spec.Template.Spec.NodeName] = j
	}
	return out
}

// syncRemoval waits until the Job and Node caches hold what the API holds,
// then syncs.
func (f *fixture) syncRemoval() {
	f.t.Helper()
	f.waitFor("Job and Node caches", func() bool {
		jobs, _ := f.kube.BatchV1().Jobs(testNS).List(f.ctx, metav1.ListOptions{})
		nodes, _ := f.kube.CoreV1().Nodes().List(f.ctx, metav1.ListOptions{})
		if len(f.jobs.GetStore().List()) != len(jobs.Items) || len(f.nodes.GetStore().List()) != len(nodes.Items) {
			return false
		}
		for i := range jobs.Items {
			obj, ok, _ := f.jobs.GetStore().Get(&jobs.Items[i])
			if !ok || len(obj.(*batchv1.Job).Status.Conditions) != len(jobs.Items[i].Status.Conditions) {
				return false
			}
		}
		return true
	})
	if err := f.syncNow(); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
}

// finishJob plays the Job controller and kubelet: a pod with the remover's
// termination message, then the Job's final condition.
func (f *fixture) finishJob(node string, complete bool, r remover.Result) {
	f.t.Helper()
	msg, err := r.TerminationMessage()
	if err != nil {
		f.t.Fatal(err)
	}
	f.finishJobWithMessage(node, complete, string(msg))
}

// finishJobWithMessage is finishJob with the termination message as the
// remover (or anything in its place) wrote it.
func (f *fixture) finishJobWithMessage(node string, complete bool, msg string) {
	f.t.Helper()
	j := f.jobsByNode()[node]
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-abcde", Namespace: testNS, Labels: map[string]string{batchv1.JobNameLabel: j.Name}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name:  "image-remover",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: msg}},
		}}},
	}
	if _, err := f.kube.CoreV1().Pods(testNS).Create(f.ctx, pod, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	cond := batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}
	if !complete {
		cond = batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}
	}
	j.Status.Conditions = append(j.Status.Conditions, cond)
	if _, err := f.kube.BatchV1().Jobs(testNS).UpdateStatus(f.ctx, j, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) summary() Summary {
	f.t.Helper()
	var s Summary
	if err := json.Unmarshal([]byte(f.annotations()[SummaryAnnotation]), &s); err != nil {
		f.t.Fatalf("summary annotation: %v", err)
	}
	return s
}

func (f *fixture) jobCreates() int {
	n := 0
	for _, a := range f.kube.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "jobs" {
			n++
		}
	}
	return n
}

var nodeResult = remover.Result{Removed: 2, BytesReclaimed: 3e8, Skipped: map[remover.Reason]int{remover.ReasonInUse: 1}}

func TestTwoNodesSucceed(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a", "node-b"})
	f.syncRemoval()
	jobs := f.jobsByNode()
	if len(jobs) != 2 || jobs["node-a"] == nil || jobs["node-b"] == nil {
		t.Fatalf("jobs by node = %v, want one on node-a and one on node-b", slices.Collect(maps.Keys(jobs)))
	}
	if f.state() != StateRemoving {
		t.Fatalf("state = %s, want Removing while Jobs run", f.state())
	}
	// Another sync while they run creates nothing more.
	f.syncRemoval()
	if n := f.jobCreates(); n != 2 {
		t.Errorf("Job creates = %d, want 2", n)
	}
	f.finishJob("node-a", true, nodeResult)
	f.syncRemoval()
	if f.state() != StateRemoving {
		t.Fatalf("state = %s with one node still running", f.state())
	}
	f.finishJob("node-b", true, nodeResult)
	f.syncRemoval()
	a := f.annotations()
	if State(a[StateAnnotation]) != StateSucceeded || a[HarvesterDoneAnnotation] != "true" {
		t.Fatalf("annotations = %v, want Succeeded and Harvester's annotation", a)
	}
	s := f.summary()
	if len(s.Nodes) != 2 || s.Total.Removed != 4 || s.Total.Skipped[remover.ReasonInUse] != 2 || s.Total.BytesReclaimed != 6e8 {
		t.Errorf("summary = %+v", s)
	}
	for _, n := range s.Nodes {
		if n.Outcome != NodeSucceeded || n.Result == nil || n.Result.Removed != 2 {
			t.Errorf("node %s: %+v", n.Node, n)
		}
	}
	if !strings.Contains(a[MessageAnnotation], "removed 4 images") || !strings.Contains(a[MessageAnnotation], "in-use 2") {
		t.Errorf("message %q does not say what was removed and skipped", a[MessageAnnotation])
	}
}

func TestOneNodeFails(t *testing.T) {
	for _, tt := range []struct {
		ratio float64
		want  State
	}{{1, StateFailed}, {0.5, StateSucceeded}} {
		t.Run(fmt.Sprint(tt.ratio), func(t *testing.T) {
			f := newRemovalFixture(t, tt.ratio, []string{"node-a", "node-b"})
			f.syncRemoval()
			f.finishJob("node-a", true, nodeResult)
			f.finishJob("node-b", false, remover.Result{})
			f.syncRemoval()
			a := f.annotations()
			if State(a[StateAnnotation]) != tt.want {
				t.Fatalf("state = %s, want %s: %s", a[StateAnnotation], tt.want, a[MessageAnnotation])
			}
			if (a[HarvesterDoneAnnotation] == "true") != (tt.want == StateSucceeded) {
				t.Errorf("Harvester's annotation = %q", a[HarvesterDoneAnnotation])
			}
			for _, n := range f.summary().Nodes {
				if n.Node == "node-b" && (n.Outcome != NodeFailed || !strings.Contains(n.Message, "BackoffLimitExceeded")) {
					t.Errorf("node-b = %+v, want failed with the Job's reason", n)
				}
			}
		})
	}
}

func TestNodeJoinsMidRun(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.syncRemoval()
	if _, err := f.kube.CoreV1().Nodes().Create(f.ctx, testNode("node-c"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.finishJob("node-a", true, nodeResult)
	f.syncRemoval()
	if f.state() != StateRemoving || f.jobsByNode()["node-c"] == nil {
		t.Fatalf("state %s, jobs %v: the new node must get a Job and be waited for", f.state(), slices.Collect(maps.Keys(f.jobsByNode())))
	}
	f.finishJob("node-c", true, nodeResult)
	f.syncRemoval()
	if f.state() != StateSucceeded || len(f.summary().Nodes) != 2 {
		t.Errorf("state %s, summary %+v", f.state(), f.summary())
	}
}

func TestNodeLeavesMidRun(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a", "node-b"})
	f.syncRemoval()
	if err := f.kube.CoreV1().Nodes().Delete(f.ctx, "node-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.finishJob("node-a", true, nodeResult)
	f.syncRemoval()
	if f.state() != StateSucceeded {
		t.Fatalf("state = %s: a node that left is not waited for", f.state())
	}
	var left bool
	for _, n := range f.summary().Nodes {
		left = left || (n.Node == "node-b" && n.Outcome == NodeLeft)
	}
	if !left {
		t.Errorf("summary %+v does not say node-b left", f.summary())
	}
}

func TestRestartMidRunDuplicatesNothing(t *testing.T) {
	// The Jobs an earlier run created: one finished, one running.
	done := removalJob(Upgrade{Namespace: testNS, Name: testUpgrade}, PlanRef{Namespace: testNS, ConfigMap: PlanConfigMapName(testUpgrade)}, "node-a", DefaultRemovalOptions())
	done.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	running := removalJob(Upgrade{Namespace: testNS, Name: testUpgrade}, PlanRef{Namespace: testNS, ConfigMap: PlanConfigMapName(testUpgrade)}, "node-b", DefaultRemovalOptions())
	f := newRemovalFixture(t, 1, []string{"node-a", "node-b"}, done, running)
	f.syncRemoval()
	if n := f.jobCreates(); n != 0 {
		t.Errorf("a restarted controller created %d Jobs, want none", n)
	}
	f.finishJob("node-b", true, nodeResult)
	f.syncRemoval()
	if f.state() != StateSucceeded {
		t.Errorf("state = %s, want Succeeded", f.state())
	}
	// node-a's pod is gone (TTL): its result is missing, its success stands.
	for _, n := range f.summary().Nodes {
		if n.Node == "node-a" && (n.Outcome != NodeSucceeded || !strings.Contains(n.Message, "no result")) {
			t.Errorf("node-a = %+v", n)
		}
	}
}

func TestJobDeletedByHandIsRecreated(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.syncRemoval()
	name := f.jobsByNode()["node-a"].Name
	if err := f.kube.BatchV1().Jobs(testNS).Delete(f.ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.syncRemoval()
	if j := f.jobsByNode()["node-a"]; j == nil || j.Name != name {
		t.Fatalf("jobs = %v, want %s again", f.jobsByNode(), name)
	}
	if n := f.jobCreates(); n != 2 {
		t.Errorf("Job creates = %d, want 2 (the first and its replacement)", n)
	}
}

func TestNoTargetNodeFails(t *testing.T) {
	f := newRemovalFixture(t, 1, nil)
	f.syncRemoval()
	if a := f.annotations(); State(a[StateAnnotation]) != StateFailed || !strings.Contains(a[MessageAnnotation], "harvesterhci.io/managed=true") {
		t.Errorf("annotations = %v, want Failed naming the selector", a)
	}
}

func TestJobEventsEnqueueTheUpgrade(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.syncRemoval()
	f.waitFor("the Job's add event", func() bool { return f.c.queue.Len() > 0 })
	for f.c.queue.Len() > 0 {
		key, _ := f.c.queue.Get()
		f.c.queue.Done(key)
		f.c.queue.Forget(key)
	}
	f.finishJob("node-a", true, nodeResult)
	f.waitFor("the Job's update to enqueue the upgrade", func() bool { return f.c.queue.Len() > 0 })
	key, _ := f.c.queue.Get()
	defer f.c.queue.Done(key)
	if key != testKey {
		t.Errorf("queued %v, want %v", key, testKey)
	}
}

func TestRemovalNeedsItsInformersAndImage(t *testing.T) {
	o := DefaultRemovalOptions()
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
	f.syncRemoval()
	f.finishJob("node-a", false, remover.Result{})
	f.syncRemoval()
	if f.state() != StateFailed {
		t.Fatalf("state = %s, want Failed", f.state())
	}
	f.setRepoReady(false)
	f.syncRemoval()
	if got := f.state(); got != StateFailed {
		t.Errorf("state = %s after the repo went away, want still Failed", got)
	}
	if n := f.jobCreates(); n != 1 {
		t.Errorf("Job creates = %d, want 1", n)
	}
}

// Removing the state annotation re-arms a cleanup whose plan is written even
// when the repo is gone: the plan stands, no repo is needed.
func TestRearmedByHandWithThePlanAndNoRepo(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.setRepoReady(false)
	u, err := f.dyn.Resource(informers.UpgradeGVR).Namespace(testNS).Get(f.ctx, testUpgrade, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u.SetAnnotations(nil) // kubectl annotate ... image-cleanup-state-
	if _, err := f.dyn.Resource(informers.UpgradeGVR).Namespace(testNS).Update(f.ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.syncRemoval()
	if got := f.state(); got != StatePlanned {
		t.Fatalf("state = %s, want Planned from the written plan", got)
	}
	f.wantNoFetch()
}

// The summary must fit the API's annotation limit at any node count: with
// 500 nodes, each failing on 200 long image names with a long message, the
// Upgrade's annotations still validate, the counts cover every node and the
// failed nodes come first.
func TestSummaryStaysBoundedAtFiveHundredNodes(t *testing.T) {
	var nodes []NodeSummary
	for i := range 500 {
		n := NodeSummary{Node: fmt.Sprintf("harvester-node-%03d-%s", i, strings.Repeat("n", 40)), Job: JobName(testUpgrade, fmt.Sprint(i)), Outcome: NodeSucceeded}
		r := &remover.Result{Removed: 1, Failed: 200, BytesReclaimed: 10}
		for j := range 200 {
			r.FailedImages = append(r.FailedImages, fmt.Sprintf("registry.example.com/%s/image-%d:v1: rpc error: code = DeadlineExceeded desc = %s", strings.Repeat("p", 100), j, strings.Repeat("e", 200)))
		}
		if i%5 == 0 {
			n.Outcome = NodeFailed
			n.Message = "BackoffLimitExceeded: " + strings.Repeat("m", 4000)
		}
		n.Result = r
		nodes = append(nodes, n)
	}
	out, err := summarize(Summary{Nodes: nodes}, 1)
	if err != nil {
		t.Fatal(err)
	}
	annotations := map[string]string{
		StateAnnotation:   string(out.State),
		MessageAnnotation: out.Message,
		// What Harvester itself keeps on an Upgrade, roughly.
		"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 8<<10),
	}
	maps.Copy(annotations, out.Annotations)
	if err := apivalidation.ValidateAnnotationsSize(annotations); err != nil {
		t.Fatalf("annotations too large for the API server: %v", err)
	}
	var s Summary
	if err := json.Unmarshal([]byte(out.Annotations[SummaryAnnotation]), &s); err != nil {
		t.Fatal(err)
	}
	if s.Outcomes[NodeFailed] != 100 || s.Outcomes[NodeSucceeded] != 400 {
		t.Errorf("outcomes = %v, want 100 failed and 400 succeeded", s.Outcomes)
	}
	if s.Total.Removed != 500 || s.Total.Failed != 100000 {
		t.Errorf("total = %+v, want every node counted", s.Total)
	}
	if len(s.Nodes) == 0 || len(s.Nodes)+s.OmittedNodes != 500 {
		t.Fatalf("%d node lines + %d omitted, want 500 in all", len(s.Nodes), s.OmittedNodes)
	}
	for i, n := range s.Nodes[:min(len(s.Nodes), 100)] {
		if n.Outcome != NodeFailed {
			t.Fatalf("line %d is %s: failed nodes come first", i, n.Outcome)
		}
		if len(n.Result.FailedImages) != maxNodeFailedImages+1 || !strings.Contains(n.Result.FailedImages[maxNodeFailedImages], "190 more") {
			t.Fatalf("node %s lists %d failed images, want %d and a count of the rest", n.Node, len(n.Result.FailedImages), maxNodeFailedImages)
		}
	}
	if !strings.Contains(out.Message, "400 of 500 nodes succeeded") {
		t.Errorf("message %q", out.Message)
	}
	if out.Summary.Total.Removed != 500 {
		t.Errorf("metrics would count %d removed, want 500", out.Summary.Total.Removed)
	}
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
			f.syncRemoval()
			f.finishJobWithMessage("node-a", false, tt.message)
			f.syncRemoval()
			s := f.summary()
			if len(s.Nodes) != 1 {
				t.Fatalf("summary %+v", s)
			}
			msg := s.Nodes[0].Message
			if !strings.Contains(msg, tt.want) || strings.Contains(msg, "parse remover result") {
				t.Errorf("node message %q, want it to contain %q", msg, tt.want)
			}
			if strings.ContainsAny(f.annotations()[SummaryAnnotation], "\x1b") {
				t.Error("a control byte reached the annotation")
			}
		})
	}
}
