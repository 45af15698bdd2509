//go:build bench

package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

// goBench holds the Go benchmarks' results: per benchmark (without the
// GOMAXPROCS suffix) and unit, every value of the -count runs.
type goBench map[string]map[string][]float64

var procsSuffix = regexp.MustCompile(`-\d+$`)

func parseGoBench(path string) (goBench, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := goBench{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := procsSuffix.ReplaceAllString(strings.TrimPrefix(fields[0], "Benchmark"), "")
		if out[name] == nil {
			out[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			out[name][fields[i+1]] = append(out[name][fields[i+1]], v)
		}
	}
	return out, sc.Err()
}

// Med is the median of one benchmark's unit over the runs; 0 when absent.
func (g goBench) Med(name, unit string) float64 {
	vs := slices.Clone(g[name][unit])
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// Min is the least of one benchmark's unit over the runs: the run the
// machine's other load disturbed least. 0 when absent.
func (g goBench) Min(name, unit string) float64 {
	vs := g[name][unit]
	if len(vs) == 0 {
		return 0
	}
	return slices.Min(vs)
}

// Machine describes where the figures were measured.
type Machine struct {
	CPUs       int
	CPUModel   string
	Hypervisor string
	MemTotal   string
	Kernel     string
	OS         string
	Go         string
	// LoadAvg and OtherAPIServers describe the machine when the run began.
	LoadAvg         string
	OtherAPIServers string
	// Nice is hack/bench/run's nice value, which everything it started inherited.
	Nice string
	Etcd string
	// Containerd is the containerd section 6 ran on.
	Containerd string
	TmpFS      string
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		var family, model string
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch {
			case k == "model name" && m.CPUModel == "":
				m.CPUModel = v
			case k == "cpu family" && family == "":
				family = v
			case k == "model" && model == "":
				model = v
			case k == "flags" && strings.Contains(" "+v+" ", " hypervisor "):
				m.Hypervisor = "virtual machine (hypervisor flag set)"
			}
		}
		m.CPUModel = fmt.Sprintf("%s (family %s, model %s)", m.CPUModel, family, model)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemTotal = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return "unknown"
		}
		line, _, _ := strings.Cut(string(out), "\n")
		return strings.TrimSpace(line)
	}
	m.Go = first("go", "version")
	m.Etcd = first("etcd", "--version")
	m.Containerd = first("containerd", "--version")
	m.TmpFS = first("stat", "-f", "-c", "%T", os.TempDir())
	return m
}

// reportData is what the template sees.
type reportData struct {
	Command, Elapsed, Results string
	Count                     int
	Machine                   Machine
	Sim                       SimResult
	Flips                     FlipsResult
	Paced, BackToBack         FlipSeries
	Scale                     ScaleResult
	Budget                    APIBudgetResult
	// Default is Budget's result at the binary's default budget, which
	// section 2's flips also ran at.
	Default   BudgetResult
	Go        goBench
	Benchstat string
	// Removal is the removal benchmark on a real containerd (section 6).
	Removal RemovalResult
	// Medians of the scale runs, by variant, in the order of Scale.
	Ctrl []ScaleRun
	Inf  []InformerMem
}

