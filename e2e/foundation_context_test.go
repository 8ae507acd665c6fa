package e2e

// Issue 2, the client context: whatever spelling an app sends, the user
// store receives one canonical value per header (checked on the store's
// request recorder), identity headers come only from the verified token,
// and messages come back in the caller's language.

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/refstore"
)

// fndContextRig is one store and one gateway for the context tests.
type fndContextRig struct {
	store *Store
	idp   *IdP
	gw    *Gateway
	tok   string
	seq   atomic.Int64
}

func fndStartContextRig(t *testing.T) *fndContextRig {
	t.Helper()
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	return &fndContextRig{store: store, idp: idp, gw: gw, tok: idp.UserToken(t)}
}

// sent makes one username check (never cached, so it always reaches the
// store) with the given headers, and returns the headers the store
// received for it, found by a request id of the test's own.
func (r *fndContextRig) sent(t *testing.T, headers map[string][]string) map[string]string {
	t.Helper()
	id := fmt.Sprintf("fnd-ctx-%d", r.seq.Add(1))
	opts := []ReqOpt{Bearer(r.tok), JSONBody(`{"username":"context.probe"}`), Header("X-Request-Id", id)}
	for k, vs := range headers {
		for _, v := range vs {
			opts = append(opts, Header(k, v))
		}
	}
	r.gw.Do(t, http.MethodPost, "/api/v1/users/check-username", opts...).Data(t, nil)
	for _, rec := range r.store.Requests(t) {
		if rec.Headers["X-Request-Id"] == id {
			if rec.Operation != refstore.OpUsernameCheck {
				t.Fatalf("request %s reached the store as %q", id, rec.Operation)
			}
			return rec.Headers
		}
	}
	t.Fatalf("the store never saw request %s", id)
	return nil
}

// want checks one header as the store received it; "" means absent.
func fndWantHeader(t *testing.T, got map[string]string, name, want string) {
	t.Helper()
	v, ok := got[name]
	if want == "" {
		if ok {
			t.Fatalf("store received %s: %q, want it absent (all: %v)", name, v, got)
		}
		return
	}
	if v != want {
		t.Fatalf("store received %s: %q, want %q (all: %v)", name, v, want, got)
	}
}

func TestFoundationContextLanguage(t *testing.T) {
	rig := fndStartContextRig(t)
	for _, c := range []struct {
		name              string
		xLanguage, accept string
		want              string
	}{
		{"nothing sent", "", "", "en"},
		{"X-Language tr", "tr", "", "tr"},
		{"X-Language TR", "TR", "", "tr"},
		{"X-Language tr-TR", "tr-TR", "", "tr"},
		{"X-Language padded", "  tr  ", "", "tr"},
		{"X-Language as a q-list", "tr;q=0.9,en;q=0.8", "", "tr"},
		{"X-Language en-GB", "en-GB", "", "en"},
		{"X-Language de, nothing else", "de", "", "en"},
		{"X-Language garbage", "../../etc/passwd", "", "en"},
		{"Accept-Language tr-TR,tr;q=0.9", "", "tr-TR,tr;q=0.9", "tr"},
		{"Accept-Language tr", "", "tr", "tr"},
		{"Accept-Language prefers en", "", "en-US,en;q=0.9,tr;q=0.8", "en"},
		{"Accept-Language weights tr higher", "", "de-DE,en;q=0.5,tr;q=0.8", "tr"},
		{"Accept-Language de only", "", "de-DE,de;q=0.9", "en"},
		{"X-Language wins over Accept-Language", "en", "tr-TR", "en"},
		{"X-Language tr wins over Accept-Language en", "tr", "en-US", "tr"},
		{"unsupported X-Language defers to Accept-Language", "de", "tr-TR,tr;q=0.9", "tr"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := map[string][]string{}
			if c.xLanguage != "" {
				h["X-Language"] = []string{c.xLanguage}
			}
			if c.accept != "" {
				h["Accept-Language"] = []string{c.accept}
			}
			fndWantHeader(t, rig.sent(t, h), "X-Language", c.want)
		})
	}
}

