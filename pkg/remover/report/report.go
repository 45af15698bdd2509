// Package report is what a remover run reports to the controller: the
// Result it writes as its container's termination message, the reasons it
// keeps planned images, its exit codes, and how the controller reads a
// result back from a Job's pod; and the one plan key both sides name
// (PlanNameKey). It imports no CRI and no gRPC, so the
// controller (and a host embedding it) links neither.
package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
)

// Reason says why a planned image was not removed.
type Reason string

// Reasons a planned image is kept on a node.
const (
	// ReasonInUse: a container, running or not, uses the image.
	ReasonInUse Reason = "in-use"
	// ReasonPinned: the runtime pins the image (the sandbox image, or one
	// labelled io.cri-containerd.pinned).
	ReasonPinned Reason = "pinned"
	// ReasonStillNeeded: the image also carries a tag the plan does not name.
	// CRI's RemoveImage removes every tag of an image, so removing it would
	// remove that tag too.
	ReasonStillNeeded Reason = "still-needed"
	// ReasonNotPresent: the node does not have the image.
	ReasonNotPresent Reason = "not-present"
	// ReasonInCurrentList: a reference of the current version's image list
	// (the keep list) could name the image, under the same matching rules
	// as the plan. The planner leaves such images out of the plan; this
	// keeps them even when a plan does not.
	ReasonInCurrentList Reason = "in-current-list"
	// ReasonUnknown is not given by the remover: ResultFromTermination
	// counts under it the reasons of a termination message that the remover
	// does not give.
	ReasonUnknown Reason = "unknown"
)

// Result is one node's outcome in numbers: what the remover writes to its
// container's termination message, and what the controller reads back from
// the Job's pod.
type Result struct {
	Removed        int            `json:"removed"`
	Skipped        map[Reason]int `json:"skipped,omitempty"`
	Failed         int            `json:"failed"`
	BytesReclaimed uint64         `json:"bytesReclaimed"`
	// DanglingRemoved counts untagged images removed by --prune-dangling.
	DanglingRemoved int `json:"danglingRemoved,omitempty"`
	// FailedImages names images whose removal failed, with the runtime's
	// error; it may be cut short to fit the termination message.
	FailedImages []string `json:"failedImages,omitempty"`
	// ImageFs is the node's image filesystem usage as the runtime's CRI
	// ImageFsInfo reported it before and after the removals: the space
	// measured, beside BytesReclaimed, the sum of the removed images' sizes.
	// Nil when the runtime did not answer ImageFsInfo.
	ImageFs *ImageFs `json:"imageFs,omitempty"`
	// BelowThreshold is set when the remover ran with an image filesystem
	// threshold (disk-pressure mode) and the node's usage before removing
	// (ImageFs.UsedBefore) was below it: nothing was removed on purpose.
	BelowThreshold bool `json:"belowThreshold,omitempty"`
	// Threshold is the threshold in bytes the run was given; 0 when none.
	Threshold uint64 `json:"threshold,omitempty"`
	// PlanDigest is the digest (imagelist.Digest) of the plan file the
	// remover acted on, so that the controller can refuse a result about
	// another plan than the one its Job was given; empty when the remover
	// stopped before reading a plan. A checked result holds it escaped and
	// cut (maxDigestText).
	PlanDigest string `json:"planDigest,omitempty"`
	// Error says why the remover did not run (bad flags, an unreadable or
	// changed plan, an unreachable runtime); empty when it ran, whatever
	// its removals did. It is escaped (imagelist.Printable) and cut short.
	Error string `json:"error,omitempty"`
}

// ImageFs is the used bytes of the node's image filesystems (the sum over
// the filesystems ImageFsInfo lists) around a removal.
type ImageFs struct {
	UsedBefore uint64 `json:"usedBefore"`
	UsedAfter  uint64 `json:"usedAfter"`
	// Stale is set when the runtime's figure did not refresh after the
	// removals within the remover's bound (containerd recomputes it
	// periodically): UsedAfter is then the last figure it gave.
	Stale bool `json:"stale,omitempty"`
}

