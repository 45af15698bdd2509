package standalone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// readiness reports why the process is not ready, or "" when it is: the
// informer caches synced and, with leader election, a leader known (this
// replica or another: a standby is ready to take over).
func readiness(c *cleanup.Controller, leader func() string) func() string {
	return func() string {
		if !c.HasSynced() {
			return "informer caches not synced"
		}
		if leader() == "" {
			return "no leader known yet"
		}
		return ""
	}
}

// serve starts the metrics and health endpoints on the addresses given ("":
// off). The listeners are opened here, so a busy port fails the start with
// its flag's name; the returned func shuts them down.
func serve(ctx context.Context, metricsAddr, healthAddr string, reg *prometheus.Registry, notReady func() string) (func(), error) {
	var servers []*http.Server
	stop := func() {
		for _, s := range servers {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = s.Shutdown(sctx)
			cancel()
		}
	}
	start := func(flag, addr string, h http.Handler) error {
		if addr == "" {
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s %q: %w", flag, addr, err)
		}
		s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, s)
		go func() {
			if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				klog.FromContext(ctx).Error(err, "Server stopped", "flag", flag, "addr", addr)
			}
		}()
		klog.FromContext(ctx).Info("Serving", "flag", flag, "addr", l.Addr().String())
		return nil
	}
	metrics := http.NewServeMux()
	metrics.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	health := http.NewServeMux()
	health.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok") // the process answers: alive
	})
	health.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := notReady(); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	if metricsAddr != "" && metricsAddr == healthAddr {
		metrics.Handle("/healthz", health)
		metrics.Handle("/readyz", health)
		err := start("--metrics-addr", metricsAddr, metrics)
		return stop, err
	}
	if err := start("--metrics-addr", metricsAddr, metrics); err != nil {
		stop()
		return func() {}, err
	}
	if err := start("--health-addr", healthAddr, health); err != nil {
		stop()
		return func() {}, err
	}
	return stop, nil
}