func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	results := fs.String("results", ".", "folder holding sim.json, flips.json, scale.json, apibudget.json, gobench.txt, benchstat.txt, removal.txt")
	out := fs.String("out", "BENCHMARKS.md", "where to write")
	command := fs.String("command", "sudo hack/bench/run", "the command that produced the results")
	elapsed := fs.String("elapsed", "", "how long the command took")
	count := fs.Int("count", 6, "the -count of the Go benchmarks")
	_ = fs.Parse(args)

	d := reportData{Command: *command, Elapsed: *elapsed, Results: *results, Count: *count, Machine: machine()}
	if err := readJSON(filepath.Join(*results, "sim.json"), &d.Sim); err != nil {
		return err
	}
	if err := readJSON(filepath.Join(*results, "flips.json"), &d.Flips); err != nil {
		return err
	}
	for _, s := range d.Flips.Series {
		switch s.Name {
		case "paced":
			d.Paced = s
		case "back-to-back":
			d.BackToBack = s
		}
	}
	if err := readJSON(filepath.Join(*results, "scale.json"), &d.Scale); err != nil {
		return err
	}
	if err := readJSON(filepath.Join(*results, "apibudget.json"), &d.Budget); err != nil {
		return err
	}
	d.Default = d.Budget.Default()
	if d.Default.Upgrades == 0 || d.Default.Removal.Nodes == 0 {
		return fmt.Errorf("results incomplete: apibudget.json has no result at the default budget %s", defaultBudget())
	}
	var err error
	if d.Go, err = parseGoBench(filepath.Join(*results, "gobench.txt")); err != nil {
		return err
	}
	removal, err := parseGoBench(filepath.Join(*results, "removal.txt"))
	if err != nil {
		return err
	}
	if d.Removal, err = removalResult(removal); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(*results, "benchstat.txt"))
	if err != nil {
		return err
	}
	d.Benchstat = strings.TrimRight(string(b), "\n")
	if b, err := os.ReadFile(filepath.Join(*results, "environment.txt")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, " ")
			switch k {
			case "loadavg":
				d.Machine.LoadAvg = v
			case "other-apiservers":
				d.Machine.OtherAPIServers = v
			case "nice":
				d.Machine.Nice = v
			}
		}
	}
	d.Ctrl, d.Inf = medianRuns(d.Scale)
	if len(d.Sim.Scenarios) < 2 || len(d.Ctrl) < 2 || len(d.Inf) < 2 {
		return fmt.Errorf("results incomplete: %d scenarios, %d controller variants, %d informer variants", len(d.Sim.Scenarios), len(d.Ctrl), len(d.Inf))
	}

	tmpl, err := template.New("report").Funcs(template.FuncMap{
		"f0": func(v float64) string { return thousands(strconv.FormatFloat(v, 'f', 0, 64)) },
		"f1": func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
		"f2": func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) },
		"s1": func(ms float64) string { return strconv.FormatFloat(ms/1000, 'f', 1, 64) },
		"s2": func(ms float64) string { return strconv.FormatFloat(ms/1000, 'f', 2, 64) },
		"us": func(ns float64) string { return strconv.FormatFloat(ns/1000, 'f', 2, 64) },
		"ms": func(ns float64) string { return strconv.FormatFloat(ns/1e6, 'f', 1, 64) },
		"mib": func(b float64) string {
			return strconv.FormatFloat(b/(1<<20), 'f', 1, 64)
		},
		"mibi": func(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) },
		"x": func(v float64) string {
			if v >= 10 {
				return thousands(strconv.FormatFloat(v, 'f', 0, 64))
			}
			return strconv.FormatFloat(v, 'f', 1, 64)
		},
		"div": func(a, b float64) float64 {
			if b == 0 {
				return 0
			}
			return a / b
		},
		"sub":  func(a, b float64) float64 { return a - b },
		"mul":  func(a, b float64) float64 { return a * b },
		"half": func(n int) int { return n / 2 },
		"i2f":  func(i int) float64 { return float64(i) },
		"i64f": func(i int64) float64 { return float64(i) },
		"pct": func(a, b int) string {
			if b == 0 {
				return "0"
			}
			return strconv.FormatFloat(100*float64(a)/float64(b), 'f', 0, 64)
		},
	}).Parse(reportTemplate)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, d); err != nil {
		return err
	}
	return os.WriteFile(*out, buf.Bytes(), 0o644)
}

// thousands puts commas in the integer part of a decimal number.
func thousands(s string) string {
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := b.String()
	if neg {
		out = "-" + out
	}
	if frac != "" {
		out += "." + frac
	}
	return out
}

// medianRuns returns, per variant in first-seen order, the run whose
// resident set is the median (a real run, not a mix of runs).
func medianRuns(s ScaleResult) ([]ScaleRun, []InformerMem) {
	var ctrl []ScaleRun
	var order []string
	byVariant := map[string][]ScaleRun{}
	for _, r := range s.Controller {
		if _, ok := byVariant[r.Variant]; !ok {
			order = append(order, r.Variant)
		}
		byVariant[r.Variant] = append(byVariant[r.Variant], r)
	}
	for _, v := range order {
		runs := byVariant[v]
		slices.SortFunc(runs, func(a, b ScaleRun) int { return int(a.RSSBytes - b.RSSBytes) })
		ctrl = append(ctrl, runs[len(runs)/2])
	}
	var inf []InformerMem
	order = nil
	infBy := map[string][]InformerMem{}
	for _, r := range s.Informer {
		if _, ok := infBy[r.Variant]; !ok {
			order = append(order, r.Variant)
		}
		infBy[r.Variant] = append(infBy[r.Variant], r)
	}
	for _, v := range order {
		runs := infBy[v]
		slices.SortFunc(runs, func(a, b InformerMem) int { return int(a.HeapLiveBytes - b.HeapLiveBytes) })
		inf = append(inf, runs[len(runs)/2])
	}
	return ctrl, inf
}
