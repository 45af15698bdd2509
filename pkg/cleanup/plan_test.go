package cleanup_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
)

// imageList parses lines as the repo would serve them, so the plan sees the
// normalised, sorted lists it is documented to take.
const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func imageList(t *testing.T, lines ...string) []reference.Named {
	t.Helper()
	l, err := imagelist.Parse(strings.NewReader(strings.Join(lines, "\n")), "test")
	if err != nil {
		t.Fatalf("ParseImageList: %v", err)
	}
	return l
}

func TestComputePlan(t *testing.T) {
	tests := []struct {
		name              string
		previous, current []string
		retain, exclude   []string
		want              cleanup.Plan
	}{
		{
			name:     "previous minus current",
			previous: []string{"rancher/harvester:v1.4.0", "rancher/a:1", "rancher/b:1"},
			current:  []string{"rancher/harvester:v1.4.1", "rancher/a:1"},
			want: cleanup.Plan{
				Remove: []string{"docker.io/rancher/b:1", "docker.io/rancher/harvester:v1.4.0"},
				Kept:   []cleanup.Kept{{Image: "docker.io/rancher/a:1", Rule: cleanup.RuleInCurrent, Match: "docker.io/rancher/a:1", Why: imagematch.WhySameTag}},
			},
		},
		{
			name:     "short and full forms are one image across lists",
			previous: []string{"rancher/x:1", "docker.io/library/busybox:1.36"},
			current:  []string{"docker.io/rancher/x:1", "busybox:1.36"},
			want: cleanup.Plan{Kept: []cleanup.Kept{
				{Image: "docker.io/library/busybox:1.36", Rule: cleanup.RuleInCurrent, Match: "docker.io/library/busybox:1.36", Why: imagematch.WhySameTag},
				{Image: "docker.io/rancher/x:1", Rule: cleanup.RuleInCurrent, Match: "docker.io/rancher/x:1", Why: imagematch.WhySameTag},
			}},
		},
		{
			// Rancher's images moved host like this; the remover matches a
			// planned image under any host, so planning it would remove the
			// new version's image.
			name:     "same path and tag under another registry host is kept",
			previous: []string{"docker.io/rancher/foo:v1", "docker.io/rancher/bar:v1"},
			current:  []string{"registry.rancher.com/rancher/foo:v1", "registry.rancher.com/rancher/bar:v2"},
			want: cleanup.Plan{
				Remove: []string{"docker.io/rancher/bar:v1"},
				Kept:   []cleanup.Kept{{Image: "docker.io/rancher/foo:v1", Rule: cleanup.RuleInCurrent, Match: "registry.rancher.com/rancher/foo:v1", Why: imagematch.WhyOtherRegistry}},
			},
		},
		{
			name:     "current pins the digest, previous does not",
			previous: []string{"rancher/x:v1"},
			current:  []string{"rancher/x:v1@" + testDigest},
			want: cleanup.Plan{Kept: []cleanup.Kept{
				{Image: "docker.io/rancher/x:v1", Rule: cleanup.RuleInCurrent, Match: "docker.io/rancher/x:v1@" + testDigest, Why: imagematch.WhySameTag},
			}},
		},
		{
			name:     "previous pins the digest, current does not",
			previous: []string{"rancher/x:v1@" + testDigest},
			current:  []string{"rancher/x:v1"},
			want: cleanup.Plan{Kept: []cleanup.Kept{
				{Image: "docker.io/rancher/x:v1@" + testDigest, Rule: cleanup.RuleInCurrent, Match: "docker.io/rancher/x:v1", Why: imagematch.WhySameTag},
			}},
		},
		{
			name:     "same digest in another repository is one image",
			previous: []string{"rancher/old-name@" + testDigest},
			current:  []string{"rancher/new-name:v2@" + testDigest},
			want: cleanup.Plan{Kept: []cleanup.Kept{
				{Image: "docker.io/rancher/old-name@" + testDigest, Rule: cleanup.RuleInCurrent, Match: "docker.io/rancher/new-name:v2@" + testDigest, Why: imagematch.WhySameDigest},
			}},
		},
		{
			name:     "same host preferred when naming the match",
			previous: []string{"docker.io/rancher/foo:v1"},
			current:  []string{"registry.rancher.com/rancher/foo:v1", "docker.io/rancher/foo:v1"},
			want: cleanup.Plan{Kept: []cleanup.Kept{
				{Image: "docker.io/rancher/foo:v1", Rule: cleanup.RuleInCurrent, Match: "docker.io/rancher/foo:v1", Why: imagematch.WhySameTag},
			}},
		},
		{
			name:     "vmdp images are retained as Harvester's node script does",
			previous: []string{"registry.suse.com/harvester-beta/vmdp:2.5.4.3", "registry.suse.com/suse/vmdp/vmdp:2.5.4.2"},
			retain:   cleanup.DefaultRetain(),
			want: cleanup.Plan{Kept: []cleanup.Kept{
				{Image: "registry.suse.com/harvester-beta/vmdp:2.5.4.3", Rule: cleanup.RuleRetain, Match: "harvester-beta/vmdp"},
				{Image: "registry.suse.com/suse/vmdp/vmdp:2.5.4.2", Rule: cleanup.RuleRetain, Match: "suse/vmdp/vmdp"},
			}},
		},
		{
			name:     "another tag of an image still in use is removed",
			previous: []string{"rancher/x:1"},
			current:  []string{"rancher/x:2"},
			want:     cleanup.Plan{Remove: []string{"docker.io/rancher/x:1"}},
		},
		{
			name:     "default retain list keeps the upgrade image",
			previous: []string{"rancher/harvester-upgrade:v1.4.0", "longhornio/longhorn-engine:v1.6.2", "rancher/a:1"},
			retain:   cleanup.DefaultRetain(),
			want: cleanup.Plan{
				Remove: []string{"docker.io/rancher/a:1"},
				Kept: []cleanup.Kept{
					{Image: "docker.io/longhornio/longhorn-engine:v1.6.2", Rule: cleanup.RuleRetain, Match: "longhornio/longhorn-engine"},
					{Image: "docker.io/rancher/harvester-upgrade:v1.4.0", Rule: cleanup.RuleRetain, Match: "rancher/harvester-upgrade"},
				},
			},
		},
		{
			name:     "retain matches under another registry host",
			previous: []string{"myreg.local/rancher/harvester-upgrade:v1"},
			retain:   cleanup.DefaultRetain(),
			want: cleanup.Plan{Kept: []cleanup.Kept{
				{Image: "myreg.local/rancher/harvester-upgrade:v1", Rule: cleanup.RuleRetain, Match: "rancher/harvester-upgrade"},
			}},
		},
		{
			name:     "retain matches under a mirror prefix",
			previous: []string{"myreg.local/mirror/rancher/harvester-upgrade:v1"},
			retain:   cleanup.DefaultRetain(),
			want: cleanup.Plan{Kept: []cleanup.Kept{
				{Image: "myreg.local/mirror/rancher/harvester-upgrade:v1", Rule: cleanup.RuleRetain, Match: "rancher/harvester-upgrade"},
			}},
		},
		{
			name:     "retain matches digest references",
			previous: []string{"rancher/harvester-upgrade@" + testDigest},
			retain:   []string{"rancher/harvester-upgrade"},
			want: cleanup.Plan{Kept: []cleanup.Kept{
				{Image: "docker.io/rancher/harvester-upgrade@" + testDigest, Rule: cleanup.RuleRetain, Match: "rancher/harvester-upgrade"},
			}},
		},
		{
			name:     "retain does not match a repository that only shares a prefix",
			previous: []string{"rancher/harvester-upgrade-extra:v1", "myrancher/harvester-upgrade:v1", "rancher/harvester-upgrade/sub:v1"},
			retain:   cleanup.DefaultRetain(),
			want: cleanup.Plan{Remove: []string{
				"docker.io/myrancher/harvester-upgrade:v1",
				"docker.io/rancher/harvester-upgrade-extra:v1",
				"docker.io/rancher/harvester-upgrade/sub:v1",
			}},
		},
		{
			name:     "retain entry given with its registry matches by path",
			previous: []string{"rancher/x:1", "myreg.local/rancher/x:2"},
			retain:   []string{"docker.io/rancher/x"},
			want: cleanup.Plan{Kept: []cleanup.Kept{
				{Image: "docker.io/rancher/x:1", Rule: cleanup.RuleRetain, Match: "rancher/x"},
				{Image: "myreg.local/rancher/x:2", Rule: cleanup.RuleRetain, Match: "rancher/x"},
			}},
		},
		{
			name:     "exclude pattern on the full form",
			previous: []string{"rancher/x:1", "longhornio/y:1"},
			exclude:  []string{"docker.io/rancher/*"},
			want: cleanup.Plan{
				Remove: []string{"docker.io/longhornio/y:1"},
				Kept:   []cleanup.Kept{{Image: "docker.io/rancher/x:1", Rule: cleanup.RuleExclude, Match: "docker.io/rancher/*"}},
			},
		},
		{
			name:     "exclude pattern on the short form",
			previous: []string{"rancher/x:1", "rancher/x:2", "rancher/xy:1"},
			exclude:  []string{"rancher/x:*"},
			want: cleanup.Plan{
				Remove: []string{"docker.io/rancher/xy:1"},
				Kept: []cleanup.Kept{
					{Image: "docker.io/rancher/x:1", Rule: cleanup.RuleExclude, Match: "rancher/x:*"},
					{Image: "docker.io/rancher/x:2", Rule: cleanup.RuleExclude, Match: "rancher/x:*"},
				},
			},
		},
		{
			name:     "exclude star does not cross a slash",
			previous: []string{"rancher/sub/x:1"},
			exclude:  []string{"docker.io/rancher/*"},
			want:     cleanup.Plan{Remove: []string{"docker.io/rancher/sub/x:1"}},
		},
		{
			name:     "first matching exclude pattern is recorded",
			previous: []string{"rancher/x:1"},
			exclude:  []string{"quay.io/*", "rancher/*", "docker.io/rancher/x:1"},
			want: cleanup.Plan{Kept: []cleanup.Kept{
				{Image: "docker.io/rancher/x:1", Rule: cleanup.RuleExclude, Match: "rancher/*"},
			}},
		},
		{
			name:     "in-current wins over retain, retain over exclude",
			previous: []string{"rancher/harvester-upgrade:v1", "rancher/harvester-upgrade:v2", "rancher/x:1"},
			current:  []string{"rancher/harvester-upgrade:v2"},
			retain:   []string{"rancher/harvester-upgrade"},
			exclude:  []string{"rancher/*"},
			want: cleanup.Plan{Kept: []cleanup.Kept{
				{Image: "docker.io/rancher/harvester-upgrade:v1", Rule: cleanup.RuleRetain, Match: "rancher/harvester-upgrade"},
				{Image: "docker.io/rancher/harvester-upgrade:v2", Rule: cleanup.RuleInCurrent, Match: "docker.io/rancher/harvester-upgrade:v2", Why: imagematch.WhySameTag},
				{Image: "docker.io/rancher/x:1", Rule: cleanup.RuleExclude, Match: "rancher/*"},
			}},
		},
		{
			name:     "remove list is sorted",
			previous: []string{"registry.suse.com/b:1", "rancher/z:1", "longhornio/a:1", "rancher/a:1"},
			want: cleanup.Plan{Remove: []string{
				"docker.io/longhornio/a:1",
				"docker.io/rancher/a:1",
				"docker.io/rancher/z:1",
				"registry.suse.com/b:1",
			}},
		},
		{
			name:    "empty previous list gives an empty plan",
			current: []string{"rancher/x:1"},
			retain:  cleanup.DefaultRetain(),
			want:    cleanup.Plan{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := cleanup.NewPolicy(tt.retain, tt.exclude)
			if err != nil {
				t.Fatalf("NewPolicy: %v", err)
			}
			got := cleanup.ComputePlan(imageList(t, tt.previous...), imageList(t, tt.current...), p)
			got.Keep = nil // TestComputePlanKeep
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ComputePlan() =\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

// With the remover's other-registry matching off, a host is part of the
// image's identity on both sides: the planner plans what the remover would
// then match only under its own host.
func TestComputePlanExactRegistries(t *testing.T) {
	p, err := cleanup.NewPolicy(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p = p.WithRules(imagematch.Rules{OtherRegistries: false})
	got := cleanup.ComputePlan(imageList(t, "docker.io/rancher/foo:v1", "rancher/x:1@"+testDigest), imageList(t, "registry.rancher.com/rancher/foo:v1", "quay.io/y:2@"+testDigest), p)
	want := cleanup.Plan{
		Remove: []string{"docker.io/rancher/foo:v1"},
		Kept:   []cleanup.Kept{{Image: "docker.io/rancher/x:1@" + testDigest, Rule: cleanup.RuleInCurrent, Match: "quay.io/y:2@" + testDigest, Why: imagematch.WhySameDigest}},
	}
	got.Keep = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ComputePlan() =\n  %+v\nwant\n  %+v", got, want)
	}
}

// The plan carries the whole current list, normalised, for the remover's
// own check.
func TestComputePlanKeep(t *testing.T) {
	p, err := cleanup.NewPolicy(cleanup.DefaultRetain(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := cleanup.ComputePlan(imageList(t, "rancher/a:1"), imageList(t, "rancher/b:2", "quay.io/c:3"), p)
	want := []string{"docker.io/rancher/b:2", "quay.io/c:3"}
	if !reflect.DeepEqual(got.Keep, want) {
		t.Errorf("Keep = %q, want %q", got.Keep, want)
	}
}

func TestNewPolicyRejects(t *testing.T) {
	tests := []struct {
		name            string
		retain, exclude []string
		// wantErr is a substring of the error, naming the bad entry.
		wantErr string
	}{
		{name: "retain entry with a tag", retain: []string{"rancher/ok", "rancher/x:1"}, wantErr: `"rancher/x:1"`},
		{name: "retain entry with a digest", retain: []string{"rancher/x@" + testDigest}, wantErr: `"rancher/x@sha256:`},
		{name: "invalid retain entry", retain: []string{"Rancher/X"}, wantErr: `"Rancher/X"`},
		{name: "empty retain entry", retain: []string{""}, wantErr: `retain entry ""`},
		{name: "empty exclude pattern", exclude: []string{"rancher/*", ""}, wantErr: "exclude pattern is empty"},
		{name: "malformed glob", exclude: []string{"["}, wantErr: `"["`},
		{name: "malformed glob after a match", exclude: []string{"rancher/[a-"}, wantErr: `"rancher/[a-"`},
		{name: "trailing backslash", exclude: []string{`rancher\`}, wantErr: `"rancher\\"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cleanup.NewPolicy(tt.retain, tt.exclude)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewPolicy() error = %v, want one containing %s", err, tt.wantErr)
			}
		})
	}
}

func TestDefaultPolicyConstructs(t *testing.T) {
	if _, err := cleanup.NewPolicy(cleanup.DefaultRetain(), nil); err != nil {
		t.Fatalf("NewPolicy(DefaultRetain(), nil): %v", err)
	}
	// DefaultOptions panics if its policy does not construct.
	_ = cleanup.DefaultOptions()
}
