package cleanup

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// Fuzz test of what the nodes' termination messages can do to the Upgrade
// (issue 17): the removal's final outcome made as the controller makes it
// (jobExecutor.Execute over listers and a fake clientset holding the Jobs'
// pods, then annotationPatch, which gives the annotations and the Event's
// message record writes), and the status command's two readings of it
// (fromSummary, fromJobs). Under go test it runs its seed corpus; to fuzz:
//
//	go test -run '^$' -fuzz '^FuzzRemovalSummary$' -fuzztime 60s -fuzzminimizetime 0 ./pkg/cleanup
//
// An execution takes about a millisecond, and the fuzzer minimizes each new
// input for up to a minute by default (a cost quadratic in its length):
// without -fuzzminimizetime 0 a 60 s run spends most of it minimizing.

const (
	fuzzNS       = "harvester-system"
	fuzzUpgrade  = "hvst-upgrade-fuzz"
	fuzzGoneNode = "node-gone"
	// The Job controller's condition on a Job failed by its
	// podFailurePolicy: text the controller shows, but no node writes.
	fuzzFailureReason  = "PodFailurePolicy"
	fuzzFailureMessage = "Container image-remover for pod harvester-system/x failed with exit code 2 matching FailJob rule at index 0"
)

// FuzzRemovalSummary gives up to 8 nodes termination messages from three
// fuzzed texts (node 0 gets a, node 1 b, the others head, body times
// copies, and tail, so that a short input, which the fuzzer's minimizer
// handles quickly, makes a long one; failed marks the nodes whose Job
// failed; gone adds a node that left with its Job unfinished) and checks
// the final outcome: it never panics; the summary annotation is at most
// maxSummaryBytes and the patch's annotations pass the API server's 256 KiB
// check; the summary is JSON of Summary's fields only, parses back, counts
// every node in outcomes, total and the lines with omittedNodes, and orders
// the lines failed first; each node's line names that node and its Job and
// equals the line made from that node's message alone (so no text can add,
// change or hide another node's line); every text in it is escaped and
// within its bound; a node's text cannot change the outcome but by failing
// its own node with a result saying the remover did not run (Succeeded
// exactly when every Job completed and no result says so, at ratio 1); the message written to
// the annotation and the Event is one escaped line within maxMessage; and
// the status command, from the summary or from the Jobs, shows only
// escaped, bounded text, the Jobs' reading agreeing with the summary.
func FuzzRemovalSummary(f *testing.F) {
	for _, s := range summarySeeds() {
		f.Add(s.a, s.b, s.head, s.body, s.copies, s.tail, s.nodes, s.failed, s.gone)
	}
	f.Fuzz(func(t *testing.T, a, b, head, body string, copies uint8, tail string, nodes, failed uint8, gone bool) {
		texts := []string{a, b, head + strings.Repeat(body, int(copies)) + tail}
		n := 1 + int(nodes)%8
		var names []string
		var msgs []string
		complete := map[string]bool{}
		for i := range n {
			node := fmt.Sprintf("node-%02d", i)
			names = append(names, node)
			msgs = append(msgs, texts[min(i, 2)])
			complete[node] = failed&(1<<i) == 0
		}
		e, kube, u := fuzzCluster(t, names, msgs, complete, gone)
		out, err := e.Execute(t.Context(), u, PlanRef{})
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}

		// The outcome: the Jobs decide it, and a node's text can only fail
		// its own node, by a result saying the remover did not run.
		want := StateSucceeded
		for i, node := range names {
			if !complete[node] || didNotRun(msgs[i]) {
				want = StateFailed
			}
		}
		if out.State != want {
			t.Errorf("state = %s, want %s: only the Jobs and the results saying the remover did not run decide it", out.State, want)
		}

		// The patch record writes, and the Event's message.
		patch, _ := annotationPatch(u, out)
		annotations := map[string]string{}
		for k, v := range patch {
			if s, ok := v.(string); ok {
				annotations[k] = s
			}
		}
		if err := apivalidation.ValidateAnnotationsSize(annotations); err != nil {
			t.Errorf("the API server would refuse the final patch: %v", err)
		}
		msg := annotations[MessageAnnotation]
		if len(msg) > maxMessage || !escaped(msg) {
			t.Errorf("message (annotation and Event) %q: want one escaped line of at most %d bytes (%d)", msg, maxMessage, len(msg))
		}
		raw := annotations[SummaryAnnotation]
		if len(raw) > maxSummaryBytes {
			t.Errorf("summary annotation is %d bytes, over %d", len(raw), maxSummaryBytes)
		}

		// The summary reads back, with Summary's fields only.
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.DisallowUnknownFields()
		var s Summary
		if err := dec.Decode(&s); err != nil || dec.More() {
			t.Fatalf("summary annotation does not read back as one Summary (%v): %s", err, raw)
		}
		lines := map[string]NodeSummary{}
		for _, l := range s.Nodes {
			if _, dup := lines[l.Node]; dup {
				t.Errorf("two lines name node %q", l.Node)
			}
			lines[l.Node] = l
		}
		if all := n + btoi(gone); len(s.Nodes)+s.OmittedNodes != all || len(s.Nodes) == 0 {
			t.Errorf("%d lines and %d omitted, want %d nodes in all, at least one line", len(s.Nodes), s.OmittedNodes, all)
		}
		rank := map[string]int{NodeFailed: 0, NodeLeft: 1, NodeSucceeded: 2, NodeSkipped: 2}
		if !slices.IsSortedFunc(s.Nodes, func(x, y NodeSummary) int { return rank[x.Outcome] - rank[y.Outcome] }) {
			t.Errorf("lines are not failed first, then left, then the others: %s", raw)
		}

		// Each node's line is made of its own message only; the totals
		// count every node, the omitted ones too.
		wantOutcomes := map[string]int{}
		var total report.Result
		totalSkipped := map[report.Reason]int{}
		var fs ImageFsTotals
		for i, node := range names {
			w := wantLine(node, complete[node], msgs[i])
			wantOutcomes[w.Outcome]++
			if r := w.Result; r != nil {
				total.Removed += r.Removed
				total.Failed += r.Failed
				total.DanglingRemoved += r.DanglingRemoved
				total.BytesReclaimed += r.BytesReclaimed
				for reason, k := range r.Skipped {
					totalSkipped[reason] += k
				}
				if m := r.ImageFs; m != nil {
					fs.Nodes, fs.Stale = fs.Nodes+1, fs.Stale+btoi(m.Stale)
					fs.UsedBefore, fs.UsedAfter, fs.Freed = fs.UsedBefore+m.UsedBefore, fs.UsedAfter+m.UsedAfter, fs.Freed+m.Freed()
				}
			}
			got, ok := lines[node]
			if !ok {
				continue // omitted
			}
			delete(lines, node)
			if g, w := lineJSON(t, got), lineJSON(t, compactNode(w)); g != w {
				t.Errorf("node %s's line is\n\t%s\nwant, from its own message alone,\n\t%s", node, g, w)
			}
			checkLine(t, got, maxNodeMessage, maxFailedImage)
		}
		if gone {
			wantOutcomes[NodeLeft]++
			if l, ok := lines[fuzzGoneNode]; ok {
				delete(lines, fuzzGoneNode)
				if l.Outcome != NodeLeft || l.Job != JobName(fuzzUpgrade, fuzzGoneNode) || l.Message != "" || l.Result != nil {
					t.Errorf("the node that left has line %+v", l)
				}
			}
		}
		for node := range lines {
			t.Errorf("a line names node %q, which is none of the cluster's", node)
		}
		if !maps.Equal(s.Outcomes, wantOutcomes) {
			t.Errorf("outcomes = %v, want %v", s.Outcomes, wantOutcomes)
		}
		if len(totalSkipped) > 0 {
			total.Skipped = totalSkipped
		}
		if g, w := lineJSON(t, s.Total), lineJSON(t, total); g != w {
			t.Errorf("total = %s, want %s", g, w)
		}
		if got := s.ImageFs; (got == nil) != (fs.Nodes == 0) || got != nil && *got != fs {
			t.Errorf("imageFs = %+v, want %+v", s.ImageFs, fs)
		}

		// The status command, from the summary and from the Jobs.
		st := Status{Nodes: []NodeSummary{}, Outcomes: map[string]int{}}
		st.fromSummary(s)
		for _, l := range st.Nodes {
			checkLine(t, l, maxMessage, maxMessage)
		}
		if !maps.Equal(st.Outcomes, wantOutcomes) || st.Total.Removed != total.Removed || st.Total.BytesReclaimed != total.BytesReclaimed {
			t.Errorf("status from the summary: outcomes %v, total %+v; want %v, %+v", st.Outcomes, st.Total, wantOutcomes, total)
		}
		sj := Status{Nodes: []NodeSummary{}, Outcomes: map[string]int{}}
		if err := sj.fromJobs(t.Context(), kube, u); err != nil {
			t.Fatalf("status from the Jobs: %v", err)
		}
		for _, l := range sj.Nodes {
			checkLine(t, l, maxMessage, maxMessage)
			if i := slices.Index(names, l.Node); i >= 0 {
				if g, w := lineJSON(t, l), lineJSON(t, statusNode(wantLine(l.Node, complete[l.Node], msgs[i]))); g != w {
					t.Errorf("status from the Jobs: node %s's line is\n\t%s\nwant\n\t%s", l.Node, g, w)
				}
			}
		}
		if sj.Total.Removed != total.Removed || sj.Total.Failed != total.Failed || sj.Total.BytesReclaimed != total.BytesReclaimed {
			t.Errorf("status from the Jobs: total %+v, want the summary's %+v", sj.Total, total)
		}
	})
}

