//go:build e2e

package e2e

import (
	"context"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// policyRefusal is the API server's answer when a ValidatingAdmissionPolicy
// refuses a request, with our policies' messages: the policy, then the
// rule the message names.
var policyRefusal = regexp.MustCompile(`ValidatingAdmissionPolicy '([^']+)' with binding '[^']+' denied request: upgrade-image-cleanup policy: rule ([A-Za-z]+): `)

// refusingRule returns the rule of policy that refused the request err
// answers, or "" when err is no refusal by that policy.
func refusingRule(err error, policy string) string {
	if err == nil {
		return ""
	}
	m := policyRefusal.FindStringSubmatch(err.Error())
	if m == nil || m[1] != policy {
		return ""
	}
	return m[2]
}

// removalJobPolicies returns the names of rbac's two policies: the removal
// Jobs' (the one with parameters) and the one guarding its parameters.
func removalJobPolicies(t *testing.T, rbac []*unstructured.Unstructured) (jobs, guard string) {
	t.Helper()
	for _, o := range rbac {
		if o.GetKind() != "ValidatingAdmissionPolicy" {
			continue
		}
		if _, withParams, _ := unstructured.NestedMap(o.Object, "spec", "paramKind"); withParams {
			jobs = o.GetName()
		} else {
			guard = o.GetName()
		}
	}
	if jobs == "" || guard == "" {
		t.Fatalf("%s: want the removal Jobs' policy and the one guarding its parameters, found %q and %q", rbacManifest, jobs, guard)
	}
	return jobs, guard
}

// asNewJob is the controller's stored Job j as a new Job to create, with a
// name of its own: what the API server adds dropped (selector and its
// labels, status), and the Upgrade label naming an Upgrade that does not
// exist, so that the controller takes it for none of its own. The owner
// reference, the plan ConfigMap, stays: the policy's rule plan asks for it.
func asNewJob(j *batchv1.Job) *batchv1.Job {
	n := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: uniqueName("e2e-policy"), Namespace: j.Namespace, Labels: maps.Clone(j.Labels), Annotations: maps.Clone(j.Annotations),
			OwnerReferences: slices.Clone(j.OwnerReferences),
		},
		Spec: *j.Spec.DeepCopy(),
	}
	n.Spec.Selector, n.Spec.ManualSelector = nil, nil
	for _, l := range []map[string]string{n.Labels, n.Spec.Template.Labels} {
		for _, k := range []string{"controller-uid", batchv1.ControllerUidLabel, "job-name", batchv1.JobNameLabel} {
			delete(l, k)
		}
		l[informers.UpgradeLabel] = "e2e-admission-policy"
	}
	return n
}

