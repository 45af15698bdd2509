//go:build bench

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// ScaleRun is one run of the controller binary with the unrelated slices in
// its namespace.
type ScaleRun struct {
	Variant string `json:"variant"`
	// Args are the flags on top of --dry-run and the metrics address.
	Args []string `json:"args"`
	// ReadyS: process start to /readyz answering 200 (caches synced).
	ReadyS float64 `json:"readyS"`
	// CPUToReadyS: CPU time (user+system) the process used until then.
	CPUToReadyS float64 `json:"cpuToReadyS"`
	// After sync and 3 s of quiet: resident set, its peak so far, and the
	// Go heap (in-use spans, and allocated objects live or not yet swept).
	RSSBytes       int64   `json:"rssBytes"`
	PeakRSSBytes   int64   `json:"peakRssBytes"`
	HeapInuseBytes float64 `json:"heapInuseBytes"`
	HeapAllocBytes float64 `json:"heapAllocBytes"`
	// ChurnUpdates unrelated slices updated while it ran; CPUChurnS the
	// CPU time it spent from the first update until 2 s after the last.
	ChurnUpdates int     `json:"churnUpdates"`
	ChurnS       float64 `json:"churnS"`
	CPUChurnS    float64 `json:"cpuChurnS"`
	// CPUIdleS is the CPU it spent in the 3 s of quiet after sync.
	CPUIdleS float64 `json:"cpuIdleS"`
}

// InformerMem is what bench informer-mem reports for one informer.
type InformerMem struct {
	Variant  string  `json:"variant"`
	Selector string  `json:"selector"`
	Objects  int     `json:"objects"`
	SyncMs   float64 `json:"syncMs"`
	// HeapLiveBytes: live heap after a full GC with the synced informer,
	// minus the same before it was built.
	HeapLiveBytes int64 `json:"heapLiveBytes"`
	// TotalAllocBytes: bytes allocated from build to sync (list decode,
	// deep copies, the store).
	TotalAllocBytes int64 `json:"totalAllocBytes"`
	// CPUMs: user+system CPU time of the process from build to sync.
	CPUMs float64 `json:"cpuMs"`
}

// ScaleResult is what bench scale writes.
type ScaleResult struct {
	Slices            int     `json:"slices"`
	EndpointsPerSlice int     `json:"endpointsPerSlice"`
	SliceBytes        int     `json:"sliceJSONBytes"`
	CreateS           float64 `json:"createS"`
	Namespace         string  `json:"namespace"`
	// Controller holds every run; Informer every informer-mem run.
	Controller []ScaleRun    `json:"controller"`
	Informer   []InformerMem `json:"informer"`
	Elapsed    string        `json:"elapsed"`
}

const (
	unrelatedEndpoints = 4
	unrelatedManagedBy = "bench.upgrade-image-cleanup.invalid"
)

