// Command gateway is the edge gateway: the single entry point through
// which the mobile apps, the web app and the admin platform reach the API.
//
//	gateway [-config config.yaml]                 run
//	gateway validate -config NEW.yaml [-diff OLD.yaml]
//	gateway version
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
