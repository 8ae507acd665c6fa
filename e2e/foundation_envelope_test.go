package e2e

// Issue 2, the envelope on every response: what the handlers answer, and
// what a framework would usually answer on its own (unknown route, wrong
// or unknown method, body or headers too large, a request that is not
// HTTP), always the one envelope, in the caller's language where the
// request could be read, with an X-Request-Id.

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fndRaw writes raw bytes to the gateway on a fresh connection and reads
// one HTTP response, for requests no well-behaved client would send.
func fndRaw(t *testing.T, gw *Gateway, raw string) *Response {
	t.Helper()
	return gw.KeepAlive(t).Send(t, raw)
}

func fndShort(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// fndOnly checks a failure envelope whose messages are exactly want.
func fndOnly(t *testing.T, r *Response, status int, want ...string) {
	t.Helper()
	got := r.Failure(t, status, want[0])
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors %q, want exactly %q", got, want)
	}
}

// fndNoFrameworkText fails when a body carries text a framework or the Go
// runtime would write on its own.
func fndNoFrameworkText(t *testing.T, r *Response) {
	t.Helper()
	for _, leak := range []string{"Cannot ", "Method Not Allowed", "Not Found", "Request Header Fields Too Large",
		"Request Entity Too Large", "Invalid http method", "error when reading", "cannot find", "goroutine ", "panic", ".go:"} {
		if bytes.Contains(r.Body, []byte(leak)) {
			t.Fatalf("body carries framework text %q: %s", leak, r.Body)
		}
	}
}

var fndUUIDv4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// Success answers: the exact envelope bytes around each endpoint's data,
// keys in the seed's order.
func TestFoundationEnvelopeSuccessShapes(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)

	for _, c := range []struct {
		name, method, path string
		opts               []ReqOpt
		data               string // exact data, or "" to only check it is an object
	}{
		{"username check", http.MethodPost, "/api/v1/users/check-username",
			[]ReqOpt{Bearer(tok), JSONBody(`{"username":"fresh.name_42"}`)}, `{"available":true}`},
		{"profile", http.MethodGet, "/api/v1/users/me", []ReqOpt{Bearer(tok)}, ""},
		{"search", http.MethodGet, "/api/v2/users/search?query=a&limit=2", []ReqOpt{Bearer(tok)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := gw.Do(t, c.method, c.path, c.opts...)
			if r.Status != http.StatusOK {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			e := r.Envelope(t)
			head := `{"isSuccess":true,"statusCode":200,"data":`
			if !bytes.HasPrefix(r.Body, []byte(head)) {
				t.Fatalf("body does not start with %s: %s", head, r.Body)
			}
			tail := `,"errors":[],"timestamp":"` + e.Timestamp + `"}`
			if !bytes.HasSuffix(r.Body, []byte(tail)) {
				t.Fatalf("body does not end with %s: %s", tail, r.Body)
			}
			if c.data != "" && string(e.Data) != c.data {
				t.Fatalf("data %s, want %s", e.Data, c.data)
			}
			if c.data == "" && (len(e.Data) == 0 || e.Data[0] != '{') {
				t.Fatalf("data is not an object: %s", e.Data)
			}
			if !fndUUIDv4.MatchString(r.Header.Get("X-Request-Id")) {
				t.Fatalf("generated X-Request-Id %q is not a v4 UUID", r.Header.Get("X-Request-Id"))
			}
		})
	}

	// The failure shape, byte for byte.
	r := gw.Do(t, http.MethodGet, "/api/v1/users/me")
	e := r.Envelope(t)
	want := `{"isSuccess":false,"statusCode":401,"data":null,"errors":["Authentication required"],"timestamp":"` + e.Timestamp + `"}`
	if string(r.Body) != want {
		t.Fatalf("failure body\n got %s\nwant %s", r.Body, want)
	}
}

