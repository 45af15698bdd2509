//go:build bench

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/standalone"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/testhost"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// Budget is one API budget the controller runs with: --kube-api-qps and
// --kube-api-burst.
type Budget struct {
	QPS   float64 `json:"qps"`
	Burst int     `json:"burst"`
}

func (b Budget) String() string { return fmt.Sprintf("%g/%d", b.QPS, b.Burst) }

// Requests counts the controller's requests by verb and resource, as the
// API server's audit log names them ("create jobs", "list pods",
// "get /version" for a path outside the API groups), with the response
// code when it is not a success ("patch upgrades (409)").
type Requests map[string]int

// Total is every request counted.
func (r Requests) Total() int {
	n := 0
	for _, v := range r {
		n += v
	}
	return n
}

// Of is the number of requests on resource, any verb.
func (r Requests) Of(resource string) int {
	n := 0
	for k, v := range r {
		_, res, _ := strings.Cut(k, " ")
		res, _, _ = strings.Cut(res, " ")
		if res == resource || strings.HasPrefix(res, resource+"/") {
			n += v
		}
	}
	return n
}

// Keys are the counted kinds of request, most frequent first.
func (r Requests) Keys() []string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if r[a] != r[b] {
			return r[b] - r[a]
		}
		return strings.Compare(a, b)
	})
	return keys
}

func (r Requests) add(o Requests) {
	for k, v := range o {
		r[k] += v
	}
}

// BudgetBlock is one controller process of the back-to-back series: a
// fresh start at one budget, then the flips one after the other.
type BudgetBlock struct {
	Round int    `json:"round"`
	Flips []Flip `json:"flips"`
	// ElapsedS is from the first flip's start to the last one's first
	// request: the pace the series kept.
	ElapsedS float64 `json:"elapsedS"`
	// Requests are the controller's, from before the first Upgrade was
	// created until it has been quiet for 2 s after the last one read
	// Planned.
	Requests Requests `json:"requests"`
}

// RemovalRun is one cleanup of one Upgrade on Nodes nodes, timed from the
// repo pod's Ready write.
type RemovalRun struct {
	Round   int    `json:"round"`
	Upgrade string `json:"upgrade"`
	Nodes   int    `json:"nodes"`
	// FirstRequestMs: the repo's first request.
	FirstRequestMs float64 `json:"firstRequestMs"`
	// FirstJobMs and JobsMs: the bench's Job informer sees the first Job,
	// and the last of Nodes.
	FirstJobMs float64 `json:"firstJobMs"`
	JobsMs     float64 `json:"jobsMs"`
	// FinishedMs: the bench has finished the last Job (pod, its status,
	// the Job's status), as the Job controller and kubelet would.
	FinishedMs float64 `json:"finishedMs"`
	// OutcomeMs: the Upgrade's state annotation reads Outcome.
	OutcomeMs float64 `json:"outcomeMs"`
	Outcome   string  `json:"outcome"`
	// LastRequestMs: the controller's last request of the run, once it has
	// been quiet for 3 s.
	LastRequestMs float64 `json:"lastRequestMs"`
	// Requests are the controller's, from before the Upgrade was created
	// until it has been quiet for 3 s after the outcome.
	Requests Requests `json:"requests"`
}

// CreatePaceMs is the time between two Jobs created, from the first to
// the last.
func (r RemovalRun) CreatePaceMs() float64 {
	if r.Nodes < 2 {
		return 0
	}
	return (r.JobsMs - r.FirstJobMs) / float64(r.Nodes-1)
}

// ListPaceMs is the time per pod list of the summary: from the last Job
// finished to the outcome, over the lists.
func (r RemovalRun) ListPaceMs() float64 {
	n := r.Requests.Of("pods")
	if n == 0 {
		return 0
	}
	return (r.OutcomeMs - r.FinishedMs) / float64(n)
}

// SummaryS is the time from the last Job finished to the outcome.
func (r RemovalRun) SummaryS() float64 { return (r.OutcomeMs - r.FinishedMs) / 1000 }

