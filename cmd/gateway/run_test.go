package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/daemon"
	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
)

// repoConfig is the repository's config.yaml, valid on its own.
const repoConfig = "../../config.yaml"

// noEnv is an environment without a single GATEWAY_ variable.
var noEnv []string

func envOf(vars map[string]string) []string {
	var environ []string
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	return environ
}

// runOut runs the binary in-process and returns its stdout and stderr.
func runOut(t *testing.T, environ []string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"gateway"}, args...), environ, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// writeConfig writes a configuration file of the test's own.
func writeConfig(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// editedRepoConfig is config.yaml with some lines replaced (old → new),
// each of which must be there exactly once.
func editedRepoConfig(t *testing.T, edits ...string) string {
	t.Helper()
	raw, err := os.ReadFile(repoConfig)
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for i := 0; i+1 < len(edits); i += 2 {
		if n := strings.Count(s, edits[i]); n != 1 {
			t.Fatalf("config.yaml has %q %d times", edits[i], n)
		}
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	return s
}

func TestValidateAcceptsTheRepositoryConfig(t *testing.T) {
	out, errOut, err := runOut(t, noEnv, "validate", "-config", repoConfig)
	if err != nil || out != repoConfig+": valid\n" || errOut != "" {
		t.Fatalf("err %v, stdout %q, stderr %q", err, out, errOut)
	}
	// GATEWAY_CONFIG names the file when -config is not given.
	out, _, err = runOut(t, envOf(map[string]string{config.EnvConfigPath: repoConfig}), "validate")
	if err != nil || out != repoConfig+": valid\n" {
		t.Fatalf("via %s: err %v, stdout %q", config.EnvConfigPath, err, out)
	}
}

// A broken file: every problem of a stage at once, each at its path, and a
// non-zero exit. The stages are the file's shape (keys, value syntax),
// then the values, then the policies; a later stage is checked once the
// earlier ones pass. The environment counts, as for the running gateway.
func TestValidateReportsEveryProblem(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits []string
		want  []string
	}{
		{"shape", []string{
			"  requestTimeout: 3s", "  requestTimeout: soon",
			"  mobile_ios: {}", "  mobile_ios: {rateLimit: {perUser: {rate: 1, burst: 1}}}",
		}, []string{
			"2 configuration problem(s)",
			"server.requestTimeout: invalid duration \"soon\"",
			`policies.mobile_ios.rateLimit: unknown key (line 111); did you mean "rateLimits"?`,
		}},
		{"values", []string{
			"  algorithms: [RS256, ES256]", "  algorithms: [RS256, HS256]",
			"        timeout: 1s", "        timeout: 5s",
		}, []string{
			"2 configuration problem(s)",
			`auth.algorithms[1]: "HS256" is not allowed`,
			"upstreams.userstore.operations.search.timeout: 5s is longer than server.requestTimeout (3s)",
		}},
		{"policies", []string{
			"    maxPageSize: 50", "    maxPageSize: 500",
			"  mobile_android: {}", "  mobile_android: {routes: {admin.users.get: {allow: true}}}",
		}, []string{
			"2 configuration problem(s)",
			"policies.all.maxPageSize: must be between 1 and 100 (the user store's largest page), got 500",
			"policies.mobile_android.routes.admin.users.get.allow: admin routes can be allowed only on the admin platform",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := writeConfig(t, "bad.yaml", editedRepoConfig(t, tc.edits...))
			out, _, err := runOut(t, noEnv, "validate", "-config", bad)
			if !errors.Is(err, errInvalid) {
				t.Fatalf("err %v, want errInvalid; stdout:\n%s", err, out)
			}
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, ": valid") {
				t.Errorf("an invalid file was called valid:\n%s", out)
			}
		})
	}

	// The environment is part of what is validated.
	out, _, err := runOut(t, envOf(map[string]string{"GATEWAY_AUTH__ALGORITHMS": "HS256"}), "validate", "-config", repoConfig)
	if !errors.Is(err, errInvalid) || !strings.Contains(out, `auth.algorithms[0]: "HS256" is not allowed`) {
		t.Fatalf("env override: err %v, stdout:\n%s", err, out)
	}

	// A file that is not there.
	out, _, err = runOut(t, noEnv, "validate", "-config", filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, errInvalid) || !strings.Contains(out, "read config") {
		t.Fatalf("missing file: err %v, stdout:\n%s", err, out)
	}
}

