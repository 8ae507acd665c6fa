package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/auth"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream"
	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// edgeLog collects the server's log lines.
type edgeLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *edgeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the JSON log lines whose msg is msg.
func (l *edgeLog) lines(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// edgeServer builds a Server from the repository's config.yaml with real
// dependencies on loopback: a development identity provider, the reference
// user store, the real verifier and user-store client.
func edgeServer(t *testing.T) (*Server, *edgeLog) {
	t.Helper()
	st, err := refstore.Open(context.Background(), refstore.Options{Users: 50})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, logs, _ := edgeServerWith(t, st.Handler(refstore.HandlerOptions{}))
	return s, logs
}

// edgeServerWith is edgeServer with storeHandler as the user store, and the
// identity provider, for tokens.
func edgeServerWith(t *testing.T, storeHandler http.Handler) (*Server, *edgeLog, *devidp.Provider) {
	t.Helper()
	idp, err := devidp.New(devidp.Options{Issuer: "http://idp.test", Audience: "edge-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	idpSrv := httptest.NewServer(idp.Handler())
	t.Cleanup(idpSrv.Close)
	stSrv := httptest.NewServer(storeHandler)
	t.Cleanup(stSrv.Close)

	env := map[string]string{
		"GATEWAY_AUTH__JWKSURLS":                idpSrv.URL + "/.well-known/jwks.json",
		"GATEWAY_AUTH__ISSUER":                  "http://idp.test",
		"GATEWAY_UPSTREAMS__USERSTORE__BASEURL": stSrv.URL,
	}
	data, err := os.ReadFile(filepath.Join("..", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	set, problems := policies.Compile(cfg.Policies, cfg.Auth)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	logs := &edgeLog{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	v, err := auth.New(cfg.Auth, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	store, err := upstream.New(cfg.Upstreams.UserStore, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	s, err := New(Deps{Config: cfg, Policies: set, Logger: logger, Auth: v, Store: store,
		Limiter: policies.NewLimiter(0)})
	if err != nil {
		t.Fatal(err)
	}
	return s, logs, idp
}

type edgeAnswer struct {
	status int
	header http.Header
	body   []byte
}

func edgeDo(t *testing.T, s *Server, method, path string, headers ...string) edgeAnswer {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := s.app.Test(req, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return edgeAnswer{status: resp.StatusCode, header: resp.Header, body: body}
}

// edgeFailure checks a failure envelope with exactly the given messages.
func edgeFailure(t *testing.T, a edgeAnswer, status int, msgs ...string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	if a.header.Get("X-Request-Id") == "" {
		t.Fatalf("no X-Request-Id on %d", a.status)
	}
	e := envDecode(t, a.body)
	if e.IsSuccess || e.StatusCode != status || string(e.Data) != "null" || strings.Join(e.Errors, "|") != strings.Join(msgs, "|") {
		t.Fatalf("envelope %s, want status %d and errors %q", a.body, status, msgs)
	}
}

const edgeSecret = "token=eyJhbGciOi secret at /srv/edge/handler.go:42"

func TestEdgePanicIsA500EnvelopeLoggedWithTheRequestID(t *testing.T) {
	s, logs := edgeServer(t)
	s.app.Get("/test/panic", func(c *fiber.Ctx) error { panic(edgeSecret) })
	s.app.Get("/test/panic-error", func(c *fiber.Ctx) error { panic(errors.New(edgeSecret)) })
	s.app.Get("/test/panic-after-write", func(c *fiber.Ctx) error {
		// A handler that got half-way through a cacheable answer.
		c.Set(fiber.HeaderCacheControl, "public, max-age=600")
		c.Set(fiber.HeaderETag, `"abc"`)
		c.Set(headerCache, "HIT")
		c.Status(fiber.StatusOK)
		_, _ = c.WriteString(`{"isSuccess":true,"data":{"half":`)
		panic(edgeSecret)
	})
	s.app.Get("/test/panic-nil", func(c *fiber.Ctx) error {
		var m map[string]int
		m["boom"]++ // a runtime error, as real bugs are
		return nil
	})

	for _, path := range []string{"/test/panic", "/test/panic-error", "/test/panic-after-write", "/test/panic-nil"} {
		t.Run(path, func(t *testing.T) {
			id := "panic-" + strings.TrimPrefix(path, "/test/")
			a := edgeDo(t, s, http.MethodGet, path, "X-Request-Id", id)
			edgeFailure(t, a, http.StatusInternalServerError, "Internal server error")
			if got := a.header.Get("X-Request-Id"); got != id {
				t.Fatalf("X-Request-Id %q, want %q", got, id)
			}
			for _, leak := range []string{"secret", "eyJ", "handler.go", "goroutine", "panic", "runtime", "half", "nil map"} {
				if bytes.Contains(a.body, []byte(leak)) {
					t.Fatalf("the 500 leaks %q: %s", leak, a.body)
				}
			}
			for _, h := range []string{fiber.HeaderETag, headerCache} {
				if v := a.header.Get(h); v != "" {
					t.Fatalf("the 500 keeps the handler's %s: %q", h, v)
				}
			}
			if cc := a.header.Values(fiber.HeaderCacheControl); len(cc) != 1 || cc[0] != "no-store" {
				t.Fatalf("the 500 is not Cache-Control: no-store but %q", cc)
			}

			var found map[string]any
			for _, l := range logs.lines("panic recovered") {
				if l["request_id"] == id {
					found = l
				}
			}
			if found == nil {
				t.Fatalf("no \"panic recovered\" log line with request_id %s", id)
			}
			if stack, _ := found["stack"].(string); !strings.Contains(stack, "goroutine") || !strings.Contains(stack, "edge_test.go") {
				t.Fatalf("the log line has no stack of the panicking handler: %v", found["stack"])
			}
			if p, _ := found["panic"].(string); p == "" {
				t.Fatal("the log line does not say what panicked")
			}

			tr := edgeDo(t, s, http.MethodGet, path, "X-Language", "tr")
			edgeFailure(t, tr, http.StatusInternalServerError, "Sunucuda beklenmeyen bir hata oluştu")
		})
	}

	// The server goes on serving.
	edgeFailure(t, edgeDo(t, s, http.MethodGet, "/nope"), http.StatusNotFound, "Resource not found")
	if n := s.InFlight(); n != 0 {
		t.Fatalf("%d requests still counted in flight after the panics", n)
	}
}

func TestEdgeErrorsNeverLeakTheirText(t *testing.T) {
	s, logs := edgeServer(t)
	s.app.Get("/test/plain-error", func(c *fiber.Ctx) error {
		return errors.New("dial tcp 10.0.3.4:8080: connect: connection refused")
	})
	s.app.Get("/test/fiber-418", func(c *fiber.Ctx) error { return fiber.NewError(418, "teapot at 10.0.3.4") })
	s.app.Get("/test/fiber-302", func(c *fiber.Ctx) error { return fiber.NewError(302, "redirect to 10.0.3.4") })
	s.app.Get("/test/fiber-503", func(c *fiber.Ctx) error { return fiber.ErrServiceUnavailable })
	s.app.Get("/test/deadline", func(c *fiber.Ctx) error { return context.DeadlineExceeded })

	for _, c := range []struct {
		path   string
		status int
		en, tr string
	}{
		{"/test/plain-error", 500, "Internal server error", "Sunucuda beklenmeyen bir hata oluştu"},
		{"/test/fiber-418", 418, "Malformed request", "İstek hatalı biçimlendirilmiş"},
		{"/test/fiber-302", 500, "Internal server error", "Sunucuda beklenmeyen bir hata oluştu"},
		{"/test/fiber-503", 503, "Service temporarily unavailable, please try again later", "Hizmet geçici olarak kullanılamıyor, lütfen daha sonra tekrar deneyin"},
		{"/test/deadline", 504, "The service did not respond in time", "Hizmet zamanında yanıt vermedi"},
	} {
		a := edgeDo(t, s, http.MethodGet, c.path, "X-Request-Id", "err-1")
		edgeFailure(t, a, c.status, c.en)
		if bytes.Contains(a.body, []byte("10.0.3.4")) || bytes.Contains(a.body, []byte("context deadline")) {
			t.Fatalf("%s leaks its error text: %s", c.path, a.body)
		}
		edgeFailure(t, edgeDo(t, s, http.MethodGet, c.path, "Accept-Language", "tr-TR"), c.status, c.tr)
	}
	logged := false
	for _, l := range logs.lines("unexpected error") {
		if l["request_id"] == "err-1" && strings.Contains(l["error"].(string), "connection refused") {
			logged = true
		}
	}
	if !logged {
		t.Fatal("the unexpected error was not logged with its request id")
	}
}

func TestEdgeFrameworkAnswersAreEnvelopes(t *testing.T) {
	s, _ := edgeServer(t)
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
		en, tr       string
	}{
		{http.MethodGet, "/nope", 404, "", "Resource not found", "Kaynak bulunamadı"},
		{http.MethodPut, "/api/v1/users/me", 405, "GET, HEAD, OPTIONS", "Method not allowed", "Bu yönteme izin verilmiyor"},
		{"BREW", "/api/v1/users/check-username", 405, "POST, OPTIONS", "Method not allowed", "Bu yönteme izin verilmiyor"},
		{"BREW", "/nope", 404, "", "Resource not found", "Kaynak bulunamadı"}, // an unknown path, whatever the method
		{http.MethodGet, "/api/v1/users/me", 401, "", "Authentication required", "Kimlik doğrulaması gerekli"},
	} {
		a := edgeDo(t, s, c.method, c.path)
		edgeFailure(t, a, c.status, c.en)
		if bytes.Contains(a.body, []byte("Cannot")) || bytes.Contains(a.body, []byte("Invalid http method")) {
			t.Fatalf("%s %s: framework text: %s", c.method, c.path, a.body)
		}
		if got := a.header.Get("Allow"); got != c.allow {
			t.Fatalf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
		edgeFailure(t, edgeDo(t, s, c.method, c.path, "X-Language", "tr"), c.status, c.tr)
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                      true,
		"Application/JSON":                      true,
		"application/json; charset=utf-8":       true,
		"application/json;charset=UTF-8":        true,
		"  application/json  ; charset=utf-8":   true,
		`application/json; charset="utf-8"`:     true,
		"application/json; Charset = utf-8":     true,
		"application/json; foo=bar":             true,
		"application/json;":                     true,
		"application/json; charset=utf-16":      false, // read as UTF-8, it would be another text
		"application/json; charset=latin1":      false,
		"application/json; foo=1; charset=x":    false,
		"application/json; charset=":            false,
		"":                                      false,
		"text/plain":                            false,
		"application/jsonp":                     false,
		"application/json-patch+json":           false,
		"application/x-www-form-urlencoded":     false,
		"multipart/form-data; boundary=x":       false,
		"application/ json":                     false,
		"json":                                  false,
		"application/j\u017fon":                 false, // ſ folds to s only in Unicode
		"APPLICATION/J\u017fON":                 false,
		"application/json; char\u017fet=latin1": true, // not the charset parameter: ſ is no s in ASCII case
		"application/json; CHARSET=latin1":      false,
	} {
		if got := isJSON([]byte(ct)); got != want {
			t.Errorf("isJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestMatchesETag(t *testing.T) {
	const etag = `"abc123"`
	for header, want := range map[string]bool{
		``:                         false,
		`"abc123"`:                 true,
		`W/"abc123"`:               true,
		`*`:                        true,
		`"other"`:                  false,
		`"other", "abc123"`:        true,
		`"other",W/"abc123"`:       true,
		` "abc123" `:               true,
		`abc123`:                   false,
		`"abc1234"`:                false,
		`"ABC123"`:                 false,
		`"other", "another"`:       false,
		`,,,`:                      false,
		`W/`:                       false,
		`"abc123`:                  false,
		strings.Repeat(`"x",`, 50): false,
	} {
		if got := matchesETag([]byte(header), etag); got != want {
			t.Errorf("matchesETag(%q) = %v, want %v", header, got, want)
		}
	}
}

func TestSaneRequestID(t *testing.T) {
	for id, want := range map[string]bool{
		"a":                                    true,
		"req-123":                              true,
		"8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11": true,
		"trace:span.1_2":                       true,
		strings.Repeat("x", 128):               true,
		"":                                     false,
		strings.Repeat("x", 129):               false,
		"has space":                            false,
		"tab\there":                            false,
		"cr\rlf\n":                             false,
		"nul\x00":                              false,
		"réq":                                  false,
		"\xff":                                 false,
		"a/b":                                  false,
		"a;b":                                  false,
		`"q"`:                                  false,
		"<script>":                             false,
		"%0d%0a":                               false,
	} {
		if got := saneRequestID([]byte(id)); got != want {
			t.Errorf("saneRequestID(%q) = %v, want %v", id, got, want)
		}
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewRequestIDIsAUniqueUUIDv4(t *testing.T) {
	const n = 100000
	seen := make(map[string]struct{}, n)
	for i := 0; i < n; i++ {
		id := newRequestID()
		if !uuidV4.MatchString(id) {
			t.Fatalf("newRequestID() = %q, not a version-4 UUID", id)
		}
		if !saneRequestID([]byte(id)) || !contract.IsUUID(id) {
			t.Fatalf("newRequestID() = %q is refused by the gateway's own checks", id)
		}
		if _, dup := seen[id]; dup {
			t.Fatalf("newRequestID() repeated %q after %d ids", id, i)
		}
		seen[id] = struct{}{}
	}
	// Every hex digit position but the fixed ones varies.
	var first = newRequestID()
	varied := make([]bool, len(first))
	for i := 0; i < 1000; i++ {
		id := newRequestID()
		for j := range id {
			if id[j] != first[j] {
				varied[j] = true
			}
		}
	}
	for j, v := range varied {
		fixed := j == 8 || j == 13 || j == 14 || j == 18 || j == 23
		if v == fixed {
			t.Fatalf("position %d of the id: varied=%v, want %v", j, v, !fixed)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:             "1",
		0:                        "1",
		time.Nanosecond:          "1",
		500 * time.Millisecond:   "1",
		time.Second:              "1",
		time.Second + 1:          "2",
		1500 * time.Millisecond:  "2",
		2 * time.Second:          "2",
		59*time.Second + 1:       "60",
		time.Hour:                "3600",
		36*time.Hour + time.Hour: "133200",
	} {
		if got := retryAfterSeconds(d); got != want {
			t.Errorf("retryAfterSeconds(%v) = %s, want %s", d, got, want)
		}
	}
}

// A request starts when fasthttp read it: the edge uses that clock reading
// (ctx.Time) for the token's and the cache's checks, the deadline and the
// latency, instead of reading the clock again.
func TestEdgeStartsTheRequestWhenFasthttpReadIt(t *testing.T) {
	s, _ := edgeServer(t)
	var start, read time.Time
	s.app.Get("/test/arrival", func(c *fiber.Ctx) error {
		s.edge(c, func(c *fiber.Ctx, rq *request) error {
			start, read = rq.start, c.Context().Time()
			return nil
		})
		return nil
	})
	edgeDo(t, s, http.MethodGet, "/test/arrival")
	if read.IsZero() || !start.Equal(read) {
		t.Fatalf("the edge started the request at %v; fasthttp read it at %v", start, read)
	}
}

// A request whose header block was not read (a request line or header
// block over the read buffer) is refused for that, never charged to an
// address's rate limit: the limit's key and platform would come from
// bytes that did not parse. With the address's budget spent, such a
// request is still a 414 or 431, not a 429.
func TestUnreadRequestsAreNotRateLimited(t *testing.T) {
	r := newMixRig(t, map[string]string{
		"GATEWAY_POLICIES__ALL__RATELIMITS__PERIP__RATE":  "0.01",
		"GATEWAY_POLICIES__ALL__RATELIMITS__PERIP__BURST": "1",
	})
	const nosuch = "GET /nosuch HTTP/1.1\r\nHost: gw\r\n\r\n"
	if a := firstAnswer(t, r, nosuch); a.status != http.StatusNotFound {
		t.Fatalf("first request: status %d, want 404", a.status)
	}
	if a := firstAnswer(t, r, nosuch); a.status != http.StatusTooManyRequests {
		t.Fatalf("second request: status %d, want 429 (the budget of 1 spent)", a.status)
	}
	const limit = 8 << 10 // config.yaml's server.headerLimit
	edgeFailure(t, firstAnswer(t, r, "GET /nosuch HTTP/1.1\r\nHost: gw\r\nX-Filler: "+strings.Repeat("f", limit)+"\r\n\r\n"),
		http.StatusRequestHeaderFieldsTooLarge, "Request headers too large")
	edgeFailure(t, firstAnswer(t, r, "GET /nosuch?q="+strings.Repeat("a", limit)+" HTTP/1.1\r\nHost: gw\r\n\r\n"),
		http.StatusRequestURITooLong, "Request URI too long")
}

// A body announced over the limit is refused with the header block read
// whole, also one too large to be held for a failing body (maxHeld): the
// 413 is in the caller's language, with its request id.
func TestBodyTooLargeKeepsALargeHeaderBlocksLanguage(t *testing.T) {
	r := newMixRig(t)
	a := firstAnswer(t, r, "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\nX-Request-Id: large-1\r\n"+
		"X-Filler: "+strings.Repeat("f", maxHeld)+"\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
	edgeFailure(t, a, http.StatusRequestEntityTooLarge, "İstek gövdesi çok büyük")
	if id := a.header.Get("X-Request-Id"); id != "large-1" {
		t.Fatalf("X-Request-Id %q, want the client's large-1", id)
	}
}

// Each kind of user-store failure has its status and message; a call the
// gateway refused without sending it (KindUnavailable) is a 503 with
// Retry-After (at least a second), and its operation is what the access
// line's breaker_open names. No other failure names one.
func TestUpstreamErrorStatuses(t *testing.T) {
	s, _ := edgeServer(t)
	app := fiber.New()
	for _, c := range []struct {
		err         upstream.Error
		status      int
		msg         string
		retryAfter  string
		breakerOpen string
	}{
		{upstream.Error{Op: upstream.OpSearch, Kind: upstream.KindBadRequest}, 400, "Validation failed", "", ""},
		{upstream.Error{Op: upstream.OpUserByID, Kind: upstream.KindNotFound}, 404, "Resource not found", "", ""},
		{upstream.Error{Op: upstream.OpSearch, Kind: upstream.KindConflict}, 409, "Resource already exists or cannot be changed in its current state", "", ""},
		{upstream.Error{Op: upstream.OpSearch, Kind: upstream.KindBadGateway, Outcome: "error_5xx"}, 502, "The service returned an invalid response", "", ""},
		{upstream.Error{Op: upstream.OpSearch, Kind: upstream.KindUnavailable, Outcome: "breaker_open", RetryAfter: 2500 * time.Millisecond},
			503, "Service temporarily unavailable, please try again later", "3", "search"},
		{upstream.Error{Op: upstream.OpUserByID, Kind: upstream.KindUnavailable, Outcome: "bulkhead_full"},
			503, "Service temporarily unavailable, please try again later", "1", "userById"},
		{upstream.Error{Op: upstream.OpSearch, Kind: upstream.KindTimeout, Outcome: "timeout"}, 504, "The service did not respond in time", "", ""},
		{upstream.Error{Op: upstream.OpSearch, Kind: upstream.KindCanceled, Outcome: "canceled"}, 504, "The service did not respond in time", "", ""},
	} {
		fctx := &fasthttp.RequestCtx{}
		fc := app.AcquireCtx(fctx)
		rq := acquireRequest()
		s.writeError(fc, rq, &c.err)
		e := envDecode(t, fctx.Response.Body())
		if status := fctx.Response.StatusCode(); status != c.status || e.StatusCode != c.status || strings.Join(e.Errors, "|") != c.msg {
			t.Errorf("%v: status %d, envelope %s; want %d and errors [%s]", c.err.Kind, status, fctx.Response.Body(), c.status, c.msg)
		}
		if got := string(fctx.Response.Header.Peek("Retry-After")); got != c.retryAfter {
			t.Errorf("%v: Retry-After %q, want %q", c.err.Kind, got, c.retryAfter)
		}
		if rq.breakerOpen != c.breakerOpen {
			t.Errorf("%v: breaker_open %q, want %q", c.err.Kind, rq.breakerOpen, c.breakerOpen)
		}
		releaseRequest(rq)
		app.ReleaseCtx(fc)
	}
}

// An answer made before the edge (an unknown method, a Host refused, a
// body over the limit) keeps a sane X-Request-Id the client sent, as the
// edge does, and replaces any other with a new one.
func TestUnroutedAnswersKeepOnlySaneRequestIDs(t *testing.T) {
	r := newMixRig(t)
	for _, c := range []struct {
		name, raw string
		status    int
	}{
		{"unknown method", "BREW /nosuch HTTP/1.1\r\nHost: gw\r\nX-Request-Id: %s\r\n\r\n", http.StatusNotFound},
		{"Host refused", "GET /nosuch HTTP/1.1\r\nHost: a b\r\nX-Request-Id: %s\r\n\r\n", http.StatusBadRequest},
		{"body over the limit", "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nX-Request-Id: %s\r\nContent-Length: 1000000\r\n\r\n",
			http.StatusRequestEntityTooLarge},
	} {
		for _, id := range []string{"client-id-42", "has space", strings.Repeat("x", 129), "semi;colon"} {
			a := firstAnswer(t, r, fmt.Sprintf(c.raw, id))
			if a.status != c.status {
				t.Fatalf("%s, X-Request-Id %q: status %d, want %d", c.name, id, a.status, c.status)
			}
			got := a.header.Get("X-Request-Id")
			if sane := id == "client-id-42"; sane && got != id || !sane && !contract.IsUUID(got) {
				t.Errorf("%s: X-Request-Id %q sent, %q answered; want it kept only when sane, else a new UUID", c.name, id, got)
			}
		}
	}
}
