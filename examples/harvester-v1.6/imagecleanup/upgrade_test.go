package imagecleanup

import (
	"reflect"
	"strings"
	"testing"

	harvesterv1 "github.com/harvester/harvester/pkg/apis/harvesterhci.io/v1beta1"
	"github.com/rancher/wrangler/v3/pkg/condition"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

func TestConvertUpgrade(t *testing.T) {
	meta := metav1.ObjectMeta{
		Namespace:       "harvester-system",
		Name:            "hvst-upgrade-x",
		UID:             "uid-1",
		ResourceVersion: "42",
		Labels:          map[string]string{cleanup.LatestUpgradeLabel: "true"},
		Annotations:     map[string]string{cleanup.StateAnnotation: string(cleanup.StatePlanned)},
	}
	upgrade := func(conds ...harvesterv1.Condition) *harvesterv1.Upgrade {
		return &harvesterv1.Upgrade{
			ObjectMeta: *meta.DeepCopy(),
			Spec:       harvesterv1.UpgradeSpec{Version: "v1.6.0", Image: "ignored"},
			Status:     harvesterv1.UpgradeStatus{PreviousVersion: "v1.5.1", Conditions: conds},
		}
	}
	cond := func(c condition.Cond, status string) harvesterv1.Condition {
		return harvesterv1.Condition{Type: c, Status: corev1.ConditionStatus(status)}
	}
	want := func(completed bool) cleanup.Upgrade {
		return cleanup.Upgrade{
			Namespace: "harvester-system", Name: "hvst-upgrade-x", UID: "uid-1", ResourceVersion: "42",
			Version: "v1.6.0", PreviousVersion: "v1.5.1", Completed: completed,
			Labels:      map[string]string{cleanup.LatestUpgradeLabel: "true"},
			Annotations: map[string]string{cleanup.StateAnnotation: string(cleanup.StatePlanned)},
		}
	}
	for _, tc := range []struct {
		name    string
		obj     any
		want    cleanup.Upgrade
		wantErr string
	}{
		{name: "completed", obj: upgrade(cond(harvesterv1.UpgradeCompleted, "True")), want: want(true)},
		{name: "completed among other conditions", obj: upgrade(cond(harvesterv1.ImageReady, "True"), cond(harvesterv1.UpgradeCompleted, "True"), cond(harvesterv1.NodesUpgraded, "False")), want: want(true)},
		{name: "failed", obj: upgrade(cond(harvesterv1.UpgradeCompleted, "False")), want: want(false)},
		{name: "running", obj: upgrade(cond(harvesterv1.UpgradeCompleted, "Unknown")), want: want(false)},
		{name: "no conditions", obj: upgrade(), want: want(false)},
		{name: "another condition true", obj: upgrade(cond(harvesterv1.NodesUpgraded, "True")), want: want(false)},
		{name: "empty", obj: &harvesterv1.Upgrade{}, want: cleanup.Upgrade{}},
		{name: "nil Upgrade", obj: (*harvesterv1.Upgrade)(nil), wantErr: "*v1beta1.Upgrade"},
		{name: "tombstone", obj: cache.DeletedFinalStateUnknown{Key: "harvester-system/hvst-upgrade-x", Obj: upgrade()}, wantErr: "cache.DeletedFinalStateUnknown"},
		{name: "another type", obj: &harvesterv1.Version{}, wantErr: "*v1beta1.Version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ConvertUpgrade(tc.obj)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestConvertUpgradeCopiesMaps: what the cleanup does with the labels and
// annotations it read never reaches the shared cache's object.
func TestConvertUpgradeCopiesMaps(t *testing.T) {
	u := &harvesterv1.Upgrade{ObjectMeta: metav1.ObjectMeta{
		Labels:      map[string]string{"a": "1"},
		Annotations: map[string]string{"b": "2"},
	}}
	got, err := ConvertUpgrade(u)
	if err != nil {
		t.Fatal(err)
	}
	got.Labels["a"], got.Annotations["b"] = "changed", "changed"
	if u.Labels["a"] != "1" || u.Annotations["b"] != "2" {
		t.Errorf("the cached Upgrade changed: labels %v, annotations %v", u.Labels, u.Annotations)
	}
}
