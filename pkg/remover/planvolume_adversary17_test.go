package remover

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/fakecri"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// readOnlyUnder is a readOnlyFunc for which only the mount at root (and
// what lies lexically under it) is read-only: every other folder is
// writable.
func readOnlyUnder(root string) readOnlyFunc {
	return func(p string) (bool, error) {
		return p == root || strings.HasPrefix(p, root+string(filepath.Separator)), nil
	}
}

// TestCheckPlanVolumeReadsOnlyTheCheckedFolder holds the README's "#### The
// plan a remover acts on", step 3: given --plan-configmap NAME the remover
// checks "that the folder of --plan is that ConfigMap's volume as the
// kubelet writes it (AtomicWriter: ..data a symlink to a timestamped folder,
// and images.txt, keep.txt and configmap-name each a symlink to
// ..data/<key>) ... and that the folder's mount is read-only", "so that
// nothing in the pod can have changed the files after the kubelet wrote
// them" (planvolume.go). The plan it then reads must be the files of the
// read-only folder it checked.
//
// Two ways around it, each with a folder that is read-only and one that is
// writable (readOnlyUnder):
//   - "..data" a symlink to any folder, here an absolute path into a
//     writable folder: the check only asks that ..data be a symlink, and
//     the read-only flag of the plan's folder, not of the files the keys
//     lead to;
//   - --plan=<tmp>/link/../vol/images.txt with <tmp>/link a symlink into a
//     writable folder: filepath.Dir cleans ".." lexically, so names and
//     mount flags are read from <tmp>/vol (the genuine, read-only volume)
//     while the kernel resolves "link/.." physically and the plan is read
//     from the writable hand-made copy.
//
// Now: checkPlanVolume accepts both, and the plan read is the writable one.
func TestCheckPlanVolumeReadsOnlyTheCheckedFolder(t *testing.T) {
	const name = "u-image-cleanup"
	genuine := planVolumeData(name)
	forged := planVolumeData(name)
	forged["images.txt"] = "docker.io/rancher/harvester:v1.5.0\n" // the new version: not the plan

	for _, tc := range []struct {
		what string
		// setup builds the folders under tmp and returns --plan, --keep
		// and the read-only mount.
		setup func(t *testing.T, tmp string) (plan, keep, roMount string)
	}{
		{"..data leads out of the folder", func(t *testing.T, tmp string) (string, string, string) {
			vol, rw := filepath.Join(tmp, "vol"), filepath.Join(tmp, "rw")
			writeConfigMapVolume(t, rw, forged)
			if err := os.MkdirAll(vol, 0o755); err != nil {
				t.Fatal(err)
			}
			for key := range forged {
				if err := os.Symlink(dataDirName+"/"+key, filepath.Join(vol, key)); err != nil {
					t.Fatal(err)
				}
			}
			target, err := os.Readlink(filepath.Join(rw, dataDirName))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(rw, target), filepath.Join(vol, dataDirName)); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(vol, "images.txt"), filepath.Join(vol, "keep.txt"), vol
		}},
		{"a symlinked folder before ..", func(t *testing.T, tmp string) (string, string, string) {
			vol := filepath.Join(tmp, "vol")
			writeConfigMapVolume(t, vol, genuine)
			writeConfigMapVolume(t, filepath.Join(tmp, "rw", "vol"), forged)
			if err := os.MkdirAll(filepath.Join(tmp, "rw", "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(tmp, "rw", "sub"), filepath.Join(tmp, "link")); err != nil {
				t.Fatal(err)
			}
			// Not filepath.Join, which would clean "link/.." away.
			return tmp + "/link/../vol/images.txt", filepath.Join(vol, "keep.txt"), vol
		}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			plan, keep, ro := tc.setup(t, t.TempDir())
			err := checkPlanVolume(plan, keep, name, readOnlyUnder(ro))
			if err != nil {
				return // refused: what the README promises
			}
			b, rerr := os.ReadFile(plan)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if string(b) != genuine["images.txt"] {
				t.Errorf("checkPlanVolume(--plan=%s) accepted the read-only folder %s, but the plan read is %q from a writable folder, not the checked volume's %q",
					plan, ro, b, genuine["images.txt"])
			}
		})
	}
}

