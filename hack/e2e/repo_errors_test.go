//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// TestRepoErrors gives the controller a repo whose pod is Ready from the
// start but which answers badly, one way per subtest: the controller retries
// a bounded number of times (5 attempts with the default cap), then records
// Failed with a message naming the cause; it asks nothing more afterwards,
// writes no plan and creates no Job. One controller serves every case.
func TestRepoErrors(t *testing.T) {
	attempts := cleanup.DefaultOptions().MaxRetries + 1
	startController(t, "controller", "--remover-image", removerImage)

	const previous = "v1.4.2"
	goodList := "docker.io/rancher/harvester:v1.5.0\ndocker.io/library/busybox:1.36\n"
	cases := []struct {
		name  string
		index int // network namespace of the test host
		// previousList answers the request for the previous version's list;
		// stall is closed when the test ends.
		previousList func(stall <-chan struct{}) http.HandlerFunc
		// cause must match the Failed message.
		cause *regexp.Regexp
	}{
		{
			name:  "500 on every request",
			index: 20,
			previousList: func(<-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, _ *http.Request) {
					http.Error(w, "repo is broken", http.StatusInternalServerError)
				}
			},
			cause: regexp.MustCompile(`500 Internal Server Error`),
		},
		{
			// Headers and a first line, then nothing for longer than the
			// fetcher's 4 s per list (cleanup.DefaultFetcherOptions).
			name:  "slow body",
			index: 21,
			previousList: func(stall <-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/plain; charset=utf-8")
					w.Header().Set("Content-Length", "100000")
					w.WriteHeader(http.StatusOK)
					_, _ = w.Write([]byte("docker.io/rancher/harvester:v1.4.2\n"))
					http.NewResponseController(w).Flush()
					select {
					case <-stall:
					case <-r.Context().Done(): // the client gave up
					}
				}
			},
			cause: regexp.MustCompile(`(?i)timeout|deadline`),
		},
		{
			name:  "garbage with 200 text/plain",
			index: 22,
			previousList: func(<-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Content-Type", "text/plain")
					_, _ = w.Write([]byte("docker.io/rancher/harvester:v1.4.2\n\x00\x01\x02\xff\xfe garbage \x7f\ndocker.io/library/busybox:1.36\n"))
				}
			},
			cause: regexp.MustCompile(`line 2: .*is not an image reference`),
		},
		{
			name:  "HTML page",
			index: 23,
			previousList: func(<-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Content-Type", "text/html; charset=utf-8")
					_, _ = w.Write([]byte("<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>\n"))
				}
			},
			cause: regexp.MustCompile(`HTML`),
		},
		{
			name:  "404 for the previous list",
			index: 24,
			previousList: func(<-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
			},
			cause: regexp.MustCompile(`404 Not Found`),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			upgrade := uniqueName("hvst-upgrade")
			h := newTestHost(t, tc.index)
			stall := make(chan struct{})
			t.Cleanup(func() { close(stall) })
			prevPath, curPath := cleanup.ListPath(previous), cleanup.ListPath(cleanup.CurrentVersion)
			repo := serveRoutes(t, h.listen(t, 8080), map[string]http.Handler{
				prevPath: tc.previousList(stall),
				curPath: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Content-Type", "text/plain")
					_, _ = w.Write([]byte(goodList))
				}),
			})
			createRepo(t, ctx, upgrade, h, 8080)
			setPodReady(t, ctx, cleanuptest.RepoPodName(upgrade), h, true)
			waitRepoSliceReady(t, ctx, upgrade)
			created := time.Now()
			createCompletedUpgrade(t, ctx, upgrade, previous)
			dumpCleanupObjectsOnFailure(t, upgrade)

			a := awaitCleanupState(t, ctx, upgrade, cleanup.StateFailed, 120*time.Second)
			failedAt := time.Now()
			msg := a[cleanup.MessageAnnotation]
			if want := fmt.Sprintf("failed %d times", attempts); !strings.Contains(msg, want) {
				t.Errorf("message %q does not say %q", msg, want)
			}
			if !tc.cause.MatchString(msg) {
				t.Errorf("message %q does not name the cause (want a match for %q)", msg, tc.cause)
			}
			// "why, in one line (at most 1 KiB)": whatever bytes the repo
			// sent, the message carries no control character (kubectl
			// describe prints annotations raw) and no invalid UTF-8.
			if len(msg) > 1024 {
				t.Errorf("message is %d bytes, want at most 1 KiB", len(msg))
			}
			if i := strings.IndexFunc(msg, func(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }); i >= 0 {
				t.Errorf("BUG: the message carries a raw control character or invalid UTF-8 from the repo's body at byte %d "+
					"(pkg/imagelist.Parse quotes the line with %%q but appends the reference library's error, which repeats the line raw): %q", i, msg)
			}
			if !strings.Contains(msg, previous) {
				t.Errorf("message %q does not name the list (%s) that failed", msg, previous)
			}

			// No more requests once Failed: the count must stay at the cap.
			holdsFalseFor(t, ctx, fmt.Sprintf("more than %d requests for the previous list", attempts), 5*time.Second, func(context.Context) (bool, error) {
				return repo.Count(prevPath) > attempts, nil
			})
			if n := repo.Count(prevPath); n != attempts {
				t.Errorf("%d requests for the previous list, want exactly %d: %v", n, attempts, repo.Requests())
			}
			// The previous list is fetched first; its failure makes no second request.
			if n := repo.Count(curPath); n != 0 {
				t.Errorf("%d requests for the current list after the previous one failed, want 0", n)
			}
			if reqs := repo.Requests(); len(reqs) != attempts {
				t.Errorf("the repo got %d requests in all, want %d: %v", len(reqs), attempts, reqs)
			}
			if s := upgradeAnnotations(t, ctx, upgrade)[cleanup.StateAnnotation]; s != string(cleanup.StateFailed) {
				t.Errorf("state %q after the failure, want it to stay Failed", s)
			}
			assertNoPlanNoJobs(t, ctx, upgrade)
			reqs := repo.Requests()
			var gaps []string
			for i := 1; i < len(reqs); i++ {
				gaps = append(gaps, reqs[i].At.Sub(reqs[i-1].At).Round(100*time.Millisecond).String())
			}
			t.Logf("Failed %v after the Upgrade was created; gaps between requests %v; message: %q",
				failedAt.Sub(created).Round(100*time.Millisecond), gaps, msg)
		})
	}
}

