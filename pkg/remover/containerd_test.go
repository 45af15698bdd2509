//go:build containerd

// The test in this file runs the remover against a real containerd (Debian's
// package, 1.6 on Debian 12) through its real CRI socket. It needs root and
// containerd, ctr, containerd-shim-runc-v2 and runc on PATH; run it with
// hack/containerd-test, which installs them:
//
//	hack/containerd-test
//	go test -tags containerd -count=1 -v ./pkg/remover/ -run Containerd
//
// The test starts its own containerd with its root, state, socket and opt
// folder in a temporary folder, imports images it generates (no registry,
// no network) and the product's image, which it builds with
// hack/build-image (Go's module proxy on a cold cache), and stops that
// containerd at the end. Only runc's state and
// the shims' sockets go to /run/containerd, which containerd does not let
// a configuration move.

package remover

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

const (
	// ctdNamespace is the containerd namespace CRI works in.
	ctdNamespace = "k8s.io"
	// sandboxImage is the CRI plugin's sandbox_image. It must exist locally
	// and be runnable, or containerd tries to pull it when a pod starts.
	sandboxImage = "registry.k8s.io/pause:3.6"
	// newSandboxImage is the sandbox_image after the "upgrade" of the last
	// pass, which restarts containerd with it while the pod keeps running
	// on sandboxImage.
	newSandboxImage = "registry.k8s.io/pause:3.10"
	// ctdReadyTimeout bounds every wait for containerd: to answer CRI after
	// it starts, and to list imported images. Both take well under a second.
	ctdReadyTimeout = 30 * time.Second
	// ctdStopTimeout is how long containerd gets to exit after SIGTERM.
	ctdStopTimeout = 15 * time.Second
	// shimExitTimeout is how long shims get to exit after containerd.
	shimExitTimeout = 5 * time.Second
	// shimRunDir is where containerd 1.6 puts runc's state and the shims'
	// sockets, whatever its state setting says.
	shimRunDir = "/run/containerd"
)

// The node's images. Each has its own config (its name is a label) and so
// its own image ID.
var (
	imgA    = testImage{name: "a", tags: []string{"docker.io/rancher/a:1"}}
	imgB    = testImage{name: "b", tags: []string{"docker.io/rancher/b:1", "docker.io/rancher/b:1.0"}}
	imgC    = testImage{name: "c", tags: []string{"docker.io/rancher/c:1", "docker.io/rancher/c:1.0"}}
	imgD    = testImage{name: "d", tags: []string{"docker.io/rancher/d:1"}}
	imgE    = testImage{name: "e", tags: []string{"registry.local:5000/rancher/e:1"}}
	imgF    = testImage{name: "f", tags: []string{"docker.io/rancher/f:1"}}
	imgG    = testImage{name: "g", tags: []string{"docker.io/rancher/g:1"}}
	testImg = []testImage{imgA, imgB, imgC, imgD, imgE, imgF, imgG}
)

