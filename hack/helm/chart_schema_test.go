package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/labels"
)

// binaryAccepts runs the controller with flags besides the few it needs:
// true when it stops on the missing kubeconfig (exit 1), false when it
// refuses its arguments (exit 2), with its stderr.
func binaryAccepts(t *testing.T, flags ...string) (bool, string) {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	args := append([]string{"--remover-image=registry.example.com/x:1"}, flags...)
	cmd := exec.Command(bin, append(args, "--kubeconfig="+filepath.Join(os.TempDir(), "no-such-kubeconfig-for-helm-tests"))...)
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 1 && strings.Contains(stderr.String(), "kubeconfig"):
		return true, ""
	case errors.As(err, &exit) && exit.ExitCode() == 2:
		return false, strings.TrimSpace(stderr.String())
	}
	t.Fatalf("upgrade-image-cleanup %s: %v, want exit 1 (kubeconfig) or 2 (flags):\n%s", strings.Join(flags, " "), err, stderr.String())
	return false, ""
}

// agreement is one value at the edge of what the binary accepts: the
// values (YAML) and the flags the chart writes for them (several where
// the binary judges values together, as the API budget's).
type agreement struct {
	vals  string
	flags []string
}

// edgeCases are values the chart and the binary must judge alike.
func edgeCases() []agreement {
	var out []agreement
	for _, q := range []string{"0", "50Gi", "1.5Ti", ".5", "5.", "8Pi", "8192Ti", "9e15", "100e-3", "8.0001Pi", "9Pi", "8193Ti", "1e16", "1E", "0.0000001e23", "-1", "50GB", "1 Gi"} {
		out = append(out, agreement{fmt.Sprintf("imageFsThreshold: %q", q), []string{"--image-fs-threshold=" + q}})
	}
	for _, d := range []string{"0s", "0.0s", "00s", "1ns", "0.5s", "1m30s", "1.5h", "10 m", "-1s", "1d"} {
		out = append(out, agreement{fmt.Sprintf("resync: %q", d), []string{"--resync=" + d}})
	}
	for _, d := range []string{"0s", "1ns", "29s", "0.0ms"} {
		out = append(out, agreement{fmt.Sprintf("shutdownTimeout: %q", d), []string{"--shutdown-timeout=" + d}})
	}
	for _, s := range []string{
		"", " ", "a", "!a", "! a", "a=b", "a==b", "a!=b", "a=", "a= ,b", "a in (b,c)", "a notin ()", "a in (,)", "a in (b,,c)",
		"a>1", "a < 10", "a>", "a>-1", "a gt 1", "pool gpu", "a,", ",a", "a=b c", "a=b=c", "example.com/a=b", "Example.com/a=b",
		"a/b/c", "a in(b)", "ain (b)", " a = b , !c ", "-a", "a-", strings.Repeat("k", 63), strings.Repeat("k", 64),
		"a=" + strings.Repeat("v", 63), "a=" + strings.Repeat("v", 64), "a in (b c)", "in in (in)", "!in", "a=in", "a\tin\t(b)",
		"a=-b", "a=b_", "x/y=z", "a=!b", "!a=b", "a in b", "a in (b", "harvesterhci.io/managed=true,pool notin (gpu)",
	} {
		out = append(out, agreement{fmt.Sprintf("removal: {nodeSelector: %q}", s), []string{"--node-selector=" + s}})
	}
	for _, g := range []string{
		"docker.io/rancher/[mirrored", "[]", "[a]", "[^]", "[^a]", "[a-]", "[-a]", "[a-z]", `\`, `a\`, `\[`, `[\]]`, "*", "?",
		"]", "a]b", "[*]", "[[]", `[a-\]]`, "[^^]", "[a-b-c]", "docker.io/rancher/mirrored-*",
	} {
		out = append(out, agreement{fmt.Sprintf("exclude: [%q]", g), []string{"--exclude=" + g}})
	}
	for _, v := range []string{"v1.4.1", "v1.4.1 hotfix", "current", "Current", "v1..2", "-v1", ".v1", "v1+build_2", strings.Repeat("a", 128), strings.Repeat("a", 129), "v1/2"} {
		out = append(out, agreement{fmt.Sprintf("catchUp: [%q]", v), []string{"--catch-up=" + v}})
	}
	// The API budget: each value alone, the binary's default standing for
	// the other (100/s, burst 200), and both, around its bounds and around
	// burst >= qps rounded up.
	for _, b := range []struct{ qps, burst string }{
		{"0", ""}, {"-1", ""}, {"0.0000001", ""}, {"1e-46", ""}, {"0.009", ""}, {"0.01", ""}, {"0.5", ""}, {"1", ""}, {"100", ""}, {"200", ""}, {"200.5", ""}, {"201", ""}, {"1e6", ""},
		{"", "0"}, {"", "-1"}, {"", "1"}, {"", "99"}, {"", "100"}, {"", "1.5"}, {"", "1000000"}, {"", "1000001"}, {"", "9007199254740992"}, {"", "9223372036854775807"},
		{"0.0000001", "1"}, {"0.01", "1"}, {"0.5", "1"}, {"1", "1"}, {"1.5", "1"}, {"1.5", "2"}, {"299.0001", "299"}, {"300", "299"}, {"300", "300"},
		{"1e6", "1000000"}, {"1000000", "999999"}, {"1000000.5", "1000001"}, {"1000001", "1000001"}, {"1e7", "10000000"},
	} {
		var vals, flags []string
		if b.qps != "" {
			vals = append(vals, "kubeApiQps: "+b.qps)
			flags = append(flags, "--kube-api-qps="+b.qps)
		}
		if b.burst != "" {
			vals = append(vals, "kubeApiBurst: "+b.burst)
			flags = append(flags, "--kube-api-burst="+b.burst)
		}
		out = append(out, agreement{"{" + strings.Join(vals, ", ") + "}", flags})
	}
	// Tolerations: every combination of an absent, a good and a bad field
	// (and of both operators), then the other spellings one by one.
	for _, tol := range []string{
		`{"key": ""}`, `{"key": "", "operator": "Exists"}`, `{"key": "", "operator": ""}`, `{"key": "k", "operator": ""}`,
		`{"key": "example.com/dedicated", "operator": "Exists"}`, `{"key": "a/b/c", "operator": "Exists"}`,
		`{"key": "` + strings.Repeat("k", 64) + `", "operator": "Exists"}`, `{"key": "k", "value": ""}`,
		`{"key": "k", "value": "` + strings.Repeat("v", 64) + `"}`, `{"key": "k", "operator": "Exists", "value": ""}`,
		`{"key": "k", "effect": ""}`, `{"key": "k", "effect": "", "tolerationSeconds": 60}`,
		`{"key": "k", "effect": "NoExecute", "tolerationSeconds": -1}`,
	} {
		out = append(out, agreement{"removal: {tolerations: [" + tol + "]}", []string{"--removal-tolerations=[" + tol + "]"}})
	}
	type field struct {
		name string
		vals []any // nil: absent
	}
	fields := []field{
		{"key", []any{nil, "dedicated", "dedicated pool"}},
		{"operator", []any{nil, "Exists", "Equal"}},
		{"value", []any{nil, "storage", "bad value"}},
		{"effect", []any{nil, "NoSchedule", "NoExecute"}},
		{"tolerationSeconds", []any{nil, 60}},
	}
	var combine func(i int, tol map[string]any)
	combine = func(i int, tol map[string]any) {
		if i == len(fields) {
			b, _ := json.Marshal([]any{tol})
			out = append(out, agreement{"removal: {tolerations: " + string(b) + "}", []string{"--removal-tolerations=" + string(b)}})
			return
		}
		for _, v := range fields[i].vals {
			next := map[string]any{}
			for k, x := range tol {
				next[k] = x
			}
			if v != nil {
				next[fields[i].name] = v
			}
			combine(i+1, next)
		}
	}
	combine(0, map[string]any{})
	return out
}

// TestChartAgreesWithTheBinary: for each value at the edge of what the
// controller accepts, the chart (the schema and the template's checks)
// refuses it exactly when the binary refuses the flag it renders: a value
// the chart accepts and the binary refuses would install a Deployment
// that crash-loops on exit 2, and one the chart refuses and the binary
// accepts is refused for nothing. The README lists what only the binary
// refuses (a key prefix over 253 characters, durations or integers too
// large to hold, a threshold within float rounding of 8Pi).
func TestChartAgreesWithTheBinary(t *testing.T) {
	if _, err := binary(); err != nil {
		t.Fatal(err)
	}
	ch := chartForTest(t)
	cases := edgeCases()
	type verdict struct {
		ok  bool
		why string
	}
	bin := make([]verdict, len(cases))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			bin[i].ok, bin[i].why = binaryAccepts(t, c.flags...)
		}()
	}
	wg.Wait()
	for i, c := range cases {
		vals, err := chartutil.ReadValues([]byte(c.vals))
		if err != nil {
			t.Fatalf("%s: %v", c.vals, err)
		}
		_, chartErr := install(ch, vals)
		switch {
		case chartErr == nil && !bin[i].ok:
			t.Errorf("the chart accepts %s, the binary refuses %q: %s", c.vals, c.flags, bin[i].why)
		case chartErr != nil && bin[i].ok:
			t.Errorf("the chart refuses %s, which the binary accepts (%q): %v", c.vals, c.flags, chartErr)
		}
	}
}

// schemaPatterns returns the patterns a string must match for definition
// name of values.schema.json: its pattern and those of its allOf.
func schemaPatterns(t *testing.T, name string) []*regexp.Regexp {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	type def struct {
		Pattern string `json:"pattern"`
		AllOf   []struct {
			Pattern string `json:"pattern"`
		} `json:"allOf"`
	}
	var schema struct {
		Definitions map[string]def `json:"definitions"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	d, ok := schema.Definitions[name]
	if !ok {
		t.Fatalf("values.schema.json has no definition %s", name)
	}
	var out []*regexp.Regexp
	for _, p := range append([]string{d.Pattern}, func() (ps []string) {
		for _, a := range d.AllOf {
			ps = append(ps, a.Pattern)
		}
		return ps
	}()...) {
		if p != "" {
			out = append(out, regexp.MustCompile(p))
		}
	}
	if len(out) == 0 {
		t.Fatalf("definition %s has no pattern", name)
	}
	return out
}

