package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// The demo's lists as files, for the offline mode: the one copy, in
// internal/cleanuptest (cleanuptest.Lists).
const (
	planPreviousFile = "../../internal/cleanuptest/images-lists-archive/v1.4.2/image_list_all.txt"
	planCurrentFile  = "../../internal/cleanuptest/images-lists-archive/current/image_list_all.txt"
)

// demoPlan is the plan of the demo's lists under the default policy: the
// plan the controller writes in the demo (cmd/upgrade-image-cleanup-demo).
func demoPlan() (cleanup.Plan, error) { return cleanuptest.ListsPlan(cleanup.DefaultOptions().Policy) }

// runPlanOK runs the subcommand and fails the test unless it exits 0.
func runPlanOK(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := runPlan(args, &stdout, &stderr); code != 0 {
		t.Fatalf("plan %v: exit code %d\nstderr: %s", args, code, stderr.String())
	}
	return stdout.String()
}

func decodePlanReport(t *testing.T, out string) planReport {
	t.Helper()
	var r planReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decode JSON output: %v\n%s", err, out)
	}
	return r
}

// TestPlanOfflineJSONIsTheDemoPlan: the offline plan of the demo's lists is
// exactly the plan the controller writes in the demo (same parser, same
// default policy), so the subcommand previews what the controller does.
func TestPlanOfflineJSONIsTheDemoPlan(t *testing.T) {
	want, err := demoPlan()
	if err != nil {
		t.Fatal(err)
	}
	out := runPlanOK(t, "--previous", planPreviousFile, "--current", planCurrentFile, "-o", "json")
	got := decodePlanReport(t, out)
	if !slices.Equal(got.Remove, want.Remove) {
		t.Errorf("remove differs from the demo's plan\n got %d: %v\nwant %d: %v", len(got.Remove), got.Remove, len(want.Remove), want.Remove)
	}
	if wantKept := want.Kept; !slices.Equal(got.Kept, wantKept) {
		t.Errorf("kept differs from the demo's plan\n got %v\nwant %v", got.Kept, wantKept)
	}
	if got.Source != planPreviousFile+" -> "+planCurrentFile || got.PreviousVersion != "" {
		t.Errorf("source %q, previousVersion %q", got.Source, got.PreviousVersion)
	}
	if !strings.Contains(out, " -> ") {
		t.Errorf("source is HTML-escaped in the JSON output:\n%s", out)
	}
	// The field names are the interface scripts rely on.
	for _, key := range []string{`"source":`, `"previousVersion":`, `"remove":`, `"kept":`, `"image":`, `"rule":`, `"match":`} {
		if !strings.Contains(out, key) {
			t.Errorf("JSON output lacks %s", key)
		}
	}
}

func TestPlanOfflineTable(t *testing.T) {
	out := runPlanOK(t, "--previous", planPreviousFile, "--current", planCurrentFile)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	wantHeader := "plan for " + planPreviousFile + " -> " + planCurrentFile + ": 91 to remove, 11 kept (7 in current list, 4 retained, 0 excluded)"
	if lines[0] != wantHeader {
		t.Errorf("header\n got %q\nwant %q", lines[0], wantHeader)
	}
	rows := lines[2:]
	if !regexp.MustCompile(`^ACTION +IMAGE +RULE +MATCH +WHY$`).MatchString(rows[0]) {
		t.Errorf("column header %q", rows[0])
	}
	rows = rows[1:]
	if len(rows) != 91+11 {
		t.Fatalf("%d rows, want 102", len(rows))
	}
	// Remove rows first, then keep rows, each sorted by image.
	var removed, kept []string
	for i, row := range rows {
		fields := strings.Fields(row)
		if len(fields) != 5 {
			t.Fatalf("row %d %q: %d columns", i, row, len(fields))
		}
		switch {
		case i < 91 && fields[0] == "remove" && fields[2] == "-" && fields[3] == "-" && fields[4] == "-":
			removed = append(removed, fields[1])
		case i >= 91 && fields[0] == "keep":
			kept = append(kept, fields[1])
		default:
			t.Errorf("row %d out of place: %q", i, row)
		}
	}
	if !slices.IsSorted(removed) || !slices.IsSorted(kept) {
		t.Error("rows are not sorted by image")
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^keep +docker\.io/rancher/harvester-upgrade:v1\.4\.2 +retain +rancher/harvester-upgrade +-$`),
		regexp.MustCompile(`(?m)^remove +docker\.io/rancher/harvester:v1\.4\.2 +- +- +-$`),
		regexp.MustCompile(`(?m)^keep +docker\.io/rancher/gitjob:v0\.10\.4 +in-current-list +docker\.io/rancher/gitjob:v0\.10\.4 +same-repository-and-tag$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("table has no line matching %s", want)
		}
	}
}

