// Package fakecri is a scripted CRI runtime for tests: a real gRPC server on
// a unix socket that serves ImageService and RuntimeService from lists set by
// the test, and records every RemoveImage call. Like containerd, RemoveImage
// removes the whole image, every tag of it, whichever name it is given, and
// refuses nothing unless the test tells it to fail.
//
// Pod sandboxes (SetSandboxes) and the verbose Status info (SetStatusInfo)
// are scripted too; ContainerdStatusInfo and ContainerdSandboxInfo build
// verbose info in the shape containerd 1.6 answers with. ContainerStatus
// answers with the mounts set by SetMounts, and ScriptRemove scripts a slow
// or unreliable RemoveImage.
//
// ImageFsInfo answers Unimplemented, as from a runtime that does not
// measure, until SetImageFsUsage sets the used bytes of its one image
// filesystem; RemoveImage then takes each removed image's size off them.
// By default it answers the figure as it is, timestamped now (by the clock
// SetClock sets); LagImageFs makes it answer an older figure, as containerd
// does between two recomputations.
package fakecri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// Server is a running fake runtime. Its methods are safe for concurrent use.
type Server struct {
	// Socket is the path of the unix socket the server listens on.
	Socket string

	mu          sync.Mutex
	images      []*runtimeapi.Image
	containers  []*runtimeapi.Container
	failRemove  map[string]error
	removeCalls []string
	filters     []*runtimeapi.ContainerFilter
	// removeScript holds, per image name, the calls still scripted.
	removeScript map[string][]RemoveCall

	mounts         map[string][]*runtimeapi.Mount
	failCtrStatus  map[string]error
	ctrStatusCalls []string

	statusInfo        map[string]string
	sandboxes         []Sandbox
	failStatus        map[string]error
	sandboxFilters    []*runtimeapi.PodSandboxFilter
	sandboxStatusCall []string

	clock   clock.PassiveClock
	imageFs *imageFs
	// failImageFs is ImageFsInfo's error; nil: none.
	failImageFs  error
	imageFsCalls int
}

// imageFs is the image filesystem ImageFsInfo reports.
type imageFs struct {
	// used is the bytes used now.
	used uint64
	// lag: ImageFsInfo answers reported and reportedAt, the figure as of
	// the last refresh, instead of used and now.
	lag               bool
	reported          uint64
	reportedAt        time.Time
	refreshEvery      int
	callsSinceRefresh int
}

// imageFsMountpoint is the image filesystem's mount point in ImageFsInfo,
// containerd's default.
const imageFsMountpoint = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"

// Sandbox is a scripted pod sandbox: what ListPodSandbox lists, and the
// Info a verbose PodSandboxStatus of it answers with (nil: none).
type Sandbox struct {
	Sandbox *runtimeapi.PodSandbox
	Info    map[string]string
}

// ContainerdStatusInfo is the verbose Status info of containerd 1.6 whose
// sandbox_image is sandboxImage: the CRI plugin's configuration as JSON in
// "config" (trimmed to a few of its fields), and the Go version in "golang".
func ContainerdStatusInfo(sandboxImage string) map[string]string {
	config, err := json.Marshal(map[string]any{
		"containerd":          map[string]any{"snapshotter": "overlayfs", "defaultRuntimeName": "runc"},
		"sandboxImage":        sandboxImage,
		"restrictOOMScoreAdj": false,
		"rootDir":             "/var/lib/containerd/io.containerd.grpc.v1.cri",
	})
	if err != nil {
		panic(err)
	}
	return map[string]string{"config": string(config), "golang": `"go1.19.8"`}
}

// ContainerdSandboxInfo is the verbose PodSandboxStatus info of a running
// containerd 1.6 sandbox started from image: JSON in "info" (trimmed to a few
// of its fields), where "image" is the reference as configured.
func ContainerdSandboxInfo(image string) map[string]string {
	info, err := json.Marshal(map[string]any{
		"pid":           1234,
		"processStatus": "running",
		"image":         image,
		"snapshotter":   "overlayfs",
		"runtimeType":   "io.containerd.runc.v2",
	})
	if err != nil {
		panic(err)
	}
	return map[string]string{"info": string(info)}
}

