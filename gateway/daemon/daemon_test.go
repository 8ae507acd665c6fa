package daemon_test

// A gateway that loses a listener while it runs drains like one asked to
// stop, but Run returns an error naming the listener, so the process
// exits 1 and a supervisor restarts it; a stop asked through ctx still
// returns nil.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bffgate/edge/gateway/daemon"
	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
)

// errListenerLost is what a failing listener's Accept returns. It is none
// of the errors the accept loops take for something else: not a net.Error
// (net/http retries a Temporary one, fasthttp a Timeout one), not io.EOF
// and without "use of closed network connection" (fasthttp takes those
// for a listener closed on purpose and returns nil), and not out of file
// descriptors (the gateway's public listener waits and retries those).
var errListenerLost = errors.New("listener lost (injected by the test)")

// failingListener is a real TCP listener that, once failed, answers every
// Accept with the error it failed with. An Accept already waiting when it
// fails returns once the next connection comes, closing that connection.
type failingListener struct {
	net.Listener
	failed    atomic.Pointer[error]
	closeOnce sync.Once
	closed    chan struct{} // closed with the listener
}

func (l *failingListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func (l *failingListener) Accept() (net.Conn, error) {
	if err := l.failed.Load(); err != nil {
		return nil, *err
	}
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if err := l.failed.Load(); err != nil {
		c.Close()
		return nil, *err
	}
	return c, nil
}

// fail makes the listener's next Accept return failWith, and connects to it
// so that the Accept the server is waiting in returns.
func (l *failingListener) fail(t *testing.T, failWith error) {
	t.Helper()
	l.failed.Store(&failWith)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("waking the listener's Accept: %v", err)
	}
	c.Close()
}

// logBuffer is Run's Stdout: JSON lines, written from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines whose msg is msg.
func (l *logBuffer) lines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(l.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// gateway is one run of daemon.Run, serving real requests.
type gateway struct {
	public, ops *failingListener
	logs        *logBuffer
	idp         *devidp.Provider
	client      *http.Client
	cancel      context.CancelFunc
	done        chan error // Run's result
}

// startGateway runs the repository's config.yaml, pointed by environment
// overrides at a development identity provider (its JWKS served on
// loopback) and the reference user store, both in this process, with both
// listeners on free loopback ports. It returns once the gateway is ready.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	return startGatewayWith(t, nil, daemon.Options{})
}

