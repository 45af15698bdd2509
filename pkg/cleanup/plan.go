package cleanup

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
)

// DefaultRetain are the repositories Harvester never removes at the end of an
// upgrade: the upgrade image itself, Longhorn's engine and instance manager
// (volumes still run on the old ones until they are upgraded) and the logging
// images (harvester/harvester#5749: purging them broke running components).
func DefaultRetain() []string {
	return []string{
		"rancher/harvester-upgrade",
		"longhornio/longhorn-engine",
		"longhornio/longhorn-instance-manager",
		"rancher/mirrored-banzaicloud-fluentd",
		"rancher/mirrored-fluent-fluent-bit",
		"harvester-beta/vmdp",
		"suse/vmdp/vmdp",
	}
}

// Rule says why an image of the previous list is not removed.
type Rule string

// Rules by which an image of the previous list is kept.
const (
	// RuleInCurrent: a reference of the current list could name the same
	// node image under the remover's matching rules (imagematch).
	RuleInCurrent Rule = "in-current-list"
	// RuleRetain: its repository is on the retain list.
	RuleRetain Rule = "retain"
	// RuleExclude: it matches a user exclusion pattern.
	RuleExclude Rule = "exclude"
	// RuleSameAsKept: another spelling in the previous list of an image kept
	// by any rule, which the remover would take for it (Match is that
	// image, Why the matching rule).
	RuleSameAsKept Rule = "same-as-kept"
)

// Kept is an image of the previous list that the plan keeps, and why.
type Kept struct {
	Image string `json:"image"`
	Rule  Rule   `json:"rule"`
	// Match is what kept it: the current list's reference (RuleInCurrent),
	// the retain entry, the exclusion pattern, or the kept previous image
	// (RuleSameAsKept).
	Match string `json:"match"`
	// Why, for RuleInCurrent and RuleSameAsKept, is the matching rule that
	// applied.
	Why imagematch.Why `json:"why,omitempty"`
}

// Plan is what to remove from the nodes: fully-qualified normalised references,
// sorted and unique, and what was kept by which rule.
type Plan struct {
	Remove []string
	Kept   []Kept
	// Keep is the current list and every kept previous image, normalised,
	// sorted and unique: the remover refuses any image it covers (defence
	// in depth, should a plan ever name one).
	Keep []string
	// CatchUp are the catch-up versions whose lists were planned beside the
	// previous version's; CatchUpMissing those the repo's archive does not
	// serve (404), skipped.
	CatchUp, CatchUpMissing []string
}

// Policy holds the checked retain list and exclusion patterns.
type Policy struct {
	retain  []string
	exclude []string
	// rules are the remover's matching rules, which decide what of the
	// current list keeps a previous image.
	rules imagematch.Rules
	// set tells a Policy from NewPolicy from the zero value, which would
	// keep nothing, not even the upgrade image.
	set bool
}

// WithRules returns p planning under the remover's matching rules r; NewPolicy
// starts from imagematch.DefaultRules, the remover's defaults.
func (p Policy) WithRules(r imagematch.Rules) Policy {
	p.rules = r
	return p
}

// NewPolicy checks retain entries (repository paths such as rancher/x; they
// match that path under any registry host or mirror prefix) and exclusion
// patterns (path.Match globs, matched against the full reference,
// docker.io/rancher/x:1, and its short form, rancher/x:1).
func NewPolicy(retain, exclude []string) (Policy, error) {
	p := Policy{set: true, rules: imagematch.DefaultRules()}
	for _, r := range retain {
		named, err := reference.ParseNormalizedNamed(r)
		if err != nil || !reference.IsNameOnly(named) {
			return Policy{}, fmt.Errorf("retain entry %q is not a repository name (like rancher/harvester-upgrade)", r)
		}
		p.retain = append(p.retain, reference.Path(named))
	}
	for _, e := range exclude {
		if e == "" {
			return Policy{}, fmt.Errorf("exclude pattern is empty")
		}
		if _, err := path.Match(e, ""); err != nil {
			return Policy{}, fmt.Errorf("exclude pattern %q: %w", e, err)
		}
		p.exclude = append(p.exclude, e)
	}
	return p, nil
}

// ComputePlan returns the images of previous that current no longer has,
// minus those the policy keeps. A previous image is kept when any reference
// of current could name the same node image under the remover's matching
// rules (imagematch): the same repository and tag whatever digest either
// list writes, the same path and tag under another registry host while the
// rules match other registries, or the same digest. A previous image that
// could name the same node image as one kept for any reason is kept too
// (same-as-kept), and so on until no more are: the remover would take one
// for the other. Both lists come from imagelist.Parse.
//
// Keep is what the remover must refuse: the current list and every kept
// previous image.
func ComputePlan(previous, current []reference.Named, p Policy) Plan {
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
		} else if e, found := p.retained(n); found {
			k.Rule, k.Match = RuleRetain, e
		} else if e, found := p.excluded(n); found {
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
	// Each round matches what is left against the images the last round
	// kept; spellings chain through a tag or a digest, so a few rounds do.
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
	// previous is sorted; so is each round's part of Kept: merge them.
	slices.SortStableFunc(plan.Kept, func(a, b Kept) int { return strings.Compare(a.Image, b.Image) })
	plan.Keep = make([]string, 0, len(refs)+len(kept))
	for _, r := range slices.Concat(refs, kept) {
		plan.Keep = append(plan.Keep, r.Full)
	}
	slices.Sort(plan.Keep)
	plan.Keep = slices.Compact(plan.Keep)
	return plan
}

func (p Policy) retained(n reference.Named) (string, bool) {
	repo := reference.Path(n)
	for _, r := range p.retain {
		if repo == r || strings.HasSuffix(repo, "/"+r) {
			return r, true
		}
	}
	return "", false
}

func (p Policy) excluded(n reference.Named) (string, bool) {
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
