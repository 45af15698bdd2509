package cleanup

import (
	"path"
	"slices"
	"strings"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
)

// ComputePlanBefore is ComputePlan as it was before it was made to
// allocate less (issue 16), kept word for word as the reference the
// planner's results are checked against (TestComputePlanMatchesBefore).
func ComputePlanBefore(previous, current []reference.Named, p Policy) Plan {
	refs := make([]imagematch.Ref, len(current))
	for i, n := range current {
		refs[i] = imagematch.FromNamed(n)
	}
	inCurrent := imagematch.NewIndex(p.rules, refs)
	var plan Plan
	var candidates, kept []imagematch.Ref
	for _, n := range previous {
		r := imagematch.FromNamed(n)
		k, ok := Kept{Image: r.Full}, true
		if m, found := inCurrent.Lookup(r); found {
			k.Rule, k.Match, k.Why = RuleInCurrent, m.Ref.Full, m.Why
		} else if e, found := p.retainedBefore(n); found {
			k.Rule, k.Match = RuleRetain, e
		} else if e, found := p.excludedBefore(n); found {
			k.Rule, k.Match = RuleExclude, e
		} else {
			ok = false
		}
		if !ok {
			candidates = append(candidates, r)
			continue
		}
		plan.Kept = append(plan.Kept, k)
		kept = append(kept, r)
	}
	for frontier := kept; len(frontier) > 0 && len(candidates) > 0; {
		sameAsKept := imagematch.NewIndex(p.rules, frontier)
		frontier = nil
		left := candidates[:0]
		for _, r := range candidates {
			m, found := sameAsKept.Lookup(r)
			if !found {
				left = append(left, r)
				continue
			}
			plan.Kept = append(plan.Kept, Kept{Image: r.Full, Rule: RuleSameAsKept, Match: m.Ref.Full, Why: m.Why})
			frontier = append(frontier, r)
			kept = append(kept, r)
		}
		candidates = left
	}
	for _, r := range candidates {
		plan.Remove = append(plan.Remove, r.Full)
	}
	slices.SortStableFunc(plan.Kept, func(a, b Kept) int { return strings.Compare(a.Image, b.Image) })
	plan.Keep = make([]string, 0, len(refs)+len(kept))
	for _, r := range slices.Concat(refs, kept) {
		plan.Keep = append(plan.Keep, r.Full)
	}
	slices.Sort(plan.Keep)
	plan.Keep = slices.Compact(plan.Keep)
	return plan
}

func (p Policy) retainedBefore(n reference.Named) (string, bool) {
	repo := reference.Path(n)
	for _, r := range p.retain {
		if repo == r || strings.HasSuffix(repo, "/"+r) {
			return r, true
		}
	}
	return "", false
}

func (p Policy) excludedBefore(n reference.Named) (string, bool) {
	full, short := n.String(), reference.FamiliarString(n)
	for _, e := range p.exclude {
		if ok, _ := path.Match(e, full); ok {
			return e, true
		}
		if ok, _ := path.Match(e, short); ok {
			return e, true
		}
	}
	return "", false
}