// PerNode is the run's requests per node.
func (r RemovalRun) PerNode() float64 {
	if r.Nodes == 0 {
		return 0
	}
	return float64(r.Requests.Total()) / float64(r.Nodes)
}

// BudgetResult is everything measured at one budget.
type BudgetResult struct {
	Budget
	// Default: the binary's default budget (standalone.DefaultKubeAPIQPS,
	// DefaultKubeAPIBurst).
	Default  bool          `json:"default"`
	Blocks   []BudgetBlock `json:"blocks"`
	Removals []RemovalRun  `json:"removals"`
	// Over every block's flips: the controller's first request, the bare
	// informer's event, and the difference per flip, from the Ready write.
	Ctrl     Stats `json:"ctrl"`
	Watch    Stats `json:"watch"`
	Overhead Stats `json:"overhead"`
	// Upgrades planned in the blocks, the requests they took, and the
	// blocks' time.
	Upgrades        int      `json:"upgrades"`
	UpgradeRequests Requests `json:"upgradeRequests"`
	ElapsedS        float64  `json:"elapsedS"`
	// Removal is the removal run with the median OutcomeMs.
	Removal RemovalRun `json:"removal"`
}

// P99Gap is how much later than the bare informer the controller's p99 is.
func (b BudgetResult) P99Gap() float64 { return b.Ctrl.P99 - b.Watch.P99 }

// PerUpgrade is the requests each Upgrade of the back-to-back series took.
func (b BudgetResult) PerUpgrade() float64 {
	if b.Upgrades == 0 {
		return 0
	}
	return float64(b.UpgradeRequests.Total()) / float64(b.Upgrades)
}

// FlipsPerS is the pace of the back-to-back series at this budget.
func (b BudgetResult) FlipsPerS() float64 {
	if b.ElapsedS == 0 {
		return 0
	}
	return float64(b.Upgrades) / b.ElapsedS
}

// APIBudgetResult is what bench apibudget writes.
type APIBudgetResult struct {
	Budgets       []BudgetResult `json:"budgets"`
	Rounds        int            `json:"rounds"`
	BackToBack    int            `json:"backToBack"`
	RemovalRounds int            `json:"removalRounds"`
	Nodes         int            `json:"nodes"`
	Namespace     string         `json:"namespace"`
	// Identity is the ServiceAccount the controller ran as: the audit log
	// records its requests.
	Identity      string `json:"identity"`
	ServerVersion string `json:"serverVersion"`
	// LoadAvg is /proc/loadavg's first three fields at the start, between
	// the two parts and at the end.
	LoadAvg []string `json:"loadAvg"`
	// Nice is the bench's nice value (hack/bench/run's, inherited).
	Nice    int    `json:"nice"`
	Elapsed string `json:"elapsed"`
}

// Fastest is the result whose back-to-back series kept the fastest pace:
// the one the limiter held back least.
func (r APIBudgetResult) Fastest() BudgetResult {
	var f BudgetResult
	for _, b := range r.Budgets {
		if b.FlipsPerS() > f.FlipsPerS() {
			f = b
		}
	}
	return f
}

// Default is the result at the binary's default budget.
func (r APIBudgetResult) Default() BudgetResult {
	for _, b := range r.Budgets {
		if b.Default {
			return b
		}
	}
	return BudgetResult{}
}

// BreakdownRow is one kind of request at the default budget: per upgrade
// of the back-to-back series, and in the removal.
type BreakdownRow struct {
	What       string
	PerUpgrade float64
	Removal    int
}

// Breakdown lists the default budget's requests by kind, the removal's
// most frequent first.
func (r APIBudgetResult) Breakdown() []BreakdownRow {
	d := r.Default()
	all := Requests{}
	for k, v := range d.UpgradeRequests {
		all[k] += v
	}
	for k, v := range d.Removal.Requests {
		all[k] += v * 1000 // the removal's order first
	}
	var rows []BreakdownRow
	for _, k := range all.Keys() {
		row := BreakdownRow{What: k, Removal: d.Removal.Requests[k]}
		if d.Upgrades > 0 {
			row.PerUpgrade = float64(d.UpgradeRequests[k]) / float64(d.Upgrades)
		}
		rows = append(rows, row)
	}
	return rows
}

