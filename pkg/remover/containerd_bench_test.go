//go:build containerd

// BenchmarkContainerdRemoval measures image removal on a real containerd
// (the same throwaway containerd as TestContainerd; root, Debian's
// containerd, hack/containerd-test's set-up) three ways, on the same
// images, in the same run:
//
//   - remover-P: the image-remover binary, as the removal Job runs it
//     (--plan naming every image, --parallel-removals P; --image-fs-wait 0,
//     so the figure is removal, not the wait for containerd's next usage
//     statistics; a process start, three listings, the decisions, the
//     removals and the listing that checks them);
//   - crictl: one `crictl rmi REF` process per image, one after the other,
//     as Harvester's cleanup script runs it (crictl v1.37.0, built from the
//     nested module hack/crictl; each call resolves the reference with
//     ImageStatus, then removes);
//   - floor-P: bare CRI RemoveImage calls by image ID over one open
//     connection, P in flight: what the runtime itself takes, with nothing
//     decided and nothing checked.
//
// Each iteration imports N images (the timer stopped), removes them with
// the method (the timer running), and checks that none is left (stopped
// again). Every image is a config and one small layer of its own, so no
// two share content. hack/bench/remover runs the benchmark several times,
// rotating the methods' order (-removal-round), and turns the figures into
// BENCHMARKS.md's section 6:
//
//	go test -tags containerd -run '^$' -bench ContainerdRemoval -benchtime 1x ./pkg/remover/ \
//		-args -removal-sizes 50,200 -removal-parallel 1,4

package remover

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var (
	removalSizes    = flag.String("removal-sizes", "50,200,500", "BenchmarkContainerdRemoval: numbers of images, comma-separated")
	removalParallel = flag.String("removal-parallel", "1,2,4,8", "BenchmarkContainerdRemoval: RemoveImage calls in flight for the remover and the floor, comma-separated")
	removalRound    = flag.Int("removal-round", 0, "BenchmarkContainerdRemoval: rotates the methods' order by this many places, so that repeated runs alternate which goes first")
	crictlBinary    = flag.String("crictl", "", "BenchmarkContainerdRemoval: crictl to run; empty: build it from hack/crictl")
)

// benchRemoveTimeout bounds one method's removal of all N images.
const benchRemoveTimeout = 10 * time.Minute

// removalMethod removes the images of one iteration.
type removalMethod struct {
	name   string
	remove func(b *testing.B, images []benchImage)
}

// benchImage is one imported image: its only tag and its ID.
type benchImage struct {
	tag, id string
}

func BenchmarkContainerdRemoval(b *testing.B) {
	sizes := intList(b, "removal-sizes", *removalSizes)
	parallel := intList(b, "removal-parallel", *removalParallel)
	// containerd's default stats_collect_period, as on a node: its
	// recomputation walks every snapshot.
	ctd := startContainerd(b, 10)
	endpoint := "unix://" + ctd.sock
	remover := buildGo(b, ctd.dir, "github.com/upgrade-image-cleanup/upgrade-image-cleanup/cmd/image-remover")
	crictl := *crictlBinary
	if crictl == "" {
		crictl = buildCrictl(b, ctd.dir)
	}
	crictlConfig := filepath.Join(ctd.dir, "crictl.yaml")
	if err := os.WriteFile(crictlConfig, []byte(fmt.Sprintf("runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 120\n", endpoint, endpoint)), 0o644); err != nil {
		b.Fatal(err)
	}
	images := runtimeapi.NewImageServiceClient(ctd.conn)

	var methods []removalMethod
	for _, p := range parallel {
		methods = append(methods, removalMethod{fmt.Sprintf("remover/parallel=%d", p), func(b *testing.B, imgs []benchImage) {
			plan := filepath.Join(ctd.dir, "plan.txt")
			var sb strings.Builder
			for _, img := range imgs {
				sb.WriteString(img.tag + "\n")
			}
			if err := os.WriteFile(plan, []byte(sb.String()), 0o644); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			out, err := exec.Command(remover, "--plan", plan, "--runtime-endpoint", endpoint, "--termination-log", "",
				"--image-fs-wait", "0", "--parallel-removals", strconv.Itoa(p)).CombinedOutput()
			b.StopTimer()
			if err != nil {
				b.Fatalf("image-remover: %v\n%s", err, tail(out))
			}
		}})
	}
	methods = append(methods, removalMethod{"crictl", func(b *testing.B, imgs []benchImage) {
		b.StartTimer()
		for _, img := range imgs {
			if out, err := exec.Command(crictl, "--config", crictlConfig, "rmi", img.tag).CombinedOutput(); err != nil {
				b.StopTimer()
				b.Fatalf("crictl rmi %s: %v\n%s", img.tag, err, out)
			}
		}
		b.StopTimer()
	}})
	for _, p := range parallel {
		methods = append(methods, removalMethod{fmt.Sprintf("floor/parallel=%d", p), func(b *testing.B, imgs []benchImage) {
			ctx, cancel := context.WithTimeout(b.Context(), benchRemoveTimeout)
			defer cancel()
			next := make(chan string)
			errs := make(chan error, len(imgs))
			var workers wait.Group
			b.StartTimer()
			for range p {
				workers.Start(func() {
					for id := range next {
						if _, err := images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: id}}); err != nil {
							errs <- fmt.Errorf("RemoveImage %s: %w", id, err)
						}
					}
				})
			}
			for _, img := range imgs {
				next <- img.id
			}
			close(next)
			workers.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
		}})
	}
	shift := *removalRound % len(methods)
	methods = append(methods[shift:], methods[:shift]...)

	for _, n := range sizes {
		archive := filepath.Join(ctd.dir, fmt.Sprintf("bench-%d.tar", n))
		var imgs []testImage
		for i := range n {
			imgs = append(imgs, testImage{name: fmt.Sprintf("bench-%d", i), tags: []string{fmt.Sprintf("docker.io/rancher/bench-%d:v%d", i, n)}})
		}
		if err := writeDockerArchive(archive, imgs); err != nil {
			b.Fatal(err)
		}
		for _, m := range methods {
			b.Run(fmt.Sprintf("images=%d/method=%s", n, m.name), func(b *testing.B) {
				b.StopTimer()
				for range b.N {
					imported := importQuietly(b, ctd, archive, imgs)
					m.remove(b, imported)
					if left := listedTags(b, images, imported); len(left) > 0 {
						b.Fatalf("%s left %d of %d images, e.g. %s", m.name, len(left), n, left[0])
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n)/1000, "ms/image")
			})
		}
	}
}

