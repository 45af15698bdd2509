package main

import (
	"context"
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// policyMessage is how every rule's message starts: the rule's name
// follows, then a colon.
var policyMessage = regexp.MustCompile(`^upgrade-image-cleanup policy: rule ([A-Za-z]+): `)

// policyRules are the policy's validations by name, in their order.
var policyRules = []string{
	"labels", "containers", "image", "command", "env", "volumes", "serviceAccount",
	"privileged", "capabilities", "privilegeEscalation", "hostNamespaces", "nodeName", "arguments", "plan", "probes", "terminationMessage",
}

// policyObjects are the removal Jobs' admission policy of one render: the
// policy, its binding and its parameters, and the policy guarding them.
type policyObjects struct {
	policy       *admissionregistrationv1.ValidatingAdmissionPolicy
	binding      *admissionregistrationv1.ValidatingAdmissionPolicyBinding
	params       *corev1.ConfigMap
	guard        *admissionregistrationv1.ValidatingAdmissionPolicy
	guardBinding *admissionregistrationv1.ValidatingAdmissionPolicyBinding
}

// policyOf returns the policy objects of a render whose objects are named
// fullname.
func policyOf(t *testing.T, objs []object, fullname string) policyObjects {
	t.Helper()
	name := fullname + "-removal-jobs"
	return policyObjects{
		policy:       find[*admissionregistrationv1.ValidatingAdmissionPolicy](t, objs, "ValidatingAdmissionPolicy", "", name),
		binding:      find[*admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, objs, "ValidatingAdmissionPolicyBinding", "", name),
		params:       find[*corev1.ConfigMap](t, objs, "ConfigMap", releaseNamespace, name),
		guard:        find[*admissionregistrationv1.ValidatingAdmissionPolicy](t, objs, "ValidatingAdmissionPolicy", "", name+"-params"),
		guardBinding: find[*admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, objs, "ValidatingAdmissionPolicyBinding", "", name+"-params"),
	}
}

// renders are the two renders the policy is checked on: the defaults (as
// deploy/ holds them) and every value away from its default.
func renders(t *testing.T) []struct {
	name, fullname string
	objs           []object
} {
	t.Helper()
	_, all := everything(t)
	return []struct {
		name, fullname string
		objs           []object
	}{
		{"defaults", releaseName, parse(t, "defaults", mustInstall(t, chartForTest(t), nil).Manifest)},
		{"everything", "cleanup", all},
	}
}

// TestRemovalJobPolicyRenders: the policy matches Jobs created or updated
// by the controller's ServiceAccount, and nothing else; it fails closed
// (an expression that errs refuses, missing parameters refuse); its
// binding denies and names the ConfigMap of parameters; every validation
// names its rule in its message, and the rules are the documented ones.
func TestRemovalJobPolicyRenders(t *testing.T) {
	for _, r := range renders(t) {
		t.Run(r.name, func(t *testing.T) {
			p := policyOf(t, r.objs, r.fullname)
			sa := find[*corev1.ServiceAccount](t, r.objs, "ServiceAccount", releaseNamespace, r.fullname)
			d := find[*appsv1.Deployment](t, r.objs, "Deployment", releaseNamespace, r.fullname)
			if d.Spec.Template.Spec.ServiceAccountName != sa.Name {
				t.Fatalf("the Deployment runs as %q, not the ServiceAccount %s", d.Spec.Template.Spec.ServiceAccountName, sa.Name)
			}
			spec := p.policy.Spec
			if spec.FailurePolicy == nil || *spec.FailurePolicy != admissionregistrationv1.Fail {
				t.Errorf("failurePolicy %v, want Fail: with Ignore, an error or missing parameters would let any Job through", spec.FailurePolicy)
			}
			if spec.ParamKind == nil || *spec.ParamKind != (admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"}) {
				t.Errorf("paramKind %+v, want v1 ConfigMap", spec.ParamKind)
			}
			wantRules := []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"batch"}, APIVersions: []string{"v1"}, Resources: []string{"jobs"}},
			}}}
			// Only --namespace: while the parameters are missing, every
			// Job matched is refused, whoever creates it.
			jobNamespace := args(t, controller(t, d).Args)["namespace"]
			wantNamespaces := &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: jobNamespace}}
			if mc := spec.MatchConstraints; mc == nil || !equalJSON(mc.ResourceRules, wantRules) || !equalJSON(mc.NamespaceSelector, wantNamespaces) || mc.ObjectSelector != nil {
				t.Errorf("matchConstraints %+v, want the resource rules %+v in namespace %s", mc, wantRules, jobNamespace)
			}
			wantUser := serviceaccount.MakeUsername(sa.Namespace, sa.Name)
			wantMatch := []admissionregistrationv1.MatchCondition{{Name: "controller-service-account", Expression: "request.userInfo.username == '" + wantUser + "'"}}
			if !equalJSON(spec.MatchConditions, wantMatch) {
				t.Errorf("matchConditions %+v, want %+v", spec.MatchConditions, wantMatch)
			}
			var names []string
			for i, v := range spec.Validations {
				m := policyMessage.FindStringSubmatch(v.Message)
				if m == nil {
					t.Errorf("validation %d: message %q does not match %s", i, v.Message, policyMessage)
					continue
				}
				names = append(names, m[1])
				if v.MessageExpression != "" && !strings.HasPrefix(v.MessageExpression, "'"+m[0]) {
					t.Errorf("rule %s: messageExpression %q does not start with its message's %q", m[1], v.MessageExpression, m[0])
				}
				if v.Reason == nil || *v.Reason != metav1.StatusReasonForbidden {
					t.Errorf("rule %s: reason %v, want Forbidden", m[1], v.Reason)
				}
			}
			if !slices.Equal(names, policyRules) {
				t.Errorf("rules %v, want %v", names, policyRules)
			}

			b := p.binding.Spec
			if b.PolicyName != p.policy.Name {
				t.Errorf("the binding binds %q, not %s", b.PolicyName, p.policy.Name)
			}
			if !slices.Equal(b.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) {
				t.Errorf("validationActions %v, want [Deny]", b.ValidationActions)
			}
			want := admissionregistrationv1.ParamRef{Name: p.params.Name, Namespace: p.params.Namespace, ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction)}
			if b.ParamRef == nil || !equalJSON(*b.ParamRef, want) {
				t.Errorf("paramRef %+v, want %+v", b.ParamRef, want)
			}
			if b.MatchResources != nil {
				t.Errorf("the binding narrows the policy's match: %+v", b.MatchResources)
			}
		})
	}
}

func equalJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// TestRemovalJobPolicyParamsAreTheFlags: the parameters are the
// Deployment's --remover-image, --remover-command and --runtime-socket,
// or the binary's defaults where the chart writes no flag, so the policy
// admits exactly the Jobs this controller builds.
func TestRemovalJobPolicyParamsAreTheFlags(t *testing.T) {
	defaults := binaryFlags(t)
	for _, r := range renders(t) {
		t.Run(r.name, func(t *testing.T) {
			p := policyOf(t, r.objs, r.fullname)
			a := args(t, controller(t, find[*appsv1.Deployment](t, r.objs, "Deployment", releaseNamespace, r.fullname)).Args)
			flag := func(name string) string {
				if v, ok := a[name]; ok {
					return v
				}
				return defaults[name]
			}
			want := map[string]string{
				"image":         flag("remover-image"),
				"command":       flag("remover-command"),
				"runtimeSocket": flag("runtime-socket"),
			}
			if want["image"] == "" || want["command"] == "" || want["runtimeSocket"] == "" {
				t.Fatalf("a flag has no value: %v", want)
			}
			if !maps.Equal(p.params.Data, want) || len(p.params.BinaryData) > 0 {
				t.Errorf("parameters %v, want the flags' %v", p.params.Data, want)
			}
		})
	}
}

// TestRemovalJobPolicyOff: removalJobPolicy.enabled false renders none of
// the five objects and changes nothing else.
func TestRemovalJobPolicyOff(t *testing.T) {
	on := parse(t, "on", mustInstall(t, chartForTest(t), nil).Manifest)
	off := parse(t, "off", mustInstall(t, chartForTest(t), map[string]any{"removalJobPolicy": map[string]any{"enabled": false}}).Manifest)
	policy := policyOf(t, on, releaseName)
	isPolicy := func(o object) bool {
		switch o.kind {
		case "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			return o.u.GetName() == policy.policy.Name || o.u.GetName() == policy.guard.Name
		case "ConfigMap":
			return o.u.GetName() == policy.params.Name
		}
		return false
	}
	want := slices.DeleteFunc(slices.Clone(on), isPolicy)
	if len(want) != len(on)-5 {
		t.Fatalf("the default render holds %d objects of the policy, want 5", len(on)-len(want))
	}
	if len(off) != len(want) {
		t.Errorf("off: %v, want %v", kinds(off), kinds(want))
	}
	for i := range min(len(off), len(want)) {
		if off[i].kind != want[i].kind || !equalJSON(off[i].u.Object, want[i].u.Object) {
			t.Errorf("off: object %d is %s %s, want %s %s as in the default render", i, off[i].kind, off[i].u.GetName(), want[i].kind, want[i].u.GetName())
		}
	}
}