// budgetEnv is what the runs of bench apibudget share.
type budgetEnv struct {
	c          *clients
	ns         string
	bin        string
	kubeconfig string // the ServiceAccount's
	workdir    string
	audit      *auditLog
	repo       *flipRepo
	watch      *sliceWatch
	host       *testhost.Host
	port       int32
	run        string
	flip       int
	logs       int
}

func runAPIBudget(args []string) error {
	fs := flag.NewFlagSet("apibudget", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "cluster (hack/local-cluster, whose DIR/audit.log counts the requests)")
	bin := fs.String("controller", "", "the built controller binary")
	root := fs.String("root", ".", "the repository's root (for deploy/crd)")
	budgetList := fs.String("budgets", "5/10,20/40,50/100,100/200,200/400", "comma-separated QPS/burst pairs; the binary's default is added if missing")
	rounds := fs.Int("rounds", 4, "back-to-back blocks per budget, the budgets alternating")
	backToBack := fs.Int("back-to-back", 30, "flips per back-to-back block")
	removalRounds := fs.Int("removal-rounds", 1, "removals per budget, the budgets alternating")
	nodes := fs.Int("nodes", 500, "Nodes the removal targets")
	ns := fs.String("namespace", "uic-apibudget", "namespace of the runs (its own, so nothing else's Upgrades are synced)")
	nsName := fs.String("netns", "uicbudget", "name of the network namespace to create for the repo")
	index := fs.Int("netns-index", 41, "the repo's addresses are 198.18.INDEX.1 (host) and .2 (repo)")
	workdir := fs.String("workdir", os.TempDir(), "where the controller's logs and kubeconfig go")
	out := fs.String("out", "apibudget.json", "result file")
	_ = fs.Parse(args)
	if *kubeconfig == "" || *bin == "" {
		return fmt.Errorf("-kubeconfig and -controller are required")
	}
	budgets, err := parseBudgets(*budgetList)
	if err != nil {
		return err
	}
	began := time.Now()
	ctx, cancel := context.WithCancel(klog.NewContext(signalled, logr.Discard()))
	defer cancel()
	c, err := newClients(*kubeconfig)
	if err != nil {
		return err
	}
	res := APIBudgetResult{Rounds: *rounds, BackToBack: *backToBack, RemovalRounds: *removalRounds, Nodes: *nodes, Namespace: *ns}
	res.LoadAvg = append(res.LoadAvg, loadAvg())
	res.Nice = niceness()
	if v, err := c.kube.Discovery().ServerVersion(); err == nil {
		res.ServerVersion = v.GitVersion
	}
	if err := cleanuptest.PrepareCluster(ctx, c.kube, c.dynamic, filepath.Join(*root, cleanuptest.CRDPath), *ns, "node1"); err != nil {
		return err
	}
	audit := &auditLog{path: filepath.Join(filepath.Dir(*kubeconfig), "audit.log")}
	if _, err := os.Stat(audit.path); err != nil {
		return fmt.Errorf("no audit log beside the kubeconfig (hack/local-cluster writes DIR/audit.log): %w", err)
	}
	saConfig, user, err := serviceAccountKubeconfig(ctx, c, *ns, "upgrade-image-cleanup", *workdir)
	if err != nil {
		return err
	}
	audit.user, res.Identity = user, user
	created, err := ensureNodes(ctx, c, *nodes)
	defer deleteNodes(c, created)
	if err != nil {
		return err
	}

	host, repo, watch, stop, err := startRepoAndWatch(ctx, c, *nsName, *index, *ns)
	if err != nil {
		return err
	}
	defer stop()

	e := &budgetEnv{c: c, ns: *ns, bin: *bin, kubeconfig: saConfig, workdir: *workdir, audit: audit,
		repo: repo, watch: watch, host: host, port: repoPort, run: rand.String(4)}
	if err := e.clean(ctx); err != nil {
		return err
	}
	res.Budgets = make([]BudgetResult, len(budgets))
	for i, b := range budgets {
		res.Budgets[i] = BudgetResult{Budget: b, Default: b == defaultBudget(), UpgradeRequests: Requests{}}
	}
	// Each round runs every budget once, starting one further along, so no
	// budget always runs first or last.
	for r := range *rounds {
		for k := range res.Budgets {
			b := &res.Budgets[(k+r)%len(res.Budgets)]
			logf("apibudget: back to back at %s, round %d of %d: %d flips", b.Budget, r+1, *rounds, *backToBack)
			block, err := e.backToBack(ctx, b.Budget, *backToBack)
			if err != nil {
				return fmt.Errorf("back to back at %s: %w", b.Budget, err)
			}
			block.Round = r
			b.Blocks = append(b.Blocks, block)
		}
	}
	res.LoadAvg = append(res.LoadAvg, loadAvg())
	for r := range *removalRounds {
		for k := range res.Budgets {
			b := &res.Budgets[(k+r)%len(res.Budgets)]
			logf("apibudget: removal on %d nodes at %s, round %d of %d", *nodes, b.Budget, r+1, *removalRounds)
			run, err := e.removal(ctx, b.Budget, *nodes)
			if err != nil {
				return fmt.Errorf("removal at %s: %w", b.Budget, err)
			}
			run.Round = r
			logf("apibudget: %d Jobs %.1f s after Ready, %s %.1f s after Ready, %d requests",
				run.Nodes, run.JobsMs/1000, run.Outcome, run.OutcomeMs/1000, run.Requests.Total())
			b.Removals = append(b.Removals, run)
		}
	}
	res.LoadAvg = append(res.LoadAvg, loadAvg())
	for i := range res.Budgets {
		res.Budgets[i].summarize()
	}
	res.Elapsed = time.Since(began).Round(time.Millisecond).String()
	return writeJSON(*out, res)
}

