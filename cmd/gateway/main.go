// Command gateway is the edge gateway: the single entry point through
// which the mobile apps, the web app and the admin platform reach the API.
//
//	gateway [serve] [-config config.yaml]         run
//	gateway validate -config NEW.yaml [-diff OLD.yaml]
//	gateway healthcheck [-config config.yaml]     ask the ops listener's /healthz
//	gateway version
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/bffgate/edge/gateway/telemetry"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// stopped holds the run's outcome once the drain is over: nil before.
	var stopped atomic.Pointer[error]
	onStopped = func(err error) { stopped.Store(&err) }
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
		// After the drain only the clean-up is cut short: the exit status
		// is the run's, as it would have been.
		if outcome := stopped.Load(); outcome != nil {
			logger.Warn("second signal after the drain: exiting without finishing the clean-up", "signal", sig.String())
			if *outcome != nil {
				os.Exit(1)
			}
			os.Exit(0)
		}
		logger.Warn("second signal: exiting without finishing the drain", "signal", sig.String())
		os.Exit(1)
	}()
	if err := run(ctx, os.Args, os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