// evaluator evaluates a policy as kube-apiserver's ValidatingAdmissionPolicy
// plugin does (k8s.io/apiserver's validating.compilePolicy, whose
// composition of compilers this repeats), with the environment the API
// server checks a new policy's expressions against.
type evaluator struct {
	policy    *admissionregistrationv1.ValidatingAdmissionPolicy
	validator validating.Validator
}

func compilePolicy(t *testing.T, p *admissionregistrationv1.ValidatingAdmissionPolicy) evaluator {
	t.Helper()
	const mode = environment.NewExpressions
	hasParams := p.Spec.ParamKind != nil
	vars := plugincel.OptionalVariableDeclarations{HasParams: hasParams, HasAuthorizer: true}
	messageVars := plugincel.OptionalVariableDeclarations{HasParams: hasParams}
	c, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		t.Fatal(err)
	}
	compile := func(what string, e plugincel.ExpressionAccessor, opts plugincel.OptionalVariableDeclarations) {
		if r := c.CompileCELExpression(e, opts, mode); r.Error != nil {
			t.Fatalf("%s %q does not compile: %v", what, e.GetExpression(), r.Error)
		}
	}
	for _, v := range p.Spec.Variables {
		variable := &validating.Variable{Name: v.Name, Expression: v.Expression}
		if r := c.CompileAndStoreVariable(variable, vars, mode); r.Error != nil {
			t.Fatalf("variable %s %q does not compile: %v", v.Name, v.Expression, r.Error)
		}
	}
	var matches []plugincel.ExpressionAccessor
	for i := range p.Spec.MatchConditions {
		mc := (*matchconditions.MatchCondition)(&p.Spec.MatchConditions[i])
		compile("matchCondition", mc, vars)
		matches = append(matches, mc)
	}
	var validations, messages []plugincel.ExpressionAccessor
	for _, v := range p.Spec.Validations {
		condition := &validating.ValidationCondition{Expression: v.Expression, Message: v.Message, Reason: v.Reason}
		compile("validation", condition, vars)
		validations = append(validations, condition)
		var message plugincel.ExpressionAccessor
		if v.MessageExpression != "" {
			m := &validating.MessageExpressionCondition{MessageExpression: v.MessageExpression}
			compile("messageExpression", m, messageVars)
			message = m
		}
		messages = append(messages, message)
	}
	if len(p.Spec.AuditAnnotations) > 0 {
		t.Fatal("auditAnnotations are not evaluated by this test")
	}
	matcher := matchconditions.NewMatcher(c.CompileCondition(matches, vars, mode), p.Spec.FailurePolicy, "policy", "validate", p.Name)
	return evaluator{policy: p, validator: validating.NewValidator(
		c.CompileCondition(validations, vars, mode), matcher,
		c.CompileCondition(nil, vars, mode), c.CompileCondition(messages, messageVars, mode),
		p.Spec.FailurePolicy, nil)}
}

// noOpinion is the authorizer the expressions get: they use none.
var noOpinion = authorizer.AuthorizerFunc(func(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
	return authorizer.DecisionNoOpinion, "", nil
})

// denials evaluates a request of username creating (or updating from old)
// job with params, and returns the messages of the validations that refuse
// it, in order; nil when the policy does not match (matchConditions) or
// every rule admits. An evaluation error fails the test: the rules must
// decide, not err.
func (e evaluator) denials(t *testing.T, username string, op admission.Operation, job, old *batchv1.Job, params *corev1.ConfigMap) []string {
	t.Helper()
	var oldObj runtime.Object
	if old != nil {
		oldObj = old
	}
	return e.evaluate(t, username, op, batchv1.SchemeGroupVersion.WithKind("Job"), job, oldObj, params)
}