func TestPlanExcludeMovesImagesToKept(t *testing.T) {
	out := runPlanOK(t, "--previous", planPreviousFile, "--current", planCurrentFile, "-o", "json",
		"--exclude", "rancher/harvester-network-*", "--exclude", "docker.io/rancher/harvester:v1.4.2")
	got := decodePlanReport(t, out)
	want := map[string]string{
		"docker.io/rancher/harvester-network-controller:v0.5.6": "rancher/harvester-network-*",
		"docker.io/rancher/harvester-network-webhook:v0.5.6":    "rancher/harvester-network-*",
		"docker.io/rancher/harvester:v1.4.2":                    "docker.io/rancher/harvester:v1.4.2",
	}
	if len(got.Remove) != 91-len(want) {
		t.Errorf("%d to remove, want %d", len(got.Remove), 91-len(want))
	}
	for _, k := range got.Kept {
		if k.Rule != cleanup.RuleExclude {
			continue
		}
		if want[k.Image] != k.Match {
			t.Errorf("excluded %s by %q, want %q", k.Image, k.Match, want[k.Image])
		}
		delete(want, k.Image)
	}
	for img := range want {
		t.Errorf("%s not kept by rule exclude", img)
		if slices.Contains(got.Remove, img) {
			t.Errorf("%s still removed", img)
		}
	}

	table := runPlanOK(t, "--previous", planPreviousFile, "--current", planCurrentFile, "--exclude", "rancher/harvester-network-*,docker.io/rancher/harvester:v1.4.2")
	if !strings.Contains(table, ": 88 to remove, 14 kept (7 in current list, 4 retained, 3 excluded)") {
		t.Errorf("table header:\n%s", strings.SplitN(table, "\n", 2)[0])
	}
}

func TestPlanBadFlagsExit2NamingTheFlags(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{"--upgrade", "--previous", "--current"}},
		{[]string{"--previous", planPreviousFile}, []string{"--current"}},
		{[]string{"--current", planCurrentFile}, []string{"--previous"}},
		{[]string{"--upgrade", "u", "--previous", planPreviousFile, "--current", planCurrentFile}, []string{"--upgrade", "--previous", "--current"}},
		{[]string{"--upgrade", "u", "--current", planCurrentFile}, []string{"--upgrade", "--current"}},
		{[]string{"--previous", planPreviousFile, "--current", planCurrentFile, "--namespace", "x"}, []string{"--namespace", "--upgrade"}},
		{[]string{"--previous", planPreviousFile, "--current", planCurrentFile, "-o", "yaml"}, []string{"-o", "table or json"}},
		{[]string{"--previous", planPreviousFile, "--current", planCurrentFile, "--exclude", "docker.io/[rancher"}, []string{"--exclude"}},
		{[]string{"--upgrade", "u", "--repo-address", "dns"}, []string{"--repo-address"}},
		{[]string{"--upgrade", "u", "--catch-up", "v1 3"}, []string{"--catch-up"}},
		{[]string{"--previous", planPreviousFile, "--current", planCurrentFile, "--catch-up", "v1.3.0"}, []string{"--catch-up", "--upgrade"}},
		{[]string{"--upgrade", "u", "--selector", "a in (b"}, []string{"--selector"}},
		{[]string{"--upgrade", "u", "--namespace", ""}, []string{"--namespace"}},
		{[]string{"--upgrade", "Bad Name"}, []string{"--upgrade"}},
		{[]string{"--upgrade", "u", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"--no-such-flag"}, []string{"no-such-flag"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runPlan(tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not name %q", stderr.String(), w)
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty: %q", stdout.String())
			}
		})
	}
}