// TestContainerd removes images from a real containerd in eight passes over
// the same node, each starting from what the one before left:
//
//  1. Run without MatchOtherRegistries: A (one tag) and C (two tags, both
//     planned) are removed; B (two tags, one planned) is kept as
//     still-needed with both tags; D is kept in use by a created container;
//     E, which the node has only under another registry, and a missing
//     image are not present.
//  2. Run with MatchOtherRegistries: E is removed; what pass 1 removed is
//     now not present; B and D are kept again.
//  3. The image-remover binary, with its default flags: F is removed, B and
//     D kept; the result is read back from its termination log.
//  4. The binary with the flags the controller's Job passes (--plan, --keep,
//     --plan-digest): the plan names G, which the node has from docker.io,
//     and the keep list names its path and tag under another registry host:
//     G stays, reported as in-current-list.
//  5. The plan names the sandbox image, which the pod's sandbox runs and
//     containerd is configured with: it is kept as pinned.
//  6. containerd restarts configured with another sandbox image, as after
//     an upgrade, while the pod keeps running on the first: the plan names
//     both; the first is kept in use by the sandbox, the new one as pinned.
//  7. Measured space: two images H and I, each a layer of bigLayer random
//     bytes, are imported. With --image-fs-threshold above the image
//     filesystems' usage nothing is removed (belowThreshold); with one
//     below it both are removed, and ImageFsInfo's figure, refreshed after
//     the removals (stats_collect_period = 1), drops by about what they
//     took: each unpacked layer.
//  8. The product's image, built by hack/build-image and imported with
//     ctr, runs the remover as a container through CRI the way the
//     removal Job's pod runs (its command, args, mounts and security
//     context): the plan names J, K (two tags) and L, the keep list L; J
//     and K are removed, L stays, and the result is read back from the
//     termination log file mounted at /dev/termination-log.
//
// Every pass checks that the result has ImageFs.
//
// containerd 1.6 (Debian 12's) reports pinned=false for every image, the
// sandbox image included (1.7 pins it), and a pod sandbox is not a container
// in ListContainers: passes 4 and 5 keep the sandbox images only because
// the remover reads the configured sandbox image from the verbose Status and
// each sandbox's image from its verbose PodSandboxStatus. G is never
// removed: every pass after 4 still finds it on the node. The unit tests
// cover the runtime's pinned flag through fakecri.
func TestContainerd(t *testing.T) {
	// ImageFsInfo's figure is recomputed every stats_collect_period
	// seconds (10 by default): 1 keeps the measured-space pass short.
	ctd := startContainerd(t, 1)

	pause := buildGo(t, ctd.dir, "github.com/upgrade-image-cleanup/upgrade-image-cleanup/hack/containerd/pause", "CGO_ENABLED=0")
	pauseBin, err := os.ReadFile(pause)
	if err != nil {
		t.Fatal(err)
	}
	sandbox := testImage{name: "pause", tags: []string{sandboxImage}, file: pauseBin, entrypoint: []string{"/pause"}}
	// Runnable: the last pass runs a pod after the restart onto it.
	newSandbox := testImage{name: "pause-new", tags: []string{newSandboxImage}, file: pauseBin, entrypoint: []string{"/pause-new"}}
	ctd.importImages(t, append([]testImage{sandbox, newSandbox}, testImg...))

	c, err := DialCRI(t.Context(), "unix://"+ctd.sock, 5*time.Second)
	if err != nil {
		t.Fatalf("DialCRI: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	t.Logf("runtime: %s", c.Version())

	before := ctd.waitForImages(t, c, append([]testImage{sandbox, newSandbox}, testImg...)...)
	idOf := func(img testImage) string { return before[img.tags[0]].ID }
	sizeOf := func(img testImage) uint64 { return before[img.tags[0]].Size }

	sid, cid := ctd.createContainer(t, imgD.tags[0])
	containers, err := c.ListContainers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(containers) != 1 || containers[0].ID != cid || containers[0].ImageRef != idOf(imgD) {
		t.Fatalf("ListContainers = %+v, want the created container %s with D's ID %s in ImageRef", containers, cid, idOf(imgD))
	}
	t.Logf("container %s (created, not started) uses %s: %+v", cid, imgD.tags[0], containers[0])
	sandboxes, err := c.ListSandboxes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Sandboxes{ConfiguredImage: sandboxImage, List: []Sandbox{{ID: sid, Image: sandboxImage}}}); !reflect.DeepEqual(sandboxes, want) {
		t.Fatalf("ListSandboxes = %+v, want %+v: containerd's verbose Status and PodSandboxStatus no longer have the shape the remover reads", sandboxes, want)
	}
	t.Logf("sandbox %s runs %s: %+v", sid, sandboxImage, sandboxes)

	// Passes 1 and 2 run the same plan.
	plan := mustPlan(t,
		"docker.io/rancher/a:1",
		"docker.io/rancher/b:1",
		"docker.io/rancher/c:1", "docker.io/rancher/c:1.0",
		"docker.io/rancher/d:1",
		"docker.io/rancher/e:1",
		"docker.io/rancher/missing:1",
	)
	stillNeeded := "also tagged docker.io/rancher/b:1.0, which the plan does not name"
	inUse := "used by container " + cid

	t.Run("without MatchOtherRegistries", func(t *testing.T) {
		// containerd answers ImageFsInfo with 0 until its first statistics
		// pass after it starts (measured here: the first call, 0.1 s after
		// the start): the wait lets the remover get a real figure.
		rep, err := Run(testContext(t), c, plan, Options{MatchOtherRegistries: false, ImageFsWait: DefaultImageFsWait})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		assertReport(t, rep, []reportLine{
			{"docker.io/rancher/a:1", ActionRemoved, "", idOf(imgA), ""},
			{"docker.io/rancher/b:1", ActionSkipped, report.ReasonStillNeeded, idOf(imgB), stillNeeded},
			{"docker.io/rancher/c:1", ActionRemoved, "", idOf(imgC), ""},
			{"docker.io/rancher/c:1.0", ActionRemoved, "", idOf(imgC), ""},
			{"docker.io/rancher/d:1", ActionSkipped, report.ReasonInUse, idOf(imgD), inUse},
			{"docker.io/rancher/e:1", ActionSkipped, report.ReasonNotPresent, "", ""},
			{"docker.io/rancher/missing:1", ActionSkipped, report.ReasonNotPresent, "", ""},
		}, report.Result{
			Removed:        2,
			Skipped:        map[report.Reason]int{report.ReasonStillNeeded: 1, report.ReasonInUse: 1, report.ReasonNotPresent: 2},
			BytesReclaimed: sizeOf(imgA) + sizeOf(imgC),
		})
		ctd.assertNode(t, c, before, sandbox, newSandbox, imgB, imgD, imgE, imgF, imgG)
	})

	t.Run("with MatchOtherRegistries", func(t *testing.T) {
		rep, err := Run(testContext(t), c, plan, Options{MatchOtherRegistries: true, ImageFsWait: DefaultImageFsWait})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		assertReport(t, rep, []reportLine{
			{"docker.io/rancher/a:1", ActionSkipped, report.ReasonNotPresent, "", ""},
			{"docker.io/rancher/b:1", ActionSkipped, report.ReasonStillNeeded, idOf(imgB), stillNeeded},
			{"docker.io/rancher/c:1", ActionSkipped, report.ReasonNotPresent, "", ""},
			{"docker.io/rancher/c:1.0", ActionSkipped, report.ReasonNotPresent, "", ""},
			{"docker.io/rancher/d:1", ActionSkipped, report.ReasonInUse, idOf(imgD), inUse},
			{"docker.io/rancher/e:1", ActionRemoved, "", idOf(imgE), ""},
			{"docker.io/rancher/missing:1", ActionSkipped, report.ReasonNotPresent, "", ""},
		}, report.Result{
			Removed:        1,
			Skipped:        map[report.Reason]int{report.ReasonStillNeeded: 1, report.ReasonInUse: 1, report.ReasonNotPresent: 4},
			BytesReclaimed: sizeOf(imgE),
		})
		ctd.assertNode(t, c, before, sandbox, newSandbox, imgB, imgD, imgF, imgG)
	})

	t.Run("image-remover binary", func(t *testing.T) {
		bin := buildGo(t, ctd.dir, "github.com/upgrade-image-cleanup/upgrade-image-cleanup/cmd/image-remover")
		dir := t.TempDir()
		planFile := filepath.Join(dir, "images.txt")
		term := filepath.Join(dir, "termination-log")
		planText := []byte("rancher/f:1\nrancher/b:1\nrancher/d:1\n")
		if err := os.WriteFile(planFile, planText, 0o644); err != nil {
			t.Fatal(err)
		}
		msg, rep := runRemoverBinary(t, bin, term, "--plan", planFile, "--runtime-endpoint", "unix://"+ctd.sock)
		res, err := report.ParseResult(msg)
		if err != nil {
			t.Fatal(err)
		}
		want := report.Result{Removed: 1, Skipped: map[report.Reason]int{report.ReasonStillNeeded: 1, report.ReasonInUse: 1}, BytesReclaimed: sizeOf(imgF),
			PlanDigest: imagelist.Digest(planText)}
		if res = withoutImageFs(t, res); !reflect.DeepEqual(res, want) {
			t.Errorf("termination log %s, want %+v", msg, want)
		}
		assertReport(t, rep, []reportLine{
			{"docker.io/rancher/b:1", ActionSkipped, report.ReasonStillNeeded, idOf(imgB), stillNeeded},
			{"docker.io/rancher/d:1", ActionSkipped, report.ReasonInUse, idOf(imgD), inUse},
			{"docker.io/rancher/f:1", ActionRemoved, "", idOf(imgF), ""},
		}, want)
		ctd.assertNode(t, c, before, sandbox, newSandbox, imgB, imgD, imgG)
	})

	t.Run("keep list names the image under another registry host", func(t *testing.T) {
		bin := buildGo(t, ctd.dir, "github.com/upgrade-image-cleanup/upgrade-image-cleanup/cmd/image-remover")
		dir := t.TempDir()
		planFile := filepath.Join(dir, "images.txt")
		keepFile := filepath.Join(dir, "keep.txt")
		term := filepath.Join(dir, "termination-log")
		planText := []byte("docker.io/rancher/g:1\n")
		if err := os.WriteFile(planFile, planText, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keepFile, []byte("registry.rancher.com/rancher/g:1\n"+newSandboxImage+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		digest := imagelist.Digest(planText)
		// The Job's flags.
		msg, rep := runRemoverBinary(t, bin, term, "--plan="+planFile, "--keep="+keepFile, "--plan-digest="+digest, "--runtime-endpoint=unix://"+ctd.sock)
		want := report.Result{Skipped: map[report.Reason]int{report.ReasonInCurrentList: 1}, PlanDigest: digest}
		if res, err := report.ParseResult(msg); err != nil || !reflect.DeepEqual(withoutImageFs(t, res), want) {
			t.Errorf("termination log %s (%v), want %+v", msg, err, want)
		}
		if rep.PlanDigest != digest {
			t.Errorf("report's planDigest = %q, want %q", rep.PlanDigest, digest)
		}
		assertReport(t, rep, []reportLine{
			{"docker.io/rancher/g:1", ActionSkipped, report.ReasonInCurrentList, idOf(imgG),
				"the new version ships registry.rancher.com/rancher/g:1 (" + string(imagematch.WhyOtherRegistry) + ")"},
		}, want)
		ctd.assertNode(t, c, before, sandbox, newSandbox, imgB, imgD, imgG)
	})

	t.Run("configured sandbox image used by a sandbox", func(t *testing.T) {
		rep, err := Run(testContext(t), c, mustPlan(t, sandboxImage), DefaultOptions())
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if rep.SandboxImage != sandboxImage {
			t.Errorf("report's SandboxImage = %q, want %q", rep.SandboxImage, sandboxImage)
		}
		assertReport(t, rep, []reportLine{
			{sandboxImage, ActionSkipped, report.ReasonPinned, idOf(sandbox), "the runtime's configured sandbox image (" + sandboxImage + "), which new pods need"},
		}, report.Result{Skipped: map[report.Reason]int{report.ReasonPinned: 1}})
		ctd.assertNode(t, c, before, sandbox, newSandbox, imgB, imgD, imgG)
	})

	t.Run("sandbox image changed while the pod runs", func(t *testing.T) {
		ctd.restart(t, newSandboxImage)
		c, err := DialCRI(t.Context(), "unix://"+ctd.sock, 5*time.Second)
		if err != nil {
			t.Fatalf("DialCRI: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		sandboxes, err := c.ListSandboxes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := (Sandboxes{ConfiguredImage: newSandboxImage, List: []Sandbox{{ID: sid, Image: sandboxImage}}}); !reflect.DeepEqual(sandboxes, want) {
			t.Fatalf("ListSandboxes after the restart = %+v, want %+v", sandboxes, want)
		}
		rep, err := Run(testContext(t), c, mustPlan(t, sandboxImage, newSandboxImage), DefaultOptions())
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if rep.SandboxImage != newSandboxImage {
			t.Errorf("report's SandboxImage = %q, want %q", rep.SandboxImage, newSandboxImage)
		}
		assertReport(t, rep, []reportLine{
			{newSandboxImage, ActionSkipped, report.ReasonPinned, idOf(newSandbox), "the runtime's configured sandbox image (" + newSandboxImage + "), which new pods need"},
			{sandboxImage, ActionSkipped, report.ReasonInUse, idOf(sandbox), "used by pod sandbox " + sid},
		}, report.Result{Skipped: map[report.Reason]int{report.ReasonPinned: 1, report.ReasonInUse: 1}})
		ctd.assertNode(t, c, before, sandbox, newSandbox, imgB, imgD, imgG)
	})

	t.Run("measured space", func(t *testing.T) {
		c, err := DialCRI(t.Context(), "unix://"+ctd.sock, 5*time.Second)
		if err != nil {
			t.Fatalf("DialCRI: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		// Random, so that no layer is like another (nor compressible).
		rnd := rand.NewChaCha8([32]byte{14})
		big := func(name string) testImage {
			b := make([]byte, bigLayer)
			_, _ = rnd.Read(b)
			return testImage{name: name, tags: []string{"docker.io/rancher/" + name + ":1"}, file: b}
		}
		imgH, imgI := big("h"), big("i")
		ctd.importImages(t, []testImage{imgH, imgI})
		added := ctd.waitForImages(t, c, imgH, imgI)
		imported := time.Now()
		maps.Copy(before, added)
		// Run's first figure must count them: wait for one collected after
		// the import (containerd unpacked the layers before ctr returned).
		var u ImageFsUsage
		err = wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, ctdReadyTimeout, true, func(ctx context.Context) (bool, error) {
			u, err = c.ImageFsInfo(ctx)
			return err == nil && !u.CollectedAt.Before(imported), err
		})
		if err != nil {
			t.Fatalf("ImageFsInfo has no figure collected after the import: %v (last %+v)", err, u)
		}
		t.Logf("image filesystems use %d bytes (collected %v after the import)", u.UsedBytes, u.CollectedAt.Sub(imported).Round(time.Millisecond))
		plan := mustPlan(t, imgH.tags[0], imgI.tags[0])

		// A layer's size above the usage: containerd's next figure may
		// differ by a few blocks.
		opts := DefaultOptions()
		opts.ImageFsThreshold = u.UsedBytes + bigLayer
		rep, err := Run(testContext(t), c, plan, opts)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if r := rep.Result; !r.BelowThreshold || r.Threshold != opts.ImageFsThreshold || r.ImageFs == nil || r.ImageFs.UsedBefore != r.ImageFs.UsedAfter || r.ImageFs.UsedBefore < bigLayer*2 || r.Removed != 0 {
			t.Errorf("Result above the usage = %+v, imageFs %+v; want below the threshold, nothing removed, ImageFs counting both layers", r, r.ImageFs)
		}
		ctd.assertNode(t, c, before, sandbox, newSandbox, imgB, imgD, imgG, imgH, imgI)

		opts.ImageFsThreshold = bigLayer
		start := time.Now()
		rep, err = Run(testContext(t), c, plan, opts)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		took := time.Since(start)
		reclaimed := added[imgH.tags[0]].Size + added[imgI.tags[0]].Size
		assertReport(t, rep, []reportLine{
			{imgH.tags[0], ActionRemoved, "", added[imgH.tags[0]].ID, ""},
			{imgI.tags[0], ActionRemoved, "", added[imgI.tags[0]].ID, ""},
		}, report.Result{Removed: 2, BytesReclaimed: reclaimed, Threshold: bigLayer})
		fs := rep.Result.ImageFs
		if fs == nil {
			t.Fatal("no ImageFs")
		}
		t.Logf("measured: usedBefore %d, usedAfter %d, freed %d, stale %t; bytesReclaimed %d (two layers of %d random bytes); Run took %v",
			fs.UsedBefore, fs.UsedAfter, fs.Freed(), fs.Stale, reclaimed, bigLayer, took.Round(time.Millisecond))
		if fs.Stale || fs.UsedBefore <= fs.UsedAfter {
			t.Errorf("ImageFs = %+v, want a figure refreshed after the removals, lower than before", fs)
		}
		// containerd 1.6 counts the unpacked snapshots, not the content
		// store (whose blobs CRI's image size sums): the two differ by
		// the archives' headers and the filesystem's blocks, far less
		// than half.
		if freed := fs.Freed(); freed < reclaimed/2 || freed > reclaimed*2 {
			t.Errorf("freed %d bytes as measured, want within half and twice the %d bytes reclaimed", freed, reclaimed)
		}
		ctd.assertNode(t, c, before, sandbox, newSandbox, imgB, imgD, imgG)
	})

	t.Run("remover image run as the removal Job runs it", func(t *testing.T) {
		c, err := DialCRI(t.Context(), "unix://"+ctd.sock, 5*time.Second)
		if err != nil {
			t.Fatalf("DialCRI: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		dir := t.TempDir()
		product := testImage{name: "product", tags: []string{productRef}}
		ctd.importArchive(t, buildProductImage(t, dir))
		// Fresh images, whatever the passes before left.
		imgJ := testImage{name: "j", tags: []string{"docker.io/rancher/j:1"}}
		imgK := testImage{name: "k", tags: []string{"docker.io/rancher/k:1", "docker.io/rancher/k:1.0"}}
		imgL := testImage{name: "l", tags: []string{"docker.io/rancher/l:1"}}
		ctd.importImages(t, []testImage{imgJ, imgK, imgL})
		added := ctd.waitForImages(t, c, product, imgJ, imgK, imgL)
		maps.Copy(before, added)

		// The plan ConfigMap's keys, as the kubelet writes its volume.
		planDir := filepath.Join(dir, "plan")
		planText := []byte("docker.io/rancher/j:1\ndocker.io/rancher/k:1\ndocker.io/rancher/k:1.0\ndocker.io/rancher/l:1\n")
		writeConfigMapVolume(t, planDir, map[string]string{
			cleanup.PlanKey:    string(planText),
			cleanup.KeepKey:    "docker.io/rancher/l:1\n",
			report.PlanNameKey: "u-image-cleanup",
		})
		// The kubelet creates the termination log empty and mounts it.
		term := filepath.Join(dir, "termination-log")
		if err := os.WriteFile(term, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		digest := imagelist.Digest(planText)

		// The removal Job's own pod spec (cleanup.RemovalJob), as the
		// kubelet hands it to CRI: its command, args, mounts and security
		// context, with the plan's ConfigMap and the socket's hostPath
		// played by host paths.
		job := cleanup.RemovalJob(cleanup.Upgrade{Namespace: "harvester-system", Name: "u"},
			cleanup.PlanRef{ConfigMap: "u-image-cleanup", Digest: digest}, "node", cleanup.DefaultRemovalOptions())
		jc := job.Spec.Template.Spec.Containers[0]
		hostPaths := map[string]string{"plan": planDir, "cri-socket": ctd.sock}
		var mounts []*runtimeapi.Mount
		for _, m := range jc.VolumeMounts {
			host, ok := hostPaths[m.Name]
			if !ok {
				t.Fatalf("the Job mounts volume %q, which this test does not provide", m.Name)
			}
			mounts = append(mounts, &runtimeapi.Mount{ContainerPath: m.MountPath, HostPath: host, Readonly: m.ReadOnly})
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: jc.TerminationMessagePath, HostPath: term})
		if jc.TerminationMessagePath == "" {
			mounts[len(mounts)-1].ContainerPath = "/dev/termination-log" // the kubelet's default
		}
		sc := jc.SecurityContext
		var drop []string
		for _, d := range sc.Capabilities.Drop {
			drop = append(drop, string(d))
		}
		config := &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: jc.Name},
			Image:    &runtimeapi.ImageSpec{Image: productRef},
			Command:  jc.Command,
			Args:     jc.Args,
			Mounts:   mounts,
			LogPath:  "image-remover.log",
			Linux: &runtimeapi.LinuxContainerConfig{
				SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					RunAsUser:        &runtimeapi.Int64Value{Value: *sc.RunAsUser},
					NoNewPrivs:       !*sc.AllowPrivilegeEscalation,
					ReadonlyRootfs:   *sc.ReadOnlyRootFilesystem,
					Capabilities:     &runtimeapi.Capability{DropCapabilities: drop},
					NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
				},
			},
		}
		// First with the plan mounted read-write, a Job the admission
		// policy refuses: the remover reads the mount's own flags as runc
		// set them, and refuses before it reaches the runtime.
		rw := *config
		rw.Metadata = &runtimeapi.ContainerMetadata{Name: jc.Name + "-read-write"}
		rw.Mounts = nil
		for _, m := range config.Mounts {
			m := *m
			if m.HostPath == planDir {
				m.Readonly = false
			}
			rw.Mounts = append(rw.Mounts, &m)
		}
		status, stdout, stderr := ctd.runToExit(t, &rw)
		msg, err := os.ReadFile(term)
		if err != nil {
			t.Fatal(err)
		}
		if res := report.ResultFromTermination(string(msg)); status.GetExitCode() != report.ExitRefused || !strings.Contains(res.Error, "mounted read-write") {
			t.Fatalf("with the plan mounted read-write: exit code %d, result error %q; want %d and the error to say so; stderr:\n%s", status.GetExitCode(), res.Error, report.ExitRefused, stderr)
		}
		ctd.assertNode(t, c, before, sandbox, newSandbox, imgB, imgD, imgG, product, imgJ, imgK, imgL)

		start := time.Now()
		status, stdout, stderr = ctd.runToExit(t, config)
		t.Logf("image-remover ran in the image for %v, exit code %d; stderr:\n%s", time.Since(start).Round(time.Millisecond), status.GetExitCode(), stderr)
		if status.GetExitCode() != 0 {
			t.Fatalf("image-remover exited %d (%s: %s), want 0; stdout:\n%s", status.GetExitCode(), status.GetReason(), status.GetMessage(), stdout)
		}

		msg, err = os.ReadFile(term)
		if err != nil {
			t.Fatal(err)
		}
		want := report.Result{
			Removed:        2,
			Skipped:        map[report.Reason]int{report.ReasonInCurrentList: 1},
			BytesReclaimed: added[imgJ.tags[0]].Size + added[imgK.tags[0]].Size,
			PlanDigest:     digest,
		}
		if res := report.ResultFromTermination(string(msg)); !reflect.DeepEqual(withoutImageFs(t, res), want) {
			t.Errorf("termination log %s, read as %+v; want %+v", msg, res, want)
		}
		var rep Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("report on stdout %q: %v", stdout, err)
		}
		if rep.PlanDigest != digest {
			t.Errorf("report's planDigest = %q, want %q", rep.PlanDigest, digest)
		}
		assertReport(t, rep, []reportLine{
			{"docker.io/rancher/j:1", ActionRemoved, "", added[imgJ.tags[0]].ID, ""},
			{"docker.io/rancher/k:1", ActionRemoved, "", added[imgK.tags[0]].ID, ""},
			{"docker.io/rancher/k:1.0", ActionRemoved, "", added[imgK.tags[0]].ID, ""},
			{"docker.io/rancher/l:1", ActionSkipped, report.ReasonInCurrentList, added[imgL.tags[0]].ID, "the new version ships docker.io/rancher/l:1 (" + string(imagematch.WhySameTag) + ")"},
		}, want)
		ctd.assertNode(t, c, before, sandbox, newSandbox, imgB, imgD, imgG, imgL, product)
	})
}

// productRef is the name the last pass gives the product's image.
const productRef = "ghcr.io/upgrade-image-cleanup/upgrade-image-cleanup:containerd-test"

// removerExitTimeout bounds the wait for the remover's container to exit:
// it waits at most DefaultImageFsWait for a fresh ImageFsInfo figure
// (containerd here refreshes it every second).
const removerExitTimeout = 2 * time.Minute

// buildProductImage builds the product's image with hack/build-image, as
// releases do, named productRef, into dir, and returns its docker-archive.
// It takes about 7 s with Go's caches warm, minutes cold.
func buildProductImage(t *testing.T, dir string) string {
	t.Helper()
	// go test runs in the package's folder.
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "product.tar")
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), filepath.Join(root, "hack", "build-image"),
		"-output", filepath.Join(dir, "product-layout"), "-tarball", archive, "-ref", productRef)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("hack/build-image: %v\n%s", err, stderr.String())
	}
	t.Logf("hack/build-image built %s, manifest %s, in %v", productRef, strings.TrimSpace(stdout.String()), time.Since(start).Round(time.Millisecond))
	return archive
}

