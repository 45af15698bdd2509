package deploy_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/standalone"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// The chart's monitoring files (README, "Dashboards and alerts"): the chart
// embeds them as they are, so they are checked here, where the metrics are.
const (
	dashboardFile = "chart/upgrade-image-cleanup/monitoring/dashboard.json"
	rulesFile     = "chart/upgrade-image-cleanup/monitoring/rules.yaml"
	// runbookBase is where every alert's runbook_url points, followed by
	// the anchor of its README heading.
	runbookBase = "https://github.com/upgrade-image-cleanup/upgrade-image-cleanup/blob/main/README.md#"
	// queueName is the controller's workqueue, the name label of the
	// workqueue_* metrics.
	queueName = "upgrade-image-cleanup"
)

// notTheControllers are the metric names the dashboard and the rules may
// use that the controller does not export: up is Prometheus's own, per
// target. (None is used today; the controller-down alert reads absent() of
// the controller's own gauge instead, see rules.yaml.)
var notTheControllers = map[string]bool{"up": true}

// exportedMetrics runs the controller as the binary does (standalone.Run:
// the same registry, collectors and /metrics handler) over fake clients
// holding one Upgrade, scrapes /metrics once the per-upgrade gauge has its
// series, and returns the names a query can use, with their types: a
// histogram's _bucket, _sum and _count, a summary's name, _sum and _count.
func exportedMetrics(t *testing.T) map[string]string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // serve listens itself, on a fixed address
	s := standalone.DefaultSettings()
	s.MetricsAddr = addr
	s.Removal.RemoverImage = "example.invalid/image-remover:test"
	// An ended cleanup: the controller has nothing to do, and the
	// per-upgrade gauge a series to show.
	kube, dyn := cleanuptest.NewClients(cleanuptest.Upgrade(cleanuptest.UpgradeName).Namespace(s.Namespace).State(cleanup.StateSucceeded).Obj())
	ctx, cancel := context.WithCancel(klog.NewContext(t.Context(), logr.Discard()))
	done := make(chan error, 1)
	go func() {
		done <- standalone.Run(ctx, standalone.Clients{Kube: kube, Dynamic: dyn, Clock: clock.RealClock{}}, s)
		close(done)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	}()
	var body []byte
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-done:
			return false, fmt.Errorf("the controller stopped: %v", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false, nil // not listening yet
		}
		defer resp.Body.Close()
		if body, err = io.ReadAll(resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			return false, err
		}
		return bytes.Contains(body, []byte("upgrade_image_cleanup_upgrade_state{")), nil
	})
	if err != nil {
		t.Fatalf("scraping the controller's /metrics: %v; last answer:\n%s", err, body)
	}
	// The text format's TYPE lines name every family served.
	types := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
		}
	}
	names := map[string]string{}
	for n, typ := range types {
		switch typ {
		case "histogram":
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[n+s] = typ
			}
		case "summary":
			for _, s := range []string{"", "_sum", "_count"} {
				names[n+s] = typ
			}
		default:
			names[n] = typ
		}
	}
	return names
}

// promqlNonMetrics are the PromQL words that are not metric names: the
// aggregation operators, the binary and set operators and modifiers, and
// number literals spelt as words. (Functions are told apart by the
// parenthesis after them.)
var promqlNonMetrics = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true,
}

