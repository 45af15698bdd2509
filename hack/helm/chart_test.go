package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// root is the repository's root, from this folder.
const root = "../.."

// The monitoring files of the chart, which the PrometheusRule and the
// dashboard ConfigMap hold.
const (
	rulesFile     = "monitoring/rules.yaml"
	dashboardFile = "monitoring/dashboard.json"
)

// chartForTest loads the chart from disk; a test may change the copy in
// memory (withoutFile), never the chart itself.
func chartForTest(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loadChart(root)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func fileOf(ch *chart.Chart, name string) []byte {
	for _, f := range ch.Files {
		if f.Name == name {
			return f.Data
		}
	}
	return nil
}

func withoutFile(ch *chart.Chart, name string) {
	ch.Files = slices.DeleteFunc(ch.Files, func(f *chart.File) bool { return f.Name == name })
}

func readValues(t *testing.T, file string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValuesFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// install renders the chart as `helm install --dry-run` does without a
// cluster (`helm template`'s path): values checked against the schema,
// capabilities of a default cluster plus apiVersions.
func install(ch *chart.Chart, vals map[string]any, apiVersions ...string) (*release.Release, error) {
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.ClientOnly = true
	inst.DryRun = true
	inst.Replace = true
	inst.ReleaseName = releaseName
	inst.Namespace = releaseNamespace
	inst.APIVersions = apiVersions
	return inst.Run(ch, vals)
}

func mustInstall(t *testing.T, ch *chart.Chart, vals map[string]any) *release.Release {
	t.Helper()
	rel, err := install(ch, vals)
	if err != nil {
		t.Fatalf("install --dry-run: %v", err)
	}
	return rel
}

// object is one decoded document.
type object struct {
	where string
	kind  string
	obj   runtime.Object // typed where client-go's scheme knows the kind
	u     *unstructured.Unstructured
}

// strict rejects unknown and duplicate fields, so a misspelt field in a
// template fails here instead of being dropped by the API server.
var strict = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// parse decodes every document of a manifest stream: strictly into
// client-go's types where the scheme knows the kind (the Kubernetes kinds),
// else (the CRD, Prometheus Operator's kinds) as unstructured objects,
// which must still have an apiVersion, a kind and a name.
func parse(t *testing.T, where, stream string) []object {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	var out []object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		at := fmt.Sprintf("%s#%d", where, i)
		j, err := utilyaml.ToJSON(doc)
		if err != nil {
			t.Fatalf("%s: not YAML: %v", at, err)
		}
		if string(j) == "null" {
			continue // only comments
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			t.Fatalf("%s: %v\n%s", at, err, doc)
		}
		if u.GetName() == "" {
			t.Fatalf("%s: %s has no name", at, u.GetKind())
		}
		o := object{where: at, kind: u.GetKind(), u: u}
		if scheme.Scheme.Recognizes(u.GroupVersionKind()) {
			if o.obj, _, err = strict.Decode(doc, nil, nil); err != nil {
				t.Fatalf("%s: %v", at, err)
			}
		}
		out = append(out, o)
	}
}

// kinds counts the objects of each kind.
func kinds(objs []object) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.kind]++
	}
	return m
}

// find returns the one object of kind and name.
func find[T any](t *testing.T, objs []object, kind, namespace, name string) T {
	t.Helper()
	for _, o := range objs {
		if o.kind == kind && o.u.GetName() == name && o.u.GetNamespace() == namespace {
			if typed, ok := o.obj.(T); ok {
				return typed
			}
			if u, ok := any(o.u).(T); ok {
				return u
			}
			t.Fatalf("%s %s/%s is a %T", kind, namespace, name, o.obj)
		}
	}
	t.Fatalf("no %s %s/%s among %v", kind, namespace, name, kinds(objs))
	var zero T
	return zero
}

// args turns --name=value and --name into a map; a flag given twice fails.
func args(t *testing.T, list []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range list {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") {
			t.Fatalf("argument %q is not of the form --name[=value]", a)
		}
		if !hasValue {
			value = "true"
		}
		if _, dup := out[name]; dup {
			t.Errorf("flag --%s given twice", name)
		}
		out[name] = value
	}
	return out
}

func controller(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	if cs := d.Spec.Template.Spec.Containers; len(cs) == 1 && cs[0].Name == "controller" {
		return cs[0]
	}
	t.Fatalf("Deployment %s: want one container named controller", d.Name)
	return corev1.Container{}
}

// deployObjects decodes the manifests of deploy/ that `kubectl apply -f
// deploy/` applies (the CRD is in deploy/crd/, not applied).
func deployObjects(t *testing.T) []object {
	t.Helper()
	var objs []object
	for _, f := range []string{"deploy/deployment.yaml", "deploy/rbac.yaml"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, parse(t, f, string(b))...)
	}
	return objs
}

