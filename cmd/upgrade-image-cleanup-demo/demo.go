package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/standalone"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

const (
	demoUpgrade = "hvst-upgrade-demo"
	// demoPrevious is the version the upgrade comes from: the older of
	// cleanuptest.Lists, which the repo serves and the nodes hold.
	demoPrevious = cleanuptest.PreviousVersion
	// demoTimeout bounds each wait of the demo beyond the outage it plays.
	demoTimeout = 30 * time.Second
)

// runDemo plays the single-node story: the upgrade completes while the repo's
// endpoint is not Ready; after --outage it becomes Ready; the plan is
// written; then (unless --dry-run) each simulated node's Job removes it.
// Same controller, in-memory cluster, real HTTP repo on 127.0.0.1.
func runDemo(ctx context.Context, f demoFlags, out io.Writer) error {
	s := standalone.DefaultSettings()
	s.DryRun = f.dryRun
	s.MetricsAddr, s.HealthAddr = f.metricsAddr, f.healthAddr
	s.Removal.RemoverImage = "example.invalid/image-remover:demo" // never pulled: the nodes are simulated
	tl := &timeline{out: out, start: time.Now()}
	// A real HTTP server on 127.0.0.1 serving the lists as the upgrade repo
	// does, recording every request.
	repo, err := cleanuptest.ServeLists()
	if err != nil {
		return err
	}
	defer repo.Close()
	ns := s.Namespace

	// The repo Service's EndpointSlice, its one endpoint not Ready yet, and
	// the Upgrade, still running.
	slice := cleanuptest.RepoSlice(demoUpgrade).Namespace(ns).Address(repo.IP()).Port(repo.Port()).Ready(false).Obj()
	upgrade := cleanuptest.Upgrade(demoUpgrade).Namespace(ns).PreviousVersion(demoPrevious).
		Condition("Completed", "Unknown").Condition("RepoReady", "True")
	objs := []runtime.Object{upgrade.Obj(), slice}
	for _, n := range demoNodeNames {
		objs = append(objs, cleanuptest.Node(n))
	}
	kube, dyn := cleanuptest.NewClients(objs...)
	upgrades := dyn.Resource(informers.UpgradeGVR).Namespace(ns)
	w, err := upgrades.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("watch demo upgrade: %w", err)
	}
	defer w.Stop()
	// Every watch from here on is the controller's: the Upgrade is
	// completed only once its informers watch, or they might never see it.
	watches := cleanuptest.TrackWatches(kube, dyn)

	runCtx, cancel := context.WithCancel(ctx)
	// done is closed after its one value, so both waitForState and the
	// deferred wait below can receive from it.
	done := make(chan error, 1)
	go func() {
		done <- standalone.Run(runCtx, standalone.Clients{Kube: kube, Dynamic: dyn, Clock: clock.RealClock{}}, s)
		close(done)
	}()
	defer func() { cancel(); <-done }()

	tl.printf("repo %s serves the lists at %s; its endpoint is not Ready (the repo VM is still booting)", informers.RepoServicePrefix+demoUpgrade, repo.URL())
	watched := []string{"upgrades", "endpointslices"}
	if !f.dryRun {
		watched = append(watched, "jobs", "nodes") // a dry run has no removal informers
	}
	watchCtx, cancelWatch := context.WithTimeout(ctx, demoTimeout)
	err = watches.Wait(watchCtx, watched...)
	cancelWatch()
	if err != nil {
		return fmt.Errorf("the controller did not start watching: %w", err)
	}
	if _, err := upgrades.Update(ctx, upgrade.Completed(true).Obj(), metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("complete demo upgrade: %w", err)
	}
	tl.printf("upgrade %s/%s is Completed", ns, demoUpgrade)
	if _, err := waitForState(ctx, w, tl, done, cleanup.StateWaitingForRepo); err != nil {
		return err
	}

	tl.printf("... the repo stays down for %v; the controller makes no request and burns no retry", f.outage)
	select {
	case <-time.After(f.outage):
	case <-ctx.Done():
		return ctx.Err()
	}
	final := cleanup.StateSucceeded
	stopNodes := func() {}
	if f.dryRun {
		final = cleanup.StatePlanned
	} else {
		nodes := newDemoNodes(kube, ns, tl)
		nodesCtx, cancelNodes := context.WithCancel(runCtx)
		jobs, err := nodes.watch(nodesCtx)
		if err != nil {
			cancelNodes()
			return err
		}
		nodesDone := make(chan struct{})
		go func() {
			defer close(nodesDone)
			nodes.run(nodesCtx, jobs)
		}()
		stopNodes = func() { cancelNodes(); <-nodesDone }
	}
	cleanuptest.SetReady(slice, true)
	// Taken before the write: the controller may see the Ready slice and
	// fetch before Update returns here.
	readyAt := time.Now()
	if _, err := kube.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		stopNodes()
		return fmt.Errorf("mark repo Ready: %w", err)
	}
	tl.printf("repo endpoint %s is Ready", repo.Addr())
	state, err := waitForState(ctx, w, tl, done, final, cleanup.StateFailed)
	// The summary below writes to out directly: the nodes stop first.
	stopNodes()
	if err != nil {
		return err
	}
	if state != final {
		return fmt.Errorf("demo ended in state %s", state)
	}
	if err := printSummary(ctx, out, kube.CoreV1().ConfigMaps(ns), repo, readyAt); err != nil {
		return err
	}
	if !f.dryRun {
		u, err := upgrades.Get(ctx, demoUpgrade, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := printRemoval(out, u.GetAnnotations()); err != nil {
			return err
		}
	}
	if f.metricsAddr != "" || f.healthAddr != "" {
		// Keep the endpoints up so a person can curl what the run counted.
		fmt.Fprintf(out, "\nServing --metrics-addr %q and --health-addr %q until interrupted (Ctrl-C).\n", f.metricsAddr, f.healthAddr)
		<-ctx.Done()
	}
	return nil
}

