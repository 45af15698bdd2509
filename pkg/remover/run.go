package remover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
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
	// RemoveImage removes the image with this ID, with all its tags. An
	// error that is (or wraps) a gRPC status DeadlineExceeded or
	// Unavailable makes Run try once more. With Options.ParallelRemovals
	// above one, Run calls it from several goroutines at once, each time
	// for a different ID, and calls nothing else meanwhile.
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

// Report is Run's full account for one node: the report.Result that goes to the
// termination message, plus one entry per planned reference and image.
type Report struct {
	DryRun bool `json:"dryRun,omitempty"`
	// PlanDigest is imagelist.Digest of the plan file acted on; Run leaves
	// it empty, Main fills it in.
	PlanDigest string        `json:"planDigest,omitempty"`
	Result     report.Result `json:"result"`
	// WouldRemove counts the images a dry run found safe to remove.
	WouldRemove int `json:"wouldRemove,omitempty"`
	// SandboxImage is the runtime's configured sandbox image, which is
	// never removed; empty when the runtime does not say.
	SandboxImage string `json:"sandboxImage,omitempty"`
	// RecheckError is why the images could not be listed again after the
	// removals; then each action is what RemoveImage answered, unchecked.
	RecheckError string `json:"recheckError,omitempty"`
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
	Ref      string        `json:"ref,omitempty"`
	Dangling bool          `json:"dangling,omitempty"`
	Action   Action        `json:"action"`
	Reason   report.Reason `json:"reason,omitempty"`
	// Detail says which container, pod sandbox, tag or kept reference kept
	// the image; for an image removed although RemoveImage answered an
	// error, that error.
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
	logKeyError    = "removeError"
	logKeyFirst    = "firstAttemptError"
	logKeyFsUsed   = "imageFsUsed"
	// logKeyThreshold is the disk-pressure threshold in bytes.
	logKeyThreshold = "imageFsThreshold"
	logKeyWait      = "imageFsWait"
	logKeyCollected = "collectedAt"
	logKeyFsError   = "imageFsError"
)

