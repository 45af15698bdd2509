package main

// Adversarial review of issue 15's chart: each test names a defect and
// fails while it is there.

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
)

// deploymentOf returns the one Deployment of a render.
func deploymentOf(t *testing.T, objs []object) *appsv1.Deployment {
	t.Helper()
	for _, o := range objs {
		if o.kind == "Deployment" {
			return o.obj.(*appsv1.Deployment)
		}
	}
	t.Fatalf("no Deployment among %v", kinds(objs))
	return nil
}

// TestAdversarySchemaAcceptsValuesTheControllerRefuses: the README says
// values.schema.json refuses "a bad one at install" and that the chart
// refuses "bad values". Each value below passes the schema and renders,
// so `helm install` (and the Harvester Addon) reports success, but the
// controller it installs exits 2 on the flag at every start: a
// Deployment in CrashLoopBackOff, no cleanup ever. Either the install must
// fail naming the value, or the binary must accept the rendered arguments
// (exit 1 on the missing kubeconfig, as TestArgsAreAcceptedByTheBinary
// asks of the two renders it tries).
func TestAdversarySchemaAcceptsValuesTheControllerRefuses(t *testing.T) {
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, vals string }{
		{"imageFsThreshold above 8Pi", `imageFsThreshold: 9Pi`},
		{"resync 0s", `resync: 0s`},
		{"shutdownTimeout 0s", `shutdownTimeout: 0s`},
		{"removal toleration Exists with a value", `removal: {tolerations: [{key: dedicated, operator: Exists, value: storage}]}`},
		{"removal toleration without key nor Exists", `removal: {tolerations: [{operator: Equal, value: storage}]}`},
		{"removal toleration tolerationSeconds without NoExecute", `removal: {tolerations: [{key: dedicated, operator: Exists, effect: NoSchedule, tolerationSeconds: 60}]}`},
		{"removal toleration key not a label key", `removal: {tolerations: [{key: "dedicated pool", operator: Exists}]}`},
		{"removal.nodeSelector not a selector", `removal: {nodeSelector: "pool gpu"}`},
		{"exclude not a glob", `exclude: ["docker.io/rancher/[mirrored"]`},
		{"catchUp not a version", `catchUp: ["v1.4.1 hotfix"]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			vals, err := chartutil.ReadValues([]byte(c.vals))
			if err != nil {
				t.Fatal(err)
			}
			rel, err := install(chartForTest(t), vals)
			if err != nil {
				return // refused at install: what the README promises
			}
			d := deploymentOf(t, parse(t, c.name, rel.Manifest))
			run := append(controller(t, d).Args, "--kubeconfig="+filepath.Join(t.TempDir(), "no-such-kubeconfig"))
			var stderr bytes.Buffer
			cmd := exec.Command(bin, run...)
			cmd.Stderr = &stderr
			err = cmd.Run()
			var exit *exec.ExitError
			if errors.As(err, &exit) && exit.ExitCode() == 2 {
				t.Errorf("values %q pass the schema and install, but the controller refuses its arguments (exit 2, a crash-looping Deployment): %s", c.vals, strings.TrimSpace(stderr.String()))
			}
		})
	}
}
