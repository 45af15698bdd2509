// Command image-remover removes, on one node, the images of a cleanup plan
// that are safe to remove: the standalone image's remover, which each
// cleanup Job runs. It is remover.Main as a program; flags, outputs and
// exit codes are documented there.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc/grpclog"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
)

func main() {
	// Set once here, before any gRPC use, because grpclog.SetLoggerV2 is
	// process-wide and not safe to call concurrently: gRPC's errors then go
	// to stderr as JSON lines, like the remover's.
	grpclog.SetLoggerV2(remover.NewGRPCLogger(os.Stderr))
	// SIGTERM comes at the Job's deadline: the images not removed by then
	// are reported as failed, and the result still reaches the termination
	// log.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := remover.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
