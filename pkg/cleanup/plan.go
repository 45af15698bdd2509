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
	// globs are exclude's patterns with their fixed ends, one for each.
	globs []glob
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
		p.globs = append(p.globs, newGlob(e))
	}
	return p, nil
}

// glob is an exclusion pattern and the text every string it matches starts
// and ends with, so that a reference that lacks either is refused without
// running path.Match (which decides all others).
type glob struct {
	pattern, prefix, suffix string
}

func newGlob(pattern string) glob {
	g := glob{pattern: pattern, prefix: pattern}
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		g.prefix = pattern[:i]
	}
	// After the last * or ?, the rest is literal unless it holds a class
	// or an escape; then only the prefix is used.
	if !strings.ContainsAny(pattern, `[\`) {
		g.suffix = pattern[strings.LastIndexAny(pattern, "*?")+1:]
	}
	return g
}

func (g glob) match(s string) bool {
	if !strings.HasPrefix(s, g.prefix) || !strings.HasSuffix(s, g.suffix) {
		return false
	}
	ok, _ := path.Match(g.pattern, s)
	return ok
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
	// Each previous image is decided at its own position (decided[i].Rule
	// stays empty while it is a candidate for removal), so that Kept and
	// Remove come out in previous's order, sorted as Parse returns it.
	// FromNamed is called again where a previous image is needed again
	// rather than kept in a copy: for Parse's references it only slices.
	decided := make([]Kept, len(previous))
	var candidates []int32
	for i, n := range previous {
		r := imagematch.FromNamed(n)
		k := Kept{Image: r.Full}
		if m, found := inCurrent.Lookup(r); found {
			k.Rule, k.Match, k.Why = RuleInCurrent, m.Ref.Full, m.Why
		} else if e, found := p.retained(n); found {
			k.Rule, k.Match = RuleRetain, e
		} else if e, found := p.excluded(n); found {
			k.Rule, k.Match = RuleExclude, e
		} else {
			candidates = append(candidates, int32(i))
			continue
		}
		decided[i] = k
	}
	// Each round matches what is left against the images the last round
	// kept (the first round: every image kept so far); spellings chain
	// through a tag or a digest, so a few rounds do. Most kept images
	// share no key with any candidate: the round indexes only those a
	// Filter of the candidates' keys lets through, which answers alike.
	var last []int32
	for round := 1; len(candidates) > 0; round++ {
		f := imagematch.NewFilter(p.rules, len(candidates), func(yield func(imagematch.Ref) bool) {
			for _, i := range candidates {
				if !yield(imagematch.FromNamed(previous[i])) {
					return
				}
			}
		})
		var frontier []imagematch.Ref
		through := func(i int) {
			if r := imagematch.FromNamed(previous[i]); f.MayMatch(r) {
				frontier = append(frontier, r)
			}
		}
		if round == 1 {
			for i, k := range decided {
				if k.Rule != "" {
					through(i)
				}
			}
		} else {
			for _, i := range last {
				through(int(i))
			}
		}
		if len(frontier) == 0 {
			break // no candidate can match what the last round kept
		}
		sameAsKept := imagematch.NewIndex(p.rules, frontier)
		last = nil
		left := candidates[:0]
		for _, i := range candidates {
			r := imagematch.FromNamed(previous[i])
			m, found := sameAsKept.Lookup(r)
			if !found {
				left = append(left, i)
				continue
			}
			decided[i] = Kept{Image: r.Full, Rule: RuleSameAsKept, Match: m.Ref.Full, Why: m.Why}
			last = append(last, i)
		}
		candidates = left
		if len(last) == 0 {
			break
		}
	}
	var plan Plan
	if len(candidates) > 0 {
		plan.Remove = make([]string, len(candidates))
		for j, i := range candidates {
			plan.Remove[j] = imagematch.FromNamed(previous[i]).Full
		}
	}
	// The kept images, in place, in previous's order.
	kept := decided[:0]
	for _, k := range decided {
		if k.Rule != "" {
			kept = append(kept, k)
		}
	}
	if len(kept) > 0 {
		plan.Kept = kept
	}
	// Sorted already when previous is; the same image decided twice (a list
	// that is not unique) was decided alike, so order among equals is moot.
	byImage := func(a, b Kept) int { return strings.Compare(a.Image, b.Image) }
	if !slices.IsSortedFunc(plan.Kept, byImage) {
		slices.SortStableFunc(plan.Kept, byImage)
	}
	plan.Keep = keepList(refs, plan.Kept)
	return plan
}

// keepList is the Full of refs and the Image of kept (which is sorted),
// sorted and unique: a merge when refs is sorted too, as Parse returns it.
func keepList(refs []imagematch.Ref, kept []Kept) []string {
	out := make([]string, 0, len(refs)+len(kept))
	if !slices.IsSortedFunc(refs, func(a, b imagematch.Ref) int { return strings.Compare(a.Full, b.Full) }) {
		for _, r := range refs {
			out = append(out, r.Full)
		}
		for _, k := range kept {
			out = append(out, k.Image)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	for i, j := 0, 0; i < len(refs) || j < len(kept); {
		var s string
		if j == len(kept) || i < len(refs) && refs[i].Full <= kept[j].Image {
			s, i = refs[i].Full, i+1
		} else {
			s, j = kept[j].Image, j+1
		}
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

func (p Policy) retained(n reference.Named) (string, bool) {
	repo := reference.Path(n)
	for _, r := range p.retain {
		// repo is r or ends in "/"+r, without building "/"+r.
		if strings.HasSuffix(repo, r) && (len(repo) == len(r) || repo[len(repo)-len(r)-1] == '/') {
			return r, true
		}
	}
	return "", false
}

func (p Policy) excluded(n reference.Named) (string, bool) {
	if len(p.globs) == 0 {
		return "", false
	}
	full, short := n.String(), reference.FamiliarString(n)
	for _, g := range p.globs {
		if g.match(full) {
			return g.pattern, true
		}
		if g.match(short) {
			return g.pattern, true
		}
	}
	return "", false
}
