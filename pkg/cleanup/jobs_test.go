package cleanup

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"
)

// TestRemovalJobRunsTheRemoverCommand: the Job's container runs
// RemoverCommand, the standalone binary unless a host names its own
// subcommand, and passes the remover's flags after it, the same whichever
// command starts it.
func TestRemovalJobRunsTheRemoverCommand(t *testing.T) {
	u := Upgrade{Namespace: "harvester-system", Name: "hvst-upgrade-abc12"}
	plan := PlanRef{Namespace: u.Namespace, ConfigMap: "hvst-upgrade-abc12-image-cleanup", UID: "uid-1", Digest: "sha256:" + strings.Repeat("a", 64)}
	wantArgs := []string{
		"--plan=/etc/image-cleanup/images.txt",
		"--keep=/etc/image-cleanup/keep.txt",
		"--plan-digest=sha256:" + strings.Repeat("a", 64),
		"--plan-configmap=hvst-upgrade-abc12-image-cleanup",
		"--runtime-endpoint=unix:///run/cri/cri.sock",
		"--match-other-registries=true",
		"--prune-dangling=false",
	}
	tests := []struct {
		name        string
		image       string
		command     []string // nil: DefaultRemovalOptions'
		wantCommand []string
	}{
		{"standalone image by default", "registry.example/upgrade-image-cleanup:v1", nil, []string{"/usr/local/bin/image-remover"}},
		{"host subcommand on the PATH", "rancher/harvester:v1.5.0", []string{"harvester", "image-remover"}, []string{"harvester", "image-remover"}},
		{"host binary by path", "rancher/harvester:v1.5.0", []string{"/usr/bin/harvester", "image-remover"}, []string{"/usr/bin/harvester", "image-remover"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultRemovalOptions()
			o.RemoverImage = tt.image
			if tt.command != nil {
				o.RemoverCommand = tt.command
			}
			if err := o.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			c := RemovalJob(u, plan, "harvester-node-0", o).Spec.Template.Spec.Containers[0]
			if c.Image != tt.image {
				t.Errorf("image = %q, want %q", c.Image, tt.image)
			}
			if !slices.Equal(c.Command, tt.wantCommand) {
				t.Errorf("command = %q, want %q", c.Command, tt.wantCommand)
			}
			if !slices.Equal(c.Args, wantArgs) {
				t.Errorf("args = %q, want the remover's flags %q", c.Args, wantArgs)
			}
			// The Job owns its command: changing the options later does
			// not change a Job already built.
			o.RemoverCommand[0] = "changed"
			if c.Command[0] == "changed" {
				t.Errorf("the Job's command shares the options' array")
			}
		})
	}
}

// TestValidateRemoverCommand: a command the kubelet could not start is
// refused before any Job is made, naming the flag that sets it.
func TestValidateRemoverCommand(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		wantErr string // "" for none
	}{
		{"default", []string{RemoverPath}, ""},
		{"host subcommand", []string{"harvester", "image-remover"}, ""},
		{"nil", nil, "--remover-command is empty"},
		{"no words", []string{}, "--remover-command is empty"},
		{"empty word", []string{""}, "empty word"},
		{"empty word after the program", []string{"harvester", ""}, "empty word"},
		{"blank word", []string{"harvester", " "}, "empty word"},
		{"padded word", []string{" harvester", "image-remover"}, "surrounding whitespace"},
		{"trailing newline", []string{"harvester", "image-remover\n"}, "surrounding whitespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultRemovalOptions()
			o.RemoverImage = "rancher/harvester:v1.5.0"
			o.RemoverCommand = tt.command
			err := o.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "--remover-command")):
				t.Errorf("Validate() = %v, want an error naming --remover-command and saying %q", err, tt.wantErr)
			}
		})
	}
}

