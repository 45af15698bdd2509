// Module image-build builds the product's OCI image with
// go-containerregistry, for hack/build-image. It is a nested module so the
// root go.mod, which Harvester imports, gains no requirement, and the root
// module's `go test ./...` ignores it.
module example.invalid/image-build

go 1.25.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
