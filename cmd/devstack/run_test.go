package main

// The README's first command, `go run ./cmd/devstack`, as a new developer
// meets it: the banner's curl commands answer, a second stack or a taken
// port is refused at once with the flag that moves it, and Ctrl-C, kill or
// a closed terminal stop everything and leave no temporary database.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bffgate/edge/cmd/internal/signals/signalstest"
)

// runMainEnv makes the test binary run main instead of the tests, so the
// signal handling of main itself is tested in a process of its own.
const runMainEnv = "DEVSTACK_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const bannerEnd = "Ctrl-C stops everything."

// freeArgs runs the stack on ports the system picks, with a small seed,
// from this package's directory.
func freeArgs(extra ...string) []string {
	args := []string{"devstack", "-config", filepath.Join("..", "..", "config.yaml"), "-users", "300",
		"-gateway", "127.0.0.1:0", "-ops", "127.0.0.1:0", "-idp", "127.0.0.1:0", "-store", "127.0.0.1:0"}
	return append(args, extra...)
}

// withArg replaces the value of one flag in args.
func withArg(args []string, flag, value string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == flag {
			out[i+1] = value
		}
	}
	return out
}

// emptyTempDir points the temporary directory at a fresh one, where the
// user store makes its database, and returns a check that nothing is
// left in it.
func emptyTempDir(t *testing.T) func() {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return func() {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("left behind in the temporary directory: %s", e.Name())
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// readBanner reads stdout up to the banner's last line.
func readBanner(t *testing.T, r io.Reader, within time.Duration, logs func() string) string {
	t.Helper()
	banner, err := awaitBanner(r, within, logs)
	if err != nil {
		t.Fatal(err)
	}
	return banner
}

// awaitBanner is readBanner that reports a missing banner instead of
// failing the test.
func awaitBanner(r io.Reader, within time.Duration, logs func() string) (string, error) {
	got := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if sc.Text() == bannerEnd {
				got <- b.String()
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
		got <- b.String()
	}()
	select {
	case banner := <-got:
		if !strings.Contains(banner, bannerEnd) {
			return "", fmt.Errorf("stopped before the banner:\n%s\n%s", banner, logs())
		}
		return banner, nil
	case <-time.After(within):
		return "", fmt.Errorf("no banner within %v:\n%s", within, logs())
	}
}

// Every curl command the banner prints answers 200 in the envelope, with
// the token as printed and with "Bearer " added or taken away; the ops
// URL's probes answer; Ctrl-C stops the stack, closes every port and
// removes the temporary database.
func TestBannerCommandsWork(t *testing.T) {
	leftovers := emptyTempDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	stderr := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, freeArgs(), func(string) string { return "" }, stdoutW, stderr, net.Listen)
		stdoutW.Close()
		done <- err
	}()
	banner := readBanner(t, stdoutR, 60*time.Second, stderr.String)

	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`export (\w+)='([^']*)'`).FindAllStringSubmatch(banner, -1) {
		vars[m[1]] = m[2]
	}
	if vars["USER_TOKEN"] == "" || vars["ADMIN_TOKEN"] == "" {
		t.Fatalf("the banner exports no tokens:\n%s", banner)
	}
	var curls []curlCommand
	for _, line := range strings.Split(banner, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "curl ") {
			curls = append(curls, parseCurl(t, strings.TrimSpace(line), vars))
		}
	}
	if len(curls) != 5 {
		t.Fatalf("%d curl commands in the banner, want one per call of the API (5):\n%s", len(curls), banner)
	}
	for _, c := range curls {
		auth := c.header.Get("Authorization")
		other := "Bearer " + auth
		if bare, ok := strings.CutPrefix(auth, "Bearer "); ok {
			other = bare
		}
		for _, a := range []string{auth, other} {
			c.header.Set("Authorization", a)
			status, body := c.do(t)
			var env struct {
				IsSuccess  bool `json:"isSuccess"`
				StatusCode int  `json:"statusCode"`
			}
			if err := json.Unmarshal(body, &env); err != nil || status != 200 || !env.IsSuccess || env.StatusCode != 200 {
				t.Errorf("%s %s (Authorization %.12q...): %d %s", c.method, c.url, a, status, body)
			}
		}
	}

	ops := regexp.MustCompile(`(?m)^  ops +(http://\S+)`).FindStringSubmatch(banner)
	if ops == nil {
		t.Fatalf("no ops URL in the banner:\n%s", banner)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(ops[1] + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s%s: %d", ops[1], p, resp.StatusCode)
		}
	}
	var addrs []string
	for _, m := range regexp.MustCompile(`http://(127\.0\.0\.1:\d+)`).FindAllStringSubmatch(banner, -1) {
		addrs = append(addrs, m[1])
	}

	stopCleanly(t, cancel, done)
	for _, a := range addrs {
		if c, err := net.Dial("tcp", a); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the stack stopped", a)
		}
	}
	leftovers()
}

