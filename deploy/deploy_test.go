package deploy_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

const (
	namespace      = "harvester-system"
	serviceAccount = "upgrade-image-cleanup"
	containerName  = "controller"
)

// clusterScoped are the kinds that must not carry a namespace; every other
// object must name harvester-system explicitly (kubectl apply would
// otherwise put it in the current context's namespace).
var clusterScoped = map[string]bool{
	"ClusterRole": true, "ClusterRoleBinding": true, "CustomResourceDefinition": true, "Namespace": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
}

// wantRules returns the verbs per "group/resource" (core group: empty
// before the slash) that the ClusterRole and the Role must grant: what the
// controller uses (cleanup.Permissions, with removal), plus leader
// election's Lease and the startup check's SelfSubjectAccessReview, which
// the binary adds. A change to rbac.yaml or to the code must meet here.
func wantRules() (cluster, role map[string][]string) {
	cluster = map[string][]string{
		"authorization.k8s.io/selfsubjectaccessreviews": {"create"},
	}
	role = map[string][]string{
		"coordination.k8s.io/leases": {"get", "create", "update"},
	}
	for _, p := range cleanup.Permissions(true) {
		m := cluster
		if p.Namespaced {
			m = role
		}
		key := p.Group + "/" + p.Resource
		m[key] = append(m[key], p.Verb)
	}
	return cluster, role
}

// manifest is one YAML document of one file.
type manifest struct {
	where string // file#index, for messages
	kind  string
	obj   runtime.Object // typed, or *unstructured.Unstructured for the CRD
}

// strict rejects unknown and duplicate fields, so a misspelt field (say,
// readOnlyRootFileSystem) fails here instead of being dropped by the server.
var strict = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// notManifests are folders of deploy/ that hold no manifests to apply: the
// Helm chart the manifests are generated from (its templates are not YAML
// until rendered; hack/helm tests them) and the Harvester Addon example.
var notManifests = map[string]bool{"chart": true, "addon": true}

// loadManifests decodes every document of every YAML file under this
// folder, but for notManifests.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && notManifests[path] {
			return fs.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no YAML files in deploy/")
	}
	var out []manifest
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split("\n"+string(b), "\n---") {
			if onlyComments(doc) {
				continue
			}
			where := fmt.Sprintf("%s#%d", file, i)
			out = append(out, decode(t, where, []byte(doc)))
		}
	}
	return out
}

