package main

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// The demo's two nodes. Node 0 still runs a container of one old image;
// node 1 pins one and has another old image tagged again under a name the
// plan does not know: the remover must keep all three.
var demoNodeNames = []string{"harvester-node-0", "harvester-node-1"}

const (
	demoInUse     = "docker.io/rancher/harvester-eventrouter:v0.3.3" // in both lists: never planned
	demoRunning   = "docker.io/rancher/kubectl:v1.29.9"
	demoPinned    = "docker.io/rancher/shell:v0.2.2"
	demoRetagged  = "docker.io/rancher/fleet-agent:v0.10.4"
	demoLocalTag  = "registry.local/ops/fleet-agent:pinned-by-ops"
	demoNotPulled = "quay.io/jetstack/cert-manager-cainjector:v1.15.3"
)

// demoNodes plays the Job controller and the kubelet of each node: for every
// removal Job it runs the remover against that node's simulated runtime, then
// writes the pod's termination message and the Job's Complete condition.
type demoNodes struct {
	kube     kubernetes.Interface
	ns       string
	tl       *timeline
	runtimes map[string]*demoRuntime
}

func newDemoNodes(kube kubernetes.Interface, ns string, tl *timeline) *demoNodes {
	d := &demoNodes{kube: kube, ns: ns, tl: tl, runtimes: map[string]*demoRuntime{}}
	for i, n := range demoNodeNames {
		d.runtimes[n] = newDemoRuntime(i)
	}
	return d
}

// watch opens the nodes' watch on Jobs. The demo opens it before the repo
// turns Ready: a fake clientset replays nothing, so a Job created before the
// watch starts would never reach a node.
func (d *demoNodes) watch(ctx context.Context) (watch.Interface, error) {
	w, err := d.kube.BatchV1().Jobs(d.ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("simulated nodes: watch Jobs: %w", err)
	}
	return w, nil
}

// run runs each Job that w reports added, until ctx ends.
func (d *demoNodes) run(ctx context.Context, w watch.Interface) {
	defer w.Stop()
	// A fake clientset's watch does not end with its context.
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			w.Stop()
		case <-stopped:
		}
	}()
	for ev := range w.ResultChan() {
		j, ok := ev.Object.(*batchv1.Job)
		if ev.Type != watch.Added || !ok {
			continue
		}
		if err := d.runJob(ctx, j); err != nil {
			d.tl.printf("simulated node %s: %v", j.Spec.Template.Spec.NodeName, err)
		}
	}
}

