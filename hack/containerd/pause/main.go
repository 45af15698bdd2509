//go:build containerd

// Command pause is the sandbox ("pause") image's only program in the
// containerd test (pkg/remover/containerd_test.go): it holds the pod
// sandbox's namespaces until it is told to stop, as registry.k8s.io/pause
// does. The test builds it statically (CGO_ENABLED=0), so the image needs no
// libc.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
