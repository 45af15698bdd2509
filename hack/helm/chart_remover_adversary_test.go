package main

// Adversarial review of issue 15's chart: each test names a defect and
// fails while it is there.

import (
	"strings"
	"testing"
)

// TestAdversaryRemoverImageNotAReference: image.digest "sha256:abc" is
// refused by the schema (TestRefusals' "bad digest"), but remover.image,
// "a full image reference", takes the same bad digest, or a second port
// colon, and the controller never checks --remover-image: the install
// succeeds, the controller runs, and every removal Job's pod fails with
// InvalidImageName only after the next upgrade, until the Jobs' 30-minute
// deadline fails the cleanup.
func TestAdversaryRemoverImageNotAReference(t *testing.T) {
	for _, ref := range []string{
		"registry.example.com/harvester/harvester@sha256:abc",
		"registry.example.com:5000:6000/harvester:v1.6.0",
		"registry.example.com/harvester/harvester:v1.6.0@sha256:abc",
	} {
		t.Run(ref, func(t *testing.T) {
			_, err := install(chartForTest(t), map[string]any{"remover": map[string]any{"image": ref}})
			if err == nil || !strings.Contains(err.Error(), "remover") {
				t.Errorf("remover.image %q, not an image reference: install error %v, want it refused naming remover.image", ref, err)
			}
		})
	}
}