func (d *demoNodes) runJob(ctx context.Context, j *batchv1.Job) error {
	node := j.Spec.Template.Spec.NodeName
	rt, ok := d.runtimes[node]
	if !ok {
		return fmt.Errorf("job %s is bound to unknown node %q", j.Name, node)
	}
	cmName := j.Spec.Template.Spec.Volumes[0].ConfigMap.Name
	cm, err := d.kube.CoreV1().ConfigMaps(d.ns).Get(ctx, cmName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	plan, err := imagelist.Parse(strings.NewReader(cm.Data[cleanup.PlanKey]), cmName)
	if err != nil {
		return err
	}
	keep, err := imagelist.Parse(strings.NewReader(cm.Data[cleanup.KeepKey]), cmName)
	if err != nil {
		return err
	}
	d.tl.printf("node %s: Job %s starts the remover (%d images planned, %d on the node)", node, j.Name, len(plan), len(rt.images))
	opts := remover.DefaultOptions()
	opts.Keep = keep // as the Job's --keep
	report, err := remover.Run(ctx, rt, plan, opts)
	if err != nil {
		return err
	}
	// As the remover reports the digest of the plan file it read.
	report.Result.PlanDigest = imagelist.Digest([]byte(cm.Data[cleanup.PlanKey]))
	msg, err := report.Result.TerminationMessage()
	if err != nil {
		return err
	}
	// Said before the Job's status is written: that write lets the
	// controller finish, and the timeline reads in order.
	d.tl.printf("node %s: %s", node, describeResult(report.Result))
	return cleanuptest.FinishJob(ctx, d.kube, j, true, string(msg))
}

func describeResult(r report.Result) string {
	var skipped []string
	for _, reason := range slices.Sorted(maps.Keys(r.Skipped)) {
		skipped = append(skipped, fmt.Sprintf("%s %d", reason, r.Skipped[reason]))
	}
	return fmt.Sprintf("removed %d, failed %d, kept %s, %.1f GB reclaimed", r.Removed, r.Failed, strings.Join(skipped, ", "), float64(r.BytesReclaimed)/1e9)
}

// printRemoval prints the per-node results from the summary annotation.
func printRemoval(out io.Writer, annotations map[string]string) error {
	var s cleanup.Summary
	if err := json.Unmarshal([]byte(annotations[cleanup.SummaryAnnotation]), &s); err != nil {
		return fmt.Errorf("read %s: %w", cleanup.SummaryAnnotation, err)
	}
	fmt.Fprintf(out, "  removal, from annotation %s:\n", cleanup.SummaryAnnotation)
	for _, n := range s.Nodes {
		line := n.Outcome
		if n.Result != nil {
			line += ": " + describeResult(*n.Result)
		}
		fmt.Fprintf(out, "    %-18s %s\n", n.Node, line)
	}
	fmt.Fprintf(out, "  %s: %q (Harvester may now delete the repo)\n", cleanup.HarvesterDoneAnnotation, annotations[cleanup.HarvesterDoneAnnotation])
	return nil
}

// demoRuntime is one node's container runtime, in memory.
type demoRuntime struct {
	mu         sync.Mutex
	images     map[string]remover.Image
	containers []remover.Container
}

// newDemoRuntime holds both versions' images, as a node does right after an
// upgrade, plus the few cases the remover must keep.
func newDemoRuntime(node int) *demoRuntime {
	rt := &demoRuntime{images: map[string]remover.Image{}}
	for _, v := range []string{demoPrevious, cleanup.CurrentVersion} {
		lines, err := cleanuptest.ListLines(v)
		if err != nil {
			panic(err) // embedded at build time
		}
		for _, ref := range lines {
			if node == 1 && ref == demoNotPulled {
				continue
			}
			id := demoImageID(ref)
			rt.images[id] = remover.Image{ID: id, RepoTags: []string{ref}, Size: 20e6 + uint64(fnvSum(ref)%400)*1e6}
		}
	}
	use := func(ref string) {
		rt.containers = append(rt.containers, remover.Container{ID: fmt.Sprintf("ctr-%d", len(rt.containers)), ImageRef: demoImageID(ref), Image: ref})
	}
	use(demoInUse)
	if node == 0 {
		use(demoRunning)
	} else {
		pinned := rt.images[demoImageID(demoPinned)]
		pinned.Pinned = true
		rt.images[pinned.ID] = pinned
		retagged := rt.images[demoImageID(demoRetagged)]
		retagged.RepoTags = append(retagged.RepoTags, demoLocalTag)
		rt.images[retagged.ID] = retagged
	}
	return rt
}

func demoImageID(ref string) string { return fmt.Sprintf("sha256:%064x", fnvSum(ref)) }

func fnvSum(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

func (r *demoRuntime) ListImages(context.Context) ([]remover.Image, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Collect(maps.Values(r.images)), nil
}

func (r *demoRuntime) ListContainers(context.Context) ([]remover.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.containers), nil
}

// ListSandboxes says every node runs its pods on the pause image both
// versions share, as RKE2 configures it.
func (r *demoRuntime) ListSandboxes(context.Context) (remover.Sandboxes, error) {
	const pause = "docker.io/rancher/mirrored-pause:3.6"
	return remover.Sandboxes{ConfiguredImage: pause, List: []remover.Sandbox{{ID: "sandbox-0", Image: pause}}}, nil
}

func (r *demoRuntime) RemoveImage(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.images, id)
	return nil
}