func TestPlanHelpExits0(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runPlan([]string{"-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	if !strings.Contains(stderr.String(), "plan --upgrade NAME") {
		t.Errorf("usage does not show the modes:\n%s", stderr.String())
	}
}

func TestPlanBadFilesExit2(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("docker.io/rancher/a:1\n\ndocker.io/rancher/b:1\nnot an image!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(empty, []byte("\n  \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		previous, current string
		want              []string
	}{
		{"bad line in previous", bad, planCurrentFile, []string{bad + " line 4", "not an image"}},
		{"bad line in current", planPreviousFile, bad, []string{bad + " line 4"}},
		{"empty previous", empty, planCurrentFile, []string{empty, cleanup.ErrEmptyList.Error()}},
		{"empty current", planPreviousFile, empty, []string{empty, cleanup.ErrEmptyList.Error()}},
		{"missing file", filepath.Join(dir, "nope.txt"), planCurrentFile, []string{"nope.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runPlan([]string{"--previous", tt.previous, "--current", tt.current}, &stdout, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not contain %q", stderr.String(), w)
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("printed a plan for bad input: %q", stdout.String())
			}
		})
	}
}

// TestPlanLiveUnreachableClusterExits1: a cluster that does not answer is a
// runtime failure, not a bad flag.
func TestPlanLiveUnreachableClusterExits1(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://` + addr + `"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := runPlan([]string{"--upgrade", "u", "--kubeconfig", kubeconfig}, &stdout, &stderr); code != 1 {
		t.Errorf("exit code = %d, want 1; stderr %q", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "get Upgrade harvester-system/u") {
		t.Errorf("stderr %q does not say what failed", stderr.String())
	}
}

// The live tests' upgrade, as Harvester writes it.
const (
	planNS      = cleanuptest.Namespace
	planUpgrade = "hvst-upgrade-plan"
)

func planUpgradeObject(previousVersion string) *unstructured.Unstructured {
	return cleanuptest.Upgrade(planUpgrade).PreviousVersion(previousVersion).Obj()
}

// planSlice is a repo EndpointSlice of upgrade with one endpoint at addr:port;
// it carries only the Service-name label, so it belongs to upgrade by name,
// and Harvester's component label, so the default selector picks it.
func planSlice(upgrade, addr string, port int32, ready bool) *discoveryv1.EndpointSlice {
	return cleanuptest.RepoSlice(upgrade).ByServiceName().Address(addr).Port(port).Ready(ready).Obj()
}

// planFetcher serves the demo lists (cleanuptest.Lists) and records each
// call.
func planFetcher(t *testing.T) *cleanuptest.Repo {
	t.Helper()
	lists, err := cleanuptest.RealisticLists()
	if err != nil {
		t.Fatal(err)
	}
	return cleanuptest.NewRepo(lists)
}

type planLiveFixture struct {
	kube *kubefake.Clientset
	dyn  *dynamicfake.FakeDynamicClient
}

func newPlanLiveFixture(upgrade *unstructured.Unstructured, objs ...runtime.Object) planLiveFixture {
	kube, dyn := cleanuptest.NewClients(append([]runtime.Object{upgrade}, objs...)...)
	return planLiveFixture{kube: kube, dyn: dyn}
}

func planLiveOptions(addr cleanup.RepoAddress) liveOptions {
	return liveOptions{
		Namespace:   planNS,
		Name:        planUpgrade,
		Selector:    labels.SelectorFromSet(labels.Set{informers.UpgradeComponentLabel: "repo"}),
		RepoAddress: addr,
		Policy:      cleanup.DefaultOptions().Policy,
	}
}

// assertReadOnly checks that planLive made only get and list requests, and
// exactly the ones it needs: GET the Upgrade, LIST the namespace's slices.
func (fx planLiveFixture) assertReadOnly(t *testing.T) {
	t.Helper()
	check := func(client string, actions []k8stesting.Action, want ...string) {
		var got []string
		for _, a := range actions {
			if v := a.GetVerb(); v != "get" && v != "list" {
				t.Errorf("%s: %s %s is a write", client, v, a.GetResource().Resource)
			}
			got = append(got, a.GetVerb()+" "+a.GetResource().Resource+" "+a.GetNamespace())
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s actions = %v, want %v", client, got, want)
		}
	}
	check("dynamic client", fx.dyn.Actions(), "get upgrades "+planNS)
	check("kubernetes client", fx.kube.Actions(), "list endpointslices "+planNS)
}

