package cleanup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/workqueue"
)

// CurrentVersion names the new version's list in the repo's archive.
const CurrentVersion = "current"

// maxStepsPerSync bounds one sync: a decision, the fetch it may make, and
// the decision on what that fetch did.
const maxStepsPerSync = 3

// sync brings one upgrade's cleanup one step further: gather a Snapshot,
// Decide, apply; after a fetch, once more on what the fetch did. attempt is
// how many times the key was retried through the rate limiter. It returns an
// error only for a failure worth a retry.
func (c *Controller) sync(ctx context.Context, key workqueue.Key, attempt int) error {
	logger := klog.FromContext(ctx)
	var tried *Tried
	for range maxStepsPerSync {
		s, err := c.gather(ctx, key, attempt, tried)
		if err != nil {
			return err
		}
		a := Decide(s, c.decideOptions())
		switch {
		case tried != nil && (tried.FetchErr != nil || tried.WriteErr != nil):
			// What a failed fetch means is the decision an operator asks about.
			logger.Info("Decided on a failed fetch", "action", a.Kind, "why", a.Why, "err", errors.Join(tried.FetchErr, tried.WriteErr))
		case a.Kind == ActNothing:
			logger.V(logDetail).Info("Nothing to do", "why", a.Why)
		default:
			// A recorded state logs its own line; a fetch, its plan.
			logger.V(logDetail).Info("Decided", "action", a.Kind, "why", a.Why)
		}
		if tried, err = c.apply(ctx, s, a); tried == nil {
			return err
		}
	}
	return fmt.Errorf("no decision after %d steps", maxStepsPerSync) // unreachable: a second fetch needs a second sync
}

// fetchLists fetches the previous list, then the current one; a failure of
// the first makes no second request. observe, if set, sees each request's
// result. An empty list is an error whatever the fetcher: an empty previous
// list would hide a wrong file behind an empty plan, an empty current list
// would plan every old image.
func fetchLists(ctx context.Context, f ListFetcher, t Target, previousVersion string, observe func(error)) (previous, current []reference.Named, err error) {
	fetch := func(version string) ([]reference.Named, error) {
		list, err := f.FetchList(ctx, t, version)
		if observe != nil {
			observe(err)
		}
		if err == nil && len(list) == 0 {
			err = ErrEmptyList
		}
		if err != nil {
			return nil, fmt.Errorf("fetch %s list: %w", version, err)
		}
		return list, nil
	}
	if previous, err = fetch(previousVersion); err != nil {
		return nil, nil, err
	}
	if current, err = fetch(CurrentVersion); err != nil {
		return nil, nil, err
	}
	return previous, current, nil
}

// fetchCatchUp fetches the lists of the catch-up versions, in order, after
// the previous and current ones. A version the repo's archive does not
// serve (404) is returned in missing and skipped: an older version may
// predate the archive, and it must not cost the cleanup of the previous
// one. Any other failure is the fetch's, as for the previous list.
func fetchCatchUp(ctx context.Context, f ListFetcher, t Target, versions []string, observe func(error)) (lists [][]reference.Named, fetched, missing []string, err error) {
	for _, v := range versions {
		list, err := f.FetchList(ctx, t, v)
		if observe != nil {
			observe(err)
		}
		var se *StatusError
		switch {
		case errors.As(err, &se) && se.StatusCode == http.StatusNotFound:
			missing = append(missing, v)
			continue
		case err == nil && len(list) == 0:
			err = ErrEmptyList
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("fetch %s list (catch-up): %w", v, err)
		}
		lists, fetched = append(lists, list), append(fetched, v)
	}
	return lists, fetched, missing, nil
}

// mergeLists joins image lists into one, sorted by String() and unique, as
// imagelist.Parse returns each.
func mergeLists(lists ...[]reference.Named) []reference.Named {
	var all []reference.Named
	for _, l := range lists {
		all = append(all, l...)
	}
	slices.SortFunc(all, func(a, b reference.Named) int { return strings.Compare(a.String(), b.String()) })
	return slices.CompactFunc(all, func(a, b reference.Named) bool { return a.String() == b.String() })
}

// fetchPlan fetches what the plan of u needs from t (the previous and
// current lists, then the catch-up versions' lists) and computes it.
func fetchPlan(ctx context.Context, f ListFetcher, t Target, u Upgrade, catchUp []string, p Policy, observe func(error)) (Plan, error) {
	previous, current, err := fetchLists(ctx, f, t, u.PreviousVersion, observe)
	if err != nil {
		return Plan{}, err
	}
	extra, fetched, missing, err := fetchCatchUp(ctx, f, t, catchUp, observe)
	if err != nil {
		return Plan{}, err
	}
	plan := ComputePlan(mergeLists(append([][]reference.Named{previous}, extra...)...), current, p)
	plan.CatchUp, plan.CatchUpMissing = fetched, missing
	return plan, nil
}
