package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/refstore"
	"golang.org/x/sys/unix"
)

// Live configuration: ops edit config.yaml (or send SIGHUP) while the apps
// keep calling; a valid file applies within moments, a broken one is
// refused and counted while the old configuration keeps serving, and what
// needs a restart is said so.

// polReplaceFile writes content beside path and renames it over path, as
// editors and deploy tools do, so the gateway never reads half a file.
func polReplaceFile(t testing.TB, path, content string) {
	t.Helper()
	if err := polReplace(path, content); err != nil {
		t.Fatal(err)
	}
}

// polReplace is polReplaceFile for a goroutine other than the test's.
func polReplace(path, content string) error {
	tmp := filepath.Join(filepath.Dir(path), ".incoming-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// polLogs follows a gateway's JSON log from a mark.
type polLogs struct {
	gw   *Gateway
	mark int
}

// polFollowLogs starts following the log from now on.
func polFollowLogs(gw *Gateway) *polLogs {
	return &polLogs{gw: gw, mark: len(gw.LogLines())}
}

// await waits (up to within) for a line after the mark with msg whose
// fields include every key of want (string values compared exactly), and
// moves the mark past it.
func (l *polLogs) await(t testing.TB, within time.Duration, msg string, want map[string]string) map[string]any {
	t.Helper()
	var found map[string]any
	eventually(t, within, func() error {
		lines := l.gw.LogLines()
		for i := l.mark; i < len(lines); i++ {
			line := lines[i]
			if line["msg"] != msg {
				continue
			}
			ok := true
			for k, v := range want {
				if fmt.Sprint(line[k]) != v {
					ok = false
				}
			}
			if ok {
				found, l.mark = line, i+1
				return nil
			}
		}
		return fmt.Errorf("no log line %q with %v; lines since the mark:\n%s", msg, want, l.since(lines))
	})
	return found
}

func (l *polLogs) since(lines []map[string]any) string {
	var b strings.Builder
	for _, line := range lines[min(l.mark, len(lines)):] {
		if line["msg"] == "request" || line["msg"] == "access" || line["route"] != nil && line["status"] != nil {
			continue // access log lines
		}
		raw, _ := json.Marshal(line)
		b.Write(raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// polTraffic is app traffic running in the background: every answer must
// be a 200 success envelope, whatever the configuration does meanwhile.
type polTraffic struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	sent   atomic.Int64
	mu     sync.Mutex
	errors []string
}

// polStartTraffic keeps clients of the mobile_android platform busy with
// searches, profiles and name checks until stopped.
func polStartTraffic(gw *Gateway, tokens []string, clients int) *polTraffic {
	tr := &polTraffic{stop: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	base := gw.URL // read once: the harness's Gateway.Ops swaps gw.URL while it runs
	for c := range clients {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			defer client.CloseIdleConnections()
			for i := 0; ; i++ {
				select {
				case <-tr.stop:
					return
				default:
				}
				h := http.Header{"Authorization": {"Bearer " + tokens[c%len(tokens)]}, "X-Platform": {"mobile_android"}}
				method, path := http.MethodGet, fmt.Sprintf("/api/v2/users/search?query=%c", 'a'+i%26)
				var body string
				switch i % 3 {
				case 1:
					path = "/api/v1/users/me"
				case 2:
					method, path, body = http.MethodPost, "/api/v1/users/check-username", `{"username":"johndoe123"}`
				}
				req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
				req.Header = h
				if body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				tr.check(client, req)
			}
		}()
	}
	return tr
}

func (tr *polTraffic) check(client *http.Client, req *http.Request) {
	tr.sent.Add(1)
	fail := func(format string, args ...any) {
		tr.mu.Lock()
		tr.errors = append(tr.errors, req.Method+" "+req.URL.Path+": "+fmt.Sprintf(format, args...))
		tr.mu.Unlock()
	}
	resp, err := client.Do(req)
	if err != nil {
		fail("%v", err)
		return
	}
	defer resp.Body.Close()
	var env struct {
		IsSuccess  *bool           `json:"isSuccess"`
		StatusCode int             `json:"statusCode"`
		Data       json.RawMessage `json:"data"`
		Errors     []string        `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		fail("%d, not an envelope: %v", resp.StatusCode, err)
		return
	}
	if resp.StatusCode != http.StatusOK || env.IsSuccess == nil || !*env.IsSuccess || env.StatusCode != 200 ||
		len(env.Data) == 0 || string(env.Data) == "null" || env.Errors == nil || len(env.Errors) != 0 ||
		resp.Header.Get("Content-Type") != "application/json" {
		fail("%d %+v", resp.StatusCode, env)
	}
}

// finish stops the traffic and reports what went wrong.
func (tr *polTraffic) finish(t testing.TB, atLeast int64) {
	t.Helper()
	close(tr.stop)
	tr.wg.Wait()
	if len(tr.errors) > 0 {
		t.Errorf("%d of %d background requests failed; first ones:\n%s", len(tr.errors), tr.sent.Load(),
			strings.Join(tr.errors[:min(10, len(tr.errors))], "\n"))
	}
	if n := tr.sent.Load(); n < atLeast {
		t.Errorf("only %d background requests ran, want at least %d", n, atLeast)
	}
}

// polOps GETs a path of the ops listener. (Gateway.Ops would do, but it
// swaps gw.URL while it runs, which races with background traffic.)
func polOps(t testing.TB, gw *Gateway, path string) *Response {
	t.Helper()
	resp, err := http.Get(gw.OpsURL + path)
	if err != nil {
		t.Fatalf("ops %s: %v", path, err)
	}
	return readResponse(t, resp, "ops "+path)
}

// polFreePort finds a loopback port nobody listens on (for a moment).
func polFreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// The reload session. The gateway runs the file's own listen address (the
// harness's override is blanked) so that a change of it can be seen.
func TestLiveReloadWithTrafficRunning(t *testing.T) {
	idp := StartIdP(t)
	const (
		v1 = `
server: {listen: "127.0.0.1:0"}
cache: {routes: {search: {ttl: 0s}}}
`
		// A search TTL, a rate limit and a policy rule change.
		v2 = `
server: {listen: "127.0.0.1:0"}
cache: {routes: {search: {ttl: 1m}}}
policies:
  web:
    rateLimits: {perUser: {rate: 0.001, burst: 2}}
    routes: {users.me: {allow: false}}
`
		// Then back to no caching, another limit, and another rule.
		v3 = `
server: {listen: "127.0.0.1:0"}
cache: {routes: {search: {ttl: 0s}}}
policies:
  web:
    rateLimits: {perUser: {rate: 0.001, burst: 5}}
    routes: {users.search: {scopes: [search]}}
`
	)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, ConfigYAML: polConfig(t, v1),
		Env: map[string]string{"GATEWAY_SERVER__LISTEN": ""}})
	logs := polFollowLogs(gw)
	user := idp.UserToken(t)
	searcher := polMint(t, idp, "searcher-01", []string{"user"}, []string{"search"})
	errorsCounted := func() float64 { return polMetric(t, gw, `gateway_config_reloads_total{result="error"}`) }

	traffic := polStartTraffic(gw, []string{idp.UserToken(t), idp.AdminToken(t)}, 4)
	defer func() {
		if traffic != nil {
			traffic.finish(t, 0)
		}
	}()

	xcache := func(token string) string {
		r := gw.Do(t, http.MethodGet, "/api/v2/users/search?query=reload", Bearer(token))
		r.Data(t, nil)
		return r.Header.Get("X-Cache")
	}
	if got := xcache(user); got != "BYPASS" {
		t.Fatalf("v1: search TTL 0 should bypass the cache, X-Cache %q", got)
	}
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user)).Data(t, nil)

	t.Run("a new file renamed into place applies at once", func(t *testing.T) {
		polReplaceFile(t, gw.ConfigPath, polConfig(t, v2))
		line := logs.await(t, 2*time.Second, "config reloaded", map[string]string{"trigger": "file change", "level": "INFO"})
		applied := fmt.Sprint(line["applied"])
		for _, p := range []string{"cache.routes.search.ttl", "policies.web.rateLimits.perUser.rate",
			"policies.web.rateLimits.perUser.burst", "policies.web.routes.users.me.allow"} {
			if !strings.Contains(applied, p) {
				t.Errorf("applied %s lacks %s", applied, p)
			}
		}
		if got := fmt.Sprint(line["needs_restart"]); got != "[]" {
			t.Errorf("needs_restart %s, want [] (a list, even empty, for a log query)", got)
		}
		if got := xcache(user); got != "MISS" {
			t.Errorf("v2 first search: X-Cache %q, want MISS", got)
		}
		if got := xcache(user); got != "HIT" {
			t.Errorf("v2 second search: X-Cache %q, want HIT", got)
		}
		gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user)).Failure(t, http.StatusForbidden, "Insufficient permissions")
		carol := idp.Token(t, "carol-03", "user")
		for range 2 {
			polRoutes[0].call(t, gw, Bearer(carol)).Data(t, nil)
		}
		polTooMany(t, polRoutes[0].call(t, gw, Bearer(carol)), "en", 2)
	})

	stillV2 := func(t *testing.T) {
		t.Helper()
		if got := xcache(user); got != "HIT" {
			t.Errorf("old config: X-Cache %q, want HIT", got)
		}
		gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user)).Failure(t, http.StatusForbidden, "Insufficient permissions")
	}

	for _, tc := range []struct{ name, file, problem string }{
		{"YAML syntax error", "server: {listen: \"127.0.0.1:0\"\ncache: [", "config: not valid YAML"},
		{"HS256 allowed", polConfig(t, v2+"auth: {algorithms: [RS256, HS256]}\n"), "auth.algorithms"},
		{"unknown policy key", polConfig(t, v2+"  mobile_ios: {rateLimit: {perUser: {rate: 1, burst: 1}}}\n"),
			`policies.mobile_ios.rateLimit: unknown key (line`},
		{"policy hard rule", polConfig(t, v2+"  api: {routes: {admin.users.get: {allow: true}}}\n"),
			"policies.api.routes.admin.users.get.allow: admin routes can be allowed only on the admin platform"},
		{"a timeout with a wrong unit", polConfig(t, strings.Replace(v2, `server: {listen: "127.0.0.1:0"}`,
			`server: {listen: "127.0.0.1:0", requestTimeout: 3000s}`, 1)),
			"server.requestTimeout: must be at most 2m (got 50m0s)"},
	} {
		t.Run("rejected: "+tc.name, func(t *testing.T) {
			before := errorsCounted()
			polReplaceFile(t, gw.ConfigPath, tc.file)
			line := logs.await(t, 2*time.Second, "config reload rejected; the running configuration stays",
				map[string]string{"trigger": "file change", "level": "ERROR"})
			if msg := fmt.Sprint(line["error"]); !strings.Contains(msg, tc.problem) {
				t.Errorf("logged error %q lacks %q", msg, tc.problem)
			}
			if got := errorsCounted(); got != before+1 {
				t.Errorf("config_reloads_total{error} %g -> %g, want one more", before, got)
			}
			stillV2(t)
		})
	}

	t.Run("a listen address change needs a restart", func(t *testing.T) {
		elsewhere := polFreePort(t)
		polReplaceFile(t, gw.ConfigPath, polConfig(t, strings.Replace(v2, "127.0.0.1:0", elsewhere, 1)))
		line := logs.await(t, 2*time.Second, "config reloaded", map[string]string{"trigger": "file change"})
		if got := fmt.Sprint(line["needs_restart"]); got != "[server.listen]" {
			t.Errorf("needs_restart %s, want [server.listen]", got)
		}
		if got := fmt.Sprint(line["applied"]); got != "[]" {
			t.Errorf("applied %s, want []", got)
		}
		stillV2(t) // on the old listener
		if c, err := net.DialTimeout("tcp", elsewhere, time.Second); err == nil {
			c.Close()
			t.Errorf("something listens on %s after a reload", elsewhere)
		}
		var running struct {
			Server struct{ Listen string } `json:"server"`
		}
		polOps(t, gw, "/ops/v1/config").Data(t, &running)
		if running.Server.Listen != "127.0.0.1:0" {
			t.Errorf("the running configuration says listen %q; the process still runs 127.0.0.1:0", running.Server.Listen)
		}
	})

	t.Run("SIGHUP reloads a file the watcher cannot see", func(t *testing.T) {
		// The config path becomes a symbolic link to a file elsewhere, as
		// with a Kubernetes ConfigMap: the swap itself is seen (nothing
		// changes), edits of the target are not, until SIGHUP.
		target := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(target, []byte(polConfig(t, v2)), 0o600); err != nil {
			t.Fatal(err)
		}
		link := gw.ConfigPath + ".link"
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link, gw.ConfigPath); err != nil {
			t.Fatal(err)
		}
		logs.await(t, 2*time.Second, "config reload: no changes", map[string]string{"trigger": "file change"})

		polReplaceFile(t, target, polConfig(t, v3))
		stillV2(t)
		gw.Signal(t, syscall.SIGHUP)
		logs.await(t, 2*time.Second, "config reloaded", map[string]string{"trigger": "SIGHUP"})

		if got := xcache(searcher); got != "BYPASS" {
			t.Errorf("v3 search: X-Cache %q, want BYPASS", got)
		}
		gw.Do(t, http.MethodGet, "/api/v2/users/search?query=reload", Bearer(user), Lang("tr")).Failure(t, http.StatusForbidden, "Yetersiz yetki")
		var me struct{ ID string }
		gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user)).Data(t, &me)
		if me.ID != refstore.DemoUserID {
			t.Errorf("/me: %q", me.ID)
		}
		dave := idp.Token(t, "dave-04", "user")
		for range 5 {
			polRoutes[0].call(t, gw, Bearer(dave)).Data(t, nil)
		}
		polTooMany(t, polRoutes[0].call(t, gw, Bearer(dave)), "en", 5)
	})

	tr := traffic
	traffic = nil
	tr.finish(t, 100)
}

// A reload whose user-store settings the client would refuse (an
// operation timeout at or below the wait for a pooled connection, fixed
// at start: 75ms with the repository's config) is rejected whole: it used
// to apply the file's other changes, count as a success and show the
// refused timeout in /ops/v1/config.
func TestReloadRefusedByTheStoreClientChangesNothing(t *testing.T) {
	idp := StartIdP(t)
	v1 := polConfig(t, `cache: {routes: {search: {ttl: 0s}}}`)
	v2 := polConfig(t, `
cache: {routes: {search: {ttl: 1m}}}
upstreams: {userstore: {operations: {liveStreams: {timeout: 50ms}}}}
`)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, ConfigYAML: v1})
	logs := polFollowLogs(gw)
	okBefore := polMetric(t, gw, `gateway_config_reloads_total{result="ok"}`)
	errBefore := polMetric(t, gw, `gateway_config_reloads_total{result="error"}`)

	polReplaceFile(t, gw.ConfigPath, v2)
	line := logs.await(t, 5*time.Second, "config reload rejected; the running configuration stays", nil)
	if !strings.Contains(fmt.Sprint(line["error"]), "operations.liveStreams.timeout") {
		t.Fatalf("rejected for another reason: %v", line["error"])
	}
	if ok, bad := polMetric(t, gw, `gateway_config_reloads_total{result="ok"}`), polMetric(t, gw, `gateway_config_reloads_total{result="error"}`); ok != okBefore || bad != errBefore+1 {
		t.Fatalf("reloads ok %g -> %g, error %g -> %g; want one more error", okBefore, ok, errBefore, bad)
	}
	if x := gw.Do(t, http.MethodGet, "/api/v2/users/search?query=a", Bearer(idp.UserToken(t))).Header.Get("X-Cache"); x != "BYPASS" {
		t.Fatalf("the rejected file's search TTL was applied: X-Cache %q", x)
	}
	var running struct {
		Upstreams struct {
			Userstore struct {
				Operations struct {
					LiveStreams struct{ Timeout string } `json:"liveStreams"`
				} `json:"operations"`
			} `json:"userstore"`
		} `json:"upstreams"`
	}
	polOps(t, gw, "/ops/v1/config").Data(t, &running)
	if got := running.Upstreams.Userstore.Operations.LiveStreams.Timeout; got == "50ms" {
		t.Fatalf("/ops/v1/config shows the refused timeout %s", got)
	}
}

// "roles: []" in a platform's policy replaces the inherited roles, where
// leaving the key out inherits them. A reload that only removes such an
// override was taken for "no changes" and never applied: the route stayed
// open to callers the new file shuts out.
func TestReloadSeesAnEmptyListOverrideRemoved(t *testing.T) {
	idp := StartIdP(t)
	const open = `
policies:
  all:
    routes: {users.search: {roles: [premium]}}
  mobile_android:
    routes: {users.search: {roles: []}}
`
	const tightened = `
policies:
  all:
    routes: {users.search: {roles: [premium]}}
`
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, ConfigYAML: polConfig(t, open)})
	logs := polFollowLogs(gw)
	user := idp.Token(t, "plain-user-01", "user")
	search := func() *Response {
		return gw.Do(t, http.MethodGet, "/api/v2/users/search?query=a", Bearer(user), Platform("mobile_android"))
	}
	if r := search(); r.Status != http.StatusOK {
		t.Fatalf("before the reload: %d %s, want 200", r.Status, r.Body)
	}
	polReplaceFile(t, gw.ConfigPath, polConfig(t, tightened))
	line := logs.await(t, 5*time.Second, "config reloaded", nil)
	if got := fmt.Sprint(line["applied"]); !strings.Contains(got, "policies.mobile_android.routes.users.search.roles") {
		t.Fatalf("applied %s", got)
	}
	search().Failure(t, http.StatusForbidden, "Insufficient permissions")
}

// A SIGHUP that comes while the gateway starts (a config reloader that
// signals every pod as a new one comes up) used to end the process: the
// signal was asked for only once the listeners were up, and until then
// its default action applied. It is now taken from the start, and the
// reload it asks for runs once the gateway watches (the file may have
// changed since it was read).
//
// The configuration is a named pipe, so that the gateway is held reading
// it, at the start, until the signal has been sent.
func TestReloadSIGHUPWhileStarting(t *testing.T) {
	idp := StartIdP(t)
	dir := t.TempDir()
	// The gateway reads config.yaml; the test writes through a second
	// name of the same pipe, which the watcher ignores and which still
	// reaches a reader that opened the pipe before config.yaml was
	// replaced by a plain file.
	path, pipe := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(pipe, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(pipe, path); err != nil {
		t.Fatal(err)
	}
	content := []byte(polConfig(t, ""))
	signalled := make(chan error, 1)
	stop := make(chan struct{})
	fed := make(chan struct{})
	// Registered before the gateway's own cleanup, so it runs after it:
	// the pipe is fed until the gateway has stopped.
	t.Cleanup(func() { close(stop); <-fed })
	pipeInfo, err := os.Stat(pipe)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(fed)
		first, reader := true, 0 // reader: the gateway's pid
		for {
			select {
			case <-stop:
				return
			default:
			}
			// Opening for writing without blocking succeeds only while a
			// reader waits on the pipe.
			f, err := os.OpenFile(pipe, os.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				time.Sleep(2 * time.Millisecond)
				continue
			}
			if first {
				first = false
				var err error
				if reader, err = polReader(path); err == nil {
					err = syscall.Kill(reader, syscall.SIGHUP)
				}
				signalled <- err
				time.Sleep(300 * time.Millisecond) // the signal's default action, if any, has struck
			}
			// Written again before its reader has closed the pipe, the
			// content would reach it as more of the same file (every key
			// twice). So the pipe is closed once the reader has taken the
			// whole content: it is past its open then, holding the pipe
			// and waiting for the end of the file. Then the gateway is
			// waited for until it no longer holds the pipe (its next read
			// of the file waits in open, with no descriptor, for the next
			// write), a second at most each. A probe that opened the pipe
			// would meet that next read and give it an empty file.
			_, _ = f.Write(content)
			for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && polUnread(f) > 0; {
				time.Sleep(2 * time.Millisecond)
			}
			f.Close()
			for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && polHolds(reader, pipeInfo); {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()

	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, ConfigPath: path})
	if err := <-signalled; err != nil {
		t.Fatal(err)
	}
	logs := &polLogs{gw: gw}
	logs.await(t, 5*time.Second, "config reload: no changes", map[string]string{"trigger": "SIGHUP"})
	polReplaceFile(t, path, string(content))
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(idp.UserToken(t))).Data(t, nil)
}

// polReader is the pid of the process running with -config path.
func polReader(path string) (int, error) {
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(cmdline), "-config\x00"+path+"\x00") {
			continue
		}
		return strconv.Atoi(filepath.Base(filepath.Dir(p)))
	}
	return 0, fmt.Errorf("no process runs -config %s", path)
}

// polUnread is how many bytes written to the pipe f its reader has not
// read yet.
func polUnread(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		n, err = unix.IoctlGetInt(int(fd), unix.TIOCINQ) // FIONREAD
	})
	if err != nil {
		return 0
	}
	return n
}

// polHolds reports whether process pid has file open, by its descriptors
// in /proc, which a look does not disturb.
func polHolds(pid int, file os.FileInfo) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false // the process has ended
	}
	for _, fd := range fds {
		if fi, err := os.Stat(filepath.Join(dir, fd.Name())); err == nil && os.SameFile(fi, file) {
			return true
		}
	}
	return false
}