// Paths the API does not have: 404 envelopes for every method, in both
// languages, never the framework's "Cannot GET /…".
func TestFoundationEnvelopeUnknownRoutes(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)

	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/"},
		{http.MethodGet, "/nope"},
		{http.MethodGet, "/api/v1/users"},
		{http.MethodGet, "/api/v1/users/unknown"},
		{http.MethodGet, "/API/V1/USERS/ME"}, // routes are case-sensitive
		{http.MethodGet, "/api/v3/users/search"},
		{http.MethodPost, "/api/v1/users/me/extra"},
		{http.MethodDelete, "/nope"},
		{http.MethodOptions, "/nope"},
		{http.MethodGet, "/healthz"}, // probes live on the ops listener only
		{http.MethodGet, "/%3Cscript%3Ealert(1)%3C/script%3E"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			r := gw.Do(t, c.method, c.path, Bearer(tok))
			fndOnly(t, r, http.StatusNotFound, "Resource not found")
			fndNoFrameworkText(t, r)
			if bytes.Contains(r.Body, []byte("script")) {
				t.Fatalf("the path is echoed: %s", r.Body)
			}
			tr := gw.Do(t, c.method, c.path, Bearer(tok), Lang("tr"))
			fndOnly(t, tr, http.StatusNotFound, "Kaynak bulunamadı")
		})
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("unknown routes reached the store %d times", n)
	}
}

// A known path with a method it does not take: 405 with Allow, before any
// authentication, and nothing reaches the store.
func TestFoundationEnvelopeWrongMethod(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)

	for _, c := range []struct{ method, path, allow string }{
		{http.MethodGet, "/api/v1/users/check-username", "POST, OPTIONS"},
		{http.MethodPut, "/api/v1/users/check-username", "POST, OPTIONS"},
		{http.MethodDelete, "/api/v1/users/me", "GET, HEAD, OPTIONS"},
		{http.MethodPost, "/api/v1/users/me", "GET, HEAD, OPTIONS"},
		{http.MethodPatch, "/api/v2/users/search", "GET, HEAD, OPTIONS"},
		{http.MethodPost, "/api/admin/v1/users/search", "GET, HEAD, OPTIONS"},
		{http.MethodDelete, "/api/admin/v1/users/8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11", "GET, HEAD, OPTIONS"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			for _, auth := range [][]ReqOpt{nil, {Bearer(tok)}} {
				r := gw.Do(t, c.method, c.path, auth...)
				fndOnly(t, r, http.StatusMethodNotAllowed, "Method not allowed")
				fndNoFrameworkText(t, r)
				if got := r.Header.Get("Allow"); got != c.allow {
					t.Fatalf("Allow %q, want %q", got, c.allow)
				}
			}
			r := gw.Do(t, c.method, c.path, Lang("tr"))
			fndOnly(t, r, http.StatusMethodNotAllowed, "Bu yönteme izin verilmiyor")
			if got := r.Header.Get("Allow"); got != c.allow {
				t.Fatalf("Allow %q, want %q", got, c.allow)
			}
		})
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("wrong methods reached the store %d times", n)
	}
}

// A method HTTP does not know (BREW, lower-case get): 405 envelope, in the
// caller's language (its headers were read), with Allow on known paths.
func TestFoundationEnvelopeUnknownMethod(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)

	for _, c := range []struct{ method, path, allow string }{
		{"BREW", "/api/v1/users/me", "GET, HEAD, OPTIONS"},
		{"BREW", "/api/v1/users/check-username", "POST, OPTIONS"},
		{"PROPFIND", "/api/v2/users/search", "GET, HEAD, OPTIONS"},
		{"get", "/api/v1/users/me", "GET, HEAD, OPTIONS"},   // methods are case-sensitive
		{"BREW", "/api/v1/users/me/", "GET, HEAD, OPTIONS"}, // routed with its trailing slash
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			r := gw.Do(t, c.method, c.path, Bearer(tok), Header("X-Request-Id", "brew-1"))
			fndOnly(t, r, http.StatusMethodNotAllowed, "Method not allowed")
			fndNoFrameworkText(t, r)
			if got := r.Header.Get("Allow"); got != c.allow {
				t.Fatalf("Allow %q, want %q", got, c.allow)
			}
			if got := r.Header.Get("X-Request-Id"); got != "brew-1" {
				t.Fatalf("X-Request-Id %q, want the client's brew-1", got)
			}
			fndOnly(t, gw.Do(t, c.method, c.path, Lang("tr")), http.StatusMethodNotAllowed, "Bu yönteme izin verilmiyor")
			fndOnly(t, gw.Do(t, c.method, c.path, Header("Accept-Language", "tr-TR,tr;q=0.9")),
				http.StatusMethodNotAllowed, "Bu yönteme izin verilmiyor")
		})
	}
	// An unknown path is a 404 whatever the method: a 405 would need the
	// Allow of a path that takes none.
	r := gw.Do(t, "BREW", "/nope", Lang("tr"))
	fndOnly(t, r, http.StatusNotFound, "Kaynak bulunamadı")
	if got := r.Header.Get("Allow"); got != "" {
		t.Fatalf("Allow %q on a 404", got)
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("unknown methods reached the store %d times", n)
	}
}

