package remover

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/go-logr/zapr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// Exit codes of Main.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = report.ExitRefused
)

// maxConnectWait bounds the connect check: a runtime that does not answer
// Version in this time is not going to answer removals either.
const maxConnectWait = 30 * time.Second

// Main is the image-remover command: it removes, on one node, the images of
// a cleanup plan that are safe to remove, and returns the process's exit
// code. A Kubernetes Job runs it on each node with the plan ConfigMap (keys
// images.txt and keep.txt) mounted and the runtime's CRI socket mounted from
// the host. args are the flags alone, without the program's or the
// subcommand's name.
//
// A host binary mounts it as a subcommand, so that its own image, already
// pulled on every node, runs the removal Jobs
// (cleanup.RemovalOptions.RemoverCommand, such as ["harvester",
// "image-remover"]), with the same flags and safety rules. In a process
// that does nothing else, as a Job's pod, that is one line (RunAsProcess
// does the process set-up below; cmd/image-remover is that line too):
//
//	os.Exit(remover.RunAsProcess(os.Args[2:]))
//
// It logs JSON lines to stderr, one per decision; prints the full report as
// one JSON object on stdout; and writes the result (report.Result, JSON) to
// the termination log, where the controller reads it from the pod's status.
//
// Exit codes: 0 when it ran, even if some removals failed (they are in the
// result); 1 when the runtime cannot be reached or listing fails; 2
// (report.ExitRefused) when the flags are bad, or the plan or keep list
// cannot be read or parsed, or the plan's digest is not --plan-digest, or
// the plan folder is not the --plan-configmap volume mounted read-only, or
// --image-fs-threshold is set and the runtime does not report its image
// filesystem usage (then nothing is removed). With --image-fs-threshold,
// usage the runtime fails to report (it may be restarting) exits 1 and
// removes nothing; usage below the threshold exits 0 and removes nothing
// (the result's belowThreshold). See Run for what the result says of the
// measured space. Every exit but -h writes a result to the termination
// log; on 1 and 2 its Error says why, so that the pod's status says it and
// the controller can show it.
//
// Main changes nothing of the process beyond the files its flags name: it
// neither exits, nor handles signals, nor sets a global logger. It logs
// through a logger of its own on stderr, whatever logger ctx carries. So
// the caller (RunAsProcess, or a host with other work running):
//   - cancels ctx on SIGTERM (signal.NotifyContext): the kubelet sends it
//     at the Job's deadline, and the images not removed by then are
//     reported as failed, as when --timeout ends;
//   - may, before anything in the process uses gRPC, call
//     grpclog.SetLoggerV2(remover.NewGRPCLogger(os.Stderr)) so that gRPC's
//     own errors come out as JSON lines too. Main does not, because gRPC's
//     logger is process-wide: setting it would replace the host's, and
//     SetLoggerV2 is not safe while gRPC is in use;
//   - exits with the code Main returns.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "image-remover: %v\n", err)
		if werr := writeFailure(c.terminationLog, err); werr != nil {
			fmt.Fprintf(stderr, "image-remover: %v\n", werr)
		}
		return exitUsage
	}
	z := newZap(stderr)
	defer func() { _ = z.Sync() }()
	logger := zapr.NewLogger(z)
	fail := func(code int, err error) int {
		logger.Error(err, "Image removal did not run")
		if werr := writeFailure(c.terminationLog, err); werr != nil {
			logger.Error(werr, "Cannot write the termination log")
		}
		return code
	}

	if c.planConfigMap != "" {
		if err := checkPlanVolume(c.plan, c.keep, c.planConfigMap, mountReadOnly); err != nil {
			return fail(exitUsage, err)
		}
	}
	plan, planDigest, err := readPlan(c.plan, c.planDigest)
	if err != nil {
		return fail(exitUsage, err)
	}
	var keep []reference.Named
	if c.keep != "" {
		if keep, err = readKeep(c.keep); err != nil {
			return fail(exitUsage, err)
		}
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx = klog.NewContext(ctx, logger)

	rt, err := DialCRI(ctx, c.endpoint, min(maxConnectWait, c.timeout))
	if err != nil {
		return fail(exitRuntime, err)
	}
	defer func() { _ = rt.Close() }()
	logger.Info("Removing planned images", "plan", c.plan, "planDigest", planDigest, "planConfigMap", c.planConfigMap, "planned", len(plan), "keep", c.keep, "kept", len(keep),
		"runtime", rt.Version(), "socket", rt.Socket(),
		"matchOtherRegistries", c.matchOther, "pruneDangling", c.pruneDangling, "removeTimeout", c.removeTimeout, "parallelRemovals", c.parallel, "dryRun", c.dryRun,
		logKeyThreshold, c.imageFsThreshold, logKeyWait, c.imageFsWait)

	rep, err := Run(ctx, rt, plan, Options{
		MatchOtherRegistries: c.matchOther,
		PruneDangling:        c.pruneDangling,
		DryRun:               c.dryRun,
		Keep:                 keep,
		RemoveTimeout:        c.removeTimeout,
		ParallelRemovals:     c.parallel,
		ImageFsThreshold:     c.imageFsThreshold,
		ImageFsWait:          c.imageFsWait,
	})
	if err != nil {
		code := exitRuntime
		if errors.Is(err, ErrImageFsUnsupported) {
			// --image-fs-threshold on a runtime that does not measure:
			// another pod on this node would find the same.
			code = exitUsage
		}
		return fail(code, fmt.Errorf("runtime at %s: %w", rt.Socket(), err))
	}
	rep.PlanDigest = planDigest
	rep.Result.PlanDigest = planDigest

	if err := json.NewEncoder(stdout).Encode(rep); err != nil {
		logger.Error(err, "Cannot print the report")
	}
	msg, err := rep.Result.TerminationMessage()
	if err == nil {
		err = writeTerminationLog(c.terminationLog, msg)
	}
	if err != nil {
		// The controller reads the result only from there: without it the
		// run is as good as failed, and a rerun is harmless.
		logger.Error(err, "Cannot report the result")
		return exitRuntime
	}
	logSummary(logger, rep)
	return exitOK
}