func onlyComments(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

func decode(t *testing.T, where string, doc []byte) manifest {
	t.Helper()
	j, err := utilyaml.ToJSON(doc)
	if err != nil {
		t.Fatalf("%s: not YAML: %v", where, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if u.GetAPIVersion() == "apiextensions.k8s.io/v1" {
		return manifest{where: where, kind: u.GetKind(), obj: u}
	}
	obj, gvk, err := strict.Decode(doc, nil, nil)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return manifest{where: where, kind: gvk.Kind, obj: obj}
}

// only returns the one object of kind K, failing unless there is exactly one.
func only[K runtime.Object](t *testing.T, ms []manifest, kind string) K {
	t.Helper()
	var found []K
	for _, m := range ms {
		if m.kind == kind {
			found = append(found, m.obj.(K))
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s in deploy/, found %d", kind, len(found))
	}
	return found[0]
}

func TestNamespaces(t *testing.T) {
	for _, m := range loadManifests(t) {
		ns := m.obj.(interface{ GetNamespace() string }).GetNamespace()
		switch {
		case clusterScoped[m.kind] && ns != "":
			t.Errorf("%s: cluster-scoped %s has namespace %q", m.where, m.kind, ns)
		case !clusterScoped[m.kind] && ns != namespace:
			t.Errorf("%s: %s has namespace %q, want %q", m.where, m.kind, ns, namespace)
		}
	}
}

func TestRBACRules(t *testing.T) {
	ms := loadManifests(t)
	cr := only[*rbacv1.ClusterRole](t, ms, "ClusterRole")
	role := only[*rbacv1.Role](t, ms, "Role")
	check := func(what string, rules []rbacv1.PolicyRule, want map[string][]string) {
		t.Helper()
		got := map[string][]string{}
		for _, r := range rules {
			if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
				t.Errorf("%s: rule %v: resourceNames and nonResourceURLs are not expected", what, r)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						if g == "*" || res == "*" || v == "*" {
							t.Errorf("%s: wildcard in rule %v", what, r)
						}
						key := g + "/" + res
						if slices.Contains(got[key], v) {
							t.Errorf("%s: %s verb %s granted twice", what, key, v)
						}
						got[key] = append(got[key], v)
					}
				}
			}
		}
		for key, verbs := range want {
			if g, w := slices.Sorted(slices.Values(got[key])), slices.Sorted(slices.Values(verbs)); !slices.Equal(g, w) {
				t.Errorf("%s: %s verbs = %v, want %v", what, key, g, w)
			}
		}
		for key, verbs := range got {
			if _, ok := want[key]; !ok {
				t.Errorf("%s: unexpected rule %s %v", what, key, verbs)
			}
		}
	}
	wantCluster, wantRole := wantRules()
	check("ClusterRole "+cr.Name, cr.Rules, wantCluster)
	check("Role "+role.Name, role.Rules, wantRole)
}

func TestRBACBindings(t *testing.T) {
	ms := loadManifests(t)
	sa := only[*corev1.ServiceAccount](t, ms, "ServiceAccount")
	if sa.Name != serviceAccount {
		t.Errorf("ServiceAccount is %q, want %q", sa.Name, serviceAccount)
	}
	cr := only[*rbacv1.ClusterRole](t, ms, "ClusterRole")
	role := only[*rbacv1.Role](t, ms, "Role")
	crb := only[*rbacv1.ClusterRoleBinding](t, ms, "ClusterRoleBinding")
	rb := only[*rbacv1.RoleBinding](t, ms, "RoleBinding")
	wantSubjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: sa.Namespace}}
	for _, b := range []struct {
		what     string
		ref      rbacv1.RoleRef
		subjects []rbacv1.Subject
		wantRef  rbacv1.RoleRef
	}{
		{"ClusterRoleBinding " + crb.Name, crb.RoleRef, crb.Subjects, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}},
		{"RoleBinding " + rb.Name, rb.RoleRef, rb.Subjects, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}},
	} {
		if b.ref != b.wantRef {
			t.Errorf("%s: roleRef %+v, want %+v", b.what, b.ref, b.wantRef)
		}
		if !slices.Equal(b.subjects, wantSubjects) {
			t.Errorf("%s: subjects %+v, want %+v", b.what, b.subjects, wantSubjects)
		}
	}
}

