package e2e

// Issue 3, when the user store misbehaves: a fault proxy (upstream/
// faultproxy) sits between the gateway and a store of the test's own and
// answers in the store's place. The store's 400/404/409 keep their meaning
// with the gateway's own words; everything else the store can do wrong is
// a 502, slowness a 504; a failing live-stream look-up costs only the
// live streams. Nothing the store or the network said ever reaches the
// client. And whatever identity a client claims in headers, the store
// sees only the verified one.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/faultproxy"
	"github.com/bffgate/edge/upstream/refstore"
)

// epSecret is text only a backend says; it must never reach a client.
const epSecret = "SECRET-BACKEND-TEXT at 10.9.8.7:5432"

// epFaultRig is a store of the test's own behind a fault proxy, and a
// gateway that calls the store through the proxy.
type epFaultRig struct {
	store       *Store
	proxy       *faultproxy.Proxy
	gw          *Gateway
	user, admin string
}

// epStartFaultRig starts the rig. Breakers and the retry budget are
// relaxed so that a run of injected failures is answered as failures, not
// as an open breaker's or a spent retry budget's 503 (those are tested on
// their own); env adds overrides.
func epStartFaultRig(t *testing.T, env map[string]string) *epFaultRig {
	t.Helper()
	store := StartStore(t, nil)
	proxy, err := faultproxy.New(store.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	idp := StartIdP(t)
	all := map[string]string{"GATEWAY_UPSTREAMS__USERSTORE__RETRYBUDGET__MINPERSECOND": "100000"}
	for _, op := range []string{"USERNAMECHECK", "SEARCH", "USERBYID", "LIVESTREAMS"} {
		all["GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__"+op+"__BREAKER__CONSECUTIVEFAILURES"] = "100000"
		all["GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__"+op+"__BREAKER__FAILURERATIO"] = "0"
	}
	for k, v := range env {
		all[k] = v
	}
	gw := StartGateway(t, GatewayOptions{StoreURL: proxy.URL(), IdP: idp, Env: all})
	return &epFaultRig{store: store, proxy: proxy, gw: gw, user: idp.UserToken(t), admin: idp.AdminToken(t)}
}

// epCall is one of the endpoints, as the app sends it.
type epCall struct {
	name   string
	method string
	path   string
	body   string
	admin  bool
}

var (
	epCallCheck  = epCall{name: "check-username", method: http.MethodPost, path: "/api/v1/users/check-username", body: `{"username":"johndoe123"}`}
	epCallSearch = epCall{name: "search", method: http.MethodGet, path: "/api/v2/users/search?query=sukru"}
	epCallMe     = epCall{name: "me", method: http.MethodGet, path: "/api/v1/users/me"}
	epCallAdminS = epCall{name: "admin search", method: http.MethodGet, path: "/api/admin/v1/users/search?query=sukru", admin: true}
	epCallAdminU = epCall{name: "admin user", method: http.MethodGet, path: "/api/admin/v1/users/" + refstore.DemoUserID, admin: true}
)

func (rig *epFaultRig) do(t testing.TB, c epCall, opts ...ReqOpt) *Response {
	t.Helper()
	base := []ReqOpt{Bearer(rig.user)}
	if c.admin {
		base = []ReqOpt{Bearer(rig.admin), Platform("admin")}
	}
	if c.body != "" {
		base = append(base, JSONBody(c.body))
	}
	return rig.gw.Do(t, c.method, c.path, append(base, opts...)...)
}

// fails checks that c fails with status and only the status's generic
// message, in English and Turkish, with nothing of the backend in it.
func (rig *epFaultRig) fails(t testing.TB, c epCall, status int, message string) {
	t.Helper()
	epFails(t, func(lang string) *Response {
		r := rig.do(t, c, Lang(lang))
		rig.noLeak(t, r)
		return r
	}, status, message)
}

// noLeak checks that nothing the backend or the network said is in a
// response: no backend text, no address, no transport error.
func (rig *epFaultRig) noLeak(t testing.TB, r *Response) {
	t.Helper()
	body := string(r.Body)
	for _, s := range []string{
		epSecret, "SECRET", "10.9.8.7", rig.proxy.Addr(), rig.store.Addr, "127.0.0.1", "localhost",
		"faultproxy", "injected", "It works", "<html", "<!DOCTYPE", "dial", "refused", "EOF", "reset by peer",
		"validation_failed", "not_found", `"conflict"`, `"internal"`, "upstream", "fasthttp", "db.go",
	} {
		if strings.Contains(body, s) {
			t.Fatalf("the response carries %q: %s", s, body)
		}
	}
	for name, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, rig.proxy.Addr()) || strings.Contains(v, rig.store.Addr) || strings.Contains(v, "SECRET") {
				t.Fatalf("header %s carries backend details: %q", name, v)
			}
		}
	}
}