// TestAdmissionPolicy runs deploy/ as it is, the removal Jobs' admission
// policy included, on the real API server: the policy is enforced before
// the controller starts (a dry-run Job with another image, created with the
// ServiceAccount's token, is refused), and then (a) the controller's own
// cleanup still reaches Succeeded; (b) Jobs that differ from the
// controller's own by another image, another command, an extra hostPath,
// privileged, another ServiceAccount, no node, an extra remover flag, the
// plan mounted read-write, another ConfigMap named, the plan executable over
// the command's folder, an exec probe or the termination message over a
// plan key are refused to its
// ServiceAccount, 403 Forbidden, by the rule the message names; (c) the
// admin creates the same Jobs. Then the parameters: the controller may
// not write them; while they are missing every Job in the namespace is
// refused (the admin's too, none elsewhere), and once they are back the
// controller's Job is admitted again.
func TestAdmissionPolicy(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	applied := time.Now()
	rbac, deployment, mapper := applyDeploy(t, ctx)
	sa := oneOfKind(t, rbac, "ServiceAccount")
	dep := oneOfKind(t, deployment, "Deployment")
	policy, guard := removalJobPolicies(t, rbac)
	params := policyParams(t, rbac, deployment)
	if params == nil {
		t.Fatalf("%s: the removal Jobs' policy has no parameters in %s", rbacManifest, deploymentManifest)
	}
	kubeconfig, saConfig := serviceAccountKubeconfig(t, ctx, sa)
	saKube := kubernetes.NewForConfigOrDie(saConfig)
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}

	// The API server loads policies, bindings and parameters through
	// informers: enforced a moment after the apply. A Job the controller
	// never builds (another image, no command) is tried, as a dry run,
	// until the policy refuses it by its image rule, which reads the
	// parameters.
	probe := cleanuptest.RemovalJob("e2e-admission-policy", nodeNames[0])
	waitFor(t, ctx, "the removal Jobs' policy to refuse a Job with another image", 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := saKube.BatchV1().Jobs(ns).Create(ctx, probe, dryRun)
		return refusingRule(err, policy) == "image", nil
	})
	t.Logf("the policy is enforced %v after the apply", time.Since(applied).Round(time.Millisecond))

	// (a) The controller's own Jobs pass.
	run := runCleanupAs(t, ctx, kubeconfig, dep, 51)
	if log := run.ctl.log(); strings.Contains(strings.ToLower(log), "forbidden") || strings.Contains(log, "denied request") {
		t.Error("the controller's log shows a request refused (the log is printed below)")
	}
	base := asNewJob(run.jobs[nodeNames[0]])
	if _, err := saKube.BatchV1().Jobs(ns).Create(ctx, base, dryRun); err != nil {
		t.Fatalf("the controller's own Job, created again with its token (dry run): %v", err)
	}

	// (b) and (c).
	container := func(j *batchv1.Job) *corev1.Container { return &j.Spec.Template.Spec.Containers[0] }
	for _, tc := range []struct {
		what   string
		mutate func(j *batchv1.Job)
		rule   string
	}{
		{"another image", func(j *batchv1.Job) { container(j).Image = "docker.io/library/busybox:latest" }, "image"},
		{"another command", func(j *batchv1.Job) { container(j).Command = []string{"/bin/sh", "-c", "chroot /host"} }, "command"},
		{"an extra hostPath", func(j *batchv1.Job) {
			j.Spec.Template.Spec.Volumes = append(j.Spec.Template.Spec.Volumes, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/", Type: ptr.To(corev1.HostPathDirectory)},
			}})
			container(j).VolumeMounts = append(container(j).VolumeMounts, corev1.VolumeMount{Name: "host", MountPath: "/host"})
		}, "volumes"},
		{"privileged", func(j *batchv1.Job) {
			// The server's validation refuses privileged with
			// allowPrivilegeEscalation false, before any admission.
			sc := container(j).SecurityContext
			sc.Privileged, sc.AllowPrivilegeEscalation = ptr.To(true), nil
		}, "privileged"},
		{"another ServiceAccount", func(j *batchv1.Job) { j.Spec.Template.Spec.ServiceAccountName = "harvester" }, "serviceAccount"},
		{"no node", func(j *batchv1.Job) { j.Spec.Template.Spec.NodeName = "" }, "nodeName"},
		{"a dry run", func(j *batchv1.Job) { container(j).Args = append(container(j).Args, "--dry-run=true") }, "arguments"},
		{"the plan mounted read-write", func(j *batchv1.Job) { container(j).VolumeMounts[0].ReadOnly = false }, "plan"},
		{"another ConfigMap named", func(j *batchv1.Job) {
			c := container(j)
			c.Args = slices.DeleteFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--plan-configmap=") })
			c.Args = append(c.Args, "--plan-configmap=other-image-cleanup")
		}, "plan"},
		{"the plan executable over the command's folder", func(j *batchv1.Job) {
			c := container(j)
			j.Spec.Template.Spec.Volumes[0].ConfigMap.DefaultMode = ptr.To[int32](0o755)
			c.VolumeMounts[0].MountPath = "/usr/local/bin"
			c.Args = slices.DeleteFunc(c.Args, func(a string) bool {
				return strings.HasPrefix(a, "--plan=") || strings.HasPrefix(a, "--keep=")
			})
			c.Args = append(c.Args, "--plan=/usr/local/bin/images.txt", "--keep=/usr/local/bin/keep.txt")
		}, "plan"},
		{"an exec probe", func(j *batchv1.Job) {
			container(j).StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/usr/local/bin/upgrade-image-cleanup"}}}}
		}, "probes"},
		{"the termination message over a plan key", func(j *batchv1.Job) {
			container(j).TerminationMessagePath = "/etc/image-cleanup/images.txt"
		}, "terminationMessage"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			j := base.DeepCopy()
			j.Name = uniqueName("e2e-policy")
			tc.mutate(j)
			_, err := saKube.BatchV1().Jobs(ns).Create(ctx, j, metav1.CreateOptions{})
			if apierrors.IsInvalid(err) && strings.Contains(err.Error(), "disallowed by cluster policy") {
				// A cluster hack/local-cluster did not start: without
				// --allow-privileged, validation refuses it to everyone.
				t.Skipf("the API server refuses privileged containers to everyone (--allow-privileged=false): %v", err)
			}
			switch rule := refusingRule(err, policy); {
			case err == nil:
				deleteJobOnCleanup(t, j.Name)
				t.Errorf("the ServiceAccount created it")
			case !apierrors.IsForbidden(err):
				t.Errorf("%v, want 403 Forbidden from the policy", err)
			case rule != tc.rule:
				t.Errorf("refused by rule %q, want %q: %v", rule, tc.rule, err)
			default:
				t.Logf("refused: %v", err)
			}
			if _, err := env.kube.BatchV1().Jobs(ns).Create(ctx, j, metav1.CreateOptions{}); err != nil {
				t.Errorf("the admin's Job is refused: %v", err)
			} else {
				deleteJobOnCleanup(t, j.Name)
			}
		})
	}

	t.Run("parameters", func(t *testing.T) {
		// The controller may create ConfigMaps here, but not these.
		forged := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: params.GetName(), Namespace: params.GetNamespace()},
			Data:       map[string]string{"image": "docker.io/library/busybox:latest", "command": "/bin/sh", "runtimeSocket": "/"},
		}
		_, err := saKube.CoreV1().ConfigMaps(ns).Create(ctx, forged, metav1.CreateOptions{})
		if rule := refusingRule(err, guard); rule != "parameters" || !apierrors.IsForbidden(err) {
			t.Errorf("the ServiceAccount writing the parameters: %v, want 403 Forbidden by %s's rule parameters", err, guard)
		}
		other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: uniqueName("e2e-policy"), Namespace: ns}}
		if _, err := saKube.CoreV1().ConfigMaps(ns).Create(ctx, other, dryRun); err != nil {
			t.Errorf("the ServiceAccount creating another ConfigMap (dry run): %v", err)
		}

		// Missing parameters refuse every Job in the namespace
		// (parameterNotFoundAction: Deny; they are looked up before
		// matchConditions), and only there.
		if err := env.kube.CoreV1().ConfigMaps(params.GetNamespace()).Delete(ctx, params.GetName(), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// kube-apiserver 1.37 answers 403: "policy '<name>' with binding
		// '<name>' denied request: failed to configure binding: no params
		// found for policy binding with `Deny` parameterNotFoundAction".
		noParams := func(err error) bool {
			return (apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) && strings.Contains(err.Error(), "'"+policy+"'") && strings.Contains(err.Error(), "no params found")
		}
		waitFor(t, ctx, "the controller's own Job to be refused without the parameters", 30*time.Second, func(ctx context.Context) (bool, error) {
			_, err := saKube.BatchV1().Jobs(ns).Create(ctx, base, dryRun)
			return noParams(err), nil
		})
		if _, err := env.kube.BatchV1().Jobs(ns).Create(ctx, base, dryRun); !noParams(err) {
			t.Errorf("the admin's Job in %s without the parameters: %v, want refused for want of them", ns, err)
		}
		elsewhere := base.DeepCopy()
		elsewhere.Namespace = metav1.NamespaceDefault
		if _, err := env.kube.BatchV1().Jobs(metav1.NamespaceDefault).Create(ctx, elsewhere, dryRun); err != nil {
			t.Errorf("the admin's Job in %s without the parameters: %v, want it admitted", metav1.NamespaceDefault, err)
		}
		if _, err := saKube.CoreV1().ConfigMaps(ns).Create(ctx, forged, metav1.CreateOptions{}); refusingRule(err, guard) != "parameters" {
			t.Errorf("the ServiceAccount writing the missing parameters: %v, want refused by %s's rule parameters", err, guard)
		}

		// Back again.
		if _, err := serverSideApply(ctx, mapper, params); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "the controller's own Job to be admitted with the parameters back", 30*time.Second, func(ctx context.Context) (bool, error) {
			_, err := saKube.BatchV1().Jobs(ns).Create(ctx, base, dryRun)
			return err == nil, nil
		})
	})
}

// deleteJobOnCleanup deletes the Job name (and its pods, if any) when the
// test ends.
func deleteJobOnCleanup(t *testing.T, name string) {
	t.Cleanup(func() {
		err := env.kube.BatchV1().Jobs(ns).Delete(context.Background(), name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete Job %s: %v", name, err)
		}
	})
}
