package e2e

// The resilience audit: promises of docs/resilience.md and docs/caching.md
// that the fault suite did not check yet, each against the gateway binary
// with faults injected between it and a real user store (prefix ra).

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/faultproxy"
	"github.com/bffgate/edge/upstream/refstore"
)

// raRig is a store of the test's own behind a fault proxy and the gateway
// binary in front of it, with the fault suite's small settings.
type raRig struct {
	store *Store
	proxy *faultproxy.Proxy
	gw    *Gateway
	token string
}

func raStart(t *testing.T, env map[string]string) *raRig {
	t.Helper()
	store := StartStore(t, nil)
	p, err := faultproxy.New(store.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{StoreURL: p.URL(), IdP: idp, Env: fltEnv(env)})
	return &raRig{store: store, proxy: p, gw: gw, token: idp.UserToken(t)}
}

// raNoBreakers keeps every breaker and the retry budget out of the way.
func raNoBreakers(env map[string]string) map[string]string {
	if env == nil {
		env = map[string]string{}
	}
	for _, op := range []string{"USERNAMECHECK", "SEARCH", "USERBYID", "LIVESTREAMS"} {
		env[fltOpKey(op, "BREAKER__CONSECUTIVEFAILURES")] = "1000000"
		env[fltOpKey(op, "BREAKER__FAILURERATIO")] = "0"
	}
	env["GATEWAY_UPSTREAMS__USERSTORE__RETRYBUDGET__MINPERSECOND"] = "100000"
	return env
}

func (r *raRig) search(t testing.TB, opts ...ReqOpt) *Response {
	t.Helper()
	return r.gw.Do(t, http.MethodGet, fltSearchPath, append([]ReqOpt{Bearer(r.token)}, opts...)...)
}

// trySearch is search for goroutines other than the test's: a failure to
// send or read comes back as an error.
func (r *raRig) trySearch(opts ...ReqOpt) (*Response, error) {
	return sendWith(r.gw.client, http.MethodGet, r.gw.URL+fltSearchPath, append([]ReqOpt{Bearer(r.token)}, opts...)...)
}

func (r *raRig) me(t testing.TB, opts ...ReqOpt) *Response {
	t.Helper()
	return r.gw.Do(t, http.MethodGet, "/api/v1/users/me", append([]ReqOpt{Bearer(r.token)}, opts...)...)
}

func (r *raRig) check(t testing.TB, opts ...ReqOpt) *Response {
	t.Helper()
	return r.gw.Do(t, http.MethodPost, "/api/v1/users/check-username",
		append([]ReqOpt{Bearer(r.token), JSONBody(`{"username":"johndoe123"}`)}, opts...)...)
}

// seen counts the requests the proxy saw whose path starts with prefix.
func (r *raRig) seen(prefix string) int {
	n := 0
	for _, s := range r.proxy.Seen() {
		if strings.HasPrefix(s.RequestURI, prefix) {
			n++
		}
	}
	return n
}

// raNoRetryAfter: only 503s carry Retry-After.
func raNoRetryAfter(t testing.TB, resp *Response) {
	t.Helper()
	if v := resp.Header.Get("Retry-After"); v != "" {
		t.Fatalf("%d with Retry-After %q", resp.Status, v)
	}
}