// A body over server.bodyLimit (16KiB): 413 envelope, whether announced by
// Content-Length or streamed in chunks, in the caller's language, and the
// store never hears of it.
func TestFoundationEnvelopeBodyTooLarge(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)
	big := `{"username":"` + strings.Repeat("a", 17<<10) + `"}`

	r := gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(tok), JSONBody(big))
	fndOnly(t, r, http.StatusRequestEntityTooLarge, "Request body too large")
	fndNoFrameworkText(t, r)

	logs := polFollowLogs(gw)
	r = gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(tok), JSONBody(big), Lang("tr"),
		Header("X-Request-Id", "big-body-1"))
	fndOnly(t, r, http.StatusRequestEntityTooLarge, "İstek gövdesi çok büyük")
	if got := r.Header.Get("X-Request-Id"); got != "big-body-1" {
		t.Fatalf("X-Request-Id %q, want the client's big-body-1", got)
	}
	logs.await(t, 5*time.Second, "request", map[string]string{"request_id": "big-body-1", "method": "POST", "status": "413", "route": "unmatched"})

	// Exactly at the limit is a body like any other (here: not valid for
	// the username rules, so a 400 from the handler, not a 413).
	atLimit := `{"username":"` + strings.Repeat("a", 16<<10-len(`{"username":""}`)) + `"}`
	if len(atLimit) != 16<<10 {
		t.Fatalf("test body is %d bytes", len(atLimit))
	}
	r = gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(tok), JSONBody(atLimit))
	fndOnly(t, r, http.StatusBadRequest, "Validation failed", "username must be between 3 and 30 characters long")

	// Chunked, no Content-Length: the limit still holds. fasthttp drops
	// the request's headers when its body fails; the gateway held them, so
	// the answer is still in the caller's language, with their request id
	// and the web origin's CORS headers, and the log has the method.
	chunk := strings.Repeat("b", 20<<10)
	raw := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok +
		"\r\nContent-Type: application/json\r\nX-Language: tr\r\nX-Request-Id: big-chunks-1\r\nOrigin: " + polWebOrigin +
		"\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5000\r\n" + chunk + "\r\n0\r\n\r\n"
	r = fndRaw(t, gw, raw)
	fndOnly(t, r, http.StatusRequestEntityTooLarge, "İstek gövdesi çok büyük")
	if got := r.Header.Get("X-Request-Id"); got != "big-chunks-1" {
		t.Fatalf("X-Request-Id %q, want the client's big-chunks-1", got)
	}
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != polWebOrigin {
		t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, polWebOrigin)
	}
	logs.await(t, 5*time.Second, "request", map[string]string{"request_id": "big-chunks-1", "method": "POST", "status": "413"})
	// A header block over 4 KiB is not held (each connection could keep
	// one): its failed body is answered as fasthttp leaves it, in English
	// with a new request id.
	r = fndRaw(t, gw, strings.Replace(raw, "X-Language: tr\r\n", "X-Language: tr\r\nX-Padding: "+strings.Repeat("p", 4<<10)+"\r\n", 1))
	fndOnly(t, r, http.StatusRequestEntityTooLarge, "Request body too large")
	if id := r.Header.Get("X-Request-Id"); !fndUUIDv4.MatchString(id) {
		t.Fatalf("X-Request-Id %q for an unheld header block, want a generated v4 UUID", id)
	}

	if n := store.Total(t); n != 0 {
		t.Fatalf("oversized bodies reached the store %d times", n)
	}
}