// A port already taken (a second devstack, or anything else) is refused
// before the user store is seeded, with the flag that moves that part.
func TestTakenPortNamesTheFlag(t *testing.T) {
	for _, flag := range []string{"-gateway", "-ops", "-idp", "-store"} {
		t.Run(flag, func(t *testing.T) {
			leftovers := emptyTempDir(t)
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			// Already cancelled: seeding the store would stop at once and
			// run would return nil (a Ctrl-C while seeding), so only a
			// refusal made before the store is seeded gets the error.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err = run(ctx, withArg(freeArgs("-users", "10000"), flag, taken.Addr().String()),
				func(string) string { return "" }, io.Discard, io.Discard, net.Listen)
			if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) || !strings.Contains(err.Error(), "with "+flag) {
				t.Fatalf("%s on a taken port: %v; want an error that names the address and %s, before the store is seeded", flag, err, flag)
			}
			leftovers()
		})
	}
}

// The same address for two parts of the stack is refused as a taken port
// is, before the store is seeded and with the flag that moves the second:
// the gateway's own listener takes it.
func TestSameAddressTwiceNamesTheFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, pair := range [][2]string{{"-store", "-idp"}, {"-idp", "-gateway"}, {"-gateway", "-ops"}, {"-store", "-ops"}} {
		leftovers := emptyTempDir(t)
		// Cancelled, as in TestTakenPortNamesTheFlag: only a refusal made
		// before the store is seeded is an error.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		args := withArg(withArg(freeArgs("-users", "10000"), pair[0], addr), pair[1], addr)
		err := run(ctx, args, func(string) string { return "" }, io.Discard, io.Discard, net.Listen)
		if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "with "+pair[1]) {
			t.Errorf("%s and %s both %s: %v; want an error that names the address and %s, before the store is seeded", pair[0], pair[1], addr, err, pair[1])
		}
		leftovers()
	}
}