func defaultBudget() Budget {
	return Budget{QPS: standalone.DefaultKubeAPIQPS, Burst: standalone.DefaultKubeAPIBurst}
}

// parseBudgets reads "5/10,20/40" and adds the binary's default if missing.
func parseBudgets(s string) ([]Budget, error) {
	var out []Budget
	for _, p := range strings.Split(s, ",") {
		q, b, ok := strings.Cut(strings.TrimSpace(p), "/")
		qps, err1 := strconv.ParseFloat(q, 64)
		burst, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || qps <= 0 || burst < 1 {
			return nil, fmt.Errorf("-budgets: %q is not QPS/burst", p)
		}
		out = append(out, Budget{QPS: qps, Burst: burst})
	}
	if !slices.Contains(out, defaultBudget()) {
		out = append(out, defaultBudget())
	}
	slices.SortFunc(out, func(a, b Budget) int {
		if a.QPS != b.QPS {
			return int(a.QPS*1000 - b.QPS*1000)
		}
		return a.Burst - b.Burst
	})
	return out, nil
}

func (b *BudgetResult) summarize() {
	var ctrl, watch, over []time.Duration
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	for _, bl := range b.Blocks {
		for _, f := range bl.Flips {
			ctrl, watch, over = append(ctrl, ms(f.CtrlMs)), append(watch, ms(f.WatchMs)), append(over, ms(f.CtrlMs-f.WatchMs))
		}
		b.Upgrades += len(bl.Flips)
		b.UpgradeRequests.add(bl.Requests)
		b.ElapsedS += bl.ElapsedS
	}
	b.Ctrl, b.Watch, b.Overhead = stats(ctrl), stats(watch), stats(over)
	if len(b.Removals) > 0 {
		rs := slices.Clone(b.Removals)
		slices.SortFunc(rs, func(x, y RemovalRun) int { return int(x.OutcomeMs - y.OutcomeMs) })
		b.Removal = rs[len(rs)/2]
	}
}

