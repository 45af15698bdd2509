//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// TestFlappingRepoDuringFetch: the repo pod goes not Ready while the
// controller is fetching its first list, and the connection drops. That
// failure is not the repo's fault: the controller must not spend a retry on
// it (no "Sync failed" backoff) nor ask the repo anything while it is not
// Ready; the Upgrade says WaitingForRepo, "repo went not ready during the
// fetch". When the pod is Ready again the controller fetches both lists once,
// writes one plan and removes on every node through to Succeeded.
func TestFlappingRepoDuringFetch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	upgrade := uniqueName("hvst-upgrade")
	pod := cleanuptest.RepoPodName(upgrade)
	h := newTestHost(t, 10)

	// The first request flips the pod to not Ready, waits until the real
	// EndpointSlice controller has published ready=false, then hangs up
	// without an answer; every later request is served from the demo lists.
	var ctlRef atomic.Pointer[controllerProc] // the handler runs on the server's goroutines
	var hangup struct {
		sync.Mutex
		at       time.Time     // when the connection was closed
		waited   time.Duration // pod status write to ready=false seen in the API
		seen     time.Duration // ... and to the controller's gate enqueueing the change
		seenErr  error         // why the test could not tell the controller had seen it
		err      error         // why the handler could not play its part
		finished chan struct{}
	}
	hangup.finished = make(chan struct{})
	r := serveRecording(t, h.listen(t, 8080), func(n int, w http.ResponseWriter, req *http.Request) bool {
		if n != 1 {
			return false
		}
		defer close(hangup.finished)
		start := time.Now()
		// The upgrade's key is in flight (this very fetch), so the gate's
		// reaction to the slice going not ready is the queue's next add.
		ctl := ctlRef.Load()
		adds, addsErr := controllerMetric(req.Context(), ctl, queueAdds)
		err := flipNotReady(req.Context(), upgrade, pod, h)
		hangup.Lock()
		defer hangup.Unlock()
		hangup.waited = time.Since(start)
		if err != nil {
			hangup.err = err
			http.Error(w, "test could not flip the pod", http.StatusServiceUnavailable)
			return true
		}
		// The API says not ready; the controller decides from its informer
		// cache, which a watch event later catches up. Hanging up before it
		// has would test the cache's lag, not the controller's decision:
		// wait (bounded well inside the controller's 4 s request timeout)
		// until its gate has enqueued the change, which it does after the
		// cache holds the new slice.
		if addsErr == nil {
			addsErr = wait.PollUntilContextTimeout(req.Context(), 5*time.Millisecond, 2*time.Second, true, func(ctx context.Context) (bool, error) {
				now, err := controllerMetric(ctx, ctl, queueAdds)
				return err == nil && now > adds, nil
			})
		}
		hangup.seen, hangup.seenErr = time.Since(start), addsErr
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			hangup.err = fmt.Errorf("hijack: %w", err)
			return true
		}
		_ = conn.Close()
		hangup.at = time.Now()
		return true
	})
	createRepo(t, ctx, upgrade, h, 8080)
	jobs := recordCreations(t, ctx, jobsGVR, informers.UpgradeLabel+"="+upgrade)
	plans := recordCreations(t, ctx, configMapsGVR, informers.UpgradeLabel+"="+upgrade)
	createCompletedUpgrade(t, ctx, upgrade, "v1.4.2")
	dumpOnFailure(t, upgrade, r.String)
	ctl := startController(t, "controller", "--remover-image", removerImage, "--metrics-addr", "127.0.0.1:0")
	ctlRef.Store(ctl)

	waitState(t, ctx, upgrade, cleanup.StateWaitingForRepo, 30*time.Second)
	if n := len(r.Requests()); n != 0 {
		t.Fatalf("the repo got %d requests while its pod was not Ready: %s", n, r)
	}

	firstReadyAt := time.Now()
	setPodReady(t, ctx, pod, h, true)
	select {
	case <-hangup.finished:
	case <-ctx.Done():
		t.Fatalf("no request reached the repo after its pod was Ready: %s", r)
	}
	hangup.Lock()
	hungUpAt, waited, seen, seenErr, herr := hangup.at, hangup.waited, hangup.seen, hangup.seenErr, hangup.err
	hangup.Unlock()
	if herr != nil {
		t.Fatalf("the repo's handler could not flip the pod to not Ready: %v", herr)
	}
	t.Logf("pod Ready -> first request: %v; the handler waited %v for ready=false in the API, %v for the controller's gate, then hung up",
		r.Requests()[0].At.Sub(firstReadyAt).Round(time.Millisecond), waited.Round(time.Millisecond), seen.Round(time.Millisecond))
	if seenErr != nil {
		t.Logf("could not tell whether the controller's cache had seen ready=false before the hang-up: %v", seenErr)
	}

	// The controller decides from its caches why the fetch failed: the
	// repo went away, so it logs that decision and spends no retry.
	waitFor(t, ctx, "the controller to handle the failed fetch", 30*time.Second, func(context.Context) (bool, error) {
		log := ctl.log()
		return strings.Contains(log, "the fetch failed after the repo went not ready") || strings.Contains(log, "Sync failed"), nil
	})
	if strings.Contains(ctl.log(), "Sync failed") {
		t.Errorf("the controller spent a retry on a failure caused by the repo going away (log says \"Sync failed\")")
	}
	// ... and says so on the Upgrade.
	const wantMsg = "repo went not ready during the fetch"
	var a map[string]string
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := annotationsOf(ctx, upgrade)
		if err != nil {
			return false, nil
		}
		a = got
		return strings.HasPrefix(a[cleanup.MessageAnnotation], wantMsg), nil
	})
	switch {
	case err == nil:
	case strings.Contains(ctl.log(), "the fetch failed after the repo went not ready"):
		t.Errorf("the controller logged that the fetch failed because the repo went not ready, but the Upgrade "+
			"does not say so: state %q, message %q; want WaitingForRepo, message starting %q "+
			"(the state was WaitingForRepo before the fetch and stayed so, and the controller does not rewrite the "+
			"message of an unchanged WaitingForRepo; README, Troubleshooting, documents this message)",
			a[cleanup.StateAnnotation], a[cleanup.MessageAnnotation], wantMsg)
	default:
		t.Errorf("the controller did not take the failed fetch for the repo going away: state %q, message %q; want WaitingForRepo, message starting %q",
			a[cleanup.StateAnnotation], a[cleanup.MessageAnnotation], wantMsg)
	}
	if s := a[cleanup.StateAnnotation]; s != string(cleanup.StateWaitingForRepo) {
		t.Fatalf("state after the failed fetch = %q (%s), want WaitingForRepo", s, a[cleanup.MessageAnnotation])
	}
	if reqs := r.Requests(); len(reqs) != 1 {
		t.Fatalf("requests before the pod was Ready again = %d, want only the one that hung up: %s", len(reqs), r)
	}
	if _, err := env.kube.CoreV1().ConfigMaps(ns).Get(ctx, cleanup.PlanConfigMapName(upgrade), metav1.GetOptions{}); err == nil {
		t.Fatal("a plan ConfigMap exists although no fetch succeeded")
	}

	secondReadyAt := time.Now()
	setPodReady(t, ctx, pod, h, true)
	waitState(t, ctx, upgrade, cleanup.StateRemoving, 30*time.Second)

	reqs := r.Requests()
	if len(reqs) != 3 {
		t.Fatalf("requests = %d, want 3 (1 that hung up, then each list once): %s", len(reqs), r)
	}
	wantPaths := []string{cleanup.ListPath("v1.4.2"), cleanup.ListPath("v1.4.2"), cleanup.ListPath(cleanup.CurrentVersion)}
	for i, q := range reqs {
		if q.Path != wantPaths[i] {
			t.Errorf("request %d asked %s, want %s", i+1, q.Path, wantPaths[i])
		}
		if i > 0 && (q.At.Before(secondReadyAt) || q.Status != http.StatusOK) {
			t.Errorf("request %d: %s at %s (Ready again at %s), status %d; want after Ready, 200",
				i+1, q.Path, q.At.Format(time.StampMicro), secondReadyAt.Format(time.StampMicro), q.Status)
		}
		if q.At.After(hungUpAt) && q.At.Before(secondReadyAt) {
			t.Errorf("request %d (%s) came while the pod was not Ready", i+1, q.Path)
		}
	}
	if reqs[0].Status != cleanuptest.StatusHungUp {
		t.Errorf("the first request was answered (%d); the test meant to hang up", reqs[0].Status)
	}

	checkOnePlan(t, ctx, upgrade, plans)
	js := checkJobsPerNode(t, ctx, upgrade)
	for _, n := range nodeNames {
		finishJob(t, ctx, js[n], report.Result{Removed: 4})
	}
	waitState(t, ctx, upgrade, cleanup.StateSucceeded, 30*time.Second)
	checkSucceeded(t, ctx, upgrade, 4)
	jobs.check(t)
	if got := jobs.names(); len(got) != len(nodeNames) {
		t.Errorf("Jobs created = %v, want one per node %v", got, nodeNames)
	}
	if n := len(r.Requests()); n != 3 {
		t.Errorf("requests after the removal = %d, want still 3: %s", n, r)
	}
	if strings.Contains(ctl.log(), "Sync failed") {
		t.Errorf("the controller spent a retry (log says \"Sync failed\")")
	}
}