// Run lists the runtime's images, containers and pod sandboxes, decides with
// Decide, and removes the images that are safe to remove, going on after a
// failure: opts.ParallelRemovals calls at a time, all decided before the
// first. It logs one line per decision through the logger
// in ctx.
//
// Each RemoveImage call gets its own deadline (opts.RemoveTimeout) and is
// tried once more when it times out or finds the runtime unavailable, as
// long as ctx allows: one slow image must not fail the whole node. Then Run
// lists the images again, because a call's answer is not always what
// happened: an image no longer listed counts as removed even if its call
// failed (the runtime finished after the caller gave up), and one still
// listed counts as failed even if its call succeeded.
//
// It returns an error only when listing fails before deciding (the runtime
// is unreachable or broken); a removal that fails is counted in the Report.
// When ctx ends, the images not yet removed are reported as failed without
// calling the runtime.
//
// The containers and sandboxes are listed once, before removing: a container
// or sandbox created from a planned image after that is not seen. The plan
// holds images of a version the cluster no longer runs, so nothing should
// create one.
//
// Measured space: when rt is also an ImageFsReporter, Run measures the
// image filesystems first, and again after the removals, and reports both
// (report.Result.ImageFs, beside BytesReclaimed, the sum of the removed
// images' sizes). The runtime may answer the second time with a figure it
// computed before the last removal (containerd recomputes it every
// stats_collect_period, 10 s by default): Run asks again, every second, for
// at most opts.ImageFsWait, until the figure's timestamp is at or after the
// end of the last RemoveImage call, and otherwise reports the last figure
// with Stale set. When its context has ended (--timeout, SIGTERM) it asks
// once and does not wait. A dry run, and a run that calls RemoveImage for
// nothing, report UsedAfter = UsedBefore without asking again; a figure
// that cannot be had after the removals is reported the same way, with
// Stale set. ImageFs is nil when the runtime does not measure (no
// ImageFsReporter, or ErrImageFsUnsupported) or the first measurement
// fails; that does not fail the run.
//
// Disk-pressure mode (opts.ImageFsThreshold not zero): when the first
// measurement is below the threshold, Run removes nothing and lists
// nothing, logs one line with both figures, and returns a Report whose
// Result has BelowThreshold, Threshold and ImageFs (UsedAfter =
// UsedBefore) and no images. When the image filesystems cannot be measured,
// Run removes nothing and returns an error, which wraps
// ErrImageFsUnsupported when the runtime does not measure them (asking
// again will not help) and the runtime's error otherwise (it may be
// restarting): an operator who set a threshold asked for no removal below
// it, and neither removing blind nor reporting "below" unchecked is that.
// Otherwise the run goes on as without a threshold, and Result.Threshold
// says which it was given.
func Run(ctx context.Context, rt Runtime, plan []reference.Named, opts Options) (Report, error) {
	logger := klog.FromContext(ctx)
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	fsr, _ := rt.(ImageFsReporter)
	before, fsErr := measureBefore(ctx, fsr, opts.ImageFsWait, clk)
	switch {
	case opts.ImageFsThreshold > 0 && fsErr != nil:
		// Removing without knowing would defeat the threshold's purpose;
		// leaving the images as if below it would hide that it was never
		// checked.
		return Report{}, fmt.Errorf("cannot check the image filesystem threshold (%d bytes), so nothing is removed: %w", opts.ImageFsThreshold, fsErr)
	case opts.ImageFsThreshold > 0 && before.UsedBytes < opts.ImageFsThreshold:
		logger.Info("Image filesystem usage is below the threshold: removing nothing", logKeyFsUsed, before.UsedBytes, logKeyThreshold, opts.ImageFsThreshold)
		return Report{DryRun: opts.DryRun, Images: []ImageReport{}, Result: report.Result{
			BelowThreshold: true,
			Threshold:      opts.ImageFsThreshold,
			ImageFs:        &report.ImageFs{UsedBefore: before.UsedBytes, UsedAfter: before.UsedBytes},
		}}, nil
	case opts.ImageFsThreshold > 0:
		logger.Info("Image filesystem usage reaches the threshold", logKeyFsUsed, before.UsedBytes, logKeyThreshold, opts.ImageFsThreshold)
	case errors.Is(fsErr, ErrImageFsUnsupported):
		// Normal for such a runtime: the result's ImageFs is nil.
		logger.V(1).Info("The runtime does not report its image filesystem usage; reporting no measured space", logKeyFsError, fsErr.Error())
	case fsErr != nil:
		logger.Error(fsErr, "Cannot measure the image filesystems; reporting no measured space")
	}

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
	rep.Result.Threshold = opts.ImageFsThreshold
	if fsErr == nil {
		// What removes nothing leaves the figure as it was: a dry run, a
		// run with nothing to remove.
		rep.Result.ImageFs = &report.ImageFs{UsedBefore: before.UsedBytes, UsedAfter: before.UsedBytes}
	}

	// Remove everything first, then check what is gone, then report.
	outcomes := map[string]*removal{}
	if !opts.DryRun {
		var ids []string
		for _, dec := range d.Images {
			if dec.Remove {
				ids = append(ids, dec.Image.ID)
			}
		}
		for _, img := range d.Dangling {
			ids = append(ids, img.ID)
		}
		outcomes = removeImages(ctx, rt, ids, opts)
		removedAt := clk.Now()
		// The check runs even when the run's context has ended (--timeout,
		// SIGTERM): an image a cut-short call did remove is then reported
		// removed. It has a short bound of its own.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recheckTimeout)
		err := recheck(rctx, rt, outcomes)
		cancel()
		if err != nil {
			rep.RecheckError = err.Error()
			logger.Error(err, "Cannot list the images again to check the removals; reporting what RemoveImage answered")
		}
		if rep.Result.ImageFs != nil && anyAttempted(outcomes) {
			measureAfterRemoving(ctx, fsr, removedAt, opts.ImageFsWait, clk, rep.Result.ImageFs)
		}
	}

	skip := func(r report.Reason) {
		if rep.Result.Skipped == nil {
			rep.Result.Skipped = map[report.Reason]int{}
		}
		rep.Result.Skipped[r]++
	}
	// settle counts and logs what became of one image Run set out to
	// remove, and returns the action, error and detail of its report entries.
	settle := func(img Image, refs []string) (action Action, errText, detail string) {
		keys := []any{logKeyRefs, refs, logKeyDangling, len(refs) == 0, logKeyImageID, img.ID}
		if opts.DryRun {
			rep.WouldRemove++
			logger.Info("Would remove image", append(keys, logKeyTags, img.RepoTags, logKeySize, img.Size)...)
			return ActionWouldRemove, "", ""
		}
		o := outcomes[img.ID]
		if o.retried != nil {
			keys = append(keys, logKeyFirst, o.retried.Error())
		}
		if o.err != nil {
			rep.Result.Failed++
			name := img.ID
			if len(refs) > 0 {
				name = strings.Join(refs, ",")
			}
			// Not wrapped with the image: the report and the log line name
			// it, and FailedImages must stay short to fit the termination
			// message.
			rep.Result.FailedImages = append(rep.Result.FailedImages, name+": "+o.err.Error())
			logger.Error(o.err, "Failed to remove image", keys...)
			return ActionFailed, o.err.Error(), ""
		}
		rep.Result.BytesReclaimed += img.Size
		if o.goneDespite != nil {
			keys = append(keys, logKeyError, o.goneDespite.Error())
			detail = "RemoveImage answered " + o.goneDespite.Error() + ", but the image is no longer listed"
		}
		logger.Info("Removed image", append(keys, logKeyTags, img.RepoTags, logKeySize, img.Size)...)
		return ActionRemoved, "", detail
	}

	var planned []ImageReport
	for _, dec := range d.Images {
		entry := ImageReport{ImageID: dec.Image.ID, Tags: dec.Image.RepoTags, Size: dec.Image.Size}
		if dec.Remove {
			entry.Action, entry.Error, entry.Detail = settle(dec.Image, dec.Refs)
			if entry.Action == ActionRemoved {
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
		skip(report.ReasonNotPresent)
		logger.Info("Planned image not on this node", logKeyRefs, []string{ref}, logKeyReason, report.ReasonNotPresent)
		planned = append(planned, ImageReport{Ref: ref, Action: ActionSkipped, Reason: report.ReasonNotPresent})
	}
	slices.SortFunc(planned, func(a, b ImageReport) int {
		return cmp.Or(strings.Compare(a.Ref, b.Ref), strings.Compare(a.ImageID, b.ImageID))
	})
	rep.Images = append(rep.Images, planned...)

	for _, img := range d.Dangling {
		entry := ImageReport{Dangling: true, ImageID: img.ID, Size: img.Size}
		entry.Action, entry.Error, entry.Detail = settle(img, nil)
		if entry.Action == ActionRemoved {
			rep.Result.DanglingRemoved++
		}
		rep.Images = append(rep.Images, entry)
	}
	return rep, nil
}

// removal is what became of one image Run set out to remove.
type removal struct {
	// attempted is true when RemoveImage was called at least once.
	attempted bool
	// err is why the image is not gone; nil when it is.
	err error
	// retried is the first call's error when RemoveImage was called twice.
	retried error
	// goneDespite is the call's error when the image is gone all the same.
	goneDespite error
}

// recheckTimeout bounds the listing after the removals, which may run after
// the run's own context ended: one ListImages answers in milliseconds.
const recheckTimeout = 10 * time.Second

// errStillListed is the error of an image whose RemoveImage succeeded but
// that the runtime still lists.
var errStillListed = errors.New("still listed after RemoveImage")

// removeImages removes the images ids, each with removeImage, keeping at
// most opts.ParallelRemovals calls in flight, and returns what became of
// each by ID. The calls start in the order of ids.
func removeImages(ctx context.Context, rt Runtime, ids []string, opts Options) map[string]*removal {
	results := make([]*removal, len(ids))
	next := make(chan int)
	var workers wait.Group
	for range min(max(opts.ParallelRemovals, 1), len(ids)) {
		workers.Start(func() {
			for i := range next {
				results[i] = removeImage(ctx, rt, ids[i], opts.RemoveTimeout)
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	workers.Wait()
	outcomes := make(map[string]*removal, len(ids))
	for i, id := range ids {
		outcomes[id] = results[i]
	}
	return outcomes
}

// removeImage removes one image: one RemoveImage call under its own
// deadline (timeout; none when zero), and one more when that call timed out
// or found the runtime unavailable, provided the run's context still has
// time.
func removeImage(ctx context.Context, rt Runtime, id string, timeout time.Duration) *removal {
	r := &removal{}
	if err := outOfTime(ctx); err != nil {
		r.err = fmt.Errorf("not attempted: %w", err)
		return r
	}
	r.attempted = true
	err := callRemoveImage(ctx, rt, id, timeout)
	code := status.Code(err)
	retry := code == codes.Unavailable || code == codes.DeadlineExceeded
	// A call cut short by the run's own deadline is not retried: the run is
	// out of time. Whatever else timed out (this call's own deadline, or
	// the runtime answering DeadlineExceeded itself) is, while the run has
	// time left; a retry the run's deadline then cuts fails at once.
	if err == nil || !retry || outOfTime(ctx) != nil {
		r.err = err
		return r
	}
	r.retried = err
	klog.FromContext(ctx).Info("Retrying image removal", logKeyImageID, id, logKeyError, err.Error())
	if err := callRemoveImage(ctx, rt, id, timeout); err != nil {
		r.err = fmt.Errorf("tried twice: %w", err)
	}
	return r
}

// outOfTime is ctx's error, or DeadlineExceeded once its deadline has
// passed by the clock. A context's Err is set by a timer that may fire a
// moment after its deadline, while gRPC already reports a call cut by that
// deadline as DeadlineExceeded (it compares with the clock): without this,
// a removal cut by the run's deadline could be retried in that moment.
func outOfTime(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// callRemoveImage makes one RemoveImage call under its own deadline (none
// when timeout is zero) within ctx.
func callRemoveImage(ctx context.Context, rt Runtime, id string, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return rt.RemoveImage(ctx, id)
}

// recheck lists the images again and corrects the outcomes of the images
// RemoveImage was called for by what the runtime now lists. When the listing
// fails, the outcomes stay what the calls answered.
func recheck(ctx context.Context, rt Runtime, outcomes map[string]*removal) error {
	if !anyAttempted(outcomes) {
		return nil
	}
	images, err := rt.ListImages(ctx)
	if err != nil {
		return fmt.Errorf("list images after removing: %w", err)
	}
	listed := map[string]bool{}
	for _, img := range images {
		listed[img.ID] = true
	}
	for id, o := range outcomes {
		switch {
		case !o.attempted:
		case o.err == nil && listed[id]:
			o.err = errStillListed
		case o.err != nil && !listed[id]:
			o.goneDespite, o.err = o.err, nil
		}
	}
	return nil
}

// anyAttempted reports whether RemoveImage was called for any image.
func anyAttempted(outcomes map[string]*removal) bool {
	for _, o := range outcomes {
		if o.attempted {
			return true
		}
	}
	return false
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
