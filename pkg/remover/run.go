package remover

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"k8s.io/klog/v2"
)

// Runtime is what Run needs from a container runtime. CRI implements it over
// gRPC; tests may script it.
type Runtime interface {
	// ListImages lists every image on the node.
	ListImages(ctx context.Context) ([]Image, error)
	// ListContainers lists every container on the node, in any state.
	ListContainers(ctx context.Context) ([]Container, error)
	// ListSandboxes lists every pod sandbox on the node, in any state, with
	// the image each runs where the runtime says, and the sandbox image the
	// runtime is configured to start new ones from. CRI's ListContainers
	// does not list sandboxes, and containerd 1.6 does not pin the sandbox
	// image: without this, nothing would keep the pause image of running
	// pods.
	ListSandboxes(ctx context.Context) (Sandboxes, error)
	// RemoveImage removes the image with this ID, with all its tags.
	RemoveImage(ctx context.Context, id string) error
}

// Action is what Run did about one planned reference or dangling image.
type Action string

// Actions in a Report.
const (
	ActionRemoved Action = "removed"
	ActionSkipped Action = "skipped"
	ActionFailed  Action = "failed"
	// ActionWouldRemove is a dry run's "removed": safe to remove, left in place.
	ActionWouldRemove Action = "would-remove"
)

// Report is Run's full account for one node: the Result that goes to the
// termination message, plus one entry per planned reference and image.
type Report struct {
	DryRun bool   `json:"dryRun,omitempty"`
	Result Result `json:"result"`
	// WouldRemove counts the images a dry run found safe to remove.
	WouldRemove int `json:"wouldRemove,omitempty"`
	// SandboxImage is the runtime's configured sandbox image, which is
	// never removed; empty when the runtime does not say.
	SandboxImage string `json:"sandboxImage,omitempty"`
	// Images has one entry per planned reference and image it matched
	// (sorted by reference, then image ID; a reference that matched no image
	// has one entry without ImageID), then one per dangling image removed
	// (sorted by ID). An image matched by several references appears once
	// per reference, with the same action: it was removed (or not) once.
	Images []ImageReport `json:"images"`
}

// ImageReport is one line of a Report.
type ImageReport struct {
	// Ref is the planned reference; empty for a dangling image.
	Ref      string `json:"ref,omitempty"`
	Dangling bool   `json:"dangling,omitempty"`
	Action   Action `json:"action"`
	Reason   Reason `json:"reason,omitempty"`
	// Detail says which container, pod sandbox or tag kept the image.
	Detail  string `json:"detail,omitempty"`
	ImageID string `json:"imageID,omitempty"`
	// Tags are the image's tags as the runtime listed them: what removing
	// it removed, or would have removed.
	Tags  []string `json:"tags,omitempty"`
	Size  uint64   `json:"size,omitempty"`
	Error string   `json:"error,omitempty"`
}

// Log keys, fixed so that log queries keep working.
const (
	logKeyRefs     = "refs"
	logKeyImageID  = "imageID"
	logKeyReason   = "reason"
	logKeyDetail   = "detail"
	logKeySize     = "size"
	logKeyTags     = "tags"
	logKeyDangling = "dangling"
	logKeySandbox  = "sandboxImage"
	logKeyCount    = "count"
)

