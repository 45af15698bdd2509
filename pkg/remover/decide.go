package remover

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// Image is a container image on the node as the runtime lists it; it holds
// only what the decision needs, so Decide can be tested without CRI types.
type Image struct {
	// ID is the runtime's image ID (sha256:…); it is what gets removed.
	ID string
	// RepoTags are the image's tags, in whatever form the runtime reports
	// them (full or short); every one of them goes when the image goes.
	RepoTags []string
	// RepoDigests are the image's name@digest references.
	RepoDigests []string
	// Size is the runtime's size of the image, counted as reclaimed when
	// the image is removed.
	Size uint64
	// Pinned is the runtime's flag for images it must keep (the sandbox
	// image, or one labelled io.cri-containerd.pinned).
	Pinned bool
}

// Container is a container on the node, in any state: a created or exited
// container still needs its image to start again.
type Container struct {
	ID string
	// ImageRef is CRI's image_ref: the image ID in containerd, a digested
	// reference in some other runtimes.
	ImageRef string
	// ImageID is CRI's image_id, which newer runtimes set to the image ID;
	// containerd may leave it empty.
	ImageID string
	// Image is what the container's spec names: an image ID or a reference.
	Image string
	// ImageVolumes are the images mounted into the container as volumes
	// (Kubernetes' image volume source, KEP-4639), as CRI's ContainerStatus
	// names them in mounts[].image: the image reference the kubelet pulled,
	// an ID or a digested reference. The container needs them as much as
	// its own image.
	ImageVolumes []string
}

// Sandbox is a pod sandbox on the node, in any state. CRI does not list
// sandboxes as containers, yet each runs an image: the sandbox ("pause")
// image it was started from.
type Sandbox struct {
	ID string
	// Image is the image the sandbox runs, as the runtime names it (a
	// reference such as registry.k8s.io/pause:3.6 in containerd); empty when
	// the runtime does not say, and then Decide takes it to be
	// Sandboxes.ConfiguredImage.
	Image string
}

// Sandboxes is what the runtime says about pod sandboxes.
type Sandboxes struct {
	// ConfiguredImage is the sandbox image the runtime starts new sandboxes
	// from (containerd's sandbox_image), as configured; empty when the
	// runtime does not say.
	ConfiguredImage string
	// List holds every pod sandbox on the node, in any state.
	List []Sandbox
}

// Options tune Decide and Run. The zero value is not the default: use
// DefaultOptions.
type Options struct {
	// MatchOtherRegistries also matches a planned reference to a node tag
	// with the same repository path and tag under another registry host,
	// because air-gapped installs pull the same images from a registry that
	// rewrites the host (docker.io/rancher/x:1 is registry.local:5000/rancher/x:1).
	MatchOtherRegistries bool
	// PruneDangling also removes untagged images that no container uses and
	// the runtime does not pin.
	PruneDangling bool
	// DryRun makes Run decide and report but remove nothing. Decide ignores it.
	DryRun bool
	// Keep is the current version's image list (the plan ConfigMap's
	// keep.txt). An image the plan matches is kept (report.ReasonInCurrentList)
	// when any of these references could name it under the same matching
	// rules, and a dangling image they could name is not pruned: the
	// planner already leaves such images out of the plan, and this makes
	// sure a stale or wrong plan cannot remove what the cluster runs next.
	// Nil (an older controller that sends no keep list): nothing is kept
	// for this reason.
	Keep []reference.Named
	// RemoveTimeout bounds each RemoveImage call; zero: only Run's context
	// does. A call that times out or finds the runtime unavailable is tried
	// once more, within Run's context. Decide ignores it.
	RemoveTimeout time.Duration
	// ParallelRemovals is how many RemoveImage calls Run keeps in flight;
	// zero or one: one at a time. Every safety decision is made, on one
	// listing, before the first call, so parallel calls change only how
	// fast the decided images go. Each removes a different image ID.
	// containerd serialises what two removals could share (its image
	// store's lock, one metadata transaction each) and garbage-collects the
	// content they free in one collection when they overlap; the removal
	// benchmark (BENCHMARKS.md) measured the default. Decide ignores it.
	ParallelRemovals int
	// ImageFsThreshold, when not zero, is disk-pressure mode: Run measures
	// the image filesystems first (ImageFsReporter) and, when their used
	// bytes are below it, lists and removes nothing (report.Result's
	// BelowThreshold). When they cannot be measured, Run removes nothing
	// and fails (see Run). Zero: Run removes whatever the usage. Decide
	// ignores it.
	ImageFsThreshold uint64
	// ImageFsWait bounds how long Run waits, after removing, for the
	// runtime to report image filesystem usage collected after the last
	// removal (containerd recomputes it periodically); zero: Run takes the
	// figure the runtime has, fresh or not. Decide ignores it.
	ImageFsWait time.Duration
	// Clock is the clock Run waits by for that figure; nil: the real one.
	// Decide ignores it.
	Clock clock.Clock
}