// bigLayer is the size of the file in each image of the measured-space
// pass: far above what the other images and containerd's metadata take,
// so that removing two moves ImageFsInfo's figure clearly.
const bigLayer = 4 << 20

// reportLine is what a test compares of one ImageReport.
type reportLine struct {
	ref     string
	action  Action
	reason  report.Reason
	imageID string
	detail  string
}

func assertReport(t *testing.T, rep Report, lines []reportLine, res report.Result) {
	t.Helper()
	var got []reportLine
	for _, e := range rep.Images {
		got = append(got, reportLine{e.Ref, e.Action, e.Reason, e.ImageID, e.Detail})
		if e.Error != "" {
			t.Errorf("%s: error %s", e.Ref, e.Error)
		}
	}
	if !reflect.DeepEqual(got, lines) {
		t.Errorf("report lines:\n got %+v\nwant %+v", got, lines)
	}
	if got := withoutImageFs(t, rep.Result); !reflect.DeepEqual(got, res) {
		t.Errorf("Result = %+v, want %+v", got, res)
	}
}

// withoutImageFs is r without its ImageFs, which it must have: containerd
// answers ImageFsInfo. The measured-space pass checks the figures.
func withoutImageFs(t *testing.T, r report.Result) report.Result {
	t.Helper()
	if r.ImageFs == nil {
		t.Errorf("Result %+v has no ImageFs: containerd answers ImageFsInfo", r)
	}
	r.ImageFs = nil
	return r
}