// Start serves images and containers on a fresh unix socket until the test
// ends. The socket lives in a short temporary folder because unix socket
// paths are limited to 108 bytes and t.TempDir() can be longer.
func Start(t testing.TB, images []*runtimeapi.Image, containers []*runtimeapi.Container) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "cri")
	if err != nil {
		t.Fatalf("fakecri: temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &Server{
		Socket:        filepath.Join(dir, "cri.sock"),
		failRemove:    map[string]error{},
		failStatus:    map[string]error{},
		removeScript:  map[string][]RemoveCall{},
		mounts:        map[string][]*runtimeapi.Mount{},
		failCtrStatus: map[string]error{},
		clock:         clock.RealClock{},
	}
	for _, img := range images {
		s.images = append(s.images, clone(img))
	}
	for _, c := range containers {
		s.containers = append(s.containers, clone(c))
	}
	lis, err := net.Listen("unix", s.Socket)
	if err != nil {
		t.Fatalf("fakecri: listen on %s: %v", s.Socket, err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterImageServiceServer(srv, &imageService{s: s})
	runtimeapi.RegisterRuntimeServiceServer(srv, &runtimeService{s: s})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("fakecri: serve: %v", err)
		}
	})
	return s
}

// Endpoint is the socket as a CRI endpoint: unix:///path.
func (s *Server) Endpoint() string { return "unix://" + s.Socket }

// FailRemove makes RemoveImage of the image with this ID fail with err
// (wrapped in gRPC status Unknown unless it already is a status) and leave
// the image in place.
func (s *Server) FailRemove(id string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRemove[id] = err
}

// RemoveCall scripts one RemoveImage call: what the runtime does and what
// the caller hears.
type RemoveCall struct {
	// Hang makes the call answer only when the caller gives up (its deadline
	// passes or it cancels), as a runtime stuck on a slow disk does.
	Hang bool
	// Err is the answer: returned as it is if it is a gRPC status, else
	// wrapped in Unknown; nil answers success. A caller whose deadline has
	// passed hears DeadlineExceeded whatever the answer.
	Err error
	// Removes removes the image (every tag of it) before answering, even
	// when the answer is an error: the runtime did the work, but the caller
	// did not hear it. Without it the image stays, even when the answer is
	// success.
	Removes bool
}

// ScriptRemove scripts the next RemoveImage calls naming this image (by the
// name the caller gives, normally the ID), one RemoveCall per call, in
// order; later calls behave as usual (see FailRemove). It replaces any
// script left for that name.
func (s *Server) ScriptRemove(name string, calls ...RemoveCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeScript[name] = slices.Clone(calls)
}

// SetMounts sets the mounts ContainerStatus reports for the container with
// this ID (by default none); image volumes are mounts with Image set.
func (s *Server) SetMounts(containerID string, mounts ...*runtimeapi.Mount) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ms []*runtimeapi.Mount
	for _, m := range mounts {
		ms = append(ms, clone(m))
	}
	s.mounts[containerID] = ms
}

// FailContainerStatus makes ContainerStatus of the container with this ID
// fail with err (wrapped in gRPC status Unknown unless it already is a
// status); a nil err undoes it. The container may be one ListContainers
// does not list.
func (s *Server) FailContainerStatus(id string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.failCtrStatus, id)
		return
	}
	s.failCtrStatus[id] = err
}

// ContainerStatusCalls returns the container ID of each ContainerStatus
// call, in order, with " verbose" appended for a verbose call.
func (s *Server) ContainerStatusCalls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ctrStatusCalls)
}

// SetStatusInfo sets the Info a verbose Status call answers with (by
// default none). A call that is not verbose gets no Info, as from containerd.
func (s *Server) SetStatusInfo(info map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statusInfo = maps.Clone(info)
}

// SetSandboxes sets the pod sandboxes the runtime has (by default none).
func (s *Server) SetSandboxes(sandboxes ...Sandbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sandboxes = nil
	for _, sb := range sandboxes {
		s.sandboxes = append(s.sandboxes, Sandbox{Sandbox: clone(sb.Sandbox), Info: maps.Clone(sb.Info)})
	}
}

