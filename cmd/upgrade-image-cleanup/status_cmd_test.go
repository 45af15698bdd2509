package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest/fixture"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// The status tests' upgrade.
const (
	statusNS      = cleanuptest.Namespace
	statusUpgrade = "hvst-upgrade-status"
)

// The nodes' results in the status tests: one that removed (image
// filesystem measured), one that failed an image (measured, stale), one
// below the disk-pressure threshold.
var (
	statusResultRemoved = report.Result{
		Removed: 91, Skipped: map[report.Reason]int{report.ReasonInUse: 2, report.ReasonNotPresent: 5},
		BytesReclaimed: 1_200_000_000,
		ImageFs:        &report.ImageFs{UsedBefore: 12_000_000_000, UsedAfter: 10_900_000_000},
	}
	statusResultFailed = report.Result{
		Removed: 80, Failed: 1, BytesReclaimed: 900_000_000,
		FailedImages: []string{"docker.io/rancher/harvester:v1.4.2: rpc error: code = Unknown desc = image is locked"},
		ImageFs:      &report.ImageFs{UsedBefore: 11_000_000_000, UsedAfter: 10_500_000_000, Stale: true},
	}
	statusResultBelow = report.Result{
		BelowThreshold: true, Threshold: 50_000_000_000,
		ImageFs: &report.ImageFs{UsedBefore: 9_000_000_000, UsedAfter: 9_000_000_000},
	}
)

func terminationMessage(t *testing.T, r report.Result) string {
	t.Helper()
	b, err := r.TerminationMessage()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// plannedStatusUpgrade is the test Upgrade as the controller leaves it
// Planned, with its plan ConfigMap, then in state with annotations.
func plannedStatusUpgrade(t *testing.T, state cleanup.State, annotations map[string]string) (*unstructured.Unstructured, *corev1.ConfigMap) {
	t.Helper()
	u, cm := fixture.PlannedUpgrade(t, cleanuptest.Upgrade(statusUpgrade).Obj())
	a := u.GetAnnotations()
	a[cleanup.StateAnnotation] = string(state)
	maps.Copy(a, annotations)
	u.SetAnnotations(a)
	return u, cm
}

// finishedJob is the test upgrade's Job on node, finished with r, and its
// pod; r names the test upgrade's plan, as the remover names the plan it
// acted on, unless it says the remover did not run.
func finishedJob(t *testing.T, node string, complete bool, r report.Result) []runtime.Object {
	t.Helper()
	if r.Error == "" && r.PlanDigest == "" {
		_, cm := plannedStatusUpgrade(t, cleanup.StatePlanned, nil)
		r.PlanDigest = cm.Annotations[cleanup.PlanDigestAnnotation]
	}
	j, pod := cleanuptest.FinishedRemovalJob(statusUpgrade, node, complete, terminationMessage(t, r), metav1.Now())
	return []runtime.Object{j, pod}
}

// runningJob is the test upgrade's Job on node with a pod (active), or
// without one yet.
func runningJob(node string, active bool) *batchv1.Job {
	j := cleanuptest.RemovalJob(statusUpgrade, node)
	if active {
		j.Status.Active = 1
	}
	return j
}

func summaryAnnotation(t *testing.T, s cleanup.Summary) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type statusFixture struct {
	kube *kubefake.Clientset
	dyn  *dynamicfake.FakeDynamicClient
}

func newStatusFixture(objs ...runtime.Object) statusFixture {
	kube, dyn := cleanuptest.NewClients(objs...)
	return statusFixture{kube: kube, dyn: dyn}
}

// status runs the subcommand over the fake clients: its flags, then the
// reading and printing; a bad flag is exit code 2 as in runStatus.
func (fx statusFixture) status(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	f, err := parseStatusFlags(args, &errOut)
	if err != nil {
		return 2, out.String(), errOut.String() + err.Error()
	}
	code = printStatus(context.Background(), fx.kube, fx.dyn, f, &out, &errOut)
	return code, out.String(), errOut.String()
}

// requests are the API requests made, as "verb resource", both clients.
func (fx statusFixture) requests() []string {
	var out []string
	for _, a := range slices.Concat(fx.dyn.Actions(), fx.kube.Actions()) {
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
	}
	return out
}

// assertReadOnly fails the test on any request but get and list.
func (fx statusFixture) assertReadOnly(t *testing.T) {
	t.Helper()
	for _, r := range fx.requests() {
		if v := strings.Fields(r)[0]; v != "get" && v != "list" {
			t.Errorf("%s is a write: status must only read", r)
		}
	}
}

// row matches one line of the node table: the cells in order, separated
// by the table's padding (two spaces at least).
func row(cells ...string) *regexp.Regexp {
	quoted := make([]string, len(cells))
	for i, c := range cells {
		quoted[i] = regexp.QuoteMeta(c)
	}
	return regexp.MustCompile(`(?m)^  ` + strings.Join(quoted, ` {2,}`) + ` *$`)
}

// line matches a whole output line: name, colon, padding, value.
func line(name, value string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `: +` + regexp.QuoteMeta(value) + `$`)
}

