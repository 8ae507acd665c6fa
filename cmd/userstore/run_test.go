package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bffgate/edge/cmd/internal/signals/signalstest"
	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/refstore"
)

// runMainEnv makes the test binary run main instead of the tests, so that
// signals can be sent to a process of its own.
const runMainEnv = "USERSTORE_TEST_RUN_MAIN"

// TestMain fails the run if a stopped server left goroutines behind.
func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// SIGINT, SIGTERM and SIGHUP (a closed terminal or ssh session) each stop
// the process with status 0 and remove its temporary database; by default
// SIGHUP would kill it and leave the database behind.
func TestSignalsRemoveTheDatabase(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			tmp := t.TempDir()
			cmd, stdout, stderr := startStore(t, exe, tmp)
			listening := make(chan bool, 1)
			go func() {
				sc := bufio.NewScanner(stdout)
				listening <- sc.Scan() && strings.Contains(sc.Text(), `"listening"`)
				_, _ = io.Copy(io.Discard, stdout)
			}()
			select {
			case ok := <-listening:
				if !ok {
					_ = cmd.Process.Kill()
					t.Fatalf("not listening:\n%s", stderr)
				}
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("not listening after 60 s:\n%s", stderr)
			}
			exited := make(chan error, 1)
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
			nothingLeftIn(t, tmp)
		})
	}
}

// A second signal during the drain ends the process at once, exit 1, with
// a line that says so, and still removes the temporary database: here a
// client whose request body never ends holds the drain. The second
// signal used to be ignored until the drain was over.
func TestSecondSignalCutsTheDrainShort(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	cmd, stdout, stderr := startStore(t, exe, tmp)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var msg struct{ Msg, Addr string }
		if sc.Scan() && json.Unmarshal(sc.Bytes(), &msg) == nil && msg.Msg == "listening" {
			addr <- msg.Addr
		}
		close(addr)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var at string
	select {
	case at = <-addr:
	case <-time.After(60 * time.Second):
	}
	if at == "" {
		t.Fatalf("not listening:\n%s", stderr)
	}
	signalstest.HoldRequest(t, at, contract.PathUsernameCheck)
	// The server accepts connections in turn: one answered on a second
	// connection means the first is held.
	resp, err := http.Get("http://" + at + contract.PathSearch + "?query=a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	signalstest.CutShort(t, cmd.Process, exited, stderr.String, "userstore: second signal (interrupt): exiting without finishing the drain")
	nothingLeftIn(t, tmp)
}

// The same in this process: run returns with the drain cut short only
// once the server and its handlers have stopped, its port is closed and
// the temporary database removed (TestMain checks the goroutines).
func TestSecondSignalInProcess(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	stdoutR, stdoutW := io.Pipe()
	stderr := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(context.Background(), []string{"userstore", "-listen", "127.0.0.1:0", "-users", "100"},
			func(string) string { return "" }, stdoutW, stderr)
		stdoutW.CloseWithError(io.EOF)
		done <- err
	}()
	sc := bufio.NewScanner(stdoutR)
	var msg struct{ Msg, Addr string }
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &msg) != nil || msg.Msg != "listening" {
		t.Fatalf("not listening: %q\n%s", sc.Text(), stderr)
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutR) }()
	signalstest.HoldRequest(t, msg.Addr, contract.PathUsernameCheck)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + msg.Addr + contract.PathSearch + "?query=a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	signalstest.CutShortInProcess(t, done, stderr.String)
	if c, err := net.Dial("tcp", msg.Addr); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after run returned", msg.Addr)
	}
	nothingLeftIn(t, tmp)
}

// lockedBuffer collects stderr, which the server's goroutines write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
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

