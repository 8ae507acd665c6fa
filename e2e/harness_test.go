// Package e2e holds the end-to-end tests: they build the real binaries
// (gateway, user store) exactly as the Dockerfile does (static,
// CGO_ENABLED=0), start them on loopback with a real identity provider
// serving real keys, and talk to them as the apps do. Each test reads like
// a user's session.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/edge/gateway/daemon"
	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
)

// bins are the binaries built once for the whole run.
var bins struct {
	dir, gateway, userstore, devidp string
}

// raceGateway is the gateway binary built with the race detector, made
// the first time a test asks for it (GatewayOptions.Race): it needs cgo
// and a C compiler, and takes a while to build cold, so only the tests
// that hunt for races pay for it.
var raceGateway struct {
	once sync.Once
	path string
	err  error
}

func raceGatewayBinary(t testing.TB) string {
	t.Helper()
	raceGateway.once.Do(func() {
		path := filepath.Join(bins.dir, "gateway-race")
		// No -trimpath: with go test -race's own flags the build reuses
		// the packages that command compiled and only links; -trimpath
		// compiles every one again, minutes on a cold 2-core CI machine,
		// inside this package's 10-minute test timeout.
		build := exec.Command("go", "build", "-race",
			"-ldflags", "-X github.com/bffgate/edge/gateway/daemon.Version=e2e-race",
			"-o", path, "./cmd/gateway")
		build.Dir = repoRoot
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := build.CombinedOutput(); err != nil {
			raceGateway.err = fmt.Errorf("building the gateway with -race: %v\n%s", err, out)
			return
		}
		raceGateway.path = path
	})
	if raceGateway.err != nil {
		t.Fatal(raceGateway.err)
	}
	return raceGateway.path
}

// repoRoot is the repository root (the e2e package's parent).
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}()

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edge-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	bins.gateway = filepath.Join(dir, "gateway")
	bins.userstore = filepath.Join(dir, "userstore")
	bins.devidp = filepath.Join(dir, "devidp")
	// The same build as the Dockerfile's: static, no cgo, trimmed paths.
	// A broken build is caught here, without Docker.
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X github.com/bffgate/edge/gateway/daemon.Version=e2e",
		"-o", dir+string(os.PathSeparator), "./cmd/gateway", "./cmd/userstore", "./cmd/devidp")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the binaries: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if sharedStore != nil {
		sharedStore.stop()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// The user store: the real binary with its real SQLite database.

// Store is a running cmd/userstore with request recording on.
type Store struct {
	URL  string
	Addr string
	cmd  *exec.Cmd
	logs *lockedBuffer
	dir  string // holds its database, a copy of the seeded one
}

// seeded is the database every store of the run starts from, a copy each:
// the binary seeds its 10,000 users in a second or more on a busy machine,
// and some sixty tests start a store of their own.
var seeded struct {
	once sync.Once
	path string
	err  error
}

// seededDatabase returns the seeded database file, made the first time by
// the store binary itself (started on it, then stopped).
func seededDatabase() (string, error) {
	seeded.once.Do(func() {
		dir, err := os.MkdirTemp(bins.dir, "seeded-")
		if err != nil {
			seeded.err = err
			return
		}
		path := filepath.Join(dir, "users.db")
		cmd := exec.Command(bins.userstore, "-listen", "127.0.0.1:0", "-data", path)
		logs := &lockedBuffer{}
		cmd.Stderr = logs
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			seeded.err = err
			return
		}
		if err := cmd.Start(); err != nil {
			seeded.err = err
			return
		}
		_, err = awaitAddr(stdout, 60*time.Second, func(line map[string]any) (string, bool) {
			a, ok := line["addr"].(string)
			return a, ok && line["msg"] == "listening"
		})
		// Stopped, it has closed the database: the file is complete.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case werr := <-exited:
			if err == nil && werr != nil {
				err = fmt.Errorf("stopping: %v", werr)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			if err == nil {
				err = fmt.Errorf("did not stop in time")
			}
		}
		if err != nil {
			seeded.err = fmt.Errorf("seeding the user store's database: %v; logs:\n%s", err, logs.String())
			return
		}
		seeded.path = path
	})
	return seeded.path, seeded.err
}