// `validate -diff` lists what would change against the running file,
// marking what needs a restart.
func TestValidateDiff(t *testing.T) {
	next := writeConfig(t, "next.yaml", editedRepoConfig(t,
		"  listen: 127.0.0.1:8080", "  listen: 0.0.0.0:8080",
		"  level: info", "  level: warn",
		"      ttl: 30s", "      ttl: 45s",
		"      perUser: {rate: 5, burst: 10}", "      perUser: {rate: 5, burst: 30}",
		"  pprof: false", "  pprof: true",
	))
	out, _, err := runOut(t, noEnv, "validate", "-config", next, "-diff", repoConfig)
	want := next + ": valid\n" +
		"5 change(s) against " + repoConfig + ":\n" +
		"  cache.routes.search.ttl: 30s -> 45s\n" +
		"  log.level: info -> warn\n" +
		"  ops.pprof: false -> true  (needs a restart)\n" +
		"  policies.api.rateLimits.perUser.burst: 10 -> 30\n" +
		"  server.listen: 127.0.0.1:8080 -> 0.0.0.0:8080  (needs a restart)\n" +
		"2 change(s) need a restart; the rest apply on reload (SIGHUP or file change)\n"
	if err != nil || out != want {
		t.Fatalf("err %v, stdout:\n%s\nwant:\n%s", err, out, want)
	}

	out, _, err = runOut(t, noEnv, "validate", "-config", repoConfig, "-diff", repoConfig)
	if err != nil || out != repoConfig+": valid\nno changes\n" {
		t.Fatalf("no changes: err %v, stdout %q", err, out)
	}

	// Valid on its own, but the running gateway would reject the reload:
	// the admin policy's roles compiled with the running auth.adminRole
	// (restart-only), or a timeout the running store client refuses. The
	// live changes beside them would not apply either.
	for name, edits := range map[string][]string{
		"adminRole": {"  adminRole: admin", "  adminRole: superadmin",
			"    requireRoles: [admin]", "    requireRoles: [superadmin]",
			"      admin.users.search: {allow: true, roles: [admin]}", "      admin.users.search: {allow: true, roles: [superadmin]}",
			"      admin.users.get: {allow: true, roles: [admin]}", "      admin.users.get: {allow: true, roles: [superadmin]}",
			"      ttl: 30s", "      ttl: 45s"},
		"store timeout": {"        timeout: 300ms", "        timeout: 50ms", "      ttl: 30s", "      ttl: 45s"},
	} {
		next := writeConfig(t, "next.yaml", editedRepoConfig(t, edits...))
		out, _, err := runOut(t, noEnv, "validate", "-config", next)
		if err != nil {
			t.Fatalf("%s: not valid on its own: %v\n%s", name, err, out)
		}
		out, _, err = runOut(t, noEnv, "validate", "-config", next, "-diff", repoConfig)
		if !errors.Is(err, errInvalid) || !strings.Contains(out, "a reload from "+repoConfig+" would be rejected: ") {
			t.Fatalf("%s: err %v, stdout:\n%s", name, err, out)
		}
	}

	// A running file that does not load cannot be compared.
	broken := writeConfig(t, "broken.yaml", "server: [")
	out, _, err = runOut(t, noEnv, "validate", "-config", repoConfig, "-diff", broken)
	if !errors.Is(err, errInvalid) || !strings.Contains(out, broken+" (the running file): ") {
		t.Fatalf("broken running file: err %v, stdout:\n%s", err, out)
	}
}