// Run lists the runtime's images, containers and pod sandboxes, decides with
// Decide, and removes the images that are safe to remove, one at a time,
// going on after a failure. It logs one line per decision through the logger
// in ctx.
//
// It returns an error only when listing fails (the runtime is unreachable or
// broken); a removal that fails is counted in the Report. When ctx ends,
// the images not yet removed are reported as failed without calling the
// runtime.
//
// The containers and sandboxes are listed once, before removing: a container
// or sandbox created from a planned image after that is not seen. The plan
// holds images of a version the cluster no longer runs, so nothing should
// create one.
func Run(ctx context.Context, rt Runtime, plan []reference.Named, opts Options) (Report, error) {
	logger := klog.FromContext(ctx)
	images, err := rt.ListImages(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("list images: %w", err)
	}
	containers, err := rt.ListContainers(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("list containers: %w", err)
	}
	sandboxes, err := rt.ListSandboxes(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("list sandboxes: %w", err)
	}
	if sandboxes.ConfiguredImage != "" {
		logger.V(1).Info("Runtime's sandbox image", logKeySandbox, sandboxes.ConfiguredImage)
	} else if n := countUnknownImage(sandboxes.List); n > 0 {
		// Only the runtime's pinned flag (containerd 1.7 and later, CRI-O)
		// keeps a sandbox image now.
		logger.Info("Warning: the runtime reports neither the image of some pod sandboxes nor its configured sandbox image; only its pinned flag keeps their image", logKeyCount, n)
	}
	d := Decide(plan, images, containers, sandboxes, opts)

	rep := Report{DryRun: opts.DryRun, SandboxImage: sandboxes.ConfiguredImage, Images: []ImageReport{}}
	skip := func(r Reason) {
		if rep.Result.Skipped == nil {
			rep.Result.Skipped = map[Reason]int{}
		}
		rep.Result.Skipped[r]++
	}
	// remove removes one image, or in a dry run only says it would, and
	// returns the action taken and the error.
	remove := func(img Image, refs []string) (Action, error) {
		if opts.DryRun {
			rep.WouldRemove++
			logger.Info("Would remove image", logKeyRefs, refs, logKeyDangling, len(refs) == 0, logKeyImageID, img.ID, logKeyTags, img.RepoTags, logKeySize, img.Size)
			return ActionWouldRemove, nil
		}
		err := ctx.Err()
		if err != nil {
			err = fmt.Errorf("not attempted: %w", err)
		} else {
			// Not wrapped: the report and the log line name the image, and
			// FailedImages must stay short to fit the termination message.
			err = rt.RemoveImage(ctx, img.ID)
		}
		if err != nil {
			rep.Result.Failed++
			name := img.ID
			if len(refs) > 0 {
				name = strings.Join(refs, ",")
			}
			rep.Result.FailedImages = append(rep.Result.FailedImages, name+": "+err.Error())
			logger.Error(err, "Failed to remove image", logKeyRefs, refs, logKeyDangling, len(refs) == 0, logKeyImageID, img.ID)
			return ActionFailed, err
		}
		rep.Result.BytesReclaimed += img.Size
		logger.Info("Removed image", logKeyRefs, refs, logKeyDangling, len(refs) == 0, logKeyImageID, img.ID, logKeyTags, img.RepoTags, logKeySize, img.Size)
		return ActionRemoved, nil
	}

	var planned []ImageReport
	for _, dec := range d.Images {
		entry := ImageReport{ImageID: dec.Image.ID, Tags: dec.Image.RepoTags, Size: dec.Image.Size}
		if dec.Remove {
			var err error
			entry.Action, err = remove(dec.Image, dec.Refs)
			if err != nil {
				entry.Error = err.Error()
			} else if entry.Action == ActionRemoved {
				rep.Result.Removed++
			}
		} else {
			entry.Action, entry.Reason, entry.Detail = ActionSkipped, dec.Reason, dec.Detail
			skip(dec.Reason)
			logger.Info("Kept image", logKeyRefs, dec.Refs, logKeyImageID, dec.Image.ID, logKeyReason, dec.Reason, logKeyDetail, dec.Detail)
		}
		for _, ref := range dec.Refs {
			e := entry
			e.Ref = ref
			planned = append(planned, e)
		}
	}
	for _, ref := range d.NotPresent {
		skip(ReasonNotPresent)
		logger.Info("Planned image not on this node", logKeyRefs, []string{ref}, logKeyReason, ReasonNotPresent)
		planned = append(planned, ImageReport{Ref: ref, Action: ActionSkipped, Reason: ReasonNotPresent})
	}
	slices.SortFunc(planned, func(a, b ImageReport) int {
		return cmp.Or(strings.Compare(a.Ref, b.Ref), strings.Compare(a.ImageID, b.ImageID))
	})
	rep.Images = append(rep.Images, planned...)

	for _, img := range d.Dangling {
		entry := ImageReport{Dangling: true, ImageID: img.ID, Size: img.Size}
		var err error
		entry.Action, err = remove(img, nil)
		if err != nil {
			entry.Error = err.Error()
		} else if entry.Action == ActionRemoved {
			rep.Result.DanglingRemoved++
		}
		rep.Images = append(rep.Images, entry)
	}
	return rep, nil
}

// countUnknownImage counts the sandboxes whose image the runtime did not say.
func countUnknownImage(sandboxes []Sandbox) int {
	n := 0
	for _, sb := range sandboxes {
		if sb.Image == "" {
			n++
		}
	}
	return n
}
