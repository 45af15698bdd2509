package remover

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultEndpoint is containerd's CRI socket, as mounted into the remover's
// container from the host.
const DefaultEndpoint = "unix:///run/containerd/containerd.sock"

// maxMsgSize bounds one CRI response. gRPC's default of 4 MiB is too little
// for ListImages on a node with many images; kubelet uses the same 16 MiB.
const maxMsgSize = 16 << 20

// SocketPath returns the socket file of a CRI endpoint given as
// unix:///path or as a bare absolute path. Other transports are refused:
// the remover runs on the node, next to the runtime's socket.
func SocketPath(endpoint string) (string, error) {
	path := endpoint
	if scheme, rest, ok := strings.Cut(endpoint, "://"); ok {
		if scheme != "unix" {
			return "", fmt.Errorf("endpoint %q: only unix sockets are supported", endpoint)
		}
		path = rest
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("endpoint %q: the socket path must be absolute (unix:///run/containerd/containerd.sock or /run/containerd/containerd.sock)", endpoint)
	}
	return filepath.Clean(path), nil
}

// CRI is a Runtime over the Container Runtime Interface, on a unix socket.
type CRI struct {
	socket  string
	conn    *grpc.ClientConn
	images  runtimeapi.ImageServiceClient
	runtime runtimeapi.RuntimeServiceClient
	version *runtimeapi.VersionResponse
}

var _ Runtime = (*CRI)(nil)

// DialCRI connects to the CRI runtime at endpoint (see SocketPath) and checks
// that it answers a Version call within connectTimeout. gRPC connects lazily,
// so without the check an unreachable runtime would only show as a failed
// list, later and less clearly; the error here names the socket.
func DialCRI(ctx context.Context, endpoint string, connectTimeout time.Duration) (*CRI, error) {
	socket, err := SocketPath(endpoint)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("CRI client for %s: %w", socket, err)
	}
	c := &CRI{
		socket:  socket,
		conn:    conn,
		images:  runtimeapi.NewImageServiceClient(conn),
		runtime: runtimeapi.NewRuntimeServiceClient(conn),
	}
	vctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	// Not WaitForReady: a missing or refusing socket fails at once with the
	// dial error, which says more than a timeout would.
	c.version, err = c.runtime.Version(vctx, &runtimeapi.VersionRequest{})
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("container runtime at %s is unreachable: %w", socket, err)
	}
	return c, nil
}

// Socket is the socket file the client talks to.
func (c *CRI) Socket() string { return c.socket }

// Version is the runtime's name and version, as its Version call answered
// (containerd v1.7.35).
func (c *CRI) Version() string {
	return c.version.GetRuntimeName() + " " + c.version.GetRuntimeVersion()
}

// Close closes the connection.
func (c *CRI) Close() error { return c.conn.Close() }

// ListImages lists every image the runtime has.
func (c *CRI) ListImages(ctx context.Context) ([]Image, error) {
	resp, err := c.images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, fmt.Errorf("CRI ListImages on %s: %w", c.socket, err)
	}
	out := make([]Image, 0, len(resp.GetImages()))
	for _, img := range resp.GetImages() {
		out = append(out, Image{
			ID:          img.GetId(),
			RepoTags:    img.GetRepoTags(),
			RepoDigests: img.GetRepoDigests(),
			Size:        imageSize(img),
			Pinned:      img.GetPinned(),
		})
	}
	return out, nil
}

// imageSize is the image's size in bytes. The getter is GetSize in the
// cri-api go.mod requires (generated with google.golang.org/protobuf) but
// GetSize_ in v0.31.5 (generated with gogo protobuf), which Harvester
// builds with: asking for either through an interface compiles with both.
func imageSize(img *runtimeapi.Image) uint64 {
	switch m := any(img).(type) {
	case interface{ GetSize() uint64 }:
		return m.GetSize()
	case interface{ GetSize_() uint64 }:
		return m.GetSize_()
	}
	return 0
}

// ListContainers lists every container in every state: the request carries
// no filter, because an exited or created container still needs its image.
//
// It also asks each container's ContainerStatus (one call per container)
// for its image volumes (KEP-4639): ListContainers does not report mounts,
// and an image mounted as a volume is in use just as much. Mount.image is
// in CRI since Kubernetes 1.31; a runtime that does not know it reports no
// such mounts. A container removed since it was listed (NotFound) is left
// out, as it needs no image any more.
func (c *CRI) ListContainers(ctx context.Context) ([]Container, error) {
	resp, err := c.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("CRI ListContainers on %s: %w", c.socket, err)
	}
	out := make([]Container, 0, len(resp.GetContainers()))
	for _, ctr := range resp.GetContainers() {
		st, err := c.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr.GetId()})
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			// Not skipped: the container may mount an image that nothing
			// else keeps.
			return nil, fmt.Errorf("CRI ContainerStatus of %s on %s: %w", ctr.GetId(), c.socket, err)
		}
		var volumes []string
		for _, m := range st.GetStatus().GetMounts() {
			if image := m.GetImage().GetImage(); image != "" {
				volumes = append(volumes, image)
			}
		}
		out = append(out, Container{
			ID:           ctr.GetId(),
			ImageRef:     ctr.GetImageRef(),
			ImageID:      ctr.GetImageId(),
			Image:        ctr.GetImage().GetImage(),
			ImageVolumes: volumes,
		})
	}
	return out, nil
}

