package remover

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc/grpclog"
)

// RunAsProcess is Main for a process that does nothing else: the standalone
// cmd/image-remover, or a host binary's subcommand (`harvester
// image-remover`) in the pod of a removal Job. It sets gRPC's process-wide
// logger to the remover's JSON lines on stderr, before anything uses gRPC;
// cancels the run on SIGTERM (the kubelet sends it at the Job's deadline:
// the images not removed by then are reported as failed, and the result
// still reaches the termination log) or an interrupt; and returns the exit
// code for os.Exit. args are the flags, without the program's or the
// subcommand's name. A host that keeps running other work in the process
// calls Main instead.
func RunAsProcess(args []string) int {
	grpclog.SetLoggerV2(NewGRPCLogger(os.Stderr))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Main(ctx, args, os.Stdout, os.Stderr)
}