// startGatewayWith is startGateway with more environment overrides, and
// o's CutShort, OnStopped and Stdout (else the gateway's logs).
func startGatewayWith(t *testing.T, more map[string]string, o daemon.Options) *gateway {
	t.Helper()
	idpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + idpLn.Addr().String()
	idp, err := devidp.New(devidp.Options{Issuer: issuer, Audience: "edge-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	idpSrv := httptest.NewUnstartedServer(idp.Handler())
	idpSrv.Listener.Close()
	idpSrv.Listener = idpLn
	idpSrv.Start()
	t.Cleanup(idpSrv.Close)

	st, err := refstore.Open(context.Background(), refstore.Options{Users: 50})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	stSrv := httptest.NewServer(st.Handler(refstore.HandlerOptions{}))
	t.Cleanup(stSrv.Close)

	data, err := os.ReadFile(filepath.Join("..", "..", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"GATEWAY_SERVER__LISTEN":                "127.0.0.1:0",
		"GATEWAY_OPS__LISTEN":                   "127.0.0.1:0",
		"GATEWAY_AUTH__JWKSURLS":                issuer + "/.well-known/jwks.json",
		"GATEWAY_AUTH__ISSUER":                  issuer,
		"GATEWAY_UPSTREAMS__USERSTORE__BASEURL": stSrv.URL,
	}
	for k, v := range more {
		env[k] = v
	}

	g := &gateway{logs: &logBuffer{}, idp: idp, done: make(chan error, 1),
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}}
	t.Cleanup(g.client.CloseIdleConnections)
	// Both listeners come from Listen; OnListening says which is which.
	var (
		mu     sync.Mutex
		opened = map[string]*failingListener{}
	)
	listen := func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		fl := &failingListener{Listener: ln, closed: make(chan struct{})}
		mu.Lock()
		opened[ln.Addr().String()] = fl
		mu.Unlock()
		return fl, nil
	}
	var stdout io.Writer = g.logs
	if o.Stdout != nil {
		stdout = o.Stdout
	}
	listening := make(chan [2]net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() {
		g.done <- daemon.Run(ctx, daemon.Options{
			ConfigPath: path,
			Getenv:     func(k string) string { return env[k] },
			Stdout:     stdout,
			Listen:     listen,
			CutShort:   o.CutShort,
			OnStopped:  o.OnStopped,
			OnListening: func(public, ops net.Addr) {
				listening <- [2]net.Addr{public, ops}
			},
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-g.done:
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return after its context ended\nlogs:\n%s", g.logs)
		}
	})
	select {
	case a := <-listening:
		mu.Lock()
		g.public, g.ops = opened[a[0].String()], opened[a[1].String()]
		mu.Unlock()
	case err := <-g.done:
		g.done <- err // for the cleanup
		t.Fatalf("Run returned before listening: %v\nlogs:\n%s", err, g.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("the gateway did not listen in time\nlogs:\n%s", g.logs)
	}
	if g.public == nil || g.ops == nil {
		t.Fatalf("the listeners OnListening named are not the ones Listen opened")
	}
	// Ready: the first key fetch is done, so a token is verified.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if g.get(g.ops, "/readyz", "") == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not become ready\nlogs:\n%s", g.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return g
}

// get sends GET path to ln (with token, when not empty) and returns the
// status, or 0 when there was no answer.
func (g *gateway) get(ln net.Listener, path, token string) int {
	req, err := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+path, nil)
	if err != nil {
		return 0
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// serveOne checks that both listeners answer a real request: the demo
// user's profile on the public one (through the identity provider's keys
// and the user store), /healthz on the ops one.
func (g *gateway) serveOne(t *testing.T) {
	t.Helper()
	tok, err := g.idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID, Roles: []string{"user"}})
	if err != nil {
		t.Fatal(err)
	}
	if s := g.get(g.public, "/api/v1/users/me", tok); s != http.StatusOK {
		t.Fatalf("GET /api/v1/users/me: status %d, want 200\nlogs:\n%s", s, g.logs)
	}
	if s := g.get(g.ops, "/healthz", ""); s != http.StatusOK {
		t.Fatalf("GET /healthz: status %d, want 200\nlogs:\n%s", s, g.logs)
	}
}

// result waits a few seconds for Run to return.
func (g *gateway) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-g.done:
		g.done <- err // for the cleanup
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("Run did not return within 5s\nlogs:\n%s", g.logs)
		return nil
	}
}

func TestListenerLostEndsRunWithError(t *testing.T) {
	for _, tc := range []struct {
		name string
		ln   func(*gateway) *failingListener
	}{
		{"public listener", func(g *gateway) *failingListener { return g.public }},
		{"ops listener", func(g *gateway) *failingListener { return g.ops }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t)
			g.serveOne(t)
			tc.ln(g).fail(t, errListenerLost)

			err := g.result(t)
			if err == nil {
				t.Fatalf("Run returned nil after the %s failed: the process would exit 0\nlogs:\n%s", tc.name, g.logs)
			}
			if !errors.Is(err, errListenerLost) || !strings.HasPrefix(err.Error(), tc.name+": ") {
				t.Fatalf("Run returned %q; want the accept error, prefixed %q", err, tc.name+": ")
			}
			failed := g.logs.lines("listener failed")
			if len(failed) != 1 || failed[0]["level"] != "ERROR" || failed[0]["error"] != err.Error() {
				t.Fatalf("listener failed lines: %v; want one ERROR with %q\nlogs:\n%s", failed, err, g.logs)
			}
			if stopped := g.logs.lines("stopped"); len(stopped) != 1 || stopped[0]["drained"] != true {
				t.Fatalf("stopped lines: %v; want one, drained\nlogs:\n%s", stopped, g.logs)
			}
		})
	}
}

func TestStopByContextReturnsNil(t *testing.T) {
	g := startGateway(t)
	g.serveOne(t)
	g.cancel()

	if err := g.result(t); err != nil {
		t.Fatalf("Run returned %v after its context ended; want nil\nlogs:\n%s", err, g.logs)
	}
	if failed := g.logs.lines("listener failed"); len(failed) != 0 {
		t.Fatalf("listener failed logged on a normal stop: %v", failed)
	}
	if stopped := g.logs.lines("stopped"); len(stopped) != 1 || stopped[0]["drained"] != true {
		t.Fatalf("stopped lines: %v; want one, drained\nlogs:\n%s", stopped, g.logs)
	}
}