// labelLists are the words followed by a parenthesised list of label names.
var labelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promqlMetricNames returns the metric names a PromQL expression selects,
// sorted: the words that are no function (no parenthesis follows), no
// keyword, no label name (in {...} or in a by/without/on/ignoring/group_*
// list), no duration (in [...]) and no Grafana variable ($x, ${x}). It is
// no parser (the root module must not require Prometheus), but it reads
// every expression of this repository's dashboard and rules, and errs on
// what it cannot read.
func promqlMetricNames(expr string) ([]string, error) {
	r := []rune(expr)
	found := map[string]bool{}
	isWord := func(c rune, first bool) bool {
		return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9')
	}
	nextNonSpace := func(i int) int {
		for i < len(r) && unicode.IsSpace(r[i]) {
			i++
		}
		return i
	}
	// skipString returns the index after the string literal opening at i.
	skipString := func(i int) (int, error) {
		q := r[i]
		for j := i + 1; j < len(r); j++ {
			switch {
			case r[j] == '\\' && q != '`':
				j++
			case r[j] == q:
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string at %d", i)
	}
	// skipTo returns the index after the close matching the open at i,
	// stepping over strings.
	skipTo := func(i int, open, close rune) (int, error) {
		depth := 0
		for j := i; j < len(r); {
			switch r[j] {
			case '"', '\'', '`':
				k, err := skipString(j)
				if err != nil {
					return 0, err
				}
				j = k
				continue
			case open:
				depth++
			case close:
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
			j++
		}
		return 0, fmt.Errorf("no %q closes the %q at %d", close, open, i)
	}
	for i := 0; i < len(r); {
		c := r[i]
		var err error
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '#':
			for i < len(r) && r[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			i, err = skipString(i)
		case c == '{':
			i, err = skipTo(i, '{', '}')
		case c == '[':
			i, err = skipTo(i, '[', ']')
		case c == '$':
			i++
			if i < len(r) && r[i] == '{' {
				i, err = skipTo(i, '{', '}')
			} else {
				for i < len(r) && isWord(r[i], false) {
					i++
				}
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(r) && (isWord(r[i], false) || r[i] == '.') {
				i++
			}
		case isWord(c, true):
			j := i
			for j < len(r) && isWord(r[j], false) {
				j++
			}
			word, next := string(r[i:j]), nextNonSpace(j)
			switch {
			case labelLists[word] && next < len(r) && r[next] == '(':
				j, err = skipTo(next, '(', ')')
			case promqlNonMetrics[strings.ToLower(word)]:
			case next < len(r) && r[next] == '(':
				// a function
			default:
				found[word] = true
			}
			i = j
		default:
			i++
		}
		if err != nil {
			return nil, fmt.Errorf("%w in %q", err, expr)
		}
	}
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func TestPromQLMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`absent(upgrade_image_cleanup_upgrades)`, []string{"upgrade_image_cleanup_upgrades"}},
		{`max by (upgrade_namespace, upgrade) (x{state="WaitingForRepo"})`, []string{"x"}},
		{`sum(increase(a_total{result="failed", b=~"}[("}[1h])) > 0`, []string{"a_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket{name="q"}[$__rate_interval])))`, []string{"h_bucket"}},
		{`sum without(instance) (a) / on (job) group_left(x) b offset 5m`, []string{"a", "b"}},
		{`count(max by (instance) (g)) or vector(0)`, []string{"g"}},
		{`sum(increase(x[${__range}])) * 1e-9 + y_seconds:rate5m`, []string{"x", "y_seconds:rate5m"}},
		{"a # b\n+ c", []string{"a", "c"}},
		{`{__name__="x"}`, []string{}},
	} {
		got, err := promqlMetricNames(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{`x{a="b}`, `rate(x[5m)`} {
		if _, err := promqlMetricNames(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// dashboard is the part of a Grafana dashboard model the checks read.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *datasource `json:"datasource"`
	GridPos     struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	// Panels are a collapsed row's.
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatalf("%s is not valid JSON", dashboardFile)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels are d's panels, with those of collapsed rows.
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// queries are the PromQL expressions of the dashboard and the rules, each
// with where it is, for messages.
func queries(t *testing.T) (where, exprs []string) {
	t.Helper()
	for _, p := range loadDashboard(t).allPanels() {
		for _, tg := range p.Targets {
			where = append(where, fmt.Sprintf("%s panel %d %q, target %s", dashboardFile, p.ID, p.Title, tg.RefID))
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			where = append(where, fmt.Sprintf("%s group %s, %s", rulesFile, g.Name, cmpOr(r.Alert, r.Record)))
			exprs = append(exprs, r.Expr)
		}
	}
	return where, exprs
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Every metric the dashboard and the alerts query is one the controller
// serves: a misspelt or renamed metric fails here, not in an empty panel
// or an alert that never fires. And every metric of the controller's own
// (upgrade_image_cleanup_*) has a place on the dashboard.
func TestMonitoringQueriesUseExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	for _, n := range []string{"upgrade_image_cleanup_upgrade_state", "upgrade_image_cleanup_ready_to_first_request_seconds_bucket", "workqueue_depth", "go_goroutines", "process_cpu_seconds_total"} {
		if exported[n] == "" {
			t.Fatalf("the scrape has no %s: the controller's /metrics was not read as a whole (%d names)", n, len(exported))
		}
	}
	where, exprs := queries(t)
	used := map[string]bool{}
	for i, expr := range exprs {
		names, err := promqlMetricNames(expr)
		if err != nil {
			t.Errorf("%s: %v", where[i], err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", where[i], expr)
		}
		for _, n := range names {
			used[n] = true
			if exported[n] == "" && !notTheControllers[n] {
				t.Errorf("%s: metric %s is not one the controller exports (%s)", where[i], n, near(n, exported))
			}
		}
		if strings.Contains(expr, "workqueue_") && !strings.Contains(expr, `name="`+queueName+`"`) {
			t.Errorf("%s: a workqueue metric without name=%q (a host's other queues share these names): %s", where[i], queueName, expr)
		}
	}
	for n, typ := range exported {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if !strings.HasPrefix(n, "upgrade_image_cleanup_") || (typ == "histogram" && n == base+"_sum") || (typ == "histogram" && n == base+"_count") {
			continue
		}
		if !used[n] {
			t.Errorf("metric %s (%s) is exported but neither on the dashboard nor in an alert", n, typ)
		}
	}
}

// near names the three exported names closest to n, to point at the one
// meant.
func near(n string, exported map[string]string) string {
	names := make([]string, 0, len(exported))
	for e := range exported {
		names = append(names, e)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(editDistance(n, a), editDistance(n, b)), strings.Compare(a, b))
	})
	return "nearest exported: " + strings.Join(names[:min(3, len(names))], ", ")
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func TestMonitoringDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID != "upgrade-image-cleanup" {
		t.Errorf("uid = %q, want upgrade-image-cleanup (links and the sidecar's provisioning rely on it)", d.UID)
	}
	if d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("title %q, schemaVersion %d: want a title and a schema of Grafana 9.4 or later", d.Title, d.SchemaVersion)
	}
	hasVar := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" {
			hasVar = v.Type == "datasource" && v.Query == "prometheus"
		}
	}
	if !hasVar {
		t.Error(`no template variable datasource of type datasource, query prometheus: the panels name ${datasource}`)
	}
	want := datasource{Type: "prometheus", UID: "${datasource}"}
	ids := map[int]string{}
	var boxes []panel
	for _, p := range d.allPanels() {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			t.Errorf("%s: no id", name)
		} else if other, ok := ids[p.ID]; ok {
			t.Errorf("%s: id %d is also %q's", name, p.ID, other)
		}
		ids[p.ID] = p.Title
		if p.Title == "" || strings.TrimSpace(p.Description) == "" {
			t.Errorf("%s: every panel needs a title and a description saying what it shows", name)
		}
		if p.Datasource == nil || *p.Datasource != want {
			t.Errorf("%s: datasource %+v, want %+v", name, p.Datasource, want)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no query", name)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refId %q missing or repeated", name, tg.RefID)
			}
			refs[tg.RefID] = true
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s target %s: no expr", name, tg.RefID)
			}
			if tg.Datasource != nil && *tg.Datasource != want {
				t.Errorf("%s target %s: datasource %+v, want %+v", name, tg.RefID, *tg.Datasource, want)
			}
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24 columns", name, p.GridPos)
		}
		for _, o := range boxes {
			a, b := p.GridPos, o.GridPos
			if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
				t.Errorf("%s overlaps panel %d %q", name, o.ID, o.Title)
			}
		}
		boxes = append(boxes, p)
	}
}