// instance is a running binary started through run.
type instance struct {
	addr   string
	stderr *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, env map[string]string, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	inst := &instance{stderr: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := run(ctx, append([]string{"userstore"}, args...), func(k string) string { return env[k] }, stdoutW, inst.stderr)
		stdoutW.CloseWithError(io.EOF)
		inst.done <- err
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdoutR)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			cancel()
			t.Fatalf("exited before listening: %v\n%s", <-inst.done, inst.stderr)
		}
		var msg struct{ Msg, Addr string }
		if err := json.Unmarshal([]byte(line), &msg); err != nil || msg.Msg != "listening" || msg.Addr == "" {
			cancel()
			t.Fatalf("first stdout line %q: %v", line, err)
		}
		inst.addr = msg.Addr
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("not listening after 60s\n%s", inst.stderr)
	}
	t.Cleanup(func() { inst.stop(t) })
	return inst
}

// stop cancels the context (as a signal would) and wants a clean exit.
func (inst *instance) stop(t *testing.T) {
	t.Helper()
	if inst.cancel == nil {
		return
	}
	inst.cancel()
	inst.cancel = nil
	select {
	case err := <-inst.done:
		if err != nil {
			t.Fatalf("run returned %v\n%s", err, inst.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit 15s after cancel")
	}
}

func (inst *instance) get(t *testing.T, path string, header map[string]string) (int, []byte) {
	t.Helper()
	return inst.do(t, http.MethodGet, path, "", header)
}

func (inst *instance) do(t *testing.T, method, path, body string, header map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+inst.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestRunSession starts the binary on a free port with a service token and
// recording, uses every call like the gateway would, then stops it and
// starts it again on the same database file.
func TestRunSession(t *testing.T) {
	data := filepath.Join(t.TempDir(), "users.db")
	env := map[string]string{"USERSTORE_SERVICE_TOKEN": "dev-token"}
	inst := start(t, env, "-listen", "127.0.0.1:0", "-data", data, "-users", "300", "-seed", "4", "-record")
	if !strings.HasPrefix(inst.addr, "127.0.0.1:") || strings.HasSuffix(inst.addr, ":0") {
		t.Fatalf("reported address %q", inst.addr)
	}
	auth := map[string]string{"Authorization": "Bearer dev-token", contract.HeaderRequestID: "req-7"}

	if status, body := inst.get(t, contract.PathUserPrefix+refstore.DemoUserID, nil); status != http.StatusUnauthorized ||
		!strings.Contains(string(body), `"code":"unauthorized"`) {
		t.Fatalf("without token: %d %s", status, body)
	}
	status, body := inst.get(t, contract.PathUserPrefix+refstore.DemoUserID, auth)
	var u contract.User
	if status != http.StatusOK || json.Unmarshal(body, &u) != nil || u.FirstName != "Şükrü" {
		t.Fatalf("demo user: %d %s", status, body)
	}
	status, body = inst.get(t, contract.PathSearch+"?q="+url.QueryEscape("ŞÜKRÜ IŞIK")+"&limit=5", auth)
	var sr contract.SearchResponse
	if status != http.StatusOK || json.Unmarshal(body, &sr) != nil || len(sr.Items) == 0 || sr.Items[0].ID != refstore.DemoUserID {
		t.Fatalf("search: %d %s", status, body)
	}
	check := map[string]string{"Authorization": "Bearer dev-token", "Content-Type": "application/json"}
	if status, body := inst.do(t, http.MethodPost, contract.PathUsernameCheck, `{"username":"johndoe123"}`, check); status != http.StatusOK ||
		string(body) != `{"username":"johndoe123","available":true}` {
		t.Fatalf("username check: %d %s", status, body)
	}
	if status, body := inst.get(t, contract.PathLiveStreams+"?userIds="+refstore.DemoUserID, auth); status != http.StatusOK ||
		!strings.Contains(string(body), refstore.DemoLiveStreamID) {
		t.Fatalf("live streams: %d %s", status, body)
	}
	status, body = inst.get(t, "/_debug/counts", auth)
	var counts struct{ Counts map[string]int64 }
	if status != http.StatusOK || json.Unmarshal(body, &counts) != nil || counts.Counts[refstore.OpUser] != 2 ||
		counts.Counts[refstore.OpSearch] != 1 || counts.Counts[refstore.OpUsernameCheck] != 1 || counts.Counts[refstore.OpLiveStreams] != 1 {
		t.Fatalf("counts: %d %s", status, body)
	}
	inst.stop(t)

	logs := inst.stderr.String()
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var entry struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		msgs = append(msgs, entry.Msg)
	}
	for _, want := range []string{"store ready", "listening", "shutting down", "stopped"} {
		if !strings.Contains(strings.Join(msgs, "|"), want) {
			t.Errorf("no %q log line in %v", want, msgs)
		}
	}
	if strings.Contains(logs, "dev-token") {
		t.Error("the service token reached the logs")
	}

	// Same file again, other seed options: the data stays as it was.
	again := start(t, nil, "-listen", "127.0.0.1:0", "-data", data, "-users", "500", "-seed", "9")
	status, body = again.get(t, contract.PathSearch+"?q=", nil)
	if status != http.StatusOK || json.Unmarshal(body, &sr) != nil || sr.Total != 300 {
		t.Fatalf("reopened store: %d %s", status, body)
	}
	again.stop(t)
}

func TestRunRejectsBadInvocations(t *testing.T) {
	for _, args := range [][]string{
		{"-users", "many"},
		{"-nope"},
		{"-listen", "127.0.0.1:0", "extra"},
		{"-listen", "127.0.0.1:0", "-users", "1"},
		{"-listen", "256.0.0.1:1", "-users", "10"},
		{"-listen", "127.0.0.1:0", "-data", filepath.Join(t.TempDir(), "missing", "dir", "users.db")},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(t.Context(), append([]string{"userstore"}, args...), func(string) string { return "" }, &stdout, &stderr); err == nil {
			t.Errorf("run %v succeeded", args)
		}
		if stdout.Len() != 0 {
			t.Errorf("run %v printed %q", args, stdout.String())
		}
	}
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"userstore", "-h"}, func(string) string { return "" }, io.Discard, &stderr); err != nil {
		t.Errorf("-h: %v", err)
	}
	if !strings.Contains(stderr.String(), "-listen") {
		t.Errorf("-h printed %q", stderr.String())
	}
}

