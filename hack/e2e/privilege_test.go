//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/standalone"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// The manifests under test, read from disk by path: whatever produces them
// (by hand or from a chart), the objects in them are what is applied.
const (
	rbacManifest       = "deploy/rbac.yaml"
	deploymentManifest = "deploy/deployment.yaml"
)

// applyManager is the field manager of this test's server-side applies.
const applyManager = "e2e-least-privilege"

// unexercisedGrants are the permissions rbac.yaml grants that a cleanup
// running start to end does not use, each with the situation that does.
// Every other granted verb must show in the audit log of the run.
var unexercisedGrants = map[string]string{
	"/events/patch": "client-go's event recorder patches an Event's count only when the same Event repeats",
}

// TestLeastPrivilege runs the controller as the ServiceAccount of deploy/,
// with exactly deploy/rbac.yaml's permissions, on the real API server: the
// RBAC objects applied from the file, the Deployment applied server-side
// (and a broken copy refused by the server's validation), a token from the
// TokenRequest API in a kubeconfig with nothing else, the startup
// permission check passed and a cleanup run to Succeeded. The audit log
// shows every request the controller made: none refused, none outside its
// namespace but the cluster-scoped grants, and every granted verb used
// (unexercisedGrants aside). With the same token, the server refuses what
// the controller must not do.
func TestLeastPrivilege(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	rbac, deployment, mapper := applyDeploy(t, ctx)
	sa := oneOfKind(t, rbac, "ServiceAccount")
	dep := oneOfKind(t, deployment, "Deployment")
	checkServerValidates(t, ctx, mapper, dep)

	kubeconfig, saConfig := serviceAccountKubeconfig(t, ctx, sa)
	// The test's own requests with the token are many access reviews:
	// unthrottled. The controller reads the file and sets its own.
	saConfig.QPS, saConfig.Burst = -1, 0
	saKube := kubernetes.NewForConfigOrDie(saConfig)
	saDynamic := dynamic.NewForConfigOrDie(saConfig)
	who, err := saKube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectReview with the ServiceAccount's token: %v", err)
	}
	username := "system:serviceaccount:" + sa.GetNamespace() + ":" + sa.GetName()
	if got := who.Status.UserInfo.Username; got != username {
		t.Fatalf("the token authenticates as %q, want %q", got, username)
	}

	auditFrom := auditLogSize(t)
	run := runCleanupAs(t, ctx, kubeconfig, dep, 50)
	checkProbes(t, ctx, run.ctl, dep)
	// Some refusals are only logged (an Event not recorded, say).
	if log := run.ctl.log(); strings.Contains(strings.ToLower(log), "forbidden") || !strings.Contains(log, "Elected leader") {
		t.Error("want a log with the Lease taken and no request refused (the log is printed below)")
	}

	checkAuditedUse(t, ctx, auditFrom, username, rbac)

	t.Run("refused", func(t *testing.T) {
		checkRefusals(t, ctx, saKube, saDynamic, run.upgrade, run.jobs[nodeNames[0]].Name)
	})
	t.Run("granted", func(t *testing.T) {
		checkGrants(t, ctx, saKube, rbac)
	})
}