func TestPlanLiveReadyRepo(t *testing.T) {
	for _, tt := range []struct {
		addr cleanup.RepoAddress
		want cleanup.Target
	}{
		{cleanup.RepoAddressEndpoint, cleanup.Target{BaseURL: "http://10.52.0.17:8080", Host: "upgrade-repo-" + planUpgrade + "." + planNS}},
		{cleanup.RepoAddressService, cleanup.Target{BaseURL: "http://upgrade-repo-" + planUpgrade + "." + planNS}},
	} {
		t.Run(string(tt.addr), func(t *testing.T) {
			fx := newPlanLiveFixture(planUpgradeObject("v1.4.2"),
				planSlice(planUpgrade, "10.52.0.17", 8080, true),
				// Another upgrade's repo: not ours, not dialed.
				planSlice("other", "10.52.0.99", 80, true))
			fetcher := planFetcher(t)
			plan, previous, err := planLive(context.Background(), fx.kube, fx.dyn, fetcher, planLiveOptions(tt.addr))
			if err != nil {
				t.Fatal(err)
			}
			want, err := demoPlan()
			if err != nil {
				t.Fatal(err)
			}
			if previous != "v1.4.2" || !slices.Equal(plan.Remove, want.Remove) || !slices.Equal(plan.Kept, want.Kept) {
				t.Errorf("previous %q, plan %d to remove, %d kept; want v1.4.2 and the demo's plan (%d, %d)",
					previous, len(plan.Remove), len(plan.Kept), len(want.Remove), len(want.Kept))
			}
			wantCalls := []cleanuptest.Call{{Target: tt.want, Version: "v1.4.2"}, {Target: tt.want, Version: cleanup.CurrentVersion}}
			if got := fetcher.Calls(); !slices.Equal(got, wantCalls) {
				t.Errorf("fetches = %+v, want %+v", got, wantCalls)
			}
			fx.assertReadOnly(t)
		})
	}
}

// TestPlanLiveCatchUp: the preview plans catch-up versions as the
// controller does (the annotation over the flag), reports a 404 as skipped,
// and prints both.
func TestPlanLiveCatchUp(t *testing.T) {
	u := cleanuptest.Upgrade(planUpgrade).PreviousVersion("v1.4.2").Annotate(cleanup.CatchUpAnnotation, "v1.3.0,v1.2.0").Obj()
	fx := newPlanLiveFixture(u, planSlice(planUpgrade, "10.52.0.17", 8080, true))
	fetcher := planFetcher(t)
	fetcher.SetList("v1.3.0", []string{"docker.io/rancher/only-in-v1.3.0:v1"})
	o := planLiveOptions(cleanup.RepoAddressEndpoint)
	o.CatchUp = []string{"v1.1.0"} // the annotation wins
	plan, _, err := planLive(context.Background(), fx.kube, fx.dyn, fetcher, o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(plan.Remove, "docker.io/rancher/only-in-v1.3.0:v1") || !slices.Equal(plan.CatchUp, []string{"v1.3.0"}) || !slices.Equal(plan.CatchUpMissing, []string{"v1.2.0"}) {
		t.Errorf("plan catch-up %q missing %q, remove has the v1.3.0 image: %v", plan.CatchUp, plan.CatchUpMissing, slices.Contains(plan.Remove, "docker.io/rancher/only-in-v1.3.0:v1"))
	}
	var out bytes.Buffer
	if err := newPlanReport("upgrade x", "v1.4.2", plan).writeTable(&out); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(out.String(), "\n"); !strings.Contains(first, "catch-up v1.3.0") || !strings.Contains(first, "catch-up v1.2.0 skipped") {
		t.Errorf("table header %q does not name the catch-up versions", first)
	}
	fx.assertReadOnly(t)
}

// TestPlanLiveOverHTTP runs planLive with the controller's real fetcher
// against a local repo: the endpoint's address is dialed, with the Service's
// name as Host, previous list first.
func TestPlanLiveOverHTTP(t *testing.T) {
	repo, err := cleanuptest.ServeLists()
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()

	fx := newPlanLiveFixture(planUpgradeObject("v1.4.2"), planSlice(planUpgrade, repo.IP(), repo.Port(), true))
	plan, _, err := planLive(context.Background(), fx.kube, fx.dyn, cleanup.NewHTTPFetcher(cleanup.DefaultFetcherOptions()), planLiveOptions(cleanup.RepoAddressEndpoint))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Remove) != 91 {
		t.Errorf("%d to remove, want 91", len(plan.Remove))
	}
	svc := "upgrade-repo-" + planUpgrade + "." + planNS
	want := []string{svc + " " + cleanup.ListPath("v1.4.2"), svc + " " + cleanup.ListPath(cleanup.CurrentVersion)}
	var got []string
	for _, q := range repo.Requests() {
		got = append(got, q.Host+" "+q.Path)
	}
	if !slices.Equal(got, want) {
		t.Errorf("repo requests = %v, want %v", got, want)
	}
	fx.assertReadOnly(t)
}

