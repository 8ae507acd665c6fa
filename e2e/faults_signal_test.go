package e2e

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A second SIGTERM (or Ctrl-C) during the drain ends the process at once,
// exit 1, with a line that says so: the first waits for the requests in
// flight, as it must, and an operator at a terminal needs a way out of a
// long drain. It used to be ignored.
func TestFaultsSecondSignalCutsTheDrainShort(t *testing.T) {
	const stuck = 8 * time.Second
	r := fltStartBinary(t, map[string]string{
		"GATEWAY_SERVER__DRAINTIMEOUT":   "30s",
		"GATEWAY_SERVER__REQUESTTIMEOUT": "10s",
		fltOpKey("SEARCH", "TIMEOUT"):    "10s",
	})
	answers := r.holdSearch(t, stuck)

	r.gw.Signal(t, syscall.SIGTERM)
	eventually(t, 5*time.Second, func() error {
		if !strings.Contains(r.gw.Logs(), `"msg":"shutting down"`) {
			return errors.New("no shutting down line")
		}
		return nil
	})
	r.gw.Signal(t, syscall.SIGTERM)
	exitErr, _ := r.exited(t, stuck)
	var ee *exec.ExitError
	if !errors.As(exitErr, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1\nlogs:\n%s", exitErr, r.gw.Logs())
	}
	if !strings.Contains(r.gw.Logs(), `"msg":"second signal: exiting without finishing the drain","signal":"terminated"`) {
		t.Errorf("no line for the second signal:\n%s", r.gw.Logs())
	}
	// The process went before the request it cut short was answered.
	if a := <-answers; a.err == nil {
		t.Errorf("the request in flight got %d from a process that exited", a.status)
	}
}

// A second signal after the drain, while the clean-up still runs (here
// the trace exporter's last flush, to a collector that takes the
// connection and never answers, bounded at 3 s), ends the process at once
// with the run's own status: exit 0 after a clean stop, with a line that
// says only the clean-up was cut short. It used to exit 1 and claim the
// drain was not finished.
func TestFaultsSecondSignalAfterTheDrainKeepsTheRunsStatus(t *testing.T) {
	collector, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { collector.Close() })
	go func() {
		for {
			conn, err := collector.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
			go func() { _, _ = io.Copy(io.Discard, conn) }()
		}
	}()
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, Env: map[string]string{
		"GATEWAY_TRACING__ENABLED":     "true",
		"GATEWAY_TRACING__ENDPOINT":    collector.Addr().String(),
		"GATEWAY_TRACING__INSECURE":    "true",
		"GATEWAY_TRACING__SAMPLERATIO": "1",
	}})
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(idp.UserToken(t))).Data(t, nil)

	gw.Signal(t, syscall.SIGTERM)
	eventually(t, 10*time.Second, func() error {
		if !strings.Contains(gw.Logs(), `"msg":"stopped"`) {
			return errors.New("no stopped line")
		}
		return nil
	})
	gw.Signal(t, syscall.SIGTERM)
	select {
	case <-gw.stopped:
	case <-time.After(10 * time.Second):
		t.Fatalf("the gateway did not exit\nlogs:\n%s", gw.Logs())
	}
	if gw.exitErr != nil {
		t.Fatalf("exit %v, want 0\nlogs:\n%s", gw.exitErr, gw.Logs())
	}
	if !strings.Contains(gw.Logs(), `"msg":"second signal after the drain: exiting without finishing the clean-up","signal":"terminated"`) {
		t.Errorf("no line for the second signal, or the wrong one:\n%s", gw.Logs())
	}
}

// A second signal writes the log lines still queued before the process
// exits. The access log writes in batches (every 100 ms): the line of a
// request answered just before the signal was lost to os.Exit, as was
// whatever the event log's queue still held, and the second signal's own
// line went around the queue, straight to stdout.
func TestFaultsSecondSignalWritesTheQueuedLogLines(t *testing.T) {
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, Env: map[string]string{
		// Still serving after the first signal.
		"GATEWAY_SERVER__SHUTDOWNDELAY": "20s",
	}})
	user := idp.UserToken(t)
	gw.Signal(t, syscall.SIGTERM)
	eventually(t, 5*time.Second, func() error {
		if !strings.Contains(gw.Logs(), `"msg":"shutting down"`) {
			return errors.New("no shutting down line")
		}
		return nil
	})
	const id = "answered-just-before-the-second-signal"
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), Header("X-Request-Id", id)).Data(t, nil)
	gw.Signal(t, syscall.SIGTERM)
	select {
	case <-gw.stopped:
	case <-time.After(10 * time.Second):
		t.Fatalf("the gateway did not exit\nlogs:\n%s", gw.Logs())
	}
	var ee *exec.ExitError
	if !errors.As(gw.exitErr, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1\nlogs:\n%s", gw.exitErr, gw.Logs())
	}
	if !strings.Contains(gw.Logs(), `"request_id":"`+id+`"`) {
		t.Errorf("the access line of the last request answered is lost:\n%s", gw.Logs())
	}
	if !strings.Contains(gw.Logs(), `"msg":"second signal: exiting without finishing the drain","signal":"terminated"`) {
		t.Errorf("no line for the second signal:\n%s", gw.Logs())
	}
}