// applyDeploy applies deploy/rbac.yaml and deploy/deployment.yaml as the
// cluster's admin with server-side applies, each object as the file holds
// it but one: the removal Jobs' policy's parameters (the ConfigMap its
// binding names) get the suite's remover image, as the controller runs
// with --remover-image set to it (controllerCommand). That is what the
// README asks of whoever applies the plain manifests: the image set in
// the Deployment and in the parameters. Every object is deleted when the
// test ends, the RBAC objects after the controller has stopped.
func applyDeploy(t *testing.T, ctx context.Context) (rbac, deployment []*unstructured.Unstructured, mapper meta.RESTMapper) {
	t.Helper()
	rbac = readManifests(t, rbacManifest)
	deployment = readManifests(t, deploymentManifest)
	sa := oneOfKind(t, rbac, "ServiceAccount")
	if sa.GetNamespace() != ns {
		t.Fatalf("%s: ServiceAccount %s is in namespace %q; this suite's objects are in %q", rbacManifest, sa.GetName(), sa.GetNamespace(), ns)
	}
	if params := policyParams(t, rbac, deployment); params != nil {
		flag := controllerFlag(t, oneOfKind(t, deployment, "Deployment"), "remover-image")
		if image, _, _ := unstructured.NestedString(params.Object, "data", "image"); image != flag {
			t.Fatalf("%s: the removal Jobs' policy's parameters name the image %q, the Deployment's --remover-image %q", deploymentManifest, image, flag)
		}
		if err := unstructured.SetNestedField(params.Object, removerImage, "data", "image"); err != nil {
			t.Fatal(err)
		}
	}
	mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(env.kube.Discovery()))
	// In the order of kubectl apply -f deploy/: the policy's parameters
	// before the policy, which refuses every Job in the namespace while
	// they are missing. Cleanups run last in, first out: the policy goes
	// before its parameters, and the RBAC objects after the controller has
	// stopped (on SIGTERM it still releases its Lease).
	for _, file := range []struct {
		name string
		objs []*unstructured.Unstructured
	}{{deploymentManifest, deployment}, {rbacManifest, rbac}} {
		if file.name == rbacManifest {
			waitPolicyGoneOnCleanup(t, sa)
		}
		for _, o := range file.objs {
			if _, err := serverSideApply(ctx, mapper, o); err != nil {
				t.Fatalf("%s: apply %s %s: %v", file.name, o.GetKind(), o.GetName(), err)
			}
			deleteOnCleanup(t, mapper, o)
		}
	}
	return rbac, deployment, mapper
}

// waitPolicyGoneOnCleanup registers, between the cleanups of the
// parameters and of the policy, a wait until the API server no longer
// enforces the removal Jobs' policy: were the parameters deleted while it
// still holds the binding, it would refuse the next tests' Jobs for want
// of them. The probe is a dry-run Job with another image as sa's user,
// impersonated with system:masters, since sa's RBAC is gone by then.
func waitPolicyGoneOnCleanup(t *testing.T, sa *unstructured.Unstructured) {
	t.Cleanup(func() {
		cfg := rest.CopyConfig(env.rest)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + sa.GetNamespace() + ":" + sa.GetName(), Groups: []string{"system:masters"}}
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Error(err)
			return
		}
		probe := cleanuptest.RemovalJob("e2e-policy-gone", nodeNames[0])
		var last error
		err = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			_, last = kube.BatchV1().Jobs(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return last == nil, nil
		})
		if err != nil {
			t.Errorf("the removal Jobs' policy still refuses Jobs after its deletion: %v (%v)", last, err)
		}
	})
}

// policyParams returns the ConfigMap of deployment that the removal Jobs'
// policy's binding in rbac names as its parameters; nil when rbac holds no
// binding with parameters (the policy switched off).
func policyParams(t *testing.T, rbac, deployment []*unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	for _, b := range rbac {
		if b.GetKind() != "ValidatingAdmissionPolicyBinding" {
			continue
		}
		name, _, _ := unstructured.NestedString(b.Object, "spec", "paramRef", "name")
		namespace, _, _ := unstructured.NestedString(b.Object, "spec", "paramRef", "namespace")
		if name == "" {
			continue
		}
		for _, o := range deployment {
			if o.GetKind() == "ConfigMap" && o.GetName() == name && o.GetNamespace() == namespace {
				return o
			}
		}
		t.Fatalf("%s: binding %s names the parameters ConfigMap %s/%s, which %s does not hold", rbacManifest, b.GetName(), namespace, name, deploymentManifest)
	}
	return nil
}

