package imageremover

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunOnlyTheSubcommand: Harvester's own command line is left to
// Harvester; the subcommand runs the remover, which refuses a run without a
// plan (exit code 2) and says why in the termination log.
func TestRunOnlyTheSubcommand(t *testing.T) {
	for _, args := range [][]string{
		{"harvester"},
		{"harvester", "--namespace", "harvester-system"},
		{"harvester", "image-remover-x"},
	} {
		if _, ok := Run(args); ok {
			t.Errorf("Run(%q) ran the remover", args)
		}
	}

	log := filepath.Join(t.TempDir(), "termination-log")
	code, ok := Run([]string{"harvester", Name, "--termination-log=" + log})
	if !ok || code != 2 {
		t.Fatalf("Run without --plan: code %d, ran %v; want code 2", code, ok)
	}
	msg, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg), "--plan") {
		t.Errorf("termination message %s does not name --plan", msg)
	}
}
