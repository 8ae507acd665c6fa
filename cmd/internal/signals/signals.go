// Package signals gives the development binaries (devstack, userstore)
// the gateway's way of stopping: a first signal drains, a second cuts the
// drain short.
package signals

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Watch returns stopping, which ends at the first SIGINT, SIGTERM or
// SIGHUP (a graceful stop), and hurry, which ends at the second (the drain
// cut short: the way out for someone at a terminal who will not wait for
// it), its cause naming the signal. SIGHUP too: closing the terminal (or
// an ssh session) sends it, and its default action kills the process
// without the deferred clean-up, leaving a temporary database behind.
// release stops listening for them.
func Watch(ctx context.Context) (stopping, hurry context.Context, release func()) {
	stopping, stop := context.WithCancel(ctx)
	hurry, cutShort := context.WithCancelCause(context.WithoutCancel(ctx))
	received := make(chan os.Signal, 2)
	signal.Notify(received, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-received:
			stop()
		case <-done:
			return
		}
		select {
		case sig := <-received:
			cutShort(fmt.Errorf("second signal (%v)", sig))
		case <-done:
		}
	})
	return stopping, hurry, func() {
		signal.Stop(received)
		close(done)
		wg.Wait()
		stop()
		cutShort(context.Canceled)
	}
}
