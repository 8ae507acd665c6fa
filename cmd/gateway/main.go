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

	"github.com/bffgate/edge/gateway/telemetry"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		cancel() // the graceful shutdown
		// A second signal cuts the drain short: the way out for someone
		// at a terminal who will not wait for it (Kubernetes, Docker and
		// systemd send one, then SIGKILL).
		sig := <-signals
		logger, _ := telemetry.NewLogger(os.Stdout, "info")
		logger.Warn("second signal: exiting without finishing the drain", "signal", sig.String())
		os.Exit(1)
	}()
	if err := run(ctx, os.Args, os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