// copyDatabase copies the SQLite file at from, with its -wal and -shm
// files if it left any, into dir; it returns the copy's path.
func copyDatabase(from, dir string) (string, error) {
	to := filepath.Join(dir, filepath.Base(from))
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(from + suffix)
		if suffix != "" && os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(to+suffix, b, 0o600); err != nil {
			return "", err
		}
	}
	return to, nil
}

var (
	sharedStoreOnce sync.Once
	sharedStore     *Store
	sharedStoreErr  error
)

// SharedStore is one user store for the whole run, for tests that only
// read. Tests that count calls must Reset it or use StartStore.
func SharedStore(t testing.TB) *Store {
	t.Helper()
	sharedStoreOnce.Do(func() {
		sharedStore, sharedStoreErr = startStore(context.Background(), nil)
	})
	if sharedStoreErr != nil {
		t.Fatalf("shared user store: %v", sharedStoreErr)
	}
	return sharedStore
}

// StartStore starts a user store of the test's own, stopped at cleanup.
// env adds environment variables (USERSTORE_SERVICE_TOKEN).
func StartStore(t testing.TB, env map[string]string) *Store {
	t.Helper()
	s, err := startStore(context.Background(), env)
	if err != nil {
		t.Fatalf("user store: %v", err)
	}
	t.Cleanup(s.stop)
	return s
}

func startStore(ctx context.Context, env map[string]string) (*Store, error) {
	from, err := seededDatabase()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(bins.dir, "store-")
	if err != nil {
		return nil, err
	}
	db, err := copyDatabase(from, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bins.userstore, "-listen", "127.0.0.1:0", "-record", "-data", db)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	s := &Store{cmd: cmd, logs: &lockedBuffer{}, dir: dir}
	cmd.Stderr = s.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr, err := awaitAddr(stdout, 60*time.Second, func(line map[string]any) (string, bool) {
		a, ok := line["addr"].(string)
		return a, ok && line["msg"] == "listening"
	})
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("%v; logs:\n%s", err, s.logs.String())
	}
	s.Addr, s.URL = addr, "http://"+addr
	return s, nil
}

func (s *Store) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	}
	os.RemoveAll(s.dir)
}

// Counts is the number of calls per operation the store received since the
// last Reset (operations: usernameCheck, search, user, liveStreams).
func (s *Store) Counts(t testing.TB) map[string]int64 {
	t.Helper()
	var out struct{ Counts map[string]int64 }
	s.debug(t, http.MethodGet, "/_debug/counts", &out)
	return out.Counts
}

// Total is the number of calls of any operation since the last Reset.
func (s *Store) Total(t testing.TB) int64 {
	var n int64
	for _, c := range s.Counts(t) {
		n += c
	}
	return n
}

// Requests are the requests the store received since the last Reset.
func (s *Store) Requests(t testing.TB) []refstore.RecordedRequest {
	t.Helper()
	var out struct{ Items []refstore.RecordedRequest }
	s.debug(t, http.MethodGet, "/_debug/requests", &out)
	return out.Items
}

// Reset clears the counts and recorded requests.
func (s *Store) Reset(t testing.TB) {
	t.Helper()
	s.debug(t, http.MethodPost, "/_debug/reset", nil)
}

func (s *Store) debug(t testing.TB, method, path string, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("store %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("store %s: %d %s", path, resp.StatusCode, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("store %s: %v: %s", path, err, body)
		}
	}
}

// ---------------------------------------------------------------------------
// The identity provider: real keys, a real JWKS endpoint on loopback.

// IdP is the development identity provider served on loopback.
type IdP struct {
	*devidp.Provider
	URL     string
	JWKSURL string
	srv     *httptest.Server
}