// The attempts the store side really sees, per fault: the username check
// (a POST) exactly once whatever happens to its connection, also on a
// kept-alive connection where fasthttp would re-send by itself; reads once
// plus one retry on a hang-up, a reset or a 503, and once on a timeout, a
// 500 or a bad body. The answer is the documented envelope in the
// caller's language, with nothing of the store in it.
func TestResilAuditAttemptsSeenByTheStore(t *testing.T) {
	// The faults other than the timeout must not meet a deadline: under
	// the race detector on a loaded machine the rig's 200ms was spent
	// before a reset or a 503 arrived, and a healthy call ran out of it.
	const opTimeout = time.Second
	env := map[string]string{}
	for _, op := range []string{"USERNAMECHECK", "SEARCH", "USERBYID", "LIVESTREAMS"} {
		env[fltOpKey(op, "TIMEOUT")] = opTimeout.String()
	}
	r := raStart(t, raNoBreakers(env))
	r.proxy.Record(true)
	me := contract.PathUserPrefix + refstore.DemoUserID
	cases := []struct {
		name   string
		path   string
		mode   faultproxy.Mode
		call   func(t testing.TB, opts ...ReqOpt) *Response
		status int
		want   int
	}{
		{"check hang-up", contract.PathUsernameCheck, faultproxy.HangUp(), r.check, 502, 1},
		{"check reset", contract.PathUsernameCheck, faultproxy.Reset(), r.check, 502, 1},
		{"check reset mid-body", contract.PathUsernameCheck, faultproxy.ResetMidBody(5), r.check, 502, 1},
		{"check 503", contract.PathUsernameCheck, faultproxy.Status(503), r.check, 502, 1},
		{"check timeout", contract.PathUsernameCheck, faultproxy.Delay(3 * opTimeout), r.check, 504, 1},
		{"search hang-up", contract.PathSearch, faultproxy.HangUp(), r.search, 502, 2},
		{"search reset", contract.PathSearch, faultproxy.Reset(), r.search, 502, 2},
		{"search reset mid-body", contract.PathSearch, faultproxy.ResetMidBody(5), r.search, 502, 2},
		{"search 503", contract.PathSearch, faultproxy.Status(503), r.search, 502, 2},
		{"search 500", contract.PathSearch, faultproxy.Status(500), r.search, 502, 1},
		{"search timeout", contract.PathSearch, faultproxy.Delay(3 * opTimeout), r.search, 504, 1},
		{"search HTML", contract.PathSearch, faultproxy.HTML(), r.search, 502, 1},
		{"search truncated", contract.PathSearch, faultproxy.TruncatedJSON(), r.search, 502, 1},
		{"me hang-up", me, faultproxy.HangUp(), r.me, 502, 2},
		{"me timeout", me, faultproxy.Delay(3 * opTimeout), r.me, 504, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, lang := range []string{"en", "tr"} {
				// A healthy call first, so that the faulty one goes out on
				// a kept-alive connection (where fasthttp re-sends).
				if err := r.proxy.Heal(); err != nil {
					t.Fatal(err)
				}
				c.call(t).Data(t, nil)
				if err := r.proxy.SetPath(c.path, c.mode); err != nil {
					t.Fatal(err)
				}
				before := r.seen(c.path)
				resp := c.call(t, Lang(lang))
				fltFailure(t, resp, c.status, lang)
				raNoRetryAfter(t, resp)
				// The proxy may still be holding a delayed attempt.
				time.Sleep(50 * time.Millisecond)
				if got := r.seen(c.path) - before; got != c.want {
					t.Fatalf("%s: %d attempts reached the proxy, want %d", lang, got, c.want)
				}
			}
		})
	}
	r.proxy.Heal()
}

