package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestAdversaryKubeAPIQPSAcceptedButZeroInTheClient: README "Flags" and
// parseFlags's own error say --kube-api-qps "must be a number of requests
// per second above 0"; values.schema.json likewise lets through any
// kubeApiQps above 0. parseFlags checks the float64, but setAPIBudget
// hands client-go float32(qps): a rate such as 1e-46 is above 0, passes
// every check (the chart's too: it renders --kube-api-qps=1e-46), and
// becomes a token bucket of 0 tokens a second. After the burst, every
// request the process makes waits forever (golang.org/x/time/rate with
// limit 0: an infinite delay, or "would exceed context deadline"), so the
// controller starts and then never reaches the API server again, with no
// error naming the flag. maxKubeAPIQPS's comment ("inside float32,
// client-go's type") bounds the top of the range only.
//
// Either parseFlags refuses such a rate (exit 2 naming the flag), or the
// client gets a rate above 0.
func TestAdversaryKubeAPIQPSAcceptedButZeroInTheClient(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfgFile := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n" +
		"contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {token: t}}]\n"
	if err := os.WriteFile(kubeconfig, []byte(cfgFile), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, qps := range []string{"1e-46", "1e-100", "5e-324"} {
		t.Run(qps, func(t *testing.T) {
			f, err := parseFlags([]string{"--dry-run", "--kubeconfig", kubeconfig, "--kube-api-qps", qps, "--kube-api-burst", "1"}, &bytes.Buffer{})
			if err != nil {
				return // refused, naming the flag: fine
			}
			cfg, err := restConfig(f.kubeconfig, f.kubeAPIQPS, f.kubeAPIBurst)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.RateLimiter.QPS(); !(got > 0) {
				t.Errorf("--kube-api-qps=%s is accepted (%v > 0), but the client's token bucket refills at %v a second: after the burst no request ever goes", qps, f.kubeAPIQPS, got)
			}
		})
	}
}