// TestRemovalJobTolerations: the Job tolerates the built-in taints first,
// whatever the options add, then the options' own in their order; without
// any, the built-in ones alone.
func TestRemovalJobTolerations(t *testing.T) {
	u := Upgrade{Namespace: "harvester-system", Name: "hvst-upgrade-abc12"}
	plan := PlanRef{Namespace: u.Namespace, ConfigMap: "hvst-upgrade-abc12-image-cleanup", UID: "uid-1", Digest: "sha256:" + strings.Repeat("a", 64)}
	extra := []corev1.Toleration{
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "storage", Effect: corev1.TaintEffectNoSchedule},
		{Key: "example.com/maintenance", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](600)},
		// The same as a built-in one: kept, the API server allows it.
		{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
	}
	tests := []struct {
		name  string
		extra []corev1.Toleration
		want  []corev1.Toleration
	}{
		{"none", nil, removalTolerations()},
		{"empty", []corev1.Toleration{}, removalTolerations()},
		{"extra after the built-in ones", extra, append(removalTolerations(), extra...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultRemovalOptions()
			o.RemoverImage = "registry.example/upgrade-image-cleanup:v1"
			o.Tolerations = tt.extra
			if err := o.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			got := RemovalJob(u, plan, "harvester-node-0", o).Spec.Template.Spec.Tolerations
			if !apiequality.Semantic.DeepEqual(got, tt.want) {
				t.Errorf("tolerations =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	// The Job owns its tolerations: changing the options later does not
	// change a Job already built.
	o := DefaultRemovalOptions()
	o.Tolerations = []corev1.Toleration{{Key: "a", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](1)}}
	got := RemovalJob(u, plan, "harvester-node-0", o).Spec.Template.Spec.Tolerations
	o.Tolerations[0].Key = "changed"
	*o.Tolerations[0].TolerationSeconds = 2
	if last := got[len(got)-1]; last.Key != "a" || *last.TolerationSeconds != 1 {
		t.Errorf("the Job's tolerations share the options' values: %+v", last)
	}
}

// TestValidateTolerations: a toleration the API server would refuse in a
// pod is refused before any Job is made, naming its index and field as
// the flag's value spells them.
func TestValidateTolerations(t *testing.T) {
	ok := corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "storage", Effect: corev1.TaintEffectNoSchedule}
	tests := []struct {
		name    string
		tol     corev1.Toleration
		wantErr string // "" for none; else the error's start, after the one good toleration before it
	}{
		{"equal", ok, ""},
		{"operator defaults to Equal", corev1.Toleration{Key: "dedicated", Value: "storage"}, ""},
		{"equal to the empty value", corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual}, ""},
		{"exists", corev1.Toleration{Key: "example.com/gpu", Operator: corev1.TolerationOpExists}, ""},
		{"exists, any key, one effect", corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}, ""},
		{"prefer no schedule", corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectPreferNoSchedule}, ""},
		{"seconds with NoExecute", corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)}, ""},

		{"empty key with Equal", corev1.Toleration{Value: "v"}, `--removal-tolerations[1].key: empty, which only operator Exists allows`},
		{"empty key with explicit Equal", corev1.Toleration{Operator: corev1.TolerationOpEqual}, `--removal-tolerations[1].key: empty`},
		{"key not a qualified name", corev1.Toleration{Key: "bad key", Operator: corev1.TolerationOpExists}, `--removal-tolerations[1].key: "bad key" is not a qualified name`},
		{"key with two slashes", corev1.Toleration{Key: "a/b/c", Operator: corev1.TolerationOpExists}, `--removal-tolerations[1].key: "a/b/c" is not a qualified name`},
		{"operator misspelt", corev1.Toleration{Key: "k", Operator: "exists"}, `--removal-tolerations[1].operator: "exists" is not one of "", Exists, Equal`},
		{"operator Lt", corev1.Toleration{Key: "k", Operator: "Lt", Value: "5"}, `--removal-tolerations[1].operator: "Lt" is not one of`},
		{"exists with a value", corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Value: "v"}, `--removal-tolerations[1].value: "v" must be empty with operator Exists`},
		{"value not a label value", corev1.Toleration{Key: "k", Value: "a b"}, `--removal-tolerations[1].value: "a b" is not a label value`},
		{"effect misspelt", corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: "NoSchedul"}, `--removal-tolerations[1].effect: "NoSchedul" is not one of "", NoSchedule, PreferNoSchedule, NoExecute`},
		{"seconds without an effect", corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, TolerationSeconds: ptr.To[int64](300)}, `--removal-tolerations[1].tolerationSeconds: 300 needs effect NoExecute, not ""`},
		{"seconds with NoSchedule", corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: ptr.To[int64](0)}, `--removal-tolerations[1].tolerationSeconds: 0 needs effect NoExecute, not "NoSchedule"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTolerations([]corev1.Toleration{ok, tt.tol})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ValidateTolerations() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Errorf("ValidateTolerations() = %v, want an error starting %q", err, tt.wantErr)
			}
			// RemovalOptions.Validate checks them too, for hosts that set
			// the options without the flag.
			o := DefaultRemovalOptions()
			o.RemoverImage = "registry.example/upgrade-image-cleanup:v1"
			o.Tolerations = []corev1.Toleration{ok, tt.tol}
			if verr := o.Validate(); (verr == nil) != (err == nil) {
				t.Errorf("Validate() = %v, ValidateTolerations() = %v", verr, err)
			}
		})
	}
}