// The ports tried before the store is seeded are let go again: the stack
// then starts on the very addresses given, as the README's fixed ones
// (the other tests give port 0, where a port held by the check would go
// unseen). The garbage collector is off meanwhile: a listener dropped
// without Close is closed by its finalizer, whenever one runs.
func TestStartsOnTheAddressesItTried(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	leftovers := emptyTempDir(t)
	args := freeArgs()
	for _, flag := range []string{"-gateway", "-ops", "-idp", "-store"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		args = withArg(args, flag, ln.Addr().String())
		ln.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	stderr := &lockedBuffer{}
	done := make(chan error, 1)
	var runErr atomic.Value // what run returned, for the failure's message
	go func() {
		err := run(ctx, args, func(string) string { return "" }, stdoutW, stderr, net.Listen)
		runErr.Store(fmt.Sprint(err))
		stdoutW.Close()
		done <- err
	}()
	banner := readBanner(t, stdoutR, 60*time.Second, func() string {
		e, _ := runErr.Load().(string)
		return stderr.String() + "run: " + e
	})
	for i := 1; i < len(args); i++ {
		if a := args[i]; strings.HasPrefix(args[i-1], "-") && strings.HasPrefix(a, "127.0.0.1:") && !strings.Contains(banner, a) {
			t.Errorf("%s %s: not in the banner:\n%s", args[i-1], a, banner)
		}
	}
	stopCleanly(t, cancel, done)
	leftovers()
}

// A config.yaml that is not there (devstack started outside the
// repository root) is refused at once, saying what to do.
func TestMissingConfigSaysWhere(t *testing.T) {
	leftovers := emptyTempDir(t)
	err := run(context.Background(), withArg(freeArgs(), "-config", "config.yaml"), func(string) string { return "" }, io.Discard, io.Discard, net.Listen)
	if err == nil || !strings.Contains(err.Error(), "repository root") {
		t.Fatalf("missing config.yaml: %v", err)
	}
	leftovers()
}

// -h prints the usage and is not a failure.
func TestHelp(t *testing.T) {
	var stderr strings.Builder
	if err := run(context.Background(), []string{"devstack", "-h"}, func(string) string { return "" }, io.Discard, &stderr, net.Listen); err != nil {
		t.Errorf("-h: %v", err)
	}
	if !strings.Contains(stderr.String(), "-gateway") {
		t.Errorf("-h printed no usage: %q", stderr.String())
	}
	// A word after the flags is refused before anything starts, as the
	// gateway refuses one, rather than ignored.
	err := run(context.Background(), []string{"devstack", "-users", "10", "extra"}, func(string) string { return "" }, io.Discard, io.Discard, net.Listen)
	if err == nil || !strings.Contains(err.Error(), `unexpected arguments: ["extra"]`) {
		t.Errorf("devstack extra: %v", err)
	}
}

// Ctrl-C while the user store is being seeded stops quietly, and the
// half-seeded temporary database is removed.
func TestStopWhileSeeding(t *testing.T) {
	leftovers := emptyTempDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := run(ctx, freeArgs(), func(string) string { return "" }, io.Discard, io.Discard, net.Listen); err != nil {
		t.Errorf("stopped while seeding: %v", err)
	}
	leftovers()
}

// The process as a terminal runs it: Ctrl-C (SIGINT), kill (SIGTERM) and a
// closed terminal or ssh session (SIGHUP) each stop it with status 0 and
// leave nothing in the temporary directory.
func TestSignalsStopEverything(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			leftovers := emptyTempDir(t)
			cmd, stdout, stderr := startStack(t, exe)
			exited := make(chan error, 1)
			if _, err := awaitBanner(stdout, 60*time.Second, stderr.String); err != nil {
				_ = cmd.Process.Kill()
				t.Fatal(err)
			}
			go func() { exited <- cmd.Wait() }()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("after %v: %v\n%s", sig, err, stderr)
				}
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				t.Fatalf("still running 30 s after %v", sig)
			}
			leftovers()
		})
	}
}

// A second Ctrl-C during the drain ends the stack at once, exit 1, with a
// line that says so, and still leaves nothing in the temporary directory:
// here a client whose request body never ends holds the gateway's drain.
// The second signal used to be ignored until the drain was over.
func TestSecondSignalCutsTheDrainShort(t *testing.T) {
	leftovers := emptyTempDir(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd, stdout, stderr := startStack(t, exe)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	banner, err := awaitBanner(stdout, 60*time.Second, stderr.String)
	if err != nil {
		t.Fatal(err)
	}
	gw := regexp.MustCompile(`(?m)^  gateway +http://(\S+)`).FindStringSubmatch(banner)
	if gw == nil {
		t.Fatalf("no gateway URL in the banner:\n%s", banner)
	}
	signalstest.HoldRequest(t, gw[1], "/api/v1/users/check-username")
	// The gateway accepts connections in turn: one answered on a second
	// connection means the first is held.
	resp, err := http.Get("http://" + gw[1] + "/api/v1/users/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	signalstest.CutShort(t, cmd.Process, exited, stderr.String, "second signal (interrupt): exiting without finishing the drain")
	leftovers()
}

// The second Ctrl-C in this process, with a request in flight: run
// returns only once everything the stack started has stopped. No
// goroutine of its own is left (the gateway's drain, its connections), no
// port accepts, and the temporary database is gone. The drain would last
// minutes here; run used to return at once and leave it running, with the
// database removed under the store.
func TestSecondSignalLeavesNothingRunning(t *testing.T) {
	leftovers := emptyTempDir(t)
	before := goleak.IgnoreCurrent()
	env := map[string]string{"GATEWAY_SERVER__READTIMEOUT": "10m", "GATEWAY_SERVER__DRAINTIMEOUT": "10m"}
	stdoutR, stdoutW := io.Pipe()
	stderr := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(context.Background(), freeArgs(), func(k string) string { return env[k] }, stdoutW, stderr, net.Listen)
		stdoutW.Close()
		done <- err
	}()
	banner := readBanner(t, stdoutR, 60*time.Second, stderr.String)
	var addrs []string
	for _, m := range regexp.MustCompile(`http://(127\.0\.0\.1:\d+)`).FindAllStringSubmatch(banner, -1) {
		addrs = append(addrs, m[1])
	}
	gw := regexp.MustCompile(`(?m)^  gateway +http://(\S+)`).FindStringSubmatch(banner)
	if gw == nil || len(addrs) < 4 {
		t.Fatalf("no gateway, ops, identity provider and store URLs in the banner:\n%s", banner)
	}
	signalstest.HoldRequest(t, gw[1], "/api/v1/users/check-username")
	// One answered on a second connection means the first is held.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + gw[1] + "/api/v1/users/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	signalstest.CutShortInProcess(t, done, stderr.String)

	leftovers()
	for _, a := range addrs {
		if c, err := net.Dial("tcp", a); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after run returned", a)
		}
	}
	// What ends by itself a moment after run returns (the banner's reader,
	// a client connection the ops listener closed) is waited for, a few
	// seconds at most.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := goleak.Find(before,
			// fasthttp's: the worker pool's cleaner sees the stop only
			// when it wakes (every 10 s), and the server-date ticker,
			// one per process, never stops.
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still running after run returned: %v", err)
		}
	}
}

