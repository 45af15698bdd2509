//go:build bench

// The seeded jitter of the retry model needs math/rand's global source to
// honour Seed (the retry approach draws its jitter from wait.Backoff.Step,
// which uses that source).
//go:debug randseednop=0

// Command bench measures the controller for BENCHMARKS.md; hack/bench/run
// drives it. Each subcommand writes one JSON file of results; "report"
// renders them, with benchstat's summary of the Go benchmarks, as
// BENCHMARKS.md.
//
//	bench sim           readiness-to-first-request on a fake clock: the real
//	                    controller (fake clientsets) against a model of
//	                    Harvester's retry loop, over many repo outages
//	bench flips         the same latency on a real control plane, from the pod
//	                    Ready write to the repo's first request, beside a bare
//	                    informer's watch latency (needs root: network namespace)
//	bench scale         controller memory and CPU with 10,000 unrelated
//	                    EndpointSlices, label-filtered against unfiltered
//	bench informer-mem  one informer's heap and CPU after sync (run by scale
//	                    in a process of its own)
//	bench apibudget     the controller at several API budgets (--kube-api-qps,
//	                    --kube-api-burst): the back-to-back flips beside the
//	                    bare informer, a removal on hundreds of Nodes, and its
//	                    requests counted in the API server's audit log
//	bench report        render BENCHMARKS.md
//
// It is built only with -tags bench, so go build, vet and test of ./... leave
// it out.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"
)

// signalled ends on SIGINT or SIGTERM, so that a bench stopped by
// hack/bench/run's trap still stops its controller and deletes its network
// namespace.
var signalled context.Context

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var stop context.CancelFunc
	signalled, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "sim":
		err = runSim(args)
	case "flips":
		err = runFlips(args)
	case "scale":
		err = runScale(args)
	case "informer-mem":
		err = runInformerMem(args)
	case "apibudget":
		err = runAPIBudget(args)
	case "report":
		err = runReport(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", os.Args[1], err)
		stop()
		os.Exit(1)
	}
}

// sleep waits for d, or less if ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: bench sim|flips|scale|informer-mem|apibudget|report [flags]")
	os.Exit(2)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// Stats summarises a sample of durations, in milliseconds.
type Stats struct {
	N    int     `json:"n"`
	Min  float64 `json:"minMs"`
	P50  float64 `json:"p50Ms"`
	P90  float64 `json:"p90Ms"`
	P99  float64 `json:"p99Ms"`
	Max  float64 `json:"maxMs"`
	Mean float64 `json:"meanMs"`
}

// stats computes Stats; percentiles are nearest-rank (the smallest value
// with at least p% of the sample at or below it).
func stats(ds []time.Duration) Stats {
	if len(ds) == 0 {
		return Stats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		return ms(s[max(i, 0)])
	}
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Stats{N: len(s), Min: ms(s[0]), P50: rank(50), P90: rank(90), P99: rank(99), Max: ms(s[len(s)-1]),
		Mean: ms(sum) / float64(len(s))}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
