// Command nsproxy forwards TCP between two network namespaces: it listens on
// -listen inside -listen-netns and connects each accepted connection to
// -connect inside -connect-netns (either namespace defaults to the caller's).
// The test cluster's node lives in a namespace of its own; this is how the
// host reaches its API server through a loopback port, and nothing else of
// the host is exposed to it or it to the host.
//
//	nsproxy -listen 127.0.0.1:26543 -connect 127.0.0.1:443 -connect-netns /run/netns/cmk-1234abcd
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// original is the namespace the process started in, to return to after each
// excursion.
var original *os.File

// inNetns runs fn on an OS thread that is switched into the namespace at
// path (the caller's own when path is empty). Sockets keep the namespace
// they were created in, so what fn opens works from any thread afterwards.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	target, err := os.Open(path)
	if err != nil {
		return err
	}
	defer target.Close()
	runtime.LockOSThread()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering %s: %w", path, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(original.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: Go ends it with this goroutine rather than
		// reuse a thread in the wrong namespace.
		return fmt.Errorf("returning from %s: %w", path, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

func main() {
	listen := flag.String("listen", "", "address to listen on (required)")
	listenNetns := flag.String("listen-netns", "", "network namespace file to listen in (default: this one)")
	connect := flag.String("connect", "", "address to connect to (required)")
	connectNetns := flag.String("connect-netns", "", "network namespace file to connect in (default: this one)")
	flag.Parse()
	if *listen == "" || *connect == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	var err error
	if original, err = os.Open("/proc/thread-self/ns/net"); err != nil {
		die(err)
	}
	var ln net.Listener
	if err := inNetns(*listenNetns, func() (e error) { ln, e = net.Listen("tcp", *listen); return }); err != nil {
		die(err)
	}
	fmt.Fprintf(os.Stderr, "nsproxy: %s (%s) -> %s (%s)\n", ln.Addr(), orSelf(*listenNetns), *connect, orSelf(*connectNetns))
	for {
		in, err := ln.Accept()
		if err != nil {
			die(err)
		}
		go func() {
			defer in.Close()
			var out net.Conn
			err := inNetns(*connectNetns, func() (e error) {
				out, e = net.DialTimeout("tcp", *connect, 10*time.Second)
				return
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, "nsproxy:", err)
				return
			}
			defer out.Close()
			var wg sync.WaitGroup
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				if tcp, ok := dst.(*net.TCPConn); ok {
					_ = tcp.CloseWrite()
				}
			}
			go pipe(out, in)
			go pipe(in, out)
			wg.Wait()
		}()
	}
}

func orSelf(netns string) string {
	if netns == "" {
		return "this namespace"
	}
	return netns
}

func die(err error) {
	fmt.Fprintln(os.Stderr, "nsproxy:", err)
	os.Exit(1)
}
