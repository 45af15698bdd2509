package cleanup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// The cleanup's behaviour as data: gather reads one Snapshot, Decide turns
// it into one Action, apply performs it. Decide has no clock, client or
// logger, so its table test (decide_test.go) is the state machine's
// specification.

// PlanPresence says what stands in the plan ConfigMap's place.
type PlanPresence string

const (
	// PlanAbsent: no ConfigMap of the plan's name.
	PlanAbsent PlanPresence = "absent"
	// PlanOwned: a ConfigMap owned by this Upgrade (by UID).
	PlanOwned PlanPresence = "owned"
	// PlanForeign: a ConfigMap the Upgrade does not own; it is never used
	// nor overwritten.
	PlanForeign PlanPresence = "foreign"
)

// PlanSeen is what gather found of the plan ConfigMap.
type PlanSeen struct {
	Presence PlanPresence
	// Ref names an owned plan; Ref.Digest is its content's digest.
	Ref PlanRef
	// Invalid says why an owned plan may not run (no keep list, content
	// not what its digest annotation says); nil when it may.
	Invalid error
	// Message is the state message for the plan: Contents, and when it
	// was written.
	Message string
	// Contents says what the plan holds: count, versions, ConfigMap.
	Contents string
	// Foreign explains a PlanForeign ConfigMap.
	Foreign error
}

// Snapshot is everything one decision about an upgrade's cleanup needs.
type Snapshot struct {
	// Found is false when the Upgrade does not exist (or not yet: the
	// repo's slices may be seen before it).
	Found bool
	// Malformed says why the Upgrade could not be read; it stays so until
	// it changes, and its update event brings it back.
	Malformed error
	Upgrade   Upgrade
	Plan      PlanSeen
	// Repo is the repo's readiness now; Epoch counts its not-ready → ready
	// transitions that the gate has seen.
	Repo  informers.Readiness
	Epoch uint64
	// FailedIn is the Ready epoch a fetch failure was recorded in, when
	// FailedInKnown: a later epoch re-arms it. A failure this process did
	// not see (recorded before a restart) is unknown.
	FailedIn      uint64
	FailedInKnown bool
	// Attempt is how many times the key was retried through the rate limiter.
	Attempt int
	// Tried is what this sync's own fetch and plan write did, when it made one.
	Tried *Tried
}

// Tried is the result of a fetch this sync made.
type Tried struct {
	// Epoch is the Ready epoch the fetch was made in.
	Epoch uint64
	// FetchErr is why the image lists could not be fetched.
	FetchErr error
	// WriteErr is why the plan could not be written.
	WriteErr error
	// Aborted: the controller is stopping; the failure is ours, not the repo's.
	Aborted bool
}

// ActionKind is what apply does.
type ActionKind string

// The actions.
const (
	// ActNothing: leave everything as it is.
	ActNothing ActionKind = "nothing"
	// ActRecord: write Outcome on the Upgrade.
	ActRecord ActionKind = "record"
	// ActFetch: fetch both lists from Target, plan, write the plan.
	ActFetch ActionKind = "fetch"
	// ActExecute: hand Plan to the executor and record what it reports.
	ActExecute ActionKind = "execute"
	// ActRequeue: sync again at once, with a fresh retry budget.
	ActRequeue ActionKind = "requeue"
	// ActRetry: sync again after the rate limiter's delay; Err says why.
	ActRetry ActionKind = "retry"
)

// Action is one decision. Only the fields of its Kind are set.
type Action struct {
	Kind ActionKind
	// Why explains the decision, for the log and the table test.
	Why string
	// Outcome is what ActRecord writes.
	Outcome Outcome
	// Target is where ActFetch dials.
	Target Target
	// Plan is what ActExecute runs.
	Plan PlanRef
	// Err is why ActRetry retries.
	Err error
	// PinFailure: remember that the cleanup failed in Snapshot.Epoch (or
	// Tried.Epoch), so only a later Ready phase re-arms it.
	PinFailure bool
}