// A header block over server.headerLimit (8KiB): 431 envelope, or 414
// when its request line alone is over it. The headers were not read, so
// the language is the default (English).
func TestFoundationEnvelopeHeadersTooLarge(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})

	r := gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(idp.UserToken(t)), Lang("tr"),
		Header("X-Padding", strings.Repeat("p", 9<<10)))
	fndOnly(t, r, http.StatusRequestHeaderFieldsTooLarge, "Request headers too large")
	fndNoFrameworkText(t, r)
	if !fndUUIDv4.MatchString(r.Header.Get("X-Request-Id")) {
		t.Fatalf("X-Request-Id %q is not a generated v4 UUID", r.Header.Get("X-Request-Id"))
	}

	// Many small headers add up the same way. (Sent in one write and kept
	// just over the limit: the gateway closes the connection after a 431
	// without reading the rest, and a client still writing then sees a
	// reset instead of the answer.)
	raw := "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n" + strings.Repeat("X-Many: "+strings.Repeat("m", 40)+"\r\n", 180) + "\r\n"
	if len(raw) <= 8<<10 || len(raw) > 9<<10 {
		t.Fatalf("test request is %d bytes", len(raw))
	}
	fndOnly(t, fndRaw(t, gw, raw), http.StatusRequestHeaderFieldsTooLarge, "Request headers too large")

	// A request line that does not fit on its own is a 414 (RFC 9112
	// section 3: a target longer than the server parses), not a 431.
	raw = "GET /api/v2/users/search?query=" + strings.Repeat("q", 8<<10) + " HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\n\r\n"
	r = fndRaw(t, gw, raw)
	fndOnly(t, r, http.StatusRequestURITooLong, "Request URI too long")
	fndNoFrameworkText(t, r)

	// The gateway keeps serving afterwards.
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(idp.UserToken(t))).Data(t, nil)
}

// Bytes that are not an HTTP request: 400 envelope with a request id. The
// request could not be read, so the message is English (documented).
func TestFoundationEnvelopeMalformedRequests(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)

	for _, c := range []struct{ name, raw string }{
		{"garbage request line", "GARBAGE\r\n\r\n"},
		{"request line without version", "GET\r\nHost: gw\r\n\r\n"},
		// fasthttp refuses a line without a colon once a later line has one;
		// as the block's last line it waits for more (see the 408 test).
		{"header line without colon", "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\nthis is not a header\r\nX-After: 1\r\n\r\n"},
		{"non-numeric Content-Length", "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Type: application/json\r\nContent-Length: lots\r\n\r\n{}"},
		{"negative Content-Length", "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nContent-Length: -5\r\n\r\n"},
		{"obsolete line folding", "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n X-Folded: yes\r\n\r\n"},
		{"TLS handshake on the plain port", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"},
		{"bad chunk size", "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := fndRaw(t, gw, c.raw)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			e := r.Envelope(t)
			if len(e.Errors) != 1 || e.Errors[0] != "Validation failed" {
				t.Fatalf("errors %q, want [Validation failed]", e.Errors)
			}
			fndNoFrameworkText(t, r)
			if !fndUUIDv4.MatchString(r.Header.Get("X-Request-Id")) {
				t.Fatalf("X-Request-Id %q is not a generated v4 UUID", r.Header.Get("X-Request-Id"))
			}
		})
	}
	// A malformed body after a good header block: the headers, which
	// fasthttp drops with the body, were held, so the caller's language and
	// request id still hold.
	r := fndRaw(t, gw, "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+tok+
		"\r\nX-Language: tr\r\nX-Request-Id: bad-chunk-1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
	fndOnly(t, r, http.StatusBadRequest, "Doğrulama başarısız oldu")
	if got := r.Header.Get("X-Request-Id"); got != "bad-chunk-1" {
		t.Fatalf("X-Request-Id %q, want the client's bad-chunk-1", got)
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("malformed requests reached the store %d times", n)
	}
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(tok)).Data(t, nil)
}

