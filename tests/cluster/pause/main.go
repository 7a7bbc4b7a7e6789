// Command pause is the Pod sandbox's process (containerd's sandbox_image),
// like Kubernetes' own pause: it holds the Pod's namespaces, reaps orphans
// when it is PID 1 of a shared PID namespace, and exits on SIGINT/SIGTERM.
// Built statically so the image is this one file.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