func matchesAll(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if !re.MatchString(s) {
			return false
		}
	}
	return true
}

// randomString joins n pieces drawn from alphabet.
func randomString(r *rand.Rand, alphabet []string, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// TestSchemaSelectorIsLabelsParse: the labelSelector pattern accepts
// exactly the strings labels.Parse (the binary's --node-selector) does,
// over random strings of the selector's tokens.
func TestSchemaSelectorIsLabelsParse(t *testing.T) {
	alphabet := []string{"a", "b", "1", "-", ".", "_", "/", "x.io/", " ", "\t", "=", "==", "!=", "!", ",", "(", ")", "<", ">", " in ", " notin ", "in", "A", ":"}
	agreesWith(t, "labelSelector", "selector", rand.New(rand.NewPCG(1, 2)), alphabet, 10, func(s string) error {
		_, err := labels.Parse(s)
		return err
	})
}

// TestSchemaGlobIsPathMatch: the glob pattern accepts exactly the patterns
// path.Match (the binary's --exclude) does, over random strings of its
// special characters.
func TestSchemaGlobIsPathMatch(t *testing.T) {
	alphabet := []string{"a", "/", "[", "]", "^", "-", `\`, "*", "?", "."}
	agreesWith(t, "glob", "glob", rand.New(rand.NewPCG(3, 4)), alphabet, 8, func(g string) error {
		_, err := path.Match(g, "")
		return err
	})
}

// agreesWith checks that the schema's patterns of definition accept
// exactly the strings parse accepts, over 50,000 random strings of 1 to
// maxLen tokens of alphabet, at least 1,000 of them accepted (else the
// alphabet tests too little).
func agreesWith(t *testing.T, definition, what string, r *rand.Rand, alphabet []string, maxLen int, parse func(string) error) {
	t.Helper()
	res := schemaPatterns(t, definition)
	accepted := 0
	for range 50000 {
		s := randomString(r, alphabet, 1+r.IntN(maxLen))
		err := parse(s)
		if got, want := matchesAll(res, s), err == nil; got != want {
			t.Errorf("%s %q: schema accepts %v, the binary's parser %v", what, s, got, err)
		}
		if err == nil {
			accepted++
		}
	}
	if accepted < 1000 {
		t.Errorf("only %d random %ss are accepted: the alphabet tests too little", accepted, what)
	}
}

// TestImageReferences: image.repository and remover.image take the image
// references a registry and the kubelet take, with a port, a tag with
// capitals and a digest, and refuse the rest (TestAdversaryRemoverImage...).
func TestImageReferences(t *testing.T) {
	digest := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	for _, c := range []struct {
		vals map[string]any
		ok   bool
	}{
		{map[string]any{"remover": map[string]any{"image": "registry.example.com:5000/harvester/harvester:v1.6.0-RC1"}}, true},
		{map[string]any{"remover": map[string]any{"image": "localhost/a__b/c-d:1@" + digest}}, true},
		{map[string]any{"remover": map[string]any{"image": "rancher/harvester@" + digest}}, true},
		{map[string]any{"remover": map[string]any{"image": "harvester"}}, true},
		{map[string]any{"remover": map[string]any{"image": "Rancher/harvester:v1"}}, true}, // a registry host may have capitals
		{map[string]any{"remover": map[string]any{"image": "rancher/Harvester:v1"}}, false},
		{map[string]any{"remover": map[string]any{"image": "rancher/harvester:"}}, false},
		{map[string]any{"remover": map[string]any{"image": "rancher//harvester"}}, false},
		{map[string]any{"remover": map[string]any{"image": "rancher/harvester:v1 "}}, false},
		{map[string]any{"image": map[string]any{"repository": "registry.example.com:5000/harvester/upgrade-image-cleanup"}}, true},
		{map[string]any{"image": map[string]any{"repository": "registry.example.com:5000:6000/x"}}, false},
		{map[string]any{"image": map[string]any{"repository": "registry.example.com/x:v1"}}, false},
		{map[string]any{"image": map[string]any{"repository": "registry.example.com/x-"}}, false},
	} {
		_, err := install(chartForTest(t), c.vals)
		if (err == nil) != c.ok {
			t.Errorf("%v: install error %v, want accepted %v", c.vals, err, c.ok)
		}
	}
}

// TestSchemaKubeAPIBudget: values.schema.json itself refuses the API
// budget values the binary refuses alone (a rate not above 0 or above its
// maximum, a burst below 1 or not an integer, a string for a number), so
// Helm names the value before any template runs; null is unset. Burst
// against the rate is the template's check (TestRefusals).
func TestSchemaKubeAPIBudget(t *testing.T) {
	const schemaErr = "don't meet the specifications of the schema"
	for _, c := range []struct {
		name string
		vals map[string]any
		want string // "" when accepted, else what the error names
	}{
		{"both null", map[string]any{"kubeApiQps": nil, "kubeApiBurst": nil}, ""},
		{"qps at the maximum", map[string]any{"kubeApiQps": 1e6, "kubeApiBurst": 1e6}, ""},
		{"qps at the minimum", map[string]any{"kubeApiQps": 0.01}, ""},
		{"qps below the minimum, 0 in client-go's float32", map[string]any{"kubeApiQps": 1e-46}, "/kubeApiQps"},
		{"qps below the minimum", map[string]any{"kubeApiQps": 0.009}, "/kubeApiQps"},
		{"burst at the maximum", map[string]any{"kubeApiBurst": int64(1000000)}, ""},
		{"burst above the maximum", map[string]any{"kubeApiBurst": int64(1000001)}, "/kubeApiBurst"},
		{"qps an integer", map[string]any{"kubeApiQps": int64(150)}, ""},
		{"burst at 1", map[string]any{"kubeApiQps": 0.5, "kubeApiBurst": int64(1)}, ""},
		{"qps 0", map[string]any{"kubeApiQps": 0.0}, "/kubeApiQps"},
		{"qps negative", map[string]any{"kubeApiQps": -1.0}, "/kubeApiQps"},
		{"qps above the maximum", map[string]any{"kubeApiQps": 1000000.5, "kubeApiBurst": 2e6}, "/kubeApiQps"},
		{"qps a string", map[string]any{"kubeApiQps": "100"}, "/kubeApiQps"},
		{"qps a bool", map[string]any{"kubeApiQps": true}, "/kubeApiQps"},
		{"burst 0", map[string]any{"kubeApiQps": 0.5, "kubeApiBurst": 0.0}, "/kubeApiBurst"},
		{"burst negative", map[string]any{"kubeApiBurst": int64(-1)}, "/kubeApiBurst"},
		{"burst a fraction", map[string]any{"kubeApiBurst": 200.5}, "/kubeApiBurst"},
		{"burst a string", map[string]any{"kubeApiBurst": "200"}, "/kubeApiBurst"},
		{"misspelt", map[string]any{"kubeApiQPS": 200.0}, "kubeApiQPS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := install(chartForTest(t), c.vals)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%v: %v, want accepted", c.vals, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), schemaErr) || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%v: error %v, want the schema's naming %s", c.vals, err, c.want)
			}
		})
	}
}
