package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// runDemoOK runs the demo with args and fails the test unless it exits 0.
// Its log file goes to a directory of the test's.
func runDemoOK(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	t.Setenv("TMPDIR", t.TempDir()) // where os.CreateTemp puts the log file
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

// TestDemo runs the README's first command, with no outage so it is quick,
// and checks the story it tells.
func TestDemo(t *testing.T) {
	out, _ := runDemoOK(t, "--outage", "0s")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`state WaitingForRepo`),
		regexp.MustCompile(`repo endpoint 127\.0\.0\.1:\d+ is Ready`),
		regexp.MustCompile(`state Planned: 91 images of v1\.4\.2 planned`),
		regexp.MustCompile(`requests to the repo before it was Ready: 0\n`),
		regexp.MustCompile(`requests in all: +2 `),
		// The planned images are listed under their own line, before the
		// kept ones are counted.
		regexp.MustCompile(`images planned for removal: +91, in ConfigMap [^\n]+\n(    \S+\n){5}    \.\.\. and 86 more\n  images kept: +7 still in the current list, 4 on the retain list, 0 excluded\n`),
		// Removal on the two simulated nodes: each keeps what is unsafe to remove.
		regexp.MustCompile(`state Removing: removing on 2 nodes`),
		regexp.MustCompile(`harvester-node-0 +succeeded: removed 90, failed 0, kept in-use 1,`),
		regexp.MustCompile(`harvester-node-1 +succeeded: removed 88, failed 0, kept not-present 1, pinned 1, still-needed 1,`),
		regexp.MustCompile(`state Succeeded: 2 of 2 nodes succeeded`),
		regexp.MustCompile(`image-cleanup-plan-completed: "true"`),
	} {
		if !want.MatchString(out) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestDemoDryRun stops at Planned and creates no Job.
func TestDemoDryRun(t *testing.T) {
	out, _ := runDemoOK(t, "--outage", "0s", "--dry-run")
	if !strings.Contains(out, "state Planned") || strings.Contains(out, "Removing") || strings.Contains(out, "starts the remover") {
		t.Errorf("a dry run went past Planned:\n%s", out)
	}
}

// TestDemoLogsDoNotInterleave: stdout is the log file's name, then the
// timeline and the summary, and nothing else; the controller's logs are in
// the file, and stderr is empty. With -v the logs go to stderr instead.
func TestDemoLogsDoNotInterleave(t *testing.T) {
	// Every line after the log file's name: a timeline entry, the summary,
	// or a blank line between them.
	timelineLine := regexp.MustCompile(`^(|[ +]+\d+\.\d{3}s  .+|Summary|  \S.*|    \S.*)$`)
	out, errOut := runDemoOK(t, "--outage", "0s")
	first, rest, _ := strings.Cut(out, "\n")
	name, ok := strings.CutPrefix(first, "controller logs: ")
	name, _, _ = strings.Cut(name, " ")
	if !ok || name == "" {
		t.Fatalf("the first line does not name the log file: %q", first)
	}
	for _, line := range strings.Split(strings.TrimSuffix(rest, "\n"), "\n") {
		if !timelineLine.MatchString(line) {
			t.Errorf("stdout has a line that is not the timeline's: %q", line)
		}
	}
	if errOut != "" {
		t.Errorf("stderr is not empty:\n%s", errOut)
	}
	logs, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("read the log file the demo named: %v", err)
	}
	if !strings.Contains(string(logs), "Controller starting") {
		t.Errorf("the log file lacks the controller's logs:\n%s", logs)
	}

	out, errOut = runDemoOK(t, "--outage", "0s", "--dry-run", "-v", "0")
	if strings.Contains(out, "controller logs:") || strings.Contains(out, "Controller starting") {
		t.Errorf("with -v, stdout names a log file or holds logs:\n%s", out)
	}
	if !strings.Contains(errOut, "Controller starting") {
		t.Errorf("with -v, the logs are not on stderr:\n%s", errOut)
	}
}

func TestBadFlagsFailNamingTheFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--outage", "-1s"}, "--outage"},
		{[]string{"--demo"}, "demo"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not name %q", stderr.String(), tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout is not empty: %q", stdout.String())
			}
		})
	}
}
