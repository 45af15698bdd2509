package remover

import (
	"fmt"
	"os"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// writeFailure writes a result whose Error is err to the termination log:
// the controller reads every termination message as a result.
func writeFailure(path string, err error) error {
	msg, merr := report.Result{Error: "image-remover: " + err.Error()}.TerminationMessage()
	if merr != nil {
		return merr
	}
	return writeTerminationLog(path, msg)
}

// writeTerminationLog writes b to path; an empty path (--termination-log=)
// writes nothing.
func writeTerminationLog(path string, b []byte) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write termination log: %w", err)
	}
	return nil
}