// Every answer carries X-Request-Id: a sane one the client sent is echoed
// and passed to the store; anything else is replaced by a generated v4
// UUID, which the store receives instead.
func TestFoundationEnvelopeRequestID(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)

	check := func(t *testing.T, sent string, kept bool) {
		t.Helper()
		store.Reset(t)
		r := gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(tok),
			JSONBody(`{"username":"request.id.check"}`), Header("X-Request-Id", sent))
		r.Data(t, nil)
		got := r.Header.Get("X-Request-Id")
		if kept && got != sent {
			t.Fatalf("X-Request-Id %q, want the client's %q echoed", got, sent)
		}
		if !kept && !fndUUIDv4.MatchString(got) {
			t.Fatalf("X-Request-Id %q for insane %q, want a generated v4 UUID", got, sent)
		}
		reqs := store.Requests(t)
		if len(reqs) != 1 {
			t.Fatalf("store saw %d requests, want 1", len(reqs))
		}
		if h := reqs[0].Headers["X-Request-Id"]; h != got {
			t.Fatalf("store got X-Request-Id %q, the client got %q", h, got)
		}
	}
	for _, sane := range []string{"a", "req-123", "01HZX3J7Q8K9M2N4P6R8T0V2W4", "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11",
		"trace:span.1_2", strings.Repeat("x", 128)} {
		t.Run("sane "+fndShort(sane), func(t *testing.T) { check(t, sane, true) })
	}
	for _, insane := range []string{strings.Repeat("x", 129), "has space", "tab\there", "semi;colon", "a/b",
		"id%0d%0aSet-Cookie:%20x=1", "réq-1", "日本", "<script>", `"quoted"`} {
		t.Run("insane "+fndShort(insane), func(t *testing.T) { check(t, insane, false) })
	}

	// A CR inside the value can only come from a raw client: the request is
	// refused or the id replaced, never echoed.
	r := fndRaw(t, gw, "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+tok+
		"\r\nX-Request-Id: abc\rSet-Cookie: x=1\r\n\r\n")
	r.Envelope(t)
	if got := r.Header.Get("X-Request-Id"); strings.Contains(got, "Set-Cookie") || got == "abc" {
		t.Fatalf("X-Request-Id %q echoes a CR-laden value", got)
	}
	if len(r.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("a header was injected: %v", r.Header)
	}

	// Errors carry one too, and two requests never share a generated id.
	seen := map[string]bool{}
	for _, path := range []string{"/api/v1/users/me", "/nope", "/api/v1/users/me", "/nope"} {
		r := gw.Do(t, http.MethodGet, path)
		r.Envelope(t)
		id := r.Header.Get("X-Request-Id")
		if !fndUUIDv4.MatchString(id) || seen[id] {
			t.Fatalf("X-Request-Id %q on %s: not a fresh v4 UUID", id, path)
		}
		seen[id] = true
	}
	// A sane id is echoed on errors as well.
	r = gw.Do(t, http.MethodGet, "/nope", Header("X-Request-Id", "err-42"))
	fndOnly(t, r, http.StatusNotFound, "Resource not found")
	if got := r.Header.Get("X-Request-Id"); got != "err-42" {
		t.Fatalf("X-Request-Id %q on a 404, want err-42", got)
	}
}

// server.maxConnections: a connection over the cap gets a 503 envelope
// with Retry-After and is closed (fasthttp's own cap answered in plain
// text, naming its setting), and a connection that closes frees its place.
func TestFoundationEnvelopeConnectionLimit(t *testing.T) {
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp,
		Env: map[string]string{"GATEWAY_SERVER__MAXCONNECTIONS": "4"}})
	const probe = "GET /nope HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\n\r\n"

	// The harness's own requests (readiness, metrics) go to the ops
	// listener, which the cap does not cover: on the public listener these
	// are the only connections, so exactly 4 are served and the fifth is
	// refused.
	if gw.OpsURL == "" {
		t.Fatal("the gateway has no ops listener: the harness's connections would share the cap")
	}
	var held []*KeepAlive
	for len(held) <= 4 {
		ka := gw.KeepAlive(t)
		r := ka.Send(t, probe)
		if r.Status == http.StatusServiceUnavailable {
			r.Failure(t, http.StatusServiceUnavailable, "Service temporarily unavailable, please try again later")
			if got := r.Header.Get("Retry-After"); got != "1" {
				t.Errorf("Retry-After %q, want 1", got)
			}
			if n, err := ka.Closed(); n != 0 || err != io.EOF {
				t.Errorf("the refused connection: read %d bytes, %v; want it closed", n, err)
			}
			break
		}
		r.Failure(t, http.StatusNotFound, "Kaynak bulunamadı")
		held = append(held, ka)
	}
	if len(held) != 4 {
		t.Fatalf("%d connections served before the refusal with maxConnections 4, want 4", len(held))
	}
	if n := polMetric(t, gw, "gateway_connections_refused_total"); n != 1 {
		t.Errorf("gateway_connections_refused_total %g, want 1", n)
	}
	for _, ka := range held { // still served
		ka.Send(t, probe).Failure(t, http.StatusNotFound, "Kaynak bulunamadı")
	}

	held[0].conn.Close()
	for deadline := time.Now().Add(5 * time.Second); ; {
		r := gw.KeepAlive(t).Send(t, probe)
		if r.Status == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection's place was not freed: %d %s", r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A keep-alive connection is served request after request while it is
// busier than server.idleTimeout, and closed once it idles longer (the
// gateway gives its sockets their timeouts lazily, at most a tenth late).
func TestFoundationEnvelopeIdleConnectionCloses(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	const idle = 400 * time.Millisecond
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{"GATEWAY_SERVER__IDLETIMEOUT": idle.String()}})

	ka := gw.KeepAlive(t)
	ask := func(i int) {
		t.Helper()
		if r := ka.Send(t, "GET /nope HTTP/1.1\r\nHost: gw\r\n\r\n"); r.Status != http.StatusNotFound {
			t.Fatalf("answer %d: status %d, want 404", i, r.Status)
		}
	}
	// Over twice the idle timeout in all, never idle for half of it.
	start := time.Now()
	for i := 0; time.Since(start) < 2*idle+idle/2; i++ {
		ask(i)
		time.Sleep(idle / 5)
	}
	ask(-1)
	lastAnswer := time.Now()
	// Then silence: the gateway closes the connection.
	n, err := ka.Closed()
	closedAfter := time.Since(lastAnswer)
	if n != 0 || err != io.EOF {
		t.Fatalf("read %d bytes, %v after the idle timeout; want the connection closed (EOF)", n, err)
	}
	if closedAfter < idle-idle/10 {
		t.Fatalf("idle connection closed after %v, before the idle timeout %v", closedAfter, idle)
	}
}