func TestPlanLiveRefusesBeforeFetching(t *testing.T) {
	tests := []struct {
		name    string
		upgrade *unstructured.Unstructured
		slices  []runtime.Object
		want    string
		// listed is false when planLive stops before listing slices.
		listed bool
	}{
		{
			name:    "repo not ready",
			upgrade: planUpgradeObject("v1.4.2"),
			slices: []runtime.Object{
				planSlice(planUpgrade, "10.52.0.17", 8080, false),
				planSlice("other", "10.52.0.99", 80, true), // another upgrade's Ready repo does not count
			},
			want:   "repo upgrade-repo-" + planUpgrade + " has no Ready endpoint; nothing to fetch",
			listed: true,
		},
		{
			name:    "no slice at all",
			upgrade: planUpgradeObject("v1.4.2"),
			want:    "repo upgrade-repo-" + planUpgrade + " has no Ready endpoint; nothing to fetch (0 of its EndpointSlices",
			listed:  true,
		},
		{
			name:    "previousVersion leaves the path",
			upgrade: planUpgradeObject("../../etc"),
			slices:  []runtime.Object{planSlice(planUpgrade, "10.52.0.17", 8080, true)},
			want:    "status.previousVersion",
		},
		{
			name:    "previousVersion empty",
			upgrade: planUpgradeObject(""),
			slices:  []runtime.Object{planSlice(planUpgrade, "10.52.0.17", 8080, true)},
			want:    "status.previousVersion is empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newPlanLiveFixture(tt.upgrade, tt.slices...)
			fetcher := planFetcher(t)
			_, _, err := planLive(context.Background(), fx.kube, fx.dyn, fetcher, planLiveOptions(cleanup.RepoAddressEndpoint))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if n := len(fetcher.Calls()); n != 0 {
				t.Errorf("%d fetches, want 0", n)
			}
			if tt.listed {
				fx.assertReadOnly(t)
			} else if n := len(fx.kube.Actions()); n != 0 {
				t.Errorf("%d kubernetes API calls, want 0: the version is checked first", n)
			}
		})
	}
}