// TestRunServiceTokenIsTrimmed: the gateway reads its copy of the token
// with surrounding whitespace trimmed and a blank value as unset
// (config.lookup, setScalar), so the store must read the same variable the
// same way. A secret mounted from a file often ends in a newline: kept,
// it made every call 401 (no client can send a newline in a header), and
// a blank variable turned on a token the gateway never sends.
func TestRunServiceTokenIsTrimmed(t *testing.T) {
	path := contract.PathUserPrefix + refstore.DemoUserID
	inst := start(t, map[string]string{"USERSTORE_SERVICE_TOKEN": " dev-token\n"}, "-listen", "127.0.0.1:0", "-users", "10")
	if status, body := inst.get(t, path, map[string]string{"Authorization": "Bearer dev-token"}); status != http.StatusOK {
		t.Fatalf("token with a trailing newline in the environment: %d %s", status, body)
	}
	if status, _ := inst.get(t, path, nil); status != http.StatusUnauthorized {
		t.Fatalf("without token: %d, want 401", status)
	}
	inst.stop(t)

	blank := start(t, map[string]string{"USERSTORE_SERVICE_TOKEN": "  \n"}, "-listen", "127.0.0.1:0", "-users", "10")
	if status, body := blank.get(t, path, nil); status != http.StatusOK {
		t.Fatalf("blank token variable should mean no token: %d %s", status, body)
	}
}

// startStore starts the binary as the store, with 100 users, on a free
// port and with tmp as its temporary directory.
func startStore(t *testing.T, exe, tmp string) (*exec.Cmd, io.ReadCloser, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(exe, "-listen", "127.0.0.1:0", "-users", "100")
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "TMPDIR="+tmp)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout, stderr
}

// nothingLeftIn fails the test for each file left in the directory tmp.
func nothingLeftIn(t *testing.T, tmp string) {
	t.Helper()
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in the temporary directory: %s", e.Name())
	}
}
