package main

// Adversarial review of issue 17's removal Job policy: each test names what
// should hold, and fails while the defect is there.

import (
	"path"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/utils/ptr"
)

// policyRefusals evaluates job as the controller's ServiceAccount would
// create it and returns the rules that refuse it; every refusal must name
// its rule.
func policyRefusals(t *testing.T, e evaluator, p policyObjects, fullname string, job *batchv1.Job) []string {
	t.Helper()
	var rules []string
	for _, m := range e.denials(t, serviceaccount.MakeUsername(releaseNamespace, fullname), admission.Create, job, nil, p.params) {
		match := policyMessage.FindStringSubmatch(m)
		if match == nil {
			t.Fatalf("message %q names no rule", m)
		}
		rules = append(rules, match[1])
	}
	return rules
}

// TestRemovalJobPolicyRefusesThePlanMountedOverTheRemoverCommand holds the
// README's "### Permissions" promise that the policy admits the controller's
// ServiceAccount only Jobs that run the configured command of the configured
// image (rule command: "not the image's entrypoint, no word more"), so that
// its token cannot run other code as root beside the CRI socket.
//
// The token may create ConfigMaps (its plans) and so can write its own plan
// ConfigMap with one more key named after the command's last path element
// (image-remover, or harvester for a host's command found through PATH)
// holding a static binary of its choosing. It mounts that ConfigMap, as rule
// plan asks (whole, read-only, once, the Job's controlling owner, named in
// --plan-configmap, --plan=M/images.txt, --keep=M/keep.txt), at M = the
// command's folder (/usr/local/bin), with defaultMode 0755, which no rule
// looks at. The container's command /usr/local/bin/image-remover is then the
// ConfigMap's key: the runtime executes the token holder's binary as root
// (runAsUser 0) with the node's CRI socket mounted, which can start a
// privileged container: root on the node, the very thing the policy exists
// to stop.
//
// Now: the policy admits the Job (no rule refuses it).
func TestRemovalJobPolicyRefusesThePlanMountedOverTheRemoverCommand(t *testing.T) {
	for _, r := range renders(t) {
		p := policyOf(t, r.objs, r.fullname)
		e := compilePolicy(t, p.policy)
		command := strings.Split(p.params.Data["command"], ",")
		// The folder the runtime takes the command from: its own for an
		// absolute path, else the first folder of the runtime's default
		// PATH (containerd: /usr/local/sbin:/usr/local/bin:...), which the
		// env rule keeps as it is.
		bin := "/usr/local/sbin"
		if path.IsAbs(command[0]) {
			bin = path.Dir(command[0])
		}
		for _, mountPath := range []string{bin, bin + "/"} {
			t.Run(r.name+" "+mountPath, func(t *testing.T) {
				job := removalJob(t, r.objs, r.fullname, "")
				pod := &job.Spec.Template.Spec
				c := &pod.Containers[0]
				var plan *corev1.Volume
				for i := range pod.Volumes {
					if pod.Volumes[i].ConfigMap != nil {
						plan = &pod.Volumes[i]
					}
				}
				plan.ConfigMap.DefaultMode = ptr.To[int32](0o755)
				for i := range c.VolumeMounts {
					if c.VolumeMounts[i].Name == plan.Name {
						c.VolumeMounts[i].MountPath = mountPath
					}
				}
				c.Args = dropArg(dropArg(c.Args, "--plan="), "--keep=")
				c.Args = append(c.Args, "--plan="+mountPath+"/images.txt", "--keep="+mountPath+"/keep.txt")

				if rules := policyRefusals(t, e, p, r.fullname, job); len(rules) == 0 {
					t.Errorf("admitted: a Job mounting its own ConfigMap (mode 0755) at %s, over the command %q, runs the ConfigMap's key %q as root with the CRI socket",
						mountPath, command, path.Base(command[0]))
				}
			})
		}
	}
}

// TestRemovalJobPolicyRefusesOtherProcessesInTheContainer holds the
// README's "### Permissions" rules command ("set command to exactly the
// parameters' words (not the image's entrypoint, no word more)") and
// arguments ("pass the remover only --name=value flags the controller sets,
// each once ... so no --dry-run, --termination-log or --timeout"): the only
// process the Job may start is the configured command with those flags.
//
// The kubelet also starts processes in the container for exec probes and
// exec lifecycle hooks, which no rule looks at. The minimal input is the
// controller's own Job plus, say, startupProbe.exec.command
// ["/usr/local/bin/image-remover", "--plan=/etc/image-cleanup/images.txt",
// "--dry-run=false", "--timeout=24h", "--termination-log=/dev/termination-log",
// ...]: the remover runs as root on the CRI socket without --plan-configmap
// and --keep, with flags the arguments rule forbids, or the image's
// entrypoint (the controller binary) runs.
//
// Now: the policy admits every one of these Jobs.
func TestRemovalJobPolicyRefusesOtherProcessesInTheContainer(t *testing.T) {
	r := renders(t)[0]
	p := policyOf(t, r.objs, r.fullname)
	e := compilePolicy(t, p.policy)
	command := strings.Split(p.params.Data["command"], ",")
	remover := append(slices.Clone(command),
		"--plan=/etc/image-cleanup/images.txt", "--runtime-endpoint=unix:///run/cri/cri.sock",
		"--timeout=24h", "--termination-log=/dev/termination-log")
	entrypoint := []string{"/usr/local/bin/upgrade-image-cleanup", "--help"}
	exec := func(cmd []string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}, PeriodSeconds: 1, FailureThreshold: 1000}
	}
	hook := func(cmd []string) *corev1.LifecycleHandler {
		return &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: cmd}}
	}
	for _, tc := range []struct {
		what   string
		mutate func(c *corev1.Container)
	}{
		{"a startup probe running the remover", func(c *corev1.Container) { c.StartupProbe = exec(remover) }},
		{"a liveness probe running the remover", func(c *corev1.Container) { c.LivenessProbe = exec(remover) }},
		{"a readiness probe running the remover", func(c *corev1.Container) { c.ReadinessProbe = exec(remover) }},
		{"a postStart hook running the remover", func(c *corev1.Container) { c.Lifecycle = &corev1.Lifecycle{PostStart: hook(remover)} }},
		{"a preStop hook running the remover", func(c *corev1.Container) { c.Lifecycle = &corev1.Lifecycle{PreStop: hook(remover)} }},
		{"a startup probe running the image's entrypoint", func(c *corev1.Container) { c.StartupProbe = exec(entrypoint) }},
	} {
		t.Run(tc.what, func(t *testing.T) {
			job := removalJob(t, r.objs, r.fullname, "")
			tc.mutate(&job.Spec.Template.Spec.Containers[0])
			if rules := policyRefusals(t, e, p, r.fullname, job); len(rules) == 0 {
				t.Errorf("admitted: the controller's Job with %s: the kubelet runs a command the command and arguments rules forbid, as root beside the CRI socket", tc.what)
			}
		})
	}
}