// reached checks that the proxy received requests since before (the
// failure came from the injected fault, not from the gateway itself).
func (rig *epFaultRig) reached(t testing.TB, before faultproxy.Stats, what string) {
	t.Helper()
	if rig.proxy.Stats().Requests == before.Requests {
		t.Fatalf("%s: the gateway never called the store", what)
	}
}

// epContractError is a contract error body with backend-only text.
func epContractError(code string) string {
	return fmt.Sprintf(`{"code":%q,"message":%q,"details":{"username":%q,"trace":"at db.go:42"}}`, code, epSecret, epSecret)
}

// The store's own answers 400, 404 and 409 keep their meaning (404 only
// where the call names a user); the client reads the gateway's message
// for them, never the store's. An answer with the status but not the
// store's body is not the store's answer: 502.
func TestEndpointsUpstreamClientErrorsKeepTheirMeaning(t *testing.T) {
	rig := epStartFaultRig(t, map[string]string{"GATEWAY_CACHE__ENABLED": "false"})
	const (
		badGateway = "The service returned an invalid response"
	)
	for _, c := range []struct {
		call    epCall
		path    string
		mode    faultproxy.Mode
		status  int
		message string
	}{
		{epCallCheck, contract.PathUsernameCheck, faultproxy.Respond(400, "application/json", epContractError("validation_failed")), 400, "Validation failed"},
		{epCallCheck, contract.PathUsernameCheck, faultproxy.Respond(409, "application/json; charset=utf-8", epContractError("conflict")), 409, "Resource already exists or cannot be changed in its current state"},
		{epCallSearch, contract.PathSearch, faultproxy.Respond(400, "application/json", epContractError("validation_failed")), 400, "Validation failed"},
		{epCallMe, contract.PathUserPrefix + refstore.DemoUserID, faultproxy.Respond(404, "application/json", epContractError("not_found")), 404, "Resource not found"},
		{epCallAdminU, contract.PathUserPrefix + refstore.DemoUserID, faultproxy.Respond(404, "application/json", epContractError("not_found")), 404, "Resource not found"},
		{epCallMe, contract.PathUserPrefix + refstore.DemoUserID, faultproxy.Respond(409, "application/json", epContractError("conflict")), 409, "Resource already exists or cannot be changed in its current state"},
		// The status without the store's body: a proxy's page, a
		// stranger's JSON, a code that does not fit.
		{epCallMe, contract.PathUserPrefix, faultproxy.Respond(404, "text/html", "<html><body>404 Not Found "+epSecret+"</body></html>"), 502, badGateway},
		{epCallCheck, contract.PathUsernameCheck, faultproxy.Respond(400, "application/json", epContractError("not_found")), 502, badGateway},
		// A 404 means something only to the one-user call. On the
		// others it is a store without that path (a wrong base URL),
		// however well-formed its body: not "not found" to the apps.
		{epCallCheck, contract.PathUsernameCheck, faultproxy.Respond(404, "application/json", epContractError("not_found")), 502, badGateway},
		{epCallSearch, contract.PathSearch, faultproxy.Respond(404, "application/json", epContractError("not_found")), 502, badGateway},
		{epCallAdminS, contract.PathSearch, faultproxy.Respond(404, "application/json", epContractError("not_found")), 502, badGateway},
		{epCallCheck, contract.PathUsernameCheck, faultproxy.Respond(409, "text/plain", epSecret), 502, badGateway},
		{epCallSearch, contract.PathSearch, faultproxy.Respond(400, "application/json", `{"error":"`+epSecret+`"}`), 502, badGateway},
	} {
		t.Run(fmt.Sprintf("%s %s to %d", c.call.name, c.mode, c.status), func(t *testing.T) {
			if err := rig.proxy.SetPath(c.path, c.mode); err != nil {
				t.Fatal(err)
			}
			defer rig.proxy.Heal()
			before := rig.proxy.Stats()
			rig.fails(t, c.call, c.status, c.message)
			rig.reached(t, before, c.call.name)
		})
	}
	// Healed, every call works again.
	for _, c := range []epCall{epCallCheck, epCallSearch, epCallMe, epCallAdminS, epCallAdminU} {
		rig.do(t, c).Data(t, nil)
	}
}