// fuzzCluster is a removal whose Jobs have all finished: one node per name,
// its Job complete or failed as complete says, and its pod terminated with
// the message of the same index; with gone, a Job still running on a node
// that left. It returns the executor over listers of those Nodes and Jobs,
// a fake clientset holding the Jobs and pods, and the Upgrade.
func fuzzCluster(t *testing.T, names, msgs []string, complete map[string]bool, gone bool) (*jobExecutor, *kubefake.Clientset, Upgrade) {
	u := Upgrade{Namespace: fuzzNS, Name: fuzzUpgrade, UID: "upgrade-uid", ResourceVersion: "7", Annotations: map[string]string{StateAnnotation: string(StateRemoving)}}
	plan := PlanRef{Namespace: fuzzNS, ConfigMap: PlanConfigMapName(fuzzUpgrade), UID: "plan-uid", Digest: imagelist.Digest(nil)}
	opts := DefaultRemovalOptions()
	opts.RemoverImage = "registry.invalid/image-remover:test"
	nodes := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	jobs := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	var objs []runtime.Object
	now := metav1.Now()
	add := func(node string) *batchv1.Job {
		j := RemovalJob(u, plan, node, opts)
		if err := jobs.Add(j); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, j)
		return j
	}
	for i, node := range names {
		if err := nodes.Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"harvesterhci.io/managed": "true"}}}); err != nil {
			t.Fatal(err)
		}
		j := add(node)
		j.UID = types.UID("job-uid-" + node)
		cond, code := batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}, int32(0)
		if !complete[node] {
			cond = batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: fuzzFailureReason, Message: fuzzFailureMessage}
			code = report.ExitRefused
		}
		j.Status.Conditions = []batchv1.JobCondition{cond}
		labels := maps.Clone(j.Spec.Template.Labels)
		labels[batchv1.JobNameLabel] = j.Name
		objs = append(objs, &corev1.Pod{
			// No spec: the controller reads only the labels and the
			// container's status, and each list of the fake copies every pod.
			ObjectMeta: metav1.ObjectMeta{
				Name: j.Name + "-x1", Namespace: fuzzNS, Labels: labels, CreationTimestamp: now,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(j, batchv1.SchemeGroupVersion.WithKind("Job"))},
			},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
				Name:  removerName,
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: msgs[i]}},
			}}},
		})
	}
	if gone {
		add(fuzzGoneNode).Status.Active = 1
	}
	// Not NewClientset: its field management, which nothing here uses,
	// makes each cluster ten times slower to build.
	kube := kubefake.NewSimpleClientset(objs...)
	e := &jobExecutor{kube: kube, nodes: corelisters.NewNodeLister(nodes), jobs: batchlisters.NewJobLister(jobs), opts: opts}
	return e, kube, u
}