// start runs the controller as the ServiceAccount at budget b, then waits
// until its bucket is full again (what its start spent: the permission
// checks, the informers' lists), as in a controller that has been running
// for a while.
func (e *budgetEnv) start(ctx context.Context, b Budget, extra ...string) (*controllerProc, error) {
	e.logs++
	args := append([]string{"--kubeconfig", e.kubeconfig, "--namespace", e.ns,
		"--kube-api-qps", strconv.FormatFloat(b.QPS, 'f', -1, 64), "--kube-api-burst", strconv.Itoa(b.Burst)}, extra...)
	p, _, err := runController(ctx, e.bin, filepath.Join(e.workdir, fmt.Sprintf("apibudget-controller-%d.log", e.logs)), args...)
	if err != nil {
		return nil, err
	}
	if err := sleep(ctx, time.Duration(float64(b.Burst)/b.QPS*float64(time.Second))); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (e *budgetEnv) next() (upgrade, version string) {
	e.flip++
	return fmt.Sprintf("bbudget-%s-%04d", e.run, e.flip), fmt.Sprintf("v1.4.2-a%04d", e.flip)
}

// backToBack runs n flips with no pause on a controller started for them,
// waits until every Upgrade reads Planned, counts the controller's
// requests, stops it and deletes what the block made.
func (e *budgetEnv) backToBack(ctx context.Context, b Budget, n int) (BudgetBlock, error) {
	var block BudgetBlock
	p, err := e.start(ctx, b, "--dry-run")
	if err != nil {
		return block, err
	}
	defer p.stop()
	mark, err := e.audit.mark()
	if err != nil {
		return block, err
	}
	var names []string
	began := time.Now()
	for range n {
		upgrade, version := e.next()
		f, err := flipOnce(ctx, e.c, e.ns, e.repo, e.watch, e.host, e.port, upgrade, version, 0)
		if err != nil {
			return block, fmt.Errorf("flip %s: %w (controller log %s)", upgrade, err, p.logPath)
		}
		block.Flips = append(block.Flips, f)
		names = append(names, upgrade)
	}
	block.ElapsedS = time.Since(began).Seconds()
	for _, u := range names {
		if _, err := e.waitState(ctx, u, 2*time.Minute, cleanup.StatePlanned); err != nil {
			return block, fmt.Errorf("%w (controller log %s)", err, p.logPath)
		}
	}
	// What follows Planned (its Event) is the upgrade's too.
	if block.Requests, _, err = e.audit.countUntilQuiet(ctx, mark, 2*time.Second, time.Minute); err != nil {
		return block, err
	}
	p.stop()
	return block, e.clean(ctx)
}

// removal runs one cleanup to its outcome on a controller started for it,
// playing the Job controller and kubelet for every Job as soon as it is
// created (its pod terminated with a remover's result, then the Job
// complete), and times it from the repo pod's Ready write.
func (e *budgetEnv) removal(ctx context.Context, b Budget, nodes int) (RemovalRun, error) {
	run := RemovalRun{Nodes: nodes}
	p, err := e.start(ctx, b, "--remover-image", "registry.invalid/image-remover:bench")
	if err != nil {
		return run, err
	}
	defer p.stop()
	upgrade, version := e.next()
	run.Upgrade = upgrade
	sel, err := cleanup.RunSelector(upgrade, "")
	if err != nil {
		return run, err
	}
	jobs := newJobTracker(ctx, e.c.kube, nodes)
	defer jobs.stop()
	inf := informers.NewJobInformer(e.c.kube, e.ns, sel, 0)
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: jobs.added}); err != nil {
		return run, err
	}
	infCtx, stopInf := context.WithCancel(ctx)
	defer stopInf()
	go inf.Run(infCtx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return run, fmt.Errorf("job informer did not sync")
	}
	mark, err := e.audit.mark()
	if err != nil {
		return run, err
	}
	f, err := flipOnce(ctx, e.c, e.ns, e.repo, e.watch, e.host, e.port, upgrade, version, 0)
	if err != nil {
		return run, fmt.Errorf("flip %s: %w (controller log %s)", upgrade, err, p.logPath)
	}
	t0 := f.At
	run.FirstRequestMs = f.CtrlMs
	// Generous: at 5 requests/s 500 Jobs take 100 s to create, and as long
	// to summarise.
	limit := 5*time.Minute + time.Duration(float64(4*nodes)/b.QPS*float64(time.Second))
	select {
	case <-jobs.finishedAll:
	case <-time.After(limit):
		return run, fmt.Errorf("%d of %d Jobs seen, %d finished after %v (controller log %s)", jobs.seenCount(), nodes, jobs.finishedCount(), limit, p.logPath)
	case <-ctx.Done():
		return run, ctx.Err()
	}
	if err := jobs.err(); err != nil {
		return run, err
	}
	state, err := e.waitState(ctx, upgrade, limit, cleanup.StateSucceeded, cleanup.StateFailed)
	if err != nil {
		return run, fmt.Errorf("%w (controller log %s)", err, p.logPath)
	}
	outcome := time.Now()
	run.Outcome = string(state)
	run.FirstJobMs, run.JobsMs, run.FinishedMs = msSince(t0, jobs.first), msSince(t0, jobs.last), msSince(t0, jobs.done)
	run.OutcomeMs = msSince(t0, outcome)
	// Its Event follows the outcome, and a sync on a cache that has not
	// seen the outcome yet may make the summary again.
	var last time.Time
	if run.Requests, last, err = e.audit.countUntilQuiet(ctx, mark, 3*time.Second, limit); err != nil {
		return run, err
	}
	run.LastRequestMs = msSince(t0, last)
	p.stop()
	stopInf()
	return run, e.clean(ctx)
}