// DecideOptions are the settings Decide reads.
type DecideOptions struct {
	// MaxRetries is how many rate-limited retries a fetch gets while the
	// repo stays Ready before the cleanup is Failed.
	MaxRetries int
	// RepoAddress says how the repo is dialed.
	RepoAddress RepoAddress
	// Skip switches every cleanup off (Options.Skip).
	Skip bool
	// CatchUp are the older versions planned for every Upgrade without
	// CatchUpAnnotation (Options.CatchUp).
	CatchUp []string
}

func nothing(why string) Action { return Action{Kind: ActNothing, Why: why} }

func recordState(s State, msg, why string) Action {
	return Action{Kind: ActRecord, Why: why, Outcome: Outcome{State: s, Message: msg}}
}

func failed(phase Phase, msg, why string) Action {
	return Action{Kind: ActRecord, Why: why, Outcome: Outcome{State: StateFailed, Phase: phase, Message: msg}}
}

// Decide returns what to do next for one upgrade's cleanup.
func Decide(s Snapshot, o DecideOptions) Action {
	switch {
	case s.Malformed != nil:
		return nothing("the Upgrade is malformed: " + s.Malformed.Error())
	case !s.Found:
		return nothing("no such Upgrade")
	}
	if why := settled(s.Upgrade); why != "" {
		return nothing(why)
	}
	u := s.Upgrade
	state, phase := State(u.Annotations[StateAnnotation]), Phase(u.Annotations[FailedPhaseAnnotation])
	if u.Labels[LatestUpgradeLabel] != "true" {
		return decideReplaced(s)
	}
	if token := pendingRerun(u); token != "" {
		return decideRerun(s, token)
	}
	if u.Annotations[HarvesterDoneAnnotation] == "true" && !rerunning(u) {
		// This controller sets the annotation only with Succeeded, in the
		// same patch: another one (Harvester's upgrade controller, or the
		// host's own removal) completed the plan. A state left under way
		// would never move again.
		return Action{Kind: ActRecord, Why: "another controller completed the image cleanup", Outcome: Outcome{
			State: StateSucceeded,
			Message: fmt.Sprintf("stopped in state %s: %s was set to \"true\" by another controller (Harvester's upgrade controller, or the host's own removal), not by this one; Jobs already started run to their end",
				state, HarvesterDoneAnnotation),
		}}
	}
	why, err := skipped(u, o)
	if err != nil && state != StateRemoving && !rerunning(u) {
		// Not a guess either way: skipping is not removing, and removing
		// is what the person may have meant to stop.
		if !u.Completed {
			return nothing("the upgrade runs; not planning early: " + err.Error())
		}
		return failed(PhaseFetch, err.Error()+"; nothing is fetched or removed until it is: fix it, then remove the annotation "+StateAnnotation,
			"the skip annotation cannot be read")
	}
	if why != "" && state != StateRemoving && !rerunning(u) {
		if !u.Completed {
			return nothing(why + "; recorded when the upgrade completes")
		}
		// Harvester's own cleanup must not run in its place either.
		return Action{Kind: ActRecord, Why: "the cleanup is switched off", Outcome: Outcome{
			State: StateSkipped, Message: why + "; no image is removed (" + HarvesterDoneAnnotation + " is set so Harvester's own cleanup does not run either)",
			Annotations: map[string]string{HarvesterDoneAnnotation: "true"},
		}}
	}
	// A removal under way runs to its end, even should Completed turn
	// false again: its Jobs are running.
	if !u.Completed && state != StateRemoving {
		return decideEarly(s, o)
	}
	if state == StatePlanned || state == StateRemoving {
		return decideExecute(s)
	}
	// A plan already written (restart after writing it, a stale cache, a
	// Planned patch that did not land, or a person re-arming a failed
	// removal) stands, whether the repo is up or not: fetching again could
	// only make a second, different plan.
	switch s.Plan.Presence {
	case PlanForeign:
		return failed(PhasePlan, s.Plan.Foreign.Error(), "a ConfigMap the Upgrade does not own holds the plan's place")
	case PlanOwned:
		if state == StateFailed && phase == "" && s.Tried == nil {
			return nothing("failed after planning, recorded by a version that wrote no phase")
		}
		return decidePlanned(s)
	}
	// Only now: the versions matter to a fetch, not to a plan written.
	if err := validateInput(u, o); err != nil {
		return failed(PhaseFetch, "cannot fetch image lists: "+err.Error(), "a version to fetch cannot be put in a URL")
	}
	if s.Tried != nil {
		return decideTried(s, o)
	}
	if state == StateFailed && s.Repo.Ready() {
		failedIn := s.Epoch
		if s.FailedInKnown {
			failedIn = s.FailedIn
		}
		if s.Epoch <= failedIn {
			// A failure this process did not see is pinned to the current
			// Ready phase, so the next one re-arms it.
			return Action{Kind: ActNothing, Why: "failed in this Ready phase; the next one re-arms it", PinFailure: !s.FailedInKnown}
		}
	}
	if !s.Repo.Ready() {
		// No request, no requeue: the gate enqueues the key when an
		// endpoint is Ready. Already waiting: recorded once, and a more
		// telling message (the repo went away during a fetch) is kept.
		if state == StateWaitingForRepo {
			return nothing("already waiting for the repo")
		}
		msg := "waiting for a Ready endpoint of Service " + informers.RepoServicePrefix + u.Name
		if state == StateFailed {
			msg = "re-armed after failure, waiting for a Ready endpoint of Service " + informers.RepoServicePrefix + u.Name
		}
		return recordState(StateWaitingForRepo, msg, "the repo has no Ready endpoint")
	}
	return Action{Kind: ActFetch, Why: "the repo is Ready", Target: RepoTarget(u, s.Repo, s.Attempt, o.RepoAddress)}
}

