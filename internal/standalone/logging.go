package standalone

import (
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
)

// NewLogger builds the zap logger, writing to w, and makes it klog's too, so
// client-go's own lines come out in the same format. verbosity v enables
// logr's V(v) lines. The returned func flushes both.
func NewLogger(format string, verbosity int, w io.Writer) (logr.Logger, func(), error) {
	var enc zapcore.Encoder
	switch format {
	case "json":
		enc = zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	case "console":
		c := zap.NewDevelopmentEncoderConfig()
		c.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = zapcore.NewConsoleEncoder(c)
	default:
		return logr.Logger{}, nil, fmt.Errorf("log format %q: must be json or console", format)
	}
	// zapr maps logr's V(n) to zap level -n.
	level := zap.NewAtomicLevelAt(zapcore.Level(-verbosity))
	z := zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level))
	logger := zapr.NewLogger(z)
	// klog checks its own verbosity before it hands client-go's V(n) lines
	// to the logger, so -v must reach klog too.
	var kfs flag.FlagSet
	klog.InitFlags(&kfs)
	if err := kfs.Set("v", strconv.Itoa(verbosity)); err != nil {
		return logr.Logger{}, nil, fmt.Errorf("-v %d: %w", verbosity, err)
	}
	klog.SetLoggerWithOptions(logger, klog.ContextualLogger(true))
	return logger, func() { _ = z.Sync(); klog.Flush() }, nil
}
