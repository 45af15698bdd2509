package remover

import (
	"encoding/json"
	"fmt"
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
}

// MaxTerminationMessage is the kubelet's limit for one container's
// termination message; longer messages are cut, which would break the JSON.
const MaxTerminationMessage = 4096

// TerminationMessage encodes r in at most MaxTerminationMessage bytes,
// dropping FailedImages entries from the end until it fits.
func (r Result) TerminationMessage() ([]byte, error) {
	for {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encode result: %w", err)
		}
		if len(b) <= MaxTerminationMessage {
			return b, nil
		}
		if len(r.FailedImages) == 0 {
			return nil, fmt.Errorf("result is %d bytes without failed images, over the %d-byte termination message limit", len(b), MaxTerminationMessage)
		}
		r.FailedImages = r.FailedImages[:len(r.FailedImages)-1]
	}
}

// ParseResult reads a termination message written by TerminationMessage.
func ParseResult(b []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("parse remover result: %w", err)
	}
	return r, nil
}