// The gateway's public listener fails, and a second Ctrl-C cuts the drain
// that failure began: run's error says both, the failure first (what
// stopped the gateway), then the cut; the exit status is 1 either way. It
// used to say only the cut, the failure left to an ERROR line of the log.
func TestListenerFailureThenSecondSignalSaysBoth(t *testing.T) {
	leftovers := emptyTempDir(t)
	lost := errors.New("listener lost (injected by the test)")
	var public *failingListener
	listenGateway := func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil || public != nil {
			return ln, err // the ops listener, opened second
		}
		public = &failingListener{Listener: ln}
		return public, nil
	}
	// The drain waits out the shutdown delay: the cut comes during it.
	env := map[string]string{"GATEWAY_SERVER__SHUTDOWNDELAY": "1m"}
	stdoutR, stdoutW := io.Pipe()
	stderr := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(context.Background(), freeArgs(), func(k string) string { return env[k] }, stdoutW, stderr, listenGateway)
		stdoutW.Close()
		done <- err
	}()
	readBanner(t, stdoutR, 60*time.Second, stderr.String)
	if public == nil {
		t.Fatal("run did not open the gateway's listeners with the listen function it was given")
	}

	public.fail(t, lost)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), `"msg":"listener failed"`); {
		if time.Now().After(deadline) {
			t.Fatalf("no listener failed line:\n%s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Two interrupts, each waited for: sent at once, the two could arrive
	// as one (the drain had begun: no "shutting down" line to wait for).
	interrupt := selfInterrupter(t)
	interrupt()
	interrupt()
	select {
	case err := <-done:
		want := "public listener: " + lost.Error() + "\nsecond signal (interrupt): exiting without finishing the drain"
		if err == nil || !errors.Is(err, lost) || err.Error() != want {
			t.Errorf("run returned %q, want %q", err, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after the second signal:\n%s", stderr)
	}
	leftovers()
}

// failingListener is a real listener that, once failed, answers every
// Accept with the error it failed with.
type failingListener struct {
	net.Listener
	failed atomic.Pointer[error]
}

func (l *failingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if failed := l.failed.Load(); failed != nil {
		if c != nil {
			c.Close()
		}
		return nil, *failed
	}
	return c, err
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

// A second Ctrl-C once the gateway's drain is over cuts none of it: the
// stack exits with the run's status (0), and the gateway's stopped line
// says drained. Here run is held after the drain by its banner, which
// waits to be read. It used to exit 1 and say the drain was not finished.
func TestSecondSignalAfterTheDrainKeepsTheRunsStatus(t *testing.T) {
	leftovers := emptyTempDir(t)
	// The signals come here too: one that came after run stopped watching
	// them would otherwise end the test binary.
	interrupt := selfInterrupter(t)
	stdoutR, stdoutW := io.Pipe()
	stderr := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(context.Background(), freeArgs(), func(string) string { return "" }, stdoutW, stderr, net.Listen)
		stdoutW.Close()
		done <- err
	}()
	// The banner's first byte: the stack is up, and the rest of the banner
	// waits for the test to read it, which run waits for before it returns.
	first := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(stdoutR, make([]byte, 1))
		first <- err
	}()
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("no banner: %v\n%s", err, stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no banner within 60s:\n%s", stderr)
	}

	interrupt()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), `"msg":"stopped"`); {
		if time.Now().After(deadline) {
			t.Fatalf("no stopped line:\n%s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	interrupt()
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()

	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after a second signal once the drain was over; want nil\n%s", err, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not return:\n%s", stderr)
	}
	if strings.Contains(stderr.String(), "drain cut short") || !strings.Contains(stderr.String(), `"msg":"stopped","drained":true`) {
		t.Errorf("the gateway's log does not say it drained, or says it was cut:\n%s", stderr)
	}
	leftovers()
}

// curlCommand is one curl line of the banner, as a shell would run it.
type curlCommand struct {
	method, url, body string
	header            http.Header
}

func (c curlCommand) do(t *testing.T) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = c.header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// parseCurl splits a curl line as sh would (single quotes literal, $VAR
// expanded inside double quotes and bare words) and reads the options the
// banner uses.
func parseCurl(t *testing.T, line string, vars map[string]string) curlCommand {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	expand := func(s string) string { return os.Expand(s, func(k string) string { return vars[k] }) }
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; {
		case ch == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				t.Fatalf("unbalanced ' in %q", line)
			}
			w.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case ch == '"':
			j := strings.IndexByte(line[i+1:], '"')
			if j < 0 {
				t.Fatalf("unbalanced \" in %q", line)
			}
			w.WriteString(expand(line[i+1 : i+1+j]))
			i += j + 1
			inWord = true
		case ch == ' ':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case ch == '$':
			j := i + 1
			for j < len(line) && (line[j] == '_' || line[j] >= 'A' && line[j] <= 'Z' || line[j] >= '0' && line[j] <= '9') {
				j++
			}
			w.WriteString(vars[line[i+1:j]])
			i = j - 1
			inWord = true
		default:
			w.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	c := curlCommand{method: http.MethodGet, header: http.Header{}}
	for i := 1; i < len(words); i++ {
		switch words[i] {
		case "-s":
		case "-X":
			i++
			c.method = words[i]
		case "-H":
			i++
			k, v, ok := strings.Cut(words[i], ":")
			if !ok {
				t.Fatalf("header %q in %q", words[i], line)
			}
			c.header.Set(k, strings.TrimSpace(v))
		case "-d":
			i++
			c.body = words[i]
		default:
			if strings.HasPrefix(words[i], "-") || c.url != "" {
				t.Fatalf("curl word %q in %q is not understood", words[i], line)
			}
			c.url = words[i]
		}
	}
	if c.url == "" {
		t.Fatalf("no URL in %q", line)
	}
	return c
}

// startStack starts the binary as the stack, on free ports.
func startStack(t *testing.T, exe string) (*exec.Cmd, io.ReadCloser, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(exe, freeArgs()[1:]...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout, stderr
}

// selfInterrupter returns a function that sends the test process a
// SIGINT and waits until it has arrived, so that two sent one after the
// other are two. The signals also come to a channel of the test's own
// until it ends: one that came after run stopped watching them would
// otherwise end the test binary.
func selfInterrupter(t *testing.T) func() {
	own := make(chan os.Signal, 2)
	signal.Notify(own, os.Interrupt)
	t.Cleanup(func() { signal.Stop(own) })
	self, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := self.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case <-own:
		case <-time.After(10 * time.Second):
			t.Fatal("the interrupt did not arrive")
		}
	}
}

// A -token-ttl that is not positive is refused before anything starts, as
// devidp refuses it: the banner would print tokens already expired, and
// every command it suggests would answer 401.
func TestTokenTTLMustBePositive(t *testing.T) {
	for _, ttl := range []string{"0s", "-1h"} {
		leftovers := emptyTempDir(t)
		// Cancelled, as in TestTakenPortNamesTheFlag: only a refusal made
		// before the store is seeded is an error (a stack that went on
		// would stop at once, with no error).
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		stdout := &lockedBuffer{}
		err := run(ctx, freeArgs("-token-ttl", ttl), func(string) string { return "" }, stdout, io.Discard, net.Listen)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "-token-ttl") {
			t.Errorf("-token-ttl %s: %v; want a refusal naming -token-ttl", ttl, err)
		}
		if stdout.String() != "" {
			t.Errorf("-token-ttl %s printed a banner:\n%s", ttl, stdout.String())
		}
		leftovers()
	}
}