// Freed is the space the image filesystems lost between the two
// measurements; 0 when they grew (an image pulled meanwhile).
func (f ImageFs) Freed() uint64 {
	if f.UsedAfter >= f.UsedBefore {
		return 0
	}
	return f.UsedBefore - f.UsedAfter
}

// maxResultError bounds Result.Error: enough for a path, a digest pair or
// a runtime's error, and well within the termination message.
const maxResultError = 1024

// ExitRefused is image-remover's exit code when it refuses its input (bad
// flags; a plan or keep list it cannot read or parse; a plan whose digest
// is not the one the controller recorded; a plan folder that is not the
// named ConfigMap mounted read-only). The controller's Jobs fail at once
// on it: another pod would refuse the same input.
const ExitRefused = 2

// PlanNameKey is the plan ConfigMap's key holding the ConfigMap's own name.
// A pod cannot see which ConfigMap a volume comes from, so the controller
// writes the name into the data, and a remover run with --plan-configmap
// refuses a plan folder whose PlanNameKey names another.
const PlanNameKey = "configmap-name"

// MaxTerminationMessage is the kubelet's limit for one container's
// termination message; longer messages are cut, which would break the JSON.
const MaxTerminationMessage = 4096

// TerminationMessage encodes r in at most MaxTerminationMessage bytes. Error
// is escaped and cut to maxResultError bytes; then FailedImages entries are
// dropped from the end, and last Error is cut shorter, until it fits.
func (r Result) TerminationMessage() ([]byte, error) {
	r.Error = imagelist.Truncate(imagelist.Printable(r.Error), maxResultError)
	if b, err := r.encode(); err != nil || len(b) <= MaxTerminationMessage {
		return b, err
	}
	// The most failed images that fit, found by bisection: a run whose every
	// removal failed names thousands, and dropping one per encoding took
	// seconds of the node's CPU.
	all := r.FailedImages
	r.FailedImages = all[:sort.Search(len(all), func(k int) bool {
		r.FailedImages = all[:k+1]
		b, err := r.encode()
		return err != nil || len(b) > MaxTerminationMessage
	})]
	for {
		b, err := r.encode()
		switch {
		case err != nil:
			return nil, err
		case len(b) <= MaxTerminationMessage:
			return b, nil
		case len(r.Error) > 16:
			r.Error = imagelist.Truncate(r.Error, len(r.Error)/2)
		default:
			return nil, fmt.Errorf("result is %d bytes without failed images, over the %d-byte termination message limit", len(b), MaxTerminationMessage)
		}
	}
}

// encode is r as JSON, without the encoder's newline.
func (r Result) encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Not HTML-escaped: '<' would take six bytes, and nothing here goes
	// into HTML.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParseResult reads a termination message written by TerminationMessage.
func ParseResult(b []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("parse remover result: %w", err)
	}
	return r, nil
}

// noMessage is ResultFromTermination's Error for an empty message.
const noMessage = "the remover left no termination message"

// ResultFromTermination reads a remover's termination message, whatever
// wrote it. A result (a JSON object with the result's "removed" or "error"
// field, as TerminationMessage writes) is returned checked, because a pod's
// status is not the remover's to vouch for: counts and byte figures
// (bytesReclaimed, threshold, imageFs's usedBefore and usedAfter) below zero
// count as zero and all are capped (maxCount, maxBytes), so that no node's
// figure can overflow a total on its own (the controller's byte totals
// saturate), skip reasons the remover does not give are added up under ReasonUnknown
// (so a summary of many nodes stays bounded), and Error and FailedImages are
// escaped and cut as TerminationMessage cuts them. Anything else
// (the plain text of an older remover, a Go panic, a message the kubelet
// cut short) becomes a Result whose Error is the text, escaped and cut to
// about 1 KiB, so the remover's own words still reach the user; an empty
// message becomes one whose Error says so. A result whose Error is set
// keeps its Error alone: the remover writes no figure beside one. It never
// fails: a caller tells a run that did not happen by Error != "".
func ResultFromTermination(msg string) Result {
	r, _ := ParseTermination(msg)
	return r
}