func TestFoundationContextTimezone(t *testing.T) {
	rig := fndStartContextRig(t)
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Fatal(err)
	}
	laWant := "UTC-08:00"
	if _, off := time.Now().In(la).Zone(); off == -7*3600 {
		laWant = "UTC-07:00"
	}
	for _, c := range []struct{ sent, want string }{
		{"", "UTC+00:00"},
		{"UTC", "UTC+00:00"},
		{"Z", "UTC+00:00"},
		{"gmt", "UTC+00:00"},
		{"UTC+3", "UTC+03:00"},
		{"UTC+03:00", "UTC+03:00"},
		{"+03:00", "UTC+03:00"},
		{"+0300", "UTC+03:00"},
		{"GMT+3", "UTC+03:00"},
		{"Europe/Istanbul", "UTC+03:00"},
		{"europe/istanbul", "UTC+03:00"},
		{"Asia/Kolkata", "UTC+05:30"},
		{"Asia/Kathmandu", "UTC+05:45"},
		{"America/Los_Angeles", laWant},
		{"UTC-08:00", "UTC-08:00"}, // missing from the seed's list, real nonetheless
		{"UTC-09:30", "UTC-09:30"},
		{"UTC+14:00", "UTC+14:00"},
		{"UTC-12:00", "UTC-12:00"},
		// Out of range, not a real offset, or path-like: the default.
		{"UTC+15", "UTC+00:00"},
		{"UTC-13", "UTC+00:00"},
		{"UTC+03:07", "UTC+00:00"},
		{"3", "UTC+00:00"},
		{"../../etc/passwd", "UTC+00:00"},
		{"Europe/../../etc/passwd", "UTC+00:00"},
		{"/etc/localtime", "UTC+00:00"},
		{"Local", "UTC+00:00"},
		{"Mars/Olympus_Mons", "UTC+00:00"},
		{strings.Repeat("A", 100), "UTC+00:00"},
	} {
		t.Run(c.sent, func(t *testing.T) {
			h := map[string][]string{}
			if c.sent != "" {
				h["X-Timezone"] = []string{c.sent}
			}
			fndWantHeader(t, rig.sent(t, h), "X-Timezone", c.want)
		})
	}
}

func TestFoundationContextPlatformAndIdentifiers(t *testing.T) {
	rig := fndStartContextRig(t)
	for _, c := range []struct{ sent, want string }{
		{"", "web"},
		{"web", "web"},
		{"WEB", "web"},
		{"iOS", "mobile_ios"},
		{"mobile_ios", "mobile_ios"},
		{"android", "mobile_android"},
		{"Mobile-Android", "mobile_android"},
		{"api", "api"},
		{"all", "unknown"}, // a policy target, never a client
		{"unknown", "unknown"},
		{"toaster", "unknown"},
	} {
		t.Run("platform "+c.sent, func(t *testing.T) {
			h := map[string][]string{}
			if c.sent != "" {
				h["X-Platform"] = []string{c.sent}
			}
			fndWantHeader(t, rig.sent(t, h), "X-Platform", c.want)
		})
	}

	for _, c := range []struct{ sent, want string }{
		{"1.2.3", "1.2.3"},
		{"4.0.0-beta.1+build.7", "4.0.0-beta.1+build.7"},
		{strings.Repeat("9", 32), strings.Repeat("9", 32)},
		{strings.Repeat("9", 33), ""},
		{"1.0 beta", ""},
		{"<script>", ""},
		{"1.2.3;rm", ""},
		{"sürüm1", ""},
	} {
		t.Run("app version "+fndShort(c.sent), func(t *testing.T) {
			fndWantHeader(t, rig.sent(t, map[string][]string{"X-App-Version": {c.sent}}), "X-App-Version", c.want)
		})
	}
	fndWantHeader(t, rig.sent(t, nil), "X-App-Version", "")

	for _, c := range []struct{ sent, want string }{
		{"3F2504E0-4F89-11D3-9A0C-0305E82C3301", "3F2504E0-4F89-11D3-9A0C-0305E82C3301"},
		{"android:a1b2c3d4e5f6", "android:a1b2c3d4e5f6"},
		{strings.Repeat("d", 128), strings.Repeat("d", 128)},
		{strings.Repeat("d", 129), ""},
		{"dev id", ""},
		{"cihaz-ğüş", ""},
		{"a/b", ""},
	} {
		t.Run("device id "+fndShort(c.sent), func(t *testing.T) {
			fndWantHeader(t, rig.sent(t, map[string][]string{"X-Device-Id": {c.sent}}), "X-Device-Id", c.want)
		})
	}
	fndWantHeader(t, rig.sent(t, nil), "X-Device-Id", "")
}