// args turns --name=value and --name into a map; a flag given twice fails.
func args(t *testing.T, list []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range list {
		if !strings.HasPrefix(a, "--") {
			t.Fatalf("argument %q is not of the form --name[=value]", a)
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
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

func addrPort(t *testing.T, flag, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("--%s=%s: %v", flag, addr, err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		t.Fatalf("--%s=%s: %v", flag, addr, err)
	}
	return int32(n)
}

// portNumber resolves a probe's or Service's target port against the container.
func portNumber(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

func controller(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != containerName {
		t.Fatalf("Deployment %s: want one container %q, got %d", d.Name, containerName, len(cs))
	}
	return cs[0]
}

func TestDeployment(t *testing.T) {
	ms := loadManifests(t)
	d := only[*appsv1.Deployment](t, ms, "Deployment")
	sa := only[*corev1.ServiceAccount](t, ms, "ServiceAccount")
	pod := d.Spec.Template.Spec
	c := controller(t, d)

	if pod.ServiceAccountName != sa.Name {
		t.Errorf("serviceAccountName %q, want the ServiceAccount %q", pod.ServiceAccountName, sa.Name)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || d.Spec.Selector == nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("selector %v does not match the pod template's labels %v (%v)", d.Spec.Selector, d.Spec.Template.Labels, err)
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds != 30 {
		t.Errorf("terminationGracePeriodSeconds %v, want 30", pod.TerminationGracePeriodSeconds)
	}
	if pod.PriorityClassName != "" {
		t.Errorf("priorityClassName %q, want none", pod.PriorityClassName)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC || len(pod.Volumes) > 0 {
		t.Errorf("the controller needs no host namespace and no volume")
	}

	a := args(t, c.Args)
	for flag, want := range map[string]string{
		"namespace":     namespace,
		"leader-elect":  "true",
		"log-format":    "json",
		"remover-image": c.Image, // one image holds both binaries
	} {
		if a[flag] != want {
			t.Errorf("--%s=%q, want %q", flag, a[flag], want)
		}
	}
	for _, flag := range []string{"metrics-addr", "health-addr"} {
		if a[flag] == "" {
			t.Errorf("--%s is missing", flag)
		}
	}
	// The Lease goes to $POD_NAMESPACE, else --namespace: the Role's namespace either way.
	if i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAMESPACE" }); i >= 0 {
		if e := c.Env[i]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
			t.Errorf("POD_NAMESPACE must come from the pod's metadata.namespace, got %+v", e)
		}
	}
	health := addrPort(t, "health-addr", a["health-addr"])
	metrics := addrPort(t, "metrics-addr", a["metrics-addr"])

	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an HTTP GET probe", p.what)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s: path %q, want %q", p.what, p.probe.HTTPGet.Path, p.path)
		}
		if got := portNumber(t, c, p.probe.HTTPGet.Port); got != health {
			t.Errorf("%s: port %d, want the --health-addr port %d", p.what, got, health)
		}
	}
	if got := portNumber(t, c, intstr.FromString("metrics")); got != metrics {
		t.Errorf("container port metrics is %d, want the --metrics-addr port %d", got, metrics)
	}

	for name, q := range map[string]struct {
		list corev1.ResourceList
		want string
	}{
		"requests.cpu":    {c.Resources.Requests, "20m"},
		"requests.memory": {c.Resources.Requests, "64Mi"},
		"limits.memory":   {c.Resources.Limits, "256Mi"},
	} {
		got, ok := q.list[corev1.ResourceName(name[strings.Index(name, ".")+1:])]
		if !ok || got.Cmp(resource.MustParse(q.want)) != 0 {
			t.Errorf("resources.%s = %v, want %s", name, got.String(), q.want)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		t.Errorf("a CPU limit throttles the controller for nothing; want none")
	}
}

// TestDeploymentSecurityContext checks the effective settings: the
// container's securityContext where it sets a field, else the pod's.
func TestDeploymentSecurityContext(t *testing.T) {
	d := only[*appsv1.Deployment](t, loadManifests(t), "Deployment")
	c := controller(t, d)
	pod := d.Spec.Template.Spec.SecurityContext
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("container has no securityContext")
	}
	runAsNonRoot := firstNonNil(sc.RunAsNonRoot, pod.RunAsNonRoot)
	runAsUser := firstNonNil(sc.RunAsUser, pod.RunAsUser)
	seccomp := firstNonNil(sc.SeccompProfile, pod.SeccompProfile)
	switch {
	case runAsNonRoot == nil || !*runAsNonRoot:
		t.Errorf("runAsNonRoot is not true")
	case runAsUser == nil || *runAsUser != 65532:
		t.Errorf("runAsUser %v, want 65532", runAsUser)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("privileged")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v, want drop [ALL] and nothing added", sc.Capabilities)
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile %+v, want RuntimeDefault", seccomp)
	}
}

func firstNonNil[T any](ps ...*T) *T {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

func TestMetricsService(t *testing.T) {
	ms := loadManifests(t)
	d := only[*appsv1.Deployment](t, ms, "Deployment")
	svc := only[*corev1.Service](t, ms, "Service")
	c := controller(t, d)
	if svc.Spec.Type != corev1.ServiceTypeClusterIP && svc.Spec.Type != "" {
		t.Errorf("Service type %s, want ClusterIP", svc.Spec.Type)
	}
	if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the Deployment's pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].Port != 8080 {
		t.Fatalf("Service ports %+v, want one port metrics 8080", svc.Spec.Ports)
	}
	want := addrPort(t, "metrics-addr", args(t, c.Args)["metrics-addr"])
	if got := portNumber(t, c, svc.Spec.Ports[0].TargetPort); got != want {
		t.Errorf("Service targetPort reaches container port %d, want the --metrics-addr port %d", got, want)
	}
}

// TestDeploymentArgsAreFlagsOfTheBinary asks the controller binary (-h) for
// its flags, so a renamed or missing flag fails here and not in the cluster
// (a bad flag stops the binary with exit code 2).
func TestDeploymentArgsAreFlagsOfTheBinary(t *testing.T) {
	d := only[*appsv1.Deployment](t, loadManifests(t), "Deployment")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(goBin, "run", "../cmd/upgrade-image-cleanup", "-h")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go run ../cmd/upgrade-image-cleanup -h: %v\n%s", err, stderr.String())
	}
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9._-]*)`).FindAllStringSubmatch(stderr.String(), -1) {
		defined[m[1]] = true
	}
	if len(defined) == 0 {
		t.Fatalf("no flags found in the usage text:\n%s", stderr.String())
	}
	for flag := range args(t, controller(t, d).Args) {
		if !defined[flag] {
			t.Errorf("the Deployment passes --%s, which upgrade-image-cleanup does not define", flag)
		}
	}
}

// TestUpgradeCRD checks the test-only CRD: names, the status subresource,
// the fields the controller reads, and a structural schema (a type on every
// node) that keeps the fields Harvester has beyond those.
func TestUpgradeCRD(t *testing.T) {
	crd := only[*unstructured.Unstructured](t, loadManifests(t), "CustomResourceDefinition")
	o := crd.Object
	for path, want := range map[string]any{
		"metadata.name":       "upgrades.harvesterhci.io",
		"spec.group":          "harvesterhci.io",
		"spec.scope":          "Namespaced",
		"spec.names.kind":     "Upgrade",
		"spec.names.listKind": "UpgradeList",
		"spec.names.plural":   "upgrades",
		"spec.names.singular": "upgrade",
	} {
		if got, _, _ := unstructured.NestedFieldNoCopy(o, strings.Split(path, ".")...); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	versions, _, _ := unstructured.NestedSlice(o, "spec", "versions")
	if len(versions) != 1 {
		t.Fatalf("want one version, got %d", len(versions))
	}
	v := versions[0].(map[string]any)
	if v["name"] != "v1beta1" || v["served"] != true || v["storage"] != true {
		t.Errorf("version %v/%v/%v, want v1beta1 served and stored", v["name"], v["served"], v["storage"])
	}
	if _, ok, _ := unstructured.NestedMap(v, "subresources", "status"); !ok {
		t.Errorf("no status subresource")
	}
	schema, ok, _ := unstructured.NestedMap(v, "schema", "openAPIV3Schema")
	if !ok {
		t.Fatal("no openAPIV3Schema")
	}
	checkStructural(t, "openAPIV3Schema", schema)

	for path, want := range map[string]string{
		"spec.version":                       "string",
		"spec.image":                         "string",
		"spec.logEnabled":                    "boolean",
		"status.previousVersion":             "string",
		"status.conditions":                  "array",
		"status.conditions[].type":           "string",
		"status.conditions[].status":         "string",
		"status.conditions[].reason":         "string",
		"status.conditions[].message":        "string",
		"status.conditions[].lastUpdateTime": "string",
		"status.nodeStatuses":                "object",
	} {
		if got := schemaAt(schema, path)["type"]; got != want {
			t.Errorf("schema %s: type %v, want %s", path, got, want)
		}
	}
	for _, path := range []string{"spec", "status", "status.conditions[]"} {
		if schemaAt(schema, path)["x-kubernetes-preserve-unknown-fields"] != true {
			t.Errorf("schema %s: want x-kubernetes-preserve-unknown-fields, so Harvester's other fields are kept", path)
		}
	}
}

// schemaAt walks a dotted path of properties; "x[]" steps into x's items.
func schemaAt(s map[string]any, path string) map[string]any {
	for _, step := range strings.Split(path, ".") {
		name, items := strings.CutSuffix(step, "[]")
		s, _ = s["properties"].(map[string]any)[name].(map[string]any)
		if items && s != nil {
			s, _ = s["items"].(map[string]any)
		}
		if s == nil {
			return map[string]any{}
		}
	}
	return s
}

// checkStructural enforces the parts of a structural schema that a typo
// breaks: a type on every node, and properties and additionalProperties
// never together. The root's metadata may carry only a type.
func checkStructural(t *testing.T, at string, s map[string]any) {
	t.Helper()
	if s["type"] == nil || s["type"] == "" {
		t.Errorf("schema %s has no type", at)
	}
	props, hasProps := s["properties"].(map[string]any)
	if hasProps && s["additionalProperties"] != nil {
		t.Errorf("schema %s has both properties and additionalProperties", at)
	}
	for name, p := range props {
		checkStructural(t, at+"."+name, p.(map[string]any))
	}
	for _, key := range []string{"items", "additionalProperties"} {
		if sub, ok := s[key].(map[string]any); ok {
			checkStructural(t, at+"."+key, sub)
		}
	}
}