// StartIdP serves a new identity provider (RSA and EC keys) for the test.
func StartIdP(t testing.TB) *IdP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	p, err := devidp.New(devidp.Options{Issuer: issuer, Audience: "edge-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &IdP{Provider: p, URL: issuer, JWKSURL: issuer + "/.well-known/jwks.json", srv: srv}
}

// Token mints a valid access token for sub with roles.
func (i *IdP) Token(t testing.TB, sub string, roles ...string) string {
	t.Helper()
	tok, err := i.Mint(devidp.MintClaims{Subject: sub, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// UserToken is a token of the seeded demo user; AdminToken of the admin.
func (i *IdP) UserToken(t testing.TB) string {
	return i.Token(t, refstore.DemoUserID, "user")
}
func (i *IdP) AdminToken(t testing.TB) string {
	return i.Token(t, refstore.DemoAdminID, "user", "admin")
}

// ---------------------------------------------------------------------------
// The gateway.

// GatewayOptions say how to run a gateway. The configuration is the
// repository's config.yaml (or ConfigYAML), pointed by environment
// overrides at the store and identity provider, listening on free ports.
type GatewayOptions struct {
	Store *Store // or StoreURL
	// StoreURL overrides Store's URL (e.g. a fault proxy in front of it).
	StoreURL string
	IdP      *IdP
	// JWKSURL overrides IdP's JWKS URL (e.g. a JWKS that is down).
	JWKSURL string
	// ConfigYAML replaces the repository's config.yaml.
	ConfigYAML string
	// ConfigPath, when set, is the file the gateway runs (ConfigYAML is
	// then not used): one the test made itself.
	ConfigPath string
	// Env adds environment overrides (GATEWAY_...).
	Env map[string]string
	// NoReadyWait returns as soon as the gateway listens, ready or not.
	NoReadyWait bool
	// Race runs the gateway binary built with the race detector; its
	// reports land in Logs (stderr), and a race found makes the process
	// exit 66 instead of 0.
	Race bool
}

func (o GatewayOptions) env() map[string]string {
	env := map[string]string{
		"GATEWAY_SERVER__LISTEN": "127.0.0.1:0",
		"GATEWAY_OPS__LISTEN":    "127.0.0.1:0",
		"GATEWAY_LOG__LEVEL":     "debug",
		// Rate limits are tested on their own; here they must not get in
		// the way of tests that make many calls from one address.
		"GATEWAY_POLICIES__ALL__RATELIMITS__PERIP__RATE":         "100000",
		"GATEWAY_POLICIES__ALL__RATELIMITS__PERIP__BURST":        "100000",
		"GATEWAY_POLICIES__ALL__RATELIMITS__PERUSER__RATE":       "100000",
		"GATEWAY_POLICIES__ALL__RATELIMITS__PERUSER__BURST":      "100000",
		"GATEWAY_POLICIES__ALL__RATELIMITS__PERDEVICE__RATE":     "100000",
		"GATEWAY_POLICIES__ALL__RATELIMITS__PERDEVICE__BURST":    "100000",
		"GATEWAY_POLICIES__ALL__RATELIMITS__AUTHFAILURES__RATE":  "100000",
		"GATEWAY_POLICIES__ALL__RATELIMITS__AUTHFAILURES__BURST": "100000",
	}
	// The admin platform sets its own, stricter limits.
	for _, k := range []string{"PERIP", "PERUSER", "PERDEVICE", "AUTHFAILURES"} {
		env["GATEWAY_POLICIES__ADMIN__RATELIMITS__"+k+"__RATE"] = "100000"
		env["GATEWAY_POLICIES__ADMIN__RATELIMITS__"+k+"__BURST"] = "100000"
	}
	if o.IdP != nil {
		env["GATEWAY_AUTH__JWKSURLS"] = o.IdP.JWKSURL
		env["GATEWAY_AUTH__ISSUER"] = o.IdP.URL
	}
	if o.JWKSURL != "" {
		env["GATEWAY_AUTH__JWKSURLS"] = o.JWKSURL
	}
	switch {
	case o.StoreURL != "":
		env["GATEWAY_UPSTREAMS__USERSTORE__BASEURL"] = o.StoreURL
	case o.Store != nil:
		env["GATEWAY_UPSTREAMS__USERSTORE__BASEURL"] = o.Store.URL
	}
	for k, v := range o.Env {
		env[k] = v
	}
	return env
}

func (o GatewayOptions) configFile(t testing.TB) string {
	t.Helper()
	if o.ConfigPath != "" {
		return o.ConfigPath
	}
	if o.ConfigYAML == "" {
		return filepath.Join(repoRoot, "config.yaml")
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(o.ConfigYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Gateway is a running gateway, the real binary or (StartInProcess) the
// daemon in this process.
type Gateway struct {
	URL, OpsURL string
	ConfigPath  string
	cmd         *exec.Cmd
	logs        *lockedBuffer
	stopped     chan struct{}
	exitErr     error
	cancel      context.CancelFunc // in-process only
	client      *http.Client
	// stopAsked: the test sent the binary SIGTERM or SIGINT itself, so
	// Stop only waits (a second one cuts the drain, or the clean-up
	// after it, short: exit 1).
	stopAsked atomic.Bool
}

// StartGateway runs the gateway binary and waits until it is ready.
func StartGateway(t testing.TB, o GatewayOptions) *Gateway {
	t.Helper()
	g := &Gateway{ConfigPath: o.configFile(t), logs: &lockedBuffer{}, stopped: make(chan struct{}), client: newClient()}
	bin := bins.gateway
	if o.Race {
		bin = raceGatewayBinary(t)
	}
	cmd := exec.Command(bin, "-config", g.ConfigPath)
	cmd.Env = os.Environ()
	for k, v := range o.env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(g.logs, pw)
	cmd.Stderr = g.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g.cmd = cmd
	go func() {
		g.exitErr = cmd.Wait()
		pw.Close()
		close(g.stopped)
	}()
	t.Cleanup(func() { g.Stop(t) })
	var ops string
	addr, err := awaitAddr(pr, 30*time.Second, func(line map[string]any) (string, bool) {
		a, ok := line["addr"].(string)
		ops, _ = line["ops"].(string)
		return a, ok && line["msg"] == "listening"
	})
	go io.Copy(io.Discard, pr)
	if err != nil {
		t.Fatalf("gateway did not start: %v\nlogs:\n%s", err, g.logs.String())
	}
	g.URL = "http://" + addr
	if ops != "" {
		g.OpsURL = "http://" + ops
	}
	if !o.NoReadyWait {
		g.AwaitReady(t)
	}
	return g
}

// StartInProcess runs the gateway's daemon inside the test process, for
// tests that look at goroutines and connections afterwards.
func StartInProcess(t testing.TB, o GatewayOptions) *Gateway {
	t.Helper()
	g := &Gateway{ConfigPath: o.configFile(t), logs: &lockedBuffer{}, stopped: make(chan struct{}), client: newClient()}
	env := o.env()
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return ""
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	listening := make(chan [2]net.Addr, 1)
	go func() {
		g.exitErr = daemon.Run(ctx, daemon.Options{
			ConfigPath: g.ConfigPath, Getenv: getenv, Stdout: g.logs,
			OnListening: func(pub, ops net.Addr) { listening <- [2]net.Addr{pub, ops} },
		})
		close(g.stopped)
	}()
	t.Cleanup(func() { g.Stop(t) })
	select {
	case a := <-listening:
		g.URL = "http://" + a[0].String()
		if a[1] != nil {
			g.OpsURL = "http://" + a[1].String()
		}
	case <-g.stopped:
		t.Fatalf("gateway did not start: %v\nlogs:\n%s", g.exitErr, g.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("gateway did not start in time\nlogs:\n%s", g.logs.String())
	}
	if !o.NoReadyWait {
		g.AwaitReady(t)
	}
	return g
}

func newClient() *http.Client {
	return &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// AwaitReady waits until /readyz answers 200.
func (g *Gateway) AwaitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := g.client.Get(g.OpsURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready: %v\nlogs:\n%s", err, g.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the gateway (SIGTERM for the binary, unless the test sent one
// already) and waits for it. It returns the process's exit error (nil for
// a clean exit 0).
//
// When Stop ends it, the test's client first hangs up its idle
// connections: concurrent requests can leave one the transport dialled but
// never used, and the gateway's drain waits server.readTimeout (10 s) for
// its first request (docs/operations.md).
func (g *Gateway) Stop(t testing.TB) error {
	tr, _ := g.client.Transport.(*http.Transport)
	if g.cancel != nil {
		if tr != nil {
			tr.CloseIdleConnections()
		}
		g.cancel()
	} else if g.cmd != nil && g.cmd.Process != nil && !g.stopAsked.Swap(true) {
		if tr != nil {
			tr.CloseIdleConnections()
		}
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-g.stopped:
	case <-time.After(30 * time.Second):
		if g.cmd != nil {
			_ = g.cmd.Process.Kill()
		}
		<-g.stopped
		t.Errorf("gateway did not stop in time")
	}
	if tr != nil {
		tr.CloseIdleConnections()
	}
	return g.exitErr
}

// Signal sends a signal to the gateway binary (SIGHUP reloads).
func (g *Gateway) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if g.cmd == nil {
		t.Fatal("Signal needs the binary (StartGateway)")
	}
	if sig == syscall.SIGTERM || sig == os.Interrupt {
		g.stopAsked.Store(true)
	}
	if err := g.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Logs returns everything the gateway logged so far.
func (g *Gateway) Logs() string { return g.logs.String() }

// LogLines returns the JSON log lines (other lines are skipped).
func (g *Gateway) LogLines() []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(g.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Talking to the gateway.

// Response is one answer of the gateway.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Envelope is the gateway's unified response body.
type Envelope struct {
	IsSuccess  bool            `json:"isSuccess"`
	StatusCode int             `json:"statusCode"`
	Data       json.RawMessage `json:"data"`
	Errors     []string        `json:"errors"`
	Timestamp  string          `json:"timestamp"`
}

// ReqOpt changes a request.
type ReqOpt func(*http.Request)

// Bearer sends "Authorization: Bearer <token>"; Bare sends the token
// alone, as the seed's docs tell app developers to.
func Bearer(token string) ReqOpt { return Header("Authorization", "Bearer "+token) }
func Bare(token string) ReqOpt   { return Header("Authorization", token) }

// Header sets a header (Add, so it can be repeated).
func Header(k, v string) ReqOpt { return func(r *http.Request) { r.Header.Add(k, v) } }

// Lang sends X-Language; Platform sends X-Platform.
func Lang(l string) ReqOpt     { return Header("X-Language", l) }
func Platform(p string) ReqOpt { return Header("X-Platform", p) }

// JSONBody sends body with Content-Type application/json.
func JSONBody(body string) ReqOpt {
	return func(r *http.Request) {
		r.Body = io.NopCloser(strings.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Type", "application/json")
	}
}

// RawBody sends body with the given content type.
func RawBody(contentType string, body []byte) ReqOpt {
	return func(r *http.Request) {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
	}
}

// KeepAlive is one raw connection to the gateway, for tests that send
// request after request on the same connection.
type KeepAlive struct {
	conn net.Conn
	br   *bufio.Reader
}

// KeepAlive dials the gateway; the connection is closed when the test ends.
func (g *Gateway) KeepAlive(t testing.TB) *KeepAlive {
	t.Helper()
	return g.KeepAliveFrom(t, "")
}

// KeepAliveFrom dials the gateway from the loopback address ip (say
// 127.0.0.2: every 127/8 address is the loopback interface's on Linux), a
// client of its own to the gateway; "" lets the system choose.
func (g *Gateway) KeepAliveFrom(t testing.TB, ip string) *KeepAlive {
	t.Helper()
	d := net.Dialer{}
	if ip != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	conn, err := d.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &KeepAlive{conn: conn, br: bufio.NewReader(conn)}
}

// Send writes raw (a whole HTTP/1.1 request) and reads its answer.
func (k *KeepAlive) Send(t testing.TB, raw string) *Response {
	t.Helper()
	what, _, _ := strings.Cut(raw, "\r\n") // the request line names it in failures
	if _, err := io.WriteString(k.conn, raw); err != nil {
		t.Fatalf("writing %q: %v", what, err)
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", what, err)
	}
	return readResponse(t, resp, fmt.Sprintf("the answer to %q", what))
}

// readResponse reads and closes resp's body; what names it in a failure.
func readResponse(t testing.TB, resp *http.Response, what string) *Response {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: reading body: %v", what, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// Closed waits for the gateway to close the connection: it reports the
// error of a one-byte read (io.EOF once closed) and what it read.
func (k *KeepAlive) Closed() (int, error) { return k.br.Read(make([]byte, 1)) }

// Do sends a request to the gateway.
func (g *Gateway) Do(t testing.TB, method, path string, opts ...ReqOpt) *Response {
	t.Helper()
	return g.do(t, g.URL, method, path, opts...)
}

func (g *Gateway) do(t testing.TB, base, method, path string, opts ...ReqOpt) *Response {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return readResponse(t, resp, method+" "+path)
}

// Ops sends a request to the ops listener.
func (g *Gateway) Ops(t testing.TB, method, path string, opts ...ReqOpt) *Response {
	t.Helper()
	return g.do(t, g.OpsURL, method, path, opts...)
}

// sendWith sends one request through c and reads its answer; failures
// come back as errors, so goroutines other than the test's may call it.
func sendWith(c *http.Client, method, url string, opts ...ReqOpt) (*Response, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// Metrics is the ops listener's /metrics page, in Prometheus' text format.
func (g *Gateway) Metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get(g.OpsURL + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d %v", resp.StatusCode, err)
	}
	return string(body)
}

var timestampRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// Envelope checks that the body is exactly the unified envelope, with the
// statusCode of the HTTP status, the success or failure shape, a UTC
// millisecond timestamp, JSON content type and a request id, and returns
// it.
func (r *Response) Envelope(t testing.TB) Envelope {
	t.Helper()
	e, err := r.CheckEnvelope()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// CheckEnvelope is Envelope for goroutines that cannot stop the test: it
// reports what is wrong instead.
func (r *Response) CheckEnvelope() (Envelope, error) {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return Envelope{}, fmt.Errorf("Content-Type %q, want application/json; body %s", ct, r.Body)
	}
	if r.Header.Get("X-Request-Id") == "" {
		return Envelope{}, fmt.Errorf("no X-Request-Id on %d %s", r.Status, r.Body)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &keys); err != nil {
		return Envelope{}, fmt.Errorf("body is not a JSON object: %v: %s", err, r.Body)
	}
	want := []string{"data", "errors", "isSuccess", "statusCode", "timestamp"}
	if len(keys) != len(want) {
		return Envelope{}, fmt.Errorf("envelope keys %v, want exactly %v: %s", mapKeys(keys), want, r.Body)
	}
	for _, k := range want {
		if _, ok := keys[k]; !ok {
			return Envelope{}, fmt.Errorf("envelope lacks %q: %s", k, r.Body)
		}
	}
	var e Envelope
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Envelope{}, fmt.Errorf("envelope: %v: %s", err, r.Body)
	}
	if e.StatusCode != r.Status {
		return Envelope{}, fmt.Errorf("statusCode %d but HTTP status %d: %s", e.StatusCode, r.Status, r.Body)
	}
	if !timestampRE.MatchString(e.Timestamp) {
		return Envelope{}, fmt.Errorf("timestamp %q is not UTC with milliseconds and Z", e.Timestamp)
	}
	if ts, err := time.Parse(time.RFC3339Nano, e.Timestamp); err != nil || time.Since(ts).Abs() > time.Minute {
		return Envelope{}, fmt.Errorf("timestamp %q is not now", e.Timestamp)
	}
	if e.Errors == nil {
		return Envelope{}, fmt.Errorf("errors must be a list, never null: %s", r.Body)
	}
	if r.Status < 400 {
		if !e.IsSuccess || len(e.Errors) != 0 {
			return Envelope{}, fmt.Errorf("success envelope must have isSuccess true and errors []: %s", r.Body)
		}
	} else if e.IsSuccess || string(e.Data) != "null" || len(e.Errors) == 0 {
		return Envelope{}, fmt.Errorf("failure envelope must have isSuccess false, data null and errors: %s", r.Body)
	}
	return e, nil
}

// Failure checks a failure envelope with the given status and first
// message, and returns all its messages.
func (r *Response) Failure(t testing.TB, status int, first string) []string {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	e := r.Envelope(t)
	if e.Errors[0] != first {
		t.Fatalf("first error %q, want %q (all: %q)", e.Errors[0], first, e.Errors)
	}
	return e.Errors
}

// Data checks a 200 success envelope and decodes its data into v.
func (r *Response) Data(t testing.TB, v any) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.Status, r.Body)
	}
	e := r.Envelope(t)
	if v != nil {
		if err := json.Unmarshal(e.Data, v); err != nil {
			t.Fatalf("data: %v: %s", err, e.Data)
		}
	}
}

func mapKeys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// ---------------------------------------------------------------------------
// Small helpers.

// awaitAddr reads JSON lines from r until match finds the address.
func awaitAddr(r io.Reader, timeout time.Duration, match func(map[string]any) (string, bool)) (string, error) {
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			if a, ok := match(m); ok {
				found <- a
				break
			}
		}
		close(found)
	}()
	select {
	case a, ok := <-found:
		if !ok {
			return "", fmt.Errorf("exited before listening")
		}
		return a, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("no listening line within %s", timeout)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and many readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eventually retries check until it returns nil or the time is up.
func eventually(t testing.TB, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", within, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