// FailSandboxStatus makes PodSandboxStatus of the sandbox with this ID fail
// with err (wrapped in gRPC status Unknown unless it already is a status).
// The sandbox may be one ListPodSandbox does not list.
func (s *Server) FailSandboxStatus(id string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failStatus[id] = err
}

// SandboxFilters returns the filter of each ListPodSandbox call, in order
// (nil for a call without a filter).
func (s *Server) SandboxFilters() []*runtimeapi.PodSandboxFilter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sandboxFilters)
}

// SandboxStatusCalls returns the sandbox ID of each PodSandboxStatus call,
// in order, with " verbose" appended for a verbose call.
func (s *Server) SandboxStatusCalls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sandboxStatusCall)
}

// SetClock sets the clock ImageFsInfo's timestamps come from (by default
// the real one).
func (s *Server) SetClock(c clock.PassiveClock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = c
}

// SetImageFsUsage makes ImageFsInfo answer with one image filesystem using
// used bytes, and refreshes the figure it answers with when lagging. Each
// image RemoveImage removes then takes its size off them.
func (s *Server) SetImageFsUsage(used uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.imageFs == nil {
		s.imageFs = &imageFs{}
	}
	s.imageFs.used = used
	s.refreshImageFs()
}

// LagImageFs makes ImageFsInfo answer the figure as of its last refresh
// (the used bytes and the time then), as containerd does between two
// recomputations (every stats_collect_period): from now on, until
// RefreshImageFs or SetImageFsUsage, or the refreshEvery-th ImageFsInfo
// call after the last refresh, which refreshes it before answering (0:
// no call does), standing in for the period. It takes a refresh now.
// SetImageFsUsage must have been called.
func (s *Server) LagImageFs(refreshEvery int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.imageFs == nil {
		panic("fakecri: LagImageFs before SetImageFsUsage")
	}
	s.imageFs.lag, s.imageFs.refreshEvery = true, refreshEvery
	s.refreshImageFs()
}

// RefreshImageFs makes a lagging ImageFsInfo answer the used bytes as they
// are now, timestamped now. SetImageFsUsage must have been called.
func (s *Server) RefreshImageFs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.imageFs == nil {
		panic("fakecri: RefreshImageFs before SetImageFsUsage")
	}
	s.refreshImageFs()
}

// refreshImageFs takes the figure a lagging ImageFsInfo answers; s.mu must
// be held.
func (s *Server) refreshImageFs() {
	fs := s.imageFs
	fs.reported, fs.reportedAt, fs.callsSinceRefresh = fs.used, s.clock.Now(), 0
}

// ImageFsUsed returns the bytes the image filesystem uses now, whatever a
// lagging ImageFsInfo answers.
func (s *Server) ImageFsUsed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.imageFs == nil {
		return 0
	}
	return s.imageFs.used
}

// FailImageFs makes ImageFsInfo fail with err (wrapped in gRPC status
// Unknown unless it already is a status); nil undoes it.
func (s *Server) FailImageFs(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failImageFs = err
}

// ImageFsInfoCalls returns how many ImageFsInfo calls were made.
func (s *Server) ImageFsInfoCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.imageFsCalls
}

// RemoveCalls returns the image named by each RemoveImage call, in order,
// including calls that failed.
func (s *Server) RemoveCalls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.removeCalls)
}

// ContainerFilters returns the filter of each ListContainers call, in order
// (nil for a call without a filter).
func (s *Server) ContainerFilters() []*runtimeapi.ContainerFilter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.filters)
}

// ImageIDs returns the IDs of the images still present, in listing order.
func (s *Server) ImageIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, img := range s.images {
		ids = append(ids, img.GetId())
	}
	return ids
}

type imageService struct {
	runtimeapi.UnimplementedImageServiceServer
	s *Server
}

