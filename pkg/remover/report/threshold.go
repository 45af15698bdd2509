package report

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"
)

// MaxThreshold bounds an image filesystem threshold: 8 PiB, far beyond any
// node, and within the bounds a checked Result keeps byte figures to.
const MaxThreshold = 8 << 50

// ParseThreshold reads an image filesystem threshold in bytes given as a
// Kubernetes quantity (50Gi, 200G, 1.5Ti, 0); a fraction of a byte counts
// as one. The controller's flag and the remover's read it with this one
// function, so the controller never passes a Job a value its remover
// refuses.
func ParseThreshold(s string) (uint64, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("want a quantity of bytes such as 50Gi or 200G, or 0 for none: %w", err)
	}
	switch {
	case q.Sign() < 0:
		return 0, errors.New("must not be negative")
	case q.Cmp(*resource.NewQuantity(MaxThreshold, resource.BinarySI)) > 0:
		return 0, errors.New("must be at most 8Pi")
	}
	return uint64(q.Value()), nil
}
