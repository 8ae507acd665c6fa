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
	"io"
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
	// logs is the run's log queue once it has one (daemon.Options.OnLogs).
	var logs atomic.Pointer[runLogs]
	onLogs = func(out io.Writer, flush func()) { logs.Store(&runLogs{out, flush}) }
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
			warnSecondSignal(logs.Load(), "second signal after the drain: exiting without finishing the clean-up", sig)
			if *outcome != nil {
				os.Exit(1)
			}
			os.Exit(0)
		}
		warnSecondSignal(logs.Load(), "second signal: exiting without finishing the drain", sig)
		os.Exit(1)
	}()
	if err := run(ctx, os.Args, os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// runLogs is the run's log output and the flush of its queues.
type runLogs struct {
	out   io.Writer
	flush func()
}

// warnSecondSignal logs msg for the second signal, after the lines the
// run's queues hold, and writes them all before the process exits (os.Exit
// would lose them: the access log writes every 100 ms). It waits a second
// at most for stdout: the signal is the way out of a process whose log
// pipeline stopped taking lines, and must not wait for it. Before the run
// has its queues (logs nil) the line is written to stdout directly.
func warnSecondSignal(logs *runLogs, msg string, sig os.Signal) {
	if logs != nil {
		// At info whatever log.level says, as before the queues existed.
		logger, _ := telemetry.NewLogger(logs.out, "info")
		logger.Warn(msg, "signal", sig.String())
		logs.flush()
		return
	}
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
