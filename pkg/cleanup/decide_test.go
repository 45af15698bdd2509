package cleanup

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// The state machine's specification. Every state the README documents,
// every failed phase, the repo Ready or not, and the plan absent, owned or
// foreign: one row each, naming the action. TestDecideTableIsComplete fails
// when a combination has no row.

const tableDigest = "sha256:0123"

var (
	errFetch   = errors.New(`fetch v1.4.2 list: Get "http://10.52.0.17:8080/...": connection refused`)
	errForeign = &foreignPlanError{namespace: "harvester-system", name: "u-image-cleanup", upgrade: Upgrade{Name: "u", UID: "uid-1"}}
	tableOpts  = DecideOptions{MaxRetries: 4, RepoAddress: RepoAddressEndpoint}
	readyRepo  = informers.Readiness{Endpoints: []informers.Endpoint{{Address: "10.52.0.17", Port: 8080}, {Address: "10.52.0.18", Port: 8080}}}
)

// snapshot is a completed, latest Upgrade in state s (phase p with Failed),
// its repo Ready or not, its plan as given, in Ready epoch 1.
func snapshot(s State, p Phase, ready bool, plan PlanPresence) Snapshot {
	ann := map[string]string{}
	if s != "" {
		ann[StateAnnotation] = string(s)
	}
	if p != "" {
		ann[FailedPhaseAnnotation] = string(p)
	}
	snap := Snapshot{
		Found: true,
		Upgrade: Upgrade{
			Namespace: "harvester-system", Name: "u", UID: "uid-1",
			PreviousVersion: "v1.4.2", Completed: true,
			Labels:      map[string]string{LatestUpgradeLabel: "true"},
			Annotations: ann,
		},
		Plan:  PlanSeen{Presence: plan},
		Epoch: 1,
	}
	switch plan {
	case PlanOwned:
		snap.Plan.Ref = PlanRef{Namespace: "harvester-system", ConfigMap: "u-image-cleanup", UID: "cm-1", Digest: tableDigest}
		snap.Plan.Message = "2 images of v1.4.2 planned for removal in ConfigMap u-image-cleanup"
		if s == StatePlanned || s == StateRemoving {
			ann[PlanDigestAnnotation] = tableDigest
		}
	case PlanForeign:
		snap.Plan.Foreign = errForeign
	}
	if ready {
		snap.Repo = readyRepo
	}
	return snap
}

// want is the expected action: its kind and, for a record, the state and
// phase it records.
type want struct {
	kind  ActionKind
	state State
	phase Phase
}

var (
	doNothing = want{kind: ActNothing}
	doFetch   = want{kind: ActFetch}
	doExecute = want{kind: ActExecute}
	doWait    = want{kind: ActRecord, state: StateWaitingForRepo}
	doPlanned = want{kind: ActRecord, state: StatePlanned}
)

func doFail(p Phase) want { return want{kind: ActRecord, state: StateFailed, phase: p} }

type decideRow struct {
	state State
	phase Phase
	ready bool
	plan  PlanPresence
	want  want
}