// ---- helpers of the flap, API server restart and controller restart scenarios ----

// queueAdds is the controller's workqueue add counter (client-go counts an
// add of a key in flight, which the queue marks dirty).
const queueAdds = `workqueue_adds_total{name="upgrade-image-cleanup"}`

// controllerMetric reads one sample, by its exposition name and labels, from
// the /metrics of a controller started with --metrics-addr (the address it
// logs, so port 0 works).
func controllerMetric(ctx context.Context, p *controllerProc, sample string) (float64, error) {
	addr := p.servingAddr("--metrics-addr")
	if addr == "" {
		return 0, errors.New("the controller logged no metrics address")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no sample %s in the controller's metrics", sample)
}

var (
	jobsGVR       = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	configMapsGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

// flipNotReady writes the repo pod's status as not Ready, as a kubelet would
// when the repo's readiness probe fails, and waits until the EndpointSlice
// controller has published the endpoint as not ready. It returns errors
// instead of failing: it runs in the repo's handler goroutine.
func flipNotReady(ctx context.Context, upgrade, pod string, h *testHost) error {
	if err := writePodReady(ctx, pod, h, false); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 3*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := sliceReadiness(ctx, upgrade)
		return s == "not-ready", err
	})
}

// writePodReady is setPodReady for goroutines other than the test's.
func writePodReady(ctx context.Context, name string, h *testHost, ready bool) error {
	patch, err := json.Marshal(map[string]any{"status": h.PodStatus(ready)})
	if err != nil {
		return err
	}
	_, err = env.kube.CoreV1().Pods(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patch Pod %s status: %w", name, err)
	}
	return nil
}

