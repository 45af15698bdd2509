// Command image-remover removes, on one node, the images of a cleanup plan
// that are safe to remove: the standalone image's remover, which each
// cleanup Job runs. It is remover.Main as a program; flags, outputs and
// exit codes are documented there.
package main

import (
	"os"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
)

func main() {
	os.Exit(remover.RunAsProcess(os.Args[1:]))
}
