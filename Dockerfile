# One image, both binaries: the controller (entrypoint) and image-remover,
# which the controller's removal Jobs run (the Deployment passes this same
# image as --remover-image).
#
#   docker build -t ghcr.io/upgrade-image-cleanup/upgrade-image-cleanup:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ... --push .

# The Go minor version; the image's patch release must be at least go.mod's
# `go` line (the golang images set GOTOOLCHAIN=local: no toolchain download).
ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so a source change does not download them again. Only the
# Go module proxy is needed (GOPROXY left at its default).
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Cross-compiled for the target platform on the build platform (no emulation).
# TARGETOS/TARGETARCH are empty without BuildKit: then the build platform's.
ARG TARGETOS TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/upgrade-image-cleanup ./cmd/image-remover

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/upgrade-image-cleanup /out/image-remover /usr/local/bin/
# The controller's user. The removal Jobs run image-remover as root
# (runAsUser 0 in the Job: the CRI socket is root-owned), so this is only
# the default.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/upgrade-image-cleanup"]
