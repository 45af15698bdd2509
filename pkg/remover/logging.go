package remover

import (
	"io"

	"github.com/go-logr/logr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zapgrpc"
	"google.golang.org/grpc/grpclog"
)

// NewGRPCLogger is a gRPC logger that writes gRPC's errors to w as JSON
// lines in Main's format, and drops its info and warnings. gRPC otherwise
// logs in plain text, which would break stderr's one JSON object a line.
// It is for the program to install, once, before any gRPC use (see Main):
//
//	grpclog.SetLoggerV2(remover.NewGRPCLogger(os.Stderr))
func NewGRPCLogger(w io.Writer) grpclog.LoggerV2 {
	return zapgrpc.NewLogger(newZap(w).WithOptions(zap.IncreaseLevel(zapcore.ErrorLevel)))
}

// logSummary logs the counts of the report, last, so that a log's tail says
// how the run went.
func logSummary(logger logr.Logger, rep Report) {
	r := rep.Result
	keys := []any{"removed", r.Removed, "failed", r.Failed, "skipped", r.Skipped,
		"bytesReclaimed", r.BytesReclaimed, "danglingRemoved", r.DanglingRemoved, "wouldRemove", rep.WouldRemove, "dryRun", rep.DryRun}
	if fs := r.ImageFs; fs != nil {
		keys = append(keys, "imageFsUsedBefore", fs.UsedBefore, "imageFsUsedAfter", fs.UsedAfter, "imageFsFreed", fs.Freed(), "imageFsStale", fs.Stale)
	}
	if r.Threshold > 0 {
		keys = append(keys, logKeyThreshold, r.Threshold, "belowThreshold", r.BelowThreshold)
	}
	logger.Info("Image removal done", keys...)
}

// newZap builds a JSON logger at info level on w.
func newZap(w io.Writer) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel))
}