// ListSandboxes lists every pod sandbox in every state (the request carries
// no filter), with the image each runs, and the configured sandbox image.
//
// CRI has no field for either: both come from the runtime's verbose,
// runtime-specific info. containerd (1.6 and 1.7) answers a verbose Status
// with its CRI plugin's configuration as JSON in Info["config"], where
// "sandboxImage" is sandbox_image; and a verbose PodSandboxStatus with JSON
// in Info["info"], where "image" is the reference the sandbox was started
// from. containerd 2 moved sandbox_image out of that configuration (and pins
// the image instead). What a runtime does not report is left empty, and
// Decide then takes a sandbox to run the configured sandbox image.
func (c *CRI) ListSandboxes(ctx context.Context) (Sandboxes, error) {
	st, err := c.runtime.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		return Sandboxes{}, fmt.Errorf("CRI Status on %s: %w", c.socket, err)
	}
	out := Sandboxes{ConfiguredImage: jsonField(st.GetInfo(), "config", "sandboxImage")}
	resp, err := c.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return Sandboxes{}, fmt.Errorf("CRI ListPodSandbox on %s: %w", c.socket, err)
	}
	out.List = make([]Sandbox, 0, len(resp.GetItems()))
	for _, sb := range resp.GetItems() {
		st, err := c.runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sb.GetId(), Verbose: true})
		if status.Code(err) == codes.NotFound {
			// Removed since it was listed: it needs no image any more.
			continue
		}
		if err != nil {
			// Not skipped: the sandbox may run an image that nothing else
			// keeps, such as the previous version's pause image.
			return Sandboxes{}, fmt.Errorf("CRI PodSandboxStatus of %s on %s: %w", sb.GetId(), c.socket, err)
		}
		out.List = append(out.List, Sandbox{ID: sb.GetId(), Image: jsonField(st.GetInfo(), "info", "image")})
	}
	return out, nil
}

// jsonField returns the string field of the JSON object in info[key], or ""
// when there is no such key, no such field, or it is not a JSON string: the
// verbose info is free-form and differs between runtimes and versions.
func jsonField(info map[string]string, key, field string) string {
	raw, ok := info[key]
	if !ok {
		return ""
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &obj); err != nil {
		return ""
	}
	var v string
	if err := json.Unmarshal(obj[field], &v); err != nil {
		return ""
	}
	return v
}

// RemoveImage removes the image with this ID. The runtime removes it with
// every tag it has and does not check whether it is in use or pinned: the
// caller must have (Decide does).
func (c *CRI) RemoveImage(ctx context.Context, id string) error {
	if _, err := c.images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: id}}); err != nil {
		return fmt.Errorf("CRI RemoveImage: %w", err)
	}
	return nil
}

var _ ImageFsReporter = (*CRI)(nil)

// ImageFsInfo measures the node's image filesystems with CRI ImageFsInfo:
// the sum of UsedBytes over the image filesystems it lists (container
// filesystems, which a runtime may list apart, are not images), collected
// at the oldest of their timestamps. A runtime that answers Unimplemented,
// or lists no image filesystem, does not measure them
// (ErrImageFsUnsupported).
//
// containerd's CRI plugin answers from figures it recomputes every
// stats_collect_period (10 s by default), from the snapshots only (not the
// content store's compressed layers): the figure can lag a removal by that
// long, which its timestamp says.
func (c *CRI) ImageFsInfo(ctx context.Context) (ImageFsUsage, error) {
	resp, err := c.images.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if status.Code(err) == codes.Unimplemented {
		return ImageFsUsage{}, fmt.Errorf("CRI ImageFsInfo on %s: %w: %w", c.socket, ErrImageFsUnsupported, err)
	}
	if err != nil {
		return ImageFsUsage{}, fmt.Errorf("CRI ImageFsInfo on %s: %w", c.socket, err)
	}
	u, ok := imageFsUsage(resp.GetImageFilesystems())
	if !ok {
		return ImageFsUsage{}, fmt.Errorf("CRI ImageFsInfo on %s lists no image filesystem: %w", c.socket, ErrImageFsUnsupported)
	}
	return u, nil
}

// imageFsUsage sums the used bytes of the image filesystems ImageFsInfo
// listed, collected at the oldest of their timestamps: the figure is as old
// as its oldest part. A filesystem without a timestamp (CRI requires one)
// makes the figure's time unknown. ok is false when none is listed.
func imageFsUsage(fss []*runtimeapi.FilesystemUsage) (u ImageFsUsage, ok bool) {
	var oldest int64
	for i, fs := range fss {
		u.UsedBytes += fs.GetUsedBytes().GetValue()
		if ts := fs.GetTimestamp(); i == 0 || ts < oldest {
			oldest = ts
		}
	}
	if oldest > 0 {
		u.CollectedAt = time.Unix(0, oldest)
	}
	return u, len(fss) > 0
}
