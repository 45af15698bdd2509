// Command image-remover removes, on one node, the images of a cleanup plan
// that are safe to remove. A Kubernetes Job runs it on each node with the
// plan ConfigMap (keys images.txt and keep.txt) mounted and the runtime's
// CRI socket mounted from the host.
//
// It logs JSON lines to stderr, one per decision; prints the full report as
// one JSON object on stdout; and writes the result (report.Result, JSON) to
// the termination log, where the controller reads it from the pod's status.
//
// Exit codes: 0 when it ran, even if some removals failed (they are in the
// result); 1 when the runtime cannot be reached or listing fails; 2 when the
// flags are bad, or the plan or keep list cannot be read or parsed, or the
// plan's digest is not --plan-digest (then nothing is removed). Every exit
// but -h writes a result to the termination log; on 1 and 2 its Error says
// why, so that the pod's status says it and the controller can show it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	"github.com/distribution/reference"
	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zapgrpc"
	"google.golang.org/grpc/grpclog"
	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = report.ExitRefused
)

// maxConnectWait bounds the connect check: a runtime that does not answer
// Version in this time is not going to answer removals either.
const maxConnectWait = 30 * time.Second

func main() {
	// gRPC logs through its own logger, in plain text; send its errors
	// through zap so stderr stays JSON lines. Set once here, before any gRPC
	// use, because grpclog.SetLoggerV2 is not safe to call concurrently.
	grpclog.SetLoggerV2(zapgrpc.NewLogger(newZap(os.Stderr).WithOptions(zap.IncreaseLevel(zapcore.ErrorLevel))))
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is the command line, checked.
type config struct {
	plan           string
	keep           string
	planDigest     string
	endpoint       string
	matchOther     bool
	pruneDangling  bool
	terminationLog string
	timeout        time.Duration
	removeTimeout  time.Duration
	dryRun         bool
}

// digestPattern is the form of imagelist.Digest.
var digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

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
	fs.StringVar(&c.endpoint, "runtime-endpoint", remover.DefaultEndpoint, "CRI socket of the container runtime: unix:///path or /path")
	fs.BoolVar(&c.matchOther, "match-other-registries", true, "also match a planned image under another registry host with the same path and tag (air-gapped registries)")
	fs.BoolVar(&c.pruneDangling, "prune-dangling", false, "also remove untagged images that no container uses and the runtime does not pin")
	fs.StringVar(&c.terminationLog, "termination-log", "/dev/termination-log", "file to write the result to for the pod's termination message; empty: none")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "overall time limit; images not removed by then are reported as failed")
	fs.DurationVar(&c.removeTimeout, "remove-timeout", remover.DefaultRemoveTimeout, "time limit of one RemoveImage call, tried once more if it times out or the runtime is unavailable; at most --timeout")
	fs.BoolVar(&c.dryRun, "dry-run", false, "decide and report, remove nothing")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.plan == "" {
		return c, errors.New("--plan is required")
	}
	if c.planDigest != "" && !digestPattern.MatchString(c.planDigest) {
		return c, fmt.Errorf("--plan-digest %q: want sha256: and 64 lowercase hex digits", c.planDigest)
	}
	if _, err := remover.SocketPath(c.endpoint); err != nil {
		return c, fmt.Errorf("--runtime-endpoint: %w", err)
	}
	if c.timeout <= 0 {
		return c, fmt.Errorf("--timeout %v: must be positive", c.timeout)
	}
	if c.removeTimeout <= 0 || c.removeTimeout > c.timeout {
		return c, fmt.Errorf("--remove-timeout %v: must be positive and at most --timeout %v", c.removeTimeout, c.timeout)
	}
	return c, nil
}

// run returns the exit code; see the package comment.
func run(args []string, stdout, stderr io.Writer) int {
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

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx = klog.NewContext(ctx, logger)

	rt, err := remover.DialCRI(ctx, c.endpoint, min(maxConnectWait, c.timeout))
	if err != nil {
		return fail(exitRuntime, err)
	}
	defer func() { _ = rt.Close() }()
	logger.Info("Removing planned images", "plan", c.plan, "planDigest", planDigest, "planned", len(plan), "keep", c.keep, "kept", len(keep),
		"runtime", rt.Version(), "socket", rt.Socket(),
		"matchOtherRegistries", c.matchOther, "pruneDangling", c.pruneDangling, "removeTimeout", c.removeTimeout, "dryRun", c.dryRun)

	rep, err := remover.Run(ctx, rt, plan, remover.Options{
		MatchOtherRegistries: c.matchOther,
		PruneDangling:        c.pruneDangling,
		DryRun:               c.dryRun,
		Keep:                 keep,
		RemoveTimeout:        c.removeTimeout,
	})
	if err != nil {
		return fail(exitRuntime, fmt.Errorf("runtime at %s: %w", rt.Socket(), err))
	}
	rep.PlanDigest = planDigest

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

// readPlan reads the whole plan or fails: a plan read in part must not be
// acted on. It returns the digest of the bytes it parsed, and fails when
// wantDigest is set and differs: the ConfigMap then holds another plan than
// the one the controller made the Job for (edited, or replaced by a newer
// plan), and acting on it would remove what nobody reviewed.
func readPlan(path, wantDigest string) ([]reference.Named, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read plan: %w", err)
	}
	digest := imagelist.Digest(b)
	if wantDigest != "" && digest != wantDigest {
		return nil, digest, fmt.Errorf("plan %s has digest %s, want %s (--plan-digest): it is not the plan this Job was made for; removing nothing", path, digest, wantDigest)
	}
	plan, err := imagelist.Parse(bytes.NewReader(b), path)
	if err != nil {
		return nil, digest, fmt.Errorf("plan: %w", err)
	}
	return plan, digest, nil
}

// readKeep reads the current version's image list. An empty one is refused:
// every version ships images, so an empty list means a broken ConfigMap or
// mount, and would leave the remover without its second check.
func readKeep(path string) ([]reference.Named, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keep list: %w", err)
	}
	keep, err := imagelist.Parse(bytes.NewReader(b), path)
	if err != nil {
		return nil, fmt.Errorf("keep list: %w", err)
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("keep list %s is empty: the current version ships images, so the list is broken; removing nothing", path)
	}
	return keep, nil
}

// writeFailure writes a result whose Error is err to the termination log:
// the controller reads every termination message as a result.
func writeFailure(path string, err error) error {
	msg, merr := report.Result{Error: "image-remover: " + err.Error()}.TerminationMessage()
	if merr != nil {
		return merr
	}
	return writeTerminationLog(path, msg)
}

func writeTerminationLog(path string, b []byte) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write termination log: %w", err)
	}
	return nil
}

func logSummary(logger logr.Logger, rep remover.Report) {
	r := rep.Result
	logger.Info("Image removal done", "removed", r.Removed, "failed", r.Failed, "skipped", r.Skipped,
		"bytesReclaimed", r.BytesReclaimed, "danglingRemoved", r.DanglingRemoved, "wouldRemove", rep.WouldRemove, "dryRun", rep.DryRun)
}

// newZap builds a JSON logger at info level on w.
func newZap(w io.Writer) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel))
}
