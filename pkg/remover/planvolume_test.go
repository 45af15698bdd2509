package remover

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/fakecri"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// writeConfigMapVolume writes data into dir as the kubelet writes a
// ConfigMap volume (k8s.io/kubernetes pkg/volume/util.AtomicWriter): the
// files in a timestamped folder, "..data" a symlink to it, and each key a
// symlink to "..data/<key>".
func writeConfigMapVolume(t *testing.T, dir string, data map[string]string) {
	t.Helper()
	ts := "..2026_11_30_21_57_16.1234567890"
	if err := os.MkdirAll(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for key, text := range data {
		if err := os.WriteFile(filepath.Join(dir, ts, key), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(dataDirName+"/"+key, filepath.Join(dir, key)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ts, filepath.Join(dir, dataDirName)); err != nil {
		t.Fatal(err)
	}
}

// planVolumeData is a plan ConfigMap's keys as the controller writes them.
func planVolumeData(name string) map[string]string {
	return map[string]string{
		"images.txt":       "docker.io/rancher/harvester:v1.4.2\n",
		"keep.txt":         "docker.io/rancher/harvester:v1.5.0\n",
		report.PlanNameKey: name,
	}
}

func readOnlyIs(ro bool, err error) readOnlyFunc {
	return func(string) (bool, error) { return ro, err }
}

func TestCheckPlanVolume(t *testing.T) {
	const name = "u-image-cleanup"
	cases := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		keep     string // the keep list's path; "-": none; "": dir/keep.txt
		readOnly readOnlyFunc
		want     []string // in the error; none: accepted
	}{
		{
			name:     "the named ConfigMap mounted read-only",
			setup:    func(t *testing.T, dir string) { writeConfigMapVolume(t, dir, planVolumeData(name)) },
			readOnly: readOnlyIs(true, nil),
		},
		{
			name:     "without a keep list",
			setup:    func(t *testing.T, dir string) { writeConfigMapVolume(t, dir, planVolumeData(name)) },
			keep:     "-",
			readOnly: readOnlyIs(true, nil),
		},
		{
			name:     "mounted read-write",
			setup:    func(t *testing.T, dir string) { writeConfigMapVolume(t, dir, planVolumeData(name)) },
			readOnly: readOnlyIs(false, nil),
			want:     []string{"mounted read-write", name},
		},
		{
			name:     "mount flags unreadable",
			setup:    func(t *testing.T, dir string) { writeConfigMapVolume(t, dir, planVolumeData(name)) },
			readOnly: readOnlyIs(false, errors.New("statfs: permission denied")),
			want:     []string{"statfs: permission denied"},
		},
		{
			name:     "another ConfigMap",
			setup:    func(t *testing.T, dir string) { writeConfigMapVolume(t, dir, planVolumeData("v-image-cleanup")) },
			readOnly: readOnlyIs(true, nil),
			want:     []string{`holds ConfigMap "v-image-cleanup", not "u-image-cleanup"`},
		},
		{
			name:     "the name with a newline",
			setup:    func(t *testing.T, dir string) { writeConfigMapVolume(t, dir, planVolumeData(name+"\n")) },
			readOnly: readOnlyIs(true, nil),
			want:     []string{`holds ConfigMap "u-image-cleanup\n"`},
		},
		{
			name: "a name too long to be one",
			setup: func(t *testing.T, dir string) {
				writeConfigMapVolume(t, dir, planVolumeData(strings.Repeat("a", 10000)))
			},
			readOnly: readOnlyIs(true, nil),
			want:     []string{"over 253 bytes"},
		},
		{
			name: "no name key",
			setup: func(t *testing.T, dir string) {
				d := planVolumeData(name)
				delete(d, report.PlanNameKey)
				writeConfigMapVolume(t, dir, d)
			},
			readOnly: readOnlyIs(true, nil),
			want:     []string{report.PlanNameKey, "not a symlink"},
		},
		{
			name: "a plain folder",
			setup: func(t *testing.T, dir string) {
				for k, v := range planVolumeData(name) {
					if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			},
			readOnly: readOnlyIs(true, nil),
			want:     []string{"not a ConfigMap volume", "..data is not a symlink"},
		},
		{
			name: "a key linked elsewhere",
			setup: func(t *testing.T, dir string) {
				d := planVolumeData(name)
				d["other.txt"] = "docker.io/rancher/harvester:v1.5.0\n"
				delete(d, "images.txt")
				writeConfigMapVolume(t, dir, d)
				if err := os.Symlink(dataDirName+"/other.txt", filepath.Join(dir, "images.txt")); err != nil {
					t.Fatal(err)
				}
			},
			readOnly: readOnlyIs(true, nil),
			want:     []string{"images.txt links to \"..data/other.txt\", want \"..data/images.txt\""},
		},
		{
			name: "..data leading to the parent folder",
			setup: func(t *testing.T, dir string) {
				writeConfigMapVolume(t, dir, planVolumeData(name))
				data := filepath.Join(dir, dataDirName)
				if err := os.Remove(data); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("..", data); err != nil {
					t.Fatal(err)
				}
			},
			readOnly: readOnlyIs(true, nil),
			want:     []string{`links to "..", not to a ..<timestamp> folder beside it`},
		},
		{
			name:     "the keep list in another folder",
			setup:    func(t *testing.T, dir string) { writeConfigMapVolume(t, dir, planVolumeData(name)) },
			keep:     "/etc/keep.txt",
			readOnly: readOnlyIs(true, nil),
			want:     []string{"/etc/keep.txt", "another folder"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			keep := tc.keep
			switch keep {
			case "":
				keep = filepath.Join(dir, "keep.txt")
			case "-":
				keep = ""
			}
			err := checkPlanVolume(filepath.Join(dir, "images.txt"), keep, name, tc.readOnly)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("checkPlanVolume: %v, want the plan accepted", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("checkPlanVolume accepted the plan, want an error naming %q", tc.want)
			}
			for _, w := range append(tc.want, "--plan-configmap "+name, dir, "removing nothing") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// planFolderArgs are a removal Job's flags for the plan ConfigMap
// u-image-cleanup in folder, the runtime at endpoint and the termination
// log term.
func planFolderArgs(folder, endpoint, term string) []string {
	return []string{
		"--plan=" + filepath.Join(folder, "images.txt"),
		"--keep=" + filepath.Join(folder, "keep.txt"),
		"--plan-configmap=u-image-cleanup",
		"--runtime-endpoint=" + endpoint,
		"--termination-log=" + term,
	}
}

// TestMainRefusesAPlanFolderMountedReadWrite runs the command on the
// kubelet's layout of the named ConfigMap in a temporary folder, which is
// writable: the real mount flags refuse it, before any runtime call.
func TestMainRefusesAPlanFolderMountedReadWrite(t *testing.T) {
	srv := fakecri.Start(t, nil, nil)
	dir := t.TempDir()
	writeConfigMapVolume(t, filepath.Join(dir, "plan"), planVolumeData("u-image-cleanup"))
	term := filepath.Join(dir, "termination-log")
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), planFolderArgs(filepath.Join(dir, "plan"), srv.Endpoint(), term), &stdout, &stderr)
	if code != report.ExitRefused {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", code, report.ExitRefused, stderr.String())
	}
	msg, err := os.ReadFile(term)
	if err != nil {
		t.Fatal(err)
	}
	r := report.ResultFromTermination(string(msg))
	if !strings.Contains(r.Error, "mounted read-write") || !strings.Contains(stderr.String(), "mounted read-write") {
		t.Errorf("result error %q, stderr %q: want both to say the plan folder is mounted read-write", r.Error, stderr.String())
	}
	if calls := srv.RemoveCalls(); len(calls) != 0 {
		t.Errorf("RemoveImage called: %v", calls)
	}
}

func TestPlanConfigMapFlagMustBeAName(t *testing.T) {
	for _, bad := range []string{"Upper", "a/b", "-x", strings.Repeat("a", 254)} {
		_, err := parseFlags([]string{"--plan=/p/images.txt", "--plan-configmap=" + bad}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "--plan-configmap") {
			t.Errorf("--plan-configmap=%q: error %v, want one naming the flag", bad, err)
		}
	}
}

func TestCheckPlanVolumeWantsTheFolderItReads(t *testing.T) {
	dir := t.TempDir()
	writeConfigMapVolume(t, filepath.Join(dir, "vol"), planVolumeData("u-image-cleanup"))
	for _, plan := range []string{"images.txt", dir + "/vol/./images.txt", dir + "/x/../vol/images.txt"} {
		err := checkPlanVolume(plan, "", "u-image-cleanup", readOnlyIs(true, nil))
		if err == nil || !strings.Contains(err.Error(), "not an absolute path without . or .. elements") {
			t.Errorf("--plan=%s: %v, want it refused as not absolute and clean", plan, err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "vol"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	err := checkPlanVolume(filepath.Join(dir, "link", "images.txt"), "", "u-image-cleanup", readOnlyIs(true, nil))
	if err == nil || !strings.Contains(err.Error(), "resolves to "+filepath.Join(dir, "vol")) {
		t.Errorf("a plan folder reached through a symlink: %v, want it refused, naming where it leads", err)
	}
}
