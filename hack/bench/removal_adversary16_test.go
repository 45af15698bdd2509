//go:build bench

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
)

// TestAdversaryRemovalResultWithoutAProcsSuffix: parseGoBench strips
// `-\d+$` from every benchmark name as the GOMAXPROCS suffix, but the
// testing package writes that suffix only when GOMAXPROCS is not 1
// (testing's benchmarkName). BenchmarkContainerdRemoval's method names
// ended in digits of their own (remover-4, floor-4): on one CPU
// "method=remover-4" lost its "-4", and remover-1 and remover-4 pooled
// under one name and one median. The calls in flight are now a name of
// their own (method=remover/parallel=DEFAULT).
//
// The same figures, as `go test -bench` prints them on one CPU, must give
// the same result as on two.
func TestAdversaryRemovalResultWithoutAProcsSuffix(t *testing.T) {
	const twoCPUs = `BenchmarkContainerdRemoval/images=200/method=remover/parallel=1-2         	       1	2000000000 ns/op	        10.00 ms/image
BenchmarkContainerdRemoval/images=200/method=remover/parallel=DEFAULT-2         	       1	1000000000 ns/op	         5.000 ms/image
BenchmarkContainerdRemoval/images=200/method=crictl-2            	       1	8000000000 ns/op	        40.00 ms/image
BenchmarkContainerdRemoval/images=200/method=floor/parallel=1-2           	       1	1500000000 ns/op	         7.500 ms/image
BenchmarkContainerdRemoval/images=200/method=floor/parallel=4-2           	       1	 900000000 ns/op	         4.500 ms/image
`
	const oneCPU = `BenchmarkContainerdRemoval/images=200/method=remover/parallel=1         	       1	2000000000 ns/op	        10.00 ms/image
BenchmarkContainerdRemoval/images=200/method=remover/parallel=DEFAULT         	       1	1000000000 ns/op	         5.000 ms/image
BenchmarkContainerdRemoval/images=200/method=crictl            	       1	8000000000 ns/op	        40.00 ms/image
BenchmarkContainerdRemoval/images=200/method=floor/parallel=1           	       1	1500000000 ns/op	         7.500 ms/image
BenchmarkContainerdRemoval/images=200/method=floor/parallel=4           	       1	 900000000 ns/op	         4.500 ms/image
`
	parse := func(text string) RemovalResult {
		t.Helper()
		// The remover's lines at its default, whatever that is.
		text = strings.ReplaceAll(text, "parallel=DEFAULT", "parallel="+strconv.Itoa(remover.DefaultParallelRemovals))
		path := filepath.Join(t.TempDir(), "removal.txt")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := parseGoBench(path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := removalResult(g)
		if err != nil {
			t.Fatalf("removalResult: %v", err)
		}
		return r
	}
	want := parse(twoCPUs)
	if d, name := want.Goal.Default, "remover-"+strconv.Itoa(remover.DefaultParallelRemovals); d.Name != name || d.Ms != 1000 || d.VsFloor != 1000.0/1500 {
		t.Fatalf("two CPUs: default %+v, want %s at 1000 ms, 1000/1500 of floor-1", d, name)
	}
	got := parse(oneCPU)
	if len(got.Sizes) != 1 || len(got.Sizes[0].Methods) != 5 {
		t.Errorf("one CPU: methods %+v, want the 5 methods measured", got.Sizes)
	}
	if got.Goal.Default != want.Goal.Default || got.Goal.Floor != want.Goal.Floor {
		t.Errorf("one CPU: default %+v, floor %+v; want %+v, %+v as on two CPUs", got.Goal.Default, got.Goal.Floor, want.Goal.Default, want.Goal.Floor)
	}
}
