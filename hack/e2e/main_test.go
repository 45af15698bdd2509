//go:build e2e

// Package e2e runs the controller binary against a real control plane
// (hack/local-cluster): a real API server, the real EndpointSlice controller,
// and a repo served from its own network namespace so that its address is a
// routable pod IP. Run with: go test -tags e2e ./hack/e2e (as root).
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// env is what every test shares: the cluster and the built controller.
var env struct {
	kubeconfig string
	rest       *rest.Config
	kube       kubernetes.Interface
	dynamic    dynamic.Interface
	controller string // path of the built binary
	workdir    string
	// root is the repository's root folder.
	root string
	// clusterDir is hack/local-cluster's folder for the cluster: the one
	// TestMain brought up, or the folder of E2E_KUBECONFIG (local-cluster
	// writes DIR/kubeconfig). Tests that restart a component use it.
	clusterDir string
}

// TestMain brings up the control plane (or uses E2E_KUBECONFIG), builds the
// controller binary once, runs the tests and tears the cluster down.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return fail(err)
	}
	env.workdir, err = os.MkdirTemp("", "uic-e2e-")
	if err != nil {
		return fail(err)
	}
	// Deferred first, so it runs last: after the cluster is down, since its
	// PID files live in the work folder.
	defer func() {
		if code == 0 {
			_ = os.RemoveAll(env.workdir)
		} else {
			fmt.Fprintf(os.Stderr, "e2e: logs kept in %s\n", env.workdir)
		}
	}()
	env.root = root
	env.kubeconfig = os.Getenv("E2E_KUBECONFIG")
	if env.kubeconfig != "" {
		if env.clusterDir, err = filepath.Abs(filepath.Dir(env.kubeconfig)); err != nil {
			return fail(err)
		}
	} else {
		dir := filepath.Join(env.workdir, "cluster")
		env.clusterDir = dir
		// down is safe on a half-started cluster, so it is deferred first.
		defer func() {
			down := exec.Command(filepath.Join(root, "hack/local-cluster"), "down", dir)
			down.Stderr = os.Stderr
			_ = down.Run()
		}()
		up := exec.Command(filepath.Join(root, "hack/local-cluster"), "up", dir)
		up.Stderr = os.Stderr
		out, err := up.Output()
		if err != nil {
			return fail(fmt.Errorf("hack/local-cluster up: %w", err))
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		env.kubeconfig = lines[len(lines)-1]
	}
	env.rest, err = clientcmd.BuildConfigFromFlags("", env.kubeconfig)
	if err != nil {
		return fail(fmt.Errorf("kubeconfig %s: %w", env.kubeconfig, err))
	}
	if env.kube, err = kubernetes.NewForConfig(env.rest); err != nil {
		return fail(err)
	}
	if env.dynamic, err = dynamic.NewForConfig(env.rest); err != nil {
		return fail(err)
	}
	env.controller = filepath.Join(env.workdir, "upgrade-image-cleanup")
	build := exec.Command("go", "build", "-o", env.controller, "./cmd/upgrade-image-cleanup")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fail(fmt.Errorf("build controller: %w", err))
	}
	if err := installUpgradeCRD(context.Background()); err != nil {
		return fail(err)
	}
	return m.Run()
}

func fail(err error) int {
	fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
	return 1
}