// decideTable: state, failed phase, repo Ready, plan → action.
var decideTable = []decideRow{
	// No state yet: the upgrade just completed.
	{"", "", true, PlanAbsent, doFetch},
	{"", "", false, PlanAbsent, doWait},
	{"", "", true, PlanOwned, doPlanned}, // written before a restart: it stands
	{"", "", false, PlanOwned, doPlanned},
	{"", "", true, PlanForeign, doFail(PhasePlan)},
	{"", "", false, PlanForeign, doFail(PhasePlan)},

	{StateWaitingForRepo, "", true, PlanAbsent, doFetch},
	{StateWaitingForRepo, "", false, PlanAbsent, doNothing}, // recorded once
	{StateWaitingForRepo, "", true, PlanOwned, doPlanned},
	{StateWaitingForRepo, "", false, PlanOwned, doPlanned},
	{StateWaitingForRepo, "", true, PlanForeign, doFail(PhasePlan)},
	{StateWaitingForRepo, "", false, PlanForeign, doFail(PhasePlan)},

	// Planned and Removing run the checked plan, whatever the repo does.
	{StatePlanned, "", true, PlanOwned, doExecute},
	{StatePlanned, "", false, PlanOwned, doExecute},
	{StatePlanned, "", true, PlanAbsent, doFail(PhaseRemoval)},
	{StatePlanned, "", false, PlanAbsent, doFail(PhaseRemoval)},
	{StatePlanned, "", true, PlanForeign, doFail(PhasePlan)},
	{StatePlanned, "", false, PlanForeign, doFail(PhasePlan)},
	{StateRemoving, "", true, PlanOwned, doExecute},
	{StateRemoving, "", false, PlanOwned, doExecute},
	{StateRemoving, "", true, PlanAbsent, doFail(PhaseRemoval)},
	{StateRemoving, "", false, PlanAbsent, doFail(PhaseRemoval)},
	{StateRemoving, "", true, PlanForeign, doFail(PhasePlan)},
	{StateRemoving, "", false, PlanForeign, doFail(PhasePlan)},

	// Succeeded is final.
	{StateSucceeded, "", true, PlanOwned, doNothing},
	{StateSucceeded, "", false, PlanOwned, doNothing},
	{StateSucceeded, "", true, PlanAbsent, doNothing},
	{StateSucceeded, "", false, PlanAbsent, doNothing},
	{StateSucceeded, "", true, PlanForeign, doNothing},
	{StateSucceeded, "", false, PlanForeign, doNothing},

	// A fetch failure is the repo's: a Ready phase after the one it failed
	// in re-arms it (TestDecideFetchFailureIsPinnedToItsReadyPhase); a plan
	// written meanwhile is taken up.
	{StateFailed, PhaseFetch, true, PlanAbsent, doNothing}, // failed in this Ready phase
	{StateFailed, PhaseFetch, false, PlanAbsent, doWait},   // re-armed, waiting
	{StateFailed, PhaseFetch, true, PlanOwned, doPlanned},
	{StateFailed, PhaseFetch, false, PlanOwned, doPlanned},
	{StateFailed, PhaseFetch, true, PlanForeign, doFail(PhasePlan)},
	{StateFailed, PhaseFetch, false, PlanForeign, doFail(PhasePlan)},

	// A plan or removal failure waits for a person.
	{StateFailed, PhasePlan, true, PlanAbsent, doNothing},
	{StateFailed, PhasePlan, false, PlanAbsent, doNothing},
	{StateFailed, PhasePlan, true, PlanOwned, doNothing},
	{StateFailed, PhasePlan, false, PlanOwned, doNothing},
	{StateFailed, PhasePlan, true, PlanForeign, doNothing},
	{StateFailed, PhasePlan, false, PlanForeign, doNothing},
	{StateFailed, PhaseRemoval, true, PlanAbsent, doNothing},
	{StateFailed, PhaseRemoval, false, PlanAbsent, doNothing},
	{StateFailed, PhaseRemoval, true, PlanOwned, doNothing},
	{StateFailed, PhaseRemoval, false, PlanOwned, doNothing},
	{StateFailed, PhaseRemoval, true, PlanForeign, doNothing},
	{StateFailed, PhaseRemoval, false, PlanForeign, doNothing},

	// Failed without a phase (written by an older version): with a plan it
	// failed after planning and waits for a person; without, as a fetch.
	{StateFailed, "", true, PlanAbsent, doNothing},
	{StateFailed, "", false, PlanAbsent, doWait},
	{StateFailed, "", true, PlanOwned, doNothing},
	{StateFailed, "", false, PlanOwned, doNothing},
	{StateFailed, "", true, PlanForeign, doFail(PhasePlan)},
	{StateFailed, "", false, PlanForeign, doFail(PhasePlan)},
}

func (r decideRow) String() string {
	return fmt.Sprintf("state=%q phase=%q ready=%v plan=%s", r.state, r.phase, r.ready, r.plan)
}

func checkAction(t *testing.T, got Action, w want) {
	t.Helper()
	if got.Kind != w.kind || got.Outcome.State != w.state || got.Outcome.Phase != w.phase {
		t.Errorf("Decide = %s (state %q, phase %q: %s), want %s (state %q, phase %q)",
			got.Kind, got.Outcome.State, got.Outcome.Phase, got.Why, w.kind, w.state, w.phase)
	}
	if got.Why == "" {
		t.Errorf("Decide(%s) gave no reason", got.Kind)
	}
}

func TestDecideTable(t *testing.T) {
	for _, r := range decideTable {
		t.Run(r.String(), func(t *testing.T) {
			checkAction(t, Decide(snapshot(r.state, r.phase, r.ready, r.plan), tableOpts), r.want)
		})
	}
}

