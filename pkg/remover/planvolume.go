package remover

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// The kubelet's layout of a ConfigMap volume (k8s.io/kubernetes
// pkg/volume/util.AtomicWriter): each key is a symlink "key -> ..data/key",
// and "..data" is a symlink to the timestamped folder holding the files, so
// that an update swaps all of them at once.
const dataDirName = "..data"

// maxNameBytes bounds the read of the name key: a ConfigMap's name is at
// most 253 bytes, and anything longer is not one.
const maxNameBytes = 253

// readOnlyFunc reports whether the file system holding path is mounted
// read-only, from the mount's own flags.
type readOnlyFunc func(path string) (bool, error)

// checkPlanVolume refuses a plan that is not what --plan-configmap says it
// is: configMap's keys mounted read-only by the kubelet. A Job is let
// through admission only when it mounts the ConfigMap it names in
// --plan-configmap read-only at the folder of --plan and --keep (the
// removal Job policy), so what the remover checks here is that the files
// it was pointed at are that mount, and not a host folder, an image's
// folder or a writable copy: the plan and the keep list must be keys of
// one kubelet-written volume (the layout above), that volume must say it
// is configMap (report.PlanNameKey, which the controller writes), and its
// mount must be read-only, so that nothing in the pod can have changed the
// files after the kubelet wrote them. keep may be empty (no keep list).
//
// The plan's content is checked afterwards against --plan-digest; this
// check is about where it comes from.
func checkPlanVolume(plan, keep, configMap string, readOnly readOnlyFunc) error {
	dir := filepath.Dir(plan)
	where := fmt.Sprintf("--plan-configmap %s: plan folder %s", configMap, dir)
	if keep != "" && filepath.Dir(keep) != dir {
		return fmt.Errorf("%s: the keep list %s is in another folder; both must be keys of the one ConfigMap volume; removing nothing", where, keep)
	}
	data := filepath.Join(dir, dataDirName)
	if fi, err := os.Lstat(data); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		return fmt.Errorf("%s is not a ConfigMap volume as the kubelet writes one: %s is not a symlink (%s); removing nothing", where, data, lstatWhy(fi, err))
	}
	files := []string{plan, filepath.Join(dir, report.PlanNameKey)}
	if keep != "" {
		files = append(files, keep)
	}
	for _, f := range files {
		if err := checkKeyLink(f); err != nil {
			return fmt.Errorf("%s is not a ConfigMap volume as the kubelet writes one: %w; removing nothing", where, err)
		}
	}
	name, err := readName(filepath.Join(dir, report.PlanNameKey))
	if err != nil {
		return fmt.Errorf("%s: %w; removing nothing", where, err)
	}
	if name != configMap {
		return fmt.Errorf("%s holds ConfigMap %q, not %q: it is not the plan this Job was made for; removing nothing", where, name, configMap)
	}
	ro, err := readOnly(dir)
	if err != nil {
		return fmt.Errorf("%s: %w; removing nothing", where, err)
	}
	if !ro {
		return fmt.Errorf("%s is mounted read-write: the Job must mount the plan ConfigMap read-only; removing nothing", where)
	}
	return nil
}

// checkKeyLink checks that f is a key of a kubelet volume: a symlink to
// ..data/<its own name>.
func checkKeyLink(f string) error {
	target, err := os.Readlink(f)
	if err != nil {
		return fmt.Errorf("%s is not a symlink: %w", f, err)
	}
	if want := dataDirName + "/" + filepath.Base(f); target != want {
		return fmt.Errorf("%s links to %q, want %q", f, target, want)
	}
	return nil
}

// readName reads the volume's name key, bounded: a hostile file must not
// make the remover read a disk.
func readName(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read the ConfigMap's name: %w", err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxNameBytes+1))
	if err != nil {
		return "", fmt.Errorf("read the ConfigMap's name from %s: %w", path, err)
	}
	if len(b) > maxNameBytes {
		return "", fmt.Errorf("%s is over %d bytes: it is not a ConfigMap's name", path, maxNameBytes)
	}
	return string(b), nil
}

// lstatWhy says what os.Lstat found instead of a symlink.
func lstatWhy(fi fs.FileInfo, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case fi.IsDir():
		return "it is a folder"
	default:
		return fmt.Sprintf("its mode is %v", fi.Mode())
	}
}