// TestDeployIsGenerated is hack/chart verify as a test: deploy/ is what
// generate writes from the chart's default values.
func TestDeployIsGenerated(t *testing.T) {
	files, err := generate(chartForTest(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(generatedFiles) {
		t.Errorf("generate wrote %d files, want %d", len(files), len(generatedFiles))
	}
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v (run hack/chart generate)", p, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not the chart rendered: run hack/chart generate (hack/chart verify shows the diff); first difference at line %d", p, firstDifference(got, want))
		}
		if !bytes.HasPrefix(got, []byte(header)) {
			t.Errorf("%s does not start with %q", p, header)
		}
	}
}

func firstDifference(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}

// TestInstallWithDefaultsIsDeploy renders the chart as Helm installs it
// (action.Install, client only) and finds exactly the objects of deploy/:
// the same kinds, names and content, the CRD not among them.
func TestInstallWithDefaultsIsDeploy(t *testing.T) {
	rel := mustInstall(t, chartForTest(t), nil)
	got := parse(t, "install", rel.Manifest)
	want := deployObjects(t)
	key := func(o object) string { return o.kind + " " + o.u.GetNamespace() + "/" + o.u.GetName() }
	byKey := map[string]object{}
	for _, o := range got {
		byKey[key(o)] = o
	}
	if len(got) != len(want) {
		t.Errorf("the install has %d objects %v, deploy/ %d %v", len(got), kinds(got), len(want), kinds(want))
	}
	for _, w := range want {
		g, ok := byKey[key(w)]
		if !ok {
			t.Errorf("%s of deploy/ is not installed", key(w))
			continue
		}
		if !reflect.DeepEqual(g.u.Object, w.u.Object) {
			gj, _ := json.MarshalIndent(g.u.Object, "", "  ")
			wj, _ := json.MarshalIndent(w.u.Object, "", "  ")
			t.Errorf("%s differs from deploy/:\ninstalled %s\ndeploy/ %s", key(w), gj, wj)
		}
	}
	if !strings.Contains(rel.Info.Notes, "WARNING: image.tag is latest") {
		t.Errorf("NOTES.txt does not warn about the placeholder tag:\n%s", rel.Info.Notes)
	}
}

// defaultArgs are the arguments of deploy/deployment.yaml as it was
// written by hand before the chart: the chart must not change them.
var defaultArgs = []string{
	"--namespace=harvester-system",
	"--remover-image=ghcr.io/upgrade-image-cleanup/upgrade-image-cleanup:latest",
	"--metrics-addr=:8080",
	"--health-addr=:8081",
	"--leader-elect",
	"--log-format=json",
}

func TestDefaultArgsUnchanged(t *testing.T) {
	rel := mustInstall(t, chartForTest(t), nil)
	rendered := controller(t, find[*appsv1.Deployment](t, parse(t, "install", rel.Manifest), "Deployment", releaseNamespace, releaseName)).Args
	deployed := controller(t, find[*appsv1.Deployment](t, deployObjects(t), "Deployment", releaseNamespace, releaseName)).Args
	if !slices.Equal(rendered, defaultArgs) {
		t.Errorf("default args %q, want %q", rendered, defaultArgs)
	}
	if !slices.Equal(rendered, deployed) {
		t.Errorf("default args %q, deploy/deployment.yaml's %q", rendered, deployed)
	}
}

// TestStrategyKeepsRollingUpdateWithTheLease: with leader election a
// rollout may start the new replica first (the Lease keeps one working);
// without it the Deployment is Recreate (TestAdversaryNoLeaderElection...).
func TestStrategyKeepsRollingUpdateWithTheLease(t *testing.T) {
	rel := mustInstall(t, chartForTest(t), nil)
	d := find[*appsv1.Deployment](t, parse(t, "install", rel.Manifest), "Deployment", releaseNamespace, releaseName)
	if d.Spec.Strategy.Type != "" && d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("with leader election: strategy %+v, want the default RollingUpdate", d.Spec.Strategy)
	}
}

// everything renders testdata/everything.yaml: every value away from its
// default and every feature on.
func everything(t *testing.T) (map[string]any, []object) {
	t.Helper()
	vals := readValues(t, "testdata/everything.yaml")
	rel := mustInstall(t, chartForTest(t), vals)
	return vals, parse(t, "everything", rel.Manifest)
}

// asType turns a value of the values file into a Kubernetes type through
// JSON, as the API server would read it.
func asType[T any](t *testing.T, v any) T {
	t.Helper()
	var out T
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s as %T: %v", b, out, err)
	}
	return out
}

func valueAt(vals map[string]any, p string) any {
	v, err := chartutil.Values(vals).PathValue(p)
	if err != nil {
		// PathValue finds leaves only; walk to a table.
		var cur any = vals
		for _, k := range strings.Split(p, ".") {
			cur = cur.(map[string]any)[k]
		}
		return cur
	}
	return v
}

