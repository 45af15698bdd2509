// Command image-remover removes, on one node, the images of a cleanup plan
// that are safe to remove. A Kubernetes Job runs it on each node with the
// plan ConfigMap (key images.txt) mounted and the runtime's CRI socket
// mounted from the host.
//
// It logs JSON lines to stderr, one per decision; prints the full report as
// one JSON object on stdout; and writes the result (remover.Result, JSON) to
// the termination log, where the controller reads it from the pod's status.
//
// Exit codes: 0 when it ran, even if some removals failed (they are in the
// result); 1 when the runtime cannot be reached or listing fails; 2 when the
// flags are bad or the plan cannot be read or parsed (then nothing is
// removed). On 1 and 2 the termination log holds the error as plain text, not
// a result, so that the pod's status says why.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
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
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
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
	endpoint       string
	matchOther     bool
	pruneDangling  bool
	terminationLog string
	timeout        time.Duration
	dryRun         bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("image-remover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.plan, "plan", "", "plan file: one image reference per line (the plan ConfigMap's images.txt); required")
	fs.StringVar(&c.endpoint, "runtime-endpoint", remover.DefaultEndpoint, "CRI socket of the container runtime: unix:///path or /path")
	fs.BoolVar(&c.matchOther, "match-other-registries", true, "also match a planned image under another registry host with the same path and tag (air-gapped registries)")
	fs.BoolVar(&c.pruneDangling, "prune-dangling", false, "also remove untagged images that no container uses and the runtime does not pin")
	fs.StringVar(&c.terminationLog, "termination-log", "/dev/termination-log", "file to write the result to for the pod's termination message; empty: none")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "overall time limit; images not removed by then are reported as failed")
	fs.BoolVar(&c.dryRun, "dry-run", false, "decide and report, remove nothing")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.plan == "" {
		return config{}, errors.New("--plan is required")
	}
	if _, err := remover.SocketPath(c.endpoint); err != nil {
		return config{}, fmt.Errorf("--runtime-endpoint: %w", err)
	}
	if c.timeout <= 0 {
		return config{}, fmt.Errorf("--timeout %v: must be positive", c.timeout)
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
		return exitUsage
	}
	z := newZap(stderr)
	defer func() { _ = z.Sync() }()
	logger := zapr.NewLogger(z)
	fail := func(code int, err error) int {
		logger.Error(err, "Image removal did not run")
		if werr := writeTerminationLog(c.terminationLog, []byte(imagelist.Truncate(imagelist.Printable("image-remover: "+err.Error()), remover.MaxTerminationMessage))); werr != nil {
			logger.Error(werr, "Cannot write the termination log")
		}
		return code
	}

	plan, err := readPlan(c.plan)
	if err != nil {
		return fail(exitUsage, err)
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
	logger.Info("Removing planned images", "plan", c.plan, "planned", len(plan), "runtime", rt.Version(), "socket", rt.Socket(),
		"matchOtherRegistries", c.matchOther, "pruneDangling", c.pruneDangling, "dryRun", c.dryRun)

	rep, err := remover.Run(ctx, rt, plan, remover.Options{MatchOtherRegistries: c.matchOther, PruneDangling: c.pruneDangling, DryRun: c.dryRun})
	if err != nil {
		return fail(exitRuntime, fmt.Errorf("runtime at %s: %w", rt.Socket(), err))
	}

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
// acted on.
func readPlan(path string) ([]reference.Named, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	defer func() { _ = f.Close() }()
	plan, err := imagelist.Parse(f, path)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	return plan, nil
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