// fasthttp takes a listener that says it is closed (net.ErrClosed, io.EOF)
// for one closed on purpose and returns nil: the public listener closed by
// anything but the drain must still end the run with an error, or the
// gateway would stay up, ready by its probes, with nothing accepting.
func TestPublicListenerClosedUnaskedEndsRunWithError(t *testing.T) {
	for _, closed := range []error{net.ErrClosed, io.EOF} {
		t.Run(closed.Error(), func(t *testing.T) {
			g := startGateway(t)
			g.serveOne(t)
			g.public.fail(t, closed)

			err := g.result(t)
			if err == nil || !strings.HasPrefix(err.Error(), "public listener: ") {
				t.Fatalf("Run returned %v after the public listener said %q; want an error naming the public listener\nlogs:\n%s", err, closed, g.logs)
			}
			if stopped := g.logs.lines("stopped"); len(stopped) != 1 {
				t.Fatalf("stopped lines: %v; want one\nlogs:\n%s", stopped, g.logs)
			}
		})
	}
}

// A drain cut short ends at once: every connection is closed, one whose
// client is still sending a request included, and Run returns without
// waiting out a drain of minutes.
func TestCutShortClosesEveryConnection(t *testing.T) {
	cut := make(chan struct{})
	g := startGatewayWith(t, map[string]string{
		"GATEWAY_SERVER__READTIMEOUT": "10m", "GATEWAY_SERVER__DRAINTIMEOUT": "10m",
	}, daemon.Options{CutShort: cut})
	g.serveOne(t)
	held, err := net.Dial("tcp", g.public.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := io.WriteString(held, "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":"); err != nil {
		t.Fatal(err)
	}
	g.serveOne(t) // answered on another connection: the first is held
	g.cutShort(t, cut)
	// Closed already: the deadline only keeps a failing test from hanging.
	_ = held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := held.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read on the held connection after Run returned: %d, %v; want it closed", n, err)
	}
	if cut := g.logs.lines("drain cut short: closing every connection"); len(cut) != 1 || cut[0]["level"] != "WARN" {
		t.Errorf("drain cut short lines: %v; want one WARN\nlogs:\n%s", cut, g.logs)
	}
	if stopped := g.logs.lines("stopped"); len(stopped) != 1 || stopped[0]["drained"] != false {
		t.Errorf("stopped lines: %v; want one, not drained\nlogs:\n%s", stopped, g.logs)
	}
}

// A cut that comes during the shutdown delay, with nothing open, is made
// before the drain starts: the drain it ends is never reported as a full
// one, and the cut is logged. Run's wait on the delay returns at once, and
// the drain used to start before the cut was made, or without it.
func TestCutShortDuringTheDelayIsNotADrain(t *testing.T) {
	cut := make(chan struct{})
	g := startGatewayWith(t, map[string]string{"GATEWAY_SERVER__SHUTDOWNDELAY": "5m"}, daemon.Options{CutShort: cut})
	g.serveOne(t)
	g.client.CloseIdleConnections()
	g.cutShort(t, cut)
	if cut := g.logs.lines("drain cut short: closing every connection"); len(cut) != 1 {
		t.Errorf("drain cut short lines: %v; want one\nlogs:\n%s", cut, g.logs)
	}
	if stopped := g.logs.lines("stopped"); len(stopped) != 1 || stopped[0]["drained"] != false {
		t.Errorf("stopped lines: %v; want one, not drained\nlogs:\n%s", stopped, g.logs)
	}
}