func TestEverythingKinds(t *testing.T) {
	_, objs := everything(t)
	want := map[string]int{
		"ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
		"Role": 2, "RoleBinding": 2, // the Lease's namespace is not --namespace
		"Deployment": 1, "Service": 1, "CustomResourceDefinition": 1,
		"ServiceMonitor": 1, "PrometheusRule": 1,
		// The dashboard and the removal Jobs' policy's parameters; that
		// policy and the one guarding its parameters.
		"ConfigMap": 2, "ValidatingAdmissionPolicy": 2, "ValidatingAdmissionPolicyBinding": 2,
	}
	if got := kinds(objs); !reflect.DeepEqual(got, want) {
		t.Errorf("kinds %v, want %v", got, want)
	}
	for _, o := range objs {
		wantAPI := map[string]string{
			"ServiceMonitor": "monitoring.coreos.com/v1", "PrometheusRule": "monitoring.coreos.com/v1",
			"CustomResourceDefinition": "apiextensions.k8s.io/v1",
		}[o.kind]
		if wantAPI != "" && o.u.GetAPIVersion() != wantAPI {
			t.Errorf("%s: %s is %s, want %s", o.where, o.kind, o.u.GetAPIVersion(), wantAPI)
		}
		if wantAPI == "" && o.obj == nil {
			t.Errorf("%s: %s %s is not a kind of client-go's scheme", o.where, o.u.GetAPIVersion(), o.kind)
		}
	}
}

// TestEverythingArgs checks that each option value reaches its flag, and
// the removal Jobs' node selector and tolerations theirs.
func TestEverythingArgs(t *testing.T) {
	vals, objs := everything(t)
	d := find[*appsv1.Deployment](t, objs, "Deployment", releaseNamespace, "cleanup")
	a := args(t, controller(t, d).Args)
	want := map[string]string{
		"namespace":              "upgrades",
		"remover-image":          "registry.example.com/harvester/harvester:v1.6.0",
		"remover-command":        "harvester,image-remover",
		"metrics-addr":           ":9090",
		"health-addr":            ":9092",
		"leader-elect":           "true",
		"leader-elect-namespace": "cleanup-leases",
		"log-format":             "console",
		"node-selector":          "harvesterhci.io/managed=true,pool notin (gpu)",
		"dry-run":                "true",
		"skip":                   "true",
		"catch-up":               "v1.4.1,v1.4.2",
		"image-fs-threshold":     "50Gi",
		"exclude":                "docker.io/rancher/mirrored-*,*/longhornio/*:v1.*",
		"success-ratio":          "0.75",
		"runtime-socket":         "/run/containerd/containerd.sock",
		"repo-address":           "service",
		"match-other-registries": "false",
		"prune-dangling":         "true",
		"workers":                "4",
		"resync":                 "5m",
		"v":                      "2",
		"shutdown-timeout":       "45s",
		"kube-api-qps":           "250.5",
		"kube-api-burst":         "400",
	}
	tolerations, ok := a["removal-tolerations"]
	if !ok {
		t.Errorf("--removal-tolerations is missing")
	}
	delete(a, "removal-tolerations")
	if !reflect.DeepEqual(a, want) {
		for k := range want {
			if a[k] != want[k] {
				t.Errorf("--%s=%q, want %q", k, a[k], want[k])
			}
		}
		for k, v := range a {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected --%s=%q", k, v)
			}
		}
	}
	if _, err := labels.Parse(a["node-selector"]); err != nil {
		t.Errorf("--node-selector: %v", err)
	}
	var got []corev1.Toleration
	if err := json.Unmarshal([]byte(tolerations), &got); err != nil {
		t.Fatalf("--removal-tolerations=%s: not a JSON array of Tolerations: %v", tolerations, err)
	}
	if wantT := asType[[]corev1.Toleration](t, valueAt(vals, "removal.tolerations")); !reflect.DeepEqual(got, wantT) {
		t.Errorf("--removal-tolerations %+v, want %+v", got, wantT)
	}

	// An empty list writes no flag at all.
	vals["removal"].(map[string]any)["tolerations"] = []any{}
	rel := mustInstall(t, chartForTest(t), vals)
	d = find[*appsv1.Deployment](t, parse(t, "no tolerations", rel.Manifest), "Deployment", releaseNamespace, "cleanup")
	if _, ok := args(t, controller(t, d).Args)["removal-tolerations"]; ok {
		t.Errorf("--removal-tolerations written for an empty list")
	}
}