// sliceReadiness reads the repo Service's EndpointSlices from the API server:
// "ready" when an endpoint is ready (unset counts as ready, as kube-proxy
// reads it), "not-ready" when there are endpoints and none is, "none" when
// there is no endpoint.
func sliceReadiness(ctx context.Context, upgrade string) (string, error) {
	list, err := env.kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + informers.RepoServicePrefix + upgrade,
	})
	if err != nil {
		return "", err
	}
	state := "none"
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				return "ready", nil
			}
			state = "not-ready"
		}
	}
	return state, nil
}

// waitState waits until the Upgrade's state annotation is want. A state that
// cannot lead to want (Failed, or Succeeded when want is another) ends the
// wait at once, with the message.
func waitState(t *testing.T, ctx context.Context, upgrade string, want cleanup.State, timeout time.Duration) {
	t.Helper()
	var a map[string]string
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		read, err := annotationsOf(ctx, upgrade)
		if err != nil {
			lastErr = err
			return false, nil // the API may be coming back; the timeout bounds it
		}
		a, lastErr = read, nil
		got := cleanup.State(a[cleanup.StateAnnotation])
		switch {
		case got == want:
			return true, nil
		case got == cleanup.StateFailed || got == cleanup.StateSucceeded:
			return false, fmt.Errorf("state is %s: %s", got, a[cleanup.MessageAnnotation])
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("waiting for state %s: %v; last read: state %q, message %q, error %v",
			want, err, a[cleanup.StateAnnotation], a[cleanup.MessageAnnotation], lastErr)
	}
}

