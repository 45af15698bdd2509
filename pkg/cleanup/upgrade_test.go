package cleanup_test

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// upgradeObject returns an Upgrade as the dynamic client decodes it (numbers
// are int64, lists []any), with spec and status as given (nil leaves them out;
// they need not be maps, to build malformed objects).
func upgradeObject(name string, spec, status any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "harvesterhci.io/v1beta1",
		"kind":       informers.UpgradeKind,
		"metadata": map[string]any{
			"namespace":       "harvester-system",
			"name":            name,
			"uid":             "0b7e3c9a-1111-2222-3333-444455556666",
			"resourceVersion": "4711",
		},
	}}
	if spec != nil {
		u.Object["spec"] = spec
	}
	if status != nil {
		u.Object["status"] = status
	}
	return u
}

func conditions(conds ...any) map[string]any {
	return map[string]any{"previousVersion": "v1.4.0", "conditions": conds}
}

func condition(typ, status string) map[string]any {
	return map[string]any{"type": typ, "status": status}
}

func TestUpgradeFromUnstructured(t *testing.T) {
	full := upgradeObject("hvst-upgrade-abc",
		map[string]any{"version": "v1.4.1"},
		conditions(condition("ImageReady", "True"), condition("Completed", "True"), condition("NodesUpgraded", "True")))
	full.SetLabels(map[string]string{"harvesterhci.io/latestUpgrade": "true"})
	full.SetAnnotations(map[string]string{"example.io/state": "Planned"})

	base := cleanup.Upgrade{
		Namespace:       "harvester-system",
		Name:            "hvst-upgrade-abc",
		UID:             "0b7e3c9a-1111-2222-3333-444455556666",
		ResourceVersion: "4711",
		Version:         "v1.4.1",
		PreviousVersion: "v1.4.0",
	}
	with := func(f func(*cleanup.Upgrade)) cleanup.Upgrade {
		u := base
		f(&u)
		return u
	}

	tests := []struct {
		name string
		obj  *unstructured.Unstructured
		want cleanup.Upgrade
		// wantErr lists substrings the error must contain; nil means no error.
		wantErr []string
	}{
		{
			name: "full object",
			obj:  full,
			want: with(func(u *cleanup.Upgrade) {
				u.Completed = true
				u.Labels = map[string]string{"harvesterhci.io/latestUpgrade": "true"}
				u.Annotations = map[string]string{"example.io/state": "Planned"}
			}),
		},
		{
			name: "Completed False",
			obj:  upgradeObject("hvst-upgrade-abc", map[string]any{"version": "v1.4.1"}, conditions(condition("Completed", "False"))),
			want: base,
		},
		{
			name: "Completed Unknown",
			obj:  upgradeObject("hvst-upgrade-abc", map[string]any{"version": "v1.4.1"}, conditions(condition("Completed", "Unknown"))),
			want: base,
		},
		{
			name: "Completed condition missing",
			obj:  upgradeObject("hvst-upgrade-abc", map[string]any{"version": "v1.4.1"}, conditions(condition("ImageReady", "True"))),
			want: base,
		},
		{
			name: "no conditions",
			obj:  upgradeObject("hvst-upgrade-abc", map[string]any{"version": "v1.4.1"}, map[string]any{"previousVersion": "v1.4.0"}),
			want: base,
		},
		{
			name: "missing status gives empty fields",
			obj:  upgradeObject("hvst-upgrade-abc", map[string]any{"version": "v1.4.1"}, nil),
			want: with(func(u *cleanup.Upgrade) { u.PreviousVersion = "" }),
		},
		{
			name: "missing spec and status",
			obj:  upgradeObject("hvst-upgrade-abc", nil, nil),
			want: with(func(u *cleanup.Upgrade) { u.Version, u.PreviousVersion = "", "" }),
		},
		{
			name:    "conditions is a string, not a list",
			obj:     upgradeObject("hvst-upgrade-abc", map[string]any{"version": "v1.4.1"}, map[string]any{"conditions": "Completed"}),
			wantErr: []string{"harvester-system/hvst-upgrade-abc", "status.conditions"},
		},
		{
			name: "a condition is a string, not an object",
			obj: upgradeObject("hvst-upgrade-abc", map[string]any{"version": "v1.4.1"},
				conditions(condition("ImageReady", "True"), "Completed")),
			wantErr: []string{"harvester-system/hvst-upgrade-abc", "status.conditions[1]"},
		},
		{
			name:    "spec.version is a number",
			obj:     upgradeObject("hvst-upgrade-abc", map[string]any{"version": int64(141)}, nil),
			wantErr: []string{"harvester-system/hvst-upgrade-abc", "spec.version"},
		},
		{
			name:    "status.previousVersion is a number",
			obj:     upgradeObject("hvst-upgrade-abc", nil, map[string]any{"previousVersion": 1.4}),
			wantErr: []string{"harvester-system/hvst-upgrade-abc", "status.previousVersion"},
		},
		{
			name:    "status is a string",
			obj:     upgradeObject("hvst-upgrade-abc", nil, "Completed"),
			wantErr: []string{"harvester-system/hvst-upgrade-abc", "status."},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cleanup.UpgradeFromUnstructured(tt.obj)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("UpgradeFromUnstructured() = %+v, want an error", got)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("UpgradeFromUnstructured(): %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("UpgradeFromUnstructured() =\n%+v\nwant\n%+v", got, tt.want)
			}
			if k := got.Key(); k != (cache.ObjectName{Namespace: "harvester-system", Name: "hvst-upgrade-abc"}) {
				t.Errorf("Key() = %v", k)
			}
		})
	}
}

func TestUpgradeListerGet(t *testing.T) {
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{informers.UpgradeGVR: "UpgradeList"})
	inf := informers.NewUpgradeInformer(client, "", 0)
	// The lister reads the informer's cache; seeding the cache directly
	// stands for objects the informer has listed.
	seed := []any{
		upgradeObject("good", map[string]any{"version": "v1.4.1"}, conditions(condition("Completed", "True"))),
		upgradeObject("malformed", map[string]any{"version": "v1.4.1"}, map[string]any{"conditions": "Completed"}),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "harvester-system", Name: "typed"}},
	}
	for _, o := range seed {
		if err := inf.GetIndexer().Add(o); err != nil {
			t.Fatalf("seed cache: %v", err)
		}
	}
	lister := cleanup.NewUpgradeLister(inf, nil)

	tests := []struct {
		name        string
		key         string
		wantFound   bool
		wantVersion string
		wantErr     bool
	}{
		{name: "found", key: "good", wantFound: true, wantVersion: "v1.4.1"},
		{name: "not found", key: "absent"},
		{name: "same name in another namespace is not found", key: "other/good"},
		{name: "malformed object is an error", key: "malformed", wantErr: true},
		{name: "cache holding a typed object is an error", key: "typed", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := cache.ObjectName{Namespace: "harvester-system", Name: tt.key}
			if ns, name, ok := strings.Cut(tt.key, "/"); ok {
				key = cache.ObjectName{Namespace: ns, Name: name}
			}
			u, found, err := lister.Get(key)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Get(%v) error = %v, want error %v", key, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), key.String()) {
				t.Errorf("error %q does not name %v", err, key)
			}
			if found != tt.wantFound || u.Version != tt.wantVersion {
				t.Errorf("Get(%v) = version %q, found %v; want %q, %v", key, u.Version, found, tt.wantVersion, tt.wantFound)
			}
			if found && (!u.Completed || u.Key() != key) {
				t.Errorf("Get(%v) = %+v, want the completed upgrade %v", key, u, key)
			}
		})
	}
}
