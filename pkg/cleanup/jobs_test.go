package cleanup

import (
	"slices"
	"strings"
	"testing"
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