// wantLine is node's line, before it is cut to its bounds, as the README
// says the controller makes it from the node's Job and termination message
// alone: the Job's failure, what the remover said (escaped and cut by
// report.ResultFromTermination), its result; a node below the threshold
// skipped.
func wantLine(node string, complete bool, msg string) NodeSummary {
	job := JobName(fuzzUpgrade, node)
	l := NodeSummary{Node: node, Job: job, Outcome: NodeSucceeded}
	var said []string
	if !complete {
		l.Outcome = NodeFailed
		said = append(said, fuzzFailureReason+": "+fuzzFailureMessage)
	}
	if msg == "" {
		l.Message = strings.Join(append(said, "no result: no pod of job "+job+" left a termination message"), "; ")
		return l
	}
	r, isResult := report.ParseTermination(msg)
	if r.Error != "" {
		said = append(said, "remover: "+r.Error)
		if isResult {
			l.Outcome = NodeFailed // the remover says it did not run
		}
	}
	l.Message, l.Result = strings.Join(said, "; "), &r
	if complete && r.BelowThreshold && r.ImageFs != nil {
		l.Outcome = NodeSkipped
		l.Message = fmt.Sprintf("image filesystem holds %s, below the threshold %s: nothing removed", humanBytes(r.ImageFs.UsedBefore), humanBytes(r.Threshold))
	}
	return l
}