func TestStatusText(t *testing.T) {
	job := func(node string) string { return cleanup.JobName(statusUpgrade, node) }
	tests := []struct {
		name string
		objs func(t *testing.T) []runtime.Object
		want []*regexp.Regexp
		// requests are the API requests expected, in order.
		requests []string
	}{{
		name: "removing: Jobs finished, failed, running and pending",
		objs: func(t *testing.T) []runtime.Object {
			u, cm := plannedStatusUpgrade(t, cleanup.StateRemoving, map[string]string{
				cleanup.MessageAnnotation: "removing on 4 nodes: 2 finished, 2 running",
			})
			return slices.Concat([]runtime.Object{u, cm, runningJob("node-c", true), runningJob("node-d", false)},
				finishedJob(t, "node-a", true, statusResultRemoved), finishedJob(t, "node-b", false, statusResultFailed))
		},
		want: []*regexp.Regexp{
			line("Upgrade", statusNS+"/"+statusUpgrade),
			line("Version", cleanuptest.Version+", from "+cleanuptest.PreviousVersion),
			line("State", "Removing"),
			line("Message", "removing on 4 nodes: 2 finished, 2 running"),
			line("Operator", "none"),
			line("Plan", "ConfigMap "+cleanup.PlanConfigMapName(statusUpgrade)),
			line("  Images", "2"),
			line("  Previous version", cleanuptest.PreviousVersion),
			regexp.MustCompile(`(?m)^  Digest: +sha256:[0-9a-f]{64} \(the Upgrade records the same\)$`),
			line("  Planned early", "no"),
			regexp.MustCompile(`(?m)^Nodes \(from the removal Jobs\):\n  NODE +OUTCOME +REMOVED +SKIPPED +FAILED +RECLAIMED +IMAGE FS +JOB$`),
			row("node-a", "succeeded", "91", "in-use 2, not-present 5", "0", "1.2 GB", "12.0 GB → 10.9 GB, freed 1.1 GB", job("node-a")),
			row("node-b", "failed", "80", "0", "1", "900.0 MB", "11.0 GB → 10.5 GB, freed 500.0 MB (stale)", job("node-b")),
			row("node-c", "running", "-", "-", "-", "-", "-", job("node-c")),
			row("node-d", "pending", "-", "-", "-", "-", "-", job("node-d")),
			line("Total", "4 nodes (1 succeeded, 1 failed, 1 running, 1 pending): removed 171, skipped 7 (in-use 2, not-present 5), failed 1, reclaimed 2.1 GB; image fs freed 1.6 GB on 2 nodes (1 stale)"),
			regexp.MustCompile(`(?m)^Messages:\n  node-b: BackoffLimitExceeded: Job has reached the specified backoff limit\n  node-b: failed: docker.io/rancher/harvester:v1.4.2: rpc error: code = Unknown desc = image is locked$`),
		},
		// One LIST of the run's pods for the two finished Jobs, as the
		// controller reads them.
		requests: []string{"get upgrades", "get configmaps", "list jobs", "list pods"},
	}, {
		name: "final summary: a failed node, a node below the threshold, nodes omitted",
		objs: func(t *testing.T) []runtime.Object {
			sum := cleanup.Summary{
				Nodes: []cleanup.NodeSummary{
					{Node: "node-b", Outcome: cleanup.NodeFailed, Job: job("node-b"), Message: "DeadlineExceeded: Job was active longer than specified deadline", Result: &statusResultFailed},
					{Node: "node-a", Outcome: cleanup.NodeSucceeded, Job: job("node-a"), Result: &statusResultRemoved},
					// Below the threshold: the controller writes it skipped.
					{Node: "node-c", Outcome: cleanup.NodeSkipped, Job: job("node-c"), Result: &statusResultBelow},
				},
				OmittedNodes: 2,
				Outcomes:     map[string]int{cleanup.NodeSucceeded: 3, cleanup.NodeSkipped: 1, cleanup.NodeFailed: 1},
				Total: report.Result{Removed: 353, Failed: 1, BytesReclaimed: 4_500_000_000,
					Skipped: map[report.Reason]int{report.ReasonInUse: 4, report.ReasonNotPresent: 10}},
				// The omitted nodes measured too: the totals count them.
				ImageFs: &cleanup.ImageFsTotals{Nodes: 5, Stale: 1, UsedBefore: 60_000_000_000, UsedAfter: 57_000_000_000, Freed: 3_000_000_000},
			}
			u, cm := plannedStatusUpgrade(t, cleanup.StateFailed, map[string]string{
				cleanup.FailedPhaseAnnotation: string(cleanup.PhaseRemoval),
				cleanup.MessageAnnotation:     "3 of 5 nodes succeeded (need 100%): removed 353 images, skipped 14 (in-use 4, not-present 10), 1 failed, 4.5 GB reclaimed",
				cleanup.SummaryAnnotation:     summaryAnnotation(t, sum),
			})
			// The Jobs are still there, but the summary speaks.
			return slices.Concat([]runtime.Object{u, cm}, finishedJob(t, "node-a", true, statusResultRemoved))
		},
		want: []*regexp.Regexp{
			line("State", "Failed"),
			line("Failed phase", "removal"),
			regexp.MustCompile(`(?m)^Nodes \(from the summary\):$`),
			row("node-a", "succeeded", "91", "in-use 2, not-present 5", "0", "1.2 GB", "12.0 GB → 10.9 GB, freed 1.1 GB", job("node-a")),
			row("node-b", "failed", "80", "0", "1", "900.0 MB", "11.0 GB → 10.5 GB, freed 500.0 MB (stale)", job("node-b")),
			row("node-c", "skipped", "0", "0", "0", "0 B", "9.0 GB, below threshold 50.0 GB", job("node-c")),
			regexp.MustCompile(`(?m)^  2 more nodes omitted from the summary; see their Jobs$`),
			line("Total", "5 nodes (3 succeeded, 1 skipped, 1 failed): removed 353, skipped 14 (in-use 4, not-present 10), failed 1, reclaimed 4.5 GB; image fs freed 3.0 GB on 5 nodes (1 stale)"),
			regexp.MustCompile(`(?m)^  node-b: DeadlineExceeded: Job was active longer than specified deadline$`),
		},
		requests: []string{"get upgrades", "get configmaps"},
	}, {
		name: "a rerun removing, beside the summary of the run before",
		objs: func(t *testing.T) []runtime.Object {
			u, cm := plannedStatusUpgrade(t, cleanup.StateRemoving, map[string]string{
				cleanup.SummaryAnnotation: summaryAnnotation(t, cleanup.Summary{Nodes: []cleanup.NodeSummary{{Node: "node-old", Outcome: cleanup.NodeSucceeded}}}),
			})
			return []runtime.Object{u, cm, runningJob("node-a", true)}
		},
		want: []*regexp.Regexp{
			regexp.MustCompile(`(?m)^Nodes \(from the removal Jobs\):$`),
			row("node-a", "running", "-", "-", "-", "-", "-", job("node-a")),
			regexp.MustCompile(`(?m)^Notes:\n  the summary annotation is of an earlier run; the Jobs of this one are shown$`),
		},
		requests: []string{"get upgrades", "get configmaps", "list jobs"},
	}, {
		name: "a summary that cannot be read",
		objs: func(t *testing.T) []runtime.Object {
			u, cm := plannedStatusUpgrade(t, cleanup.StateSucceeded, map[string]string{cleanup.SummaryAnnotation: `{"nodes": [`})
			return slices.Concat([]runtime.Object{u, cm}, finishedJob(t, "node-a", true, statusResultRemoved))
		},
		want: []*regexp.Regexp{
			regexp.MustCompile(`(?m)^Nodes \(from the removal Jobs\):$`),
			row("node-a", "succeeded", "91", "in-use 2, not-present 5", "0", "1.2 GB", "12.0 GB → 10.9 GB, freed 1.1 GB", job("node-a")),
			regexp.MustCompile(`(?m)^Notes:\n  the summary annotation cannot be read, so the Jobs are shown: unexpected end of JSON input$`),
		},
		requests: []string{"get upgrades", "get configmaps", "list jobs", "list pods"},
	}, {
		name: "no state, no plan, no Job",
		objs: func(*testing.T) []runtime.Object {
			return []runtime.Object{cleanuptest.Upgrade(statusUpgrade).Completed(false).Obj()}
		},
		want: []*regexp.Regexp{
			line("Completed", "false"),
			line("Latest", "true"),
			line("State", "none: the controller has not acted on this Upgrade"),
			line("Plan", "no plan"),
			regexp.MustCompile(`(?m)^Nodes: +none: no removal Job$`),
		},
		requests: []string{"get upgrades", "get configmaps", "list jobs"},
	}, {
		name: "skipped by the operator; rerun asked, catch-up planned early",
		objs: func(t *testing.T) []runtime.Object {
			u, cm := plannedStatusUpgrade(t, cleanup.StateSkipped, map[string]string{
				cleanup.SkipAnnotation:          "true",
				cleanup.RerunAnnotation:         "2026-01-02",
				cleanup.RunAnnotation:           "2025-12-01",
				cleanup.CatchUpAnnotation:       "v1.3.0, v1.2.0",
				cleanup.HarvesterDoneAnnotation: "true",
			})
			cm.Annotations[cleanup.PlanCatchUpAnnotation] = "v1.3.0"
			cm.Annotations[cleanup.PlanCatchUpMissingAnnotation] = "v1.2.0"
			cm.Annotations[cleanup.PlannedEarlyAnnotation] = "true"
			return []runtime.Object{u, cm}
		},
		want: []*regexp.Regexp{
			line("State", "Skipped"),
			line("Harvester done", "true ("+cleanup.HarvesterDoneAnnotation+")"),
			regexp.MustCompile(`(?m)^Operator:\n  Skip: +true\n  Rerun: +2026-01-02 \(not acted on yet; the last one was 2025-12-01\)\n  Catch-up: +v1\.3\.0, v1\.2\.0$`),
			line("  Catch-up planned", "v1.3.0"),
			line("  Catch-up missing", "v1.2.0"),
			line("  Planned early", "yes"),
		},
		requests: []string{"get upgrades", "get configmaps", "list jobs"},
	}, {
		name: "a plan changed after it was planned, and not the one the Upgrade records",
		objs: func(t *testing.T) []runtime.Object {
			u, cm := plannedStatusUpgrade(t, cleanup.StatePlanned, nil)
			cm.Data[cleanup.PlanKey] += "docker.io/rancher/extra:v1\n"
			u.SetAnnotations(map[string]string{cleanup.StateAnnotation: "Planned", cleanup.PlanDigestAnnotation: "sha256:other"})
			return []runtime.Object{u, cm}
		},
		want: []*regexp.Regexp{
			regexp.MustCompile(`(?m)^  Digest: +sha256:[0-9a-f]{64} \(the Upgrade records sha256:other\)$`),
			regexp.MustCompile(`(?m)^  Problem: +plan ConfigMap harvester-system/hvst-upgrade-status-image-cleanup: images\.txt has digest sha256:[0-9a-f]+, but the ConfigMap records "sha256:[0-9a-f]+": it changed after it was planned; not running it$`),
		},
		requests: []string{"get upgrades", "get configmaps", "list jobs"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newStatusFixture(tt.objs(t)...)
			code, out, stderr := fx.status(t, statusUpgrade)
			if code != 0 {
				t.Fatalf("exit code %d, stderr %q", code, stderr)
			}
			for _, w := range tt.want {
				if !w.MatchString(out) {
					t.Errorf("output has no match for %s", w)
				}
			}
			if got := fx.requests(); !slices.Equal(got, tt.requests) {
				t.Errorf("requests = %q, want %q", got, tt.requests)
			}
			fx.assertReadOnly(t)
			if regexp.MustCompile(`(?m) $`).MatchString(out) {
				t.Error("a line ends in a space")
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// TestStatusEscapesWhatPodsAndPeopleWrote: the state message, a node's
// message and a termination message that is not JSON reach the terminal
// escaped and bounded, and the table keeps its columns.
func TestStatusEscapesWhatPodsAndPeopleWrote(t *testing.T) {
	u, cm := plannedStatusUpgrade(t, cleanup.StateRemoving, map[string]string{
		cleanup.MessageAnnotation: "\x1b[31mred\x1b[0m\nsecond line\t" + strings.Repeat("x", 10_000),
	})
	j, pod := cleanuptest.FinishedRemovalJob(statusUpgrade, "node-\ta", false, "panic: \x1b[2J\xffboom\ngoroutine 1", metav1.Now())
	fx := newStatusFixture(u, cm, j, pod)
	code, out, stderr := fx.status(t, statusUpgrade)
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	if strings.ContainsAny(out, "\x1b\t\xff") {
		t.Errorf("output holds a control character or invalid UTF-8:\n%q", out)
	}
	for _, want := range []string{`\x1b[31mred\x1b[0m\nsecond line\t`, `panic: \x1b[2J\xffboom\ngoroutine 1`, `node-\ta  `} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not show %q escaped:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if len(l) > 1200 {
			t.Errorf("a line of %d bytes: not bounded", len(l))
		}
	}
}

func TestStatusChoosesTheUpgrade(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 1, 1, h, 0, 0, 0, time.UTC) }
	upgrade := func(name string, created time.Time, latest bool) *unstructured.Unstructured {
		return cleanuptest.Upgrade(name).Created(created).Latest(latest).Obj()
	}
	tests := []struct {
		name       string
		objs       []runtime.Object
		args       []string
		wantCode   int
		want       string // the Upgrade line's value
		wantChosen string
		wantErr    string
	}{{
		name: "the one labelled latest, though not the newest",
		objs: []runtime.Object{upgrade("hvst-upgrade-old", at(1), false), upgrade("hvst-upgrade-mid", at(2), true), upgrade("hvst-upgrade-new", at(3), false)},
		want: statusNS + "/hvst-upgrade-mid", wantChosen: "the only Upgrade labelled harvesterhci.io/latestUpgrade=true",
	}, {
		name: "none labelled: the newest",
		objs: []runtime.Object{upgrade("hvst-upgrade-b", at(2), false), upgrade("hvst-upgrade-a", at(3), false)},
		want: statusNS + "/hvst-upgrade-a", wantChosen: "the newest of 2 Upgrades; none is labelled harvesterhci.io/latestUpgrade=true",
	}, {
		name: "several labelled: the newest of them",
		objs: []runtime.Object{upgrade("hvst-upgrade-a", at(1), true), upgrade("hvst-upgrade-b", at(2), true), upgrade("hvst-upgrade-c", at(3), false)},
		want: statusNS + "/hvst-upgrade-b", wantChosen: "the newest of 2 Upgrades labelled harvesterhci.io/latestUpgrade=true",
	}, {
		name: "in the namespace given",
		objs: []runtime.Object{upgrade("hvst-upgrade-a", at(1), true), cleanuptest.Upgrade("hvst-upgrade-x").Namespace("other").Obj()},
		args: []string{"-n", "other"},
		want: "other/hvst-upgrade-x", wantChosen: "the only Upgrade labelled harvesterhci.io/latestUpgrade=true",
	}, {
		name:     "no Upgrade in the namespace",
		objs:     []runtime.Object{cleanuptest.Upgrade("hvst-upgrade-x").Namespace("other").Obj()},
		wantCode: 1, wantErr: "upgrade-image-cleanup status: no Upgrades in namespace harvester-system\n",
	}, {
		name:     "no such Upgrade",
		objs:     []runtime.Object{upgrade("hvst-upgrade-a", at(1), true)},
		args:     []string{"hvst-upgrade-nope"},
		wantCode: 1, wantErr: `upgrade-image-cleanup status: no Upgrade "hvst-upgrade-nope" in namespace harvester-system: `,
	}, {
		name: "named, not the latest",
		objs: []runtime.Object{upgrade("hvst-upgrade-a", at(1), false), upgrade("hvst-upgrade-b", at(2), true)},
		args: []string{"hvst-upgrade-a"},
		want: statusNS + "/hvst-upgrade-a",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newStatusFixture(tt.objs...)
			code, out, stderr := fx.status(t, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr %q", code, tt.wantCode, stderr)
			}
			fx.assertReadOnly(t)
			if tt.wantCode != 0 {
				if !strings.HasPrefix(stderr, tt.wantErr) || out != "" {
					t.Errorf("stderr %q, want it to start with %q; stdout %q", stderr, tt.wantErr, out)
				}
				return
			}
			if !line("Upgrade", tt.want).MatchString(out) {
				t.Errorf("not %s:\n%s", tt.want, out)
			}
			if tt.wantChosen == "" {
				if strings.Contains(out, "Chosen as:") {
					t.Errorf("a named Upgrade is said to be chosen:\n%s", out)
				}
			} else if !line("Chosen as", tt.wantChosen).MatchString(out) {
				t.Errorf("does not say it chose %q:\n%s", tt.wantChosen, out)
			}
		})
	}
}

// TestStatusJSONRoundTrip: -o json is the Status that ReadStatus returns,
// field for field, under the names scripts use.
func TestStatusJSONRoundTrip(t *testing.T) {
	u, cm := plannedStatusUpgrade(t, cleanup.StateRemoving, map[string]string{cleanup.CatchUpAnnotation: "v1.3.0"})
	objs := slices.Concat([]runtime.Object{u, cm, runningJob("node-c", true)},
		finishedJob(t, "node-a", true, statusResultRemoved), finishedJob(t, "node-b", true, statusResultBelow))
	fx := newStatusFixture(objs...)
	code, out, stderr := fx.status(t, "-o", "json")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	var got cleanup.Status
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	kube, dyn := cleanuptest.NewClients(objs...)
	want, err := cleanup.ReadStatus(context.Background(), kube, dyn, statusNS, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JSON decodes to\n%+v\nwant\n%+v", got, want)
	}
	if got.Chosen == "" || got.NodesFrom != cleanup.NodesFromJobs || len(got.Nodes) != 3 || got.Nodes[1].Outcome != cleanup.NodeSkipped ||
		got.Outcomes[cleanup.NodeSkipped] != 1 || got.Total.Removed != 91 || got.Total.ImageFsNodes != 2 || got.Plan == nil || got.Plan.Images != 2 {
		t.Errorf("status = %+v", got)
	}
	fx.assertReadOnly(t)
	for _, key := range []string{`"upgrade": {`, `"namespace":`, `"previousVersion":`, `"completed":`, `"latest":`, `"chosen":`, `"state": "Removing"`,
		`"failedPhase": ""`, `"message":`, `"operator": {`, `"catchUp": [`, `"plan": {`, `"configMap":`, `"images": 2`, `"digest":`, `"catchUpMissing": []`,
		`"plannedEarly": false`, `"nodesFrom": "jobs"`, `"nodes": [`, `"outcome":`, `"result": {`, `"imageFs": {`, `"usedBefore":`, `"belowThreshold": true`,
		`"omittedNodes": 0`, `"outcomes": {`, `"total": {`, `"imageFsFreed":`, `"notes": []`} {
		if !strings.Contains(out, key) {
			t.Errorf("JSON output lacks %s", key)
		}
	}

	// No plan is null, and empty lists are [], not null.
	fx = newStatusFixture(cleanuptest.Upgrade(statusUpgrade).Obj())
	_, out, _ = fx.status(t, "-o", "json", statusUpgrade)
	for _, key := range []string{`"plan": null`, `"nodes": []`, `"outcomes": {}`, `"catchUp": []`, `"skipped": {}`} {
		if !strings.Contains(out, key) {
			t.Errorf("JSON output lacks %s:\n%s", key, out)
		}
	}
}

// TestStatusOfTheControllersOwnRemoval reads what the controller itself
// wrote, while it removes and once it has summarised.
func TestStatusOfTheControllersOwnRemoval(t *testing.T) {
	u, cm := fixture.PlannedUpgrade(t, cleanuptest.Upgrade(statusUpgrade).Obj())
	f := fixture.New(t, []runtime.Object{u, cm, cleanuptest.RepoSlice(statusUpgrade).Obj(), cleanuptest.Node("node-a"), cleanuptest.Node("node-b")},
		cleanuptest.WithRemoval(1))
	f.SyncRemoval()
	f.FinishJob("node-a", true, statusResultRemoved)

	// statusNow reads the status over clients holding what the cluster
	// holds now, so the controller's informers cannot mix their requests in.
	statusNow := func() string {
		t.Helper()
		var objs []runtime.Object
		un, err := f.Dynamic.Resource(informers.UpgradeGVR).Namespace(statusNS).Get(f.Ctx, statusUpgrade, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, un)
		cms, _ := f.Kube.CoreV1().ConfigMaps(statusNS).List(f.Ctx, metav1.ListOptions{})
		jobs, _ := f.Kube.BatchV1().Jobs(statusNS).List(f.Ctx, metav1.ListOptions{})
		pods, _ := f.Kube.CoreV1().Pods(statusNS).List(f.Ctx, metav1.ListOptions{})
		for i := range cms.Items {
			objs = append(objs, &cms.Items[i])
		}
		for i := range jobs.Items {
			objs = append(objs, &jobs.Items[i])
		}
		for i := range pods.Items {
			objs = append(objs, &pods.Items[i])
		}
		fx := newStatusFixture(objs...)
		code, out, stderr := fx.status(t)
		if code != 0 {
			t.Fatalf("exit code %d, stderr %q", code, stderr)
		}
		fx.assertReadOnly(t)
		return out
	}

	out := statusNow()
	for _, w := range []*regexp.Regexp{
		line("State", "Removing"),
		regexp.MustCompile(`(?m)^Nodes \(from the removal Jobs\):$`),
		row("node-a", "succeeded", "91", "in-use 2, not-present 5", "0", "1.2 GB", "12.0 GB → 10.9 GB, freed 1.1 GB", cleanup.JobName(statusUpgrade, "node-a")),
		row("node-b", "pending", "-", "-", "-", "-", "-", cleanup.JobName(statusUpgrade, "node-b")),
	} {
		if !w.MatchString(out) {
			t.Errorf("while removing, no match for %s:\n%s", w, out)
		}
	}

	f.FinishJob("node-b", false, statusResultFailed)
	f.SyncRemoval()
	out = statusNow()
	for _, w := range []*regexp.Regexp{
		line("State", "Failed"),
		line("Failed phase", "removal"),
		regexp.MustCompile(`(?m)^Message: +1 of 2 nodes succeeded \(need 100%\): removed 171 images`),
		regexp.MustCompile(`(?m)^Nodes \(from the summary\):$`),
		row("node-a", "succeeded", "91", "in-use 2, not-present 5", "0", "1.2 GB", "12.0 GB → 10.9 GB, freed 1.1 GB", cleanup.JobName(statusUpgrade, "node-a")),
		row("node-b", "failed", "80", "0", "1", "900.0 MB", "11.0 GB → 10.5 GB, freed 500.0 MB (stale)", cleanup.JobName(statusUpgrade, "node-b")),
		line("Total", "2 nodes (1 succeeded, 1 failed): removed 171, skipped 7 (in-use 2, not-present 5), failed 1, reclaimed 2.1 GB; image fs freed 1.6 GB on 2 nodes (1 stale)"),
	} {
		if !w.MatchString(out) {
			t.Errorf("once summarised, no match for %s:\n%s", w, out)
		}
	}
	if testing.Verbose() {
		t.Logf("output:\n%s", out)
	}
}

func TestStatusFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want statusFlags
	}{
		{nil, statusFlags{namespace: statusNS, output: "text"}},
		{[]string{"u1", "-o", "json", "-n", "ns"}, statusFlags{upgrade: "u1", namespace: "ns", output: "json"}},
		{[]string{"--namespace", "ns", "u1", "--output=json", "--kubeconfig", "k"}, statusFlags{upgrade: "u1", namespace: "ns", kubeconfig: "k", output: "json"}},
		{[]string{"-o", "json", "--", "u1"}, statusFlags{upgrade: "u1", namespace: statusNS, output: "json"}},
	} {
		got, err := parseStatusFlags(tt.args, &bytes.Buffer{})
		if err != nil || got != tt.want {
			t.Errorf("%q: %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
}

func TestStatusBadFlagsExit2NamingThem(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"-o", "yaml"}, []string{`-o "yaml"`, "text or json"}},
		{[]string{"u1", "u2"}, []string{`unexpected argument "u2"`}},
		{[]string{"Bad_Name"}, []string{`UPGRADE "Bad_Name"`}},
		{[]string{"-n", ""}, []string{"--namespace"}},
		{[]string{"--upgrade", "u"}, []string{"-upgrade"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"status"}, tt.args...), &stdout, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not name %q", stderr.String(), w)
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty: %q", stdout.String())
			}
		})
	}
}

func TestStatusHelpExits0(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	if !strings.Contains(stderr.String(), "upgrade-image-cleanup status [UPGRADE] [flags]") {
		t.Errorf("usage:\n%s", stderr.String())
	}
}

// TestStatusUnreachableClusterExits1: a cluster that does not answer is a
// runtime failure, named, not a bad flag.
func TestStatusUnreachableClusterExits1(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://` + addr + `"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "--kubeconfig", kubeconfig}, &stdout, &stderr); code != 1 {
		t.Errorf("exit code = %d, want 1; stderr %q", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "list Upgrades in namespace harvester-system") {
		t.Errorf("stderr %q does not say what failed", stderr.String())
	}
}
