//go:build bench

package main

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
)

// The removal benchmark's goals at goalImages images (issue 16): the
// remover at its default within goalVsFloor of the bare CRI calls one at a
// time, and at least goalVsCrictl times faster than a crictl rmi per image.
const (
	goalImages   = 200
	goalVsFloor  = 1.2
	goalVsCrictl = 5.0
)

// RemovalMethod is one method's figures at one number of images: the
// median over the runs of BenchmarkContainerdRemoval.
type RemovalMethod struct {
	// Name is the benchmark's method: remover-P, crictl or floor-P.
	Name string
	// Kind is "remover", "crictl" or "floor"; Parallel is P (1 for crictl).
	Kind     string
	Parallel int
	// Ms is the median time to remove all the images; PerImageMs that over
	// the images; Runs how many runs the median is of; MinMs and MaxMs the
	// fastest and slowest run, the spread the machine's other work gave.
	Ms, PerImageMs float64
	MinMs, MaxMs   float64
	Runs           int
	// VsFloor is Ms over the floor one at a time (floor-1); CrictlOver is
	// crictl's Ms over this one's.
	VsFloor, CrictlOver float64
}

// RemovalSize is every method at one number of images.
type RemovalSize struct {
	Images  int
	Methods []RemovalMethod
	// Floor is floor-1, Crictl the crictl loop, Default the remover at
	// remover.DefaultParallelRemovals, Best the fastest remover-P, and
	// OneAtATime remover-1, which makes floor-1's calls (zero when not
	// measured).
	Floor, Crictl, Default, Best, OneAtATime RemovalMethod
	// BestRun is the remover-P with the fastest single run: the run the
	// machine's other work disturbed least.
	BestRun RemovalMethod
}

// RemovalResult is the removal benchmark, as the report shows it.
type RemovalResult struct {
	Sizes []RemovalSize
	// DefaultParallel is the remover's default --parallel-removals.
	DefaultParallel int
	// Rounds is how many runs of the benchmark the medians are of (the
	// fewest any method had).
	Rounds int
	// Goal is the size the goals are judged at, with whether each is met.
	Goal                        RemovalSize
	MeetsVsFloor, MeetsVsCrictl bool
	GoalVsFloor, GoalVsCrictl   float64
	GoalImages                  int
}

// removalName matches the benchmark's names, once parseGoBench has taken
// off the GOMAXPROCS suffix: method=remover/parallel=4, method=crictl. The
// calls in flight are a name of their own, never a trailing -N, which Go
// leaves off the GOMAXPROCS suffix on one CPU. The older form, remover-4,
// is read from runs made with a suffix (results from before the rename).
// methodOrder is the place of a method kind's rows in the report.
func methodOrder(kind string) int {
	switch kind {
	case "remover":
		return 0
	case "crictl":
		return 1
	}
	return 2
}

var removalName = regexp.MustCompile(`^ContainerdRemoval/images=(\d+)/method=(remover|crictl|floor)(?:/parallel=(\d+)|-(\d+))?$`)

// removalResult turns the Go benchmark output of BenchmarkContainerdRemoval
// into the report's figures. It fails when a size lacks the floor one at a
// time, the crictl loop or the remover at its default, which every ratio
// needs.
func removalResult(g goBench) (RemovalResult, error) {
	r := RemovalResult{DefaultParallel: remover.DefaultParallelRemovals, GoalVsFloor: goalVsFloor, GoalVsCrictl: goalVsCrictl, GoalImages: goalImages}
	bySize := map[int]*RemovalSize{}
	for name, units := range g {
		m := removalName.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		p, inFlight := 1, m[3]+m[4]
		if inFlight != "" {
			p, _ = strconv.Atoi(inFlight)
		}
		if bySize[n] == nil {
			bySize[n] = &RemovalSize{Images: n}
		}
		ms := g.Med(name, "ns/op") / 1e6
		if runs := len(units["ns/op"]); r.Rounds == 0 || runs < r.Rounds {
			r.Rounds = runs
		}
		method := m[2]
		if inFlight != "" {
			method = fmt.Sprintf("%s-%d", m[2], p)
		}
		bySize[n].Methods = append(bySize[n].Methods, RemovalMethod{
			Name: method, Kind: m[2], Parallel: p,
			Ms: ms, PerImageMs: ms / float64(n), Runs: len(units["ns/op"]),
			MinMs: slices.Min(units["ns/op"]) / 1e6, MaxMs: slices.Max(units["ns/op"]) / 1e6,
		})
	}
	if len(bySize) == 0 {
		return r, fmt.Errorf("no BenchmarkContainerdRemoval results")
	}
	for _, n := range slices.Sorted(maps.Keys(bySize)) {
		s := bySize[n]
		slices.SortFunc(s.Methods, func(a, b RemovalMethod) int {
			return cmp.Or(methodOrder(a.Kind)-methodOrder(b.Kind), a.Parallel-b.Parallel)
		})
		var haveFloor, haveCrictl, haveDefault bool
		for _, m := range s.Methods {
			switch {
			case m.Kind == "floor" && m.Parallel == 1:
				s.Floor, haveFloor = m, true
			case m.Kind == "crictl":
				s.Crictl, haveCrictl = m, true
			case m.Kind == "remover" && m.Parallel == r.DefaultParallel:
				s.Default, haveDefault = m, true
			}
		}
		if !haveFloor || !haveCrictl || !haveDefault {
			return r, fmt.Errorf("removal results for %d images lack floor-1 (%t), crictl (%t) or remover-%d (%t)", n, haveFloor, haveCrictl, r.DefaultParallel, haveDefault)
		}
		for i := range s.Methods {
			m := &s.Methods[i]
			m.VsFloor = m.Ms / s.Floor.Ms
			m.CrictlOver = s.Crictl.Ms / m.Ms
			if m.Kind == "remover" && (s.Best.Name == "" || m.Ms < s.Best.Ms) {
				s.Best = *m
			}
			if m.Kind == "remover" && (s.BestRun.Name == "" || m.MinMs < s.BestRun.MinMs) {
				s.BestRun = *m
			}
			if m.Name == s.Default.Name {
				s.Default = *m
			}
			if m.Kind == "remover" && m.Parallel == 1 {
				s.OneAtATime = *m
			}
		}
		r.Sizes = append(r.Sizes, *s)
		if n == goalImages {
			r.Goal = *s
		}
	}
	if r.Goal.Images == 0 {
		// A run without the goal's size (a quick one): judge at the
		// largest size it measured.
		r.Goal = r.Sizes[len(r.Sizes)-1]
	}
	r.MeetsVsFloor = r.Goal.Default.VsFloor <= goalVsFloor
	r.MeetsVsCrictl = r.Goal.Default.CrictlOver >= goalVsCrictl
	return r, nil
}
