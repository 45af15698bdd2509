package report

import (
	"strings"
	"testing"
)

func TestParseThreshold(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint64
		err  string
	}{
		{in: "0", want: 0},
		{in: "50Gi", want: 50 << 30},
		{in: "200G", want: 200e9},
		{in: "1.5Ki", want: 1536},
		{in: "100m", want: 1}, // a fraction of a byte counts as one
		{in: "8Pi", want: 1 << 53},
		{in: "8.1Pi", err: "at most 8Pi"},
		{in: "1e30", err: "at most 8Pi"},
		{in: "-1Gi", err: "negative"},
		{in: "50GB", err: "quantity"},
		{in: "", err: "quantity"},
	} {
		got, err := ParseThreshold(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseThreshold(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseThreshold(%q) = %d, %v; want an error saying %q", tt.in, got, err, tt.err)
		}
	}
}