// waitState polls the Upgrade until its state annotation is one of states.
func (e *budgetEnv) waitState(ctx context.Context, upgrade string, timeout time.Duration, states ...cleanup.State) (cleanup.State, error) {
	res := e.c.dynamic.Resource(informers.UpgradeGVR).Namespace(e.ns)
	var got cleanup.State
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		u, err := res.Get(ctx, upgrade, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = cleanup.State(u.GetAnnotations()[cleanup.StateAnnotation])
		return slices.Contains(states, got), nil
	})
	if err != nil {
		return got, fmt.Errorf("upgrade %s: state %q, waiting for %v: %w", upgrade, got, states, err)
	}
	return got, nil
}

// clean deletes what the runs made in the namespace (with no controller
// running) and waits until it is gone, so the next controller starts on an
// empty namespace. Pods go at once: no kubelet would confirm them.
func (e *budgetEnv) clean(ctx context.Context) error {
	now := metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}
	all := metav1.ListOptions{}
	if err := e.c.dynamic.Resource(informers.UpgradeGVR).Namespace(e.ns).DeleteCollection(ctx, now, all); err != nil {
		return fmt.Errorf("delete Upgrades: %w", err)
	}
	svcs, err := e.c.kube.CoreV1().Services(e.ns).List(ctx, all)
	if err != nil {
		return err
	}
	for _, s := range svcs.Items {
		if err := e.c.kube.CoreV1().Services(e.ns).Delete(ctx, s.Name, now); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete Service %s: %w", s.Name, err)
		}
	}
	if err := e.c.kube.BatchV1().Jobs(e.ns).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}, all); err != nil {
		return fmt.Errorf("delete Jobs: %w", err)
	}
	if err := e.c.kube.CoreV1().Pods(e.ns).DeleteCollection(ctx, now, all); err != nil {
		return fmt.Errorf("delete Pods: %w", err)
	}
	plans := metav1.ListOptions{LabelSelector: informers.UpgradeLabel}
	if err := e.c.kube.CoreV1().ConfigMaps(e.ns).DeleteCollection(ctx, now, plans); err != nil {
		return fmt.Errorf("delete plans: %w", err)
	}
	if err := e.c.kube.CoreV1().Events(e.ns).DeleteCollection(ctx, now, all); err != nil {
		return fmt.Errorf("delete Events: %w", err)
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		one := metav1.ListOptions{Limit: 1}
		ups, err := e.c.dynamic.Resource(informers.UpgradeGVR).Namespace(e.ns).List(ctx, one)
		if err != nil {
			return false, err
		}
		pods, err := e.c.kube.CoreV1().Pods(e.ns).List(ctx, one)
		if err != nil {
			return false, err
		}
		jobs, err := e.c.kube.BatchV1().Jobs(e.ns).List(ctx, one)
		if err != nil {
			return false, err
		}
		slices, err := e.c.kube.DiscoveryV1().EndpointSlices(e.ns).List(ctx, one)
		if err != nil {
			return false, err
		}
		return len(ups.Items)+len(pods.Items)+len(jobs.Items)+len(slices.Items) == 0, nil
	})
}

