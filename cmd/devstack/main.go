// Command devstack runs the whole stack on loopback in one process: the
// reference user store on its seeded database, the development identity
// provider, and the gateway with the repository's config.yaml pointed at
// them. It prints the URLs and ready-to-paste curl commands with fresh
// tokens, and stops cleanly on Ctrl-C.
//
//	go run ./cmd/devstack
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// SIGHUP too: closing the terminal (or an ssh session) sends it, and
	// its default action kills the process without the deferred clean-up,
	// leaving the seeded temporary database (some 14 MB) behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