var fndTraceparent = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// A client that writes the gateway's own upstream headers: the store sees
// only the verified identity and the normalized context, one value each.
func TestFoundationContextSpoofedHeadersNeverReachTheStore(t *testing.T) {
	rig := fndStartContextRig(t)
	got := rig.sent(t, map[string][]string{
		"X-User-Id":     {"00000000-0000-4000-8000-000000000000"},
		"X-User-Roles":  {"admin,superuser"},
		"X-Language":    {" TR ", "en"},
		"X-Timezone":    {"GMT+3", "UTC-05:00"},
		"X-Platform":    {"IOS"},
		"X-App-Version": {"2.0.0"},
		"X-Device-Id":   {"device-1"},
		"traceparent":   {"not-a-traceparent"},
	})
	fndWantHeader(t, got, "X-User-Id", refstore.DemoUserID)
	fndWantHeader(t, got, "X-User-Roles", "user")
	fndWantHeader(t, got, "X-Language", "tr") // normalized, first value counts
	fndWantHeader(t, got, "X-Timezone", "UTC+03:00")
	fndWantHeader(t, got, "X-Platform", "mobile_ios")
	fndWantHeader(t, got, "X-App-Version", "2.0.0")
	fndWantHeader(t, got, "X-Device-Id", "device-1")
	if tp := got["traceparent"]; !fndTraceparent.MatchString(tp) {
		t.Fatalf("store received traceparent %q, want a valid W3C one made by the gateway", tp)
	}

	// The admin's roles come from the admin's token, whatever is claimed.
	rig.tok = rig.idp.AdminToken(t)
	got = rig.sent(t, map[string][]string{"X-User-Id": {refstore.DemoUserID}, "X-User-Roles": {"user"}})
	fndWantHeader(t, got, "X-User-Id", refstore.DemoAdminID)
	fndWantHeader(t, got, "X-User-Roles", "user,admin")

	// A valid client traceparent is continued: same trace id.
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	got = rig.sent(t, map[string][]string{"traceparent": {tp}})
	if g := got["traceparent"]; !fndTraceparent.MatchString(g) || !strings.Contains(g, "4bf92f3577b34da6a3ce929d0e0e4736") {
		t.Fatalf("store received traceparent %q, want the client's trace continued", g)
	}
}

// Both calls behind one profile read carry the same context.
func TestFoundationContextReachesEveryCallOfARequest(t *testing.T) {
	rig := fndStartContextRig(t)
	rig.store.Reset(t)
	r := rig.gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(rig.tok), Header("X-Request-Id", "fnd-me-1"),
		Header("Accept-Language", "tr-TR,tr;q=0.9"), Header("X-Timezone", "Europe/Istanbul"),
		Platform("android"), Header("X-App-Version", "7.1.0"), Header("X-Device-Id", "dev-77"))
	r.Data(t, nil)
	reqs := rig.store.Requests(t)
	ops := map[string]bool{}
	for _, rec := range reqs {
		ops[rec.Operation] = true
		for name, want := range map[string]string{
			"X-Request-Id": "fnd-me-1", "X-User-Id": refstore.DemoUserID, "X-User-Roles": "user",
			"X-Language": "tr", "X-Timezone": "UTC+03:00", "X-Platform": "mobile_android",
			"X-App-Version": "7.1.0", "X-Device-Id": "dev-77",
		} {
			fndWantHeader(t, rec.Headers, name, want)
		}
		if rec.Authorization {
			t.Fatalf("%s carried an Authorization header to the store", rec.Operation)
		}
	}
	if !ops[refstore.OpUser] || !ops[refstore.OpLiveStreams] || len(reqs) != 2 {
		t.Fatalf("store calls %v, want one user and one live-stream call", ops)
	}
}

