package cleanup

import (
	"path"
	"testing"
)

// FuzzGlobMatchesPathMatch checks that glob's fixed-ends shortcut never
// changes path.Match's answer. Under go test only the seeds run.
func FuzzGlobMatchesPathMatch(f *testing.F) {
	patterns := []string{
		"docker.io/rancher/mirrored-component-1*", "*:*-hotfix", "rancher/x:1", "*", "?", "", "a?c", "[ab]*",
		`\*x`, `*\?`, `x*y*z`, "docker.io/*/*:v[0-9]*", "*[", "*]", "[]a]", "*/x:?", "rancher/*", "*:v1.?", `a\`,
		"*@sha256:*", "registry.suse.com/*", "[^a]*", "*[!x]",
	}
	refs := []string{
		"docker.io/rancher/mirrored-component-12:v1", "rancher/mirrored-component-12:v1", "rancher/x:1",
		"docker.io/rancher/x:1-hotfix", "x:1-hotfix", "abc", "ac", "*x", "a?", "xyz", "x/y/z", "", "a",
		"docker.io/rancher/x:v1.2", "rancher/x@sha256:0123", "registry.suse.com/suse/x:1", "]a", "x:v1.9",
	}
	for _, p := range patterns {
		for _, s := range refs {
			f.Add(p, s)
		}
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		want, _ := path.Match(pattern, s)
		if got := newGlob(pattern).match(s); got != want {
			t.Fatalf("glob %q matches %q: %t, path.Match says %t", pattern, s, got, want)
		}
	})
}
