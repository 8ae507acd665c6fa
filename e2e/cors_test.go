package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/faultproxy"
)

// Cross-origin access for the web app: preflights answered by the gateway
// from the policy's configuration, refusals in the envelope with no CORS
// headers, and never the "*" origin with credentials.

// The web app's origin in the repository's config.yaml.
const polWebOrigin = "http://localhost:3000"

// polPreflight sends a browser's preflight.
func polPreflight(t testing.TB, gw *Gateway, path, origin, method, headers string) *Response {
	t.Helper()
	opts := []ReqOpt{Header("Origin", origin), Header("Access-Control-Request-Method", method)}
	if headers != "" {
		opts = append(opts, Header("Access-Control-Request-Headers", headers))
	}
	return gw.Do(t, http.MethodOptions, path, opts...)
}

// polNoCORS checks that a response carries no Access-Control-* header.
func polNoCORS(t testing.TB, r *Response) {
	t.Helper()
	for name := range r.Header {
		if strings.HasPrefix(name, "Access-Control-") {
			t.Fatalf("%s: %q on a response that allows nothing", name, r.Header.Values(name))
		}
	}
}

// polVaries reports whether the response's Vary lists name.
func polVaries(r *Response, name string) bool {
	for _, v := range r.Header.Values("Vary") {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), name) {
				return true
			}
		}
	}
	return false
}

// The web app's preflights: answered 204 by the gateway with the
// configured (never reflected) methods and headers, without touching the
// user store.
func TestCORSPreflightFromTheWebOrigin(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	store.Reset(t)

	for _, tc := range []struct{ path, method, headers string }{
		{"/api/v2/users/search", "GET", "authorization, x-platform, x-language, x-timezone"},
		{"/api/v1/users/me", "GET", "Authorization,X-Device-Id,X-App-Version"},
		{"/api/v1/users/check-username", "POST", "content-type,authorization,accept-language,x-request-id"},
		{"/api/v1/users/me", "GET", ""},
		// A web app revalidating its profile itself, traced by a browser's
		// tracing instrumentation (browsers send the names lower-case).
		{"/api/v1/users/me", "GET", "authorization,if-none-match,traceparent"},
		// The routes take a trailing slash (Fiber's non-strict routing),
		// so their preflights do too.
		{"/api/v1/users/me/", "GET", "authorization"},
		{"/api/v2/users/search//", "GET", "authorization"},
	} {
		r := polPreflight(t, gw, tc.path, polWebOrigin, tc.method, tc.headers)
		if r.Status != http.StatusNoContent || len(r.Body) != 0 {
			t.Fatalf("%s %s: %d %q, want an empty 204", tc.method, tc.path, r.Status, r.Body)
		}
		for name, want := range map[string]string{
			"Access-Control-Allow-Origin":  polWebOrigin,
			"Access-Control-Allow-Methods": "GET, POST",
			"Access-Control-Allow-Headers": "Authorization, Content-Type, Accept-Language, X-Language, X-Timezone, X-Platform, X-App-Version, X-Device-Id, X-Request-Id, If-None-Match, Traceparent",
			"Access-Control-Max-Age":       "600",
		} {
			if got := r.Header.Get(name); got != want {
				t.Errorf("%s %s: %s %q, want %q", tc.method, tc.path, name, got, want)
			}
		}
		if got := r.Header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("credentials allowed (%q) without allowCredentials", got)
		}
		for _, v := range []string{"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"} {
			if !polVaries(r, v) {
				t.Errorf("Vary %q lacks %s", r.Header.Values("Vary"), v)
			}
		}
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("preflights reached the store: %v", store.Counts(t))
	}
}

// What is not allowed is refused with a 403 envelope and no CORS header,
// so the browser blocks the call: an unknown origin (or a near miss), a
// method or a request header the policy does not list.
func TestCORSPreflightRefusals(t *testing.T) {
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp})

	for _, tc := range []struct{ name, origin, method, headers string }{
		{"unknown origin", "https://evil.example", "GET", "authorization"},
		{"other scheme", "https://localhost:3000", "GET", ""},
		{"other port", "http://localhost:3001", "GET", ""},
		{"trailing slash", polWebOrigin + "/", "GET", ""},
		{"opaque origin", "null", "GET", ""},
		{"suffix of an allowed origin", "http://localhost:3000.evil.example", "GET", ""},
		{"method not listed", polWebOrigin, "DELETE", ""},
		{"header not listed", polWebOrigin, "GET", "authorization, x-evil"},
		{"wildcard header", polWebOrigin, "GET", "*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := polPreflight(t, gw, "/api/v2/users/search", tc.origin, tc.method, tc.headers)
			r.Failure(t, http.StatusForbidden, "Insufficient permissions")
			polNoCORS(t, r)
			if !polVaries(r, "Origin") {
				t.Fatalf("Vary %q lacks Origin", r.Header.Values("Vary"))
			}
		})
	}
	// In Turkish too.
	r := gw.Do(t, http.MethodOptions, "/api/v2/users/search", Header("Origin", "https://evil.example"),
		Header("Access-Control-Request-Method", "GET"), Lang("tr"))
	r.Failure(t, http.StatusForbidden, "Yetersiz yetki")
}

