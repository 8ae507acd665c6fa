package gateway

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
)

// An unset ops or invalidation token matches nothing, an empty one
// included: the HTTP path cannot send an empty Bearer token today (Go's
// server trims "Bearer " to "Bearer"), so only this holds the rule.
func TestEqualSecretUnsetMatchesNothing(t *testing.T) {
	for _, c := range []struct {
		given, want string
		match       bool
	}{
		{"", "", false},
		{"secret", "", false},
		{"secret", "secret", true},
		{"secret", "secreT", false},
		{"", "secret", false},
	} {
		if got := equalSecret(c.given, c.want); got != c.match {
			t.Errorf("equalSecret(%q, %q) = %v, want %v", c.given, c.want, got, c.match)
		}
	}
}

// /ops/v1/config shows a list the file leaves out (inherited from the
// layer below) as null and a list written empty (which replaces the
// inherited one) as []: both used to show as [], so a route that the file
// opens to every user with "roles: []" looked the same as one that
// inherits the premium role from policies.all.
func TestOpsConfigTellsAnInheritedListFromAnEmptyOne(t *testing.T) {
	const file = `
policies:
  all:
    routes: {users.search: {roles: [premium]}}
  mobile_android:
    routes: {users.search: {allow: true}}
  mobile_ios:
    routes: {users.search: {roles: []}}
`
	cfg := opsTestConfig(t, file)
	rec := httptest.NewRecorder()
	NewOps(OpsDeps{Config: cfg, Loopback: true}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ops/v1/config", nil))
	var got struct {
		Data struct {
			Policies map[string]struct {
				RequireRoles json.RawMessage `json:"requireRoles"`
				Routes       map[string]struct {
					Roles, Scopes json.RawMessage
				} `json:"routes"`
			} `json:"policies"`
			Server struct {
				TrustedProxies json.RawMessage `json:"trustedProxies"`
			} `json:"server"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	p := got.Data.Policies
	for _, c := range []struct {
		what string
		got  json.RawMessage
		want string
	}{
		{"all: roles written", p["all"].Routes["users.search"].Roles, `["premium"]`},
		{"all: scopes left out", p["all"].Routes["users.search"].Scopes, `null`},
		{"mobile_android: roles left out (inherits premium)", p["mobile_android"].Routes["users.search"].Roles, `null`},
		{"mobile_ios: roles written empty (any user)", p["mobile_ios"].Routes["users.search"].Roles, `[]`},
		{"mobile_ios: requireRoles left out", p["mobile_ios"].RequireRoles, `null`},
		// Not a policy layer: the defaults' empty list stays a list.
		{"server.trustedProxies", got.Data.Server.TrustedProxies, `[]`},
	} {
		if string(c.got) != c.want {
			t.Errorf("%s: %s, want %s", c.what, c.got, c.want)
		}
	}
}

// A body sent to the ops listener must arrive within opsBodyTimeout: one
// trickled a byte at a time held the connection for as long as it
// trickled (net/http reads a body the handler left unread after it, and
// the ops server has only a header timeout).
func TestOpsBodyMustArriveInTime(t *testing.T) {
	defer func(d time.Duration) { opsBodyTimeout = d }(opsBodyTimeout)
	opsBodyTimeout = 300 * time.Millisecond
	cfg := opsTestConfig(t, "")
	srv := httptest.NewServer(NewOps(OpsDeps{Config: cfg, Loopback: true}))
	defer srv.Close()
	for _, head := range []string{
		"POST /ops/v1/cache/purge HTTP/1.1\r\nHost: ops\r\nContent-Length: 100\r\n\r\n",
		"POST /ops/v1/cache/invalidate HTTP/1.1\r\nHost: ops\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: ops\r\nContent-Length: 100\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		go func() { // a byte every 100 ms, until the connection goes
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := conn.Write([]byte("a")); err != nil {
					return
				}
			}
		}()
		start := time.Now()
		_ = conn.SetReadDeadline(start.Add(3 * time.Second))
		_, err = io.Copy(io.Discard, conn)
		close(stop)
		conn.Close()
		// Closed is EOF, or a reset when the server closed with trickled
		// bytes unread; only running into the deadline means still open.
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("%q: the connection was still open after %s", head, time.Since(start).Round(time.Millisecond))
		}
	}
}

// opsTestConfig is file parsed with the settings that have no default.
func opsTestConfig(t *testing.T, file string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(file), func(name string) string {
		return map[string]string{
			"GATEWAY_AUTH__JWKSURLS":                "https://idp.example.com/jwks.json",
			"GATEWAY_AUTH__ISSUER":                  "https://idp.example.com/",
			"GATEWAY_UPSTREAMS__USERSTORE__BASEURL": "http://userstore.internal:8080",
		}[name]
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// An ops endpoint asked with a method it does not take is a 405 naming
// the ones it does (RFC 9110 requires Allow on a 405), in the envelope:
// the catch-all behind the endpoints answered it 404 "Resource not found",
// so a purge sent as a GET (curl without -X POST) read as an endpoint
// that does not exist. A path no endpoint has stays a 404.
func TestOpsWrongMethodIsA405WithAllow(t *testing.T) {
	cfg := opsTestConfig(t, "")
	ops := NewOps(OpsDeps{Config: cfg, Loopback: true, Metrics: http.NotFoundHandler()})
	for _, c := range []struct {
		method, path, allow string
	}{
		{http.MethodPost, "/healthz", "GET, HEAD"},
		{http.MethodPut, "/readyz", "GET, HEAD"},
		{http.MethodPost, "/metrics", "GET, HEAD"},
		{http.MethodDelete, "/ops/v1/breakers", "GET, HEAD"},
		{http.MethodPost, "/ops/v1/cache", "GET, HEAD"},
		{http.MethodGet, "/ops/v1/cache/purge?all=true", "POST"},
		{http.MethodGet, "/ops/v1/cache/invalidate", "POST"},
		{http.MethodPost, "/ops/v1/config", "GET, HEAD"},
	} {
		rec := httptest.NewRecorder()
		ops.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		var env struct {
			IsSuccess bool     `json:"isSuccess"`
			Errors    []string `json:"errors"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
			t.Errorf("%s %s: %v: %s", c.method, c.path, err, rec.Body)
			continue
		}
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != c.allow ||
			env.IsSuccess || len(env.Errors) != 1 || env.Errors[0] != "Method not allowed" {
			t.Errorf("%s %s: %d Allow %q %s, want 405 Allow %q and the envelope",
				c.method, c.path, rec.Code, rec.Header().Get("Allow"), rec.Body, c.allow)
		}
	}
	rec := httptest.NewRecorder()
	ops.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/nothing-here", nil))
	if rec.Code != http.StatusNotFound || rec.Header().Get("Allow") != "" {
		t.Errorf("POST /nothing-here: %d Allow %q, want 404 without Allow", rec.Code, rec.Header().Get("Allow"))
	}
}

// A purge whose parameters are wrong is a 400 with the cache off too, as
// an invalidation with a wrong body is: it answered {"purged":0}, so a
// script with a typo in its purge (user=<not a uuid>, two parameters)
// passed against a gateway without a cache and failed only against one
// with it.
func TestOpsPurgeValidatesWithTheCacheOff(t *testing.T) {
	ops := NewOps(OpsDeps{Config: opsTestConfig(t, ""), Loopback: true})
	for _, query := range []string{"", "user=nonsense", "route=profile", "all=yes", "all=true&route=me"} {
		rec := httptest.NewRecorder()
		ops.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ops/v1/cache/purge?"+query, nil))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("purge?%s with the cache off: %d %s, want 400", query, rec.Code, rec.Body)
		}
	}
	for _, query := range []string{"user=8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11", "route=search", "all=true"} {
		rec := httptest.NewRecorder()
		ops.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ops/v1/cache/purge?"+query, nil))
		var env struct {
			Data map[string]int `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); rec.Code != http.StatusOK || err != nil || env.Data["purged"] != 0 {
			t.Errorf("purge?%s with the cache off: %d %s, want 200 purged 0", query, rec.Code, rec.Body)
		}
	}
}

// The Authorization scheme is case-insensitive (RFC 9110 section 11.1), as
// on the public listener: the ops token sent as "bearer <token>" (the
// user store's invalidation call may write it so) was refused with 401.
func TestOpsBearerSchemeIgnoresCase(t *testing.T) {
	const token = "an-ops-token-long-enough-to-pass-validation"
	cfg := opsTestConfig(t, "")
	cfg.Ops.Token = token
	ops := NewOps(OpsDeps{Config: cfg})
	for value, want := range map[string]int{
		"Bearer " + token:       http.StatusOK,
		"bearer " + token:       http.StatusOK,
		"BEARER   " + token:     http.StatusOK,
		"Bearer wrong":          http.StatusUnauthorized,
		"Basic " + token:        http.StatusUnauthorized,
		"Bearer" + token:        http.StatusUnauthorized,
		"Bearers " + token:      http.StatusUnauthorized,
		token:                   http.StatusUnauthorized,
		"Bearer " + token + "x": http.StatusUnauthorized,
	} {
		req := httptest.NewRequest(http.MethodGet, "/ops/v1/breakers", nil)
		req.Header.Set("Authorization", value)
		rec := httptest.NewRecorder()
		ops.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Authorization %q: %d, want %d", value, rec.Code, want)
		}
	}
}