// unrelatedSlice is a slice of some other Service in the controller's
// namespace, as an EndpointSlice controller writes them, with a managed-by
// label of its own so kube-controller-manager leaves it alone.
func unrelatedSlice(i int) *discoveryv1.EndpointSlice {
	svc := fmt.Sprintf("unrelated-%05d", i)
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: svc + "-q8x2v", Namespace: benchNS,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: svc,
				discoveryv1.LabelManagedBy:   unrelatedManagedBy,
				"app.kubernetes.io/name":     svc,
				"app.kubernetes.io/part-of":  "bench",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)},
			{Name: ptr.To("metrics"), Port: ptr.To[int32](9090), Protocol: ptr.To(corev1.ProtocolTCP)},
		},
	}
	for e := range unrelatedEndpoints {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", 60+e, i/256%256, i%256)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To(fmt.Sprintf("harvester-node-%d", e%3)),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: benchNS, Name: fmt.Sprintf("%s-%d-5f7c9d", svc, e), UID: types.UID(fmt.Sprintf("00000000-0000-0000-%04d-%012d", e, i))},
		})
	}
	return s
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg wait.Group
	for range workers {
		wg.Start(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

func runScale(args []string) error {
	fs := flag.NewFlagSet("scale", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "cluster (hack/local-cluster)")
	bin := fs.String("controller", "", "the built controller binary")
	self := fs.String("self", os.Args[0], "this bench binary, for informer-mem")
	root := fs.String("root", ".", "the repository's root (for deploy/crd)")
	n := fs.Int("slices", 10_000, "unrelated EndpointSlices to create")
	runs := fs.Int("runs", 3, "runs of each variant")
	churn := fs.Int("churn", 2_000, "unrelated slice updates while the controller runs")
	workdir := fs.String("workdir", os.TempDir(), "where the controller's logs go")
	out := fs.String("out", "scale.json", "result file")
	_ = fs.Parse(args)
	if *kubeconfig == "" || *bin == "" {
		return fmt.Errorf("-kubeconfig and -controller are required")
	}
	began := time.Now()
	ctx := klog.NewContext(signalled, logr.Discard())
	c, err := newClients(*kubeconfig)
	if err != nil {
		return err
	}
	if err := prepareCluster(ctx, c, *root); err != nil {
		return err
	}
	res := ScaleResult{Slices: *n, EndpointsPerSlice: unrelatedEndpoints, Namespace: benchNS}
	if b, err := json.Marshal(unrelatedSlice(0)); err == nil {
		res.SliceBytes = len(b)
	}

	logf("scale: creating %d unrelated EndpointSlices in %s", *n, benchNS)
	t := time.Now()
	err = parallel(*n, 8, func(i int) error {
		_, err := c.kube.DiscoveryV1().EndpointSlices(benchNS).Create(ctx, unrelatedSlice(i), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create slices: %w", err)
	}
	res.CreateS = time.Since(t).Seconds()
	logf("scale: created in %.1f s", res.CreateS)

	variants := []struct {
		name string
		args []string
	}{
		{"label-filtered (default --selector " + cleanup.DefaultSelector + ")", nil},
		{"unfiltered (--selector=\"\")", []string{"--selector="}},
	}
	gen := 0
	for r := range *runs {
		for _, v := range variants {
			gen++
			logf("scale: controller %s, run %d", v.name, r+1)
			run, err := scaleRun(ctx, c, *bin, *kubeconfig, filepath.Join(*workdir, fmt.Sprintf("scale-controller-%d.log", gen)), v.args, *churn, gen)
			if err != nil {
				return err
			}
			run.Variant = v.name
			res.Controller = append(res.Controller, run)
		}
	}
	for r := range *runs {
		for _, v := range []struct{ name, selector string }{
			{"label-filtered", cleanup.DefaultSelector},
			{"unfiltered", ""},
		} {
			logf("scale: informer %s, run %d", v.name, r+1)
			cmd := exec.CommandContext(ctx, *self, "informer-mem", "-kubeconfig", *kubeconfig, "-selector", v.selector)
			cmd.Stderr = os.Stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			b, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("informer-mem: %w", err)
			}
			var m InformerMem
			if err := json.Unmarshal(b, &m); err != nil {
				return fmt.Errorf("informer-mem output %q: %w", b, err)
			}
			m.Variant = v.name
			res.Informer = append(res.Informer, m)
		}
	}
	res.Elapsed = time.Since(began).Round(time.Millisecond).String()
	return writeJSON(*out, res)
}

// scaleRun starts the controller, measures it after sync and during churn
// of unrelated slices, and stops it.
func scaleRun(ctx context.Context, c *clients, bin, kubeconfig, logPath string, args []string, churn, gen int) (ScaleRun, error) {
	run := ScaleRun{Args: args, ChurnUpdates: churn}
	p, ready, err := startController(ctx, bin, kubeconfig, logPath, args...)
	if err != nil {
		return run, err
	}
	defer p.stop()
	pid := p.cmd.Process.Pid
	run.ReadyS = ready.Seconds()
	cpuReady, err := procCPU(pid)
	if err != nil {
		return run, err
	}
	run.CPUToReadyS = cpuReady.Seconds()
	if err := sleep(ctx, 3*time.Second); err != nil {
		return run, err
	}
	cpuQuiet, _ := procCPU(pid)
	run.CPUIdleS = (cpuQuiet - cpuReady).Seconds()
	if run.RSSBytes, run.PeakRSSBytes, err = procStatus(pid); err != nil {
		return run, err
	}
	m, err := p.metrics()
	if err != nil {
		return run, err
	}
	run.HeapInuseBytes, run.HeapAllocBytes = m["go_memstats_heap_inuse_bytes"], m["go_memstats_heap_alloc_bytes"]

	before, _ := procCPU(pid)
	t := time.Now()
	err = parallel(churn, 8, func(i int) error {
		patch := fmt.Sprintf(`{"metadata":{"labels":{"bench/generation":"%d"}}}`, gen)
		_, err := c.kube.DiscoveryV1().EndpointSlices(benchNS).Patch(ctx, unrelatedSlice(i).Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return run, fmt.Errorf("churn: %w", err)
	}
	if err := sleep(ctx, 2*time.Second); err != nil { // let the watch deliver the last updates
		return run, err
	}
	after, _ := procCPU(pid)
	run.ChurnS = time.Since(t).Seconds()
	run.CPUChurnS = (after - before).Seconds()
	return run, nil
}

// runInformerMem builds one EndpointSlice informer as the controller does
// (informers.NewEndpointSliceInformer), syncs it, and prints its cost as
// JSON on stdout. It runs in a process of its own, so one variant's garbage
// does not count against the other.
func runInformerMem(args []string) error {
	fs := flag.NewFlagSet("informer-mem", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "cluster")
	selector := fs.String("selector", cleanup.DefaultSelector, `label selector; "" for none`)
	_ = fs.Parse(args)
	sel, err := labels.Parse(*selector)
	if err != nil {
		return err
	}
	c, err := newClients(*kubeconfig)
	if err != nil {
		return err
	}
	// Warm the client (TLS, discovery of nothing): not the informer's cost.
	if _, err := c.kube.Discovery().ServerVersion(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(klog.NewContext(signalled, logr.Discard()))
	defer cancel()
	runtime.GC()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := rusageCPU()
	t := time.Now()
	inf := informers.NewEndpointSliceInformer(c.kube, benchNS, sel, 0)
	go inf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("informer did not sync")
	}
	sync := time.Since(t)
	cpu1 := rusageCPU()
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	out := InformerMem{
		Selector:        *selector,
		Objects:         len(inf.GetStore().ListKeys()),
		SyncMs:          float64(sync) / float64(time.Millisecond),
		HeapLiveBytes:   int64(m1.HeapAlloc) - int64(m0.HeapAlloc),
		TotalAllocBytes: int64(m1.TotalAlloc - m0.TotalAlloc),
		CPUMs:           float64(cpu1-cpu0) / float64(time.Millisecond),
	}
	runtime.KeepAlive(inf)
	return json.NewEncoder(os.Stdout).Encode(out)
}

func rusageCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