// evaluate is denials for an object of any kind; params may be nil.
func (e evaluator) evaluate(t *testing.T, username string, op admission.Operation, gvk schema.GroupVersionKind, obj, old runtime.Object, params *corev1.ConfigMap) []string {
	t.Helper()
	gvr, _ := meta.UnsafeGuessKindToResource(gvk)
	m, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	attr := admission.NewAttributesRecord(obj, old, gvk, m.GetNamespace(), m.GetName(), gvr, "", op, &metav1.CreateOptions{}, false, &user.DefaultInfo{Name: username})
	versioned := &admission.VersionedAttributes{Attributes: attr, VersionedKind: gvk, VersionedObject: admission.NewLazyObject(obj)}
	if old != nil {
		versioned.VersionedOldObject = admission.NewLazyObject(old)
	}
	var versionedParams runtime.Object
	if params != nil {
		versionedParams = params
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: m.GetNamespace()}}
	result := e.validator.Validate(context.Background(), gvr, versioned, versionedParams, ns, celconfig.RuntimeCELCostBudget, noOpinion)
	var out []string
	for _, d := range result.Decisions {
		switch {
		case d.Evaluation == validating.EvalError:
			t.Fatalf("policy %s: evaluation error: %s", e.policy.Name, d.Message)
		case d.Action == validating.ActionDeny:
			out = append(out, d.Message)
		}
	}
	return out
}

