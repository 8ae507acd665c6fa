// Package signals gives the development binaries (devstack, userstore)
// the gateway's way of stopping: a first signal drains, a second cuts the
// drain short, and either way they return only once their servers'
// handlers have.
package signals

import (
	"context"
	"fmt"
	"net"
	"net/http"
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

// TrackConns makes srv count its connections, from their accept to the
// end of the goroutine that serves them, and returns wait, which returns
// once none is left. Call it before Serve, and wait after Serve has
// returned: Close (a drain cut short) does not wait for the handlers
// still running, and what they use, the user store's database, must
// outlive them. srv's own ConnState, if any, is still called.
func TrackConns(srv *http.Server) (wait func()) {
	var conns sync.WaitGroup
	next := srv.ConnState
	srv.ConnState = func(c net.Conn, state http.ConnState) {
		// StateNew comes on Serve's goroutine before it returns, so no
		// Add comes after wait; StateClosed and StateHijacked come once
		// each, at the end.
		switch state {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			defer conns.Done()
		}
		if next != nil {
			next(c, state)
		}
	}
	return conns.Wait
}