// A cut that comes once the public listener's drain is over, while the
// ops listener's close waits for a request still being sent to it, cuts
// that close: it is reported as a drain cut short (drained: false,
// ErrCutShort), as the WARN line says. It used to log the cut and then
// drained: true, and Run returned nil, so the development stack's exit
// status and the gateway's log disagreed.
func TestCutShortDuringTheOpsCloseIsNotADrain(t *testing.T) {
	cut := make(chan struct{})
	g := startGatewayWith(t, nil, daemon.Options{CutShort: cut})
	g.serveOne(t)
	g.client.CloseIdleConnections()
	// Its body never ends: the ops listener's close waits for it (2s at
	// most), the public listener's drain does not.
	held, err := net.Dial("tcp", g.ops.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := io.WriteString(held, "POST /ops/v1/cache/invalidate HTTP/1.1\r\nHost: ops\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"userId\":"); err != nil {
		t.Fatal(err)
	}
	if s := g.get(g.ops, "/healthz", ""); s != http.StatusOK { // the held one was accepted first
		t.Fatalf("GET /healthz: status %d, want 200", s)
	}
	g.client.CloseIdleConnections()
	g.cancel()
	// The ops listener closes once the public drain has returned.
	select {
	case <-g.ops.closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("the ops listener did not close\nlogs:\n%s", g.logs)
	}
	close(cut)
	if err := g.result(t); !errors.Is(err, daemon.ErrCutShort) {
		t.Fatalf("Run returned %v after a cut during the ops listener's close; want ErrCutShort\nlogs:\n%s", err, g.logs)
	}
	if cut := g.logs.lines("drain cut short: closing every connection"); len(cut) != 1 {
		t.Errorf("drain cut short lines: %v; want one\nlogs:\n%s", cut, g.logs)
	}
	if stopped := g.logs.lines("stopped"); len(stopped) != 1 || stopped[0]["drained"] != false {
		t.Errorf("stopped lines: %v; want one, not drained\nlogs:\n%s", stopped, g.logs)
	}
}

// A cut that comes once the drain is over (OnStopped) cuts nothing: Run
// returns nil, the drain is reported as the full one it was, and no cut
// is logged.
func TestCutShortAfterTheDrainChangesNothing(t *testing.T) {
	cut := make(chan struct{})
	g := startGatewayWith(t, nil, daemon.Options{CutShort: cut, OnStopped: func(error) { close(cut) }})
	g.serveOne(t)
	g.cancel()
	if err := g.result(t); err != nil {
		t.Fatalf("Run returned %v after a cut that came once the drain was over; want nil\nlogs:\n%s", err, g.logs)
	}
	if cut := g.logs.lines("drain cut short: closing every connection"); len(cut) != 0 {
		t.Errorf("drain cut short lines: %v; want none\nlogs:\n%s", cut, g.logs)
	}
	if stopped := g.logs.lines("stopped"); len(stopped) != 1 || stopped[0]["drained"] != true {
		t.Errorf("stopped lines: %v; want one, drained\nlogs:\n%s", stopped, g.logs)
	}
}

// cutShort stops the gateway, closes cut once it is shutting down, and
// waits for Run, which must return ErrCutShort.
func (g *gateway) cutShort(t *testing.T, cut chan struct{}) {
	t.Helper()
	g.cancel()
	for deadline := time.Now().Add(5 * time.Second); len(g.logs.lines("shutting down")) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no shutting down line\nlogs:\n%s", g.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(cut)
	if err := g.result(t); !errors.Is(err, daemon.ErrCutShort) {
		t.Fatalf("Run returned %v after a drain cut short; want ErrCutShort\nlogs:\n%s", err, g.logs)
	}
}

// A policy a variable makes invalid is refused naming the variable, as a
// value out of range is: the file may not have the policy at all.
func TestLoadNamesTheVariableOfABadPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	file := "auth:\n  jwksURLs: [https://idp.example.com/jwks]\n  issuer: https://idp.example.com\n" +
		"upstreams:\n  userstore:\n    baseURL: http://userstore.internal:8082\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(name string) string {
		if name == "GATEWAY_POLICIES__WEB__FIELDS__PUBLIC" {
			return "id,email"
		}
		return ""
	}
	_, _, err := daemon.Load(path, getenv)
	if err == nil || !strings.Contains(err.Error(), "policies.web.fields.public: app platforms never show email in the public view (set by GATEWAY_POLICIES__WEB__FIELDS__PUBLIC)") {
		t.Errorf("Load: %v", err)
	}
}

// stuckOutput passes lines to logs until stick is called, then takes no
// more, as a log pipeline that stopped reading (a full pipe) does, until
// the test ends.
type stuckOutput struct {
	logs    *logBuffer
	stuck   atomic.Bool
	release chan struct{}
}

func (s *stuckOutput) Write(p []byte) (int, error) {
	if s.stuck.Load() {
		<-s.release
	}
	return s.logs.Write(p)
}