// testImage is one image of the generated archive: one layer holding one
// file, /<name> (the image's name, unless file is set), and a config
// labelled with the name, so that no two images share an ID.
type testImage struct {
	name       string
	tags       []string
	file       []byte
	entrypoint []string
}

// writeDockerArchive writes images as one docker-archive (the `docker save`
// format, which `ctr images import` reads), each image under all its tags.
func writeDockerArchive(path string, images []testImage) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(b)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}

	type manifestEntry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []manifestEntry
	for _, img := range images {
		var layer bytes.Buffer
		lw := tar.NewWriter(&layer)
		content := img.file
		if content == nil {
			content = []byte(img.name + "\n")
		}
		if err := lw.WriteHeader(&tar.Header{Name: img.name, Mode: 0o755, Size: int64(len(content)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := lw.Write(content); err != nil {
			return err
		}
		if err := lw.Close(); err != nil {
			return err
		}
		diffID := sha256.Sum256(layer.Bytes())

		config, err := json.Marshal(map[string]any{
			"architecture": runtime.GOARCH,
			"os":           "linux",
			"config": map[string]any{
				"Entrypoint": img.entrypoint,
				"Labels":     map[string]string{"upgrade-image-cleanup.test/image": img.name},
			},
			"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diffID[:])}},
		})
		if err != nil {
			return err
		}
		configID := sha256.Sum256(config)

		layerPath := hex.EncodeToString(diffID[:]) + "/layer.tar"
		configPath := hex.EncodeToString(configID[:]) + ".json"
		if err := add(layerPath, 0o644, layer.Bytes()); err != nil {
			return err
		}
		if err := add(configPath, 0o644, config); err != nil {
			return err
		}
		manifest = append(manifest, manifestEntry{Config: configPath, RepoTags: img.tags, Layers: []string{layerPath}})
	}
	m, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	if err := add("manifest.json", 0o644, m); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// buildGo builds the package pkg into dir and returns the binary's path.
func buildGo(t testing.TB, dir, pkg string, env ...string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(t.Context(), "go", "build", "-tags", "containerd", "-o", out, pkg)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// ctdProcess is a containerd the test started. After a restart, cmd,
// exited and runtime are the new process's.
type ctdProcess struct {
	dir string // everything containerd writes, but shimRunDir
	// statsCollectPeriod is the CRI plugin's stats_collect_period in
	// seconds: how often it recomputes ImageFsInfo's figure.
	statsCollectPeriod int
	sock               string
	logf               string
	cmd                *exec.Cmd
	exited             chan struct{} // closed once the process has exited
	err                error         // how it exited; read after exited is closed
	// runtime is the test's own CRI client, for what the remover does not
	// do (pods and containers), over conn; stop closes it.
	runtime runtimeapi.RuntimeServiceClient
	conn    *grpc.ClientConn
}

// startContainerd starts containerd with everything in a new temporary
// folder, waits until its CRI service answers, and stops it when the test
// ends. It fails the test, saying what is missing, when the machine cannot
// run it.
func startContainerd(t testing.TB, statsCollectPeriod int) *ctdProcess {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the containerd test needs root (containerd mounts overlayfs and runs runc); run hack/containerd-test as root")
	}
	for _, bin := range []string{"containerd", "ctr", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not on PATH: run hack/containerd-test, which installs Debian's containerd (with ctr and runc): %v", bin, err)
		}
	}
	_, err := os.Stat(shimRunDir)
	shimRunDirExisted := err == nil

	// Short: the socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "ctd")
	if err != nil {
		t.Fatal(err)
	}
	d := &ctdProcess{dir: dir, sock: filepath.Join(dir, "c.sock"), logf: filepath.Join(dir, "containerd.log"), statsCollectPeriod: statsCollectPeriod}
	t.Cleanup(func() { d.stop(t, shimRunDirExisted) })
	d.start(t, sandboxImage)
	return d
}

// start starts containerd configured with sandboxImage as its
// sandbox_image, on the state in d.dir, and waits until its CRI service
// answers.
func (d *ctdProcess) start(t testing.TB, sandboxImage string) {
	t.Helper()
	dir := d.dir
	// restrict_oom_score_adj: this machine lacks CAP_SYS_RESOURCE, and runc
	// fails every sandbox raising its oom_score_adj without it. No CNI is
	// installed: pods use the host's network.
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  stats_collect_period = %[6]d
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), d.sock, filepath.Join(dir, "opt"), sandboxImage, d.statsCollectPeriod)
	configFile := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}

	logFile, err := os.OpenFile(d.logf, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command("containerd", "--config", configFile)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the test binary dies, so does containerd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	exited := make(chan struct{})
	d.cmd, d.exited = cmd, exited
	start := time.Now()
	if err := cmd.Start(); err != nil {
		close(exited)
		t.Fatalf("start containerd: %v", err)
	}
	go func() {
		d.err = cmd.Wait()
		close(exited)
	}()

	var lastErr error
	err = wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, ctdReadyTimeout, true, func(ctx context.Context) (bool, error) {
		select {
		case <-exited:
			return false, fmt.Errorf("containerd exited: %v", d.err)
		default:
		}
		c, err := DialCRI(ctx, "unix://"+d.sock, time.Second)
		if err != nil {
			lastErr = err
			return false, nil
		}
		defer func() { _ = c.Close() }()
		// CRI answers Version before it has loaded its state; ListImages
		// says "server is not initialized yet" until then.
		if _, err := c.ListImages(ctx); err != nil {
			lastErr = err
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("containerd's CRI service at %s did not answer: %v (last error: %v)", d.sock, err, lastErr)
	}
	t.Logf("containerd (pid %d, sandbox_image %s) answers CRI at %s after %v", cmd.Process.Pid, sandboxImage, d.sock, time.Since(start).Round(time.Millisecond))

	// A new connection: the old one may be backing off after a restart.
	// Not closed by t.Cleanup: t may be a subtest, and the pods' cleanup
	// needs the connection after it.
	conn, err := grpc.NewClient("unix://"+d.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	if d.conn != nil {
		_ = d.conn.Close()
	}
	d.conn, d.runtime = conn, runtimeapi.NewRuntimeServiceClient(conn)
}

// restart stops containerd, leaving pods running (their shims outlive it, as
// on a node whose containerd restarts), and starts it again configured with
// sandboxImage.
func (d *ctdProcess) restart(t *testing.T, sandboxImage string) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop containerd: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(ctdStopTimeout):
		t.Fatalf("containerd did not exit within %v of SIGTERM", ctdStopTimeout)
	}
	d.start(t, sandboxImage)
}

