// Package signalstest checks, from a test, the stop that signals.Watch
// gives a binary.
package signalstest

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CutShort sends p a SIGINT, waits for its "shutting down" log line, sends
// a second, and checks that the process then exits at once with status 1
// and the line want, which says the drain was cut short. exited receives
// the process's Wait result; it gets it back, for the test's clean-up.
// log returns what the process has written to its log so far.
func CutShort(t testing.TB, p *os.Process, exited chan error, log func() string, want string) {
	t.Helper()
	err := InterruptTwice(t, p, exited, log)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit %v, want status 1\n%s", err, log())
	}
	if !strings.Contains(log(), want) {
		t.Errorf("no line %q:\n%s", want, log())
	}
}

// CutShortInProcess is CutShort for a run in the test's own process: the
// two interrupts go to the test, and the run's error, which done receives,
// must say the drain was cut short.
func CutShortInProcess(t testing.TB, done chan error, log func() string) {
	t.Helper()
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := InterruptTwice(t, self, done, log); err == nil ||
		err.Error() != "second signal (interrupt): exiting without finishing the drain" {
		t.Errorf("run returned %v, want the drain cut short (exit 1)", err)
	}
}

// InterruptTwice sends p a SIGINT, waits for its "shutting down" log line,
// sends a second, and returns what exited then receives, within 30 s: the
// process's Wait result, or the error of a run in the test's own process
// (p is then the test's). exited gets it back, for the test's clean-up.
// log returns what has been written to the log so far.
func InterruptTwice(t testing.TB, p *os.Process, exited chan error, log func() string) error {
	t.Helper()
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(log(), `"msg":"shutting down"`); {
		if time.Now().After(deadline) {
			t.Fatalf("no shutting down line:\n%s", log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after the second signal:\n%s", log())
		return nil
	}
}

// HoldRequest opens a connection to addr and sends it the start of a
// POST to path, its body cut short, so that the server holds a request
// being read: a drain waits for it. The connection closes with the test.
func HoldRequest(t testing.TB, addr, path string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: "+addr+"\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":"); err != nil {
		t.Fatal(err)
	}
}
