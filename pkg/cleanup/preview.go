package cleanup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// PreviewOptions say which Upgrade to preview and how to reach its repo;
// they mirror the controller's Options for one upgrade.
type PreviewOptions struct {
	Namespace, Name string
	// Selector picks the repo's EndpointSlices (DefaultSelector).
	Selector    labels.Selector
	RepoAddress RepoAddress
	Policy      Policy
	// CatchUp are the catch-up versions when the Upgrade has no
	// CatchUpAnnotation (the controller's Options.CatchUp).
	CatchUp []string
}

// Preview computes the plan the controller would write for one live
// Upgrade, on the controller's own path: the same readiness of the same
// slices, the same Decide, the same fetch and the same planner. It only
// reads (one GET, one LIST, two list requests; no write of any kind) and
// asks the repo nothing unless Decide would fetch; a previous version no URL
// can carry is refused before the LIST. The Upgrade need not be
// Completed, and its cleanup state is ignored: the preview answers "what
// would be planned now", also while the upgrade runs and after a failure.
func Preview(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, fetcher ListFetcher, o PreviewOptions) (Plan, Upgrade, error) {
	if o.Selector == nil {
		return Plan{}, Upgrade{}, errors.New("preview: selector is nil")
	}
	if !o.Policy.set {
		return Plan{}, Upgrade{}, errors.New("preview: policy is not set; build it with NewPolicy")
	}
	obj, err := dyn.Resource(informers.UpgradeGVR).Namespace(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil {
		return Plan{}, Upgrade{}, fmt.Errorf("get Upgrade %s/%s: %w", o.Namespace, o.Name, err)
	}
	u, err := UpgradeFromUnstructured(obj)
	if err != nil {
		return Plan{}, Upgrade{}, err
	}
	// Decide first on what is known without the repo: a version no URL
	// can carry is refused before anything else is asked.
	catchUp, err := CatchUpVersions(u, o.CatchUp)
	if err != nil {
		return Plan{}, u, fmt.Errorf("upgrade %s/%s: cannot fetch image lists: %w", u.Namespace, u.Name, err)
	}
	s := previewSnapshot(u)
	opts := DecideOptions{RepoAddress: o.RepoAddress}
	if a := Decide(s, opts); a.Kind == ActRecord && a.Outcome.State == StateFailed {
		return Plan{}, u, fmt.Errorf("upgrade %s/%s: %s", u.Namespace, u.Name, a.Outcome.Message)
	}
	list, err := kube.DiscoveryV1().EndpointSlices(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: o.Selector.String()})
	if err != nil {
		return Plan{}, u, fmt.Errorf("list EndpointSlices in %s: %w", o.Namespace, err)
	}
	all := make([]*discoveryv1.EndpointSlice, len(list.Items))
	for i := range list.Items {
		all[i] = &list.Items[i]
	}
	mine := informers.RepoSlices(all, u.Name)
	s.Repo = informers.ReadinessOf(mine)
	a := Decide(s, opts)
	switch {
	case a.Kind == ActRecord && a.Outcome.State == StateWaitingForRepo:
		return Plan{}, u, fmt.Errorf("repo %s%s has no Ready endpoint; nothing to fetch (%d of its EndpointSlices in %s match selector %q)",
			informers.RepoServicePrefix, u.Name, len(mine), o.Namespace, o.Selector.String())
	case a.Kind != ActFetch:
		return Plan{}, u, fmt.Errorf("upgrade %s/%s: %s", u.Namespace, u.Name, cmp.Or(a.Outcome.Message, a.Why))
	}
	plan, err := fetchPlan(ctx, fetcher, a.Target, u, catchUp, o.Policy, nil)
	if err != nil {
		return Plan{}, u, err
	}
	return plan, u, nil
}

// previewSnapshot is u as the controller would see it on completion, before
// any cleanup state: Completed, latest, no state annotations, no plan; the
// repo's readiness is still to be read.
func previewSnapshot(u Upgrade) Snapshot {
	u.Completed = true
	u.Labels = maps.Clone(u.Labels)
	if u.Labels == nil {
		u.Labels = map[string]string{}
	}
	u.Labels[LatestUpgradeLabel] = "true"
	u.Annotations = nil
	return Snapshot{Found: true, Upgrade: u, Plan: PlanSeen{Presence: PlanAbsent}}
}