// importImages writes images to a docker-archive and imports it with ctr
// into CRI's namespace.
func (d *ctdProcess) importImages(t *testing.T, images []testImage) {
	t.Helper()
	archive := filepath.Join(d.dir, "images.tar")
	if err := writeDockerArchive(archive, images); err != nil {
		t.Fatalf("write images: %v", err)
	}
	d.importArchive(t, archive)
}

// importArchive imports a docker-archive with ctr into CRI's namespace.
func (d *ctdProcess) importArchive(t *testing.T, archive string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "ctr", "-n", ctdNamespace, "--address", d.sock, "images", "import", archive).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
	t.Logf("ctr images import:\n%s", out)
}

// waitForImages waits until CRI lists every tag of images (CRI learns of
// ctr's imports from containerd's events, not at once), and returns the
// images by tag.
func (d *ctdProcess) waitForImages(t *testing.T, c *CRI, images ...testImage) map[string]Image {
	t.Helper()
	byTag := map[string]Image{}
	var missing []string
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, ctdReadyTimeout, true, func(ctx context.Context) (bool, error) {
		listed, err := c.ListImages(ctx)
		if err != nil {
			return false, err
		}
		clear(byTag)
		for _, img := range listed {
			for _, tag := range img.RepoTags {
				byTag[tag] = img
			}
		}
		missing = nil
		for _, img := range images {
			for _, tag := range img.tags {
				if _, ok := byTag[tag]; !ok {
					missing = append(missing, tag)
				}
			}
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		t.Fatalf("CRI does not list the imported images %v: %v", missing, err)
	}
	for _, img := range images {
		first := byTag[img.tags[0]]
		for _, tag := range img.tags[1:] {
			if byTag[tag].ID != first.ID {
				t.Fatalf("%s is image %s, %s is %s: want one image", img.tags[0], first.ID, tag, byTag[tag].ID)
			}
		}
		t.Logf("image %s %v: %d bytes, %d repo digests, pinned=%t", first.ID, first.RepoTags, first.Size, len(first.RepoDigests), first.Pinned)
	}
	return byTag
}

// createContainer creates a pod sandbox on the host's network and, in it, a
// container of image that is created but never started, returns their IDs,
// and removes both through CRI when the test ends, before containerd stops:
// the shims would outlive it.
func (d *ctdProcess) createContainer(t *testing.T, image string) (sandboxID, containerID string) {
	t.Helper()
	ctx := t.Context()
	sandboxID, sandboxConfig := d.runSandbox(t, "user")
	ctr, err := d.runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sandboxID,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "user"},
			Image:    &runtimeapi.ImageSpec{Image: image},
			// The image has no entrypoint; containerd refuses a container
			// without a command. It is never started.
			Command: []string{"/d"},
			LogPath: "user.log",
		},
		SandboxConfig: sandboxConfig,
	})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	containerID = ctr.GetContainerId()
	d.removeContainerAtEnd(t, containerID)
	return sandboxID, containerID
}