// A client that starts a request and never finishes it: once
// server.readTimeout passes, a 408 envelope, and the connection closes.
func TestFoundationEnvelopeIncompleteRequest(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{"GATEWAY_SERVER__READTIMEOUT": "300ms"}})
	logs := polFollowLogs(gw)

	for _, c := range []struct{ raw, message, method, id string }{
		// The header block never ends: nothing of it is known.
		{"GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\n", "Request timed out", "other", ""},
		// The headers were read and the body never comes: fasthttp drops
		// the headers, the gateway held them.
		{"POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\nX-Request-Id: slow-body-1\r\nContent-Length: 100\r\n\r\n{",
			"İstek zaman aşımına uğradı", "POST", "slow-body-1"},
		{"POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
			"İstek zaman aşımına uğradı", "POST", ""},
	} {
		r := fndRaw(t, gw, c.raw)
		if r.Status != http.StatusRequestTimeout {
			t.Fatalf("status %d for %q, want 408: %s", r.Status, c.raw, r.Body)
		}
		e := r.Envelope(t)
		if len(e.Errors) != 1 || e.Errors[0] != c.message {
			t.Fatalf("errors %q for %q, want [%s]", e.Errors, c.raw, c.message)
		}
		fndNoFrameworkText(t, r)
		id := r.Header.Get("X-Request-Id")
		if c.id != "" && id != c.id {
			t.Fatalf("X-Request-Id %q for %q, want the client's %q", id, c.raw, c.id)
		}
		if c.id == "" && !fndUUIDv4.MatchString(id) {
			t.Fatalf("X-Request-Id %q for %q is not a generated v4 UUID", id, c.raw)
		}
		// A method never read is "other", never fasthttp's default GET.
		logs.await(t, 5*time.Second, "request", map[string]string{"request_id": id, "method": c.method, "status": "408"})
	}

	// Headers are held only for their own request: after a request with a
	// body was answered, the next one on the connection that never
	// finishes its header block learns nothing from it (English, a new
	// request id).
	tok := idp.UserToken(t)
	conn := gw.KeepAlive(t)
	first := conn.Send(t, "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+tok+
		"\r\nX-Language: tr\r\nX-Request-Id: held-1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	if first.Status != http.StatusBadRequest || first.Header.Get("X-Request-Id") != "held-1" {
		t.Fatalf("first request: %d %q", first.Status, first.Header.Get("X-Request-Id"))
	}
	next := conn.Send(t, "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n")
	fndOnly(t, next, http.StatusRequestTimeout, "Request timed out")
	if id := next.Header.Get("X-Request-Id"); !fndUUIDv4.MatchString(id) {
		t.Fatalf("X-Request-Id %q after a held request, want a generated v4 UUID", id)
	}
}