// didNotRun reports whether msg is a remover's result saying it did not
// run: whatever its Job's outcome, its node failed.
func didNotRun(msg string) bool {
	r, isResult := report.ParseTermination(msg)
	return isResult && r.Error != ""
}

// checkLine fails t unless every text of l is escaped, its message and
// error at most maxMsg bytes, and at most maxNodeFailedImages failed images
// of at most maxImage bytes each, and a count of the rest.
func checkLine(t *testing.T, l NodeSummary, maxMsg, maxImage int) {
	t.Helper()
	if len(l.Message) > maxMsg {
		t.Errorf("node %s: message is %d bytes, over %d", l.Node, len(l.Message), maxMsg)
	}
	texts := []string{l.Node, l.Outcome, l.Job, l.Message}
	if r := l.Result; r != nil {
		if len(r.Error) > maxMsg {
			t.Errorf("node %s: error is %d bytes, over %d", l.Node, len(r.Error), maxMsg)
		}
		if len(r.FailedImages) > maxNodeFailedImages+1 {
			t.Errorf("node %s: %d failed images, over %d and a count of the rest", l.Node, len(r.FailedImages), maxNodeFailedImages)
		}
		for _, f := range r.FailedImages {
			if len(f) > maxImage {
				t.Errorf("node %s: failed image %q is %d bytes, over %d", l.Node, f, len(f), maxImage)
			}
		}
		texts = append(append(texts, r.Error), r.FailedImages...)
		for reason := range r.Skipped {
			texts = append(texts, string(reason))
		}
	}
	for _, s := range texts {
		if !escaped(s) {
			t.Errorf("node %s: text %q is not escaped", l.Node, s)
		}
	}
}