// A client that hangs up does not cancel the shared load of its cache
// key: the load finishes and is stored, a caller who joined it meanwhile
// gets its answer, and the next caller is a HIT without another store
// call. Nothing counts against the breaker.
func TestResilAuditHangUpStillFillsTheCache(t *testing.T) {
	// Each client hangs up once the proxy holds its call, and the next
	// caller comes once the store's answer is in the cache (alone) or
	// while the proxy still holds the load (joined, with a delay a busy
	// machine cannot miss): sleeps did neither on a busy machine.
	const delay, joinDelay = 400 * time.Millisecond, 1500 * time.Millisecond
	r := raStart(t, map[string]string{
		"GATEWAY_CACHE__ENABLED":      "true",
		fltOpKey("SEARCH", "TIMEOUT"): (2 * joinDelay).String(),
	})
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Delay(delay)); err != nil {
		t.Fatal(err)
	}
	impatient := &http.Client{Transport: &http.Transport{}}
	defer impatient.CloseIdleConnections()
	hangUp := func(path string) {
		held := r.proxy.Stats().Requests + 1
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			defer cancel()
			for r.proxy.Stats().Requests < held && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		}()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.gw.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+r.token)
		resp, err := impatient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			t.Errorf("the impatient client got %d", resp.StatusCode)
		}
	}
	searches := func() int64 { return r.store.Counts(t)[fltStoreSearch] }
	entries := func() float64 { return fltMetric(t, r.gw, "gateway_cache_entries") }
	base, cached := searches(), entries()

	// Alone: the load completes after the caller left; the next is a HIT.
	hangUp("/api/v2/users/search?query=sukru")
	eventually(t, 10*time.Second, func() error {
		if n := entries(); n <= cached {
			return fmt.Errorf("%v cache entries, %v before the load", n, cached)
		}
		return nil
	})
	resp := r.gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru", Bearer(r.token))
	resp.Data(t, nil)
	if x := resp.Header.Get("X-Cache"); x != "HIT" {
		t.Fatalf("after the caller who started the load hung up: X-Cache %q, want HIT", x)
	}
	if d := searches() - base; d != 1 {
		t.Fatalf("%d searches reached the store, want 1", d)
	}

	// Joined: a second caller shares the load the first one abandoned.
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Delay(joinDelay)); err != nil {
		t.Fatal(err)
	}
	base = searches()
	hangUp("/api/v2/users/search?query=isik")
	resp, took := fltTimed(func() *Response {
		return r.gw.Do(t, http.MethodGet, "/api/v2/users/search?query=isik", Bearer(r.token))
	})
	resp.Data(t, nil)
	if x := resp.Header.Get("X-Cache"); x != "MISS" {
		t.Fatalf("the caller who joined: X-Cache %q after %s, want MISS", x, took)
	}
	if d := searches() - base; d != 1 {
		t.Fatalf("%d searches reached the store, want 1 (one shared load)", d)
	}
	if b := fltBreaker(t, r.gw, fltOpSearch); b.Failures != 0 || b.State != "closed" {
		t.Fatalf("search breaker: %+v", b)
	}
	if n := fltCalls(t, r.gw, fltOpSearch, "canceled", "timeout"); n != 0 {
		t.Fatalf("%v search calls ended canceled or timed out", n)
	}
}

// With halfOpenRequests 2, one good trial is not enough: the breaker
// stays half-open until the second, and admits no third attempt while
// both trials run; a failing trial opens it again (503, Retry-After,
// nothing to the store).
func TestResilAuditHalfOpenTrials(t *testing.T) {
	// A search timeout and an open timeout a busy machine cannot miss: at
	// 200ms and 500ms, a healthy trial could be a 504, and the breaker
	// could be half-open again before the test looked.
	const timeout, openTimeout, slow = 2 * time.Second, time.Second, time.Second
	r := raStart(t, map[string]string{
		fltOpKey("SEARCH", "BREAKER__HALFOPENREQUESTS"): "2",
		fltOpKey("SEARCH", "TIMEOUT"):                   timeout.String(),
		fltOpKey("SEARCH", "BREAKER__OPENTIMEOUT"):      openTimeout.String(),
	})
	r.proxy.Record(true)
	trip := func() {
		t.Helper()
		if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Status(500)); err != nil {
			t.Fatal(err)
		}
		for range fltThreshold {
			fltFailure(t, r.search(t), http.StatusBadGateway, "en")
		}
		if s := fltBreaker(t, r.gw, fltOpSearch).State; s != "open" {
			t.Fatalf("breaker %s after %d failures", s, fltThreshold)
		}
	}
	halfOpen := func() {
		t.Helper()
		eventually(t, 5*openTimeout, func() error {
			if s := fltBreaker(t, r.gw, fltOpSearch).State; s != "half-open" {
				return fmt.Errorf("breaker %s", s)
			}
			return nil
		})
	}

	trip()
	r.proxy.Heal()
	halfOpen()
	r.search(t).Data(t, nil)
	if s := fltBreaker(t, r.gw, fltOpSearch).State; s != "half-open" {
		t.Fatalf("breaker %s after 1 of 2 trials", s)
	}
	r.search(t).Data(t, nil)
	if s := fltBreaker(t, r.gw, fltOpSearch).State; s != "closed" {
		t.Fatalf("breaker %s after 2 good trials", s)
	}

	// Two slow trials in flight: a third caller is refused, not sent.
	trip()
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Delay(slow)); err != nil {
		t.Fatal(err)
	}
	halfOpen()
	proxied := r.seenSearch()
	var wg sync.WaitGroup
	trials := make([]*Response, 2)
	trialErrs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { trials[i], trialErrs[i] = r.trySearch() })
	}
	eventually(t, 5*time.Second, func() error {
		if n := r.seenSearch() - proxied; n != 2 {
			return fmt.Errorf("%d trials at the proxy", n)
		}
		return nil
	})
	third := r.search(t, Lang("tr"))
	fltFailure(t, third, http.StatusServiceUnavailable, "tr")
	wg.Wait()
	for i, resp := range trials {
		if trialErrs[i] != nil {
			t.Fatalf("trial %d: %v", i, trialErrs[i])
		}
		resp.Data(t, nil)
	}
	if n := r.seenSearch() - proxied; n != 2 {
		t.Fatalf("%d attempts reached the proxy while half-open, want the 2 trials", n)
	}
	if s := fltBreaker(t, r.gw, fltOpSearch).State; s != "closed" {
		t.Fatalf("breaker %s after 2 good trials", s)
	}

	// A failing trial opens it again at once.
	trip()
	halfOpen()
	fltFailure(t, r.search(t), http.StatusBadGateway, "en")
	if s := fltBreaker(t, r.gw, fltOpSearch).State; s != "open" {
		t.Fatalf("breaker %s after a failed trial", s)
	}
	proxied = r.seenSearch()
	resp := r.search(t)
	fltFailure(t, resp, http.StatusServiceUnavailable, "en")
	if resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	if n := r.seenSearch() - proxied; n != 0 {
		t.Fatalf("%d attempts reached the proxy while open", n)
	}
	r.proxy.Heal()
}