// waitForState prints every state the Upgrade passes until it reaches one of
// want.
func waitForState(ctx context.Context, w watch.Interface, tl *timeline, done <-chan error, want ...cleanup.State) (cleanup.State, error) {
	timeout := time.After(demoTimeout)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return "", fmt.Errorf("watch on the demo upgrade closed")
			}
			u, isU := ev.Object.(*unstructured.Unstructured)
			if !isU {
				continue
			}
			a := u.GetAnnotations()
			s := cleanup.State(a[cleanup.StateAnnotation])
			if s == "" || s == tl.lastState {
				continue
			}
			tl.lastState = s
			tl.printf("state %s: %s", s, a[cleanup.MessageAnnotation])
			for _, ws := range want {
				if s == ws {
					return s, nil
				}
			}
		case err := <-done:
			return "", fmt.Errorf("controller stopped early: %v", err)
		case <-timeout:
			return "", fmt.Errorf("demo upgrade did not reach %v within %v", want, demoTimeout)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// printSummary checks the written plan against one computed from the same
// lists, and prints what the demo showed.
func printSummary(ctx context.Context, out io.Writer, cms typedcorev1.ConfigMapInterface, repo *cleanuptest.HTTPRepo, readyAt time.Time) error {
	cm, err := cms.Get(ctx, cleanup.PlanConfigMapName(demoUpgrade), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read plan: %w", err)
	}
	expected, err := cleanuptest.ListsPlan(cleanup.DefaultOptions().Policy)
	if err != nil {
		return err
	}
	written := strings.Fields(cm.Data[cleanup.PlanKey])
	if strings.Join(written, "\n") != strings.Join(expected.Remove, "\n") {
		return fmt.Errorf("plan ConfigMap has %d images, the lists give %d", len(written), len(expected.Remove))
	}
	reqs := repo.Requests()
	before := 0
	for _, r := range reqs {
		if r.At.Before(readyAt) {
			before++
		}
	}
	kept := map[cleanup.Rule]int{}
	for _, k := range expected.Kept {
		kept[k.Rule]++
	}
	fmt.Fprintf(out, "\nSummary\n")
	fmt.Fprintf(out, "  requests to the repo before it was Ready: %d\n", before)
	if len(reqs) > 0 {
		fmt.Fprintf(out, "  Ready to first request:                  %v\n", reqs[0].At.Sub(readyAt).Round(100*time.Microsecond))
	}
	fmt.Fprintf(out, "  requests in all:                         %d (%s)\n", len(reqs), paths(reqs))
	fmt.Fprintf(out, "  images planned for removal:              %d, in ConfigMap %s/%s key %s\n", len(written), cm.Namespace, cm.Name, cleanup.PlanKey)
	for i, img := range written {
		if i == 5 {
			fmt.Fprintf(out, "    ... and %d more\n", len(written)-5)
			break
		}
		fmt.Fprintf(out, "    %s\n", img)
	}
	fmt.Fprintf(out, "  images kept:                             %d still in the current list, %d on the retain list, %d excluded\n",
		kept[cleanup.RuleInCurrent], kept[cleanup.RuleRetain], kept[cleanup.RuleExclude])
	return nil
}

// timeline prints lines stamped with the time since the demo started; the
// simulated nodes print on it too.
type timeline struct {
	out       io.Writer
	start     time.Time
	lastState cleanup.State
	mu        sync.Mutex
}

func (t *timeline) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, "%+8.3fs  %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

// paths lists the requests as "GET <path>".
func paths(reqs []cleanuptest.Request) string {
	var p []string
	for _, q := range reqs {
		p = append(p, "GET "+q.Path)
	}
	return strings.Join(p, ", ")
}