// runSandbox runs a pod sandbox named name on the host's network and
// removes it through CRI when the test ends, before containerd stops: its
// shim would outlive it. Its log folder is d.dir/pods/name.
func (d *ctdProcess) runSandbox(t *testing.T, name string) (string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	config := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "containerd-test-" + name},
		LogDirectory: filepath.Join(d.dir, "pods", name),
		// No Hostname: runc cannot set one without a UTS namespace of its
		// own, and host-network pods share the host's (kubelet sends none).
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
	sb, err := d.runtime.RunPodSandbox(t.Context(), &runtimeapi.RunPodSandboxRequest{Config: config})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	id := sb.GetPodSandboxId()
	t.Cleanup(func() {
		// t.Context is done by now.
		ctx, cancel := context.WithTimeout(context.Background(), ctdReadyTimeout)
		defer cancel()
		if _, err := d.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Errorf("StopPodSandbox %s: %v", id, err)
		}
		if _, err := d.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Errorf("RemovePodSandbox %s: %v", id, err)
		}
	})
	return id, config
}

// removeContainerAtEnd removes container id through CRI when the test
// ends, before its sandbox (cleanups run last registered first).
func (d *ctdProcess) removeContainerAtEnd(t *testing.T, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ctdReadyTimeout)
		defer cancel()
		if _, err := d.runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Errorf("RemoveContainer %s: %v", id, err)
		}
	})
}

