package cleanup

import (
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// FailedPhaseAnnotation says, beside state Failed, which phase failed. It
// decides what re-arms the cleanup: a fetch failure is the repo's, and its
// next Ready phase re-arms it; a failure after the plan was made (the plan
// cannot be stored or trusted, or the removal failed) waits for a person,
// who removes the state annotation.
const FailedPhaseAnnotation = "harvesterhci.io/image-cleanup-failed-phase"

// Phase is the part of the cleanup that failed.
type Phase string

// The phases that can fail.
const (
	// PhaseFetch: the image lists could not be fetched (or the version to
	// fetch is not valid).
	PhaseFetch Phase = "fetch"
	// PhasePlan: the plan could not be stored, or the stored plan is not
	// one this upgrade may run.
	PhasePlan Phase = "plan"
	// PhaseRemoval: the removal on the nodes failed, or could not start.
	PhaseRemoval Phase = "removal"
)

// permanentError is an error that no retry can mend: the cleanup records
// Failed with it at once instead of spending retries and resyncs on it.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err: err} }

// permanentIfRefused marks err permanent when the API server refused the
// request itself: the object is invalid or too large, the request is bad, or
// the controller is not allowed to make it. The same request would be
// refused again; a person must change something first.
func permanentIfRefused(err error) error {
	switch {
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsForbidden(err), apierrors.IsRequestEntityTooLargeError(err):
		return permanent(err)
	}
	return err
}

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
