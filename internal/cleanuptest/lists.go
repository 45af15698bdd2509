package cleanuptest

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
)

// archiveDir is where the realistic lists are, beside this file. They are
// embedded so that the demo, a program run from anywhere, carries them, and
// so that the tests of every package read this one copy without a path
// relative to their own directory.
const archiveDir = "images-lists-archive"

//go:embed images-lists-archive
var archive embed.FS

// Lists returns a realistic pair of image lists (Harvester PreviousVersion's
// and a current one), laid out as the repo's images-lists-archive:
// <version>/image_list_all.txt. ServeRepo serves it as it is.
func Lists() fs.FS {
	sub, err := fs.Sub(archive, archiveDir)
	if err != nil {
		panic(err) // archiveDir is a valid path, embedded at build time
	}
	return sub
}

// ListFile is the path of version's list inside Lists.
func ListFile(version string) string { return path.Join(version, "image_list_all.txt") }

// ListLines returns the lines of version's list in Lists, as the file has
// them.
func ListLines(version string) ([]string, error) {
	b, err := fs.ReadFile(Lists(), ListFile(version))
	if err != nil {
		return nil, fmt.Errorf("read the %s list: %w", version, err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"), nil
}

// ReadList parses version's list from Lists with the parser the controller
// uses.
func ReadList(version string) ([]reference.Named, error) {
	name := ListFile(version)
	f, err := Lists().Open(name)
	if err != nil {
		return nil, fmt.Errorf("read the %s list: %w", version, err)
	}
	defer f.Close()
	return imagelist.Parse(f, name)
}

// RealisticLists are the lists of Lists by version, for a Repo to serve.
func RealisticLists() (map[string][]string, error) {
	out := map[string][]string{}
	for _, v := range []string{PreviousVersion, cleanup.CurrentVersion} {
		lines, err := ListLines(v)
		if err != nil {
			return nil, err
		}
		out[v] = lines
	}
	return out, nil
}

// ListsPlan is the plan of Lists, from PreviousVersion to the current
// version, under p: with cleanup.DefaultOptions().Policy, the plan the demo
// writes and `plan` previews.
func ListsPlan(p cleanup.Policy) (cleanup.Plan, error) {
	previous, err := ReadList(PreviousVersion)
	if err != nil {
		return cleanup.Plan{}, err
	}
	current, err := ReadList(cleanup.CurrentVersion)
	if err != nil {
		return cleanup.Plan{}, err
	}
	return cleanup.ComputePlan(previous, current, p), nil
}