// Everything else the store can get wrong is a 502 with the gateway's
// message: server errors, pages that are not JSON, broken or oversized
// JSON, answers about something else, redirects, a refused or reset
// connection.
func TestEndpointsUpstreamFailuresAreBadGateway(t *testing.T) {
	rig := epStartFaultRig(t, map[string]string{
		"GATEWAY_CACHE__ENABLED":                         "false",
		"GATEWAY_UPSTREAMS__USERSTORE__MAXRESPONSEBYTES": "64KiB",
	})
	const badGateway = "The service returned an invalid response"
	calls := []epCall{epCallCheck, epCallSearch, epCallMe, epCallAdminS, epCallAdminU}
	for _, c := range []struct {
		name string
		mode faultproxy.Mode
	}{
		{"500", faultproxy.Respond(500, "application/json", epContractError("internal"))},
		{"503", faultproxy.Respond(503, "application/json", epContractError("unavailable"))},
		{"502 page", faultproxy.Respond(502, "text/html", "<html><body>502 Bad Gateway nginx "+epSecret+"</body></html>")},
		{"504 empty", faultproxy.Respond(504, "", "")},
		{"HTML 200", faultproxy.HTML()},
		{"plain text 200", faultproxy.Respond(200, "text/plain", epSecret)},
		{"JSON 200 with HTML type", faultproxy.Respond(200, "text/html", `{"username":"johndoe123","available":true}`)},
		{"truncated JSON", faultproxy.TruncatedJSON()},
		{"oversized JSON", faultproxy.Oversized(256 << 10)},
		{"empty 200", faultproxy.Respond(200, "application/json", "")},
		{"null 200", faultproxy.Respond(200, "application/json", "null")},
		{"an array 200", faultproxy.Respond(200, "application/json", "[]")},
		{"redirect 302", faultproxy.Respond(302, "text/html", "")},
		{"redirect 307", faultproxy.Respond(307, "application/json", `{"items":[],"total":0}`)},
		{"201", faultproxy.Respond(201, "application/json", `{"username":"johndoe123","available":true}`)},
		{"reset", faultproxy.Reset()},
		{"hang-up", faultproxy.HangUp()},
		{"reset mid-body", faultproxy.ResetMidBody(10)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := rig.proxy.Set(c.mode); err != nil {
				t.Fatal(err)
			}
			defer rig.proxy.Heal()
			for _, call := range calls {
				before := rig.proxy.Stats()
				rig.fails(t, call, http.StatusBadGateway, badGateway)
				rig.reached(t, before, call.name)
			}
		})
	}

	// An answer for another user or another name is not the answer.
	for _, c := range []struct {
		call epCall
		path string
		body string
	}{
		{epCallCheck, contract.PathUsernameCheck, `{"username":"someone.else","available":true}`},
		{epCallCheck, contract.PathUsernameCheck, `{"username":"johndoe123"}`},
		{epCallMe, contract.PathUserPrefix, `{"id":"` + refstore.DemoAdminID + `","username":"admin","minutePrice":{"amountMinor":1,"currency":"TRY"}}`},
		{epCallMe, contract.PathUserPrefix, `{"id":"` + refstore.DemoUserID + `","username":"sukru.isik","minutePrice":{"amountMinor":12.5,"currency":"TRY"}}`},
		{epCallSearch, contract.PathSearch, `{"items":null,"total":3}`},
		{epCallSearch, contract.PathSearch, `{"items":[],"total":0} {"trailing":true}`},
	} {
		if err := rig.proxy.SetPath(c.path, faultproxy.Respond(200, "application/json", c.body)); err != nil {
			t.Fatal(err)
		}
		rig.fails(t, c.call, http.StatusBadGateway, badGateway)
		rig.proxy.Heal()
	}

	// Nobody listening: connection refused.
	if err := rig.proxy.Set(faultproxy.Refuse()); err != nil {
		t.Fatal(err)
	}
	for _, call := range calls {
		rig.fails(t, call, http.StatusBadGateway, badGateway)
	}
	if err := rig.proxy.Heal(); err != nil {
		t.Fatal(err)
	}
	for _, call := range calls {
		rig.do(t, call).Data(t, nil)
	}
}

