package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
)

// README, "Flags": "A bad flag value stops the binary at once with one line
// naming the flag (exit code 2)"; the brief's rule: bad input (flags) gets a
// clear error naming what and where and changes nothing.
//
// Minimal input: --image-fs-threshold 9.1P (9.1e15 bytes, over 8Pi).
//
// Expected: parseFlags refuses it, naming --image-fs-threshold, since every
// remover refuses it ("Negative, unparsable or over 8Pi: flag error (exit
// 2)", README, the remover's flags).
// Actual: the controller starts; each Job passes
// --image-fs-threshold=9100000000000000 to its remover, which exits 2 on
// every node (podFailurePolicy fails each Job at once), and the cleanup ends
// Failed in phase removal, having removed nothing, at completion rather
// than at start.
// Cause: the controller's parseBytes checks only "whole, not negative";
// RemovalOptions.Validate has no bound; the remover's parseThreshold caps
// at 8Pi.
func TestAdversaryImageFsThresholdTheRemoverRefusesIsAccepted(t *testing.T) {
	const value = "9.1P"
	f, err := parseFlags([]string{"--remover-image", "r:1", "--image-fs-threshold", value}, &bytes.Buffer{})
	if err != nil {
		t.Logf("refused: %v", err)
		return // refused at start, as promised
	}
	// What the Job would pass, and what the remover does with it.
	arg := fmt.Sprintf("--image-fs-threshold=%d", f.Removal.ImageFsThreshold)
	var stderr bytes.Buffer
	code := remover.Main(context.Background(), []string{"--plan=/nonexistent/images.txt", arg,
		"--termination-log=" + filepath.Join(t.TempDir(), "termination-log")}, &bytes.Buffer{}, &stderr)
	if code == 2 && strings.Contains(stderr.String(), "image-fs-threshold") {
		t.Errorf("the controller accepts --image-fs-threshold %s (%d bytes) but its remover refuses the Job's %s: exit %d, %q",
			value, f.Removal.ImageFsThreshold, arg, code, strings.TrimSpace(stderr.String()))
	}
}

// README, "Disk-pressure mode": "the threshold is an amount (a Kubernetes
// quantity)"; "Flags": --image-fs-threshold takes a quantity such as 50Gi;
// the brief's rule: bad input gets a clear error, which implies good input
// gets none.
//
// Minimal input: --image-fs-threshold 1.5Ti (1649267441664 bytes, a whole
// number; the remover's own flag accepts it: parseThreshold's doc names
// "1.5Ti"), or 100Ti, or 8Pi (the remover's documented maximum).
//
// Expected: accepted, as that many bytes.
// Actual: exit 2 with "must be a whole number of bytes, not negative",
// which is false of every one of them.
// Cause: parseBytes uses resource.Quantity.AsInt64, which fails for a
// quantity not held as a scaled int64 (a fraction with a binary suffix, or
// a large binary-suffixed value) even when its Value() is whole.
func TestAdversaryImageFsThresholdWholeQuantitiesRefused(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint64
	}{
		{"1.5Ti", 1649267441664},
		{"100Ti", 100 << 40},
		{"8Pi", 8 << 50},
	} {
		f, err := parseFlags([]string{"--remover-image", "r:1", "--image-fs-threshold", tt.in}, &bytes.Buffer{})
		if err != nil || f.Removal.ImageFsThreshold != tt.want {
			t.Errorf("--image-fs-threshold %s: %d, %v; want %d bytes", tt.in, f.Removal.ImageFsThreshold, err, tt.want)
		}
	}
}
