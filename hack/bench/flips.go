//go:build bench

package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/testhost"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// Flip is one repo pod going Ready.
type Flip struct {
	Upgrade string `json:"upgrade"`
	// WriteMs is how long the pod status write took to return.
	WriteMs float64 `json:"writeMs"`
	// WatchMs: from just before the write to the bare informer's handler
	// seeing the slice's endpoint Ready.
	WatchMs float64 `json:"watchMs"`
	// CtrlMs: from just before the write to the repo's first request.
	CtrlMs float64 `json:"ctrlMs"`
	// At is when the write began (t0), for benches that time more from it.
	At time.Time `json:"-"`
}

// FlipSeries is a run of flips with the same pace.
type FlipSeries struct {
	Name string `json:"name"`
	// PauseS is how long the repo stays not Ready after the Upgrade reads
	// WaitingForRepo, before its pod is written Ready.
	PauseS   float64 `json:"pauseS"`
	Flips    []Flip  `json:"flips"`
	Ctrl     Stats   `json:"ctrl"`
	Watch    Stats   `json:"watch"`
	Overhead Stats   `json:"overhead"`
	Write    Stats   `json:"write"`
	// Premature counts requests the repo got before its pod's Ready write.
	Premature int `json:"premature"`
	// GateToRequest is the controller's own histogram
	// upgrade_image_cleanup_ready_to_first_request_seconds over the series
	// (from the gate seeing Ready to the first request): count and mean.
	GateToRequestCount  float64 `json:"gateToRequestCount"`
	GateToRequestMeanMs float64 `json:"gateToRequestMeanMs"`
}

// FlipsResult is what bench flips writes.
type FlipsResult struct {
	// Flips are the paced series' flips (what bench sim samples).
	Flips         []Flip       `json:"flips"`
	Series        []FlipSeries `json:"series"`
	ServerVersion string       `json:"serverVersion"`
	RepoAddress   string       `json:"repoAddress"`
	Elapsed       string       `json:"elapsed"`
}

// flipRepo serves any version's list and records, per requested version,
// when its first request arrived. Every flip's Upgrade has its own
// previousVersion, so the first request of a flip names it.
type flipRepo struct {
	mu    sync.Mutex
	first map[string]time.Time
	wait  map[string]chan time.Time
	// armed holds the versions whose pod was written Ready, and when.
	armed     map[string]time.Time
	premature int
}

func (r *flipRepo) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	version, _, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, cleanup.ArchivePath), "/")
	r.mu.Lock()
	if _, seen := r.first[version]; !seen && version != cleanup.CurrentVersion {
		r.first[version] = at
		if t, ok := r.armed[version]; !ok || at.Before(t) {
			r.premature++
		}
		if ch := r.wait[version]; ch != nil {
			ch <- at
		}
	}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	for i := range 200 {
		if version == cleanup.CurrentVersion || i%2 == 0 {
			fmt.Fprintf(w, "docker.io/rancher/component-%d:v1.5.0\n", i)
		} else {
			fmt.Fprintf(w, "docker.io/rancher/component-%d:v1.4.2\n", i)
		}
	}
}

func (r *flipRepo) expect(version string) chan time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan time.Time, 1)
	r.wait[version] = ch
	return ch
}

func (r *flipRepo) prematureCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.premature
}

func (r *flipRepo) arm(version string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed[version] = at
}

// sliceWatch is the bare informer: the same filtered EndpointSlice
// informer the controller builds, with a handler that notes when each repo
// Service's slice first shows a Ready endpoint, and when it shows a not-Ready one.
type sliceWatch struct {
	mu       sync.Mutex
	ready    map[string]chan time.Time
	notReady map[string]bool
}

func (s *sliceWatch) observe(obj any) {
	at := time.Now()
	sl, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	svc := sl.Labels[discoveryv1.LabelServiceName]
	ready := informers.ReadinessOf([]*discoveryv1.EndpointSlice{sl}).Ready()
	s.mu.Lock()
	defer s.mu.Unlock()
	if ready {
		if ch := s.ready[svc]; ch != nil {
			ch <- at
			s.ready[svc] = nil
		}
	} else if len(sl.Endpoints) > 0 {
		s.notReady[svc] = true
	}
}

func (s *sliceWatch) expect(svc string) chan time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan time.Time, 1)
	s.ready[svc] = ch
	return ch
}

func (s *sliceWatch) sawNotReady(svc string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notReady[svc]
}