// config is the command line, checked.
type config struct {
	plan           string
	keep           string
	planDigest     string
	planConfigMap  string
	endpoint       string
	matchOther     bool
	pruneDangling  bool
	terminationLog string
	timeout        time.Duration
	removeTimeout  time.Duration
	parallel       int
	dryRun         bool
	// imageFsThreshold is --image-fs-threshold in bytes; 0: off.
	imageFsThreshold uint64
	imageFsWait      time.Duration
}

// lastFlagValue is the value the last -name or --name in args (before a
// "--") gives, in either the "=value" or the separate-argument form; def
// when none does.
func lastFlagValue(args []string, name, def string) string {
	v := def
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		flagName, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") || flagName != name {
			continue
		}
		switch {
		case hasValue:
			v = value
		case i+1 < len(args):
			i++
			v = args[i]
		}
	}
	return v
}

// parseFlags parses and checks the command line. On error it also returns
// what it parsed, so that the error can still go to the termination log the
// command line names.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("image-remover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.plan, "plan", "", "plan file: one image reference per line (the plan ConfigMap's images.txt); required")
	fs.StringVar(&c.keep, "keep", "", "the current version's image list (the plan ConfigMap's keep.txt): planned images it could name are never removed; empty: no keep list")
	fs.StringVar(&c.planDigest, "plan-digest", "", "sha256:<hex> the plan file's bytes must hash to, or nothing is removed; empty: not checked")
	fs.StringVar(&c.planConfigMap, "plan-configmap", "", "name of the ConfigMap the Job mounts the plan from: --plan and --keep must then be its keys, mounted read-only by the kubelet, or nothing is removed; empty: not checked")
	fs.StringVar(&c.endpoint, "runtime-endpoint", DefaultEndpoint, "CRI socket of the container runtime: unix:///path or /path")
	fs.BoolVar(&c.matchOther, "match-other-registries", true, "also match a planned image under another registry host with the same path and tag (air-gapped registries)")
	fs.BoolVar(&c.pruneDangling, "prune-dangling", false, "also remove untagged images that no container uses and the runtime does not pin")
	fs.StringVar(&c.terminationLog, "termination-log", "/dev/termination-log", "file to write the result to for the pod's termination message; empty: none")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "overall time limit; images not removed by then are reported as failed")
	fs.DurationVar(&c.removeTimeout, "remove-timeout", DefaultRemoveTimeout, "time limit of one RemoveImage call, tried once more if it times out or the runtime is unavailable; at most --timeout")
	fs.IntVar(&c.parallel, "parallel-removals", DefaultParallelRemovals, "RemoveImage calls in flight at once, after every image is decided; 1: one at a time")
	fs.BoolVar(&c.dryRun, "dry-run", false, "decide and report, remove nothing")
	threshold := fs.String("image-fs-threshold", "0", "disk-pressure mode: remove nothing while the runtime's image filesystems use less than this quantity of bytes (50Gi, 200G); 0: off")
	fs.DurationVar(&c.imageFsWait, "image-fs-wait", DefaultImageFsWait, "how long to wait after removing for the runtime to report image filesystem usage measured after the removals (containerd recomputes it every 10s by default); 0: take the figure it has")
	if err := fs.Parse(args); err != nil {
		// Parsing stopped at the bad flag; the termination log is the one
		// the whole command line names, wherever it comes.
		c.terminationLog = lastFlagValue(args, "termination-log", c.terminationLog)
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.plan == "" {
		return c, errors.New("--plan is required")
	}
	if c.planDigest != "" && !isPlanDigest(c.planDigest) {
		return c, fmt.Errorf("--plan-digest %q: want sha256: and 64 lowercase hex digits", c.planDigest)
	}
	if errs := validation.IsDNS1123Subdomain(c.planConfigMap); c.planConfigMap != "" && len(errs) > 0 {
		return c, fmt.Errorf("--plan-configmap %q: not a ConfigMap name: %s", c.planConfigMap, strings.Join(errs, "; "))
	}
	if _, err := SocketPath(c.endpoint); err != nil {
		return c, fmt.Errorf("--runtime-endpoint: %w", err)
	}
	if c.timeout <= 0 {
		return c, fmt.Errorf("--timeout %v: must be positive", c.timeout)
	}
	if c.removeTimeout <= 0 || c.removeTimeout > c.timeout {
		return c, fmt.Errorf("--remove-timeout %v: must be positive and at most --timeout %v", c.removeTimeout, c.timeout)
	}
	if c.parallel < 1 || c.parallel > MaxParallelRemovals {
		return c, fmt.Errorf("--parallel-removals %d: must be from 1 to %d", c.parallel, MaxParallelRemovals)
	}
	var err error
	if c.imageFsThreshold, err = report.ParseThreshold(*threshold); err != nil {
		return c, fmt.Errorf("--image-fs-threshold %q: %w", *threshold, err)
	}
	if c.imageFsWait < 0 {
		return c, fmt.Errorf("--image-fs-wait %v: must not be negative", c.imageFsWait)
	}
	return c, nil
}

// isPlanDigest reports whether s has the form of imagelist.Digest:
// "sha256:" and 64 lowercase hex digits.
func isPlanDigest(s string) bool {
	hex, ok := strings.CutPrefix(s, "sha256:")
	return ok && len(hex) == 64 && isHex(hex)
}