// A log pipeline that stops taking lines costs log lines, never requests:
// a request that logs an event line (here the debug line of a refusal; an
// upstream failure's WARN in an outage) is answered, and the gateway stops
// when asked. The event lines were written straight to stdout, so such a
// request waited for the pipeline past its deadline, and so did the
// shutdown (its first line), for as long as the pipeline was stuck.
func TestStuckLogOutputHoldsNeitherRequestsNorTheShutdown(t *testing.T) {
	out := &stuckOutput{logs: &logBuffer{}, release: make(chan struct{})}
	t.Cleanup(func() { close(out.release) }) // after the gateway's cleanup
	g := startGatewayWith(t, map[string]string{"GATEWAY_LOG__LEVEL": "debug"}, daemon.Options{Stdout: out})
	g.serveOne(t)
	out.stuck.Store(true)

	// A user's token on the admin platform: refused, with a debug line.
	token, err := g.idp.Mint(devidp.MintClaims{Subject: "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11", Roles: []string{"user"},
		IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+g.public.Addr().String()+"/api/admin/v1/users/search?query=a", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Platform", "admin")
	resp, err := g.client.Do(req) // the client gives up after 5 s
	if err != nil {
		t.Fatalf("a refused request with the log output stuck: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}

	g.cancel()
	select {
	case <-g.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of its context ending with the log output stuck")
	}
	g.done <- nil // for the cleanup
}

// errAcceptInterrupted is an accept error net/http retries (a Temporary
// net.Error), logging each retry itself.
type errAcceptInterrupted struct{}

func (errAcceptInterrupted) Error() string   { return "accept interrupted (injected by the test)" }
func (errAcceptInterrupted) Timeout() bool   { return false }
func (errAcceptInterrupted) Temporary() bool { return true }

// What net/http itself logs on the ops listener (here its retry of an
// accept that failed) is a WARN line of the gateway's JSON log, not plain
// text on stderr, outside it; the listener serves again once accepts do.
func TestOpsListenersOwnLinesAreInTheLog(t *testing.T) {
	g := startGateway(t)
	g.ops.fail(t, errAcceptInterrupted{})
	deadline := time.Now().Add(5 * time.Second)
	for found := false; !found; {
		for _, line := range strings.Split(g.logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			if msg, _ := m["msg"].(string); strings.HasPrefix(msg, "ops listener: http: Accept error: accept interrupted") {
				if m["level"] != "WARN" {
					t.Fatalf("level %v, want WARN: %s", m["level"], line)
				}
				found = true
			}
		}
		if !found && time.Now().After(deadline) {
			t.Fatalf("no log line for the ops listener's accept retry\nlogs:\n%s", g.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.ops.failed.Store(nil)
	deadline = time.Now().Add(5 * time.Second)
	for g.get(g.ops, "/healthz", "") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the ops listener does not serve again once accepts do")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slowOutput passes lines to logs, each after a pause, as a log pipeline
// that takes them slowly does.
type slowOutput struct{ logs *logBuffer }

func (s slowOutput) Write(p []byte) (int, error) {
	time.Sleep(100 * time.Millisecond)
	return s.logs.Write(p)
}

// The event lines go through a queue (LogOutput), and Run writes what is
// queued before it returns: the process exits after it, and the last lines
// ("shutting down", "stopped") are the ones that say how the run ended.
func TestRunWritesItsLastLinesBeforeReturning(t *testing.T) {
	logs := &logBuffer{}
	g := startGatewayWith(t, nil, daemon.Options{Stdout: slowOutput{logs}})
	g.serveOne(t)
	g.cancel()
	if err := g.result(t); err != nil {
		t.Fatalf("Run returned %v after its context ended; want nil", err)
	}
	if stopped := logs.lines("stopped"); len(stopped) != 1 {
		t.Fatalf("%d stopped lines written when Run returned, want 1\nlogs:\n%s", len(stopped), logs)
	}
}

// AfterDrain bounds the whole clean-up after the drain, the grace period a
// container needs beyond the shutdown delay and the drain timeout: here
// every part of it takes its longest, the access log's close (a log
// pipeline that takes nothing: 1 s), the ops listener's (a CPU profile
// running: 2 s), the span flush (a collector that never answers: 3 s) and
// the event log's close (1 s). AfterDrain counted the two in the middle,
// 5 s where it takes 7, and the Deployment's grace period was checked
// against it.
func TestAfterDrainBoundsTheCleanUp(t *testing.T) {
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
	out := &stuckOutput{logs: &logBuffer{}, release: make(chan struct{})}
	t.Cleanup(func() { close(out.release) }) // after the gateway's cleanup
	g := startGatewayWith(t, map[string]string{
		"GATEWAY_OPS__PPROF":           "true",
		"GATEWAY_TRACING__ENABLED":     "true",
		"GATEWAY_TRACING__ENDPOINT":    collector.Addr().String(),
		"GATEWAY_TRACING__INSECURE":    "true",
		"GATEWAY_TRACING__SAMPLERATIO": "1",
	}, daemon.Options{Stdout: out})
	out.stuck.Store(true)
	g.serveOne(t) // a span to flush; the access line's write is stuck
	g.client.CloseIdleConnections()
	go g.get(g.ops, "/debug/pprof/profile?seconds=30", "")
	time.Sleep(200 * time.Millisecond) // the profile has begun

	start := time.Now()
	g.cancel() // the event log's "shutting down" line waits too
	select {
	case <-g.done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	g.done <- nil // for the cleanup
	// The drain itself has nothing to wait for: no delay, nothing open.
	if took := time.Since(start); took > daemon.AfterDrain+time.Second {
		t.Fatalf("the clean-up took %v, above AfterDrain (%v) and a second for the drain", took.Round(time.Millisecond), daemon.AfterDrain)
	} else {
		t.Logf("the clean-up took %v; AfterDrain %v", took.Round(time.Millisecond), daemon.AfterDrain)
	}
}

// A store call still running after the drain (a handler the drain timeout
// left running, or a background refresh) is not waited for either: fasthttp
// ends an exchange only at its deadline, an operation timeout away (up to
// 2 min), and the cache's close waited for its loads, so the clean-up took
// that long beyond AfterDrain, and a pod was killed mid-clean-up. What such
// a load brings is not stored anyway once the cache is closed.
func TestCleanUpDoesNotWaitForAStoreCallInFlight(t *testing.T) {
	release := make(chan struct{})
	called := make(chan struct{}, 1)
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case called <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(stuck.Close)
	t.Cleanup(func() { close(release) }) // before the store's own Close
	g := startGatewayWith(t, map[string]string{
		"GATEWAY_UPSTREAMS__USERSTORE__BASEURL":                       stuck.URL,
		"GATEWAY_SERVER__REQUESTTIMEOUT":                              "30s",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__USERBYID__TIMEOUT": "20s",
		"GATEWAY_SERVER__DRAINTIMEOUT":                                "200ms",
	}, daemon.Options{})
	tok, err := g.idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID, Roles: []string{"user"}})
	if err != nil {
		t.Fatal(err)
	}
	go g.get(g.public, "/api/v1/users/me", tok)
	select {
	case <-called:
	case <-time.After(10 * time.Second):
		t.Fatal("the store was not called")
	}
	start := time.Now()
	g.cancel()
	select {
	case <-g.done:
	case <-time.After(40 * time.Second):
		t.Fatal("Run did not return")
	}
	g.done <- nil // for the cleanup
	if took := time.Since(start); took > 200*time.Millisecond+daemon.AfterDrain {
		t.Fatalf("Run returned %v after the stop, above the drain timeout (200ms) and AfterDrain (%v)\nlogs:\n%s",
			took.Round(time.Millisecond), daemon.AfterDrain, g.logs)
	}
}

// OPTIONS * on the ops listener is answered as on the public one: 204 with
// the methods some endpoint takes, and a request id; any other method with
// the asterisk target is a 400 envelope. net/http's own answer was an
// empty 200 with no request id, its mux's a bare 400.
func TestOpsListenerAnswersTheAsteriskTarget(t *testing.T) {
	g := startGateway(t)
	for _, c := range []struct {
		method string
		status int
		allow  string
		body   string
	}{
		{http.MethodOptions, http.StatusNoContent, "GET, HEAD, POST", ""},
		{http.MethodGet, http.StatusBadRequest, "", `"errors":["Validation failed"]`},
		// HEAD is no OPTIONS: the GET's 400, without its body.
		{http.MethodHead, http.StatusBadRequest, "", ""},
	} {
		conn, err := net.Dial("tcp", g.ops.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, c.method+" * HTTP/1.1\r\nHost: ops\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: c.method})
		if err != nil {
			t.Fatalf("%s *: %v", c.method, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != c.status || resp.Header.Get("Allow") != c.allow || resp.Header.Get("X-Request-Id") == "" ||
			!strings.Contains(string(body), c.body) || (c.body == "" && len(body) != 0) {
			t.Errorf("%s *: %d, Allow %q, X-Request-Id %q, body %q; want %d, Allow %q, an id, a body with %q",
				c.method, resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("X-Request-Id"), body, c.status, c.allow, c.body)
		}
		// As every answer of the ops listener: never stored.
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s *: Cache-Control %q, want no-store", c.method, cc)
		}
	}
	// Answered once: no second answer (net/http's log of a superfluous
	// WriteHeader, say from the mux's own 400 after the 204).
	if logs := g.logs.String(); strings.Contains(logs, "ops listener") {
		t.Errorf("the ops listener logged:\n%s", logs)
	}
}