// TestDecideTableIsComplete: every documented state (Failed with each
// phase, and without one) × readiness × plan presence has exactly one row.
func TestDecideTableIsComplete(t *testing.T) {
	type combo struct {
		state State
		phase Phase
		ready bool
		plan  PlanPresence
	}
	seen := map[combo]int{}
	for _, r := range decideTable {
		seen[combo{r.state, r.phase, r.ready, r.plan}]++
	}
	states := []struct {
		s State
		p Phase
	}{{"", ""}, {StateWaitingForRepo, ""}, {StatePlanned, ""}, {StateRemoving, ""}, {StateSucceeded, ""},
		{StateFailed, PhaseFetch}, {StateFailed, PhasePlan}, {StateFailed, PhaseRemoval}, {StateFailed, ""}}
	for _, st := range states {
		for _, ready := range []bool{true, false} {
			for _, plan := range []PlanPresence{PlanAbsent, PlanOwned, PlanForeign} {
				c := combo{st.s, st.p, ready, plan}
				if seen[c] != 1 {
					t.Errorf("decideTable has %d rows for %+v, want 1", seen[c], c)
				}
			}
		}
	}
}

// TestDecideBeforeAnyState: what keeps the controller from acting at all,
// with the repo Ready and no plan (the rows above would fetch).
func TestDecideBeforeAnyState(t *testing.T) {
	base := func() Snapshot { return snapshot("", "", true, PlanAbsent) }
	tests := []struct {
		name   string
		modify func(*Snapshot)
		want   want
	}{
		{"no such Upgrade", func(s *Snapshot) { *s = Snapshot{} }, doNothing},
		{"malformed Upgrade", func(s *Snapshot) { *s = Snapshot{Malformed: errors.New("status.conditions[0] is string")} }, doNothing},
		{"not Completed: planned early", func(s *Snapshot) { s.Upgrade.Completed = false }, doFetch},
		{"not labelled latest", func(s *Snapshot) { delete(s.Upgrade.Labels, LatestUpgradeLabel) }, doNothing},
		{"labelled latest=false", func(s *Snapshot) { s.Upgrade.Labels[LatestUpgradeLabel] = "false" }, doNothing},
		{"Harvester's cleanup ran", func(s *Snapshot) { s.Upgrade.Annotations[HarvesterDoneAnnotation] = "true" }, doNothing},

		{"previous version empty", func(s *Snapshot) { s.Upgrade.PreviousVersion = "" }, doFail(PhaseFetch)},
		{"previous version is a path", func(s *Snapshot) { s.Upgrade.PreviousVersion = "../../etc" }, doFail(PhaseFetch)},
		{"previous version invalid, not Ready", func(s *Snapshot) { s.Upgrade.PreviousVersion = "v1 2"; s.Repo = informers.Readiness{} }, doFail(PhaseFetch)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base()
			tt.modify(&s)
			checkAction(t, Decide(s, tableOpts), tt.want)
		})
	}
}

