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
	"time"

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
		// After the drain only the clean-up is cut short: the exit status
		// is the run's, as it would have been.
		if outcome := stopped.Load(); outcome != nil {
			warnSecondSignal("second signal after the drain: exiting without finishing the clean-up", sig)
			if *outcome != nil {
				os.Exit(1)
			}
			os.Exit(0)
		}
		warnSecondSignal("second signal: exiting without finishing the drain", sig)
		os.Exit(1)
	}()
	if err := run(ctx, os.Args, os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// warnSecondSignal logs msg for the second signal, waiting a second at most
// for stdout: the signal is the way out of a process whose log pipeline
// stopped taking lines, and must not wait for it.
func warnSecondSignal(msg string, sig os.Signal) {
	logged := make(chan struct{})
	go func() {
		logger, _ := telemetry.NewLogger(os.Stdout, "info")
		logger.Warn(msg, "signal", sig.String())
		close(logged)
	}()
	select {
	case <-logged:
	case <-time.After(time.Second):
	}
}