func TestVersionAndBadFlags(t *testing.T) {
	out, _, err := runOut(t, noEnv, "version")
	if err != nil || out != daemon.Version+"\n" {
		t.Fatalf("version: err %v, stdout %q", err, out)
	}
	if _, errOut, err := runOut(t, noEnv, "-no-such-flag"); err == nil || !strings.Contains(errOut, "no-such-flag") {
		t.Fatalf("unknown flag: err %v, stderr %q", err, errOut)
	}
	if _, _, err := runOut(t, noEnv, "validate", "-no-such-flag"); err == nil {
		t.Fatal("validate accepted an unknown flag")
	}
	if _, _, err := runOut(t, noEnv, "-config", filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("serving without a config file did not fail")
	}
	// Words left after the flags are refused before anything starts: a
	// mistyped subcommand, or one after a flag, used to serve (or check
	// nothing). The repository's config would start a gateway.
	for _, args := range [][]string{
		{"healtcheck"},
		{"-config", repoConfig, "validate"},
		{"validate", "-config", repoConfig, "extra"},
		{"healthcheck", "now"},
	} {
		// Bounded, so that a gateway started by mistake fails the test
		// instead of serving until the test binary's timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"gateway"}, args...),
			envOf(map[string]string{"GATEWAY_SERVER__LISTEN": "127.0.0.1:0", "GATEWAY_OPS__LISTEN": "127.0.0.1:0"}), &stdout, &stderr)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "unknown argument") {
			t.Errorf("%q: err %v, stdout %.200q; want an unknown argument refused", args, err, stdout.String())
		}
	}
}

// -h asks for the usage, which is printed on stderr: a success (exit 0),
// as for userstore and devstack, not an error printed after it
// ("flag: help requested", exit 1).
func TestHelpIsNotAFailure(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"serve", "-help"}, {"validate", "-h"}, {"healthcheck", "-h"}} {
		_, errOut, err := runOut(t, noEnv, args...)
		if err != nil {
			t.Errorf("%q: err %v", args, err)
		}
		if !strings.Contains(errOut, "-config") {
			t.Errorf("%q: stderr %q, want the usage", args, errOut)
		}
	}
	// version has no flags; -h still prints its usage and is no failure
	// (docs/operations.md: "-h after a command prints its flags").
	out, errOut, err := runOut(t, noEnv, "version", "-h")
	if err != nil || out != "" || !strings.Contains(errOut, "Usage of gateway version") {
		t.Errorf("version -h: err %v, stdout %q, stderr %q", err, out, errOut)
	}
}

// gateway -h, the binary's help, names every subcommand, which come
// first and which no flag list shows: an engineer who asks the binary
// learns of validate, healthcheck and version there.
func TestHelpListsTheSubcommands(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"serve", "-h"}} {
		_, errOut, err := runOut(t, noEnv, args...)
		if err != nil {
			t.Errorf("%q: err %v", args, err)
		}
		for _, want := range []string{"gateway [serve] [-config FILE]", "gateway validate -config FILE [-diff RUNNING]",
			"gateway healthcheck [-config FILE]", "gateway version", "-config"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("%q: stderr %q, want %q in it", args, errOut, want)
			}
		}
		// The flags of serve follow, under their heading: the flag's own
		// line, not only the usage's [-config FILE].
		heading, flags := strings.Index(errOut, "Flags of serve:"), strings.Index(errOut, "configuration file (env ")
		if heading < 0 || flags < heading || strings.Index(errOut, "gateway version") > heading {
			t.Errorf("%q: stderr %q, want the subcommands, then the flags of serve under their heading", args, errOut)
		}
	}
}

// version takes no words after it, as the other commands take none: a
// mistyped "version -config x.yaml" must not look checked.
func TestVersionRefusesExtraWords(t *testing.T) {
	out, _, err := runOut(t, noEnv, "version", "extra")
	if err == nil || !strings.Contains(err.Error(), `unknown argument "extra"`) {
		t.Fatalf("version extra: err %v, stdout %q; want the unknown argument named", err, out)
	}
	if out, _, err := runOut(t, noEnv, "version"); err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("version: err %v, stdout %q", err, out)
	}
}

// lockedBuffer collects the serve session's log while the test reads it.
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

