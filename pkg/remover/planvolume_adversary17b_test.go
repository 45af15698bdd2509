package remover

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// TestCheckPlanVolumeKeysInTheTimestampedFolderStayInside holds the
// README's "#### The plan a remover acts on", step 3: the remover checks
// "that the folder of --plan is the folder it reads", that the folder's
// mount is read-only, and that it is the ConfigMap's volume "as the kubelet
// writes it (AtomicWriter: ..data a symlink to a ..<timestamp> folder beside
// it, and images.txt, keep.txt and configmap-name each a symlink to
// ..data/<key>)"; checkDataDir's comment adds "so that every key resolves
// inside the checked folder". The kubelet writes the keys inside the
// timestamped folder as regular files.
//
// Minimal input: the kubelet's layout in a read-only folder, except that
// ..<timestamp>/<key> is itself a symlink to a file in a writable folder
// (readOnlyUnder). checkKeyLink only reads the first link (key ->
// ..data/key) and checkDataDir only the second (..data -> ..<timestamp>);
// nothing looks at what ..<timestamp>/key is.
//
// Now: checkPlanVolume accepts, and the plan, the keep list and the name
// key are read from the writable folder, outside the checked read-only one.
func TestCheckPlanVolumeKeysInTheTimestampedFolderStayInside(t *testing.T) {
	const name = "u-image-cleanup"
	for _, key := range []string{"images.txt", "keep.txt", report.PlanNameKey} {
		t.Run(key, func(t *testing.T) {
			tmp := t.TempDir()
			vol, rw := filepath.Join(tmp, "vol"), filepath.Join(tmp, "rw")
			writeConfigMapVolume(t, vol, planVolumeData(name))
			if err := os.MkdirAll(rw, 0o755); err != nil {
				t.Fatal(err)
			}
			ts, err := os.Readlink(filepath.Join(vol, dataDirName))
			if err != nil {
				t.Fatal(err)
			}
			outside := filepath.Join(rw, key)
			if err := os.WriteFile(outside, []byte(planVolumeData(name)[key]), 0o644); err != nil {
				t.Fatal(err)
			}
			inside := filepath.Join(vol, ts, key)
			if err := os.Remove(inside); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, inside); err != nil {
				t.Fatal(err)
			}
			plan, keep := filepath.Join(vol, "images.txt"), filepath.Join(vol, "keep.txt")
			if err := checkPlanVolume(plan, keep, name, readOnlyUnder(vol)); err == nil {
				real, _ := filepath.EvalSymlinks(filepath.Join(vol, key))
				t.Errorf("checkPlanVolume(--plan=%s) accepted the read-only folder %s, but its key %s is read from %s, a writable folder outside it",
					plan, vol, key, real)
			}
		})
	}
}
