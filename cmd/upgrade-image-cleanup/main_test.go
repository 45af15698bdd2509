package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

func TestBadFlagsFailFastNamingTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--selector", "a in (b"}, "--selector"},
		{[]string{"--repo-address", "dns"}, "--repo-address"},
		{[]string{"--workers", "0"}, "--workers"},
		{[]string{}, "--remover-image is required"},
		{[]string{"--remover-image", "r:1", "--success-ratio", "1.5"}, "--success-ratio"},
		{[]string{"--remover-image", "r:1", "--runtime-socket", "run/x.sock"}, "--runtime-socket"},
		{[]string{"--node-selector", "a b c"}, "--node-selector"},
		{[]string{"--dry-run", "--namespace", "Bad NS"}, "--namespace"},
		{[]string{"--exclude", "docker.io/[rancher"}, "--exclude"},
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--resync", "0s"}, "--resync"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not name %q", stderr.String(), tt.want)
			}
		})
	}
}

func TestExcludeFlagCollectsPatterns(t *testing.T) {
	f, err := parseFlags([]string{"--dry-run", "--exclude", "a/*,b/*", "--exclude", "c:*"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.exclude, " "); got != "a/* b/* c:*" {
		t.Errorf("exclude = %q", got)
	}
}

// TestDemo runs the README's first command, with no outage so it is quick,
// and checks the story it tells.
func TestDemo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--demo", "--demo-outage", "0s"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`state WaitingForRepo`),
		regexp.MustCompile(`repo endpoint 127\.0\.0\.1:\d+ is Ready`),
		regexp.MustCompile(`state Planned: 91 images of v1\.4\.2 planned`),
		regexp.MustCompile(`requests to the repo before it was Ready: 0\n`),
		regexp.MustCompile(`requests in all: +2 `),
		regexp.MustCompile(`images kept: +7 still in the current list, 4 on the retain list, 0 excluded`),
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
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--demo", "--demo-outage", "0s", "--dry-run"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "state Planned") || strings.Contains(out, "Removing") || strings.Contains(out, "starts the remover") {
		t.Errorf("a dry run went past Planned:\n%s", out)
	}
}

func TestMissingPermissionFailsNamingIt(t *testing.T) {
	kube := kubefake.NewClientset()
	kube.PrependReactor("create", "selfsubjectaccessreviews", func(a clienttesting.Action) (bool, runtime.Object, error) {
		r := a.(clienttesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		attrs := r.Spec.ResourceAttributes
		r.Status.Allowed = !(attrs.Resource == "jobs" && attrs.Verb == "create") && !(attrs.Resource == "leases" && attrs.Verb == "update")
		return true, r, nil
	})
	f, err := parseFlags([]string{"--remover-image", "r:1", "--leader-elect"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	err = checkPermissions(context.Background(), kube, requiredPermissions(f))
	want := "missing RBAC permission: cannot create jobs.batch in namespace harvester-system; cannot update leases.coordination.k8s.io in namespace harvester-system"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v, want it to start with %q", err, want)
	}
	// A dry run without election needs neither.
	f, _ = parseFlags([]string{"--dry-run"}, &bytes.Buffer{})
	if err := checkPermissions(context.Background(), kube, requiredPermissions(f)); err != nil {
		t.Errorf("dry run: %v", err)
	}
}

func TestUnreachableAPIServerFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"http://" + addr + "\"}}]\n" +
		"contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {token: t}}]\n"
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--kubeconfig", kubeconfig, "--dry-run"}, &stdout, &stderr); code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
	if want := "API server http://" + addr + " is unreachable"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q does not say %q", stderr.String(), want)
	}
}

func TestHealthEndpoints(t *testing.T) {
	f, err := parseFlags([]string{"--dry-run", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var why atomic.Value
	why.Store("informer caches not synced")
	// Port 0 picks free ports; serve logs them, so ask it for fixed ones instead.
	for _, addr := range []*string{&f.metricsAddr, &f.healthAddr} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*addr = l.Addr().String()
		l.Close()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "probe_total", Help: "A metric to find."}))
	stop, err := serve(context.Background(), f, reg, func() string { return why.Load().(string) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("http://" + f.healthAddr + "/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200 while alive", code)
	}
	if code, body := get("http://" + f.healthAddr + "/readyz"); code != 503 || !strings.Contains(body, "not synced") {
		t.Errorf("/readyz = %d %q, want 503 saying why", code, body)
	}
	why.Store("")
	if code, _ := get("http://" + f.healthAddr + "/readyz"); code != 200 {
		t.Errorf("/readyz = %d, want 200 once ready", code)
	}
	if code, body := get("http://" + f.metricsAddr + "/metrics"); code != 200 || !strings.Contains(body, "probe_total 0") {
		t.Errorf("/metrics = %d %q", code, body)
	}
	// A busy port names its flag.
	if _, err := serve(context.Background(), f, reg, func() string { return "" }); err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Errorf("serve on a busy port = %v, want an error naming --metrics-addr", err)
	}
}