// TestDecideChecksThePlanItRuns: a plan may run only as planned.
func TestDecideChecksThePlanItRuns(t *testing.T) {
	invalid := errors.New("plan ConfigMap harvester-system/u-image-cleanup has no key keep.txt")
	tests := []struct {
		name   string
		state  State
		modify func(*Snapshot)
		want   want
		msg    string
	}{
		{"digest recorded on the Upgrade differs", StatePlanned, func(s *Snapshot) { s.Upgrade.Annotations[PlanDigestAnnotation] = "sha256:other" }, doFail(PhasePlan), `recorded "sha256:other"`},
		{"no digest recorded on the Upgrade", StateRemoving, func(s *Snapshot) { delete(s.Upgrade.Annotations, PlanDigestAnnotation) }, doFail(PhasePlan), `recorded ""`},
		{"plan content not what it records", StatePlanned, func(s *Snapshot) { s.Plan.Invalid = invalid }, doFail(PhasePlan), "no key keep.txt"},
		{"invalid plan found before Planned", "", func(s *Snapshot) { s.Plan.Invalid = invalid }, doFail(PhasePlan), "no key keep.txt"},
		{"plan gone says how to plan again", StatePlanned, func(s *Snapshot) { s.Plan = PlanSeen{Presence: PlanAbsent} }, doFail(PhaseRemoval), "remove the annotation " + StateAnnotation},
		{"foreign plan says whose", StateRemoving, func(s *Snapshot) { s.Plan = PlanSeen{Presence: PlanForeign, Foreign: errForeign} }, doFail(PhasePlan), "not owned by upgrade u"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := snapshot(tt.state, "", true, PlanOwned)
			tt.modify(&s)
			got := Decide(s, tableOpts)
			checkAction(t, got, tt.want)
			if !strings.Contains(got.Outcome.Message, tt.msg) {
				t.Errorf("message %q lacks %q", got.Outcome.Message, tt.msg)
			}
		})
	}

	s := snapshot(StatePlanned, "", false, PlanOwned)
	if got := Decide(s, tableOpts); got.Plan != s.Plan.Ref {
		t.Errorf("executes %+v, want the checked plan %+v", got.Plan, s.Plan.Ref)
	}
	s = snapshot("", "", false, PlanOwned)
	got := Decide(s, tableOpts)
	if got.Outcome.Annotations[PlanDigestAnnotation] != tableDigest || got.Outcome.Message != s.Plan.Message {
		t.Errorf("Planned records %v %q, want the plan's digest and message", got.Outcome.Annotations, got.Outcome.Message)
	}
}

// TestDecideFetchFailureIsPinnedToItsReadyPhase: a Failed fetch is re-armed
// by a later Ready phase only.
func TestDecideFetchFailureIsPinnedToItsReadyPhase(t *testing.T) {
	tests := []struct {
		name      string
		epoch     uint64
		failedIn  uint64
		known     bool
		want      want
		wantPin   bool
		wantWhyIn string
	}{
		{"failure this process did not see: pinned to this phase", 3, 0, false, doNothing, true, "this Ready phase"},
		{"failed in this phase", 3, 3, true, doNothing, false, "this Ready phase"},
		{"a later phase re-arms", 4, 3, true, doFetch, false, "Ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := snapshot(StateFailed, PhaseFetch, true, PlanAbsent)
			s.Epoch, s.FailedIn, s.FailedInKnown = tt.epoch, tt.failedIn, tt.known
			got := Decide(s, tableOpts)
			checkAction(t, got, tt.want)
			if got.PinFailure != tt.wantPin {
				t.Errorf("PinFailure = %v, want %v", got.PinFailure, tt.wantPin)
			}
		})
	}
	// Not Ready: re-armed, and the message says so.
	got := Decide(snapshot(StateFailed, PhaseFetch, false, PlanAbsent), tableOpts)
	if !strings.HasPrefix(got.Outcome.Message, "re-armed after failure") {
		t.Errorf("message %q, want it to say the cleanup is re-armed", got.Outcome.Message)
	}
}