// annotationsOf reads the Upgrade's annotations; upgradeAnnotations for
// conditions that must not fail the test on one failed read.
func annotationsOf(ctx context.Context, upgrade string) (map[string]string, error) {
	u, err := env.dynamic.Resource(informers.UpgradeGVR).Namespace(ns).Get(ctx, upgrade, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return u.GetAnnotations(), nil
}

// creations records every object of a resource, matching a label selector,
// that exists when it starts or is created later (by UID), until the test
// ends. Creations by name and UID show whether something was created twice,
// even if a copy was deleted in between.
type creations struct {
	mu    sync.Mutex
	uids  map[types.UID]string // UID -> name
	order []types.UID
	err   error
}

func recordCreations(t *testing.T, ctx context.Context, gvr schema.GroupVersionResource, selector string) *creations {
	t.Helper()
	c := &creations{uids: map[types.UID]string{}}
	res := env.dynamic.Resource(gvr).Namespace(ns)
	// Watch from a list's resourceVersion: a watch without one asks for a
	// consistent read that Debian's etcd 3.4 cannot confirm.
	list, err := res.List(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: "0"})
	if err != nil {
		t.Fatalf("list %s: %v", gvr.Resource, err)
	}
	for _, o := range list.Items {
		c.add(o.GetUID(), o.GetName())
	}
	wctx, stop := context.WithCancel(context.Background())
	w, err := res.Watch(wctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		stop()
		t.Fatalf("watch %s: %v", gvr.Resource, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added:
				if o, ok := ev.Object.(interface {
					GetUID() types.UID
					GetName() string
				}); ok {
					c.add(o.GetUID(), o.GetName())
				}
			case watch.Error:
				c.mu.Lock()
				c.err = fmt.Errorf("watch %s: %v", gvr.Resource, ev.Object)
				c.mu.Unlock()
			}
		}
		if wctx.Err() == nil {
			c.mu.Lock()
			if c.err == nil {
				c.err = fmt.Errorf("watch %s closed early", gvr.Resource)
			}
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { stop(); w.Stop(); <-done })
	return c
}

func (c *creations) add(uid types.UID, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.uids[uid]; !seen {
		c.uids[uid] = name
		c.order = append(c.order, uid)
	}
}

// names returns the names of all objects seen, one per UID, in order.
func (c *creations) names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.order))
	for _, u := range c.order {
		out = append(out, c.uids[u])
	}
	return out
}

// check fails the test if the watch broke: then it may have missed creations.
func (c *creations) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		t.Errorf("cannot tell what was created: %v", c.err)
	}
}

// checkOnePlan checks that exactly one plan ConfigMap was ever created for
// the upgrade, under its name, owned by the Upgrade, and returns it.
func checkOnePlan(t *testing.T, ctx context.Context, upgrade string, plans *creations) *corev1.ConfigMap {
	t.Helper()
	name := cleanup.PlanConfigMapName(upgrade)
	list, err := env.kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: informers.UpgradeLabel + "=" + upgrade})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != name {
		var names []string
		for _, cm := range list.Items {
			names = append(names, cm.Name)
		}
		t.Fatalf("ConfigMaps of the upgrade = %v, want only %s", names, name)
	}
	cm := &list.Items[0]
	plans.check(t)
	if got := plans.names(); len(got) != 1 || got[0] != name {
		t.Errorf("ConfigMaps created = %v, want %s once", got, name)
	}
	if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].Name != upgrade {
		t.Errorf("plan owners = %+v, want the Upgrade", cm.OwnerReferences)
	}
	if len(strings.Fields(cm.Data[cleanup.PlanKey])) == 0 {
		t.Error("the plan is empty")
	}
	return cm
}

// checkJobsPerNode checks that the upgrade has one removal Job on each node,
// owned by the plan, and returns them by node.
func checkJobsPerNode(t *testing.T, ctx context.Context, upgrade string) map[string]*batchv1.Job {
	t.Helper()
	js := removalJobs(t, ctx, upgrade)
	if len(js) != len(nodeNames) {
		t.Fatalf("%d removal Jobs, want one per node %v", len(js), nodeNames)
	}
	for _, n := range nodeNames {
		j := js[n]
		if j == nil {
			t.Fatalf("no removal Job on node %s", n)
		}
		if len(j.OwnerReferences) != 1 || j.OwnerReferences[0].Name != cleanup.PlanConfigMapName(upgrade) {
			t.Errorf("Job %s owners = %+v, want the plan ConfigMap", j.Name, j.OwnerReferences)
		}
	}
	return js
}

