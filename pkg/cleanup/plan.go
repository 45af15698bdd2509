package cleanup

import (
	"fmt"
	"path"
	"strings"

	"github.com/distribution/reference"
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
	}
}

// Rule says why an image of the previous list is not removed.
type Rule string

// Rules by which an image of the previous list is kept.
const (
	// RuleInCurrent: the current list still has the image.
	RuleInCurrent Rule = "in-current-list"
	// RuleRetain: its repository is on the retain list.
	RuleRetain Rule = "retain"
	// RuleExclude: it matches a user exclusion pattern.
	RuleExclude Rule = "exclude"
)

// Kept is an image of the previous list that the plan keeps, and why.
type Kept struct {
	Image string
	Rule  Rule
	// Match is the retain entry or exclusion pattern that kept it.
	Match string
}

// Plan is what to remove from the nodes: fully-qualified normalised references,
// sorted and unique, and what was kept by which rule.
type Plan struct {
	Remove []string
	Kept   []Kept
}

// Policy holds the checked retain list and exclusion patterns.
type Policy struct {
	retain  []string
	exclude []string
	// set tells a Policy from NewPolicy from the zero value, which would
	// keep nothing, not even the upgrade image.
	set bool
}

// NewPolicy checks retain entries (repository paths such as rancher/x; they
// match that path under any registry host or mirror prefix) and exclusion
// patterns (path.Match globs, matched against the full reference,
// docker.io/rancher/x:1, and its short form, rancher/x:1).
func NewPolicy(retain, exclude []string) (Policy, error) {
	p := Policy{set: true}
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
// minus those the policy keeps. Both lists come from imagelist.Parse, so equal
// images have equal strings.
func ComputePlan(previous, current []reference.Named, p Policy) Plan {
	inCurrent := make(map[string]struct{}, len(current))
	for _, n := range current {
		inCurrent[n.String()] = struct{}{}
	}
	var plan Plan
	for _, n := range previous {
		ref := n.String()
		if _, ok := inCurrent[ref]; ok {
			plan.Kept = append(plan.Kept, Kept{Image: ref, Rule: RuleInCurrent})
			continue
		}
		if r, ok := p.retained(n); ok {
			plan.Kept = append(plan.Kept, Kept{Image: ref, Rule: RuleRetain, Match: r})
			continue
		}
		if e, ok := p.excluded(n); ok {
			plan.Kept = append(plan.Kept, Kept{Image: ref, Rule: RuleExclude, Match: e})
			continue
		}
		plan.Remove = append(plan.Remove, ref)
	}
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