// jobTracker finishes each removal Job as it is created, on a few
// goroutines, and notes when the first and the last were seen and the last
// finished.
type jobTracker struct {
	ctx         context.Context
	kube        kubernetes.Interface
	want        int
	queue       chan *batchv1.Job
	finishedAll chan struct{}
	workers     sync.WaitGroup

	mu                sync.Mutex
	closed            bool
	seen, finished    int
	first, last, done time.Time
	firstErr          error
}

func newJobTracker(ctx context.Context, kube kubernetes.Interface, want int) *jobTracker {
	t := &jobTracker{ctx: ctx, kube: kube, want: want, queue: make(chan *batchv1.Job, want), finishedAll: make(chan struct{})}
	for range 8 {
		t.workers.Add(1)
		go t.work()
	}
	return t
}

func (t *jobTracker) added(obj any) {
	j, ok := obj.(*batchv1.Job)
	if !ok {
		return
	}
	at := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.seen++
	if t.seen == 1 {
		t.first = at
	}
	if t.seen == t.want {
		t.last = at
	}
	select {
	case t.queue <- j:
	default: // more Jobs than nodes: counted, not finished
	}
}

func (t *jobTracker) work() {
	defer t.workers.Done()
	for j := range t.queue {
		msg, err := cleanuptest.RemoverMessage(j, report.Result{Removed: 3})
		if err == nil {
			err = cleanuptest.FinishJob(t.ctx, t.kube, j, true, msg)
		}
		t.mu.Lock()
		if err != nil && t.firstErr == nil {
			t.firstErr = err
		}
		t.finished++
		if t.finished == t.want {
			t.done = time.Now()
			close(t.finishedAll)
		}
		t.mu.Unlock()
	}
}

// stop ends the workers once they have finished what is queued; Jobs
// seen after it are ignored.
func (t *jobTracker) stop() {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.queue)
	}
	t.mu.Unlock()
	t.workers.Wait()
}

func (t *jobTracker) seenCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seen
}

func (t *jobTracker) finishedCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finished
}

func (t *jobTracker) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.firstErr
}

// auditLog counts one identity's requests in hack/local-cluster's audit log
// (level Metadata, every ServiceAccount request, written before the
// response: --audit-log-mode=blocking).
type auditLog struct {
	path string
	user string
}

// auditMark is where a count starts: the log's size and the time.
type auditMark struct {
	offset int64
	at     time.Time
}

func (a *auditLog) mark() (auditMark, error) {
	fi, err := os.Stat(a.path)
	if err != nil {
		return auditMark{}, err
	}
	return auditMark{offset: fi.Size(), at: time.Now()}, nil
}

// auditEvent is the part of an audit event a count needs.
type auditEvent struct {
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
}

// countUntilQuiet counts the identity's requests from m on, once none has
// come for quiet; it returns when the last one came.
func (a *auditLog) countUntilQuiet(ctx context.Context, m auditMark, quiet, limit time.Duration) (Requests, time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		now := time.Now()
		r, last, err := a.count(m, now)
		if err != nil {
			return nil, last, err
		}
		if last.IsZero() {
			last = m.at
		}
		if now.Sub(last) >= quiet {
			return r, last, nil
		}
		if now.After(deadline) {
			return nil, last, fmt.Errorf("%s still sending requests %v after the run (audit log %s)", a.user, limit, a.path)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return nil, last, err
		}
	}
}