func (r *raRig) seenSearch() int { return r.seen(contract.PathSearch) }

// The store's answers on the other operations never count (409 on the
// username check, 400 on the profile); a proxy's HTML 404 in the store's
// place does, and opens only that operation's breaker.
func TestResilAuditWhatCountsOnOtherOperations(t *testing.T) {
	r := raStart(t, nil)
	me := contract.PathUserPrefix + refstore.DemoUserID
	if err := r.proxy.SetPath(contract.PathUsernameCheck, faultproxy.Status(http.StatusConflict)); err != nil {
		t.Fatal(err)
	}
	if err := r.proxy.SetPath(me, faultproxy.Status(http.StatusBadRequest)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 * fltThreshold {
		lang := []string{"en", "tr"}[i%2]
		fltFailure(t, r.check(t, Lang(lang)), http.StatusConflict, lang)
		fltFailure(t, r.me(t, Lang(lang)), http.StatusBadRequest, lang)
	}
	for _, op := range []string{fltOpUsername, fltOpUser} {
		if b := fltBreaker(t, r.gw, op); b.State != "closed" || b.Failures != 0 {
			t.Fatalf("%s breaker after the store's answers: %+v", op, b)
		}
	}
	r.proxy.Heal()
	if err := r.proxy.SetPath(me, faultproxy.Respond(404, "text/html", "<html><body>404 Not Found nginx</body></html>")); err != nil {
		t.Fatal(err)
	}
	for range fltThreshold {
		fltFailure(t, r.me(t), http.StatusBadGateway, "en")
	}
	if b := fltBreaker(t, r.gw, fltOpUser); b.State != "open" {
		t.Fatalf("userById breaker after %d proxy 404 pages: %+v", fltThreshold, b)
	}
	fltFailure(t, r.me(t, Lang("tr")), http.StatusServiceUnavailable, "tr")
	r.search(t).Data(t, nil)
	r.check(t).Data(t, nil)
	r.proxy.Heal()
}

// Stale data stands in for a failing store within staleIfError, but never
// masks an answer that means something (a 404), and once the store said
// the user is gone, a later failure does not bring the old data back.
func TestResilAuditStaleNeverMasksAnAnswer(t *testing.T) {
	r := raStart(t, map[string]string{
		"GATEWAY_CACHE__ENABLED":                          "true",
		"GATEWAY_CACHE__ROUTES__ME__TTL":                  "300ms",
		"GATEWAY_CACHE__ROUTES__ME__STALEWHILEREVALIDATE": "0s",
		"GATEWAY_CACHE__ROUTES__ME__STALEIFERROR":         "10s",
	})
	me := contract.PathUserPrefix + refstore.DemoUserID
	warm := r.me(t)
	warm.Data(t, nil)
	if err := r.proxy.SetPath(me, faultproxy.Status(http.StatusInternalServerError)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	resp := r.me(t)
	resp.Data(t, nil)
	if resp.Header.Get("X-Cache") != "STALE" || resp.Header.Get("ETag") != warm.Header.Get("ETag") {
		t.Fatalf("a failing store within staleIfError: X-Cache %q ETag %q (stored %q)",
			resp.Header.Get("X-Cache"), resp.Header.Get("ETag"), warm.Header.Get("ETag"))
	}
	if err := r.proxy.SetPath(me, faultproxy.Status(http.StatusNotFound)); err != nil {
		t.Fatal(err)
	}
	resp = r.me(t)
	fltFailure(t, resp, http.StatusNotFound, "en")
	if resp.Header.Get("X-Cache") != "" {
		t.Fatalf("404 with X-Cache %q", resp.Header.Get("X-Cache"))
	}
	if err := r.proxy.SetPath(me, faultproxy.Status(http.StatusInternalServerError)); err != nil {
		t.Fatal(err)
	}
	resp = r.me(t)
	if resp.Status == http.StatusOK || resp.Header.Get("X-Cache") == "STALE" {
		t.Fatalf("the deleted user's data came back after the 404: %d, X-Cache %q", resp.Status, resp.Header.Get("X-Cache"))
	}
	fltFailure(t, resp, http.StatusBadGateway, "en")
	r.proxy.Heal()
}

// raGarbageStore is a store that answers whatever the test sets.
type raGarbageStore struct {
	srv  *httptest.Server
	mode atomic.Value // func(http.ResponseWriter, *http.Request)
	hits atomic.Int64
}

func raStartGarbageStore(t *testing.T) *raGarbageStore {
	t.Helper()
	g := &raGarbageStore{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.hits.Add(1)
		io.Copy(io.Discard, r.Body)
		g.mode.Load().(func(http.ResponseWriter, *http.Request))(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

const raSecret = "goroutine 1 [running]: main.secret() /srv/store/db.go:42 +0x1d SECRET"

// What a broken store can send that the fault proxy cannot: a chunked
// body far over maxResponseBytes, a header block over the client's buffer,
// the gateway's own envelope instead of the contract's shape, a 500 with a
// stack trace, a body dripped on the POST. The client always gets the
// documented envelope, quickly, and never the store's text.
func TestResilAuditGarbageFromTheStore(t *testing.T) {
	g := raStartGarbageStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{StoreURL: g.srv.URL, IdP: idp, Env: fltEnv(raNoBreakers(nil))})
	tok := idp.UserToken(t)
	user := `{"id":"` + refstore.DemoUserID + `","username":"sukru.isik","minutePrice":{"amountMinor":1,"currency":"TRY"}}`
	cases := []struct {
		name   string
		path   string
		body   string
		status int
		mode   func(http.ResponseWriter, *http.Request)
	}{
		{"chunked body over the cap", "/api/v1/users/me", "", 502, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"items":[],"padding":"`))
			chunk := []byte(strings.Repeat("x", 16<<10) + raSecret)
			for range 64 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}},
		{"header block over the buffer", "/api/v1/users/me", "", 502, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Debug", strings.Repeat("y", 16<<10)+raSecret)
			w.Write([]byte(user))
		}},
		{"the gateway's envelope instead of a user", "/api/v1/users/me", "", 502, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"isSuccess":true,"statusCode":200,"data":%s,"errors":[],"timestamp":"2026-01-01T00:00:00.000Z"}`, user)
		}},
		{"500 with a stack trace", "/api/v1/users/me", "", 502, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(500)
			w.Write([]byte(raSecret))
		}},
		{"500 with a contract body quoting a trace", "/api/v2/users/search?query=x", "", 502, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(500)
			fmt.Fprintf(w, `{"code":"internal","message":%q,"details":{"trace":%q}}`, raSecret, raSecret)
		}},
		{"problem+json 200", "/api/v2/users/search?query=x", "", 502, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Write([]byte(`{"items":[],"total":0}`))
		}},
		{"drip on the username check", "/api/v1/users/check-username", `{"username":"johndoe123"}`, 504, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "44")
			w.WriteHeader(200)
			for _, b := range []byte(`{"username":"johndoe123","available":true}`) {
				w.Write([]byte{b})
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g.mode.Store(c.mode)
			for _, lang := range []string{"en", "tr"} {
				hits := g.hits.Load()
				opts := []ReqOpt{Bearer(tok), Lang(lang)}
				method := http.MethodGet
				if c.body != "" {
					method = http.MethodPost
					opts = append(opts, JSONBody(c.body))
				}
				resp, took := fltTimed(func() *Response { return gw.Do(t, method, c.path, opts...) })
				fltFailure(t, resp, c.status, lang)
				for _, leak := range []string{"goroutine", "db.go", "SECRET", "yyyy", "isSuccess\":true"} {
					if strings.Contains(string(resp.Body), leak) {
						t.Fatalf("the answer carries %q: %s", leak, resp.Body)
					}
				}
				// The drip would take 2.2s; it is cut at the 1s call
				// timeout, the others answer at once.
				if took > 2*fltOpTimeout {
					t.Fatalf("the answer took %s", took)
				}
				if g.hits.Load() == hits {
					t.Fatal("the store was never asked")
				}
			}
		})
	}
}

// raBlackHole is a loopback address whose listener never accepts and
// whose accept queue is full: new connections hang in SYN_SENT, like a
// store behind a dropped route.
func raBlackHole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 4 {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		c.Close()
		t.Skip("the loopback accept queue does not fill up here")
	}
	return addr
}

// A search is two calls in a row; the request's deadline bounds each
// attempt, but not the connect of a new connection: fasthttp gives the
// gateway's dial no deadline, so the dial runs its own dialTimeout. Here
// the live streams live on another host whose connections hang, the
// search takes 1s of a 2s request (1s within its timeout, so a busy
// machine does not turn it into a 504), and the connect then takes its
// whole dialTimeout (1.5s): the answer, partial, comes about 500ms after
// the request's deadline (a connect cut at the deadline would answer at
// 2s), and the connect timeout counts against the live-stream breaker.
func TestResilAuditConnectIsBoundedByDialTimeoutOnly(t *testing.T) {
	hole := raBlackHole(t)
	const deadline, searchDelay, dial = 2 * time.Second, time.Second, 1500 * time.Millisecond
	env := map[string]string{
		"GATEWAY_SERVER__REQUESTTIMEOUT":                   deadline.String(),
		"GATEWAY_UPSTREAMS__USERSTORE__LIVESTREAMSBASEURL": "http://" + hole,
		"GATEWAY_UPSTREAMS__USERSTORE__DIALTIMEOUT":        dial.String(),
	}
	for _, op := range []string{"USERNAMECHECK", "SEARCH", "USERBYID", "LIVESTREAMS"} {
		env[fltOpKey(op, "TIMEOUT")] = deadline.String()
	}
	r := raStart(t, env)
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Delay(searchDelay)); err != nil {
		t.Fatal(err)
	}
	resp, took := fltTimed(func() *Response { return r.search(t) })
	resp.Data(t, nil)
	if resp.Header.Get("X-Partial-Response") != "liveStream" {
		t.Fatalf("X-Partial-Response %q", resp.Header.Get("X-Partial-Response"))
	}
	b := fltBreaker(t, r.gw, fltOpLive)
	t.Logf("search with unreachable live streams answered in %s (deadline %s, dialTimeout %s); liveStreams breaker %+v", took, deadline, dial, b)
	if took < searchDelay+dial*9/10 {
		t.Fatalf("answered in %s: the connect was cut before its dialTimeout; docs/resilience.md (Connect) says it is not", took)
	}
	// A connect with no bound would hang for minutes (the kernel's SYN
	// retries); the margin is for a busy machine.
	if took > searchDelay+dial+time.Second {
		t.Fatalf("answered in %s: more than dialTimeout past the search", took)
	}
	if b.Failures != 1 {
		t.Fatalf("the connect timeout should count once against the live-stream breaker: %+v", b)
	}
}

// Thirty callers at once over a full bulkhead: each is refused with a 503
// and Retry-After: 1 well before the slow calls end, and none of them opens
// a connection to the store or reaches it.
func TestResilAuditBulkheadBurstOpensNothing(t *testing.T) {
	const maxInFlight, slow, excess = 2, 800 * time.Millisecond, 30
	r := raStart(t, map[string]string{
		fltOpKey("SEARCH", "MAXINFLIGHT"): fmt.Sprint(maxInFlight),
		fltOpKey("SEARCH", "TIMEOUT"):     "2s",
	})
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Delay(slow)); err != nil {
		t.Fatal(err)
	}
	before := r.proxy.Stats()
	var held sync.WaitGroup
	slowResults := make([]*Response, maxInFlight)
	slowErrs := make([]error, maxInFlight)
	for i := range maxInFlight {
		held.Go(func() { slowResults[i], slowErrs[i] = r.trySearch() })
	}
	eventually(t, 2*time.Second, func() error {
		if n := r.proxy.Stats().Requests - before.Requests; n != maxInFlight {
			return fmt.Errorf("%d calls at the proxy", n)
		}
		return nil
	})
	full := r.proxy.Stats()
	start := time.Now()
	var wg sync.WaitGroup
	results := make([]*Response, excess)
	errs := make([]error, excess)
	for i := range excess {
		wg.Go(func() { results[i], errs[i] = r.trySearch(Lang([]string{"en", "tr"}[i%2])) })
	}
	wg.Wait()
	took := time.Since(start)
	after := r.proxy.Stats()
	held.Wait()
	for i, resp := range slowResults {
		if slowErrs[i] != nil {
			t.Fatalf("slow search %d: %v", i, slowErrs[i])
		}
		resp.Data(t, nil)
	}
	for i, resp := range results {
		if errs[i] != nil {
			t.Fatalf("search %d of the burst: %v", i, errs[i])
		}
		fltFailure(t, resp, http.StatusServiceUnavailable, []string{"en", "tr"}[i%2])
		if resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
	}
	if took >= slow/2 {
		t.Fatalf("%d refusals took %s: they waited for the slow calls", excess, took)
	}
	if after.Requests != full.Requests || after.Connections != full.Connections {
		t.Fatalf("the refused burst reached the store side: %d requests, %d connections", after.Requests-full.Requests, after.Connections-full.Connections)
	}
	if n := fltCalls(t, r.gw, fltOpSearch, "bulkhead_full"); n != excess {
		t.Fatalf("%v bulkhead refusals, want %d", n, excess)
	}
}

// A store that accepts no connection within dialTimeout did not answer in
// time: the apps get a 504, as for any other timeout, not the 502 of a
// broken answer; the outcome still says the connect failed.
func TestResilAuditConnectTimeoutIsGatewayTimeout(t *testing.T) {
	hole := raBlackHole(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{StoreURL: "http://" + hole, IdP: idp, Env: map[string]string{
		"GATEWAY_UPSTREAMS__USERSTORE__DIALTIMEOUT": "200ms",
		"GATEWAY_CACHE__ENABLED":                    "false",
	}})
	user := idp.UserToken(t)
	const late = "The service did not respond in time"
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user)).Failure(t, http.StatusGatewayTimeout, late)
	gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(user), JSONBody(`{"username":"sukru.isik"}`)).Failure(t, http.StatusGatewayTimeout, late)
	metrics := gw.Metrics(t)
	for _, op := range []string{"userById", "usernameCheck"} {
		if want := `gateway_upstream_calls_total{op="` + op + `",outcome="connect"} 1`; !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