func runFlips(args []string) error {
	fs := flag.NewFlagSet("flips", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "cluster (hack/local-cluster)")
	bin := fs.String("controller", "", "the built controller binary")
	root := fs.String("root", ".", "the repository's root (for deploy/crd)")
	n := fs.Int("flips", 100, "Ready flips of the paced series")
	pause := fs.Duration("pause", 1500*time.Millisecond, "paced series: how long the repo stays not Ready after WaitingForRepo")
	burst := fs.Int("back-to-back", 30, "flips of the back-to-back series (no pause); 0 for none")
	nsName := fs.String("netns", "uicbench", "name of the network namespace to create for the repo")
	index := fs.Int("netns-index", 40, "the repo's addresses are 198.18.INDEX.1 (host) and .2 (repo)")
	workdir := fs.String("workdir", os.TempDir(), "where the controller's log goes")
	out := fs.String("out", "flips.json", "result file")
	_ = fs.Parse(args)
	if *kubeconfig == "" || *bin == "" {
		return fmt.Errorf("-kubeconfig and -controller are required")
	}
	began := time.Now()
	ctx, cancel := context.WithCancel(klog.NewContext(signalled, logr.Discard()))
	defer cancel()
	c, err := newClients(*kubeconfig)
	if err != nil {
		return err
	}
	if err := prepareCluster(ctx, c, *root); err != nil {
		return err
	}
	var res FlipsResult
	if v, err := c.kube.Discovery().ServerVersion(); err == nil {
		res.ServerVersion = v.GitVersion
	}

	host, repo, watch, stop, err := startRepoAndWatch(ctx, c, *nsName, *index, benchNS)
	if err != nil {
		return err
	}
	defer stop()

	proc, _, err := startController(ctx, *bin, *kubeconfig, filepath.Join(*workdir, "flips-controller.log"))
	if err != nil {
		return err
	}
	defer proc.stop()

	res.RepoAddress = fmt.Sprintf("%s:%d", host.PodIP, repoPort)
	run := rand.String(4)
	flip := 0
	for _, sr := range []struct {
		name  string
		n     int
		pause time.Duration
	}{
		{"paced", *n, *pause},
		{"back-to-back", *burst, 0},
	} {
		if sr.n == 0 {
			continue
		}
		logf("flips: %s series, %d Ready flips (repo at %s in netns %s)", sr.name, sr.n, res.RepoAddress, host.Name)
		before, _ := proc.metrics()
		premature := repo.prematureCount()
		series := FlipSeries{Name: sr.name, PauseS: sr.pause.Seconds()}
		for i := range sr.n {
			upgrade := fmt.Sprintf("bflip-%s-%03d", run, flip)
			version := fmt.Sprintf("v1.4.2-b%03d", flip)
			flip++
			f, err := flipOnce(ctx, c, benchNS, repo, watch, host, repoPort, upgrade, version, sr.pause)
			if err != nil {
				return fmt.Errorf("flip %d: %w (controller log %s)", flip, err, proc.logPath)
			}
			series.Flips = append(series.Flips, f)
			if (i+1)%25 == 0 {
				logf("flips: %d done", i+1)
			}
		}
		var ctrl, watchD, over, write []time.Duration
		ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
		for _, f := range series.Flips {
			ctrl, watchD = append(ctrl, ms(f.CtrlMs)), append(watchD, ms(f.WatchMs))
			over, write = append(over, ms(f.CtrlMs-f.WatchMs)), append(write, ms(f.WriteMs))
		}
		series.Ctrl, series.Watch, series.Overhead, series.Write = stats(ctrl), stats(watchD), stats(over), stats(write)
		series.Premature = repo.prematureCount() - premature
		if after, err := proc.metrics(); err == nil && before != nil {
			const h = "upgrade_image_cleanup_ready_to_first_request_seconds"
			count := after[h+"_count"] - before[h+"_count"]
			series.GateToRequestCount = count
			if count > 0 {
				series.GateToRequestMeanMs = (after[h+"_sum"] - before[h+"_sum"]) / count * 1000
			}
		}
		if sr.name == "paced" {
			res.Flips = series.Flips
		}
		res.Series = append(res.Series, series)
	}
	res.Elapsed = time.Since(began).Round(time.Millisecond).String()
	return writeJSON(*out, res)
}