// A store slower than an operation's timeout is a 504 with the gateway's
// message; the other calls of the same gateway are unaffected.
func TestEndpointsUpstreamSlowStoreIsGatewayTimeout(t *testing.T) {
	rig := epStartFaultRig(t, map[string]string{
		"GATEWAY_CACHE__ENABLED": "false",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__USERBYID__TIMEOUT":      "100ms",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__USERNAMECHECK__TIMEOUT": "100ms",
	})
	const timedOut = "The service did not respond in time"
	if err := rig.proxy.SetPath(contract.PathUserPrefix+refstore.DemoUserID, faultproxy.Delay(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := rig.proxy.SetPath(contract.PathUsernameCheck, faultproxy.Delay(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, call := range []epCall{epCallMe, epCallAdminU, epCallCheck} {
		before := rig.proxy.Stats()
		rig.fails(t, call, http.StatusGatewayTimeout, timedOut)
		rig.reached(t, before, call.name)
	}
	// Search has its own (longer) timeout and a healthy path.
	rig.do(t, epCallSearch).Data(t, nil)
	// The admin's own profile is another user: not slowed down.
	rig.gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(rig.admin)).Data(t, nil)
}

// The live-stream look-up is an enrichment: when it fails, profiles and
// search pages still come, with liveStream null and X-Partial-Response
// naming what is missing. Such an answer is never cached: the next
// request asks the store again, and once it recovers, the complete answer
// is served and cached.
func TestEndpointsUpstreamLiveStreamFailureIsAPartialAnswer(t *testing.T) {
	rig := epStartFaultRig(t, nil) // the cache is on
	streams := contract.PathLiveStreams

	for _, mode := range []faultproxy.Mode{
		faultproxy.Respond(500, "application/json", epContractError("internal")),
		faultproxy.HTML(),
		faultproxy.Delay(2 * time.Second), // beyond liveStreams' 300ms timeout
	} {
		t.Run(mode.String(), func(t *testing.T) {
			if err := rig.proxy.SetPath(streams, mode); err != nil {
				t.Fatal(err)
			}
			// The profile, twice: both complete but for the stream, both
			// from the store.
			rig.store.Reset(t)
			for i := range 2 {
				r, data := epMe(t, rig.gw, Bearer(rig.user))
				epPartial(t, r)
				rig.noLeak(t, r)
				want := epDemoProfile("₺12.50")
				want["liveStream"] = nil
				epEqualJSON(t, fmt.Sprintf("partial profile %d", i), data, want)
			}
			epWantCalls(t, rig.store, map[string]int64{refstore.OpUser: 2})

			// A search page, twice: the same.
			rig.store.Reset(t)
			for range 2 {
				r, p := epSearch(t, rig.gw, "/api/v2/users/search?query=sukru.isik", Bearer(rig.user))
				epPartial(t, r)
				if len(p.Items) == 0 || epString(t, p.Items[0]["id"]) != refstore.DemoUserID {
					t.Fatalf("partial search lost the users: %+v", p)
				}
				for _, it := range p.Items {
					if string(it["liveStream"]) != "null" {
						t.Fatalf("a live stream out of nowhere: %s", it["liveStream"])
					}
					if got := epSortedKeys(it); !slices.Equal(got, epPublicKeys) {
						t.Fatalf("partial item keys %v", got)
					}
				}
			}
			epWantCalls(t, rig.store, map[string]int64{refstore.OpSearch: 2})

			// The admin routes are never cached anyway; they say partial too.
			for _, call := range []epCall{epCallAdminS, epCallAdminU} {
				r := rig.do(t, call)
				r.Data(t, nil)
				epPartial(t, r)
			}

			// Recovered: complete, cached, then served from the cache.
			if err := rig.proxy.Heal(); err != nil {
				t.Fatal(err)
			}
			rig.store.Reset(t)
			r, data := epMe(t, rig.gw, Bearer(rig.user))
			if r.Header.Get("X-Partial-Response") != "" || r.Header.Get("X-Cache") != "MISS" {
				t.Fatalf("after recovery: X-Partial-Response %q, X-Cache %q", r.Header.Get("X-Partial-Response"), r.Header.Get("X-Cache"))
			}
			epEqualJSON(t, "recovered profile", data, epDemoProfile("₺12.50"))
			r, _ = epMe(t, rig.gw, Bearer(rig.user))
			if r.Header.Get("X-Cache") != "HIT" {
				t.Fatalf("the complete profile was not cached: X-Cache %q", r.Header.Get("X-Cache"))
			}
			r, p := epSearch(t, rig.gw, "/api/v2/users/search?query=sukru.isik", Bearer(rig.user))
			if r.Header.Get("X-Partial-Response") != "" || string(p.Items[0]["liveStream"]) == "null" {
				t.Fatalf("after recovery the search still has no live stream: %s", r.Body)
			}
			epWantCalls(t, rig.store, map[string]int64{refstore.OpUser: 1, refstore.OpSearch: 1, refstore.OpLiveStreams: 2})

			// Leave nothing cached for the next mode.
			if r := rig.gw.Ops(t, http.MethodPost, "/ops/v1/cache/purge?all=true"); r.Status != http.StatusOK {
				t.Fatalf("purge: %d %s", r.Status, r.Body)
			}
		})
	}
}

// epPartial checks the marks of a partial answer: 200, the header, and
// not cacheable anywhere.
func epPartial(t testing.TB, r *Response) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, want 200 for a partial answer: %s", r.Status, r.Body)
	}
	if p := r.Header.Get("X-Partial-Response"); p != "liveStream" {
		t.Fatalf("X-Partial-Response %q, want liveStream", p)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "private, no-store" {
		t.Fatalf("Cache-Control %q on a partial answer, want private, no-store", cc)
	}
	if e := r.Header.Get("ETag"); e != "" {
		t.Fatalf("ETag %q on a partial answer", e)
	}
	if x := r.Header.Get("X-Cache"); x == "HIT" || x == "STALE" {
		t.Fatalf("X-Cache %q: a partial answer came from the cache", x)
	}
}

// epSpoofed are identity headers other gateways and proxies use. A client
// that sends them must not be believed, and they must not travel on.
var epSpoofed = map[string]string{
	"X-User-Id":                      refstore.DemoAdminID,
	"X-User-Roles":                   "admin,superuser",
	"X-Forwarded-User":               "admin",
	"X-Forwarded-Email":              "admin@example.com",
	"X-Forwarded-Groups":             "admin",
	"X-Forwarded-Preferred-Username": "admin",
	"X-Auth-Request-User":            "admin",
	"X-Auth-Request-Email":           "admin@example.com",
	"X-Remote-User":                  "admin",
	"Remote-User":                    "admin",
	"X-Authenticated-User":           "admin",
	"X-Authenticated-Userid":         "admin",
	"X-Consumer-Id":                  "admin",
	"X-Consumer-Username":            "admin",
	"X-Userinfo":                     "eyJzdWIiOiJhZG1pbiJ9",
	"X-Jwt-Claims":                   `{"roles":["admin"]}`,
	"X-Roles":                        "admin",
	"X-User":                         "admin",
	"X-Admin":                        "true",
	"X-Original-User":                "admin",
	"Cookie":                         "session=admin",
}

// epForwardedHeaders are the only headers the store may receive: the
// contract's, and what HTTP itself needs (canonical spellings, as the
// proxy records them).
var epForwardedHeaders = func() []string {
	names := []string{
		"Accept", "Content-Length", "Content-Type", "User-Agent", "Accept-Encoding",
		contract.HeaderRequestID, contract.HeaderTraceparent, contract.HeaderUserID, contract.HeaderUserRoles,
		contract.HeaderLanguage, contract.HeaderTimezone, contract.HeaderPlatform, contract.HeaderAppVersion, contract.HeaderDeviceID,
	}
	for i, n := range names {
		names[i] = http.CanonicalHeaderKey(n)
	}
	return names
}()

// A client sends identity headers of its own, on every endpoint. The store
// receives the verified identity only, one value each, and none of the
// client's claims; the client's token does not travel on either.
func TestEndpointsUpstreamSpoofedIdentityNeverReachesTheStore(t *testing.T) {
	rig := epStartFaultRig(t, map[string]string{"GATEWAY_CACHE__ENABLED": "false"})
	var spoof []ReqOpt
	for k, v := range epSpoofed {
		spoof = append(spoof, Header(k, v))
	}
	// The same headers repeated, in other spellings.
	spoof = append(spoof, Header("x-user-id", refstore.DemoMissingID), Header("X-USER-ROLES", "admin"))
	for _, c := range []struct {
		call  epCall
		sub   string
		roles string
		calls int
	}{
		{call: epCallCheck, sub: refstore.DemoUserID, roles: "user", calls: 1},
		{call: epCallSearch, sub: refstore.DemoUserID, roles: "user", calls: 2},
		{call: epCallMe, sub: refstore.DemoUserID, roles: "user", calls: 2},
		{call: epCallAdminS, sub: refstore.DemoAdminID, roles: "user,admin", calls: 2},
		{call: epCallAdminU, sub: refstore.DemoAdminID, roles: "user,admin", calls: 2},
	} {
		t.Run(c.call.name, func(t *testing.T) {
			rig.proxy.Record(true)
			defer rig.proxy.Record(false)
			rig.do(t, c.call, spoof...).Data(t, nil)
			seen := rig.proxy.Seen()
			if len(seen) != c.calls {
				t.Fatalf("%d store calls, want %d", len(seen), c.calls)
			}
			for _, s := range seen {
				if got := s.Header.Values(contract.HeaderUserID); !slices.Equal(got, []string{c.sub}) {
					t.Fatalf("%s: the store received X-User-Id %q, want only the token's %q", s.RequestURI, got, c.sub)
				}
				if got := s.Header.Values(contract.HeaderUserRoles); !slices.Equal(got, []string{c.roles}) {
					t.Fatalf("%s: the store received X-User-Roles %q, want only the token's %q", s.RequestURI, got, c.roles)
				}
				for name := range s.Header {
					if !slices.Contains(epForwardedHeaders, name) {
						t.Fatalf("%s: the store received %s: %q (all: %v)", s.RequestURI, name, s.Header.Values(name), s.Header)
					}
				}
				for name, vs := range s.Header {
					if len(vs) != 1 {
						t.Fatalf("%s: the store received %s %d times: %q", s.RequestURI, name, len(vs), vs)
					}
				}
			}
		})
	}
}

// The store's times reach the apps in the one form docs/api.md gives (UTC,
// milliseconds, Z), whatever RFC 3339 spelling the store used; the instant
// is kept. One that is not a time is the store failing.
func TestEndpointsStoreTimesAreCanonical(t *testing.T) {
	rig := epStartFaultRig(t, nil)
	user := `{"id":"` + refstore.DemoUserID + `","username":"sukru.isik","firstName":"Şükrü","lastName":"Işık",` +
		`"minutePrice":{"amountMinor":1250,"currency":"TRY"},` +
		`"createdAt":"2025-03-01T12:00:00+03:00","updatedAt":"2026-05-01T12:00:00.123456Z"}`
	streams := `{"items":[{"id":"s1","userId":"` + refstore.DemoUserID + `","title":"t","startedAt":"2025-12-31T19:30:00.5-04:30","viewerCount":3}]}`
	if err := rig.proxy.SetPath(contract.PathUserPrefix+refstore.DemoUserID, faultproxy.Respond(200, "application/json", user)); err != nil {
		t.Fatal(err)
	}
	if err := rig.proxy.SetPath(contract.PathLiveStreams, faultproxy.Respond(200, "application/json", streams)); err != nil {
		t.Fatal(err)
	}
	type times struct {
		CreatedAt  string `json:"createdAt"`
		UpdatedAt  string `json:"updatedAt"`
		LiveStream struct {
			StartedAt string `json:"startedAt"`
		} `json:"liveStream"`
	}
	var me, admin times
	rig.do(t, epCallMe).Data(t, &me)
	if me.CreatedAt != "2025-03-01T09:00:00.000Z" || me.LiveStream.StartedAt != "2026-01-01T00:00:00.500Z" {
		t.Errorf("/me: createdAt %q, liveStream.startedAt %q", me.CreatedAt, me.LiveStream.StartedAt)
	}
	rig.do(t, epCallAdminU).Data(t, &admin)
	if admin.CreatedAt != "2025-03-01T09:00:00.000Z" || admin.UpdatedAt != "2026-05-01T12:00:00.123Z" {
		t.Errorf("admin user: createdAt %q, updatedAt %q", admin.CreatedAt, admin.UpdatedAt)
	}

	if err := rig.proxy.SetPath(contract.PathUserPrefix+refstore.DemoUserID,
		faultproxy.Respond(200, "application/json", strings.Replace(user, "2025-03-01T12:00:00+03:00", "yesterday", 1))); err != nil {
		t.Fatal(err)
	}
	rig.fails(t, epCallAdminU, http.StatusBadGateway, "The service returned an invalid response")
}

// A gateway pointed at the store's host with a wrong base path: the store
// answers its well-formed 404 for every path it does not have. Search and
// the username check name no resource that can be missing, so they answer
// 502, count as store failures and log the hint; only the profile, which
// names a user, cannot tell a wrong path from a deleted user.
func TestEndpointsWrongStoreBasePathIsBadGateway(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{StoreURL: store.URL + "/v9", IdP: idp,
		Env: map[string]string{"GATEWAY_CACHE__ENABLED": "false"}})
	token := idp.UserToken(t)
	const badGateway = "The service returned an invalid response"
	gw.Do(t, "GET", "/api/v2/users/search?query=ali", Bearer(token)).Failure(t, 502, badGateway)
	gw.Do(t, "POST", "/api/v1/users/check-username", Bearer(token), JSONBody(`{"username":"sukru.isik"}`)).Failure(t, 502, badGateway)
	gw.Do(t, "GET", "/api/v1/users/me", Bearer(token)).Failure(t, 404, "Resource not found")
	metrics := gw.Metrics(t)
	for _, op := range []string{"search", "usernameCheck"} {
		if want := `gateway_upstream_calls_total{op="` + op + `",outcome="bad_status"} 1`; !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(gw.Logs(), "is the store's base URL right?") {
		t.Errorf("no log line names the likely cause:\n%s", gw.Logs())
	}
}

// A store whose text is not UTF-8, such as one behind a database that
// speaks Turkish Windows-1254 (Şükrü Işık as the bytes DE FC 6B 72 FC and
// 49 FE FD 6B), answers outside its contract (JSON is UTF-8, RFC 8259
// section 8.1): a 502, never a 200 whose names an app shows as "�kr�".
func TestEndpointsStoreTextThatIsNotUTF8IsBadGateway(t *testing.T) {
	rig := epStartFaultRig(t, map[string]string{"GATEWAY_CACHE__ENABLED": "false"})
	const (
		firstName = "\xde\xfckr\xfc" // Şükrü in Windows-1254
		lastName  = "I\xfe\xfdk"     // Işık
	)
	user := `{"id":"` + refstore.DemoUserID + `","username":"sukru.isik","firstName":"` + firstName + `","lastName":"` + lastName + `",` +
		`"minutePrice":{"amountMinor":1250,"currency":"TRY"},` +
		`"createdAt":"2025-03-01T09:00:00.000Z","updatedAt":"2026-05-01T12:00:00.000Z"}`
	const badGateway = "The service returned an invalid response"
	for _, ct := range []string{"application/json", "application/json; charset=windows-1254", "application/json; charset=utf-8"} {
		if err := rig.proxy.SetPath(contract.PathUserPrefix+refstore.DemoUserID, faultproxy.Respond(200, ct, user)); err != nil {
			t.Fatal(err)
		}
		if err := rig.proxy.SetPath(contract.PathSearch, faultproxy.Respond(200, ct, `{"items":[`+user+`],"total":1}`)); err != nil {
			t.Fatal(err)
		}
		if err := rig.proxy.SetPath(contract.PathUsernameCheck, faultproxy.Respond(200, ct, `{"username":"johndoe123","available":true,"note":"`+lastName+`"}`)); err != nil {
			t.Fatal(err)
		}
		for _, c := range []epCall{epCallMe, epCallSearch, epCallAdminU, epCallAdminS, epCallCheck} {
			rig.fails(t, c, http.StatusBadGateway, badGateway)
		}
		if err := rig.proxy.Heal(); err != nil {
			t.Fatal(err)
		}
	}
	// The same answer in UTF-8 is served.
	utf8User := strings.NewReplacer(firstName, "Şükrü", lastName, "Işık").Replace(user)
	if err := rig.proxy.SetPath(contract.PathUserPrefix+refstore.DemoUserID, faultproxy.Respond(200, "application/json", utf8User)); err != nil {
		t.Fatal(err)
	}
	var me struct{ FirstName, LastName string }
	rig.do(t, epCallMe).Data(t, &me)
	if me.FirstName != "Şükrü" || me.LastName != "Işık" {
		t.Fatalf("/me: %q %q", me.FirstName, me.LastName)
	}
}
