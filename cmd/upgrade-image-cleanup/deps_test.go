package main

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestBinaryLinksNoTestClients keeps client-go's fake clientsets and
// k8s.io/client-go/testing out of the shipped binary: they are for the demo
// (cmd/upgrade-image-cleanup-demo) and the tests, and made the binary a
// third larger. It asks the go command for the package's dependencies
// without its tests, as `go build` links them, and names every test-only
// package with what imports it.
func TestBinaryLinksNoTestClients(t *testing.T) {
	// client-go links one of them into every program with a typed client:
	// k8s.io/client-go/gentype, the base of every typed client, holds the
	// generic fakes too (gentype/fake.go), so it imports
	// k8s.io/client-go/testing (kubernetes/kubernetes#137782). Nothing here
	// can drop that edge; the same package imported by anything else fails.
	upstream := map[string]string{"k8s.io/client-go/testing": "k8s.io/client-go/gentype"}
	testOnly := func(p string) bool {
		return strings.Contains(p, "/fake") || strings.Contains(p, "k8s.io/client-go/testing")
	}

	// go test puts its own GOROOT/bin first on PATH, so this is the go
	// command that runs the test.
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the binary's dependencies: %v", err)
	}
	cmd := exec.Command(goCmd, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", ".")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr)
	}
	importers := map[string][]string{} // package -> the listed packages that import it
	var deps []string
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		deps = append(deps, fields[0])
		for _, imp := range fields[1:] {
			importers[imp] = append(importers[imp], fields[0])
		}
	}
	// The package itself comes last: without it the listing was of
	// something else, and finding no test-only package would prove nothing.
	const self = "github.com/upgrade-image-cleanup/upgrade-image-cleanup/cmd/upgrade-image-cleanup"
	if !slices.Contains(deps, self) {
		t.Fatalf("%s did not list %s:\n%s", strings.Join(cmd.Args, " "), self, out)
	}

	var offending []string
	for _, p := range deps {
		if !testOnly(p) {
			continue
		}
		by := importers[p]
		if only, ok := upstream[p]; ok && slices.Equal(by, []string{only}) {
			t.Logf("%s is linked, imported only by %s (client-go's own, kubernetes/kubernetes#137782)", p, only)
			continue
		}
		offending = append(offending, fmt.Sprintf("%s (imported by %s)", p, strings.Join(by, ", ")))
	}
	if len(offending) > 0 {
		t.Errorf("the controller binary links %d test-only packages; what imports them belongs in the demo or a _test.go file (go list -deps ./cmd/upgrade-image-cleanup):\n  %s",
			len(offending), strings.Join(offending, "\n  "))
	}
}