// checkSucceeded checks the final annotations: Harvester's done flag and a
// summary with every node succeeded and removed images each.
func checkSucceeded(t *testing.T, ctx context.Context, upgrade string, removed int) {
	t.Helper()
	a := upgradeAnnotations(t, ctx, upgrade)
	if a[cleanup.HarvesterDoneAnnotation] != "true" {
		t.Errorf("%s = %q, want \"true\"", cleanup.HarvesterDoneAnnotation, a[cleanup.HarvesterDoneAnnotation])
	}
	var s cleanup.Summary
	if err := json.Unmarshal([]byte(a[cleanup.SummaryAnnotation]), &s); err != nil {
		t.Fatalf("summary annotation %q: %v", a[cleanup.SummaryAnnotation], err)
	}
	var nodes []string
	for _, n := range s.Nodes {
		nodes = append(nodes, n.Node)
		if n.Outcome != "succeeded" || n.Result == nil || n.Result.Removed != removed {
			t.Errorf("summary of node %s = %+v, want succeeded with %d removed", n.Node, n, removed)
		}
	}
	sort.Strings(nodes)
	if !slices.Equal(nodes, nodeNames) || s.Total.Removed != removed*len(nodeNames) {
		t.Errorf("summary = %s, want nodes %v and %d removed in total", a[cleanup.SummaryAnnotation], nodeNames, removed*len(nodeNames))
	}
}

// dumpOnFailure logs, when the test has failed, the objects that tell what
// happened: the Upgrade's annotations, the repo's EndpointSlices, the
// upgrade's Jobs and ConfigMaps, and what the repo was asked (repoLog). It
// must be registered after the objects are created, so that it runs before
// their cleanups delete them.
func dumpOnFailure(t *testing.T, upgrade string, repoLog func() string) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// The test's context may be over; the API may be down (a failed
		// restart): bounded, and every error is printed instead.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		var b strings.Builder
		fmt.Fprintf(&b, "cluster objects of upgrade %s at %s:\n", upgrade, time.Now().Format(time.StampMicro))
		if u, err := env.dynamic.Resource(informers.UpgradeGVR).Namespace(ns).Get(ctx, upgrade, metav1.GetOptions{}); err != nil {
			fmt.Fprintf(&b, "Upgrade: %v\n", err)
		} else {
			fmt.Fprintf(&b, "Upgrade resourceVersion %s annotations:\n", u.GetResourceVersion())
			keys := make([]string, 0, len(u.GetAnnotations()))
			for k := range u.GetAnnotations() {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(&b, "  %s: %s\n", k, u.GetAnnotations()[k])
			}
		}
		slicesList, err := env.kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelServiceName + "=" + informers.RepoServicePrefix + upgrade,
		})
		if err != nil {
			fmt.Fprintf(&b, "EndpointSlices: %v\n", err)
		} else {
			fmt.Fprintf(&b, "EndpointSlices: %d\n", len(slicesList.Items))
			for _, s := range slicesList.Items {
				fmt.Fprintf(&b, "  %s rv %s labels %v ports %d\n", s.Name, s.ResourceVersion, s.Labels, len(s.Ports))
				for _, e := range s.Endpoints {
					fmt.Fprintf(&b, "    %v ready=%s serving=%s terminating=%s\n", e.Addresses,
						boolPtr(e.Conditions.Ready), boolPtr(e.Conditions.Serving), boolPtr(e.Conditions.Terminating))
				}
			}
		}
		jobList, err := env.kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: informers.UpgradeLabel + "=" + upgrade})
		if err != nil {
			fmt.Fprintf(&b, "Jobs: %v\n", err)
		} else {
			fmt.Fprintf(&b, "Jobs: %d\n", len(jobList.Items))
			for _, j := range jobList.Items {
				var conds []string
				for _, c := range j.Status.Conditions {
					conds = append(conds, fmt.Sprintf("%s=%s", c.Type, c.Status))
				}
				fmt.Fprintf(&b, "  %s uid %s node %s created %s succeeded %d failed %d conditions %v\n", j.Name, j.UID,
					j.Spec.Template.Spec.NodeName, j.CreationTimestamp.Format(time.RFC3339), j.Status.Succeeded, j.Status.Failed, conds)
			}
		}
		cmList, err := env.kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: informers.UpgradeLabel + "=" + upgrade})
		if err != nil {
			fmt.Fprintf(&b, "ConfigMaps: %v\n", err)
		} else {
			fmt.Fprintf(&b, "ConfigMaps: %d\n", len(cmList.Items))
			for _, cm := range cmList.Items {
				fmt.Fprintf(&b, "  %s uid %s created %s annotations %v images %d\n", cm.Name, cm.UID,
					cm.CreationTimestamp.Format(time.RFC3339), cm.Annotations, len(strings.Fields(cm.Data[cleanup.PlanKey])))
			}
		}
		if repoLog != nil {
			fmt.Fprintf(&b, "repo: %s\n", repoLog())
		}
		t.Log(b.String())
	})
}

func boolPtr(p *bool) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