// freeAddr finds a loopback address nobody listens on (for a moment): the
// healthcheck reads the ops address from the file, so it cannot be :0.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A short session of the whole binary in-process: `gateway serve` with a
// temporary configuration, a real identity provider and user store on
// loopback; one real call, the healthcheck subcommand against it, and a
// cancelled context that stops it cleanly (nil).
func TestServeSession(t *testing.T) {
	idp, err := devidp.New(devidp.Options{Issuer: "http://idp.test", Audience: "edge-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	idpSrv := httptest.NewServer(idp.Handler())
	defer idpSrv.Close()
	store, err := refstore.Open(context.Background(), refstore.Options{Users: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	storeSrv := httptest.NewServer(store.Handler(refstore.HandlerOptions{}))
	defer storeSrv.Close()

	opsAddr := freeAddr(t)
	path := writeConfig(t, "config.yaml", fmt.Sprintf(`
server:
  listen: 127.0.0.1:0
  drainTimeout: 2s
ops:
  listen: %s
log: {level: info, access: false}
auth:
  jwksURLs: [%s/.well-known/jwks.json]
  issuer: http://idp.test
upstreams:
  userstore:
    baseURL: %s
`, opsAddr, idpSrv.URL, storeSrv.URL))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"gateway", "serve", "-config", path}, noEnv, logs, io.Discard) }()

	var public string
	waitFor(t, 10*time.Second, func() error {
		for _, line := range strings.Split(logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "listening" {
				if m["ops"] != opsAddr {
					return fmt.Errorf("ops listens on %v, want %s", m["ops"], opsAddr)
				}
				public, _ = m["addr"].(string)
				return nil
			}
		}
		return fmt.Errorf("not listening yet:\n%s", logs.String())
	})
	waitFor(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + opsAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})

	tok, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID, Roles: []string{"user"}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+public+"/api/v1/users/me", nil)
	req.Header.Set("Authorization", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		IsSuccess bool
		Data      struct{ ID string }
	}
	err = json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !env.IsSuccess || env.Data.ID != refstore.DemoUserID {
		t.Fatalf("/me: %d %+v %v", resp.StatusCode, env, err)
	}

	out, _, err := runOut(t, envOf(map[string]string{config.EnvConfigPath: path}), "healthcheck")
	if err != nil || out != "healthy\n" {
		t.Fatalf("healthcheck: err %v, stdout %q", err, out)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after the context ended\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("run did not return after the context ended\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Fatalf("no stopped line:\n%s", logs.String())
	}

	// Nothing answers now: the healthcheck says so.
	if _, _, err := runOut(t, noEnv, "healthcheck", "-config", path); err == nil || !strings.Contains(err.Error(), "healthcheck:") {
		t.Fatalf("healthcheck of a stopped gateway: %v", err)
	}
	// And without an ops listener there is nothing to ask.
	if _, _, err := runOut(t, envOf(map[string]string{"GATEWAY_OPS__LISTEN": " "}), "healthcheck", "-config", writeConfig(t, "noops.yaml",
		editedRepoConfig(t, "  listen: 127.0.0.1:9090", `  listen: ""`))); err == nil || !strings.Contains(err.Error(), "ops.listen is empty") {
		t.Fatalf("healthcheck without ops listener: %v", err)
	}
}

