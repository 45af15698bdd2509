package remover_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// harvester is a host binary's entry point cut down to its dispatch: the
// program's name, the subcommand's, then the subcommand's own flags, as
// urfave/cli and cobra hand them over. Its remover branch is the one line
// Main's doc gives.
func harvester(ctx context.Context, argv []string, stdout, stderr io.Writer) int {
	if len(argv) > 1 && argv[1] == "image-remover" {
		return remover.Main(ctx, argv[2:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "harvester: unknown command %q\n", argv[1:])
	return 64
}

// TestMountedAsASubcommand runs the remover as a host's removal Jobs do:
// "harvester image-remover" and the flags the controller's Job passes, then
// a row's overrides (the last use of a flag wins). The flags, exit codes,
// outputs and termination log are cmd/image-remover's.
func TestMountedAsASubcommand(t *testing.T) {
	plan := planText
	sum := imagelist.Digest([]byte(plan))
	// The new version ships harvester:v1.4.2 again, from another registry.
	keep := writeFile(t, "keep.txt", "registry.rancher.com/rancher/harvester:v1.4.2\ndocker.io/rancher/harvester:v1.5.0\n")
	other := "sha256:" + strings.Repeat("0", 64)
	dir, err := os.MkdirTemp("", "cri") // short: a socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	missingSocket := filepath.Join(dir, "containerd.sock")

	tests := []struct {
		name      string
		overrides []string
		wantCode  int
		wantCalls []string // sorted
		want      report.Result
		wantError []string // in the result's Error and on stderr
	}{
		{
			name:     "removes what is safe",
			wantCode: exitOK,
			// The keep list keeps harvester:v1.4.2; the mirror and the
			// dangling image go.
			wantCalls: []string{mirrored.Id, dangling.Id},
			want: report.Result{
				Removed: 1,
				Skipped: map[report.Reason]int{
					report.ReasonInCurrentList: 1, report.ReasonInUse: 1, report.ReasonPinned: 1, report.ReasonNotPresent: 1,
				},
				BytesReclaimed:  3000 + 5000,
				DanglingRemoved: 1,
			},
		},
		{
			name:      "dry run",
			overrides: []string{"--dry-run"},
			wantCode:  exitOK,
			want: report.Result{Skipped: map[report.Reason]int{
				report.ReasonInCurrentList: 1, report.ReasonInUse: 1, report.ReasonPinned: 1, report.ReasonNotPresent: 1,
			}},
		},
		{
			name:      "another plan's digest",
			overrides: []string{"--plan-digest=" + other},
			wantCode:  exitUsage,
			wantError: []string{other, sum},
		},
		{
			name:      "runtime unreachable",
			overrides: []string{"--runtime-endpoint=unix://" + missingSocket},
			wantCode:  exitRuntime,
			wantError: []string{missingSocket},
		},
		{
			name:      "unknown flag",
			overrides: []string{"--force"},
			wantCode:  exitUsage,
			wantError: []string{"force"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startNode(t)
			flags, term := inputs(t, &plan)
			argv := append([]string{"harvester", "image-remover"}, flags...)
			argv = append(argv,
				"--keep="+keep,
				"--plan-digest="+sum,
				"--runtime-endpoint="+srv.Endpoint(),
				"--match-other-registries=true",
				"--prune-dangling=true",
			)
			argv = append(argv, tt.overrides...)
			out := runMain(t, term, func(stdout, stderr io.Writer) int { return harvester(t.Context(), argv, stdout, stderr) })

			if out.code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", out.code, tt.wantCode, out.stderr)
			}
			assertNeverRemoved(t, srv)
			calls := srv.RemoveCalls()
			slices.Sort(calls)
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("RemoveImage calls = %v, want %v", calls, tt.wantCalls)
			}
			got := parseTermination(t, out)
			for _, w := range tt.wantError {
				if !strings.Contains(got.Error, w) || !strings.Contains(out.stderr, w) {
					t.Errorf("termination error %q and stderr %q should say %q", got.Error, out.stderr, w)
				}
			}
			if tt.wantError != nil && !strings.HasPrefix(got.Error, "image-remover: ") {
				t.Errorf("termination error %q does not say it is the remover's", got.Error)
			}
			if tt.wantError == nil && got.Error != "" {
				t.Errorf("termination error %q, want none", got.Error)
			}
			got.Error = ""
			want := tt.want
			if tt.wantCode == exitOK {
				want.PlanDigest = sum // the plan it acted on, for the controller
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("termination result = %+v, want %+v", got, want)
			}

			if tt.wantCode == exitOK {
				var rep remover.Report
				if err := json.Unmarshal([]byte(out.stdout), &rep); err != nil || !reflect.DeepEqual(rep.Result, want) || rep.PlanDigest != sum {
					t.Errorf("stdout %q (%v): want the report of the same result, for plan %s", out.stdout, err, sum)
				}
			} else if out.stdout != "" {
				t.Errorf("stdout = %q, want no report", out.stdout)
			}
			if tt.wantCode != exitUsage {
				assertJSONLines(t, out.stderr)
			}
		})
	}

	t.Run("help", func(t *testing.T) {
		flags, term := inputs(t, nil)
		argv := append(append([]string{"harvester", "image-remover"}, flags...), "-h")
		out := runMain(t, term, func(stdout, stderr io.Writer) int { return harvester(t.Context(), argv, stdout, stderr) })
		if out.code != exitOK || !strings.Contains(out.stderr, "-plan-digest") || out.termination != nil {
			t.Errorf("-h: exit %d, termination log %q, stderr %q; want 0, none, and the flags", out.code, out.termination, out.stderr)
		}
	})
}

// TestMainEndsWithItsContext: Main handles no signal, its caller cancels
// ctx; a run whose context has ended removes nothing and still reports why.
func TestMainEndsWithItsContext(t *testing.T) {
	srv := startNode(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	plan := planText
	flags, term := inputs(t, &plan)
	out := runMain(t, term, func(stdout, stderr io.Writer) int {
		return remover.Main(ctx, append(flags, "--runtime-endpoint", srv.Endpoint()), stdout, stderr)
	})
	if out.code != exitRuntime {
		t.Errorf("exit code %d, want 1; stderr:\n%s", out.code, out.stderr)
	}
	if calls := srv.RemoveCalls(); len(calls) != 0 {
		t.Errorf("RemoveImage called after the context ended: %v", calls)
	}
	if r := parseTermination(t, out); !strings.Contains(r.Error, "context canceled") {
		t.Errorf("termination error %q, want it to say the context ended", r.Error)
	}
}

// TestGRPCLoggerWritesErrorsAsJSONLines: what a host installs as gRPC's
// logger keeps the remover's stderr one JSON object a line, and gRPC's
// chatter below errors out of it.
func TestGRPCLoggerWritesErrorsAsJSONLines(t *testing.T) {
	var buf bytes.Buffer
	l := remover.NewGRPCLogger(&buf)
	l.Info("connecting")
	l.Warning("retrying")
	l.Errorf("dial %s: refused", "unix:///run/cri.sock")
	lines := assertJSONLines(t, buf.String())
	if len(lines) != 1 || lines[0]["level"] != "error" || lines[0]["msg"] != "dial unix:///run/cri.sock: refused" {
		t.Errorf("gRPC log = %q, want one error line", buf.String())
	}
}