// importQuietly imports the archive with ctr and waits until CRI lists
// every image of it, without the test's logs: hundreds of images would
// bury the benchmark lines.
func importQuietly(b *testing.B, ctd *ctdProcess, archive string, imgs []testImage) []benchImage {
	b.Helper()
	if out, err := exec.CommandContext(b.Context(), "ctr", "-n", ctdNamespace, "--address", ctd.sock, "images", "import", archive).CombinedOutput(); err != nil {
		b.Fatalf("ctr images import: %v\n%s", err, tail(out))
	}
	c := runtimeapi.NewImageServiceClient(ctd.conn)
	var got []benchImage
	err := wait.PollUntilContextTimeout(b.Context(), 20*time.Millisecond, ctdReadyTimeout, true, func(ctx context.Context) (bool, error) {
		resp, err := c.ListImages(ctx, &runtimeapi.ListImagesRequest{})
		if err != nil {
			return false, err
		}
		byTag := map[string]string{}
		for _, img := range resp.Images {
			for _, tag := range img.RepoTags {
				byTag[tag] = img.Id
			}
		}
		got = got[:0]
		for _, img := range imgs {
			id, ok := byTag[img.tags[0]]
			if !ok {
				return false, nil
			}
			got = append(got, benchImage{tag: img.tags[0], id: id})
		}
		return true, nil
	})
	if err != nil {
		b.Fatalf("CRI does not list the %d imported images: %v", len(imgs), err)
	}
	return got
}

// listedTags returns the tags of imgs the runtime still lists.
func listedTags(b *testing.B, c runtimeapi.ImageServiceClient, imgs []benchImage) []string {
	b.Helper()
	resp, err := c.ListImages(b.Context(), &runtimeapi.ListImagesRequest{})
	if err != nil {
		b.Fatalf("ListImages: %v", err)
	}
	listed := map[string]bool{}
	for _, img := range resp.Images {
		for _, tag := range img.RepoTags {
			listed[tag] = true
		}
	}
	var left []string
	for _, img := range imgs {
		if listed[img.tag] {
			left = append(left, img.tag)
		}
	}
	return left
}

// buildCrictl builds crictl from the nested module hack/crictl, which pins
// the version Harvester's nodes run.
func buildCrictl(b *testing.B, dir string) string {
	b.Helper()
	out := filepath.Join(dir, "crictl")
	cmd := exec.CommandContext(b.Context(), "go", "build", "-o", out, "sigs.k8s.io/cri-tools/cmd/crictl")
	cmd.Dir = filepath.Join("..", "..", "hack", "crictl")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build crictl in hack/crictl: %v\n%s", err, msg)
	}
	return out
}

// intList parses a comma-separated list of positive numbers from the flag
// name.
func intList(b *testing.B, name, s string) []int {
	b.Helper()
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("-%s %q: want positive numbers separated by commas", name, s)
		}
		out = append(out, n)
	}
	return out
}

// tail is the end of a command's output, for an error message.
func tail(out []byte) string {
	const keep = 2000
	if len(out) > keep {
		return "…" + string(out[len(out)-keep:])
	}
	return string(out)
}