// TestKubeAPIBudgetArgs: kubeApiQps and kubeApiBurst write their flags
// only when set, as the values give them, whatever the form (a float, an
// integer as --set gives it), and nothing else changes; unset, or null,
// writes nothing, so the binary's own budget applies.
func TestKubeAPIBudgetArgs(t *testing.T) {
	for _, c := range []struct {
		name       string
		vals       map[string]any
		qps, burst string // "": no flag
	}{
		{name: "defaults"},
		{name: "null", vals: map[string]any{"kubeApiQps": nil, "kubeApiBurst": nil}},
		{name: "both", vals: map[string]any{"kubeApiQps": 250.5, "kubeApiBurst": 400.0}, qps: "250.5", burst: "400"},
		{name: "the maximum", vals: map[string]any{"kubeApiQps": 1e6, "kubeApiBurst": 1e6}, qps: "1e+06", burst: "1000000"},
		{name: "integers from --set", vals: map[string]any{"kubeApiQps": int64(150), "kubeApiBurst": int64(150)}, qps: "150", burst: "150"},
		{name: "qps alone", vals: map[string]any{"kubeApiQps": 0.5}, qps: "0.5"},
		{name: "burst alone", vals: map[string]any{"kubeApiBurst": int64(500)}, burst: "500"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rel := mustInstall(t, chartForTest(t), c.vals)
			d := find[*appsv1.Deployment](t, parse(t, c.name, rel.Manifest), "Deployment", releaseNamespace, releaseName)
			a := args(t, controller(t, d).Args)
			for _, f := range []struct{ flag, want string }{{"kube-api-qps", c.qps}, {"kube-api-burst", c.burst}} {
				got, ok := a[f.flag]
				switch {
				case f.want == "" && ok:
					t.Errorf("--%s=%s written, want no flag (the binary's default)", f.flag, got)
				case f.want != "" && got != f.want:
					t.Errorf("--%s=%q, want %q", f.flag, got, f.want)
				}
				delete(a, f.flag)
			}
			if want := args(t, defaultArgs); !reflect.DeepEqual(a, want) {
				t.Errorf("other args %v, want the defaults' %v", a, want)
			}
		})
	}
}

// TestArgsSurviveYAML: a value with YAML's special characters (": ", " #",
// quotes, brackets) reaches its flag unchanged. (A catch-up version cannot
// hold them: the schema refuses what the binary does.)
func TestArgsSurviveYAML(t *testing.T) {
	glob := `registry.example.com/a: b #c/"d"/[e]*'f'`
	vals := map[string]any{"exclude": []any{glob}}
	rel := mustInstall(t, chartForTest(t), vals)
	d := find[*appsv1.Deployment](t, parse(t, "install", rel.Manifest), "Deployment", releaseNamespace, releaseName)
	a := args(t, controller(t, d).Args)
	if a["exclude"] != glob {
		t.Errorf("--exclude=%q, want %q", a["exclude"], glob)
	}
}

// TestEverythingPod checks the controller pod's values: image by digest,
// scheduling, security, resources, ports and probes.
func TestEverythingPod(t *testing.T) {
	vals, objs := everything(t)
	d := find[*appsv1.Deployment](t, objs, "Deployment", releaseNamespace, "cleanup")
	pod := d.Spec.Template.Spec
	c := controller(t, d)
	if want := "registry.example.com/harvester/upgrade-image-cleanup@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; c.Image != want {
		t.Errorf("image %s, want %s (the digest wins over the tag)", c.Image, want)
	}
	if c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("imagePullPolicy %s", c.ImagePullPolicy)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", d.Spec.Replicas)
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds != 60 {
		t.Errorf("terminationGracePeriodSeconds %v, want 60", pod.TerminationGracePeriodSeconds)
	}
	if pod.ServiceAccountName != "cleanup" {
		t.Errorf("serviceAccountName %s", pod.ServiceAccountName)
	}
	for _, c := range []struct {
		value string
		got   any
		as    func(any) any
	}{
		{"imagePullSecrets", pod.ImagePullSecrets, func(v any) any { return asType[[]corev1.LocalObjectReference](t, v) }},
		{"nodeSelector", pod.NodeSelector, func(v any) any { return asType[map[string]string](t, v) }},
		{"tolerations", pod.Tolerations, func(v any) any { return asType[[]corev1.Toleration](t, v) }},
		{"affinity", pod.Affinity, func(v any) any { return new(asType[corev1.Affinity](t, v)) }},
		{"podSecurityContext", pod.SecurityContext, func(v any) any { return new(asType[corev1.PodSecurityContext](t, v)) }},
		{"securityContext", c.SecurityContext, func(v any) any { return new(asType[corev1.SecurityContext](t, v)) }},
	} {
		if want := c.as(valueAt(vals, c.value)); !reflect.DeepEqual(c.got, want) {
			t.Errorf("%s: %+v, want %+v", c.value, c.got, want)
		}
	}
	wantRes := asType[corev1.ResourceRequirements](t, valueAt(vals, "resources"))
	if !equalResources(c.Resources, wantRes) {
		t.Errorf("resources %+v, want %+v", c.Resources, wantRes)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if !reflect.DeepEqual(ports, map[string]int32{"metrics": 9090, "health": 9092}) {
		t.Errorf("container ports %v", ports)
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.StrVal != "health" {
			t.Errorf("probe %+v: want HTTP GET on port health", p)
		}
	}
}