// removalOptions are the options the controller builds its Jobs with from
// the Deployment's arguments a (the binary's defaults elsewhere).
func removalOptions(t *testing.T, a map[string]string) cleanup.RemovalOptions {
	t.Helper()
	o := cleanup.DefaultRemovalOptions()
	o.RemoverImage = a["remover-image"]
	if v, ok := a["remover-command"]; ok {
		o.RemoverCommand = strings.Split(v, ",")
	}
	if v, ok := a["runtime-socket"]; ok {
		o.SocketPath = v
	}
	if v, ok := a["removal-tolerations"]; ok {
		if err := json.Unmarshal([]byte(v), &o.Tolerations); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok := a["image-fs-threshold"]; ok {
		q := resource.MustParse(v)
		o.ImageFsThreshold = uint64(q.Value())
	}
	o.MatchOtherRegistries = a["match-other-registries"] != "false"
	o.PruneDangling = a["prune-dangling"] == "true"
	if err := o.Validate(); err != nil {
		t.Fatalf("the Deployment's removal options: %v", err)
	}
	return o
}

// removalJob is the Job the controller of a render creates for an
// Upgrade on a node: cleanup.RemovalJob, with a re-run's label when run
// is set.
func removalJob(t *testing.T, objs []object, fullname, run string) *batchv1.Job {
	t.Helper()
	a := args(t, controller(t, find[*appsv1.Deployment](t, objs, "Deployment", releaseNamespace, fullname)).Args)
	u := cleanup.Upgrade{Namespace: a["namespace"], Name: "hvst-upgrade-x7k2p", UID: "u-1", Version: "v1.5.0", PreviousVersion: "v1.4.2", Completed: true}
	if run != "" {
		u.Annotations = map[string]string{cleanup.RunIDAnnotation: run}
	}
	plan := cleanup.PlanRef{Namespace: u.Namespace, ConfigMap: cleanup.PlanConfigMapName(u.Name), UID: "p-1", Digest: "sha256:" + strings.Repeat("0", 64)}
	return cleanup.RemovalJob(u, plan, "harvester-node-0", removalOptions(t, a))
}

// TestRemovalJobPolicyAdmitsRemovalJobs evaluates the policy's CEL
// against the Jobs cleanup.RemovalJob builds with the Deployment's flags,
// on both renders: every rule admits them (first run and re-run, created
// and updated). The same Jobs from another user are not even matched.
func TestRemovalJobPolicyAdmitsRemovalJobs(t *testing.T) {
	for _, r := range renders(t) {
		t.Run(r.name, func(t *testing.T) {
			p := policyOf(t, r.objs, r.fullname)
			e := compilePolicy(t, p.policy)
			controllerUser := serviceaccount.MakeUsername(releaseNamespace, r.fullname)
			for _, run := range []string{"", "0123456789abcdef"} {
				job := removalJob(t, r.objs, r.fullname, run)
				if got := e.denials(t, controllerUser, admission.Create, job, nil, p.params); len(got) > 0 {
					t.Errorf("run %q: the controller's own Job is refused: %q", run, got)
				}
				if got := e.denials(t, controllerUser, admission.Update, job, job.DeepCopy(), p.params); len(got) > 0 {
					t.Errorf("run %q: an update of the controller's own Job is refused: %q", run, got)
				}
			}
		})
	}
}

// TestRemovalJobPolicyRefuses: each change to the controller's own Job
// that the policy exists to stop is refused by its rule, named in the
// message (the API server answers with the first refusing rule's), and by
// no rule it has nothing to do with. The same Job from any other user is
// not matched.
func TestRemovalJobPolicyRefuses(t *testing.T) {
	r := renders(t)[0]
	p := policyOf(t, r.objs, r.fullname)
	e := compilePolicy(t, p.policy)
	controllerUser := serviceaccount.MakeUsername(releaseNamespace, r.fullname)
	pod := func(j *batchv1.Job) *corev1.PodSpec { return &j.Spec.Template.Spec }
	c := func(j *batchv1.Job) *corev1.Container { return &j.Spec.Template.Spec.Containers[0] }
	sc := func(j *batchv1.Job) *corev1.SecurityContext { return c(j).SecurityContext }
	hostPath := func(name, path string, typ corev1.HostPathType) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: ptr.To(typ)}}}
	}
	for _, tc := range []struct {
		what   string
		mutate func(j *batchv1.Job)
		rules  []string // the refusing rules, the first one's message is the answer
		want   string   // in the first message
	}{
		{"no component label", func(j *batchv1.Job) { delete(j.Labels, "harvesterhci.io/upgradeComponent") }, []string{"labels"}, ""},
		{"another component", func(j *batchv1.Job) { j.Labels["harvesterhci.io/upgradeComponent"] = "repo" }, []string{"labels"}, ""},
		{"no upgrade label on the pod", func(j *batchv1.Job) { delete(j.Spec.Template.Labels, "harvesterhci.io/upgrade") }, []string{"labels"}, ""},
		{"no labels on the pod", func(j *batchv1.Job) { j.Spec.Template.Labels = nil }, []string{"labels"}, ""},
		{"a second container", func(j *batchv1.Job) {
			extra := *c(j).DeepCopy()
			extra.Name = "sidecar"
			pod(j).Containers = append(pod(j).Containers, extra)
		}, []string{"containers"}, ""},
		{"an init container", func(j *batchv1.Job) {
			pod(j).InitContainers = []corev1.Container{{Name: "init", Image: "busybox", Command: []string{"sh", "-c", "chroot /host"}}}
		}, []string{"containers"}, ""},
		{"an ephemeral container", func(j *batchv1.Job) {
			pod(j).EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}}
		}, []string{"containers"}, ""},
		{"another image", func(j *batchv1.Job) { c(j).Image = "docker.io/library/busybox:latest" }, []string{"image"}, "the configured remover image " + p.params.Data["image"]},
		{"another command", func(j *batchv1.Job) { c(j).Command = []string{"/bin/sh", "-c", "id"} }, []string{"command"}, "the configured remover command " + p.params.Data["command"]},
		{"the image's entrypoint", func(j *batchv1.Job) { c(j).Command = nil }, []string{"command"}, ""},
		{"an extra word", func(j *batchv1.Job) { c(j).Command = append(c(j).Command, "--x") }, []string{"command"}, ""},
		{"the command's words in one", func(j *batchv1.Job) { c(j).Command = []string{strings.Join(c(j).Command, ",") + ","} }, []string{"command"}, ""},
		{"an environment variable", func(j *batchv1.Job) {
			c(j).Env = []corev1.EnvVar{{Name: "LD_PRELOAD", Value: "/etc/image-cleanup/x.so"}}
		}, []string{"env"}, ""},
		{"environment from a ConfigMap", func(j *batchv1.Job) {
			c(j).EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "x"}}}}
		}, []string{"env"}, ""},
		{"the host's root", func(j *batchv1.Job) {
			pod(j).Volumes = append(pod(j).Volumes, hostPath("host", "/", corev1.HostPathDirectory))
		}, []string{"volumes"}, "the runtime socket " + p.params.Data["runtimeSocket"] + " as a hostPath of type Socket"},
		{"another socket", func(j *batchv1.Job) {
			pod(j).Volumes[1] = hostPath("cri-socket", "/run/docker.sock", corev1.HostPathSocket)
		}, []string{"volumes"}, ""},
		{"the socket as any type", func(j *batchv1.Job) { pod(j).Volumes[1].HostPath.Type = nil }, []string{"volumes"}, ""},
		{"the socket's folder", func(j *batchv1.Job) {
			pod(j).Volumes[1] = hostPath("cri-socket", "/run/k3s/containerd", corev1.HostPathDirectory)
		}, []string{"volumes"}, ""},
		{"an emptyDir", func(j *batchv1.Job) {
			pod(j).Volumes = append(pod(j).Volumes, corev1.Volume{Name: "x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		}, []string{"volumes"}, ""},
		{"a Secret", func(j *batchv1.Job) {
			pod(j).Volumes = append(pod(j).Volumes, corev1.Volume{Name: "x", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "x"}}})
		}, []string{"volumes"}, ""},
		{"a projected token", func(j *batchv1.Job) {
			pod(j).Volumes = append(pod(j).Volumes, corev1.Volume{Name: "x", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}},
			}}})
		}, []string{"volumes"}, ""},
		{"another ServiceAccount", func(j *batchv1.Job) { pod(j).ServiceAccountName = "harvester" }, []string{"serviceAccount"}, ""},
		{"another ServiceAccount, old field", func(j *batchv1.Job) { pod(j).DeprecatedServiceAccount = "harvester" }, []string{"serviceAccount"}, ""},
		{"a mounted token", func(j *batchv1.Job) { pod(j).AutomountServiceAccountToken = ptr.To(true) }, []string{"serviceAccount"}, ""},
		{"the token left to the ServiceAccount", func(j *batchv1.Job) { pod(j).AutomountServiceAccountToken = nil }, []string{"serviceAccount"}, ""},
		{"privileged", func(j *batchv1.Job) { sc(j).Privileged = ptr.To(true); sc(j).AllowPrivilegeEscalation = nil }, []string{"privileged", "privilegeEscalation"}, ""},
		{"an added capability", func(j *batchv1.Job) { sc(j).Capabilities.Add = []corev1.Capability{"SYS_ADMIN"} }, []string{"capabilities"}, ""},
		{"capabilities kept", func(j *batchv1.Job) { sc(j).Capabilities = nil }, []string{"capabilities"}, ""},
		{"no security context", func(j *batchv1.Job) { c(j).SecurityContext = nil }, []string{"capabilities", "privilegeEscalation"}, ""},
		{"privilege escalation", func(j *batchv1.Job) { sc(j).AllowPrivilegeEscalation = ptr.To(true) }, []string{"privilegeEscalation"}, ""},
		{"the host's network", func(j *batchv1.Job) { pod(j).HostNetwork = true }, []string{"hostNamespaces"}, ""},
		{"the host's PIDs", func(j *batchv1.Job) { pod(j).HostPID = true }, []string{"hostNamespaces"}, ""},
		{"the host's IPC", func(j *batchv1.Job) { pod(j).HostIPC = true }, []string{"hostNamespaces"}, ""},
		{"no node", func(j *batchv1.Job) { pod(j).NodeName = "" }, []string{"nodeName"}, ""},
		{"a dry run", func(j *batchv1.Job) { c(j).Args = append(c(j).Args, "--dry-run=true") }, []string{"arguments"}, "--plan-configmap"},
		{"another termination log", func(j *batchv1.Job) {
			c(j).Args = append(c(j).Args, "--termination-log=/etc/image-cleanup/images.txt")
		}, []string{"arguments"}, ""},
		{"a flag given twice", func(j *batchv1.Job) {
			c(j).Args = append(c(j).Args, "--plan-digest=sha256:"+strings.Repeat("0", 64))
		}, []string{"arguments"}, ""},
		{"a flag and its value apart", func(j *batchv1.Job) { c(j).Args = append(c(j).Args, "--prune-dangling", "true") }, []string{"arguments"}, ""},
		{"no digest", func(j *batchv1.Job) { c(j).Args = dropArg(c(j).Args, "--plan-digest=") }, []string{"arguments"}, ""},
		{"no ConfigMap named", func(j *batchv1.Job) {
			c(j).Args = dropArg(c(j).Args, "--plan-configmap=")
		}, []string{"arguments", "plan"}, ""},
		{"another ConfigMap named", func(j *batchv1.Job) {
			c(j).Args = append(dropArg(c(j).Args, "--plan-configmap="), "--plan-configmap=other-image-cleanup")
		}, []string{"plan"}, "--plan-configmap"},
		{"another ConfigMap mounted", func(j *batchv1.Job) { pod(j).Volumes[0].ConfigMap.Name = "other-image-cleanup" }, []string{"plan"}, ""},
		{"the plan mounted read-write", func(j *batchv1.Job) { c(j).VolumeMounts[0].ReadOnly = false }, []string{"plan"}, "read-only"},
		{"the plan mounted twice", func(j *batchv1.Job) {
			c(j).VolumeMounts = append(c(j).VolumeMounts, corev1.VolumeMount{Name: "plan", MountPath: "/tmp/plan"})
		}, []string{"plan"}, ""},
		{"a key of the plan under another's name", func(j *batchv1.Job) {
			pod(j).Volumes[0].ConfigMap.Items = []corev1.KeyToPath{{Key: "keep.txt", Path: "images.txt"}}
		}, []string{"plan"}, ""},
		{"the plan optional", func(j *batchv1.Job) { pod(j).Volumes[0].ConfigMap.Optional = ptr.To(true) }, []string{"plan"}, ""},
		{"a sub-path of the plan", func(j *batchv1.Job) { c(j).VolumeMounts[0].SubPath = "images.txt" }, []string{"plan"}, ""},
		{"the plan read from elsewhere", func(j *batchv1.Job) {
			c(j).Args = append(dropArg(c(j).Args, "--plan="), "--plan=/proc/self/root/tmp/images.txt")
		}, []string{"plan"}, ""},
		{"a second ConfigMap", func(j *batchv1.Job) {
			pod(j).Volumes = append(pod(j).Volumes, corev1.Volume{Name: "x", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "other-image-cleanup"},
			}}})
		}, []string{"plan"}, ""},
		{"owned by another ConfigMap", func(j *batchv1.Job) { j.OwnerReferences[0].Name = "other-image-cleanup" }, []string{"plan"}, ""},
		{"an executable key", func(j *batchv1.Job) { pod(j).Volumes[0].ConfigMap.DefaultMode = ptr.To[int32](0o644 | 0o100) }, []string{"plan"}, "no executable mode"},
		{"a key executable by others", func(j *batchv1.Job) { pod(j).Volumes[0].ConfigMap.DefaultMode = ptr.To[int32](0o645) }, []string{"plan"}, ""},
		{"the plan mounted elsewhere", func(j *batchv1.Job) {
			c(j).VolumeMounts[0].MountPath = "/tmp/plan"
			c(j).Args = append(dropArg(dropArg(c(j).Args, "--plan="), "--keep="), "--plan=/tmp/plan/images.txt", "--keep=/tmp/plan/keep.txt")
		}, []string{"plan"}, "/etc/image-cleanup"},
		{"an exec probe", func(j *batchv1.Job) {
			c(j).ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/sh"}}}}
		}, []string{"probes"}, ""},
		{"an HTTP probe", func(j *batchv1.Job) {
			c(j).LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Host: "10.0.0.1", Path: "/x"}}}
		}, []string{"probes"}, ""},
		{"the termination message over a plan key", func(j *batchv1.Job) {
			c(j).TerminationMessagePath = "/etc/image-cleanup/images.txt"
		}, []string{"terminationMessage"}, "/dev/termination-log"},
		{"a lifecycle hook", func(j *batchv1.Job) {
			c(j).Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/sh"}}}}
		}, []string{"probes"}, ""},
		{"no owner", func(j *batchv1.Job) { j.OwnerReferences = nil }, []string{"plan"}, ""},
	} {
		t.Run(tc.what, func(t *testing.T) {
			job := removalJob(t, r.objs, r.fullname, "")
			tc.mutate(job)
			got := e.denials(t, controllerUser, admission.Create, job, nil, p.params)
			var rules []string
			for _, m := range got {
				match := policyMessage.FindStringSubmatch(m)
				if match == nil {
					t.Fatalf("message %q names no rule", m)
				}
				rules = append(rules, match[1])
			}
			if !slices.Equal(rules, tc.rules) {
				t.Errorf("refused by %v, want %v: %q", rules, tc.rules, got)
			}
			if tc.want != "" && (len(got) == 0 || !strings.Contains(got[0], tc.want)) {
				t.Errorf("message %q, want it to say %q", got, tc.want)
			}
			if got := e.denials(t, controllerUser, admission.Update, job, job.DeepCopy(), p.params); len(got) == 0 {
				t.Errorf("an update to it is admitted")
			}
			for _, other := range []string{"admin", "system:serviceaccount:kube-system:job-controller", serviceaccount.MakeUsername("default", r.fullname)} {
				if got := e.denials(t, other, admission.Create, job, nil, p.params); len(got) > 0 {
					t.Errorf("%s's Job is refused: %q", other, got)
				}
			}
		})
	}
}

