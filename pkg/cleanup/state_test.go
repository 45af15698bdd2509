package cleanup

import "testing"

// TestAnnotationPatch: what record writes for an Outcome, and when it
// writes nothing.
func TestAnnotationPatch(t *testing.T) {
	base := func(extra map[string]string) Upgrade {
		a := map[string]string{StateAnnotation: string(StateRemoving), MessageAnnotation: "m"}
		for k, v := range extra {
			a[k] = v
		}
		return Upgrade{Annotations: a}
	}
	tests := []struct {
		name        string
		u           Upgrade
		o           Outcome
		wantChanged bool
		want        map[string]any // keys checked; nil value: removed
	}{
		{"same state and message: nothing", base(nil), Outcome{State: StateRemoving, Message: "m"}, false, nil},
		{"only an annotation differs: written", base(nil), Outcome{State: StateRemoving, Message: "m", Annotations: map[string]string{RunAnnotation: "a"}}, true,
			map[string]any{RunAnnotation: "a"}},
		{"the same annotation again: nothing", base(map[string]string{RunAnnotation: "a"}), Outcome{State: StateRemoving, Message: "m", Annotations: map[string]string{RunAnnotation: "a"}}, false, nil},
		{"Failed without a phase becomes removal", base(nil), Outcome{State: StateFailed, Message: "x"}, true,
			map[string]any{FailedPhaseAnnotation: string(PhaseRemoval)}},
		{"a refusal keeps no phase as none", base(map[string]string{StateAnnotation: string(StateFailed)}), Outcome{State: StateFailed, Message: "x", keepPhase: true}, true,
			map[string]any{FailedPhaseAnnotation: nil}},
		{"the re-run mark stays while Removing", base(map[string]string{RerunningAnnotation: "true"}), Outcome{State: StateRemoving, Message: "m2"}, true,
			map[string]any{StateAnnotation: string(StateRemoving)}},
		{"the re-run mark goes with a final state", base(map[string]string{RerunningAnnotation: "true"}), Outcome{State: StateSucceeded, Message: "done"}, true,
			map[string]any{RerunningAnnotation: nil}},
		{"the mark goes with a fresh Planned not from a re-run", Upgrade{Annotations: map[string]string{RerunningAnnotation: "true"}}, Outcome{State: StatePlanned, Message: "p"}, true,
			map[string]any{RerunningAnnotation: nil}},
		{"a re-run's Planned sets it", Upgrade{Annotations: map[string]string{StateAnnotation: string(StateSucceeded)}}, Outcome{State: StatePlanned, Message: "p", Annotations: map[string]string{RerunningAnnotation: "true"}}, true,
			map[string]any{RerunningAnnotation: "true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := annotationPatch(tt.u, tt.o)
			if changed != tt.wantChanged {
				t.Fatalf("changed = %v, want %v (%v)", changed, tt.wantChanged, got)
			}
			for k, v := range tt.want {
				g, ok := got[k]
				if !ok || g != v {
					t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
				}
			}
		})
	}
}