func equalResources(a, b corev1.ResourceRequirements) bool {
	eq := func(x, y corev1.ResourceList) bool {
		if len(x) != len(y) {
			return false
		}
		for k, q := range x {
			if r, ok := y[k]; !ok || q.Cmp(r) != 0 {
				return false
			}
		}
		return true
	}
	return eq(a.Requests, b.Requests) && eq(a.Limits, b.Limits)
}

// TestEverythingRBAC: with the Lease in a namespace of its own, the Role
// in --namespace grants no Lease, a second Role grants it there, and every
// binding names the ServiceAccount in the release's namespace.
func TestEverythingRBAC(t *testing.T) {
	_, objs := everything(t)
	sa := find[*corev1.ServiceAccount](t, objs, "ServiceAccount", releaseNamespace, "cleanup")
	role := find[*rbacv1.Role](t, objs, "Role", "upgrades", "cleanup")
	for _, r := range role.Rules {
		if slices.Contains(r.Resources, "leases") {
			t.Errorf("Role upgrades/cleanup grants leases; the Lease lives in cleanup-leases")
		}
	}
	lease := find[*rbacv1.Role](t, objs, "Role", "cleanup-leases", "cleanup-leader-election")
	if len(lease.Rules) != 1 || !slices.Equal(lease.Rules[0].Resources, []string{"leases"}) || !slices.Equal(lease.Rules[0].Verbs, []string{"get", "create", "update"}) {
		t.Errorf("Lease Role rules %+v", lease.Rules)
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: sa.Namespace}}
	for _, b := range []struct{ ns, name, role string }{{"upgrades", "cleanup", "cleanup"}, {"cleanup-leases", "cleanup-leader-election", "cleanup-leader-election"}} {
		rb := find[*rbacv1.RoleBinding](t, objs, "RoleBinding", b.ns, b.name)
		if rb.RoleRef.Name != b.role || !slices.Equal(rb.Subjects, subject) {
			t.Errorf("RoleBinding %s/%s: roleRef %+v subjects %+v", b.ns, b.name, rb.RoleRef, rb.Subjects)
		}
	}
	crb := find[*rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", "", "cleanup")
	if !slices.Equal(crb.Subjects, subject) {
		t.Errorf("ClusterRoleBinding subjects %+v", crb.Subjects)
	}
}

// TestEverythingMonitoring: the ServiceMonitor selects the metrics Service
// by its port name; the PrometheusRule's spec is monitoring/rules.yaml; the
// dashboard ConfigMap holds monitoring/dashboard.json.
func TestEverythingMonitoring(t *testing.T) {
	_, objs := everything(t)
	ch := chartForTest(t)
	svc := find[*corev1.Service](t, objs, "Service", releaseNamespace, "cleanup-metrics")
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].Port != 9091 || svc.Spec.Ports[0].TargetPort.StrVal != "metrics" {
		t.Errorf("metrics Service ports %+v", svc.Spec.Ports)
	}

	sm := find[*unstructured.Unstructured](t, objs, "ServiceMonitor", releaseNamespace, "cleanup")
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not select the Service's labels %v", sel, svc.Labels)
	}
	nss, _, _ := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames")
	if !slices.Equal(nss, []string{svc.Namespace}) {
		t.Errorf("ServiceMonitor namespaces %v, want [%s]", nss, svc.Namespace)
	}
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(endpoints) != 1 || endpoints[0].(map[string]any)["port"] != "metrics" || endpoints[0].(map[string]any)["interval"] != "15s" {
		t.Errorf("ServiceMonitor endpoints %v, want port metrics every 15s", endpoints)
	}
	if sm.GetLabels()["release"] != "rancher-monitoring" {
		t.Errorf("ServiceMonitor labels %v lack monitoring.serviceMonitor.labels", sm.GetLabels())
	}

	pr := find[*unstructured.Unstructured](t, objs, "PrometheusRule", releaseNamespace, "cleanup")
	var wantSpec map[string]any
	if err := yaml.Unmarshal(fileOf(ch, rulesFile), &wantSpec); err != nil {
		t.Fatal(err)
	}
	if gotSpec, _, _ := unstructured.NestedMap(pr.Object, "spec"); !reflect.DeepEqual(roundTrip(t, gotSpec), roundTrip(t, wantSpec)) {
		t.Errorf("PrometheusRule spec %v, want %s's %v", gotSpec, rulesFile, wantSpec)
	}
	if pr.GetLabels()["team"] != "platform" {
		t.Errorf("PrometheusRule labels %v lack monitoring.rules.labels", pr.GetLabels())
	}

	cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", "grafana-dashboards", "cleanup-dashboard")
	var got, want any
	if err := json.Unmarshal([]byte(cm.Data["upgrade-image-cleanup.json"]), &got); err != nil {
		t.Fatalf("ConfigMap data upgrade-image-cleanup.json: %v (keys %v)", err, slices.Collect(func(yield func(string) bool) {
			for k := range cm.Data {
				yield(k)
			}
		}))
	}
	if err := json.Unmarshal(fileOf(ch, dashboardFile), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dashboard ConfigMap holds other JSON than %s", dashboardFile)
	}
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v", cm.Labels)
	}

	crd := find[*unstructured.Unstructured](t, objs, "CustomResourceDefinition", "", "upgrades.harvesterhci.io")
	if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
		t.Errorf("the CRD is not kept on uninstall: annotations %v", crd.GetAnnotations())
	}
}