// controllerFlag returns the value of --name in the Deployment's
// arguments; "" when it is not given.
func controllerFlag(t *testing.T, dep *unstructured.Unstructured, name string) string {
	t.Helper()
	for _, a := range controllerContainer(t, dep).Args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// cleanupRun is one cleanup run start to end by the controller as a
// ServiceAccount (runCleanupAs).
type cleanupRun struct {
	ctl     *controllerProc
	upgrade string
	jobs    map[string]*batchv1.Job // by node
}

// runCleanupAs runs the controller with the Deployment's flags and
// environment, the test's own remover image and addresses, and a fresh
// Lease (so that creating it is part of what the run shows), with the
// kubeconfig of a ServiceAccount, through a cleanup to Succeeded: the repo
// in its own network namespace (hostIndex, unique per test), the Jobs
// played to success.
func runCleanupAs(t *testing.T, ctx context.Context, kubeconfig string, dep *unstructured.Unstructured, hostIndex int) cleanupRun {
	t.Helper()
	args, environ := controllerCommand(t, dep)
	deleteLease(t, ctx)
	t.Cleanup(func() { deleteLease(t, context.Background()) })
	upgrade := uniqueName("hvst-upgrade")
	h := newTestHost(t, hostIndex)
	r := serveRepo(t, h.listen(t, 8080))
	createRepo(t, ctx, upgrade, h, 8080)
	ctl := startControllerAs(t, "controller", kubeconfig, environ, args...)
	// A missing permission stops the controller at its startup check.
	waitFor(t, ctx, "the controller to pass its permission check and start its workers", 60*time.Second, func(context.Context) (bool, error) {
		select {
		case <-ctl.exited:
			return false, fmt.Errorf("the controller exited with code %d (its log follows)", ctl.cmd.ProcessState.ExitCode())
		default:
			return strings.Contains(ctl.log(), "Starting workers"), nil
		}
	})
	createCompletedUpgrade(t, ctx, upgrade, "v1.4.2")
	dumpOnFailure(t, upgrade, r.String)
	waitState(t, ctx, upgrade, cleanup.StateWaitingForRepo, 60*time.Second)
	setPodReady(t, ctx, cleanuptest.RepoPodName(upgrade), h, true)
	waitState(t, ctx, upgrade, cleanup.StateRemoving, 30*time.Second)
	jobs := checkJobsPerNode(t, ctx, upgrade)
	for _, n := range nodeNames {
		finishJob(t, ctx, jobs[n], report.Result{Removed: 4})
	}
	waitState(t, ctx, upgrade, cleanup.StateSucceeded, 30*time.Second)
	checkSucceeded(t, ctx, upgrade, 4)
	select {
	case <-ctl.exited:
		t.Fatalf("the controller exited (code %d)", ctl.cmd.ProcessState.ExitCode())
	default:
	}
	return cleanupRun{ctl: ctl, upgrade: upgrade, jobs: jobs}
}

// readManifests decodes every YAML document of the file at rel (from the
// repository's root), skipping documents that are only comments.
func readManifests(t *testing.T, rel string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(filepath.Join(env.root, rel))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*unstructured.Unstructured
	docs := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		j, err := utilyaml.ToJSON(doc)
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(j); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		out = append(out, o)
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no object", rel)
	}
	return out
}

// oneOfKind returns the one object of kind, failing unless there is one.
func oneOfKind(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, found %d", kind, len(found))
	}
	return found[0]
}

// resourceFor maps an object to its resource and the client for its
// namespace (cluster-scoped: none).
func resourceFor(mapper meta.RESTMapper, o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return env.dynamic.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return env.dynamic.Resource(m.Resource), nil
}

// serverSideApply applies o as the cluster's admin with a server-side apply
// (force: this test owns these objects), so the API server validates it;
// strict field validation, as kubectl apply --server-side asks for.
func serverSideApply(ctx context.Context, mapper meta.RESTMapper, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	res, err := resourceFor(mapper, o)
	if err != nil {
		return nil, err
	}
	body, err := o.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return res.Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: applyManager, Force: ptr.To(true), FieldValidation: "Strict"})
}

// deleteOnCleanup deletes o when the test ends.
func deleteOnCleanup(t *testing.T, mapper meta.RESTMapper, o *unstructured.Unstructured) {
	t.Cleanup(func() {
		res, err := resourceFor(mapper, o)
		if err == nil {
			err = res.Delete(context.Background(), o.GetName(), metav1.DeleteOptions{})
		}
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	})
}

