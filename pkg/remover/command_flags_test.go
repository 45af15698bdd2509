package remover

import (
	"testing"
)

func TestLastFlagValue(t *testing.T) {
	const def = "/dev/termination-log"
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, def},
		{[]string{"--termination-log=/a"}, "/a"},
		{[]string{"-termination-log", "/a"}, "/a"},
		{[]string{"--termination-log=/a", "--force", "--termination-log", "/b"}, "/b"},
		{[]string{"--termination-log="}, ""},
		{[]string{"--termination-log"}, def}, // no value: the flag package refuses it
		{[]string{"--", "--termination-log=/a"}, def},
		{[]string{"termination-log=/a", "---termination-log=/b"}, def},
	} {
		if got := lastFlagValue(tt.args, "termination-log", def); got != tt.want {
			t.Errorf("lastFlagValue(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}