// TestDecideOnWhatTheFetchDid: this sync's own fetch or plan write failed;
// Tried.Epoch is 1, the epoch it was made in.
func TestDecideOnWhatTheFetchDid(t *testing.T) {
	refused := apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "u-image-cleanup", errors.New("no"))
	tests := []struct {
		name    string
		ready   bool
		epoch   uint64
		attempt int
		tried   Tried
		want    want
		wantPin bool
	}{
		{"repo went not ready during the fetch: wait, no retry spent", false, 1, 2, Tried{Epoch: 1, FetchErr: errFetch}, doWait, false},
		{"repo restarted during the fetch: fetch again at once", true, 2, 2, Tried{Epoch: 1, FetchErr: errFetch}, want{kind: ActRequeue}, false},
		{"Ready, retries left", true, 1, 0, Tried{Epoch: 1, FetchErr: errFetch}, want{kind: ActRetry}, false},
		{"Ready, last retry left", true, 1, 3, Tried{Epoch: 1, FetchErr: errFetch}, want{kind: ActRetry}, false},
		{"Ready, retries spent: Failed, pinned to the phase", true, 1, 4, Tried{Epoch: 1, FetchErr: errFetch}, doFail(PhaseFetch), true},
		{"stopping: retry, the failure is ours", true, 1, 4, Tried{Epoch: 1, FetchErr: errFetch, Aborted: true}, want{kind: ActRetry}, false},
		{"plan write refused: Failed at once", true, 1, 0, Tried{Epoch: 1, WriteErr: permanentIfRefused(refused)}, doFail(PhasePlan), false},
		{"plan's place taken: Failed at once", true, 1, 0, Tried{Epoch: 1, WriteErr: errForeign}, doFail(PhasePlan), false},
		{"plan write failed otherwise: retry", true, 1, 0, Tried{Epoch: 1, WriteErr: errors.New("etcdserver: leader changed")}, want{kind: ActRetry}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := snapshot(StateWaitingForRepo, "", tt.ready, PlanAbsent)
			s.Epoch, s.Attempt, s.Tried = tt.epoch, tt.attempt, &tt.tried
			got := Decide(s, tableOpts)
			checkAction(t, got, tt.want)
			if got.PinFailure != tt.wantPin {
				t.Errorf("PinFailure = %v, want %v", got.PinFailure, tt.wantPin)
			}
			if got.Kind == ActRetry && got.Err == nil {
				t.Error("a retry without its error")
			}
		})
	}
	// The message names the count and the cause.
	s := snapshot(StateWaitingForRepo, "", true, PlanAbsent)
	s.Attempt, s.Tried = 4, &Tried{Epoch: 1, FetchErr: errFetch}
	if msg := Decide(s, tableOpts).Outcome.Message; !strings.Contains(msg, "failed 5 times") || !strings.Contains(msg, "connection refused") {
		t.Errorf("message %q, want the count and the cause", msg)
	}
	// A plan the fetch wrote is taken up, whatever the fetch said.
	s = snapshot(StateWaitingForRepo, "", true, PlanOwned)
	s.Tried = &Tried{Epoch: 1}
	checkAction(t, Decide(s, tableOpts), doPlanned)
	// Also when an older version's Failed (no phase) was re-armed and this
	// sync's fetch wrote the plan: the plan is not one that failed.
	s = snapshot(StateFailed, "", true, PlanOwned)
	s.Epoch, s.FailedIn, s.FailedInKnown, s.Tried = 2, 1, true, &Tried{Epoch: 2}
	checkAction(t, Decide(s, tableOpts), doPlanned)
}

// TestSettledUpgradesNeedNothingMore: for an Upgrade the cleanup will not
// act on, gather reads neither the plan nor the repo; Decide must not need
// them. The snapshots here carry no plan presence and no readiness at all.
func TestSettledUpgradesNeedNothingMore(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Upgrade)
	}{
		{"not Completed, planned early", func(u *Upgrade) { u.Completed = false; u.Annotations[StateAnnotation] = string(StatePlanned) }},
		{"Skipped", func(u *Upgrade) { u.Annotations[StateAnnotation] = string(StateSkipped) }},
		{"not latest", func(u *Upgrade) { u.Labels = nil }},
		{"Succeeded", func(u *Upgrade) { u.Annotations[StateAnnotation] = string(StateSucceeded) }},
		{"Harvester's cleanup ran", func(u *Upgrade) { u.Annotations[HarvesterDoneAnnotation] = "true" }},
		{"Failed in phase plan", func(u *Upgrade) {
			u.Annotations[StateAnnotation], u.Annotations[FailedPhaseAnnotation] = string(StateFailed), string(PhasePlan)
		}},
		{"Failed in phase removal", func(u *Upgrade) {
			u.Annotations[StateAnnotation], u.Annotations[FailedPhaseAnnotation] = string(StateFailed), string(PhaseRemoval)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := snapshot("", "", false, "")
			tt.modify(&s.Upgrade)
			if settled(s.Upgrade) == "" {
				t.Fatal("settled says the cleanup may act")
			}
			checkAction(t, Decide(s, tableOpts), doNothing)
		})
	}
	for _, st := range []State{"", StateWaitingForRepo, StatePlanned, StateRemoving} {
		if why := settled(snapshot(st, "", true, PlanAbsent).Upgrade); why != "" {
			t.Errorf("state %q: settled says %q; the plan and the repo decide", st, why)
		}
	}
	for _, p := range []Phase{"", PhaseFetch} {
		if why := settled(snapshot(StateFailed, p, true, PlanAbsent).Upgrade); why != "" {
			t.Errorf("Failed in phase %q: settled says %q; the repo re-arms it", p, why)
		}
	}
}