// polScriptReadable are the response headers a browser shows a script
// without Access-Control-Expose-Headers (the CORS-safelisted response
// header names of the Fetch standard), and those a script has no use for:
// the CORS answer itself, Vary, Date and the connection's own.
var polScriptReadable = []string{
	"Cache-Control", "Content-Language", "Content-Length", "Content-Type", "Expires", "Last-Modified", "Pragma",
	"Vary", "Date", "Connection",
}

// polHiddenHeaders names the headers of a cross-origin answer that carry
// the gateway's meaning but that its Access-Control-Expose-Headers does
// not list: the web app's script would see none of them.
func polHiddenHeaders(r *Response) []string {
	var exposed []string
	for _, v := range r.Header.Values("Access-Control-Expose-Headers") {
		for _, name := range strings.Split(v, ",") {
			exposed = append(exposed, strings.TrimSpace(name))
		}
	}
	var hidden []string
	for name := range r.Header {
		if strings.HasPrefix(name, "Access-Control-") {
			continue
		}
		readable := func(h string) bool { return strings.EqualFold(h, name) }
		if !slices.ContainsFunc(polScriptReadable, readable) && !slices.ContainsFunc(exposed, readable) {
			hidden = append(hidden, name)
		}
	}
	return hidden
}

// The actual requests of the web app carry Access-Control-Allow-Origin and
// the exposed headers, errors included, so the script can read the
// envelope and every header the gateway wrote on it (X-Cache on a read,
// WWW-Authenticate on a 401, Allow on a 405, ...); other origins, and
// platforms without CORS, get none.
func TestCORSActualRequests(t *testing.T) {
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp})
	user := idp.UserToken(t)
	origin := Header("Origin", polWebOrigin)
	wantExpose := "X-Request-Id, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, X-Partial-Response, ETag, X-Cache, Age, WWW-Authenticate, Allow"

	for _, r := range []*Response{
		gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru", Bearer(user), origin),
		// The same page again, from the gateway's cache: it carries Age.
		gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru", Bearer(user), origin),
		gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), origin, Platform("web")),
		gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(user), origin, JSONBody(`{"username":"johndoe123"}`)),
		gw.Do(t, http.MethodGet, "/api/v1/users/me", origin),                                                // 401
		gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer("not-a-token"), origin),                         // 401, invalid_token
		gw.Do(t, http.MethodGet, "/api/admin/v1/users/search", Bearer(user), origin),                        // 403
		gw.Do(t, http.MethodGet, "/api/v1/users/check-username", Bearer(user), origin),                      // 405
		gw.Do(t, http.MethodPost, "/api/v2/users/search?query=sukru", Bearer(user), origin, JSONBody(`{}`)), // 405
		// Answered before the edge: a body over the limit, an unknown method.
		gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(user), origin,
			JSONBody(`{"username":"`+strings.Repeat("a", 17<<10)+`"}`)), // 413
		gw.Do(t, "BREW", "/api/v1/users/me", origin), // 405
	} {
		r.Envelope(t)
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != polWebOrigin {
			t.Errorf("%d answer: Access-Control-Allow-Origin %q", r.Status, got)
		}
		if got := r.Header.Get("Access-Control-Expose-Headers"); got != wantExpose {
			t.Errorf("%d answer: Access-Control-Expose-Headers %q, want %q", r.Status, got, wantExpose)
		}
		if hidden := polHiddenHeaders(r); len(hidden) > 0 {
			t.Errorf("%d answer: the web app's script cannot read %q", r.Status, hidden)
		}
		if !polVaries(r, "Origin") {
			t.Errorf("%d answer: Vary %q lacks Origin", r.Status, r.Header.Values("Vary"))
		}
	}

	for _, r := range []*Response{
		gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru", Bearer(user), Header("Origin", "https://evil.example")),
		gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru", Bearer(user), origin, Platform("mobile_ios")),
		gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru", Bearer(user)),
	} {
		r.Data(t, nil) // served: it is the browser that withholds it
		polNoCORS(t, r)
	}
}

