package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image, field by field what the Dockerfile it replaced built:
//
//	FROM gcr.io/distroless/static-debian12:nonroot
//	COPY ... /usr/local/bin/
//	USER 65532:65532
//	ENTRYPOINT ["/usr/local/bin/upgrade-image-cleanup"]
//
// but FROM scratch: one layer, the two binaries and their directories.
// What distroless/static added and this image leaves out, and why nothing
// here needs it:
//   - CA certificates (/etc/ssl/certs): the controller reaches the API
//     server with the service account's CA (in-cluster config), fetches the
//     repo's lists over plain HTTP from the repo pod's address, and the
//     remover talks to the CRI socket; no TLS against a public CA.
//   - /etc/passwd, /etc/group (root, nonroot 65532, nobody): the user is
//     numeric, which the runtime and Kubernetes' runAsNonRoot check take as
//     is; nothing calls os/user on a path that needs a name (klog does only
//     when logging to files, and copes with an unknown user).
//   - tzdata: both log in UTC and load no location.
//   - /tmp and /home/nonroot: nothing writes files; the remover's
//     termination message goes to /dev/termination-log, which the kubelet
//     mounts.
//   - no shell in either image.
const (
	binDir     = "usr/local/bin"
	entrypoint = "/" + binDir + "/upgrade-image-cleanup"
	// nonRoot is distroless's nonroot user. The removal Jobs run the
	// remover as root (runAsUser 0: the CRI socket is root-owned), so this
	// is only the default, the controller's.
	nonRoot = "65532:65532"
	// defaultPath is distroless's, so an exec by name behaves the same.
	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// imageSpec is everything the image is a function of: same spec, same
// digest.
type imageSpec struct {
	Platform v1.Platform
	// Binaries maps a file name under /usr/local/bin to its content.
	Binaries map[string][]byte
	// Created is the config's creation time and every tar entry's mtime.
	Created time.Time
	// Labels are the config's labels (source, revision).
	Labels map[string]string
}

// buildImage assembles the image: OCI media types, one gzip layer, no
// history but the one entry for that layer.
func buildImage(spec imageSpec) (v1.Image, error) {
	created := spec.Created.UTC().Truncate(time.Second)
	layerTar, err := layerTar(spec.Binaries, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "hack/build-image",
			Comment:   "the controller and image-remover, static",
		},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: created}
	cfg.OS = spec.Platform.OS
	cfg.Architecture = spec.Platform.Architecture
	cfg.Variant = spec.Platform.Variant
	cfg.Config = v1.Config{
		Entrypoint: []string{entrypoint},
		User:       nonRoot,
		Env:        []string{defaultPath},
		WorkingDir: "/",
		Labels:     spec.Labels,
	}
	return mutate.ConfigFile(img, cfg)
}

// layerTar is the layer's uncompressed tar: the directories down to
// /usr/local/bin and the binaries, in sorted order, owned by 0:0, with fixed
// modes and one mtime, in USTAR format (no atime, ctime or PAX records).
func layerTar(binaries map[string][]byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(hdr *tar.Header, body []byte) error {
		hdr.Uid, hdr.Gid = 0, 0
		hdr.ModTime = mtime
		hdr.Format = tar.FormatUSTAR
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar entry %s: %w", hdr.Name, err)
		}
		_, err := tw.Write(body)
		return err
	}
	for _, dir := range []string{"usr/", "usr/local/", binDir + "/"} {
		if err := write(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}, nil); err != nil {
			return nil, err
		}
	}
	for _, name := range sortedKeys(binaries) {
		if name == "" || strings.ContainsRune(name, '/') {
			return nil, fmt.Errorf("binary name %q: want a file name", name)
		}
		body := binaries[name]
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: binDir + "/" + name, Mode: 0o755, Size: int64(len(body))}
		if err := write(hdr, body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeLayout writes img as the only image of an OCI image layout at dir,
// named ref in the index (org.opencontainers.image.ref.name, and
// io.containerd.image.name, which `ctr images import` reads). dir must be
// absent, empty, or an image layout this wrote before (it is replaced).
func writeLayout(dir, ref string, img v1.Image) error {
	entries, err := os.ReadDir(dir)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return err
	case len(entries) == 0:
	default:
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return fmt.Errorf("%s is not empty and holds no OCI image layout; not overwriting it", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
		"io.containerd.image.name":          ref,
	}))
}