// runToExit runs config as a pod's only container, in a sandbox of its own
// on the host's network, as the kubelet runs a Job's pod; waits until it
// has exited; and returns its status and what it wrote to stdout and
// stderr, read from its CRI log.
func (d *ctdProcess) runToExit(t *testing.T, config *runtimeapi.ContainerConfig) (status *runtimeapi.ContainerStatus, stdout, stderr string) {
	t.Helper()
	ctx := t.Context()
	name := config.GetMetadata().GetName()
	sandboxID, sandboxConfig := d.runSandbox(t, name)
	ctr, err := d.runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: config, SandboxConfig: sandboxConfig})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	id := ctr.GetContainerId()
	d.removeContainerAtEnd(t, id)
	if _, err := d.runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, removerExitTimeout, true, func(ctx context.Context) (bool, error) {
		s, err := d.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			return false, err
		}
		status = s.GetStatus()
		return status.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED, nil
	})
	if err != nil {
		t.Fatalf("container %s did not exit within %v: %v (last status %+v)", name, removerExitTimeout, err, status)
	}
	logFile := filepath.Join(sandboxConfig.GetLogDirectory(), config.GetLogPath())
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatalf("container log: %v", err)
	}
	stdout, stderr = splitCRILog(string(b))
	return status, stdout, stderr
}