// DefaultRemoveTimeout is Main's default --remove-timeout: long enough
// for a runtime to delete a large image's snapshots on a slow disk, short
// enough to leave time for the other images within the default --timeout.
const DefaultRemoveTimeout = 2 * time.Minute

// DefaultParallelRemovals is Main's default --parallel-removals, chosen by
// the removal benchmark on a real containerd (BENCHMARKS.md, section 6):
// with 8 calls in flight the remover had its fastest run at 50, 200 and
// 500 images, and the fastest median at 50 and 500, where the time goes.
const DefaultParallelRemovals = 8

// MaxParallelRemovals bounds --parallel-removals: more calls in flight
// only queue inside the runtime, and each holds a connection stream.
const MaxParallelRemovals = 32

// DefaultOptions are the options Main's flags default to.
func DefaultOptions() Options {
	return Options{MatchOtherRegistries: true, RemoveTimeout: DefaultRemoveTimeout, ParallelRemovals: DefaultParallelRemovals, ImageFsWait: DefaultImageFsWait}
}

// rules are the matching rules the options ask for.
func (o Options) rules() imagematch.Rules {
	return imagematch.Rules{OtherRegistries: o.MatchOtherRegistries}
}

// Decisions is the outcome of Decide, sorted so that the same input always
// gives the same output whatever order the runtime listed things in.
type Decisions struct {
	// Images holds one decision per node image that at least one planned
	// reference matched, sorted by its first planned reference, then ID.
	Images []ImageDecision
	// NotPresent lists the planned references that matched no image, sorted.
	NotPresent []string
	// Dangling lists the untagged images to remove (with PruneDangling),
	// sorted by ID. Untagged images that are in use or pinned are not here.
	Dangling []Image
}

// ImageDecision says what to do with one node image the plan names.
type ImageDecision struct {
	Image Image
	// Refs are the planned references that matched the image, sorted.
	Refs []string
	// Remove is true when the image is safe to remove.
	Remove bool
	// Reason says why the image is kept; empty when Remove.
	Reason report.Reason
	// Detail says which container or pod sandbox, or which tag, keeps the
	// image.
	Detail string
}