// A partial answer (the live-stream look-up failed) says so in
// X-Partial-Response; the web app's script can read that header only when
// the answer lists it in Access-Control-Expose-Headers. Otherwise its
// liveStream: null would read as "not live" instead of "not known".
func TestCORSPartialAnswerIsReadableByTheWebApp(t *testing.T) {
	rig := epStartFaultRig(t, nil)
	if err := rig.proxy.SetPath(contract.PathLiveStreams, faultproxy.Status(500)); err != nil {
		t.Fatal(err)
	}
	origin := Header("Origin", polWebOrigin)
	for _, r := range []*Response{
		rig.gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(rig.user), origin),
		rig.gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru", Bearer(rig.user), origin, Platform("web")),
	} {
		epPartial(t, r)
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != polWebOrigin {
			t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, polWebOrigin)
		}
		exposed := false
		for _, v := range r.Header.Values("Access-Control-Expose-Headers") {
			for _, name := range strings.Split(v, ",") {
				exposed = exposed || strings.EqualFold(strings.TrimSpace(name), "X-Partial-Response")
			}
		}
		if !exposed {
			t.Fatalf("a partial answer to the web app exposes %q: its script cannot see X-Partial-Response",
				r.Header.Values("Access-Control-Expose-Headers"))
		}
	}
}

// Credentials are allowed only with listed origins, and the exact origin
// is named then; "*" serves any origin without credentials; the two
// together are refused by `gateway validate` and at start, wherever in the
// inheritance each comes from.
func TestCORSCredentialsAndWildcard(t *testing.T) {
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, ConfigYAML: polConfig(t, `
policies:
  web:
    cors:
      allowOrigins: ["https://app.example.com", "http://localhost:3000"]
      allowCredentials: true
      maxAge: 2m
  api:
    cors:
      allowOrigins: ["*"]
      allowMethods: [GET]
`)})
	user := idp.UserToken(t)

	r := polPreflight(t, gw, "/api/v1/users/me", "https://app.example.com", "GET", "authorization")
	if r.Status != http.StatusNoContent {
		t.Fatalf("preflight: %d %s", r.Status, r.Body)
	}
	if r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		r.Header.Get("Access-Control-Allow-Credentials") != "true" || r.Header.Get("Access-Control-Max-Age") != "120" {
		t.Fatalf("credentialed preflight headers: %v", r.Header)
	}
	a := gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), Header("Origin", "https://app.example.com"))
	a.Data(t, nil)
	if a.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || a.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("credentialed answer headers: %v", a.Header)
	}

	// Any other origin meets the api policy's wildcard: "*", no
	// credentials, only its own methods.
	r = polPreflight(t, gw, "/api/v2/users/search", "https://partner.example.org", "GET", "authorization")
	if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "*" ||
		r.Header.Get("Access-Control-Allow-Methods") != "GET" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("wildcard preflight: %d %v", r.Status, r.Header)
	}
	polPreflight(t, gw, "/api/v1/users/check-username", "https://partner.example.org", "POST", "").
		Failure(t, http.StatusForbidden, "Insufficient permissions")
	a = gw.Do(t, http.MethodGet, "/api/v2/users/search?query=a", Bearer(user), Platform("api"), Header("Origin", "https://partner.example.org"))
	a.Data(t, nil)
	if a.Header.Get("Access-Control-Allow-Origin") != "*" || a.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("wildcard answer headers: %v", a.Header)
	}

	dir := t.TempDir()
	for _, tc := range []struct{ name, overlay, want string }{
		{"in one policy", `
policies:
  web:
    cors: {allowOrigins: ["*"], allowCredentials: true}
`, `policies.web.cors.allowOrigins: the "*" origin cannot be combined with allowCredentials: list the origins instead`},
		{"wildcard inherited from all", `
policies:
  all:
    cors: {allowOrigins: ["*"]}
  web:
    cors: {allowOrigins: null, allowCredentials: true}
`, `policies.all.cors.allowOrigins: the "*" origin cannot be combined with allowCredentials: list the origins instead`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := polWriteFile(t, dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml", polConfig(t, tc.overlay))
			out, code := polRunBinary(t, "validate", "-config", path)
			if code != 1 || !strings.Contains(out, tc.want) || strings.Contains(out, ": valid") {
				t.Fatalf("validate: exit %d, output:\n%s\nwant %q", code, out, tc.want)
			}
			out, code = polRunBinary(t, "-config", path)
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("start: exit %d, output:\n%s", code, out)
			}
		})
	}
}