func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRefusals: values that would install a controller that cannot work,
// or harm Harvester, fail the render with a message naming the value.
func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		name        string
		vals        string
		apiVersions []string
		noFiles     bool
		want        string
	}{
		{name: "CRD on Harvester", vals: "installCRD: true", apiVersions: []string{"harvesterhci.io/v1beta1", "harvesterhci.io/v1beta1/Setting"}, want: "installCRD: this cluster serves Harvester's API"},
		{name: "rules without the file", vals: "monitoring: {rules: {enabled: true}}", noFiles: true, want: "the chart has no monitoring/rules.yaml"},
		{name: "dashboard without the file", vals: "monitoring: {dashboard: {enabled: true}}", noFiles: true, want: "the chart has no monitoring/dashboard.json"},
		{name: "ServiceMonitor without the Service", vals: "metrics: {service: {enabled: false}}\nmonitoring: {serviceMonitor: {enabled: true}}", want: "monitoring.serviceMonitor.enabled needs metrics.enabled and metrics.service.enabled"},
		{name: "rules without metrics", vals: "metrics: {enabled: false}\nmonitoring: {rules: {enabled: true}}", want: "monitoring.rules.enabled needs metrics.enabled"},
		{name: "dashboard without metrics", vals: "metrics: {enabled: false}\nmonitoring: {dashboard: {enabled: true}}", want: "monitoring.dashboard.enabled needs metrics.enabled"},
		{name: "replicas without leader election", vals: "leaderElection: {enabled: false}", want: "replicas > 1 needs leaderElection.enabled"},
		{name: "one port for two servers", vals: "health: {port: 8080}", want: "metrics.port and health.port must differ"},
		{name: "shutdown not below the grace period", vals: "shutdownTimeout: 1m\nterminationGracePeriodSeconds: 60", want: "shutdownTimeout 1m must be below terminationGracePeriodSeconds 60"},
		{name: "threshold above 8Pi", vals: "imageFsThreshold: 8193Ti", want: "imageFsThreshold 8193Ti: must be at most 8Pi"},
		{name: "burst below the rate", vals: "kubeApiQps: 300\nkubeApiBurst: 299", want: "kubeApiBurst 299 must be at least kubeApiQps 300 rounded up, 300"},
		{name: "burst below the rate rounded up", vals: "kubeApiQps: 1.5\nkubeApiBurst: 1", want: "kubeApiBurst 1 must be at least kubeApiQps 1.5 rounded up, 2"},
		{name: "rate above the default burst", vals: "kubeApiQps: 200.5", want: "kubeApiBurst unset (the controller's 200) must be at least kubeApiQps 200.5 rounded up, 201"},
		{name: "burst below the default rate", vals: "kubeApiBurst: 99", want: "kubeApiBurst 99 must be at least kubeApiQps unset (the controller's 100) rounded up, 100"},
		{name: "rate 0", vals: "kubeApiQps: 0", want: "kubeApiQps"},
		{name: "burst not an integer", vals: "kubeApiBurst: 200.5", want: "kubeApiBurst"},
		{name: "misspelt value", vals: "dryrun: true", want: "dryrun"},
		{name: "bad repoAddress", vals: "repoAddress: dns", want: "repoAddress"},
		{name: "bad toleration", vals: "removal: {tolerations: [{key: k, operator: exists}]}", want: "operator"},
		{name: "bad duration", vals: "resync: 10 minutes", want: "resync"},
		{name: "ratio above 1", vals: "successRatio: 1.5", want: "successRatio"},
		{name: "bad digest", vals: "image: {digest: sha256:abc}", want: "digest"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := chartForTest(t)
			if c.noFiles {
				withoutFile(ch, rulesFile)
				withoutFile(ch, dashboardFile)
			}
			vals, err := chartutil.ReadValues([]byte(c.vals))
			if err != nil {
				t.Fatal(err)
			}
			_, err = install(ch, vals, c.apiVersions...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("install with %q: error %v, want one containing %q", c.vals, err, c.want)
			}
		})
	}
}

