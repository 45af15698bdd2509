package cleanup_test

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest/fixture"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// A host with a typed Upgrade informer (Harvester's wrangler informer)
// passes it with a converter: the cleanup runs on it to a plan, and the
// only Upgrade watch is the host's own.
func TestHostsTypedUpgradeInformer(t *testing.T) {
	f := newFixture(t, objects(upgrade(), false), cleanuptest.WithTypedUpgrades())
	stop := f.Run(2)
	f.SetRepoReady(true)
	f.WaitFor("the plan", func() bool { return f.State() == cleanup.StatePlanned })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, found := f.PlanConfigMap(); !found {
		t.Errorf("Planned without a plan ConfigMap")
	}
	watches := 0
	for _, a := range f.Dynamic.Actions() {
		if a.GetVerb() == "watch" && a.GetResource().Resource == "upgrades" {
			watches++
		}
	}
	if watches != 1 {
		t.Errorf("%d watches of Upgrades, want 1: the host's informer, no second one of the controller's", watches)
	}
}

func TestConvertUpgradeNeedsTheHostsInformer(t *testing.T) {
	env := cleanuptest.NewEnv(fixture.Context(t))
	_, err := env.NewController(func(c *cleanup.Config) {
		c.Upgrades, c.ConvertUpgrade = nil, cleanuptest.ConvertTypedUpgrade
	})
	if err == nil || !strings.Contains(err.Error(), "Config.ConvertUpgrade") {
		t.Fatalf("cleanup.New = %v, want an error naming Config.ConvertUpgrade", err)
	}
}

// The lister reads a typed cache through the converter, also when the
// host's informer has no namespace index, and names the key of an object
// the converter refuses.
func TestUpgradeListerWithConverter(t *testing.T) {
	typed := func(ns, name, version string) *cleanuptest.TypedUpgrade {
		u := &cleanuptest.TypedUpgrade{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		u.Spec.Version = version
		return u
	}
	_, dyn := cleanuptest.NewClients()
	inf := cleanuptest.NewTypedUpgradeInformer(dyn) // never run: the cache is seeded
	for _, o := range []any{
		typed("harvester-system", "a", "v1.5.0"),
		typed("other", "b", "v1.5.1"),
		&metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "harvester-system", Name: "not-an-upgrade"}},
	} {
		if err := inf.GetIndexer().Add(o); err != nil {
			t.Fatalf("seed cache: %v", err)
		}
	}
	lister := cleanup.NewUpgradeLister(inf, cleanuptest.ConvertTypedUpgrade)
	names := func(us []cleanup.Upgrade) []string {
		var out []string
		for _, u := range us {
			out = append(out, u.Namespace+"/"+u.Name+"@"+u.Version)
		}
		return out
	}
	for _, tt := range []struct {
		namespace string
		want      []string
	}{
		{"harvester-system", []string{"harvester-system/a@v1.5.0"}},
		{"other", []string{"other/b@v1.5.1"}},
		{"none", nil},
	} {
		if got := names(lister.List(tt.namespace)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("List(%q) = %v, want %v", tt.namespace, got, tt.want)
		}
	}
	if got := len(lister.List("")); got != 2 {
		t.Errorf("List(\"\") has %d upgrades, want the 2 well-formed ones", got)
	}
	u, found, err := lister.Get(cache.ObjectName{Namespace: "harvester-system", Name: "a"})
	if err != nil || !found || u.Version != "v1.5.0" {
		t.Errorf("Get(a) = %+v, %v, %v", u, found, err)
	}
	if _, _, err := lister.Get(cache.ObjectName{Namespace: "harvester-system", Name: "not-an-upgrade"}); err == nil || !strings.Contains(err.Error(), "harvester-system/not-an-upgrade") {
		t.Errorf("Get of an object the converter refuses = %v, want an error naming its key", err)
	}
}

// A converter's Upgrade is acted on under its own namespace and name, so
// one that is not the Upgrade at the cache key (here: a host converter that
// forgets to copy the namespace) must be refused like a malformed object,
// naming the key, and change nothing. Today the controller fetches the
// lists, creates the plan ConfigMap in namespace "" and patches
// "/<name>", retrying for ever, while its key is harvester-system/<name>.
func TestConvertedUpgradeMustBeTheOneAtItsKey(t *testing.T) {
	dropsNamespace := func(obj any) (cleanup.Upgrade, error) {
		u, err := cleanuptest.ConvertTypedUpgrade(obj)
		u.Namespace = ""
		return u, err
	}
	var hosts cache.SharedIndexInformer
	f := newFixture(t, objects(upgrade(), true), cleanuptest.WithTypedUpgrades(), func(c *cleanup.Config) {
		hosts, c.ConvertUpgrade = c.Upgrades, dropsNamespace
	})
	_ = f.SyncNow()
	for _, a := range f.Kube.Actions() {
		if a.GetVerb() == "create" {
			t.Errorf("created a %s in namespace %q from an Upgrade converted as another one", a.GetResource().Resource, a.GetNamespace())
		}
	}
	for _, a := range f.Dynamic.Actions() {
		if a.GetVerb() == "patch" {
			t.Errorf("patched %s in namespace %q from an Upgrade converted as another one", a.GetResource().Resource, a.GetNamespace())
		}
	}

	lister := cleanup.NewUpgradeLister(hosts, dropsNamespace)
	if _, _, err := lister.Get(testKey); err == nil || !strings.Contains(err.Error(), testKey.String()) {
		t.Errorf("Get(%s) through a converter that returns another key = %v, want an error naming %s", testKey, err, testKey)
	}
}