// A misspelt GATEWAY_ variable is refused before anything starts, naming
// it and the variable it was likely meant to be, as the gateway binary
// does: devstack's gateway reads the environment too.
func TestUnknownGatewayVariableIsRefused(t *testing.T) {
	leftovers := emptyTempDir(t)
	defer leftovers()
	t.Setenv("GATEWAY_SERVER__LISTN", "127.0.0.1:0")
	// Cancelled, as in TestTokenTTLMustBePositive: only a refusal made
	// before the store is seeded is an error (a stack that went on would
	// stop at once, with no error).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stdout := &lockedBuffer{}
	err := run(ctx, freeArgs(), func(string) string { return "" }, stdout, io.Discard, net.Listen)
	if err == nil || !strings.Contains(err.Error(), "GATEWAY_SERVER__LISTN") || !strings.Contains(err.Error(), "GATEWAY_SERVER__LISTEN") {
		t.Errorf("run with GATEWAY_SERVER__LISTN set: %v; want a refusal naming it and GATEWAY_SERVER__LISTEN", err)
	}
	if stdout.String() != "" {
		t.Errorf("printed a banner:\n%s", stdout.String())
	}
}

// A GATEWAY_ variable devstack sets itself, from a flag or to point the
// gateway at its own identity provider and user store, would do nothing:
// it is refused, naming the flag that does it, as a misspelt one is.
// GATEWAY_CONFIG too, which the gateway binary reads for -config. An
// empty one is unset, as everywhere.
func TestGatewayVariableDevstackSetsIsRefused(t *testing.T) {
	for name, flag := range map[string]string{
		"GATEWAY_SERVER__LISTEN":                "-gateway",
		"GATEWAY_OPS__LISTEN":                   "-ops",
		"GATEWAY_CONFIG":                        "-config",
		"GATEWAY_AUTH__ISSUER":                  "-idp",
		"GATEWAY_AUTH__JWKSURLS":                "-idp",
		"GATEWAY_UPSTREAMS__USERSTORE__BASEURL": "-store",
	} {
		leftovers := emptyTempDir(t)
		// Cancelled: only a refusal made before the store is seeded is an
		// error.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		getenv := func(k string) string {
			if k == name {
				return "127.0.0.1:9999"
			}
			return ""
		}
		stdout := &lockedBuffer{}
		err := run(ctx, freeArgs(), getenv, stdout, io.Discard, net.Listen)
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s set: %v; want a refusal naming it and %s", name, err, flag)
		}
		if stdout.String() != "" {
			t.Errorf("%s set: printed a banner:\n%s", name, stdout.String())
		}
		leftovers()
	}
	// Blank is unset: the stack goes on (and stops at once, cancelled).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	blank := func(k string) string {
		if k == "GATEWAY_OPS__LISTEN" {
			return " "
		}
		return ""
	}
	if err := run(ctx, freeArgs(), blank, io.Discard, io.Discard, net.Listen); err != nil {
		t.Errorf("GATEWAY_OPS__LISTEN blank: %v", err)
	}
}

// stopCleanly stops a stack run started with its result on done, as
// Ctrl-C does (cancel), and wants it stopped without error within 30 s.
func stopCleanly(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30 s after Ctrl-C")
	}
}