// Decide matches the plan to the node's images and decides, for each image
// matched, whether removing it is safe. It is pure: no I/O, no clock.
//
// The safety rules are ours to check because CRI's RemoveImage refuses
// nothing (it removes images in use and pinned images alike) and removes
// every tag of the image it is given. An image is kept when the runtime pins
// it or it is the runtime's configured sandbox image (both report.ReasonPinned),
// when any container or pod sandbox (running or not) uses it, or a
// container mounts it as an image volume (report.ReasonInUse), when a reference of
// opts.Keep could name it (report.ReasonInCurrentList), or when it carries a tag
// that no matching plan entry names (report.ReasonStillNeeded), in that order of
// precedence. Each image is decided once, however many plan entries match
// it.
//
// Matching is imagematch's, which the planner shares: a planned tag matches
// a node tag that Rules.SameTag says is the same; a planned digest matches a
// node RepoDigest with that digest in the same repository. opts.Keep covers
// an image when imagematch.Index.Lookup finds any of its tags or RepoDigests;
// a dangling image it covers is not pruned either.
//
// A sandbox whose image the runtime does not report is taken to run the
// configured sandbox image. The configured sandbox image counts as pinned
// even when no sandbox runs it: the kubelet needs it to start the next pod,
// and containerd 1.7 and later pin it themselves (1.6 reports nothing
// pinned), so reporting it as pinned says the same on every version.
func Decide(plan []reference.Named, images []Image, containers []Container, sandboxes Sandboxes, opts Options) Decisions {
	rules := opts.rules()
	entries := parseNamed(plan)
	keep := imagematch.NewIndex(rules, parseNamed(opts.Keep))
	images = mergeByID(images)
	idx := newImageIndex(images)
	used := idx.usedBy(containers, sandboxes)
	configured := map[int]bool{}
	for _, i := range idx.lookup(sandboxes.ConfiguredImage) {
		configured[i] = true
	}

	var d Decisions
	matchedRefs := map[string]bool{}
	matchedImages := map[string]bool{}
	for i, img := range images {
		tags, badTags := parseRefs(img.RepoTags)
		digests, _ := parseRefs(img.RepoDigests)

		var refs []string
		covered := make([]bool, len(tags))
		for _, e := range entries {
			if !matches(rules, e, tags, digests) {
				continue
			}
			refs = append(refs, e.Full)
			for j, t := range tags {
				// Removing the image for e's sake may take tag t with it
				// only when e names that very tag.
				if rules.SameTag(e, t) {
					covered[j] = true
				}
			}
		}
		if len(refs) == 0 {
			continue
		}
		for _, r := range refs {
			matchedRefs[r] = true
		}
		matchedImages[img.ID] = true

		unplanned := slices.Clone(badTags)
		for j, t := range tags {
			if !covered[j] {
				unplanned = append(unplanned, t.Raw)
			}
		}
		dec := ImageDecision{Image: img, Refs: sortedUnique(refs)}
		kept := keptBy(keep, tags, digests)
		switch {
		case img.Pinned:
			dec.Reason, dec.Detail = report.ReasonPinned, "the runtime pins the image"
		case configured[i]:
			dec.Reason, dec.Detail = report.ReasonPinned, "the runtime's configured sandbox image ("+sandboxes.ConfiguredImage+"), which new pods need"
		case len(used[i]) > 0:
			dec.Reason, dec.Detail = report.ReasonInUse, describeUsers(used[i])
		case kept != nil:
			dec.Reason, dec.Detail = report.ReasonInCurrentList, "the new version ships "+kept.Ref.Full+" ("+string(kept.Why)+")"
		case len(unplanned) > 0:
			dec.Reason, dec.Detail = report.ReasonStillNeeded, "also tagged "+strings.Join(sortedUnique(unplanned), ", ")+", which the plan does not name"
		default:
			dec.Remove = true
		}
		d.Images = append(d.Images, dec)
	}

	for _, e := range entries {
		if !matchedRefs[e.Full] {
			d.NotPresent = append(d.NotPresent, e.Full)
		}
	}

	if opts.PruneDangling {
		for i, img := range images {
			if len(img.RepoTags) > 0 || matchedImages[img.ID] || img.Pinned || configured[i] || len(used[i]) > 0 {
				continue
			}
			if digests, _ := parseRefs(img.RepoDigests); keptBy(keep, nil, digests) != nil {
				continue
			}
			d.Dangling = append(d.Dangling, img)
		}
	}

	slices.SortFunc(d.Images, func(a, b ImageDecision) int {
		return cmp.Or(strings.Compare(a.Refs[0], b.Refs[0]), strings.Compare(a.Image.ID, b.Image.ID))
	})
	slices.Sort(d.NotPresent)
	d.NotPresent = slices.Compact(d.NotPresent)
	return d
}