// The messages follow the language: X-Language or Accept-Language.
func TestFoundationContextMessagesInTurkish(t *testing.T) {
	rig := fndStartContextRig(t)
	gw := rig.gw
	bad := JSONBody(`{"username":"ab"}`)
	for _, c := range []struct {
		name string
		opts []ReqOpt
		want []string
	}{
		{"default", nil, []string{"Validation failed", "username must be between 3 and 30 characters long"}},
		{"X-Language tr", []ReqOpt{Lang("tr")}, []string{"Doğrulama başarısız oldu", "Kullanıcı adı 3 ile 30 karakter arasında olmalıdır"}},
		{"Accept-Language tr", []ReqOpt{Header("Accept-Language", "tr")}, []string{"Doğrulama başarısız oldu", "Kullanıcı adı 3 ile 30 karakter arasında olmalıdır"}},
		{"Accept-Language tr-TR list", []ReqOpt{Header("Accept-Language", "tr-TR,tr;q=0.9,en;q=0.8")}, []string{"Doğrulama başarısız oldu", "Kullanıcı adı 3 ile 30 karakter arasında olmalıdır"}},
		{"X-Language en over Accept-Language tr", []ReqOpt{Lang("en"), Header("Accept-Language", "tr")}, []string{"Validation failed", "username must be between 3 and 30 characters long"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := append([]ReqOpt{Bearer(rig.tok), bad}, c.opts...)
			fndOnly(t, gw.Do(t, http.MethodPost, "/api/v1/users/check-username", opts...), http.StatusBadRequest, c.want...)
		})
	}
	fndOnly(t, gw.Do(t, http.MethodGet, "/api/v1/users/me", Header("Accept-Language", "tr")), http.StatusUnauthorized, "Kimlik doğrulaması gerekli")
	fndOnly(t, gw.Do(t, http.MethodGet, "/api/v1/users/me", Lang("tr")), http.StatusUnauthorized, "Kimlik doğrulaması gerekli")
	fndOnly(t, gw.Do(t, http.MethodGet, "/api/v1/users/nothing", Header("Accept-Language", "tr-TR")), http.StatusNotFound, "Kaynak bulunamadı")
	fndOnly(t, gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(rig.tok), Lang("tr"),
		RawBody("text/plain", []byte(`{"username":"abc"}`))), http.StatusBadRequest,
		"Doğrulama başarısız oldu", "Content-Type application/json olmalıdır")
}

// Fields a client puts in the trailer section of a chunked body are not
// headers: fasthttp appends them to the request's header list, where the
// edge would read them as X-Platform, X-Language, X-Request-Id, Origin or
// X-Forwarded-For, past whatever a proxy in front checked, stripped or
// appended in the header section. Behind a trusted proxy a trailer's
// X-Forwarded-For is the rightmost entry, so it would name the client and
// buy a fresh per-IP budget with each request. A request that sends
// trailer fields is refused (400, English, a new request id) and never
// reaches the store; one without them is served as usual.
func TestFoundationContextTrailerFieldsAreRefused(t *testing.T) {
	idp := StartIdP(t)
	store := StartStore(t, nil)
	env := polLimitEnv(map[string]string{"GATEWAY_SERVER__TRUSTEDPROXIES": "127.0.0.1/32"}, "perIP", polSlowRate, 3)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: env})
	tok := idp.UserToken(t)
	body := `{"username":"trailer.probe"}`
	chunked := func(id, trailer string) string {
		return "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Type: application/json\r\nX-Forwarded-For: 203.0.113.7\r\nX-Request-Id: " + id +
			"\r\nTransfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n%s\r\n", len(body), body, trailer)
	}

	// A chunked body without trailer fields is a request like any other,
	// also as the second request of a connection (after which the
	// connection is closed: framing.go). Three spend the proxied client's
	// per-IP budget.
	ka := gw.KeepAlive(t)
	ka.Send(t, "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+tok+
		"\r\nContent-Type: application/json\r\nX-Forwarded-For: 203.0.113.7\r\nX-Request-Id: plain-1"+
		fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n%s", len(body), body)).Data(t, nil)
	ka.Send(t, chunked("plain-2", "")).Data(t, nil)
	if n, err := ka.Closed(); n != 0 || err != io.EOF {
		t.Fatalf("after a chunked request: read %d bytes, %v; want the connection closed (EOF)", n, err)
	}
	fndRaw(t, gw, chunked("plain-3", "")).Data(t, nil)
	polTooMany(t, fndRaw(t, gw, chunked("plain-4", "")), "en", 3)

	for i := range 3 {
		id := fmt.Sprintf("trailer-%d", i)
		trailer := fmt.Sprintf("X-Forwarded-For: 198.51.100.%d\r\nX-Platform: mobile_ios\r\nX-Language: tr\r\nX-Request-Id: from-trailer\r\n", i+1)
		r := fndRaw(t, gw, chunked(id, trailer))
		if r.Status != http.StatusBadRequest {
			t.Fatalf("trailer fields: status %d, want 400 (a trailer's X-Forwarded-For must not name the client): %s", r.Status, r.Body)
		}
		fndOnly(t, r, http.StatusBadRequest, "Validation failed")
		if got := r.Header.Get("X-Request-Id"); !fndUUIDv4.MatchString(got) {
			t.Fatalf("X-Request-Id %q, want a generated v4 UUID", got)
		}
	}
	for _, rec := range store.Requests(t) {
		if id := rec.Headers["X-Request-Id"]; strings.HasPrefix(id, "trailer-") || id == "from-trailer" {
			t.Fatalf("the store received %s: %v", id, rec.Headers)
		}
	}
}
