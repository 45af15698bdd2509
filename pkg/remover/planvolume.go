package remover

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

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
// The folder checked is the folder read: absolute, clean paths, no symlink
// on the way to the folder, and ..data leading to a folder beside it. The
// mount is checked before any file is opened, and the name key is read
// without blocking (readRegular).
//
// The plan's content is checked afterwards against --plan-digest; this
// check is about where it comes from.
func checkPlanVolume(plan, keep, configMap string, readOnly readOnlyFunc) error {
	dir := filepath.Dir(plan)
	where := fmt.Sprintf("--plan-configmap %s: plan folder %s", configMap, dir)
	refuse := func(format string, a ...any) error {
		return fmt.Errorf("%s%s; removing nothing", where, fmt.Sprintf(format, a...))
	}
	// The folder checked must be the folder read: a path the kernel
	// resolves elsewhere ("link/..", a symlinked folder) is refused.
	for _, p := range []string{plan, keep} {
		if p != "" && (!filepath.IsAbs(p) || filepath.Clean(p) != p) {
			return refuse(": %s is not an absolute path without . or .. elements", p)
		}
	}
	if keep != "" && filepath.Dir(keep) != dir {
		return refuse(": the keep list %s is in another folder; both must be keys of the one ConfigMap volume", keep)
	}
	if real, err := filepath.EvalSymlinks(dir); err != nil || real != dir {
		return refuse(": its path is not the folder itself (%s)", evalWhy(real, err))
	}
	// The mount first, before any file is opened: a writable folder is
	// refused whatever it holds.
	ro, err := readOnly(dir)
	if err != nil {
		return refuse(": %v", err)
	}
	if !ro {
		return refuse(" is mounted read-write: the Job must mount the plan ConfigMap read-only")
	}
	data, err := checkDataDir(dir)
	if err != nil {
		return refuse(" is not a ConfigMap volume as the kubelet writes one: %v", err)
	}
	files := []string{plan, filepath.Join(dir, report.PlanNameKey)}
	if keep != "" {
		files = append(files, keep)
	}
	for _, f := range files {
		if err := checkKeyLink(f, data); err != nil {
			return refuse(" is not a ConfigMap volume as the kubelet writes one: %v", err)
		}
	}
	name, err := readRegular(filepath.Join(dir, report.PlanNameKey), maxNameBytes)
	if err != nil {
		return refuse(": read the ConfigMap's name: %v", err)
	}
	if string(name) != configMap {
		return refuse(" holds ConfigMap %q, not %q: it is not the plan this Job was made for", name, configMap)
	}
	return nil
}

// checkDataDir checks that dir/..data is the kubelet's: a symlink to a
// "..<timestamp>" folder beside it, which it returns, so that every key
// resolves inside the checked folder.
func checkDataDir(dir string) (string, error) {
	data := filepath.Join(dir, dataDirName)
	target, err := os.Readlink(data)
	if err != nil {
		fi, lerr := os.Lstat(data)
		return "", fmt.Errorf("%s is not a symlink (%s)", data, lstatWhy(fi, lerr))
	}
	if !strings.HasPrefix(target, "..") || strings.ContainsRune(target, filepath.Separator) || target == ".." || target == dataDirName {
		return "", fmt.Errorf("%s links to %q, not to a ..<timestamp> folder beside it", data, target)
	}
	stamped := filepath.Join(dir, target)
	if fi, err := os.Lstat(stamped); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s links to %q, which is not a folder (%s)", data, target, lstatWhy(fi, err))
	}
	return stamped, nil
}

// checkKeyLink checks that f is a key of a kubelet volume whose files are
// in the folder data: a symlink to ..data/<its own name>, and there a
// regular file, not a link leading out of the folder.
func checkKeyLink(f, data string) error {
	target, err := os.Readlink(f)
	if err != nil {
		return fmt.Errorf("%s is not a symlink: %w", f, err)
	}
	if want := dataDirName + "/" + filepath.Base(f); target != want {
		return fmt.Errorf("%s links to %q, want %q", f, target, want)
	}
	file := filepath.Join(data, filepath.Base(f))
	if fi, err := os.Lstat(file); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s)", file, lstatWhy(fi, err))
	}
	return nil
}

// lstatWhy says what os.Lstat found instead of what was wanted.
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

// evalWhy says where filepath.EvalSymlinks led, or why it failed.
func evalWhy(real string, err error) string {
	if err != nil {
		return err.Error()
	}
	return "it resolves to " + real
}

// readRegular reads the regular file at path, of at most limit bytes. It
// opens without blocking and refuses anything else (a FIFO, a device), so
// that a hand-made folder cannot make the remover wait for ever before its
// --timeout starts, or read a disk.
func readRegular(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (its mode is %v)", path, fi.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", path, limit)
	}
	return b, nil
}