// decideEarly plans while the upgrade runs: the repo serves from early in
// the upgrade until its end, so a plan written now needs no request to the
// repo at completion, when a single node's repo restarts. Nothing is
// recorded until there is a plan: a repo not Ready yet, or a version not
// set yet, is the normal course of an upgrade, and the completion decides
// again on everything.
func decideEarly(s Snapshot, o DecideOptions) Action {
	u := s.Upgrade
	if u.PreviousVersion == "" {
		return nothing("the upgrade runs and has no status.previousVersion yet")
	}
	switch s.Plan.Presence {
	case PlanForeign:
		// Perhaps a deleted Upgrade's, which the garbage collector removes
		// in a moment: the completion records it if it stays.
		return nothing("the upgrade runs; not planning early: " + s.Plan.Foreign.Error())
	case PlanOwned:
		return decidePlanned(s)
	}
	if err := validateInput(u, o); err != nil {
		return nothing("the upgrade runs; not planning early: " + err.Error())
	}
	if s.Tried != nil {
		return decideTried(s, o)
	}
	if !s.Repo.Ready() {
		return nothing("the upgrade runs; its repo has no Ready endpoint yet")
	}
	return Action{Kind: ActFetch, Why: "the upgrade runs and its repo is Ready: planning early", Target: RepoTarget(u, s.Repo, s.Attempt, o.RepoAddress)}
}

// validateInput checks every version the fetch would put in a URL.
func validateInput(u Upgrade, o DecideOptions) error {
	if err := ValidateVersion("status.previousVersion", u.PreviousVersion); err != nil {
		return err
	}
	_, err := CatchUpVersions(u, o.CatchUp)
	return err
}