// TestDecideTarget: where a fetch dials.
func TestDecideTarget(t *testing.T) {
	tests := []struct {
		name    string
		addr    RepoAddress
		attempt int
		want    Target
	}{
		{"endpoint, first attempt", RepoAddressEndpoint, 0, Target{BaseURL: "http://10.52.0.17:8080", Host: "upgrade-repo-u.harvester-system"}},
		{"endpoint, next one on a retry", RepoAddressEndpoint, 1, Target{BaseURL: "http://10.52.0.18:8080", Host: "upgrade-repo-u.harvester-system"}},
		{"endpoint, round again", RepoAddressEndpoint, 2, Target{BaseURL: "http://10.52.0.17:8080", Host: "upgrade-repo-u.harvester-system"}},
		{"service", RepoAddressService, 1, Target{BaseURL: "http://upgrade-repo-u.harvester-system"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := snapshot("", "", true, PlanAbsent)
			s.Attempt = tt.attempt
			got := Decide(s, DecideOptions{MaxRetries: 4, RepoAddress: tt.addr})
			if got.Kind != ActFetch || got.Target != tt.want {
				t.Errorf("Decide = %s %+v, want fetch from %+v", got.Kind, got.Target, tt.want)
			}
		})
	}
	// IPv6 endpoints are bracketed.
	r := informers.Readiness{Endpoints: []informers.Endpoint{{Address: "fd00::17", Port: 80}}}
	if got := RepoTarget(Upgrade{Name: "u", Namespace: "ns"}, r, 0, RepoAddressEndpoint); got.BaseURL != "http://[fd00::17]:80" {
		t.Errorf("IPv6 target %q", got.BaseURL)
	}
}

// TestDecideRequeue: the worker's retry policy for errors other than a
// fetch's.
func TestDecideRequeue(t *testing.T) {
	other := errors.New("patch: the server is currently unable to handle the request")
	tests := []struct {
		name     string
		err      error
		stopping bool
		attempt  int
		want     Requeue
	}{
		{"success", nil, false, 3, RequeueNone},
		{"success while stopping", nil, true, 0, RequeueNone},
		{"stopping", other, true, 0, RequeueStopping},
		{"stale cache, retries spent", fmt.Errorf("record: %w", errStale), false, 9, RequeueStale},
		{"error, first", other, false, 0, RequeueRateLimited},
		{"error, last retry", other, false, 3, RequeueRateLimited},
		{"error, retries spent", other, false, 4, RequeueDrop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DecideRequeue(tt.err, tt.stopping, tt.attempt, 4); got != tt.want {
				t.Errorf("DecideRequeue = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestDecideWhenAnotherControllerCompletedThePlan: Harvester's
// image-cleanup-plan-completed, set by another controller, ends a cleanup
// still under way with Succeeded saying by whom; it leaves alone a cleanup
// that never started or already ended.
func TestDecideWhenAnotherControllerCompletedThePlan(t *testing.T) {
	tests := []struct {
		state State
		phase Phase
		want  want
	}{
		{"", "", doNothing},
		{StateWaitingForRepo, "", want{kind: ActRecord, state: StateSucceeded}},
		{StatePlanned, "", want{kind: ActRecord, state: StateSucceeded}},
		{StateRemoving, "", want{kind: ActRecord, state: StateSucceeded}},
		{StateSucceeded, "", doNothing},
		{StateFailed, PhaseFetch, doNothing},
		{StateFailed, PhasePlan, doNothing},
		{StateFailed, PhaseRemoval, doNothing},
		{StateFailed, "", doNothing},
	}
	for _, tt := range tests {
		for _, ready := range []bool{true, false} {
			for _, plan := range []PlanPresence{PlanAbsent, PlanOwned, PlanForeign} {
				t.Run(fmt.Sprintf("state=%q phase=%q ready=%v plan=%s", tt.state, tt.phase, ready, plan), func(t *testing.T) {
					s := snapshot(tt.state, tt.phase, ready, plan)
					s.Upgrade.Annotations[HarvesterDoneAnnotation] = "true"
					got := Decide(s, tableOpts)
					checkAction(t, got, tt.want)
					if tt.want.state == StateSucceeded && (!strings.Contains(got.Outcome.Message, "by another controller") ||
						!strings.Contains(got.Outcome.Message, "stopped in state "+string(tt.state))) {
						t.Errorf("message %q does not say who completed the plan and where this cleanup stopped", got.Outcome.Message)
					}
				})
			}
		}
	}
}
