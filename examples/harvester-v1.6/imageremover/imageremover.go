// Package imageremover is the image-remover subcommand of Harvester's
// binary, the command imagecleanup.DefaultSettings has the removal Jobs
// run in Harvester's own image ("harvester image-remover"). Harvester's
// main adds one line before it runs its app:
//
//	if code, ok := imageremover.Run(os.Args); ok {
//		os.Exit(code)
//	}
package imageremover

import (
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
)

// Name is the subcommand's name: args[1] of the Harvester binary.
const Name = "image-remover"

// Run runs the remover (remover.RunAsProcess) when args, a process's
// arguments, name the subcommand, and returns its exit code with ok true;
// otherwise it does nothing and returns ok false. SIGTERM, which the
// kubelet sends at the Job's deadline, cancels the run, so the images not
// removed by then are reported as failed. gRPC's logger is set to the
// remover's JSON lines: nothing else of Harvester runs in this process.
func Run(args []string) (code int, ok bool) {
	if len(args) < 2 || args[1] != Name {
		return 0, false
	}
	return remover.RunAsProcess(args[2:]), true
}