// TestAddon checks deploy/addon's Harvester Addon: its fields are those of
// Harvester's AddonSpec, it names this chart and version, and its
// valuesContent passes the chart's schema and renders.
func TestAddon(t *testing.T) {
	const file = "deploy/addon/upgrade-image-cleanup.yaml"
	b, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	objs := parse(t, file, string(b))
	if len(objs) != 1 {
		t.Fatalf("%s: %d objects, want one Addon", file, len(objs))
	}
	addon := objs[0].u
	if addon.GetAPIVersion() != "harvesterhci.io/v1beta1" || addon.GetKind() != "Addon" {
		t.Errorf("%s is %s %s, want harvesterhci.io/v1beta1 Addon", file, addon.GetAPIVersion(), addon.GetKind())
	}
	// Harvester's Addon controller makes a HelmChart of the Addon's name in
	// its namespace: the release's name and namespace.
	if addon.GetNamespace() != releaseNamespace || addon.GetName() != releaseName {
		t.Errorf("Addon %s/%s, want %s/%s", addon.GetNamespace(), addon.GetName(), releaseNamespace, releaseName)
	}
	spec, _, _ := unstructured.NestedMap(addon.Object, "spec")
	// harvesterhci.io/v1beta1 AddonSpec: repo, chart, version (strings),
	// enabled (bool), valuesContent (a string of YAML).
	fields := map[string]reflect.Kind{"repo": reflect.String, "chart": reflect.String, "version": reflect.String, "enabled": reflect.Bool, "valuesContent": reflect.String}
	for k, v := range spec {
		kind, ok := fields[k]
		if !ok {
			t.Errorf("spec.%s is no field of Harvester's AddonSpec", k)
			continue
		}
		if got := reflect.TypeOf(v).Kind(); got != kind {
			t.Errorf("spec.%s is a %s, want a %s", k, got, kind)
		}
	}
	for k := range fields {
		if _, ok := spec[k]; !ok {
			t.Errorf("spec.%s is missing", k)
		}
	}
	ch := chartForTest(t)
	if spec["chart"] != ch.Name() || spec["version"] != ch.Metadata.Version {
		t.Errorf("spec.chart %v version %v, want %s %s (Chart.yaml)", spec["chart"], spec["version"], ch.Name(), ch.Metadata.Version)
	}
	content, _ := spec["valuesContent"].(string)
	vals, err := chartutil.ReadValues([]byte(content))
	if err != nil {
		t.Fatalf("spec.valuesContent is not YAML: %v", err)
	}
	if len(vals) == 0 {
		t.Fatal("spec.valuesContent is empty")
	}
	rel, err := install(ch, vals)
	if err != nil {
		t.Fatalf("spec.valuesContent does not install: %v", err)
	}
	d := find[*appsv1.Deployment](t, parse(t, "addon", rel.Manifest), "Deployment", releaseNamespace, releaseName)
	c := controller(t, d)
	img := valueAt(vals, "image").(map[string]any)
	if want := fmt.Sprintf("%s:%s", img["repository"], img["tag"]); c.Image != want || args(t, c.Args)["remover-image"] != want {
		t.Errorf("image %s, --remover-image %s, want %s from valuesContent", c.Image, args(t, c.Args)["remover-image"], want)
	}
	if vals["installCRD"] != false {
		t.Errorf("valuesContent: installCRD must be false on Harvester")
	}
}

// binary builds the controller of the root module once, for the tests
// that ask it about its flags.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "helm-chart-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "upgrade-image-cleanup")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/upgrade-image-cleanup")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/upgrade-image-cleanup: %v\n%s", err, out)
	}
	return bin, nil
})