// CatchUpVersions returns the older versions whose images the plan of u
// also removes: CatchUpAnnotation's comma-separated list when the Upgrade
// has it (empty means none), else def. Each must be a version
// (ValidateVersion) other than "current"; duplicates are dropped. The
// previous version is refused in the annotation, which names it for this
// Upgrade, and dropped from def, which names versions for every Upgrade:
// one of them upgraded from it.
func CatchUpVersions(u Upgrade, def []string) ([]string, error) {
	field, list, fromOption := "option catch-up", def, true
	if v, ok := u.Annotations[CatchUpAnnotation]; ok {
		field, list, fromOption = "annotation "+CatchUpAnnotation, splitList(v), false
	}
	var out []string
	for _, v := range list {
		if err := ValidateVersion(field+" entry", v); err != nil {
			return nil, err
		}
		switch {
		case v == CurrentVersion:
			return nil, fmt.Errorf("%s entry %q: the current list is what the plan keeps; name only older versions", field, v)
		case v == u.PreviousVersion && fromOption:
			continue
		case v == u.PreviousVersion:
			return nil, fmt.Errorf("%s entry %q: the previous version's list is already fetched; name only older versions", field, v)
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// splitList splits a comma-separated annotation value, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, w := range strings.Split(v, ",") {
		if w = strings.TrimSpace(w); w != "" {
			out = append(out, w)
		}
	}
	return out
}

// skipped says why the cleanup of u is switched off; "" when it is not.
// SkipAnnotation is read as a boolean (true, True, 1, false, ...); any
// other value is an error naming it.
func skipped(u Upgrade, o DecideOptions) (string, error) {
	if v, ok := u.Annotations[SkipAnnotation]; ok {
		skip, err := strconv.ParseBool(v)
		if err != nil {
			return "", fmt.Errorf("annotation %s %q is neither true nor false", SkipAnnotation, imagelist.Truncate(imagelist.Printable(v), 64))
		}
		if skip {
			return "skipped by annotation " + SkipAnnotation + "=" + v, nil
		}
	}
	if o.Skip {
		return "skipped: every cleanup is switched off (option skip)", nil
	}
	return "", nil
}

// pendingRerun is the RerunAnnotation token not yet acted on (neither
// started nor refused), if the cleanup has ended and so may run again; ""
// otherwise.
func pendingRerun(u Upgrade) string {
	token := u.Annotations[RerunAnnotation]
	state := State(u.Annotations[StateAnnotation])
	key := tokenKey(token)
	if token == "" || key == u.Annotations[RunAnnotation] || key == u.Annotations[RerunRefusedAnnotation] || !u.Completed ||
		(state != StateSucceeded && state != StateFailed && state != StateSkipped) {
		return ""
	}
	return token
}

// RerunAnswer says what the controller made of u's RerunAnnotation token,
// comparing it as the controller does (by its recorded key): RerunStarted,
// RerunRefused, RerunPending (not answered yet), or "" when no token is set.
func RerunAnswer(u Upgrade) string {
	token := u.Annotations[RerunAnnotation]
	switch key := tokenKey(token); {
	case token == "":
		return ""
	case key == u.Annotations[RunAnnotation]:
		return RerunStarted
	case key == u.Annotations[RerunRefusedAnnotation]:
		return RerunRefused
	}
	return RerunPending
}

// What the controller made of a re-run token (RerunAnswer).
const (
	RerunStarted = "started"
	RerunRefused = "refused"
	RerunPending = "pending"
)

// rerunning reports whether u's removal under way is a re-run: its
// HarvesterDoneAnnotation then predates it, and its skip was overridden by
// the person who asked for it.
func rerunning(u Upgrade) bool {
	s := State(u.Annotations[StateAnnotation])
	return u.Annotations[RerunningAnnotation] == "true" && (s == StatePlanned || s == StateRemoving)
}

// decideRerun starts the stored plan again for token, without the repo,
// or records why it cannot: the token is recorded as started
// (RunAnnotation) or refused (RerunRefusedAnnotation). Only the plan that
// was planned runs again: one replaced since, whose digest is not the one
// recorded on the Upgrade, is refused as it would be in Planned.
func decideRerun(s Snapshot, token string) Action {
	u, p := s.Upgrade, s.Plan
	state, phase := State(u.Annotations[StateAnnotation]), Phase(u.Annotations[FailedPhaseAnnotation])
	var refused string
	switch recorded := u.Annotations[PlanDigestAnnotation]; {
	case p.Presence == PlanAbsent:
		refused = fmt.Sprintf("no plan is stored (ConfigMap %s/%s); remove the annotation %s", u.Namespace, PlanConfigMapName(u.Name), StateAnnotation)
		if u.Annotations[HarvesterDoneAnnotation] == "true" {
			refused += " and " + HarvesterDoneAnnotation
		}
		refused += " to plan again from the repo"
	case p.Presence == PlanForeign:
		refused = p.Foreign.Error()
	case p.Invalid != nil:
		refused = p.Invalid.Error()
	case recorded != "" && recorded != p.Ref.Digest:
		refused = fmt.Sprintf("plan ConfigMap %s/%s: %s has digest %s, but the upgrade recorded %q when it was planned: it is not the plan that was planned",
			u.Namespace, p.Ref.ConfigMap, PlanKey, p.Ref.Digest, recorded)
	}
	if refused != "" {
		return refuseRerun(state, phase, token, refused)
	}
	key := tokenKey(token)
	return Action{Kind: ActRecord, Why: "a re-run was asked for", Outcome: Outcome{
		State:   StatePlanned,
		Message: fmt.Sprintf("re-run %q: running the stored plan again on every node, without the repo: %s", tokenText(token), p.Contents),
		Annotations: map[string]string{PlanDigestAnnotation: p.Ref.Digest, RunAnnotation: key, RerunningAnnotation: "true",
			// Chained to the last run's ID: new at each start, whatever
			// the token, so no earlier run's Jobs are taken for this one.
			RunIDAnnotation: runID(key + "@" + u.Annotations[RunIDAnnotation])},
	}}
}

// refuseRerun records why token cannot run, changing nothing else: the
// state and its phase stay as they are (an older version's Failed without
// a phase too), and the token is recorded as answered.
func refuseRerun(state State, phase Phase, token, why string) Action {
	return Action{Kind: ActRecord, Why: "a re-run was asked for, but there is no plan it may run", Outcome: Outcome{
		State: state, Phase: phase, keepPhase: true,
		Message:     fmt.Sprintf("re-run %q refused, still %s: %s", tokenText(token), state, why),
		Annotations: map[string]string{RerunRefusedAnnotation: tokenKey(token)},
	}}
}

// maxToken bounds a re-run token as it is recorded: the Upgrade's
// annotations together may hold 256 KiB, Harvester's own among them.
const maxToken = 128

// tokenKey is how a re-run token is recorded and compared: itself when it
// is short and printable (a date, a number), else its digest. A token that
// itself reads "sha256:..." is digested too, so it can never be taken for
// another token's digest.
func tokenKey(token string) string {
	if len(token) <= maxToken && imagelist.Printable(token) == token && !strings.HasPrefix(token, "sha256:") {
		return token
	}
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// tokenText is a token as a message quotes it.
func tokenText(token string) string { return imagelist.Truncate(token, 64) }

// decideReplaced answers for an Upgrade a newer one replaced (its latest
// label is no longer "true"), which Harvester and this controller no longer
// clean after: a removal under way runs to its end, one not started is
// Skipped saying why, and a re-run is refused saying why; nothing is left
// waiting for ever.
func decideReplaced(s Snapshot) Action {
	u := s.Upgrade
	state, phase := State(u.Annotations[StateAnnotation]), Phase(u.Annotations[FailedPhaseAnnotation])
	const why = "the upgrade is no longer the latest (" + LatestUpgradeLabel + " is not \"true\"): a newer one replaced it"
	switch {
	case state == StateRemoving:
		return decideExecute(s)
	case state == StatePlanned || state == StateWaitingForRepo:
		return recordState(StateSkipped, why+" before its removal started; nothing is removed for it", "replaced before the removal started")
	}
	if token := pendingRerun(u); token != "" {
		return refuseRerun(state, phase, token, why+"; only the latest upgrade is cleaned")
	}
	return nothing("not the latest upgrade") // Harvester acts only on the latest; so do we
}

// settled says why nothing the plan or the repo could say makes the cleanup
// act on u; "" when they might. gather reads neither for a settled Upgrade:
// Harvester keeps every past Upgrade, and each resync must not cost a GET.
func settled(u Upgrade) string {
	state, phase := State(u.Annotations[StateAnnotation]), Phase(u.Annotations[FailedPhaseAnnotation])
	switch {
	case u.Labels[LatestUpgradeLabel] != "true" && !underWay(state) && pendingRerun(u) == "":
		return "not the latest upgrade" // Harvester acts only on the latest; so do we
	case u.Labels[LatestUpgradeLabel] != "true":
		return "" // decideReplaced ends it
	case pendingRerun(u) != "":
		return "" // a re-run reads the stored plan
	case !u.Completed && state == StatePlanned:
		return "planned while the upgrade runs; removal starts when it completes"
	case state == StateSucceeded:
		return "the cleanup succeeded"
	case state == StateSkipped:
		return "the cleanup was skipped"
	case u.Annotations[HarvesterDoneAnnotation] == "true" && !underWay(state):
		return "Harvester's own cleanup ran"
	case state == StateFailed && phase != "" && phase != PhaseFetch:
		// The plan could not be stored or trusted, or the removal failed:
		// the repo coming and going says nothing about that; only a person
		// re-arms it (by removing the state annotation).
		return "failed in phase " + string(phase) + "; only a person re-arms it"
	}
	return ""
}

// underWay reports whether a cleanup in state s still has a step to take
// that only this controller would take.
func underWay(s State) bool {
	return s == StateWaitingForRepo || s == StatePlanned || s == StateRemoving
}

// decidePlanned records Planned for a written plan, with the plan's digest,
// once the plan is checked: a plan whose content is not what its digest
// says is Failed and never run.
func decidePlanned(s Snapshot) Action {
	if s.Plan.Invalid != nil {
		return failed(PhasePlan, s.Plan.Invalid.Error(), "the written plan cannot be trusted")
	}
	return Action{Kind: ActRecord, Why: "a plan is written", Outcome: Outcome{
		State: StatePlanned, Message: s.Plan.Message,
		Annotations: map[string]string{PlanDigestAnnotation: s.Plan.Ref.Digest},
	}}
}

// decideExecute checks the plan on every sync of a planned or running
// removal: a plan deleted, replaced or changed since it was planned fails
// the cleanup, and no Job starts.
func decideExecute(s Snapshot) Action {
	u, p := s.Upgrade, s.Plan
	switch {
	case p.Presence == PlanForeign:
		return failed(PhasePlan, p.Foreign.Error(), "a ConfigMap the Upgrade does not own holds the plan's place")
	case p.Presence == PlanAbsent:
		return failed(PhaseRemoval, fmt.Sprintf("plan ConfigMap %s/%s is gone; remove the annotation %s to plan again", u.Namespace, PlanConfigMapName(u.Name), StateAnnotation),
			"the plan was deleted")
	case p.Invalid != nil:
		return failed(PhasePlan, p.Invalid.Error(), "the written plan cannot be trusted")
	}
	if recorded := u.Annotations[PlanDigestAnnotation]; recorded != p.Ref.Digest {
		return failed(PhasePlan, fmt.Sprintf("plan ConfigMap %s/%s: %s has digest %s, but the upgrade recorded %q when it was planned; not running it: delete the ConfigMap and remove the annotation %s to plan again",
			u.Namespace, p.Ref.ConfigMap, PlanKey, p.Ref.Digest, recorded, StateAnnotation), "the plan is not the one planned")
	}
	return Action{Kind: ActExecute, Why: "the plan is checked", Plan: p.Ref}
}

// decideTried judges this sync's own failed fetch or plan write. A fetch
// that failed after the repo stopped being Ready says nothing about the
// repo: wait for Ready again, with no retry spent. If it stayed Ready, retry
// through the rate limiter up to the cap, then record Failed.
func decideTried(s Snapshot, o DecideOptions) Action {
	t := s.Tried
	switch {
	case t.WriteErr != nil:
		var foreign *foreignPlanError
		if errors.As(t.WriteErr, &foreign) || isPermanent(t.WriteErr) {
			return failed(PhasePlan, t.WriteErr.Error(), "the plan cannot be written, and retrying cannot help")
		}
		return Action{Kind: ActRetry, Why: "writing the plan failed", Err: t.WriteErr}
	case t.FetchErr == nil:
		return nothing("the fetch succeeded") // a plan would be present; not reached from sync
	case t.Aborted:
		return Action{Kind: ActRetry, Why: "stopping: the failure is ours, not the repo's", Err: t.FetchErr}
	case !s.Upgrade.Completed && !s.Repo.Ready():
		return nothing("planning early failed after the repo went not ready; its next Ready endpoint or the completion plans again")
	case !s.Repo.Ready():
		return recordState(StateWaitingForRepo, "repo went not ready during the fetch: "+t.FetchErr.Error(), "the fetch failed after the repo went not ready")
	case s.Epoch != t.Epoch:
		// A new Ready phase, with a fresh retry budget.
		return Action{Kind: ActRequeue, Why: "the fetch failed across a repo restart; fetching again"}
	case s.Attempt < o.MaxRetries:
		return Action{Kind: ActRetry, Why: "the fetch failed while the repo is Ready", Err: fmt.Errorf("fetch image lists while the repo is Ready: %w", t.FetchErr)}
	case !s.Upgrade.Completed:
		// Not Failed: the upgrade is not over, and its completion (or a
		// resync) plans again.
		return nothing(fmt.Sprintf("planning early failed %d times while the repo was Ready; the completion or a resync plans again", s.Attempt+1))
	}
	a := failed(PhaseFetch, fmt.Sprintf("fetching the image lists failed %d times while the repo was Ready; waiting for the repo to restart: %v", s.Attempt+1, t.FetchErr),
		"the fetch failed on every retry while the repo was Ready")
	a.PinFailure = true
	return a
}

// RepoTarget picks where to dial the repo of u: a Ready endpoint, the next
// one on each retry so that one dead endpoint among several Ready ones does
// not take every attempt; or the Service's DNS name. r must be Ready.
func RepoTarget(u Upgrade, r informers.Readiness, attempt int, addr RepoAddress) Target {
	svc := informers.RepoServicePrefix + u.Name + "." + u.Namespace
	if addr == RepoAddressService {
		return Target{BaseURL: "http://" + svc}
	}
	ep := r.Endpoints[attempt%len(r.Endpoints)]
	return Target{BaseURL: "http://" + net.JoinHostPort(ep.Address, strconv.Itoa(int(ep.Port))), Host: svc}
}

// Requeue is what the worker does with a key after a sync.
type Requeue string

// The worker's choices.
const (
	// RequeueNone: forget the key's failures; the next event brings it back.
	RequeueNone Requeue = "none"
	// RequeueStale: sync again shortly, keeping the retry count: a write
	// was refused because the cache was behind.
	RequeueStale Requeue = "stale"
	// RequeueRateLimited: retry after the rate limiter's delay.
	RequeueRateLimited Requeue = "rate-limited"
	// RequeueDrop: past the retry cap; forget the key until the next event
	// or resync brings it back.
	RequeueDrop Requeue = "drop"
	// RequeueStopping: the controller is stopping; a restart re-reads all.
	RequeueStopping Requeue = "stopping"
)

// DecideRequeue is the worker's retry policy over a sync's error; the one
// place the retry cap of errors other than a fetch's is applied.
func DecideRequeue(err error, stopping bool, attempt, maxRetries int) Requeue {
	switch {
	case err == nil:
		return RequeueNone
	case stopping:
		return RequeueStopping
	case errors.Is(err, errStale):
		return RequeueStale
	case attempt < maxRetries:
		return RequeueRateLimited
	}
	return RequeueDrop
}

// staleRetryDelay leaves the informer time to deliver the newer object that
// made a write conflict; its watch event usually brings the key back sooner.
const staleRetryDelay = time.Second
