package cleanuptest_test

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestNoTestingImport keeps package testing out of cleanuptest: the demo
// and hack/bench are programs and link it. Helpers that fail a test belong
// in package fixture.
func TestNoTestingImport(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the package's dependencies: %v", err)
	}
	cmd := exec.Command(goCmd, "list", "-deps", ".")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, ee.Stderr)
		}
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	deps := strings.Fields(string(out))
	const self = "github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	if !slices.Contains(deps, self) {
		t.Fatalf("%s did not list %s:\n%s", strings.Join(cmd.Args, " "), self, out)
	}
	if slices.Contains(deps, "testing") {
		t.Errorf("%s links package testing; the demo and hack/bench would too", self)
	}
}