// ParseTermination is ResultFromTermination, and reports whether msg was
// a result as the remover writes one (JSON), rather than text in another
// form (an older remover's, a panic, a message cut short, none), which the
// result's Error then holds.
func ParseTermination(msg string) (r Result, isResult bool) {
	text := strings.TrimSpace(msg)
	if text == "" {
		return Result{Error: noMessage}, false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal([]byte(text), &fields) == nil && (fields["removed"] != nil || fields["error"] != nil) {
		// Byte figures are read as numbers of any sign, so that a value
		// below zero is checked like the counts instead of failing the parse.
		var w struct {
			Result
			BytesReclaimed float64 `json:"bytesReclaimed"`
			Threshold      float64 `json:"threshold"`
			ImageFs        *struct {
				UsedBefore float64 `json:"usedBefore"`
				UsedAfter  float64 `json:"usedAfter"`
				Stale      bool    `json:"stale"`
			} `json:"imageFs"`
		}
		if err := json.Unmarshal([]byte(text), &w); err == nil {
			r := w.Result
			r.BytesReclaimed, r.Threshold = toBytes(w.BytesReclaimed), toBytes(w.Threshold)
			if fs := w.ImageFs; fs != nil {
				r.ImageFs = &ImageFs{UsedBefore: toBytes(fs.UsedBefore), UsedAfter: toBytes(fs.UsedAfter), Stale: fs.Stale}
			}
			return r.checked(), true
		}
	}
	return Result{Error: imagelist.Truncate(imagelist.Printable(text), maxResultError)}, false
}

// Bounds of a checked result: far beyond any node (two billion images, 8
// PiB). Counts of a million nodes add up without overflow; totals of byte
// figures could wrap at two thousand nodes at the cap, so the controller
// adds them saturating.
const (
	maxCount = 1 << 31
	maxBytes = 1 << 53
	// maxDigestText bounds PlanDigest: a digest is 71 bytes; anything
	// longer is not one, and is kept only far enough to show it.
	maxDigestText = 80
)

// toBytes is a byte figure read as a JSON number, between 0 and maxBytes.
func toBytes(f float64) uint64 { return uint64(min(max(f, 0), maxBytes)) }

// checked is r with what ResultFromTermination promises of a parsed result.
func (r Result) checked() Result {
	count := func(n int) int { return min(max(n, 0), maxCount) }
	r.Removed, r.Failed, r.DanglingRemoved = count(r.Removed), count(r.Failed), count(r.DanglingRemoved)
	r.BytesReclaimed, r.Threshold = min(r.BytesReclaimed, maxBytes), min(r.Threshold, maxBytes)
	if r.ImageFs != nil {
		fs := *r.ImageFs
		fs.UsedBefore, fs.UsedAfter = min(fs.UsedBefore, maxBytes), min(fs.UsedAfter, maxBytes)
		r.ImageFs = &fs
	}
	if len(r.Skipped) > 0 {
		skipped := make(map[Reason]int, len(r.Skipped))
		for reason, n := range r.Skipped {
			if !reason.known() {
				reason = ReasonUnknown
			}
			skipped[reason] = count(skipped[reason] + count(n))
		}
		r.Skipped = skipped
	}
	r.Error = imagelist.Truncate(imagelist.Printable(r.Error), maxResultError)
	if r.Error != "" {
		// The remover did not run: it writes its error alone, so figures
		// beside one are not its own, and none is taken.
		return Result{Error: r.Error}
	}
	r.PlanDigest = imagelist.Truncate(imagelist.Printable(r.PlanDigest), maxDigestText)
	failed := make([]string, 0, len(r.FailedImages))
	for _, f := range r.FailedImages {
		failed = append(failed, imagelist.Truncate(imagelist.Printable(f), maxResultError))
	}
	if len(failed) > 0 {
		r.FailedImages = failed
	}
	return r
}

// known reports whether the remover gives r.
func (r Reason) known() bool {
	switch r {
	case ReasonInUse, ReasonPinned, ReasonStillNeeded, ReasonNotPresent, ReasonInCurrentList:
		return true
	}
	return false
}