// binaryFlags returns the flags the controller defines, each with its
// default as `-h` prints it ("" when it prints none: the zero value).
func binaryFlags(t *testing.T) map[string]string {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-h")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s -h: %v\n%s", bin, err, stderr.String())
	}
	flags := map[string]string{}
	name := ""
	defaultRE := regexp.MustCompile(`\(default (.*)\)$`)
	for _, line := range strings.Split(stderr.String(), "\n") {
		if m := regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9._-]*)`).FindStringSubmatch(line); m != nil {
			name = m[1]
			flags[name] = ""
			continue
		}
		if name == "" {
			continue
		}
		if m := defaultRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			d := m[1]
			if u, err := strconv.Unquote(d); err == nil {
				d = u
			}
			flags[name] = d
		}
	}
	if len(flags) == 0 {
		t.Fatalf("no flags in the usage text:\n%s", stderr.String())
	}
	return flags
}

// TestArgsAreAcceptedByTheBinary runs the controller with the arguments
// of the default render and of every feature on: each flag must exist and
// its value must parse. With a kubeconfig that does not exist, a binary
// that accepts its flags stops with exit code 1 on the kubeconfig; a bad
// flag or value exits 2.
func TestArgsAreAcceptedByTheBinary(t *testing.T) {
	defined := binaryFlags(t)
	bin, _ := binary()
	_, all := everything(t)
	defaults := mustInstall(t, chartForTest(t), nil)
	for _, r := range []struct {
		name string
		objs []object
	}{
		{"defaults", parse(t, "defaults", defaults.Manifest)},
		{"everything", all},
	} {
		t.Run(r.name, func(t *testing.T) {
			var d *appsv1.Deployment
			for _, o := range r.objs {
				if o.kind == "Deployment" {
					d = o.obj.(*appsv1.Deployment)
				}
			}
			var run []string
			for _, a := range controller(t, d).Args {
				flag, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				if _, ok := defined[flag]; !ok {
					t.Errorf("the chart passes --%s, which upgrade-image-cleanup does not define", flag)
					continue
				}
				run = append(run, a)
			}
			kubeconfig := filepath.Join(t.TempDir(), "no-such-kubeconfig")
			var stderr bytes.Buffer
			cmd := exec.Command(bin, append(run, "--kubeconfig="+kubeconfig)...)
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "kubeconfig") {
				t.Errorf("upgrade-image-cleanup %s: %v, want exit code 1 on the missing kubeconfig (2 is a bad flag):\n%s", strings.Join(run, " "), err, stderr.String())
			}
		})
	}
}

// optionFlags pairs each option value with its flag, for the defaults'
// check. remover.command and removal.tolerations are left out: empty means
// "no flag", whatever the binary's default. So are kubeApiQps and
// kubeApiBurst: null means "no flag" (TestKubeAPIBudgetArgs), and the
// copies of the binary's defaults the template checks them with are
// pinned by TestChartAgreesWithTheBinary.
var optionFlags = []struct{ value, flag string }{
	{"dryRun", "dry-run"},
	{"skip", "skip"},
	{"catchUp", "catch-up"},
	{"imageFsThreshold", "image-fs-threshold"},
	{"exclude", "exclude"},
	{"successRatio", "success-ratio"},
	{"runtimeSocket", "runtime-socket"},
	{"repoAddress", "repo-address"},
	{"matchOtherRegistries", "match-other-registries"},
	{"pruneDangling", "prune-dangling"},
	{"workers", "workers"},
	{"resync", "resync"},
	{"logFormat", "log-format"},
	{"verbosity", "v"},
	{"shutdownTimeout", "shutdown-timeout"},
	{"removal.nodeSelector", "node-selector"},
	{"namespace", "namespace"},
}

// TestOptionDefaultsAreTheBinarys: the chart writes an option's flag only
// when its value differs from the default in the template, which is
// values.yaml's; both must be the binary's, or the default install would
// run with other settings than the values say.
func TestOptionDefaultsAreTheBinarys(t *testing.T) {
	defined := binaryFlags(t)
	ch := chartForTest(t)
	for _, o := range optionFlags {
		bin, ok := defined[o.flag]
		if !ok {
			t.Errorf("%s: the binary has no --%s", o.value, o.flag)
			continue
		}
		got := valueString(valueAt(ch.Values, o.value))
		if !sameSetting(got, bin) {
			t.Errorf("%s defaults to %q, the binary's --%s to %q", o.value, got, o.flag, bin)
		}
	}
}

// valueString writes a value as its flag would be written.
func valueString(v any) string {
	switch v := v.(type) {
	case []any:
		s := make([]string, len(v))
		for i, e := range v {
			s[i] = fmt.Sprint(e)
		}
		return strings.Join(s, ",")
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// sameSetting compares a value with a flag's printed default ("" is the
// zero value), durations and numbers by what they mean.
func sameSetting(value, flagDefault string) bool {
	if value == flagDefault {
		return true
	}
	if flagDefault == "" {
		return value == "false" || value == "0" || value == ""
	}
	if a, err := time.ParseDuration(value); err == nil {
		b, err := time.ParseDuration(flagDefault)
		return err == nil && a == b
	}
	if a, err := strconv.ParseFloat(value, 64); err == nil {
		b, err := strconv.ParseFloat(flagDefault, 64)
		return err == nil && a == b
	}
	return false
}

// opaqueValues are values passed through whole (Kubernetes objects, label
// maps): documented as one row, not key by key.
var opaqueValues = map[string]bool{
	"resources": true, "podSecurityContext": true, "securityContext": true,
	"nodeSelector": true, "affinity": true, "labels": true,
}

// valueLeaves lists the values.yaml paths a reader sets: nested tables
// are walked, opaque ones and lists are leaves.
func valueLeaves(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 && !opaqueValues[k] {
			out = append(out, valueLeaves(p, sub)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// TestREADMEDocumentsEveryValue: the README's table of chart values has a
// row for every value of values.yaml, and no row for a value it lacks.
func TestREADMEDocumentsEveryValue(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n#### Chart values\n")
	if !ok {
		t.Fatal("README.md has no section #### Chart values")
	}
	if i := regexp.MustCompile(`\n#{2,4} `).FindStringIndex(section); i != nil {
		section = section[:i[0]]
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		first, _, ok := strings.Cut(strings.TrimPrefix(line, "| "), " | ")
		if !strings.HasPrefix(line, "| `") || !ok {
			continue
		}
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(first, -1) {
			documented[m[1]] = true
		}
	}
	leaves := valueLeaves("", chartForTest(t).Values)
	for _, v := range leaves {
		if !documented[v] {
			t.Errorf("README.md's Chart values has no row for %s", v)
		}
	}
	for v := range documented {
		if !slices.Contains(leaves, v) {
			t.Errorf("README.md's Chart values documents %s, which values.yaml does not have", v)
		}
	}
}
