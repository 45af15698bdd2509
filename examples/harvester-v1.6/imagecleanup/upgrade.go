package imagecleanup

import (
	"fmt"
	"maps"

	harvesterv1 "github.com/harvester/harvester/pkg/apis/harvesterhci.io/v1beta1"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// ConvertUpgrade reads the cleanup's model of an Upgrade from Harvester's
// typed Upgrade, as the informer of Harvester's factory caches it
// (cleanup.Config.ConvertUpgrade). Completed is read as Harvester's upgrade
// controller reads it (UpgradeCompleted.IsTrue). Labels and annotations are
// copies, so nothing the cleanup does can change the shared cache.
func ConvertUpgrade(obj any) (cleanup.Upgrade, error) {
	u, ok := obj.(*harvesterv1.Upgrade)
	if !ok || u == nil {
		return cleanup.Upgrade{}, fmt.Errorf("image cleanup: the Upgrade cache holds %T, not a *v1beta1.Upgrade", obj)
	}
	return cleanup.Upgrade{
		Namespace:       u.Namespace,
		Name:            u.Name,
		UID:             u.UID,
		ResourceVersion: u.ResourceVersion,
		Version:         u.Spec.Version,
		PreviousVersion: u.Status.PreviousVersion,
		Completed:       harvesterv1.UpgradeCompleted.IsTrue(u),
		Labels:          maps.Clone(u.Labels),
		Annotations:     maps.Clone(u.Annotations),
	}, nil
}
