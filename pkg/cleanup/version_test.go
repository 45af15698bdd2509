package cleanup_test

import (
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

func TestValidateVersion(t *testing.T) {
	tests := []struct {
		version string
		wantErr bool
	}{
		{version: "v1.4.1"},
		{version: "v1.5.0-rc3"},
		{version: "current"},
		{version: "master-abc123"},
		{version: "1.2.3+build"},
		{version: "v1_4"},
		{version: strings.Repeat("a", 128)},
		{version: "", wantErr: true},
		{version: ".", wantErr: true},
		{version: "..", wantErr: true},
		{version: "v1..2", wantErr: true},
		{version: "v1/../x", wantErr: true},
		{version: "a/b", wantErr: true},
		{version: `a\b`, wantErr: true},
		{version: "v 1", wantErr: true},
		{version: "v1\n", wantErr: true},
		{version: "%2e%2e", wantErr: true},
		{version: "v1?x", wantErr: true},
		{version: "v1#x", wantErr: true},
		{version: ".hidden", wantErr: true},
		{version: "-v1", wantErr: true},
		{version: "v１", wantErr: true}, // fullwidth digit
		{version: strings.Repeat("a", 129), wantErr: true},
		{version: strings.Repeat("a", 200), wantErr: true},
	}
	for _, tt := range tests {
		name := tt.version
		if len(name) > 20 {
			name = name[:20] + "..."
		}
		t.Run(name, func(t *testing.T) {
			err := cleanup.ValidateVersion("status.previousVersion", tt.version)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ValidateVersion(%q) = %v, want error %v", tt.version, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "status.previousVersion") {
				t.Errorf("error %q does not name the field", err)
			}
		})
	}
}