func waitFor(t *testing.T, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The configuration reference must name every environment variable the
// gateway reads, so it cannot fall behind config/types.go. Families of
// variables are written once with a placeholder (<PLATFORM>, <ROUTE>,
// <OP>, <CACHE_ROUTE>), which the test expands; and every name the page
// writes must exist, so it cannot document a setting that is gone.
func TestConfigurationReferenceNamesEveryVariable(t *testing.T) {
	raw, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	placeholders := map[string][]string{
		"<PLATFORM>":    upperSegments(config.PolicyNames),
		"<ROUTE>":       upperSegments(config.RouteIDs),
		"<CACHE_ROUTE>": upperSegments(config.CacheRouteNames),
		"<OP>":          upperSegments(yamlNames(reflect.TypeOf(config.Operations{}))),
	}
	documented := map[string]bool{}
	for _, name := range regexp.MustCompile(`GATEWAY_[A-Z0-9_<>]*`).FindAllString(string(raw), -1) {
		for _, n := range expand(t, name, placeholders) {
			documented[n] = true
		}
	}
	known := append(config.EnvNames(), config.EnvConfigPath)
	for _, name := range known {
		if !documented[name] {
			t.Errorf("docs/configuration.md does not mention %s", name)
		}
	}
	for name := range documented {
		// A name ending in "_" is a prefix (GATEWAY_, GATEWAY_POLICIES__WEB__):
		// some variable must start with it.
		if strings.HasSuffix(name, "_") {
			if !slices.ContainsFunc(known, func(k string) bool { return strings.HasPrefix(k, name) }) {
				t.Errorf("docs/configuration.md mentions the prefix %s, which no variable has", name)
			}
		} else if !slices.Contains(known, name) {
			t.Errorf("docs/configuration.md mentions %s, which the gateway does not read", name)
		}
	}
}

// expand writes out a documented name's placeholders.
func expand(t *testing.T, name string, placeholders map[string][]string) []string {
	start := strings.IndexByte(name, '<')
	if start < 0 {
		return []string{name}
	}
	end := strings.IndexByte(name[start:], '>')
	if end < 0 {
		t.Errorf("docs/configuration.md: unclosed placeholder in %s", name)
		return nil
	}
	ph := name[start : start+end+1]
	values, ok := placeholders[ph]
	if !ok {
		t.Errorf("docs/configuration.md: unknown placeholder %s in %s", ph, name)
		return nil
	}
	var out []string
	for _, v := range values {
		out = append(out, expand(t, name[:start]+v+name[start+end+1:], placeholders)...)
	}
	return out
}

// upperSegments spells names as environment variable segments do.
func upperSegments(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToUpper(strings.ReplaceAll(n, ".", "_"))
	}
	return out
}

func yamlNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		out = append(out, name)
	}
	return out
}

// The healthcheck reads ops.listen alone: a gateway that rejected a broken
// file on reload keeps serving, and its probe must still find it alive.
// Here the file has an unknown key, no identity provider or user store, and
// the probe's environment lacks the ops token a non-loopback listener needs.
func TestHealthcheckNeedsOnlyOpsListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	broken := writeConfig(t, "broken.yaml", "ops:\n  listen: 0.0.0.0:"+port+"\nbogusKey: 1\n")
	if out, _, err := runOut(t, noEnv, "healthcheck", "-config", broken); err != nil || out != "healthy\n" {
		t.Fatalf("healthcheck with a broken file: err %v, stdout %q", err, out)
	}
	// Nor does a mistake yaml refuses outright, outside ops: a section
	// written twice, or a value of the wrong type.
	for name, content := range map[string]string{
		"twice.yaml":     "ops:\n  listen: 0.0.0.0:" + port + "\nlog:\n  level: info\nlog:\n  level: debug\n",
		"wrongtype.yaml": "server:\n  maxConnections: many\nops:\n  listen: 0.0.0.0:" + port + "\n",
		// Inside ops too: only its listen is read.
		"twiceinops.yaml": "ops:\n  listen: 0.0.0.0:" + port + "\n  pprof: true\n  pprof: false\n",
	} {
		if out, _, err := runOut(t, noEnv, "healthcheck", "-config", writeConfig(t, name, content)); err != nil || out != "healthy\n" {
			t.Errorf("healthcheck with %s: err %v, stdout %q", name, err, out)
		}
	}
	// The environment still overrides the file.
	other := writeConfig(t, "other.yaml", "ops:\n  listen: 127.0.0.1:1\n")
	if out, _, err := runOut(t, envOf(map[string]string{"GATEWAY_OPS__LISTEN": ln.Addr().String()}), "healthcheck", "-config", other); err != nil || out != "healthy\n" {
		t.Fatalf("healthcheck with GATEWAY_OPS__LISTEN: err %v, stdout %q", err, out)
	}
	if _, _, err := runOut(t, noEnv, "healthcheck", "-config", other); err == nil || !strings.Contains(err.Error(), "healthcheck:") {
		t.Fatalf("healthcheck of an address nobody serves: %v", err)
	}
}