// checkServerValidates checks that the Deployment was stored as applied by
// this test, and that broken copies of it are refused by the API server
// itself (this test's client sends them as they are), leaving the stored
// object as it was.
func checkServerValidates(t *testing.T, ctx context.Context, mapper meta.RESTMapper, dep *unstructured.Unstructured) {
	t.Helper()
	res, err := resourceFor(mapper, dep)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := res.Get(ctx, dep.GetName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(stored.GetManagedFields(), func(f metav1.ManagedFieldsEntry) bool {
		return f.Manager == applyManager && f.Operation == metav1.ManagedFieldsOperationApply
	}) {
		t.Errorf("Deployment %s: no fields managed by %s's apply: %+v", dep.GetName(), applyManager, stored.GetManagedFields())
	}
	container := func(o *unstructured.Unstructured) map[string]any {
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		if len(cs) == 0 {
			t.Fatalf("Deployment %s has no container", dep.GetName())
		}
		return cs[0].(map[string]any)
	}
	for _, tc := range []struct {
		what   string
		mutate func(o *unstructured.Unstructured)
		field  string // the field path the server's answer names
		// invalid: the answer is 422 Invalid, the server's validation.
		// Otherwise any answer of the server: to an apply with a field its
		// schema lacks, kube-apiserver 1.37 answers 500 ("field not
		// declared in schema"), whatever the fieldValidation.
		invalid bool
	}{
		{"negative replicas", func(o *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(o.Object, int64(-1), "spec", "replicas")
		}, "spec.replicas", true},
		{"unsupported imagePullPolicy", func(o *unstructured.Unstructured) {
			c := container(o)
			c["imagePullPolicy"] = "Sometimes"
			_ = unstructured.SetNestedSlice(o.Object, []any{c}, "spec", "template", "spec", "containers")
		}, "spec.template.spec.containers[0].imagePullPolicy", true},
		{"misspelt securityContext field", func(o *unstructured.Unstructured) {
			c := container(o)
			sc, _ := c["securityContext"].(map[string]any)
			if sc == nil {
				sc = map[string]any{}
			}
			sc["readOnlyRootFileSystem"] = true
			c["securityContext"] = sc
			_ = unstructured.SetNestedSlice(o.Object, []any{c}, "spec", "template", "spec", "containers")
		}, "readOnlyRootFileSystem", false},
	} {
		broken := dep.DeepCopy()
		tc.mutate(broken)
		_, err := serverSideApply(ctx, mapper, broken)
		var answer apierrors.APIStatus
		switch {
		case err == nil:
			t.Errorf("%s: the API server accepted the broken Deployment", tc.what)
		case !errors.As(err, &answer):
			t.Errorf("%s: %v, want the API server's answer", tc.what, err)
		case tc.invalid && !apierrors.IsInvalid(err):
			t.Errorf("%s: %v (%d %s), want 422 Invalid", tc.what, err, answer.Status().Code, answer.Status().Reason)
		case !strings.Contains(err.Error(), tc.field):
			t.Errorf("%s: the refusal %q does not name %s", tc.what, err, tc.field)
		default:
			t.Logf("%s refused by the API server (%d): %v", tc.what, answer.Status().Code, err)
		}
	}
	after, err := res.Get(ctx, dep.GetName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.GetResourceVersion() != stored.GetResourceVersion() {
		t.Errorf("Deployment %s changed (resourceVersion %s, was %s) by refused applies", dep.GetName(), after.GetResourceVersion(), stored.GetResourceVersion())
	}
}

// serviceAccountKubeconfig asks the TokenRequest API for a token of sa and
// writes a kubeconfig with only the API server, its CA and that token: no
// client certificate. It returns its path and the config it loads as.
func serviceAccountKubeconfig(t *testing.T, ctx context.Context, sa *unstructured.Unstructured) (string, *rest.Config) {
	t.Helper()
	tr, err := env.kube.CoreV1().ServiceAccounts(sa.GetNamespace()).CreateToken(ctx, sa.GetName(), &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for ServiceAccount %s: %v", sa.GetName(), err)
	}
	ca := env.rest.CAData
	if len(ca) == 0 {
		if ca, err = os.ReadFile(env.rest.CAFile); err != nil {
			t.Fatalf("the cluster's CA: %v", err)
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: env.rest.Host, CertificateAuthorityData: ca}
	cfg.AuthInfos[sa.GetName()] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: sa.GetName()}
	cfg.CurrentContext = "local"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	if rc.BearerToken == "" || len(rc.CertData) > 0 || len(rc.KeyData) > 0 || rc.CertFile != "" || rc.Username != "" {
		t.Fatalf("the kubeconfig must hold the bearer token and nothing else to authenticate with: %+v", rc)
	}
	return path, rc
}

// controllerCommand returns the Deployment's container arguments and
// environment as the test runs them: the remover image is the suite's
// (never pulled), the metrics and health servers listen on free loopback
// ports, and a field reference to the pod's namespace is the Deployment's.
func controllerCommand(t *testing.T, dep *unstructured.Unstructured) (args, environ []string) {
	t.Helper()
	c := controllerContainer(t, dep)
	// Two spellings of loopback: two listeners, as with the Deployment's
	// two ports (the same address would serve both on one).
	replace := map[string]string{"remover-image": removerImage, "metrics-addr": "127.0.0.1:0", "health-addr": "localhost:0"}
	var namespace string
	for _, a := range c.Args {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if v, ok := replace[name]; ok {
			a = "--" + name + "=" + v
		}
		if name == "namespace" {
			namespace = value
		}
		args = append(args, a)
	}
	if namespace != ns {
		t.Fatalf("Deployment %s runs with --namespace=%q; this suite's Upgrades are in %q", dep.GetName(), namespace, ns)
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			environ = append(environ, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			environ = append(environ, e.Name+"="+dep.GetNamespace())
		default:
			t.Fatalf("Deployment %s: environment variable %s comes from %+v, which this test cannot play", dep.GetName(), e.Name, e.ValueFrom)
		}
	}
	return args, environ
}

// controllerContainer returns the Deployment's one container.
func controllerContainer(t *testing.T, dep *unstructured.Unstructured) corev1.Container {
	t.Helper()
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(dep.Object, &d); err != nil {
		t.Fatal(err)
	}
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("Deployment %s has %d containers, want the controller alone", dep.GetName(), len(cs))
	}
	return cs[0]
}

// checkProbes plays the kubelet's HTTP probes of the Deployment against
// the controller's --health-addr: each answers 200 (readiness: the caches
// synced with these permissions, and a leader is known).
func checkProbes(t *testing.T, ctx context.Context, ctl *controllerProc, dep *unstructured.Unstructured) {
	t.Helper()
	addr := ctl.servingAddr("--health-addr")
	if addr == "" {
		t.Fatal("the controller logged no --health-addr address")
	}
	c := controllerContainer(t, dep)
	for what, p := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			continue
		}
		url := "http://" + addr + p.HTTPGet.Path
		waitFor(t, ctx, what+" "+url+" answering 200", 10*time.Second, func(ctx context.Context) (bool, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return false, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false, nil
			}
			_ = resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
	}
}