// ruleFile is a Prometheus rule file, as promtool and a PrometheusRule's
// spec read it; unknown fields are refused.
type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert         string            `json:"alert,omitempty"`
	Record        string            `json:"record,omitempty"`
	Expr          string            `json:"expr"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	j, err := utilyaml.ToJSON(b)
	if err != nil {
		t.Fatalf("%s: not YAML: %v", rulesFile, err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	var f ruleFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return f
}

// readmeAnchors are the anchors GitHub gives the README's headings.
func readmeAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		anchors[githubAnchor(strings.TrimLeft(line, "#"))] = true
	}
	return anchors
}

// githubAnchor is GitHub's anchor of a heading: lower case, punctuation
// dropped but for - and _, spaces turned into -.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case c == ' ':
			b.WriteRune('-')
		case c == '-' || c == '_' || unicode.IsLetter(c) || unicode.IsDigit(c):
			b.WriteRune(c)
		}
	}
	return b.String()
}

var severities = map[string]bool{"critical": true, "warning": true, "info": true}

// The alerts carry what a person paged needs: a severity, a summary, a
// description and a runbook_url pointing at the README heading named after
// the alert.
func TestMonitoringRules(t *testing.T) {
	f := loadRules(t)
	anchors := readmeAnchors(t)
	if len(f.Groups) == 0 {
		t.Fatalf("%s: no groups", rulesFile)
	}
	alerts := map[string]bool{}
	for _, g := range f.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a group needs a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s: defined twice", r.Alert)
			}
			alerts[r.Alert] = true
			if !strings.HasPrefix(r.Alert, "UpgradeImageCleanup") {
				t.Errorf("alert %s: name it UpgradeImageCleanup..., so it is found with its kin", r.Alert)
			}
			if !severities[r.Labels["severity"]] {
				t.Errorf("alert %s: severity %q, want one of critical, warning, info", r.Alert, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s: no annotation %s", r.Alert, a)
				}
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookBase)
			switch {
			case !ok:
				t.Errorf("alert %s: runbook_url %q is not under %s", r.Alert, r.Annotations["runbook_url"], runbookBase)
			case anchor != strings.ToLower(r.Alert):
				t.Errorf("alert %s: runbook_url anchor %q, want %q (a README heading named after the alert)", r.Alert, anchor, strings.ToLower(r.Alert))
			case !anchors[anchor]:
				t.Errorf("alert %s: runbook_url anchor #%s is no heading of README.md", r.Alert, anchor)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
		}
	}
	if len(alerts) == 0 {
		t.Errorf("%s: no alert", rulesFile)
	}
	if !anchors["dashboards-and-alerts"] {
		t.Error(`README.md has no heading "Dashboards and alerts", which the dashboard links to`)
	}
}