func (i imageService) ListImages(_ context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	if req.GetFilter() != nil {
		return nil, status.Error(codes.Unimplemented, "fakecri: image filters are not implemented")
	}
	i.s.mu.Lock()
	defer i.s.mu.Unlock()
	resp := &runtimeapi.ListImagesResponse{}
	for _, img := range i.s.images {
		resp.Images = append(resp.Images, clone(img))
	}
	return resp, nil
}

func (i imageService) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	name := req.GetImage().GetImage()
	i.s.mu.Lock()
	if script := i.s.removeScript[name]; len(script) > 0 {
		call := script[0]
		i.s.removeScript[name] = script[1:]
		i.s.removeCalls = append(i.s.removeCalls, name)
		if call.Removes {
			i.s.deleteImage(name)
		}
		i.s.mu.Unlock()
		if call.Hang {
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		if call.Err != nil {
			return nil, asStatus(call.Err)
		}
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	defer i.s.mu.Unlock()
	i.s.removeCalls = append(i.s.removeCalls, name)
	idx := slices.IndexFunc(i.s.images, func(img *runtimeapi.Image) bool { return names(img, name) })
	if idx < 0 {
		// containerd answers success for an image it does not have.
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if err := i.s.failRemove[i.s.images[idx].GetId()]; err != nil {
		return nil, asStatus(err)
	}
	i.s.deleteImage(name)
	return &runtimeapi.RemoveImageResponse{}, nil
}

func (i imageService) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	i.s.mu.Lock()
	defer i.s.mu.Unlock()
	i.s.imageFsCalls++
	if i.s.failImageFs != nil {
		return nil, asStatus(i.s.failImageFs)
	}
	fs := i.s.imageFs
	if fs == nil {
		return nil, status.Error(codes.Unimplemented, "method ImageFsInfo not implemented")
	}
	used, at := fs.used, i.s.clock.Now()
	if fs.lag {
		fs.callsSinceRefresh++
		if fs.refreshEvery > 0 && fs.callsSinceRefresh >= fs.refreshEvery {
			i.s.refreshImageFs()
		}
		used, at = fs.reported, fs.reportedAt
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{{
		Timestamp:  at.UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: imageFsMountpoint},
		UsedBytes:  &runtimeapi.UInt64Value{Value: used},
		InodesUsed: &runtimeapi.UInt64Value{Value: 1},
	}}}, nil
}

// names reports whether name names img: its ID, a tag or a repo digest.
func names(img *runtimeapi.Image, name string) bool {
	return img.GetId() == name || slices.Contains(img.GetRepoTags(), name) || slices.Contains(img.GetRepoDigests(), name)
}

// deleteImage removes the image that name names, if any, and takes its size
// off the image filesystem's usage; s.mu must be held.
func (s *Server) deleteImage(name string) {
	s.images = slices.DeleteFunc(s.images, func(img *runtimeapi.Image) bool {
		if !names(img, name) {
			return false
		}
		if s.imageFs != nil {
			s.imageFs.used -= min(s.imageFs.used, size(img))
		}
		return true
	})
}

type runtimeService struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	s *Server
}

func (r runtimeService) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "fakecri", RuntimeVersion: "v0.0.0", RuntimeApiVersion: "v1"}, nil
}

func (r runtimeService) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.s.filters = append(r.s.filters, req.GetFilter())
	if req.GetFilter() != nil {
		return nil, status.Error(codes.Unimplemented, "fakecri: container filters are not implemented")
	}
	resp := &runtimeapi.ListContainersResponse{}
	for _, c := range r.s.containers {
		resp.Containers = append(resp.Containers, clone(c))
	}
	return resp, nil
}

