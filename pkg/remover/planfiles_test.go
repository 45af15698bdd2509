package remover_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// parseTermination reads the termination log as a result: every exit
// writes one.
func parseTermination(t *testing.T, out outcome) report.Result {
	t.Helper()
	r, err := report.ParseResult(out.termination)
	if err != nil {
		t.Fatalf("termination log %q is not a result: %v", out.termination, err)
	}
	return r
}

func TestKeepListKeepsImagesOfTheCurrentVersion(t *testing.T) {
	srv := startNode(t)
	// The new version ships harvester:v1.4.2 again, from another registry.
	keep := writeFile(t, "keep.txt", "registry.rancher.com/rancher/harvester:v1.4.2\ndocker.io/rancher/harvester:v1.5.0\n")
	plan := planText
	out := runIn(t, &plan, "--runtime-endpoint", srv.Endpoint(), "--keep", keep)
	if out.code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", out.code, out.stderr)
	}
	assertNeverRemoved(t, srv)
	if slices.Contains(srv.RemoveCalls(), oldImage.Id) {
		t.Errorf("RemoveImage calls = %v: the image the keep list names was removed", srv.RemoveCalls())
	}
	r := parseTermination(t, out)
	if r.Skipped[report.ReasonInCurrentList] != 1 || r.Removed != 1 || r.Error != "" {
		t.Errorf("result = %+v, want 1 in-current-list, 1 removed", r)
	}
}

func TestPlanDigest(t *testing.T) {
	plan := planText
	sum := imagelist.Digest([]byte(plan))

	t.Run("matching digest runs and is reported", func(t *testing.T) {
		srv := startNode(t)
		out := runIn(t, &plan, "--runtime-endpoint", srv.Endpoint(), "--plan-digest", sum)
		if out.code != exitOK {
			t.Fatalf("exit code %d, want 0; stderr:\n%s", out.code, out.stderr)
		}
		var rep remover.Report
		if err := json.Unmarshal([]byte(out.stdout), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.PlanDigest != sum {
			t.Errorf("report's planDigest = %q, want %q", rep.PlanDigest, sum)
		}
		if !strings.Contains(out.stderr, sum) {
			t.Errorf("the digest acted on is not logged:\n%s", out.stderr)
		}
	})
	t.Run("without --plan-digest the digest is still reported", func(t *testing.T) {
		srv := startNode(t)
		out := runIn(t, &plan, "--runtime-endpoint", srv.Endpoint(), "--dry-run")
		var rep remover.Report
		if err := json.Unmarshal([]byte(out.stdout), &rep); err != nil || rep.PlanDigest != sum {
			t.Errorf("report %s, %v: want planDigest %s", out.stdout, err, sum)
		}
	})
	t.Run("another digest removes nothing", func(t *testing.T) {
		srv := startNode(t)
		other := "sha256:" + strings.Repeat("0", 64)
		out := runIn(t, &plan, "--runtime-endpoint", srv.Endpoint(), "--plan-digest", other)
		if out.code != exitUsage {
			t.Fatalf("exit code %d, want 2; stderr:\n%s", out.code, out.stderr)
		}
		if calls := srv.RemoveCalls(); len(calls) != 0 {
			t.Errorf("RemoveImage called: %v", calls)
		}
		r := parseTermination(t, out)
		for _, want := range []string{"images.txt", other, sum} {
			if !strings.Contains(r.Error, want) || !strings.Contains(out.stderr, want) {
				t.Errorf("error %q (stderr %q) does not name %s", r.Error, out.stderr, want)
			}
		}
	})
}

func TestBadKeepOrDigestExitsTwo(t *testing.T) {
	srv := startNode(t)
	plan := planText
	empty := writeFile(t, "keep.txt", "\n\n")
	bad := writeFile(t, "keep.txt", "docker.io/rancher/harvester:v1.5.0\nnot a reference!\n")
	missing := filepath.Join(t.TempDir(), "keep.txt")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"empty keep list", []string{"--keep", empty}, []string{empty, "empty"}},
		{"bad keep line", []string{"--keep", bad}, []string{bad, "line 2"}},
		{"keep file missing", []string{"--keep", missing}, []string{missing, "no such file"}},
		{"digest not sha256", []string{"--plan-digest", "md5:abc"}, []string{"--plan-digest"}},
		{"digest in upper case", []string{"--plan-digest", "sha256:" + strings.Repeat("A", 64)}, []string{"--plan-digest"}},
		{"digest too short", []string{"--plan-digest", "sha256:abc"}, []string{"--plan-digest"}},
		{"zero remove timeout", []string{"--remove-timeout", "0s"}, []string{"--remove-timeout"}},
		{"remove timeout over the timeout", []string{"--remove-timeout", "5m", "--timeout", "1m"}, []string{"--remove-timeout", "--timeout"}},
		{"no removal in flight", []string{"--parallel-removals", "0"}, []string{"--parallel-removals", "from 1 to 32"}},
		{"negative removals in flight", []string{"--parallel-removals", "-1"}, []string{"--parallel-removals"}},
		{"more removals in flight than the bound", []string{"--parallel-removals", "33"}, []string{"--parallel-removals", "from 1 to 32"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := runIn(t, &plan, append([]string{"--runtime-endpoint", srv.Endpoint()}, tc.args...)...)
			if out.code != exitUsage {
				t.Fatalf("exit code %d, want 2; stderr:\n%s", out.code, out.stderr)
			}
			r := parseTermination(t, out)
			for _, w := range tc.want {
				if !strings.Contains(out.stderr, w) || !strings.Contains(r.Error, w) {
					t.Errorf("stderr %q and termination error %q should say %q", out.stderr, r.Error, w)
				}
			}
		})
	}
	if calls := srv.RemoveCalls(); len(calls) != 0 {
		t.Errorf("RemoveImage was called on bad input: %v", calls)
	}
}

// TestEveryExitWritesAResult: the controller reads the termination message
// as a result; on failure it says why in Error.
func TestEveryExitWritesAResult(t *testing.T) {
	srv := startNode(t)
	badPlan := "docker.io/rancher/harvester:v1.4.2\nnot a \x1b[31mreference!\n"
	out := runIn(t, &badPlan, "--runtime-endpoint", srv.Endpoint())
	r := parseTermination(t, out)
	if out.code != exitUsage || !strings.Contains(r.Error, "line 2") || strings.Contains(r.Error, "\x1b") {
		t.Errorf("exit %d, result %+v: want 2 and an escaped error naming line 2", out.code, r)
	}
	if back := report.ResultFromTermination(string(out.termination)); !reflect.DeepEqual(back, r) {
		t.Errorf("ResultFromTermination = %+v, want %+v", back, r)
	}
	out = runIn(t, &badPlan, "--runtime-endpoint", srv.Endpoint(), "--no-such-flag")
	if r := parseTermination(t, out); out.code != exitUsage || !strings.Contains(r.Error, "no-such-flag") {
		t.Errorf("unknown flag: exit %d, result %+v", out.code, r)
	}
}