// fifoInVolume writes the kubelet's layout of the plan ConfigMap into dir,
// with the file behind key a FIFO nobody writes to.
func fifoInVolume(t *testing.T, dir, key string) string {
	t.Helper()
	writeConfigMapVolume(t, dir, planVolumeData("u-image-cleanup"))
	target, err := filepath.EvalSymlinks(filepath.Join(dir, key))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(target, 0o644); err != nil {
		t.Fatal(err)
	}
	return target
}

// releaseFIFO opens fifo for writing and closes it, so that a reader
// blocked on it returns (with end of file) once the test has failed.
func releaseFIFO(fifo string) {
	if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
		_ = f.Close()
	}
}

// hangBound is far beyond what reading a plan folder takes.
const hangBound = 10 * time.Second

// TestMainRefusesAWritablePlanFolderHoldingAFIFO holds the README's "A host
// folder, a folder of the image, a writable copy or another plan's ConfigMap
// is refused, exit 2" (#### The plan a remover acts on) and --timeout's
// "overall limit": a writable copy of the kubelet's layout whose
// configmap-name is a FIFO must be refused (mounted read-write) like any
// other writable copy.
//
// Now: checkPlanVolume opens configmap-name (readName) before it looks at
// the mount flags, and open(2) of a FIFO without a writer blocks for ever:
// the remover hangs before --timeout even starts, writes no result and
// never says why.
func TestMainRefusesAWritablePlanFolderHoldingAFIFO(t *testing.T) {
	srv := fakecri.Start(t, nil, nil)
	dir := t.TempDir()
	fifo := fifoInVolume(t, filepath.Join(dir, "plan"), report.PlanNameKey)
	term := filepath.Join(dir, "termination-log")
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(t.Context(), planFolderArgs(filepath.Join(dir, "plan"), srv.Endpoint(), term), &stdout, &stderr)
	}()
	select {
	case code := <-done:
		if code != report.ExitRefused {
			t.Errorf("exit code %d, want %d; stderr:\n%s", code, report.ExitRefused, stderr.String())
		}
		if msg, err := os.ReadFile(term); err != nil || report.ResultFromTermination(string(msg)).Error == "" {
			t.Errorf("termination log %q (%v): want the refusal's reason", msg, err)
		}
	case <-time.After(hangBound):
		releaseFIFO(fifo)
		<-done
		t.Errorf("Main still running after %s on a writable plan folder whose %s is a FIFO: it hangs instead of refusing the folder", hangBound, report.PlanNameKey)
	}
	if calls := srv.RemoveCalls(); len(calls) != 0 {
		t.Errorf("RemoveImage called: %v", calls)
	}
}

// TestReadingAPlanFolderEnds holds the README's --keep row ("Unreadable,
// invalid or empty: exit 2, nothing removed"), the plan's ("the plan or the
// keep list cannot be read ... exit 2") and --timeout's "overall limit":
// the steps Main takes on a plan folder before anything else (check the
// folder, read the plan, read the keep list) end, accepting or refusing,
// whatever file a key leads to, here a FIFO on a folder that reads as
// read-only (a host folder mounted read-only, with the kubelet's layout).
//
// Now: each step opens its file with a blocking open(2); on a FIFO without
// a writer it never returns.
func TestReadingAPlanFolderEnds(t *testing.T) {
	for _, key := range []string{report.PlanNameKey, "images.txt", "keep.txt"} {
		t.Run(key, func(t *testing.T) {
			dir := t.TempDir()
			fifo := fifoInVolume(t, dir, key)
			plan, keep := filepath.Join(dir, "images.txt"), filepath.Join(dir, "keep.txt")
			done := make(chan error, 1)
			go func() {
				if err := checkPlanVolume(plan, keep, "u-image-cleanup", readOnlyIs(true, nil)); err != nil {
					done <- err
					return
				}
				if _, _, err := readPlan(plan, ""); err != nil {
					done <- err
					return
				}
				_, err := readKeep(keep)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("a plan folder whose %s is a FIFO accepted", key)
				}
			case <-time.After(hangBound):
				releaseFIFO(fifo)
				<-done
				t.Errorf("checking and reading a plan folder whose %s is a FIFO still running after %s: it hangs", key, hangBound)
			}
		})
	}
}
