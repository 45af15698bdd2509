package remover

import (
	"bytes"
	"fmt"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
)

// maxListBytes bounds a plan or keep list file: the plan ConfigMap holds
// at most 1 MiB, and a list given by hand is far below this too.
const maxListBytes = 16 << 20

// readPlan reads the whole plan or fails: a plan read in part must not be
// acted on. It returns the digest of the bytes it parsed, and fails when
// wantDigest is set and differs: the ConfigMap then holds another plan than
// the one the controller made the Job for (edited, or replaced by a newer
// plan), and acting on it would remove what nobody reviewed.
func readPlan(path, wantDigest string) ([]reference.Named, string, error) {
	b, err := readRegular(path, maxListBytes)
	if err != nil {
		return nil, "", fmt.Errorf("read plan: %w", err)
	}
	digest := imagelist.Digest(b)
	if wantDigest != "" && digest != wantDigest {
		return nil, digest, fmt.Errorf("plan %s has digest %s, want %s (--plan-digest): it is not the plan this Job was made for; removing nothing", path, digest, wantDigest)
	}
	plan, err := imagelist.Parse(bytes.NewReader(b), path)
	if err != nil {
		return nil, digest, fmt.Errorf("plan: %w", err)
	}
	return plan, digest, nil
}

// readKeep reads the current version's image list. An empty one is refused:
// every version ships images, so an empty list means a broken ConfigMap or
// mount, and would leave the remover without its second check.
func readKeep(path string) ([]reference.Named, error) {
	b, err := readRegular(path, maxListBytes)
	if err != nil {
		return nil, fmt.Errorf("read keep list: %w", err)
	}
	keep, err := imagelist.Parse(bytes.NewReader(b), path)
	if err != nil {
		return nil, fmt.Errorf("keep list: %w", err)
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("keep list %s is empty: the current version ships images, so the list is broken; removing nothing", path)
	}
	return keep, nil
}
