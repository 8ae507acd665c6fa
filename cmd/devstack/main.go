// Command devstack runs the whole stack on loopback in one process: the
// reference user store on its seeded database, the development identity
// provider, and the gateway with the repository's config.yaml pointed at
// them. It prints the URLs and ready-to-paste curl commands with fresh
// tokens, and stops cleanly on Ctrl-C; a second Ctrl-C cuts the drain
// short.
//
//	go run ./cmd/devstack
package main

import (
	"context"
	"fmt"
	"net"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr, net.Listen); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