// splitCRILog splits a container log in the CRI format
// ("<time> <stream> <P|F> <text>" per line; P: the line goes on in the
// next) into what the container wrote to stdout and to stderr.
func splitCRILog(log string) (stdout, stderr string) {
	var out, errOut strings.Builder
	for line := range strings.Lines(log) {
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 4)
		if len(f) < 4 {
			continue
		}
		w := &out
		if f[1] == "stderr" {
			w = &errOut
		}
		w.WriteString(f[3])
		if f[2] != "P" {
			w.WriteString("\n")
		}
	}
	return out.String(), errOut.String()
}

// assertNode checks that the node has exactly the images of want, each with
// all its tags and the ID it had before, in CRI's view and in containerd's
// own image store.
func (d *ctdProcess) assertNode(t *testing.T, c *CRI, before map[string]Image, want ...testImage) {
	t.Helper()
	listed, err := c.ListImages(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, img := range listed {
		got[img.ID] = sortedUnique(img.RepoTags)
	}
	wantIDs := map[string][]string{}
	var wantNames []string
	for _, img := range want {
		id := before[img.tags[0]].ID
		wantIDs[id] = sortedUnique(img.tags)
		wantNames = append(wantNames, img.tags...)
	}
	if !reflect.DeepEqual(got, wantIDs) {
		t.Errorf("CRI lists images %v, want %v", got, wantIDs)
	}

	// containerd's own store, not CRI's cache of it: the removed images are
	// really gone. CRI may also name an image by its ID there.
	out, err := exec.CommandContext(t.Context(), "ctr", "-n", ctdNamespace, "--address", d.sock, "images", "list", "--quiet").Output()
	if err != nil {
		t.Fatalf("ctr images list: %v", err)
	}
	var names []string
	for _, name := range strings.Fields(string(out)) {
		if _, isID := wantIDs[name]; !isID {
			names = append(names, name)
		}
	}
	if slices.Sort(names); !slices.Equal(names, sortedUnique(wantNames)) {
		t.Errorf("containerd has images %v, want %v", names, sortedUnique(wantNames))
	}
}

// stop stops containerd and removes its folder. Whatever the test left
// running (a shim, a container) is an error, killed so that nothing stays.
func (d *ctdProcess) stop(t testing.TB, shimRunDirExisted bool) {
	if d.conn != nil {
		_ = d.conn.Close()
	}
	if d.cmd != nil && d.cmd.Process != nil {
		select {
		case <-d.exited:
			t.Errorf("containerd exited before the test ended: %v", d.err)
		default:
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(ctdStopTimeout):
				t.Errorf("containerd did not exit within %v of SIGTERM; killing it", ctdStopTimeout)
				_ = d.cmd.Process.Kill()
				<-d.exited
			}
		}
	}

	// A shim whose pod was removed exits on its own, maybe just after
	// containerd: give it a moment.
	var left []process
	_ = wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, shimExitTimeout, true, func(context.Context) (bool, error) {
		left = processesUnder(d.dir)
		return len(left) == 0, nil
	})
	for _, p := range left {
		t.Errorf("process %d (%s) outlived containerd; killing it", p.pid, p.cmdline)
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	mounts := mountsUnder(d.dir)
	for i := len(mounts) - 1; i >= 0; i-- {
		t.Errorf("%s is still mounted; unmounting it", mounts[i])
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mounts[i], err)
		}
	}
	if t.Failed() {
		t.Log(d.logTail())
	}
	if err := os.RemoveAll(d.dir); err != nil {
		t.Errorf("remove containerd's folder: %v", err)
	}
	if !shimRunDirExisted {
		removeEmptyDirs(shimRunDir)
	}
}

// logTail returns the end of containerd's log.
func (d *ctdProcess) logTail() string {
	b, err := os.ReadFile(d.logf)
	if err != nil {
		return "(no containerd log: " + err.Error() + ")"
	}
	const max = 8 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "containerd log (end):\n" + string(b)
}

type process struct {
	pid     int
	cmdline string
}

// processesUnder lists the processes that belong to the containerd in dir: a
// shim names dir's socket on its command line, a container's root is in
// dir.
func processesUnder(dir string) []process {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		root, _ := os.Readlink(filepath.Join("/proc", e.Name(), "root"))
		if strings.Contains(cmdline, dir) || root == dir || strings.HasPrefix(root, dir+"/") {
			out = append(out, process{pid, cmdline})
		}
	}
	return out
}

// mountsUnder lists the mount points in dir, in mount order.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// removeEmptyDirs removes dir and the folders in it if they hold nothing
// but empty folders; a file anywhere keeps it and its parents.
func removeEmptyDirs(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			removeEmptyDirs(filepath.Join(dir, e.Name()))
		}
	}
	_ = os.Remove(dir) // fails, as it should, when dir is not empty
}

// runRemoverBinary runs the built image-remover with args, writing its
// termination log to term, and returns that log and the report it printed.
func runRemoverBinary(t *testing.T, bin, term string, args ...string) ([]byte, Report) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), bin, append(args, "--termination-log="+term)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("image-remover stderr:\n%s", stderr.String())
	if err != nil {
		t.Fatalf("image-remover: %v", err)
	}
	msg, err := os.ReadFile(term)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report on stdout %q: %v", stdout.String(), err)
	}
	return msg, rep
}
