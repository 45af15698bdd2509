package standalone

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHealthEndpoints(t *testing.T) {
	var why atomic.Value
	why.Store("informer caches not synced")
	// Port 0 picks free ports; serve logs them, so ask it for fixed ones instead.
	var metricsAddr, healthAddr string
	for _, addr := range []*string{&metricsAddr, &healthAddr} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*addr = l.Addr().String()
		l.Close()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "probe_total", Help: "A metric to find."}))
	stop, err := serve(context.Background(), metricsAddr, healthAddr, reg, func() string { return why.Load().(string) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("http://" + healthAddr + "/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200 while alive", code)
	}
	if code, body := get("http://" + healthAddr + "/readyz"); code != 503 || !strings.Contains(body, "not synced") {
		t.Errorf("/readyz = %d %q, want 503 saying why", code, body)
	}
	why.Store("")
	if code, _ := get("http://" + healthAddr + "/readyz"); code != 200 {
		t.Errorf("/readyz = %d, want 200 once ready", code)
	}
	if code, body := get("http://" + metricsAddr + "/metrics"); code != 200 || !strings.Contains(body, "probe_total 0") {
		t.Errorf("/metrics = %d %q", code, body)
	}
	// A busy port names its flag.
	if _, err := serve(context.Background(), metricsAddr, healthAddr, reg, func() string { return "" }); err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Errorf("serve on a busy port = %v, want an error naming --metrics-addr", err)
	}
}