// serveRoutes serves a handler per path (404 elsewhere) on l until the test
// ends, recording every request.
func serveRoutes(t *testing.T, l net.Listener, routes map[string]http.Handler) *cleanuptest.HTTPRepo {
	t.Helper()
	r := cleanuptest.ServeRepo(l, nil, func(_ int, w http.ResponseWriter, req *http.Request) bool {
		h, ok := routes[req.URL.Path]
		if ok {
			h.ServeHTTP(w, req)
		}
		return ok
	})
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// waitRepoSliceReady waits until the real EndpointSlice controller shows the
// repo Service's endpoint as Ready.
func waitRepoSliceReady(t *testing.T, ctx context.Context, upgrade string) {
	t.Helper()
	waitFor(t, ctx, "a Ready endpoint in the repo's EndpointSlice", 30*time.Second, func(ctx context.Context) (bool, error) {
		sls, err := env.kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelServiceName + "=" + informers.RepoServicePrefix + upgrade,
		})
		if err != nil {
			return false, err
		}
		for _, s := range sls.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready && len(e.Addresses) > 0 {
					return true, nil
				}
			}
		}
		return false, nil
	})
}

// awaitCleanupState waits until the Upgrade's state annotation is want and
// returns its annotations then.
func awaitCleanupState(t *testing.T, ctx context.Context, upgrade string, want cleanup.State, timeout time.Duration) map[string]string {
	t.Helper()
	var a map[string]string
	waitFor(t, ctx, fmt.Sprintf("upgrade %s in state %s", upgrade, want), timeout, func(ctx context.Context) (bool, error) {
		a = upgradeAnnotations(t, ctx, upgrade)
		return a[cleanup.StateAnnotation] == string(want), nil
	})
	return a
}