// mergeByID folds images listed more than once under one ID into one, with
// the union of their names, pinned if any listing is pinned, and returns
// them sorted by ID. A runtime lists an image once; merging makes sure that
// if one does not, the image is still decided (and removed) once, knowing
// all its tags.
func mergeByID(images []Image) []Image {
	byID := map[string]int{}
	var out []Image
	for _, img := range images {
		i, ok := byID[img.ID]
		if !ok {
			img.RepoTags = slices.Clone(img.RepoTags)
			img.RepoDigests = slices.Clone(img.RepoDigests)
			byID[img.ID] = len(out)
			out = append(out, img)
			continue
		}
		m := &out[i]
		m.RepoTags = sortedUnique(append(m.RepoTags, img.RepoTags...))
		m.RepoDigests = sortedUnique(append(m.RepoDigests, img.RepoDigests...))
		m.Pinned = m.Pinned || img.Pinned
		m.Size = max(m.Size, img.Size)
	}
	slices.SortFunc(out, func(a, b Image) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// parseRefs parses a runtime's tags or digests; the ones that do not parse
// are returned raw, so a caller can count them as names the plan cannot cover.
func parseRefs(ss []string) (parsed []imagematch.Ref, bad []string) {
	for _, s := range ss {
		if p, ok := imagematch.Parse(s); ok {
			parsed = append(parsed, p)
		} else {
			bad = append(bad, s)
		}
	}
	return parsed, bad
}

// parseNamed splits planned or kept references for matching.
func parseNamed(refs []reference.Named) []imagematch.Ref {
	out := make([]imagematch.Ref, 0, len(refs))
	for _, n := range refs {
		// Re-normalise: a caller may hand in references not parsed the way
		// imagelist.Parse parses them.
		if p, ok := imagematch.Parse(n.String()); ok {
			out = append(out, p)
		}
	}
	return out
}

// matches reports whether the planned reference e names the image with these
// tags and digests. A reference with a digest names the image by digest, and
// only by digest: the digest is the stronger identity, and a tag may since
// have moved to another image.
func matches(rules imagematch.Rules, e imagematch.Ref, tags, digests []imagematch.Ref) bool {
	if e.Digest != "" {
		return slices.ContainsFunc(digests, func(d imagematch.Ref) bool { return rules.SameDigest(e, d) })
	}
	return slices.ContainsFunc(tags, func(t imagematch.Ref) bool { return rules.SameTag(e, t) })
}

// keptBy returns the reference of the keep list that could name the image
// with these tags and digests, or nil. Names are looked up in sorted order,
// so the reference named does not depend on the order the runtime lists
// them in.
func keptBy(keep *imagematch.Index, tags, digests []imagematch.Ref) *imagematch.Match {
	if keep.Len() == 0 {
		return nil
	}
	names := slices.Concat(tags, digests)
	slices.SortFunc(names, func(a, b imagematch.Ref) int { return strings.Compare(a.Full, b.Full) })
	for _, n := range names {
		if m, ok := keep.Lookup(n); ok {
			return &m
		}
	}
	return nil
}

// imageIndex finds images by the names a container, a sandbox or the
// runtime's configuration may give them.
type imageIndex struct {
	images []Image
	byKey  map[string][]int
}

func newImageIndex(images []Image) imageIndex {
	idx := imageIndex{images: images, byKey: map[string][]int{}}
	add := func(key string, i int) {
		if key != "" {
			idx.byKey[key] = append(idx.byKey[key], i)
		}
	}
	for i, img := range images {
		add(img.ID, i)
		add(strings.TrimPrefix(img.ID, "sha256:"), i)
		for _, s := range slices.Concat(img.RepoTags, img.RepoDigests) {
			add(s, i)
			if p, ok := imagematch.Parse(s); ok {
				add(p.Full, i)
			}
		}
	}
	return idx
}

// lookup returns the indexes of the images that s names: their ID (or a hex
// prefix of it), one of their tags or one of their digests, in short or full
// form. Matching errs on the side of a match: a false match only keeps an
// image.
func (idx imageIndex) lookup(s string) []int {
	if s == "" {
		return nil
	}
	hit := slices.Clone(idx.byKey[s])
	if p, ok := imagematch.Parse(s); ok {
		hit = append(hit, idx.byKey[p.Full]...)
		// name:tag@digest names the image by its tag and by its digest;
		// the runtime lists those apart (RepoTags, RepoDigests).
		if p.Tag != "" && p.Digest != "" {
			hit = append(hit, idx.byKey[p.Name+":"+p.Tag]...)
			hit = append(hit, idx.byKey[p.Name+"@"+p.Digest]...)
		}
	}
	if hex := strings.TrimPrefix(s, "sha256:"); isHex(hex) {
		for i, img := range idx.images {
			if strings.HasPrefix(strings.TrimPrefix(img.ID, "sha256:"), hex) {
				hit = append(hit, i)
			}
		}
	}
	slices.Sort(hit)
	return slices.Compact(hit)
}

// user is a container or a pod sandbox that uses an image.
type user struct {
	kind string // one of the kinds below
	id   string // the container's or the sandbox's ID
}

// Kinds of users, in the order a description names them (they sort so).
const (
	// kindContainer: a container runs the image.
	kindContainer = "container"
	// kindVolume: a container mounts the image as an image volume.
	kindVolume = "image volume"
	// kindSandbox: a pod sandbox runs the image.
	kindSandbox = "pod sandbox"
)

// usedBy returns, for each image (by index), the containers and pod
// sandboxes that use it, sorted (containers first). A container uses an
// image when its ImageRef, ImageID or Image names it (see lookup), and the
// images its ImageVolumes name; a sandbox
// uses the image its Image names, or the configured sandbox image when the
// runtime did not say.
func (idx imageIndex) usedBy(containers []Container, sandboxes Sandboxes) [][]user {
	used := make([][]user, len(idx.images))
	use := func(u user, names ...string) {
		hit := map[int]bool{}
		for _, s := range names {
			for _, i := range idx.lookup(s) {
				hit[i] = true
			}
		}
		for i := range hit {
			used[i] = append(used[i], u)
		}
	}
	for _, c := range containers {
		use(user{kindContainer, c.ID}, c.ImageRef, c.ImageID, c.Image)
		use(user{kindVolume, c.ID}, c.ImageVolumes...)
	}
	for _, sb := range sandboxes.List {
		image := sb.Image
		if image == "" {
			image = sandboxes.ConfiguredImage
		}
		use(user{kindSandbox, sb.ID}, image)
	}
	for i := range used {
		slices.SortFunc(used[i], func(a, b user) int {
			// "container" sorts before "image volume", then "pod sandbox".
			return cmp.Or(strings.Compare(a.kind, b.kind), strings.Compare(a.id, b.id))
		})
		used[i] = slices.Compact(used[i])
	}
	return used
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// describeUsers says who uses an image: "used by container c1", "mounted
// as an image volume by container c1", "used by pod sandboxes s1 and 2
// more", or, for a mix, "used by container c1 and 2 more containers or pod
// sandboxes".
func describeUsers(us []user) string {
	first := us[0]
	verb, noun := "used by ", first.kind
	switch first.kind {
	case kindVolume:
		verb, noun = "mounted as an image volume by ", kindContainer
	}
	if len(us) == 1 {
		return verb + noun + " " + first.id
	}
	mixed := slices.ContainsFunc(us, func(u user) bool { return u.kind != first.kind })
	if mixed {
		return fmt.Sprintf("%s%s %s and %d more containers or pod sandboxes", verb, noun, first.id, len(us)-1)
	}
	plural := noun + "s"
	if noun == kindSandbox {
		plural = "pod sandboxes"
	}
	return fmt.Sprintf("%s%s %s and %d more", verb, plural, first.id, len(us)-1)
}

func sortedUnique(ss []string) []string {
	ss = slices.Clone(ss)
	slices.Sort(ss)
	return slices.Compact(ss)
}
