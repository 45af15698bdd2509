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
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/standalone"
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
		{[]string{"--dry-run", "--kube-api-qps", "0"}, "--kube-api-qps"},
		{[]string{"--dry-run", "--kube-api-qps", "-5"}, "--kube-api-qps"},
		{[]string{"--dry-run", "--kube-api-qps", "NaN"}, "--kube-api-qps"},
		{[]string{"--dry-run", "--kube-api-qps", "Inf"}, "--kube-api-qps"},
		{[]string{"--dry-run", "--kube-api-qps", "1e7", "--kube-api-burst", "10000000"}, "--kube-api-qps"},
		{[]string{"--dry-run", "--kube-api-qps", "fast"}, "kube-api-qps"},
		{[]string{"--dry-run", "--kube-api-burst", "0"}, "--kube-api-burst"},
		{[]string{"--dry-run", "--kube-api-burst", "-1"}, "--kube-api-burst"},
		{[]string{"--dry-run", "--kube-api-burst", "1000001"}, "from 1 to 1000000"},
		{[]string{"--dry-run", "--kube-api-qps", "0.009", "--kube-api-burst", "1"}, "from 0.01 to"},
		{[]string{"--dry-run", "--kube-api-qps", "50", "--kube-api-burst", "49"}, "--kube-api-burst"},
		{[]string{"--dry-run", "--kube-api-qps", "20.5", "--kube-api-burst", "20"}, "--kube-api-burst"},
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
			if n := strings.Count(strings.TrimSpace(stderr.String()), "\n"); n > 0 && !strings.Contains(stderr.String(), "Usage") {
				t.Errorf("stderr %q: %d lines, want one", stderr.String(), n+1)
			}
		})
	}
}

// TestAPIBudgetFlags: --kube-api-qps and --kube-api-burst reach the rest
// config as one token bucket, which the typed clients and the dynamic
// client's way of building its REST client both take, so the flags are the
// process's whole budget rather than each client's.
func TestAPIBudgetFlags(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfgFile := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n" +
		"contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {token: t}}]\n"
	if err := os.WriteFile(kubeconfig, []byte(cfgFile), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args  []string
		qps   float32
		burst int
	}{
		{nil, standalone.DefaultKubeAPIQPS, standalone.DefaultKubeAPIBurst},
		{[]string{"--kube-api-qps", "5", "--kube-api-burst", "10"}, 5, 10},
		{[]string{"--kube-api-qps=0.5", "--kube-api-burst=1"}, 0.5, 1},
		{[]string{"--kube-api-qps=100", "--kube-api-burst=100"}, 100, 100},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f, err := parseFlags(append([]string{"--dry-run", "--kubeconfig", kubeconfig}, tt.args...), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := restConfig(f.kubeconfig, f.kubeAPIQPS, f.kubeAPIBurst)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.QPS != tt.qps || cfg.Burst != tt.burst || cfg.RateLimiter == nil || cfg.RateLimiter.QPS() != tt.qps {
				t.Fatalf("rest config QPS %v burst %d limiter %v; want %v, %d and one limiter of that rate", cfg.QPS, cfg.Burst, cfg.RateLimiter, tt.qps, tt.burst)
			}
			if cfg.UserAgent != "upgrade-image-cleanup" {
				t.Errorf("user agent %q", cfg.UserAgent)
			}
			kube, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			dyn, err := rest.UnversionedRESTClientFor(dynamic.ConfigFor(cfg))
			if err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string]flowcontrol.RateLimiter{
				"core/v1":  kube.CoreV1().RESTClient().GetRateLimiter(),
				"batch/v1": kube.BatchV1().RESTClient().GetRateLimiter(),
				"dynamic":  dyn.GetRateLimiter(),
			} {
				if got != cfg.RateLimiter {
					t.Errorf("%s client has a rate limiter of its own", name)
				}
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

// TestRemovalTolerationsFlag: --removal-tolerations takes a JSON array of
// core/v1 Tolerations, as the chart renders its values with toJson, and
// adds them to the removal Jobs after their own; a bad value stops the
// binary with one line naming the flag, in a dry run too.
func TestRemovalTolerationsFlag(t *testing.T) {
	good := []struct {
		name  string
		value string
		want  []corev1.Toleration
	}{
		{"empty", "", nil},
		{"empty array", "[]", []corev1.Toleration{}},
		{"toJson of an unset value", "null", nil},
		{"one", `[{"key":"dedicated","operator":"Equal","value":"storage","effect":"NoSchedule"}]`,
			[]corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "storage", Effect: corev1.TaintEffectNoSchedule}}},
		{"two, in their order, spaced", ` [ {"key": "example.com/gpu", "operator": "Exists"},
			{"key": "example.com/maintenance", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 600} ] `,
			[]corev1.Toleration{
				{Key: "example.com/gpu", Operator: corev1.TolerationOpExists},
				{Key: "example.com/maintenance", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](600)},
			}},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseFlags([]string{"--remover-image", "r:1", "--removal-tolerations=" + tt.value}, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if !apiequality.Semantic.DeepEqual(f.Removal.Tolerations, tt.want) {
				t.Errorf("tolerations = %+v, want %+v", f.Removal.Tolerations, tt.want)
			}
		})
	}

	bad := []struct {
		name  string
		value string
		want  string // besides the flag's name
	}{
		{"unknown field", `[{"key":"dedicated","efect":"NoSchedule"}]`, `unknown field "efect"`},
		{"an object, not an array", `{"key":"dedicated","operator":"Exists"}`, "not a JSON array"},
		{"a string", `"dedicated"`, "not a JSON array"},
		{"the chart's YAML, not JSON", `- key: dedicated`, "not a JSON array"},
		{"truncated", `[{"key":"dedicated"`, "not a JSON array"},
		{"seconds not a number", `[{"key":"k","operator":"Exists","effect":"NoExecute","tolerationSeconds":"600"}]`, "not a JSON array"},
		{"trailing data", `[]x`, "more after the JSON array"},
		{"two arrays", `[] []`, "more after the JSON array"},
		{"bad effect", `[{"key":"a","operator":"Exists"},{"key":"b","operator":"Exists","effect":"NoSchedul"}]`, `--removal-tolerations[1].effect: "NoSchedul" is not one of`},
		{"null toleration", `[null]`, "--removal-tolerations[0].key: empty"},
		{"newline in a value", "[{\"key\":\"a\",\"value\":\"x\\ny\"}]", `--removal-tolerations[0].value: "x\ny" is not a label value`},
	}
	for _, tt := range bad {
		for _, mode := range []string{"--dry-run", "--remover-image=r:1"} {
			t.Run(tt.name+" "+mode, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				if code := run([]string{mode, "--removal-tolerations", tt.value}, &stdout, &stderr); code != 2 {
					t.Errorf("exit code = %d, want 2", code)
				}
				got := stderr.String()
				if !strings.HasPrefix(got, "upgrade-image-cleanup: --removal-tolerations") || !strings.Contains(got, tt.want) {
					t.Errorf("stderr %q does not name --removal-tolerations and say %q", got, tt.want)
				}
				if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
					t.Errorf("stderr %q is not one line", got)
				}
			})
		}
	}
}