func (r runtimeService) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	call := req.GetContainerId()
	if req.GetVerbose() {
		call += " verbose"
	}
	r.s.ctrStatusCalls = append(r.s.ctrStatusCalls, call)
	if err := r.s.failCtrStatus[req.GetContainerId()]; err != nil {
		return nil, asStatus(err)
	}
	idx := slices.IndexFunc(r.s.containers, func(c *runtimeapi.Container) bool { return c.GetId() == req.GetContainerId() })
	if idx < 0 {
		return nil, status.Errorf(codes.NotFound, "an error occurred when try to find container %q: not found", req.GetContainerId())
	}
	c := r.s.containers[idx]
	st := &runtimeapi.ContainerStatus{
		Id:        c.GetId(),
		State:     c.GetState(),
		CreatedAt: c.GetCreatedAt(),
		ImageRef:  c.GetImageRef(),
		ImageId:   c.GetImageId(),
	}
	if c.GetMetadata() != nil {
		st.Metadata = clone(c.GetMetadata())
	}
	if c.GetImage() != nil {
		st.Image = clone(c.GetImage())
	}
	for _, m := range r.s.mounts[c.GetId()] {
		st.Mounts = append(st.Mounts, clone(m))
	}
	return &runtimeapi.ContainerStatusResponse{Status: st}, nil
}

func (r runtimeService) Status(_ context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	resp := &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}}
	if req.GetVerbose() {
		resp.Info = maps.Clone(r.s.statusInfo)
	}
	return resp, nil
}

func (r runtimeService) ListPodSandbox(_ context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	r.s.sandboxFilters = append(r.s.sandboxFilters, req.GetFilter())
	if req.GetFilter() != nil {
		return nil, status.Error(codes.Unimplemented, "fakecri: sandbox filters are not implemented")
	}
	resp := &runtimeapi.ListPodSandboxResponse{}
	for _, sb := range r.s.sandboxes {
		resp.Items = append(resp.Items, clone(sb.Sandbox))
	}
	return resp, nil
}

func (r runtimeService) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	call := req.GetPodSandboxId()
	if req.GetVerbose() {
		call += " verbose"
	}
	r.s.sandboxStatusCall = append(r.s.sandboxStatusCall, call)
	if err := r.s.failStatus[req.GetPodSandboxId()]; err != nil {
		return nil, asStatus(err)
	}
	idx := slices.IndexFunc(r.s.sandboxes, func(sb Sandbox) bool { return sb.Sandbox.GetId() == req.GetPodSandboxId() })
	if idx < 0 {
		return nil, status.Errorf(codes.NotFound, "an error occurred when try to find sandbox %q: not found", req.GetPodSandboxId())
	}
	sb := r.s.sandboxes[idx]
	resp := &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{
		Id:        sb.Sandbox.GetId(),
		Metadata:  clone(sb.Sandbox.GetMetadata()),
		State:     sb.Sandbox.GetState(),
		CreatedAt: sb.Sandbox.GetCreatedAt(),
	}}
	if req.GetVerbose() {
		resp.Info = maps.Clone(sb.Info)
	}
	return resp, nil
}

// asStatus returns err as a gRPC status error: as it is if it is one, else
// wrapped in Unknown.
func asStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unknown, err.Error())
}

// clone deep-copies a CRI message so the fake never shares one with its
// callers. It goes through JSON rather than proto.Clone because cri-api's
// messages are gogo-generated up to v0.31 (no ProtoReflect) and
// protobuf-go-generated after, and the fake serves both ends of the range.
func clone[T any](m *T) *T {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("fakecri: clone %T: %v", m, err)) // CRI messages are plain data
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic(fmt.Sprintf("fakecri: clone %T: %v", m, err))
	}
	return out
}

// size is img's size: Size_ in cri-api up to v0.31 (gogo protobuf), Size
// after.
func size(img *runtimeapi.Image) uint64 {
	switch m := any(img).(type) {
	case interface{ GetSize() uint64 }:
		return m.GetSize()
	case interface{ GetSize_() uint64 }:
		return m.GetSize_()
	}
	return 0
}

// WithSize sets img's size and returns it. The field is Size_ in cri-api up
// to v0.31 (gogo protobuf) and Size after; tests build images with this so
// they compile at both ends of the supported range.
func WithSize(img *runtimeapi.Image, size uint64) *runtimeapi.Image {
	b, err := json.Marshal(map[string]uint64{"size": size})
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(b, img); err != nil {
		panic(fmt.Sprintf("fakecri: set size of %s: %v", img.GetId(), err))
	}
	return img
}