func TestPlanLiveFailures(t *testing.T) {
	t.Run("upgrade not found", func(t *testing.T) {
		fx := newPlanLiveFixture(planUpgradeObject("v1.4.2"))
		o := planLiveOptions(cleanup.RepoAddressEndpoint)
		o.Name = "missing"
		_, _, err := planLive(context.Background(), fx.kube, fx.dyn, planFetcher(t), o)
		if err == nil || !strings.Contains(err.Error(), "get Upgrade "+planNS+"/missing") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("previous fetch fails: no second request", func(t *testing.T) {
		fx := newPlanLiveFixture(planUpgradeObject("v1.4.2"), planSlice(planUpgrade, "10.52.0.17", 8080, true))
		boom := errors.New("GET http://10.52.0.17:8080/...: 500 Internal Server Error")
		fetcher := planFetcher(t)
		fetcher.OnFetch(func(_ context.Context, _ int, version string) error {
			if version == "v1.4.2" {
				return boom
			}
			return nil
		})
		_, _, err := planLive(context.Background(), fx.kube, fx.dyn, fetcher, planLiveOptions(cleanup.RepoAddressEndpoint))
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "fetch v1.4.2 list") {
			t.Errorf("err = %v", err)
		}
		if n := len(fetcher.Calls()); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
		fx.assertReadOnly(t)
	})
	t.Run("empty current list", func(t *testing.T) {
		fx := newPlanLiveFixture(planUpgradeObject("v1.4.2"), planSlice(planUpgrade, "10.52.0.17", 8080, true))
		// An empty current list, as a ListFetcher other than HTTPFetcher
		// might answer.
		fetcher := planFetcher(t)
		fetcher.SetList(cleanup.CurrentVersion, nil)
		_, _, err := planLive(context.Background(), fx.kube, fx.dyn, fetcher, planLiveOptions(cleanup.RepoAddressEndpoint))
		if !errors.Is(err, cleanup.ErrEmptyList) {
			t.Errorf("err = %v, want ErrEmptyList", err)
		}
	})
}

// The preview keeps what the remover would take for a current image: the
// same path and tag under another host, and the same tag whether or not a
// list pins the digest; each with the rule that kept it.
func TestPlanOfflineKeepsWhatTheRemoverWouldMatch(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	dir := t.TempDir()
	previous := filepath.Join(dir, "previous.txt")
	current := filepath.Join(dir, "current.txt")
	writeFile := func(path string, lines ...string) {
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(previous, "docker.io/rancher/foo:v1", "docker.io/rancher/bar:v1", "docker.io/rancher/gone:v1")
	writeFile(current, "registry.rancher.com/rancher/foo:v1", "docker.io/rancher/bar:v1@"+digest)

	got := decodePlanReport(t, runPlanOK(t, "--previous", previous, "--current", current, "-o", "json"))
	if want := []string{"docker.io/rancher/gone:v1"}; !slices.Equal(got.Remove, want) {
		t.Errorf("remove = %q, want %q", got.Remove, want)
	}
	wantKept := []cleanup.Kept{
		{Image: "docker.io/rancher/bar:v1", Rule: cleanup.RuleInCurrent, Match: "docker.io/rancher/bar:v1@" + digest, Why: imagematch.WhySameTag},
		{Image: "docker.io/rancher/foo:v1", Rule: cleanup.RuleInCurrent, Match: "registry.rancher.com/rancher/foo:v1", Why: imagematch.WhyOtherRegistry},
	}
	if !slices.Equal(got.Kept, wantKept) {
		t.Errorf("kept = %+v\nwant %+v", got.Kept, wantKept)
	}

	table := runPlanOK(t, "--previous", previous, "--current", current)
	if !regexp.MustCompile(`(?m)^keep +docker\.io/rancher/foo:v1 +in-current-list +registry\.rancher\.com/rancher/foo:v1 +same-path-and-tag-on-another-registry$`).MatchString(table) {
		t.Errorf("table does not say why foo is kept:\n%s", table)
	}

	// With the remover matching only its own host, the controller plans it.
	exact := decodePlanReport(t, runPlanOK(t, "--previous", previous, "--current", current, "-o", "json", "--match-other-registries=false"))
	if want := []string{"docker.io/rancher/foo:v1", "docker.io/rancher/gone:v1"}; !slices.Equal(exact.Remove, want) {
		t.Errorf("--match-other-registries=false: remove = %q, want %q", exact.Remove, want)
	}
}

// An excluded image is kept under every spelling of the previous list, and
// the preview says which kept image each other spelling stands for.
func TestPlanOfflineKeepsOtherSpellingsOfAnExcludedImage(t *testing.T) {
	dir := t.TempDir()
	previous := filepath.Join(dir, "previous.txt")
	current := filepath.Join(dir, "current.txt")
	if err := os.WriteFile(previous, []byte("docker.io/rancher/mirrored-x:1\nregistry.rancher.com/rancher/mirrored-x:1\ndocker.io/rancher/gone:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(current, []byte("docker.io/rancher/other:2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	table := runPlanOK(t, "--previous", previous, "--current", current, "--exclude", "docker.io/rancher/mirrored-*")
	if !strings.Contains(table, ": 1 to remove, 2 kept (0 in current list, 0 retained, 1 excluded, 1 same as a kept image)") {
		t.Errorf("header:\n%s", strings.SplitN(table, "\n", 2)[0])
	}
	if !regexp.MustCompile(`(?m)^keep +registry\.rancher\.com/rancher/mirrored-x:1 +same-as-kept +docker\.io/rancher/mirrored-x:1 +same-path-and-tag-on-another-registry$`).MatchString(table) {
		t.Errorf("table does not say why the other spelling is kept:\n%s", table)
	}
}
