package e2e

import (
	"errors"
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
