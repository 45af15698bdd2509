package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
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
		{[]string{"--remover-image", "r:1", "--remover-command", ""}, "--remover-command is empty"},
		{[]string{"--remover-image", "r:1", "--remover-command", "harvester,,image-remover"}, "--remover-command"},
		{[]string{"--node-selector", "a b c"}, "--node-selector"},
		{[]string{"--dry-run", "--namespace", "Bad NS"}, "--namespace"},
		{[]string{"--exclude", "docker.io/[rancher"}, "--exclude"},
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--resync", "0s"}, "--resync"},
		{[]string{"--dry-run", "--catch-up", "v1.3.0,../etc"}, "--catch-up"},
		{[]string{"--dry-run", "--catch-up", "current"}, "--catch-up"},
		{[]string{"--dry-run", "--image-fs-threshold", "-1Gi"}, "--image-fs-threshold"},
		{[]string{"--dry-run", "--image-fs-threshold", "lots"}, "--image-fs-threshold"},
		{[]string{"--dry-run", "--image-fs-threshold", "9Pi"}, "--image-fs-threshold"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		// The demo is cmd/upgrade-image-cleanup-demo now.
		{[]string{"--demo"}, "flag provided but not defined: -demo"},
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

// TestRemoverCommandFlag: the command is one flag's comma-separated
// words, the standalone binary when not given; a later use replaces it.
func TestRemoverCommandFlag(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{cleanup.RemoverPath}},
		{[]string{"--remover-command", "harvester,image-remover"}, []string{"harvester", "image-remover"}},
		{[]string{"--remover-command=/usr/bin/harvester, image-remover"}, []string{"/usr/bin/harvester", "image-remover"}},
		{[]string{"--remover-command", "harvester", "--remover-command", "rancher,image-remover"}, []string{"rancher", "image-remover"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f, err := parseFlags(append([]string{"--remover-image", "rancher/harvester:v1.5.0"}, tt.args...), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.Removal.RemoverCommand, tt.want) {
				t.Errorf("remover command = %q, want %q", f.Removal.RemoverCommand, tt.want)
			}
		})
	}
}

func TestExcludeFlagCollectsPatterns(t *testing.T) {
	f, err := parseFlags([]string{"--dry-run", "--exclude", "a/*,b/*", "--exclude", "c:*"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Exclude, " "); got != "a/* b/* c:*" {
		t.Errorf("exclude = %q", got)
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

// TestOperatorFlags: --skip, --catch-up and --image-fs-threshold reach the
// controller's options and the Jobs' removal options.
func TestOperatorFlags(t *testing.T) {
	f, err := parseFlags([]string{"--remover-image", "r:1", "--skip", "--catch-up", "v1.3.0,v1.2.1", "--catch-up", "v1.1.0", "--image-fs-threshold", "50Gi"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	o, err := f.Options()
	if err != nil {
		t.Fatal(err)
	}
	if !o.Skip || !slices.Equal(o.CatchUp, []string{"v1.3.0", "v1.2.1", "v1.1.0"}) {
		t.Errorf("options skip %v catch-up %q", o.Skip, o.CatchUp)
	}
	if f.Removal.ImageFsThreshold != 50<<30 {
		t.Errorf("threshold %d, want 50Gi", f.Removal.ImageFsThreshold)
	}
	f, err = parseFlags([]string{"--remover-image", "r:1"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o, err = f.Options(); err != nil {
		t.Fatal(err)
	}
	if o.Skip || len(o.CatchUp) > 0 || f.Removal.ImageFsThreshold != 0 {
		t.Errorf("defaults: skip %v catch-up %q threshold %d; want off", o.Skip, o.CatchUp, f.Removal.ImageFsThreshold)
	}
}