// flipOnce creates a fresh Upgrade, its repo Service and not-Ready pod,
// completes the Upgrade, waits for WaitingForRepo and pause more (the rest of the outage),
// then writes the pod Ready and times the bare informer's event and the
// repo's first request from just before that write.
func flipOnce(ctx context.Context, c *clients, ns string, repo *flipRepo, watch *sliceWatch, h *testhost.Host, port int32, upgrade, version string, pause time.Duration) (Flip, error) {
	// As in Harvester: the Upgrade exists first, then its repo; the upgrade
	// completes while the repo is still not Ready.
	res := c.dynamic.Resource(informers.UpgradeGVR).Namespace(ns)
	u := cleanuptest.Upgrade(upgrade).Namespace(ns).PreviousVersion(version).Obj()
	// The API server keeps no status on create: it is written below.
	created, err := res.Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		return Flip{}, fmt.Errorf("create Upgrade: %w", err)
	}
	svcName := informers.RepoServicePrefix + upgrade
	svc := cleanuptest.RepoService(upgrade, port)
	svc.Namespace = ns
	if _, err := c.kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return Flip{}, fmt.Errorf("create Service: %w", err)
	}
	pod := cleanuptest.RepoPod(upgrade, "node1", port)
	pod.Namespace = ns
	pod, err = c.kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return Flip{}, fmt.Errorf("create Pod: %w", err)
	}
	if pod, err = writePodReady(ctx, c, pod, h, false); err != nil {
		return Flip{}, err
	}
	created.Object["status"] = u.Object["status"]
	if _, err := res.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return Flip{}, fmt.Errorf("complete Upgrade: %w", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := res.Get(ctx, upgrade, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return got.GetAnnotations()[cleanup.StateAnnotation] == string(cleanup.StateWaitingForRepo) && watch.sawNotReady(svcName), nil
	})
	if err != nil {
		return Flip{}, fmt.Errorf("waiting for WaitingForRepo and a not-Ready endpoint: %w", err)
	}
	firstReq, event := repo.expect(version), watch.expect(svcName)
	if err := sleep(ctx, pause); err != nil {
		return Flip{}, err
	}

	// The write: from here on, both clocks run.
	t0 := time.Now()
	repo.arm(version, t0)
	if _, err := writePodReady(ctx, c, pod, h, true); err != nil {
		return Flip{}, err
	}
	written := time.Now()
	var f Flip
	f.Upgrade, f.WriteMs, f.At = upgrade, msSince(t0, written), t0
	timeout := time.After(30 * time.Second)
	for got := 0; got < 2; got++ {
		select {
		case at := <-firstReq:
			f.CtrlMs = msSince(t0, at)
		case at := <-event:
			f.WatchMs = msSince(t0, at)
		case <-timeout:
			return Flip{}, fmt.Errorf("no request or no Ready event within 30 s of the Ready write (request %.1f ms, event %.1f ms)", f.CtrlMs, f.WatchMs)
		}
	}
	return f, nil
}

func msSince(from, to time.Time) float64 {
	return float64(to.Sub(from)) / float64(time.Millisecond)
}

// writePodReady writes the pod's status as a kubelet would; it returns the
// updated pod, so the next write needs no read first.
func writePodReady(ctx context.Context, c *clients, pod *corev1.Pod, h *testhost.Host, ready bool) (*corev1.Pod, error) {
	p := pod.DeepCopy()
	p.Status = h.PodStatus(ready)
	out, err := c.kube.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("write pod status ready=%v: %w", ready, err)
	}
	return out, nil
}

// repoPort is the port the bench's repo serves on in its network namespace.
const repoPort = 8080

// startRepoAndWatch starts what the flips and the API budget measure
// against: the repo, serving on repoPort in a network namespace of its own
// (nsName, index: testhost), and a bare EndpointSlice informer on ns with
// the controller's selector, synced, whose events watch records. stop
// closes the server and deletes the namespace.
func startRepoAndWatch(ctx context.Context, c *clients, nsName string, index int, ns string) (*testhost.Host, *flipRepo, *sliceWatch, func(), error) {
	host, err := testhost.New(nsName, index)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	l, err := host.Listen(repoPort)
	if err != nil {
		host.Close()
		return nil, nil, nil, nil, err
	}
	repo := &flipRepo{first: map[string]time.Time{}, wait: map[string]chan time.Time{}, armed: map[string]time.Time{}}
	srv := &http.Server{Handler: repo, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	stop := func() {
		_ = srv.Close()
		host.Close()
	}
	watch := &sliceWatch{ready: map[string]chan time.Time{}, notReady: map[string]bool{}}
	bare := informers.NewEndpointSliceInformer(c.kube, ns, cleanup.DefaultOptions().Selector, 0)
	if _, err := bare.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { watch.observe(obj) },
		UpdateFunc: func(_, obj any) { watch.observe(obj) },
	}); err != nil {
		stop()
		return nil, nil, nil, nil, err
	}
	go bare.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), bare.HasSynced) {
		stop()
		return nil, nil, nil, nil, fmt.Errorf("bare informer did not sync")
	}
	return host, repo, watch, stop, nil
}
