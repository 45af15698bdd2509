// Command upgrade-image-cleanup-demo plays a Harvester upgrade's image
// cleanup: the real controller (internal/standalone, as the binary runs it)
// against an in-memory cluster of client-go's fake clientsets, a local HTTP
// repo serving realistic lists, and two simulated nodes. It prints the
// timeline on stdout; the controller's logs go to a file it names first, or
// to stderr with -v. It is a program of its own so that the controller
// binary, cmd/upgrade-image-cleanup, links no fake clientset.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/standalone"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// demoFlags are the demo's command line, checked.
type demoFlags struct {
	// outage is how long the repo stays not Ready after the upgrade completes.
	outage time.Duration
	dryRun bool
	// verbosity is the controller's log verbosity; logsToStderr says -v was
	// given, which sends the logs to stderr instead of a file.
	verbosity    int
	logsToStderr bool
	metricsAddr  string
	healthAddr   string
}

func parseFlags(args []string, stderr io.Writer) (demoFlags, error) {
	var f demoFlags
	fs := flag.NewFlagSet("upgrade-image-cleanup-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&f.outage, "outage", 3*time.Second, "how long the repo stays not Ready after the upgrade completes")
	fs.BoolVar(&f.dryRun, "dry-run", false, "stop at Planned, as the controller's --dry-run: write the plan, remove nothing")
	fs.IntVar(&f.verbosity, "v", 0, "the controller's log verbosity; given, its logs go to stderr instead of a file (2 shows every decision's detail)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve the controller's Prometheus metrics (/metrics) here, such as 127.0.0.1:8080, and keep serving after the demo until interrupted")
	fs.StringVar(&f.healthAddr, "health-addr", "", "serve /healthz and /readyz here, such as 127.0.0.1:8081, and keep serving after the demo until interrupted")
	if err := fs.Parse(args); err != nil {
		return demoFlags{}, err
	}
	if fs.NArg() > 0 {
		return demoFlags{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(fl *flag.Flag) { f.logsToStderr = f.logsToStderr || fl.Name == "v" })
	switch {
	case f.outage < 0:
		return demoFlags{}, fmt.Errorf("--outage %v: must not be negative", f.outage)
	case f.verbosity < 0:
		return demoFlags{}, fmt.Errorf("-v %d: must not be negative", f.verbosity)
	}
	return f, nil
}

// run returns the exit code: 0 when the demo succeeds, 1 when it fails, 2
// for bad flags.
func run(args []string, stdout, stderr io.Writer) int {
	const prefix = "upgrade-image-cleanup-demo: "
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s%v\n", prefix, err)
		return 2
	}
	// The timeline is for a person: the controller's own lines would break
	// it up, so they go to a file unless asked for.
	logs, logsName, closeLogs := stderr, "", func() {}
	if !f.logsToStderr {
		file, err := os.CreateTemp("", "upgrade-image-cleanup-demo-*.log")
		if err != nil {
			fmt.Fprintf(stderr, "%screate the log file: %v\n", prefix, err)
			return 1
		}
		logs, logsName = file, file.Name()
		closeLogs = func() { _ = file.Close() }
		// First, so it is there to follow while the demo runs, and whatever
		// happens next.
		fmt.Fprintf(stdout, "controller logs: %s (-v N shows them on stderr instead)\n\n", logsName)
	}
	defer closeLogs()
	logger, flush, err := standalone.NewLogger("console", f.verbosity, logs)
	if err != nil {
		fmt.Fprintf(stderr, "%s%v\n", prefix, err)
		return 2
	}
	// Deferred after closeLogs, so it runs first: the file is flushed, then
	// closed.
	defer flush()
	ctx, stop := standalone.OnSignals(klog.NewContext(context.Background(), logger))
	defer stop()

	if err := runDemo(ctx, f, stdout); err != nil {
		logger.Error(err, "Demo failed")
		if logsName != "" {
			fmt.Fprintf(stderr, "%s%v (the controller's logs are in %s)\n", prefix, err, logsName)
		} else {
			fmt.Fprintf(stderr, "%s%v\n", prefix, err)
		}
		return 1
	}
	return 0
}
