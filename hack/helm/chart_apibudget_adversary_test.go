package main

// Adversarial review of issue 16's API budget values (kubeApiQps,
// kubeApiBurst): each test names a defect and fails while it is there.

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
)

// TestAdversaryBurstFromAValuesFileOverflowsInt: README ("The schema cannot
// match the binary everywhere ... The schema is stricter in two small
// ways: a catchUp entry with spaces around it ... and a >/< selector
// integer of 19 digits") and TestChartAgreesWithTheBinary's doc ("one the
// chart refuses and the binary accepts is refused for nothing") promise
// that the chart refuses no API budget the binary accepts. Helm reads a
// values file's numbers as float64, and the template's `int` turns a
// float64 at or above 2^63 into math.MinInt64 (Go's conversion overflows),
// so `kubeApiBurst: 9223372036854775807` (the largest int64, which
// --kube-api-burst takes) passes the schema (an integer, at least 1) and
// then fails the render with a burst the operator never wrote:
// "kubeApiBurst -9223372036854775808 must be at least kubeApiQps ...".
// The same value given with --set (an int64) renders.
func TestAdversaryBurstFromAValuesFileOverflowsInt(t *testing.T) {
	const burst = "9223372036854775807"
	// Since the fix both refuse it, the binary naming its bound and the
	// chart refusing it in the schema, before the template's int can
	// overflow.
	if ok, why := binaryAccepts(t, "--kube-api-burst="+burst); ok || !strings.Contains(why, "from 1 to 1000000") {
		t.Errorf("the binary on --kube-api-burst=%s: accepted %t (%s); want it refused, naming its bound", burst, ok, why)
	}
	vals, err := chartutil.ReadValues([]byte("kubeApiBurst: " + burst))
	if err != nil {
		t.Fatal(err)
	}
	_, err = install(chartForTest(t), vals)
	switch {
	case err == nil:
		t.Errorf("values file kubeApiBurst: %s: the chart renders a burst the binary refuses", burst)
	case strings.Contains(err.Error(), "-9223372036854775808"):
		t.Errorf("the refusal names a burst the operator never wrote (int overflow of the float64 Helm read): %v", err)
	case !strings.Contains(err.Error(), "kubeApiBurst"):
		t.Errorf("the refusal does not name kubeApiBurst: %v", err)
	}
}