// count counts the identity's requests received from m's time until until,
// each once (a watch has a line when it starts and one when it ends), and
// returns when the last of them was received.
func (a *auditLog) count(m auditMark, until time.Time) (Requests, time.Time, error) {
	var last time.Time
	f, err := os.Open(a.path)
	if err != nil {
		return nil, last, err
	}
	defer f.Close()
	if _, err := f.Seek(m.offset, 0); err != nil {
		return nil, last, err
	}
	out := Requests{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // a line still being written
		}
		if e.User.Username != a.user || seen[e.AuditID] || e.RequestReceivedTimestamp.Before(m.at) || e.RequestReceivedTimestamp.After(until) {
			continue
		}
		seen[e.AuditID] = true
		if e.RequestReceivedTimestamp.After(last) {
			last = e.RequestReceivedTimestamp
		}
		what := e.Verb + " "
		switch {
		case e.ObjectRef == nil:
			path, _, _ := strings.Cut(e.RequestURI, "?")
			what += path
		case e.ObjectRef.Subresource != "":
			what += e.ObjectRef.Resource + "/" + e.ObjectRef.Subresource
		default:
			what += e.ObjectRef.Resource
		}
		if e.ResponseStatus != nil && e.ResponseStatus.Code >= 300 {
			what += fmt.Sprintf(" (%d)", e.ResponseStatus.Code)
		}
		out[what]++
	}
	return out, last, sc.Err()
}

// serviceAccountKubeconfig makes ServiceAccount name in ns, bound to
// cluster-admin (the runs measure requests, not permissions: TestLeastPrivilege
// does that), and writes a kubeconfig with a token of it into dir: the
// local cluster's audit log records a ServiceAccount's requests, not the
// admin's. It returns the path and the user name the log shows.
func serviceAccountKubeconfig(ctx context.Context, c *clients, ns, name, dir string) (string, string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if _, err := c.kube.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", "", fmt.Errorf("create ServiceAccount: %w", err)
	}
	user := "system:serviceaccount:" + ns + ":" + name
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-" + ns + "-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
	}
	if _, err := c.kube.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", "", fmt.Errorf("create ClusterRoleBinding: %w", err)
	}
	tr, err := c.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(6 * 3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", "", fmt.Errorf("TokenRequest: %w", err)
	}
	ca := c.rest.CAData
	if len(ca) == 0 {
		if ca, err = os.ReadFile(c.rest.CAFile); err != nil {
			return "", "", fmt.Errorf("the cluster's CA: %w", err)
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: c.rest.Host, CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name}
	cfg.CurrentContext = "local"
	path := filepath.Join(dir, "apibudget-kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", "", err
	}
	// The binding reaches the authorizer's cache a moment after it is made.
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return "", "", err
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return "", "", err
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil, nil
	})
	if err != nil {
		return "", "", fmt.Errorf("ServiceAccount %s not allowed yet: %w", user, err)
	}
	return path, user, nil
}

// ensureNodes makes the Nodes the default node selector picks number n,
// creating what is missing; it returns the names it created.
func ensureNodes(ctx context.Context, c *clients, n int) ([]string, error) {
	sel, err := labels.Parse(cleanup.DefaultNodeSelector)
	if err != nil {
		return nil, err
	}
	list, err := c.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	have := len(list.Items)
	if have > n {
		return nil, fmt.Errorf("%d Nodes match %s already, more than -nodes %d", have, sel, n)
	}
	var names []string
	for i := range n - have {
		names = append(names, fmt.Sprintf("apibudget-node-%03d", i))
	}
	logf("apibudget: creating %d Nodes (%d match %s already)", len(names), have, sel)
	var mu sync.Mutex
	var created []string
	err = parallel(len(names), 8, func(i int) error {
		_, err := c.kube.CoreV1().Nodes().Create(ctx, cleanuptest.Node(names[i]), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create Node %s: %w", names[i], err)
		}
		mu.Lock()
		created = append(created, names[i])
		mu.Unlock()
		return nil
	})
	return created, err
}

// deleteNodes deletes the Nodes ensureNodes made, so the cluster is left
// as it was found (other benches' controllers watch Nodes).
func deleteNodes(c *clients, names []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := parallel(len(names), 8, func(i int) error {
		err := c.kube.CoreV1().Nodes().Delete(ctx, names[i], metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		logf("apibudget: delete Nodes: %v", err)
	}
}

// niceness is this process's nice value, from /proc/self/stat.
func niceness() int {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 17 {
		return 0
	}
	n, _ := strconv.Atoi(f[16]) // field 19, counted from the state (field 3)
	return n
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
