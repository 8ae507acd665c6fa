package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// server is one process the harness started: a contender or an upstream.
// Its output is drained all the time (the gateway's access log is on, as in
// production, and must never block on a full pipe); the last few KiB are
// kept for error messages.
type server struct {
	name   string
	cmd    *exec.Cmd
	out    *tail
	exited chan struct{}
	err    error
}

// pid is the server's process id. Under taskset it is the server's own:
// taskset execs it in place.
func (s *server) pid() int { return s.cmd.Process.Pid }

// group is the server as a measured group (the process alone).
func (s *server) group() group { return group{s.pid()} }

// startServer runs cmd and reads its stdout as JSON lines until ready
// accepts one (the "listening" line that gives the address), then keeps
// draining. It fails when the process exits or says nothing ready in time.
func startServer(ctx context.Context, name string, cmd *exec.Cmd, ready func(line map[string]any) bool, timeout time.Duration) (*server, map[string]any, error) {
	s := &server{name: name, cmd: cmd, out: newTail(16 << 10), exited: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stderr = s.out
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	found := make(chan map[string]any, 1)
	go func() {
		r := bufio.NewReaderSize(stdout, 64<<10)
		matched := ready == nil
		for !matched {
			line, err := r.ReadBytes('\n')
			_, _ = s.out.Write(line)
			if err != nil {
				break
			}
			var m map[string]any
			if json.Unmarshal(line, &m) == nil && ready(m) {
				found <- m
				matched = true
			}
		}
		_, _ = io.Copy(s.out, r)
		if err := s.cmd.Wait(); err != nil {
			s.err = err
		}
		close(s.exited)
	}()
	if ready == nil {
		return s, nil, nil
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case m := <-found:
		return s, m, nil
	case <-s.exited:
		return nil, nil, fmt.Errorf("%s exited before it was ready (%v); its output ends:\n%s", name, s.err, s.out)
	case <-timer.C:
		s.stop()
		return nil, nil, fmt.Errorf("%s was not ready within %s; its output ends:\n%s", name, timeout, s.out)
	case <-ctx.Done():
		s.stop()
		return nil, nil, ctx.Err()
	}
}

// alive reports whether the process still runs.
func (s *server) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// stop ends the process: SIGTERM, then SIGKILL after five seconds.
func (s *server) stop() {
	if s == nil || s.cmd.Process == nil || !s.alive() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// awaitHTTP polls url until it answers 200.
func awaitHTTP(ctx context.Context, url string, timeout time.Duration, alive func() bool) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		if alive != nil && !alive() {
			return errors.New("the process exited")
		}
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				client.CloseIdleConnections()
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready within %s: %v", url, timeout, last)
}

// tail is an io.Writer that keeps the last n bytes written.
type tail struct {
	mu  sync.Mutex
	buf []byte
	n   int
}

func newTail(n int) *tail { return &tail{n: n, buf: make([]byte, 0, 2*n)} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(p) >= t.n {
		t.buf = append(t.buf[:0], p[len(p)-t.n:]...)
		return len(p), nil
	}
	if len(t.buf)+len(p) > cap(t.buf) {
		keep := t.n - len(p)
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-keep:]...)
	}
	t.buf = append(t.buf, p...)
	return len(p), nil
}

// String is the kept output, at most n bytes.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > t.n {
		b = b[len(b)-t.n:]
	}
	return string(b)
}