// TestRemovalTolerationsReachTheJobs: the flag's tolerations come after
// the Job's built-in ones; without the flag the Job is the one the default
// options make, to the field.
func TestRemovalTolerationsReachTheJobs(t *testing.T) {
	u := cleanup.Upgrade{Namespace: "harvester-system", Name: "hvst-upgrade-abc12"}
	plan := cleanup.PlanRef{Namespace: u.Namespace, ConfigMap: "hvst-upgrade-abc12-image-cleanup", UID: "uid-1", Digest: "sha256:" + strings.Repeat("a", 64)}
	defaults := cleanup.DefaultRemovalOptions()
	defaults.RemoverImage = "r:1"
	builtIn := cleanup.RemovalJob(u, plan, "node-0", defaults).Spec.Template.Spec.Tolerations

	f, err := parseFlags([]string{"--remover-image", "r:1"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cleanup.RemovalJob(u, plan, "node-0", f.Removal), cleanup.RemovalJob(u, plan, "node-0", defaults); !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("without --removal-tolerations the Job is\n%+v\nwant the default options'\n%+v", got, want)
	}

	f, err = parseFlags([]string{"--remover-image", "r:1", `--removal-tolerations=[{"key":"dedicated","operator":"Equal","value":"storage","effect":"NoSchedule"},{"key":"example.com/gpu","operator":"Exists"}]`}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(builtIn),
		corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "storage", Effect: corev1.TaintEffectNoSchedule},
		corev1.Toleration{Key: "example.com/gpu", Operator: corev1.TolerationOpExists})
	if got := cleanup.RemovalJob(u, plan, "node-0", f.Removal).Spec.Template.Spec.Tolerations; !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("tolerations =\n%+v\nwant the built-in ones, then the flag's:\n%+v", got, want)
	}
}