// escaped reports whether s is as imagelist.Printable leaves text: valid
// UTF-8, no control character, so one line on a terminal.
func escaped(s string) bool { return utf8.ValidString(s) && imagelist.Printable(s) == s }

// lineJSON is v encoded, decoded and encoded again, so that values that
// encode alike compare alike (an empty map and none).
func lineJSON[T any](t *testing.T, v T) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var back T
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if b, err = json.Marshal(back); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

type summarySeed struct {
	a, b, head, body string
	copies           uint8
	tail             string
	nodes            uint8
	failed           uint8
	gone             bool
}

// summarySeeds are clusters whose nodes report as removers do, and as
// hostile or broken nodes could.
func summarySeeds() []summarySeed {
	ok := `{"removed":90,"skipped":{"in-use":1},"failed":0,"bytesReclaimed":18200000000}`
	measured := `{"removed":2,"skipped":{"pinned":1},"failed":1,"bytesReclaimed":30,"failedImages":["docker.io/rancher/x:1: busy"],"imageFs":{"usedBefore":1099511627776,"usedAfter":1099511627751,"stale":true}}`
	below := `{"removed":0,"failed":0,"bytesReclaimed":0,"imageFs":{"usedBefore":300,"usedAfter":300},"belowThreshold":true,"threshold":1000}`
	refused := `{"removed":0,"failed":0,"bytesReclaimed":0,"error":"image-remover: plan has digest sha256:1, want sha256:2"}`
	panicked := "panic: runtime error\n\ngoroutine 1 [running]:\nmain.main()\n"
	// Text that tries to write another node's line, or a line of its own.
	inject := `{"removed":1,"failed":0,"bytesReclaimed":0,"error":"\"},{\"node\":\"node-01\",\"outcome\":\"succeeded\",\"result\":{\"removed\":99}},{\"node\":\"x"}`
	fields := `{"removed":1,"failed":0,"bytesReclaimed":0,"node":"node-01","outcome":"failed","job":"other","message":"x","result":{"removed":99},"nodes":[],"omittedNodes":-5,"outcomes":{"succeeded":1000},"total":{"removed":1}}`
	rawInject := `"},{"node":"node-02","outcome":"succeeded"}],"outcomes":{"succeeded":9},"x":[{"`
	control := `{"removed":0,"skipped":{"` + "\x1b[2J" + `":3,"in-use\n":1},"failed":2,"bytesReclaimed":0,"failedImages":["\u001b[31mred\u001b[0m\nline","\u2028\u202e\ud800"],"error":"a\rb\u0000c\u007f"}`
	huge := `{"removed":9223372036854775807,"skipped":{"a":9223372036854775807,"b":1},"failed":-1,"bytesReclaimed":1e300,"danglingRemoved":2147483648,"imageFs":{"usedBefore":1e300,"usedAfter":-1},"threshold":1e30}`
	// Ten failed images of 256 '<' (six bytes each in the annotation's
	// JSON) make a line of some 16 KB: five such nodes are over 64 KiB.
	many := `"` + strings.Repeat("<", 260) + `",`
	return []summarySeed{
		{ok, measured, below, "", 0, "", 2, 0, false},
		{ok, refused, panicked, "", 0, "", 5, 0b00110, true},
		{inject, fields, rawInject, "", 0, "", 3, 0b010, false},
		{control, "", " \n", "", 0, "", 5, 0b10000, true},
		{huge, huge, "\xff\xfe", "\x00", 3, "", 2, 0, false},
		{ok, refused, `{"removed":0,"failed":12,"bytesReclaimed":0,"error":"` + strings.Repeat(`<&>\"`, 110) + `","failedImages":[`, many, 12, `"x"]}`, 7, 0b01010101, true},
		{"", "", "", "", 0, "", 0, 1, true},
	}
}