// TestRemovalJobPolicyParamsDecide: the parameters, not the chart's
// defaults, say which image, command and socket pass: the Job of one
// render is refused with the other render's parameters.
func TestRemovalJobPolicyParamsDecide(t *testing.T) {
	rs := renders(t)
	def, all := rs[0], rs[1]
	p := policyOf(t, def.objs, def.fullname)
	e := compilePolicy(t, p.policy)
	controllerUser := serviceaccount.MakeUsername(releaseNamespace, def.fullname)
	job := removalJob(t, def.objs, def.fullname, "")
	other := policyOf(t, all.objs, all.fullname).params
	got := e.denials(t, controllerUser, admission.Create, job, nil, other)
	var rules []string
	for _, m := range got {
		rules = append(rules, policyMessage.FindStringSubmatch(m)[1])
	}
	if want := []string{"image", "command", "volumes"}; !slices.Equal(rules, want) {
		t.Errorf("with everything's parameters the default Job is refused by %v, want %v", rules, want)
	}
}

// TestRemovalJobPolicyGuardsItsParams: the controller may create
// ConfigMaps (its plans) where the parameters live, so another policy,
// without parameters, refuses it that one name: were the parameters
// missing, its token could not write its own. Its plans and anyone
// else's ConfigMaps are not refused.
func TestRemovalJobPolicyGuardsItsParams(t *testing.T) {
	for _, r := range renders(t) {
		t.Run(r.name, func(t *testing.T) {
			p := policyOf(t, r.objs, r.fullname)
			g := p.guard.Spec
			if g.ParamKind != nil || g.FailurePolicy == nil || *g.FailurePolicy != admissionregistrationv1.Fail {
				t.Errorf("paramKind %+v, failurePolicy %v: want none and Fail", g.ParamKind, g.FailurePolicy)
			}
			wantRules := []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
			}}}
			wantNamespaces := &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: p.params.Namespace}}
			if mc := g.MatchConstraints; mc == nil || !equalJSON(mc.ResourceRules, wantRules) || !equalJSON(mc.NamespaceSelector, wantNamespaces) {
				t.Errorf("matchConstraints %+v, want %+v in namespace %s", mc, wantRules, p.params.Namespace)
			}
			if !equalJSON(g.MatchConditions, p.policy.Spec.MatchConditions) {
				t.Errorf("matchConditions %+v, want the Jobs policy's %+v", g.MatchConditions, p.policy.Spec.MatchConditions)
			}
			b := p.guardBinding.Spec
			if b.PolicyName != p.guard.Name || b.ParamRef != nil || !slices.Equal(b.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) {
				t.Errorf("binding %+v, want policy %s, no parameters, [Deny]", b, p.guard.Name)
			}

			e := compilePolicy(t, p.guard)
			controllerUser := serviceaccount.MakeUsername(releaseNamespace, r.fullname)
			gvk := corev1.SchemeGroupVersion.WithKind("ConfigMap")
			forged := p.params.DeepCopy()
			forged.Data["image"] = "docker.io/library/busybox:latest"
			got := e.evaluate(t, controllerUser, admission.Create, gvk, forged, nil, nil)
			if len(got) != 1 || policyMessage.FindStringSubmatch(got[0]) == nil || policyMessage.FindStringSubmatch(got[0])[1] != "parameters" || !strings.Contains(got[0], p.params.Namespace+"/"+p.params.Name) {
				t.Errorf("the controller writing the parameters: %q, want one refusal by rule parameters naming %s/%s", got, p.params.Namespace, p.params.Name)
			}
			if got := e.evaluate(t, controllerUser, admission.Update, gvk, forged, p.params, nil); len(got) != 1 {
				t.Errorf("the controller updating the parameters: %q, want one refusal", got)
			}
			plan := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: p.params.Namespace, Name: cleanup.PlanConfigMapName("hvst-upgrade-x7k2p")}}
			if got := e.evaluate(t, controllerUser, admission.Create, gvk, plan, nil, nil); len(got) > 0 {
				t.Errorf("the controller's plan is refused: %q", got)
			}
			if got := e.evaluate(t, "admin", admission.Create, gvk, p.params, nil, nil); len(got) > 0 {
				t.Errorf("the admin writing the parameters is refused: %q", got)
			}
		})
	}
}

// dropArg returns args without those starting with prefix.
func dropArg(args []string, prefix string) []string {
	return slices.DeleteFunc(slices.Clone(args), func(a string) bool { return strings.HasPrefix(a, prefix) })
}