// deleteLease removes the leader-election Lease, so the run creates it.
func deleteLease(t *testing.T, ctx context.Context) {
	t.Helper()
	err := env.kube.CoordinationV1().Leases(ns).Delete(ctx, standalone.LeaseName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("delete Lease %s: %v", standalone.LeaseName, err)
	}
}

// auditEvent is the part of an audit.k8s.io/v1 Event this test reads.
type auditEvent struct {
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	UserAgent string `json:"userAgent"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int32 `json:"code"`
	} `json:"responseStatus"`
}

// grantKey is how grants and uses are compared: "group/resource/verb".
func grantKey(group, resource, verb string) string { return group + "/" + resource + "/" + verb }

// auditLog is hack/local-cluster's audit log: ServiceAccounts' requests.
func auditLog() string { return filepath.Join(env.clusterDir, "audit.log") }

// auditLogSize is where this run's part of the audit log starts (the log
// of a kept cluster holds earlier runs'); -1 when there is no audit log.
func auditLogSize(t *testing.T) int64 {
	t.Helper()
	fi, err := os.Stat(auditLog())
	if err != nil {
		t.Logf("no audit log (%v): the cluster was not brought up by this hack/local-cluster; the permissions used will not be checked", err)
		return -1
	}
	return fi.Size()
}

// checkAuditedUse reads the audit log from offset from for the
// controller's requests: none refused, namespaced ones only in its
// namespace, and every verb rbac.yaml grants used but unexercisedGrants.
// The requests of this run are answered before it ends, but the log line
// may trail the answer: it is read until complete.
func checkAuditedUse(t *testing.T, ctx context.Context, from int64, username string, rbac []*unstructured.Unstructured) {
	t.Helper()
	if from < 0 {
		return
	}
	granted := map[string]bool{}
	for _, kind := range []string{"Role", "ClusterRole"} {
		for _, r := range rulesOf(t, oneOfKind(t, rbac, kind)) {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						granted[grantKey(g, res, v)] = true
					}
				}
			}
		}
	}
	var used map[string]bool
	var problems []string
	var nonResource []string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
		b, err := os.ReadFile(auditLog())
		if err != nil {
			return false, err
		}
		b = b[min(from, int64(len(b))):]
		used, problems, nonResource = map[string]bool{}, nil, nil
		for _, line := range bytes.Split(b, []byte("\n")) {
			var e auditEvent
			if len(line) == 0 || json.Unmarshal(line, &e) != nil || e.User.Username != username || !strings.HasPrefix(e.UserAgent, "upgrade-image-cleanup") {
				continue
			}
			if e.ResponseStatus != nil && (e.ResponseStatus.Code == 401 || e.ResponseStatus.Code == 403) {
				problems = append(problems, fmt.Sprintf("%s %s refused: %d", e.Verb, e.RequestURI, e.ResponseStatus.Code))
			}
			if e.ObjectRef == nil {
				nonResource = append(nonResource, e.Verb+" "+e.RequestURI)
				continue
			}
			res := e.ObjectRef.Resource
			if e.ObjectRef.Subresource != "" {
				res += "/" + e.ObjectRef.Subresource
			}
			key := grantKey(e.ObjectRef.APIGroup, res, e.Verb)
			used[key] = true
			if !granted[key] {
				problems = append(problems, fmt.Sprintf("%s %s: %s is not granted", e.Verb, e.RequestURI, key))
			}
			if e.ObjectRef.Namespace != "" && e.ObjectRef.Namespace != ns {
				problems = append(problems, fmt.Sprintf("%s %s: outside namespace %s", e.Verb, e.RequestURI, ns))
			}
		}
		for k := range granted {
			if !used[k] && unexercisedGrants[k] == "" {
				return false, nil
			}
		}
		return true, nil
	})
	var unused []string
	for k := range granted {
		if !used[k] && unexercisedGrants[k] == "" {
			unused = append(unused, k)
		}
	}
	sort.Strings(unused)
	if err != nil {
		t.Errorf("granted but never used by the run (an unneeded grant, or a new entry for unexercisedGrants): %v (%v)", unused, err)
	}
	for _, p := range problems {
		t.Errorf("audit: %s", p)
	}
	for k, why := range unexercisedGrants {
		if !granted[k] {
			t.Errorf("unexercisedGrants names %s, which rbac.yaml does not grant", k)
		}
		if used[k] {
			t.Logf("%s was used after all (%s)", k, why)
		}
	}
	keys := make([]string, 0, len(used))
	for k := range used {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	slices.Sort(nonResource)
	t.Logf("audited use by %s: %v; non-resource requests (granted to every authenticated user): %v", username, keys, slices.Compact(nonResource))
}

// rulesOf returns a Role's or ClusterRole's rules.
func rulesOf(t *testing.T, o *unstructured.Unstructured) []rbacv1.PolicyRule {
	t.Helper()
	var r rbacv1.ClusterRole // a Role's rules have the same shape
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(map[string]any{"rules": o.Object["rules"]}, &r); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return r.Rules
}

// checkRefusals asks, with the ServiceAccount's token, for what the
// controller must never do: each request is refused by the API server
// (Forbidden), and a SelfSubjectAccessReview for it says not allowed.
// upgrade and job are existing objects, so a refusal is not a NotFound.
func checkRefusals(t *testing.T, ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, upgrade, job string) {
	u, err := env.dynamic.Resource(informers.UpgradeGVR).Namespace(ns).Get(ctx, upgrade, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	merge := []byte(`{"metadata":{"labels":{"e2e-least-privilege":"refused"}}}`)
	cm := func(namespace string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "e2e-least-privilege", Namespace: namespace}}
	}
	jobIn := func(namespace string) *unstructured.Unstructured {
		j := cleanuptest.RemovalJob(upgrade, nodeNames[0])
		j.Namespace = namespace
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(j)
		if err != nil {
			t.Fatal(err)
		}
		return &unstructured.Unstructured{Object: obj}
	}
	jobs := func(namespace string) dynamic.ResourceInterface { return dyn.Resource(jobsGVR).Namespace(namespace) }
	upgrades := dyn.Resource(informers.UpgradeGVR).Namespace(ns)
	for _, tc := range []struct {
		verb, group, resource, namespace string
		do                               func() error
	}{
		{"get", "", "secrets", ns, func() error {
			_, err := kube.CoreV1().Secrets(ns).Get(ctx, "any", metav1.GetOptions{})
			return err
		}},
		{"list", "", "secrets", ns, func() error {
			_, err := kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"delete", "", "pods", ns, func() error {
			return kube.CoreV1().Pods(ns).Delete(ctx, cleanuptest.RepoPodName(upgrade), metav1.DeleteOptions{})
		}},
		{"create", "", "pods", ns, func() error {
			_, err := kube.CoreV1().Pods(ns).Create(ctx, cleanuptest.RepoPod(upgrade+"-x", nodeNames[0], 80), metav1.CreateOptions{})
			return err
		}},
		{"update", "harvesterhci.io", "upgrades", ns, func() error {
			_, err := upgrades.Update(ctx, u, metav1.UpdateOptions{})
			return err
		}},
		{"delete", "harvesterhci.io", "upgrades", ns, func() error {
			return upgrades.Delete(ctx, upgrade, metav1.DeleteOptions{})
		}},
		{"delete", "batch", "jobs", ns, func() error {
			return jobs(ns).Delete(ctx, job, metav1.DeleteOptions{})
		}},
		{"update", "", "configmaps", ns, func() error {
			_, err := kube.CoreV1().ConfigMaps(ns).Update(ctx, cm(ns), metav1.UpdateOptions{})
			return err
		}},
		{"delete", "", "configmaps", ns, func() error {
			return kube.CoreV1().ConfigMaps(ns).Delete(ctx, cleanup.PlanConfigMapName(upgrade), metav1.DeleteOptions{})
		}},
		{"create", "", "configmaps", "default", func() error {
			_, err := kube.CoreV1().ConfigMaps("default").Create(ctx, cm("default"), metav1.CreateOptions{})
			return err
		}},
		{"create", "", "configmaps", "kube-system", func() error {
			_, err := kube.CoreV1().ConfigMaps("kube-system").Create(ctx, cm("kube-system"), metav1.CreateOptions{})
			return err
		}},
		{"patch", "", "configmaps", "kube-system", func() error {
			_, err := kube.CoreV1().ConfigMaps("kube-system").Patch(ctx, "extension-apiserver-authentication", types.MergePatchType, merge, metav1.PatchOptions{})
			return err
		}},
		{"create", "batch", "jobs", "default", func() error {
			_, err := jobs("default").Create(ctx, jobIn("default"), metav1.CreateOptions{})
			return err
		}},
		{"create", "batch", "jobs", "kube-system", func() error {
			_, err := jobs("kube-system").Create(ctx, jobIn("kube-system"), metav1.CreateOptions{})
			return err
		}},
		{"patch", "batch", "jobs", ns, func() error {
			_, err := jobs(ns).Patch(ctx, job, types.MergePatchType, merge, metav1.PatchOptions{})
			return err
		}},
		{"patch", "", "nodes", "", func() error {
			_, err := kube.CoreV1().Nodes().Patch(ctx, nodeNames[0], types.MergePatchType, merge, metav1.PatchOptions{})
			return err
		}},
	} {
		t.Run(accessString(tc.verb, tc.group, tc.resource, tc.namespace), func(t *testing.T) {
			if err := tc.do(); !apierrors.IsForbidden(err) {
				t.Errorf("got %v, want Forbidden from the API server", err)
			}
			if allowed := accessReview(t, ctx, kube, tc.verb, tc.group, tc.resource, tc.namespace); allowed {
				t.Error("SelfSubjectAccessReview: allowed")
			}
		})
	}
}

// checkGrants asks for every verb the Role and ClusterRole grant with a
// SelfSubjectAccessReview, as the controller's startup check does: the
// control that the refusals come from the rules, not from a token that can
// do nothing.
func checkGrants(t *testing.T, ctx context.Context, kube kubernetes.Interface, rbac []*unstructured.Unstructured) {
	for _, kind := range []string{"Role", "ClusterRole"} {
		o := oneOfKind(t, rbac, kind)
		for _, r := range rulesOf(t, o) {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						if !accessReview(t, ctx, kube, v, g, res, o.GetNamespace()) {
							t.Errorf("%s %s grants %s, but a SelfSubjectAccessReview says not allowed", kind, o.GetName(), accessString(v, g, res, o.GetNamespace()))
						}
					}
				}
			}
		}
	}
}

// accessString reads as kubectl auth can-i: "create jobs.batch in default".
func accessString(verb, group, resource, namespace string) string {
	if group != "" {
		resource += "." + group
	}
	if namespace == "" {
		return verb + " " + resource + " (cluster-wide)"
	}
	return verb + " " + resource + " in " + namespace
}

func accessReview(t *testing.T, ctx context.Context, kube kubernetes.Interface, verb, group, resource, namespace string) bool {
	t.Helper()
	r, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: verb, Group: group, Resource: resource, Namespace: namespace,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectAccessReview %s %s.%s: %v", verb, resource, group, err)
	}
	return r.Status.Allowed
}