// holdsFalseFor polls cond for d and fails the test if it ever holds: what
// must not happen, given time to happen.
func holdsFalseFor(t *testing.T, ctx context.Context, what string, d time.Duration, cond func(context.Context) (bool, error)) {
	t.Helper()
	// cond gets the test's context, not the poll's: near the poll's end the
	// client's rate limiter would refuse to wait and fail the check.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, d, true, func(context.Context) (bool, error) { return cond(ctx) })
	switch {
	case err == nil:
		t.Fatalf("%s happened within %v", what, d)
	case !wait.Interrupted(err):
		t.Fatalf("checking that %s does not happen: %v", what, err)
	case ctx.Err() != nil:
		t.Fatalf("the test ran out of time while checking that %s does not happen", what)
	}
}

// assertNoPlanNoJobs checks that the upgrade has no plan ConfigMap (by name
// or by label) and no removal Job.
func assertNoPlanNoJobs(t *testing.T, ctx context.Context, upgrade string) {
	t.Helper()
	_, err := env.kube.CoreV1().ConfigMaps(ns).Get(ctx, cleanup.PlanConfigMapName(upgrade), metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("plan ConfigMap %s: got err %v, want NotFound", cleanup.PlanConfigMapName(upgrade), err)
	}
	cms, err := env.kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: informers.UpgradeLabel + "=" + upgrade})
	if err != nil {
		t.Fatal(err)
	}
	if len(cms.Items) != 0 {
		t.Errorf("%d ConfigMaps labelled for the upgrade, want none", len(cms.Items))
	}
	if jobs := removalJobs(t, ctx, upgrade); len(jobs) != 0 {
		t.Errorf("%d removal Jobs, want none", len(jobs))
	}
}

// dumpCleanupObjectsOnFailure logs, if the test failed, the Upgrade and the
// ConfigMaps, Jobs, EndpointSlices and Events that belong to it. Register it
// after the objects' own cleanups, so it runs before they are deleted.
func dumpCleanupObjectsOnFailure(t *testing.T, upgrade string) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		show := func(what string, obj any, err error) {
			if err != nil {
				t.Logf("--- %s: %v", what, err)
				return
			}
			b, _ := json.Marshal(obj)
			t.Logf("--- %s:\n%s", what, b)
		}
		byUpgrade := metav1.ListOptions{LabelSelector: informers.UpgradeLabel + "=" + upgrade}
		u, err := env.dynamic.Resource(informers.UpgradeGVR).Namespace(ns).Get(ctx, upgrade, metav1.GetOptions{})
		if err == nil {
			u.SetManagedFields(nil)
		}
		show("Upgrade "+upgrade, u, err)
		cms, err := env.kube.CoreV1().ConfigMaps(ns).List(ctx, byUpgrade)
		if err == nil {
			for i := range cms.Items {
				cms.Items[i].ManagedFields = nil
			}
		}
		show("ConfigMaps of "+upgrade, cms, err)
		jobs, err := env.kube.BatchV1().Jobs(ns).List(ctx, byUpgrade)
		if err == nil {
			for i := range jobs.Items {
				jobs.Items[i].ManagedFields = nil
				jobs.Items[i].Spec.Template.Spec.Tolerations = nil
			}
		}
		show("Jobs of "+upgrade, jobs, err)
		sls, err := env.kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelServiceName + "=" + informers.RepoServicePrefix + upgrade,
		})
		if err == nil {
			for i := range sls.Items {
				sls.Items[i].ManagedFields = nil
			}
		}
		show("EndpointSlices of "+informers.RepoServicePrefix+upgrade, sls, err)
		evs, err := env.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + upgrade})
		if err == nil {
			var lines []string
			for _, e := range evs.Items {
				lines = append(lines, fmt.Sprintf("%s %s %s: %q", e.LastTimestamp.Format(time.RFC3339), e.Type, e.Reason, e.Message))
			}
			t.Logf("--- Events of %s:\n%s", upgrade, strings.Join(lines, "\n"))
		} else {
			t.Logf("--- Events of %s: %v", upgrade, err)
		}
	})
}