// A limit replaces rate and burst together, and a rate of 0 turns it off:
// a burst given alone (the usual slip: only …__BURST exported for a
// platform whose file has no such limit) would silently switch the
// inherited limit off. It is refused instead, at its path.
func TestValidateRefusesABurstWithoutARate(t *testing.T) {
	out, _, err := runOut(t, envOf(map[string]string{"GATEWAY_POLICIES__WEB__RATELIMITS__PERUSER__BURST": "40"}),
		"validate", "-config", repoConfig)
	if !errors.Is(err, errInvalid) || !strings.Contains(out, "policies.web.rateLimits.perUser.rate:") {
		t.Fatalf("burst alone from the environment: err %v, stdout:\n%s", err, out)
	}
	bad := writeConfig(t, "bad.yaml", editedRepoConfig(t, "  mobile_ios: {}", "  mobile_ios: {rateLimits: {perIP: {burst: 40}}}"))
	out, _, err = runOut(t, noEnv, "validate", "-config", bad)
	if !errors.Is(err, errInvalid) || !strings.Contains(out, "policies.mobile_ios.rateLimits.perIP.rate:") {
		t.Fatalf("burst alone in the file: err %v, stdout:\n%s", err, out)
	}
	// Both 0 (or rate 0 alone) still turns a limit off.
	off := writeConfig(t, "off.yaml", editedRepoConfig(t, "  mobile_ios: {}", "  mobile_ios: {rateLimits: {perIP: {rate: 0, burst: 0}, perUser: {rate: 0}}}"))
	if out, _, err := runOut(t, noEnv, "validate", "-config", off); err != nil {
		t.Fatalf("a limit turned off was refused: %v\n%s", err, out)
	}
}

// A stop asked for while the gateway is still starting (SIGTERM right
// after the pod started, say) must stop it: the public listener must not
// start serving after the shutdown that should have closed it, leaving the
// process waiting for it forever.
func TestServeStopsWhenStoppedWhileStarting(t *testing.T) {
	const conf = `
server:
  listen: 127.0.0.1:0
  drainTimeout: 1s
ops:
  listen: 127.0.0.1:0
log: {level: info, access: true}
auth:
  jwksURLs: [http://127.0.0.1:1/.well-known/jwks.json]
  issuer: http://idp.test
upstreams:
  userstore:
    baseURL: http://127.0.0.1:1
`
	// With tracing on too: its exporter was started with the run's
	// context, and a stop during start-up became "context canceled",
	// exit 1.
	for _, path := range []string{
		writeConfig(t, "config.yaml", conf),
		writeConfig(t, "tracing.yaml", conf+"tracing: {enabled: true, endpoint: 127.0.0.1:1}\n"),
	} {
		stopWhileStarting(t, path)
	}
}

func stopWhileStarting(t *testing.T, path string) {
	t.Helper()
	for i := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // stopped before it even listens
		logs := &lockedBuffer{}
		done := make(chan error, 1)
		go func() { done <- run(ctx, []string{"gateway", "-config", path}, noEnv, logs, io.Discard) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: run %d: %v", path, i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: run %d did not return 10 s after its context ended (drainTimeout 1s):\n%s", path, i, logs.String())
		}
	}
}

// A variable meant as an override but naming no setting (a typo, one
// underscore where two belong) used to be ignored without a word: the
// gateway started on the file's value, where the same typo in the file is
// refused. Names of other shapes are left alone: GATEWAY_CONFIG, and those
// Kubernetes sets for a Service named gateway.
func TestUnknownVariablesAreRefused(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"GATEWAY_SERVER__LISTN", "GATEWAY_SERVER__LISTN: not a setting (did you mean GATEWAY_SERVER__LISTEN?)"},
		{"GATEWAY_SERVER_LISTEN", "GATEWAY_SERVER_LISTEN: not a setting (did you mean GATEWAY_SERVER__LISTEN?)"},
		{"GATEWAY_UPSTREAMS__USERSTORE__SERVICETOKN", "did you mean GATEWAY_UPSTREAMS__USERSTORE__SERVICETOKEN?"},
		{"GATEWAY_POLICIES__WEB__RATELIMITS__PERUSER__RATES", "did you mean GATEWAY_POLICIES__WEB__RATELIMITS__PERUSER__RATE?"},
		{"GATEWAY_NO__SUCH__THING", "GATEWAY_NO__SUCH__THING: not a setting; nothing reads it"},
	} {
		environ := []string{tc.name + "=127.0.0.1:8443", "GATEWAY_OPS__LISTEN=127.0.0.1:0"}
		out, _, err := runOut(t, environ, "validate", "-config", repoConfig)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("validate with %s: err %v, stdout %q; want %q", tc.name, err, out, tc.want)
		}
		// The gateway itself refuses to start, before it listens.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		var stdout, stderr bytes.Buffer
		err = run(ctx, []string{"gateway", "-config", repoConfig},
			append(environ, "GATEWAY_SERVER__LISTEN=127.0.0.1:0"), &stdout, &stderr)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve with %s: err %v; want %q", tc.name, err, tc.want)
		}
	}
	out, _, err := runOut(t, []string{
		config.EnvConfigPath + "=" + repoConfig,
		"GATEWAY_PORT=tcp://10.0.0.7:80", "GATEWAY_SERVICE_HOST=10.0.0.7", "GATEWAY_PORT_80_TCP_ADDR=10.0.0.7",
		"OTHER__SETTING=1", "GATEWAY_SERVER__LISTEN=127.0.0.1:0",
	}, "validate")
	if err != nil {
		t.Errorf("other names refused: %v\n%s", err, out)
	}
}

// The environment is read as the process's own: the first entry of a name
// written twice wins, as os.Getenv takes it.
func TestEnvironmentFirstEntryWins(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	out, _, err := runOut(t, []string{config.EnvConfigPath + "=" + repoConfig, config.EnvConfigPath + "=" + missing}, "validate")
	if err != nil || out != repoConfig+": valid\n" {
		t.Fatalf("err %v, stdout %q; want the first %s, %s", err, out, config.EnvConfigPath, repoConfig)
	}
}

// The healthcheck's exit status is the ops listener's answer: anything but
// 200 is unhealthy, and a listener that never answers is unhealthy after
// the probe's own deadline, not a hung probe. An ops.listen without a host
// means this machine.
func TestHealthcheckAnswers(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	path := writeConfig(t, "ops.yaml", "ops:\n  listen: 127.0.0.1:"+port+"\n")
	if out, _, err := runOut(t, noEnv, "healthcheck", "-config", path); err == nil || !strings.Contains(err.Error(), "status 503") || out != "" {
		t.Errorf("a 503 from /healthz: err %v, stdout %q; want unhealthy", err, out)
	}
	status.Store(http.StatusOK)
	noHost := writeConfig(t, "nohost.yaml", "ops:\n  listen: :"+port+"\n")
	if out, _, err := runOut(t, noEnv, "healthcheck", "-config", noHost); err != nil || out != "healthy\n" {
		t.Errorf("ops.listen %q: err %v, stdout %q", ":"+port, err, out)
	}

	// A listener that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	done := make(chan error, 1)
	go func() {
		_, _, err := runOut(t, envOf(map[string]string{"GATEWAY_OPS__LISTEN": silent.Addr().String()}), "healthcheck", "-config", path)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a listener that never answered was healthy")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the healthcheck did not give up on a listener that never answers (its deadline is 2 s)")
	}
}

// ops.listen read alone: the default when the file has none, and through a
// YAML merge key, at the top or inside ops.
func TestOpsListenOfTheFile(t *testing.T) {
	for name, tc := range map[string]struct{ content, want string }{
		"no ops":        {"log:\n  level: info\n", config.Default().Ops.Listen},
		"empty file":    {"", config.Default().Ops.Listen},
		"merge in ops":  {"base: &b\n  listen: 127.0.0.1:7001\nops:\n  <<: *b\n  pprof: true\n", "127.0.0.1:7001"},
		"merge at top":  {"defaults: &d\n  ops:\n    listen: 127.0.0.1:7002\n<<: *d\n", "127.0.0.1:7002"},
		"listen itself": {"ops:\n  listen: 127.0.0.1:7003\n", "127.0.0.1:7003"},
	} {
		got, err := opsListen(writeConfig(t, "c.yaml", tc.content), getenvOf(nil))
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, tc.want)
		}
	}
}
