package e2e

// The fault-injection suite (issue 4): a user store of the test's own
// behind a faultproxy, the gateway in this process (so goleak can look at
// its goroutines once it stopped), breakers and timeouts made small by
// environment overrides, and the read cache off so every request goes
// upstream. Each scenario is one fault; for each, the tests check what the
// client saw, what reached the store, when the breaker opened, what an
// open breaker answers and how fast, that the breaker closes again after
// recovery, and that nothing leaked. Calls are counted as differences, so
// the scenarios of one test can share its store.
//
// Scenario results are logged as "RESULT | …" lines (go test -v -run
// TestFaults ./e2e | grep RESULT); docs/resilience.md shows a run's.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/faultproxy"
	"github.com/bffgate/edge/upstream/refstore"
	"go.uber.org/goleak"
)

// The small settings every fault test runs with (fltEnv).
const (
	// fltOpTimeout is far above what a healthy call takes on a busy
	// machine: at 200ms, answers the store gave in time were 504s there.
	fltOpTimeout   = time.Second
	fltOpenTimeout = 500 * time.Millisecond
	fltThreshold   = 3
	// fltIdle is the gateway's keep-alive for store connections. fasthttp's
	// sweeper goroutine outlives Close by up to this long, so goleak waits
	// for it; the connection check runs well inside it, so it proves that
	// Close (not the sweeper) closed the connections.
	fltIdle = 500 * time.Millisecond
)

// The operations: the gateway's breaker names and the store recorder's.
const (
	fltOpSearch   = "search"
	fltOpUser     = "userById"
	fltOpLive     = "liveStreams"
	fltOpUsername = "usernameCheck"

	fltStoreSearch = "search"
	fltStoreUser   = "user"
	fltStoreLive   = "liveStreams"
)

// fltMessages are the first error message of each status, as the apps
// see them in English and Turkish.
var fltMessages = map[int][2]string{
	http.StatusBadRequest:         {"Validation failed", "Doğrulama başarısız oldu"},
	http.StatusUnauthorized:       {"Authentication required", "Kimlik doğrulaması gerekli"},
	http.StatusNotFound:           {"Resource not found", "Kaynak bulunamadı"},
	http.StatusConflict:           {"Resource already exists or cannot be changed in its current state", "Kaynak zaten mevcut veya mevcut durumunda değiştirilemez"},
	http.StatusBadGateway:         {"The service returned an invalid response", "Hizmetten geçersiz bir yanıt alındı"},
	http.StatusServiceUnavailable: {"Service temporarily unavailable, please try again later", "Hizmet geçici olarak kullanılamıyor, lütfen daha sonra tekrar deneyin"},
	http.StatusGatewayTimeout:     {"The service did not respond in time", "Hizmet zamanında yanıt vermedi"},
}

// fltEnv is the environment of a fault test's gateway: per-call timeouts
// of 1s, breakers that open after 3 consecutive store faults and stay
// open 500ms with one half-open trial, no read cache; over adds or
// replaces.
func fltEnv(over map[string]string) map[string]string {
	env := map[string]string{
		"GATEWAY_CACHE__ENABLED":                            "false",
		"GATEWAY_UPSTREAMS__USERSTORE__MAXIDLECONNDURATION": fltIdle.String(),
		"GATEWAY_UPSTREAMS__USERSTORE__MAXRESPONSEBYTES":    "64KiB",
		"GATEWAY_LOG__ACCESS":                               "false",
	}
	for _, op := range []string{"USERNAMECHECK", "SEARCH", "USERBYID", "LIVESTREAMS"} {
		p := "GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__" + op + "__"
		env[p+"TIMEOUT"] = fltOpTimeout.String()
		env[p+"BREAKER__CONSECUTIVEFAILURES"] = strconv.Itoa(fltThreshold)
		env[p+"BREAKER__OPENTIMEOUT"] = fltOpenTimeout.String()
		env[p+"BREAKER__HALFOPENREQUESTS"] = "1"
	}
	for k, v := range over {
		env[k] = v
	}
	return env
}

// fltOpKey is the environment prefix of one operation's settings.
func fltOpKey(op, rest string) string {
	return "GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__" + strings.ToUpper(op) + "__" + rest
}

// fltRig is one scenario's world: the store (shared by a test's
// scenarios), a fault proxy in front of it, the gateway in this process
// pointed at the proxy, and the goroutines that existed before.
type fltRig struct {
	store  *Store
	proxy  *faultproxy.Proxy
	gw     *Gateway
	token  string
	before goleak.Option
	done   bool
}

// fltStart starts a proxy in front of store and an in-process gateway
// behind it. Everything the test itself keeps running (store, identity
// provider, their client connections) must exist before, so the goroutine
// snapshot taken here holds it.
func fltStart(t *testing.T, store *Store, idp *IdP, env map[string]string) *fltRig {
	t.Helper()
	p, err := faultproxy.New(store.URL)
	if err != nil {
		t.Fatal(err)
	}
	r := &fltRig{store: store, proxy: p, token: idp.UserToken(t)}
	t.Cleanup(func() {
		if !r.done {
			if r.gw != nil {
				r.gw.Stop(t)
			}
			p.Close()
		}
	})
	store.Counts(t) // the recorder's client connection exists before the snapshot
	r.before = goleak.IgnoreCurrent()
	r.gw = StartInProcess(t, GatewayOptions{StoreURL: p.URL(), IdP: idp, Env: fltEnv(env)})
	return r
}

// finish stops the gateway and checks that it left nothing behind: no
// connection to the store still open on the gateway's side, no goroutine
// that was not there before it started, and a clean exit.
func (r *fltRig) finish(t *testing.T) {
	t.Helper()
	if t.Failed() {
		return
	}
	open := fltOpenConns(t, r.proxy.Addr())
	stopped := time.Now()
	if err := r.gw.Stop(t); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	stopTook := time.Since(stopped)
	// Close closes the idle connections itself, at once; the keep-alive
	// sweeper would take up to fltIdle.
	returned := time.Now()
	for n := fltOpenConns(t, r.proxy.Addr()); n > 0; n = fltOpenConns(t, r.proxy.Addr()) {
		if time.Since(returned) > fltIdle/4 {
			t.Fatalf("%d connections from the gateway to the store still open %s after it stopped", n, time.Since(returned))
		}
		time.Sleep(5 * time.Millisecond)
	}
	closedIn := time.Since(stopped)
	if stopTook > fltIdle/2 {
		// fasthttp counts a client connection that has not sent a request
		// yet as idle only after 5s (as net/http does); the harness client
		// sometimes leaves such a connection behind.
		t.Logf("stopping took %s: the connection check cannot tell Close from the keep-alive sweeper this time", stopTook)
	}
	r.done = true
	if err := r.proxy.Close(); err != nil {
		t.Fatalf("proxy close: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
	fltNoLeaks(t, r.before)
	t.Logf("leaks: %d store connections open before stop, 0 after %s; no goroutine left", open, closedIn.Round(time.Millisecond))
}

// fltNoLeaks waits (up to a few seconds, for sweepers that wake on a
// timer) until no goroutine but those in before is left.
func fltNoLeaks(t *testing.T, before goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(fltIdle + 3*time.Second)
	for {
		// fasthttp's server worker pool cleaner sleeps MaxIdleWorkerDuration
		// (10s) between rounds and sees Stop only when it wakes: it ends on
		// its own, and nothing can end it sooner.
		// Its server-date ticker is one per process, started by the first
		// server ever, and never stops.
		err := goleak.Find(before,
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines leaked by the gateway: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fltOpenConns counts this process's TCP connections to addr that are
// still open on the connecting side (established, or closed by the peer
// but not by us): the gateway's connections to the proxy.
func fltOpenConns(t testing.TB, addr string) int {
	t.Helper()
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portText)
	want := fmt.Sprintf(":%04X", port)
	n := 0
	for _, file := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[0] == "sl" {
				continue
			}
			remote, state := fields[2], fields[3]
			if strings.HasSuffix(remote, want) && (state == "01" || state == "08") {
				n++
			}
		}
		f.Close()
	}
	return n
}

// search is the app's search for the demo user, who is live (search, then
// one batched live-stream call).
func (r *fltRig) search(t testing.TB, opts ...ReqOpt) *Response {
	t.Helper()
	return r.gw.Do(t, http.MethodGet, fltSearchPath, append([]ReqOpt{Bearer(r.token)}, opts...)...)
}

const fltSearchPath = "/api/v2/users/search?query=sukru%20isik&limit=5"

// trySearch is search for goroutines other than the test's, which must
// not stop it: a failure to send or read comes back as an error.
func (r *fltRig) trySearch(opts ...ReqOpt) (*Response, error) {
	return sendWith(r.gw.client, http.MethodGet, r.gw.URL+fltSearchPath, append([]ReqOpt{Bearer(r.token)}, opts...)...)
}

// me is the demo user's profile (user by id and live stream in parallel).
func (r *fltRig) me(t testing.TB, opts ...ReqOpt) *Response {
	t.Helper()
	return r.gw.Do(t, http.MethodGet, "/api/v1/users/me", append([]ReqOpt{Bearer(r.token)}, opts...)...)
}

// timed runs call and reports how long it took.
func fltTimed(call func() *Response) (*Response, time.Duration) {
	start := time.Now()
	resp := call()
	return resp, time.Since(start)
}

// fltFailure checks a failure envelope: the status, exactly the status's
// message in lang, nothing of the store's or the proxy's text, and a
// Retry-After of whole seconds on a 503.
func fltFailure(t testing.TB, r *Response, status int, lang string) {
	t.Helper()
	msgs, ok := fltMessages[status]
	if !ok {
		t.Fatalf("no message known for %d", status)
	}
	want := msgs[0]
	if lang == "tr" {
		want = msgs[1]
	}
	if got := r.Failure(t, status, want); len(got) != 1 {
		t.Fatalf("%d answered %q, want only %q", status, got, want)
	}
	fltNoBackendText(t, r)
	if status == http.StatusServiceUnavailable {
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || ra < 1 {
			t.Fatalf("503 with Retry-After %q, want whole seconds >= 1", r.Header.Get("Retry-After"))
		}
	}
}

// fltNoBackendText fails when a response carries anything of what the
// store or the proxy said, or an address.
func fltNoBackendText(t testing.TB, r *Response) {
	t.Helper()
	body := strings.ToLower(string(r.Body))
	for _, leak := range []string{"faultproxy", "injected", "<html", "<!doctype", "127.0.0.1", "dial tcp", "connection", "eof", "internal_error", "unavailable\"", "padding", "xxxx"} {
		if strings.Contains(body, leak) {
			t.Fatalf("response carries backend text %q: %s", leak, r.Body)
		}
	}
}

// fltOps GETs path from the ops listener. (The harness's Gateway.Ops
// swaps the gateway's URL while it runs, so it must not be used while
// other goroutines send requests.)
func fltOps(t testing.TB, gw *Gateway, path string) *Response {
	t.Helper()
	resp, err := gw.client.Get(gw.OpsURL + path)
	if err != nil {
		t.Fatalf("ops %s: %v", path, err)
	}
	return readResponse(t, resp, "ops "+path)
}

// fltBreakerView is one entry of GET /ops/v1/breakers.
type fltBreakerView struct {
	Op                  string `json:"op"`
	State               string `json:"state"`
	Requests            uint32 `json:"requests"`
	Failures            uint32 `json:"failures"`
	ConsecutiveFailures uint32 `json:"consecutiveFailures"`
	RetryAfterSeconds   int    `json:"retryAfterSeconds"`
}

// breaker reads op's breaker from the ops listener.
func (r *fltRig) breaker(t testing.TB, op string) fltBreakerView {
	t.Helper()
	return fltBreaker(t, r.gw, op)
}

func fltBreaker(t testing.TB, gw *Gateway, op string) fltBreakerView {
	t.Helper()
	var out struct {
		Breakers []fltBreakerView `json:"breakers"`
	}
	fltOps(t, gw, "/ops/v1/breakers").Data(t, &out)
	for _, b := range out.Breakers {
		if b.Op == op {
			return b
		}
	}
	t.Fatalf("no breaker %q in /ops/v1/breakers: %+v", op, out.Breakers)
	return fltBreakerView{}
}

// fltMetric reads one sample of the ops listener's /metrics: the series
// named name whose labels include every pair of labels ("op", "search",
// …). A series not exported reads 0.
func fltMetric(t testing.TB, gw *Gateway, name string, labels ...string) float64 {
	t.Helper()
	resp := fltOps(t, gw, "/metrics")
	if resp.Status != http.StatusOK {
		t.Fatalf("metrics: %d", resp.Status)
	}
	for _, line := range strings.Split(string(resp.Body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		series, value, ok := strings.Cut(rest, " ")
		if !ok {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(series, labels[i]+`="`+labels[i+1]+`"`) {
				match = false
				break
			}
		}
		if match {
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// fltBreakerState is gateway_breaker_state of op: 0 closed, 1 half-open,
// 2 open.
func fltBreakerState(t testing.TB, gw *Gateway, op string) float64 {
	t.Helper()
	return fltMetric(t, gw, "gateway_breaker_state", "op", op)
}

// fltCalls is gateway_upstream_calls_total of op summed over outcomes.
// Every call counts once, whatever its retries; a call's first attempt
// plus fltRetries are the exchanges the gateway started.
func fltCalls(t testing.TB, gw *Gateway, op string, outcomes ...string) float64 {
	t.Helper()
	var n float64
	for _, o := range outcomes {
		n += fltMetric(t, gw, "gateway_upstream_calls_total", "op", op, "outcome", o)
	}
	return n
}

func fltRetries(t testing.TB, gw *Gateway, op string) float64 {
	t.Helper()
	return fltMetric(t, gw, "gateway_upstream_retries_total", "op", op)
}

// fltTransitions lists the breaker state changes of op the gateway
// logged, as "from>to".
func fltTransitions(gw *Gateway, op string) []string {
	var out []string
	for _, l := range gw.LogLines() {
		if l["msg"] == "upstream breaker state changed" && l["op"] == op {
			out = append(out, fmt.Sprint(l["from"], ">", l["to"]))
		}
	}
	return out
}

// fltWarnings is what the gateway logged at warning level or above.
func fltWarnings(gw *Gateway) string {
	var b strings.Builder
	for _, l := range gw.LogLines() {
		if l["level"] == "WARN" || l["level"] == "ERROR" {
			fmt.Fprintln(&b, l)
		}
	}
	return b.String()
}

// fltMedian is the median of ds.
func fltMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// fltPage is a search page, as much of it as these tests look at.
type fltPage struct {
	Items []struct {
		ID         string          `json:"id"`
		LiveStream json.RawMessage `json:"liveStream"`
	} `json:"items"`
}

// ---------------------------------------------------------------------------
// Breakers: one fault each, from first failure to recovery.

// fltTrip is one fault and what the client must see while the breaker is
// still closed.
type fltTrip struct {
	name string
	// install puts the fault in place.
	install func(p *faultproxy.Proxy) error
	// status is the answer to each failing call before the breaker opens.
	status int
	// retried: the fault is one the gateway retries (a read's refused or
	// reset connection, a 503), so a failing call makes two attempts.
	retried bool
	// reachesProxy / forwarded: whether an attempt reaches the proxy, and
	// whether the proxy hands it to the store before failing it. Delayed
	// attempts are cut by the gateway before the proxy forwards them.
	reachesProxy, forwarded bool
	// selfHealing: the fault ends by itself (Times); otherwise the proxy
	// is healed before the half-open trial.
	selfHealing bool
	// timeout is the search's call timeout when the fault is a timeout
	// (else fltTripTimeout).
	timeout time.Duration
}

// The search's call timeout and open timeout in the breaker scenarios:
// far above what a healthy call or the open phase's calls take on a busy
// machine (at 200ms and 500ms some ended as 504s, or met a half-open
// breaker). A fault that is a timeout gets fltTripCut, not to wait 2s for
// each cut.
const (
	fltTripTimeout     = 2 * time.Second
	fltTripCut         = time.Second
	fltTripOpenTimeout = time.Second
)

// fltTripResult is one row of the results table.
type fltTripResult struct {
	client                      string
	callsToOpen                 int
	attempts, proxied, toStore  int64
	timeToOpen, openMedian, rec time.Duration
}

// Every store fault, on the search route: the client sees a 502 or 504
// envelope (never a 500, never the store's text), the search breaker opens
// after exactly 3 failed attempts, then answers 503 in the caller's
// language with Retry-After, without waiting and without traffic to the
// store, and closes again on the first trial after the store recovered.
func TestFaultsBreakerOpensAndRecovers(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	path := func(m faultproxy.Mode) func(*faultproxy.Proxy) error {
		return func(p *faultproxy.Proxy) error { return p.SetPath(contract.PathSearch, m) }
	}
	trips := []fltTrip{
		{name: "refused connections", install: func(p *faultproxy.Proxy) error { return p.Set(faultproxy.Refuse()) },
			status: http.StatusBadGateway, retried: true},
		{name: "reset connection at accept", install: func(p *faultproxy.Proxy) error { return p.Set(faultproxy.AcceptClose()) },
			status: http.StatusBadGateway, retried: true},
		{name: "delay beyond the call timeout", install: path(faultproxy.Delay(3 * fltTripCut)),
			status: http.StatusGatewayTimeout, reachesProxy: true, timeout: fltTripCut},
		{name: "drip-fed body", install: path(faultproxy.Drip(16, 50*time.Millisecond)),
			status: http.StatusGatewayTimeout, reachesProxy: true, forwarded: true, timeout: fltTripCut},
		{name: "reset in the middle of the body", install: path(faultproxy.ResetMidBody(32)),
			status: http.StatusBadGateway, retried: true, reachesProxy: true, forwarded: true},
		{name: "500 burst", install: path(faultproxy.Status(http.StatusInternalServerError).Times(fltThreshold)),
			status: http.StatusBadGateway, reachesProxy: true, selfHealing: true},
		{name: "503 outage", install: path(faultproxy.Status(http.StatusServiceUnavailable)),
			status: http.StatusBadGateway, retried: true, reachesProxy: true},
		{name: "HTML page with 200", install: path(faultproxy.HTML()),
			status: http.StatusBadGateway, reachesProxy: true},
		{name: "truncated JSON", install: path(faultproxy.TruncatedJSON()),
			status: http.StatusBadGateway, reachesProxy: true, forwarded: true},
		{name: "oversized JSON", install: path(faultproxy.Oversized(256 << 10)),
			status: http.StatusBadGateway, reachesProxy: true},
	}
	for _, trip := range trips {
		t.Run(trip.name, func(t *testing.T) {
			if trip.timeout == 0 {
				trip.timeout = fltTripTimeout
			}
			r := fltStart(t, store, idp, map[string]string{
				fltOpKey(fltOpSearch, "TIMEOUT"):              trip.timeout.String(),
				fltOpKey(fltOpSearch, "BREAKER__OPENTIMEOUT"): fltTripOpenTimeout.String(),
			})
			res := fltTripAndRecover(t, r, trip)
			r.finish(t)
			t.Logf("RESULT | %s | %s | %d calls, %d attempts, %d at the proxy, %d at the store | %s | %s (n=16) | closed %s after opening, first trial |",
				trip.name, res.client, res.callsToOpen, res.attempts, res.proxied, res.toStore,
				res.timeToOpen.Round(time.Millisecond), res.openMedian.Round(10*time.Microsecond), res.rec.Round(time.Millisecond))
		})
	}
}

func fltTripAndRecover(t *testing.T, r *fltRig, trip fltTrip) fltTripResult {
	t.Helper()
	var res fltTripResult
	// A healthy call first: the breaker is closed and the store answers.
	r.search(t).Data(t, nil)
	if b := r.breaker(t, fltOpSearch); b.State != "closed" {
		t.Fatalf("breaker %s before any fault", b.State)
	}
	proxied0, store0 := r.proxy.Stats().Requests, r.store.Counts(t)[fltStoreSearch]
	calls0 := fltCalls(t, r.gw, fltOpSearch, "ok")
	if err := trip.install(r.proxy); err != nil {
		t.Fatal(err)
	}

	// Failing calls until the breaker opens: no more than the threshold.
	start := time.Now()
	for {
		res.callsToOpen++
		resp := r.search(t)
		fltFailure(t, resp, trip.status, "en")
		if r.breaker(t, fltOpSearch).State == "open" {
			break
		}
		if res.callsToOpen >= fltThreshold {
			t.Fatalf("breaker still closed after %d failing calls", res.callsToOpen)
		}
	}
	res.timeToOpen = time.Since(start)
	opened := time.Now()

	// Open: fast 503s in the caller's language, nothing reaches the store.
	// First, while the breaker surely is open; the counts are checked after.
	proxied1, store1 := r.proxy.Stats(), r.store.Counts(t)
	var lat []time.Duration
	for i := range 16 {
		lang := []string{"en", "tr"}[i%2]
		resp, d := fltTimed(func() *Response { return r.search(t, Lang(lang)) })
		fltFailure(t, resp, http.StatusServiceUnavailable, lang)
		// The time until half-open, in whole seconds, at least one.
		if resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("Retry-After %q while open for %s", resp.Header.Get("Retry-After"), fltTripOpenTimeout)
		}
		lat = append(lat, d)
	}
	res.openMedian = fltMedian(lat)
	// The gauge and the logged transitions are read before the ops view:
	// when it still says open, they were read while it was (a breaker
	// turns half-open only when asked), though the checks below take
	// longer than the open timeout on a busy machine.
	gauge, transitions := fltBreakerState(t, r.gw, fltOpSearch), fltTransitions(r.gw, fltOpSearch)
	b := r.breaker(t, fltOpSearch)
	if b.State != "open" {
		t.Fatalf("breaker %s after the open-phase calls; the machine is too slow for a %s open timeout", b.State, fltTripOpenTimeout)
	}
	if b.RetryAfterSeconds != 1 {
		t.Fatalf("ops view retryAfterSeconds %d, want 1", b.RetryAfterSeconds)
	}
	// A logical bound: an open breaker never waits for the store, so even
	// the median call stays well under one call timeout.
	if res.openMedian >= trip.timeout/2 {
		t.Fatalf("median latency while open %s, not far below the %s call timeout", res.openMedian, trip.timeout)
	}
	if d := r.proxy.Stats().Requests - proxied1.Requests; d != 0 {
		t.Fatalf("%d requests reached the proxy while the breaker was open", d)
	}
	if d := r.store.Total(t) - fltSum(store1); d != 0 {
		t.Fatalf("%d calls reached the store while the breaker was open", d)
	}

	res.client = fmt.Sprintf("%d", trip.status)
	wantCalls := fltThreshold
	if trip.retried {
		// Each failing call made two attempts; the one that tripped the
		// breaker stopped retrying.
		wantCalls = (fltThreshold + 1) / 2
		res.client += " (retried once)"
	}
	if res.callsToOpen != wantCalls {
		t.Fatalf("breaker opened after %d calls, want %d", res.callsToOpen, wantCalls)
	}
	// Attempts: every call that went through the breaker, plus retries.
	res.attempts = int64(fltCalls(t, r.gw, fltOpSearch, "ok", "connect", "reset", "timeout", "error_5xx", "bad_response", "too_large") - calls0 +
		fltRetries(t, r.gw, fltOpSearch))
	if res.attempts != fltThreshold {
		t.Fatalf("%d attempts before the breaker opened, want exactly %d", res.attempts, fltThreshold)
	}
	res.proxied = r.proxy.Stats().Requests - proxied0
	res.toStore = r.store.Counts(t)[fltStoreSearch] - store0
	switch {
	case trip.reachesProxy && res.proxied != fltThreshold:
		t.Fatalf("%d attempts reached the proxy, want %d", res.proxied, fltThreshold)
	case !trip.reachesProxy && res.proxied != 0:
		t.Fatalf("%d attempts reached the proxy, want none", res.proxied)
	case trip.forwarded && res.toStore != fltThreshold:
		t.Fatalf("%d attempts reached the store, want %d", res.toStore, fltThreshold)
	case !trip.forwarded && !trip.reachesProxy && res.toStore != 0:
		t.Fatalf("%d attempts reached the store, want none", res.toStore)
	}
	if !slices.Equal(transitions, []string{"closed>open"}) {
		t.Fatalf("logged transitions %q, want closed>open", transitions)
	}
	if gauge != 2 {
		t.Fatalf("gateway_breaker_state{op=search} = %v while open, want 2", gauge)
	}
	for _, op := range []string{fltOpUser, fltOpUsername} {
		if b := r.breaker(t, op); b.State != "closed" {
			t.Fatalf("the %s breaker is %s: a search fault must not touch it", op, b.State)
		}
	}

	// Recovery: after the open timeout one trial goes through; it succeeds
	// and the breaker closes.
	if !trip.selfHealing {
		if err := r.proxy.Heal(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*fltTripOpenTimeout, func() error {
		if s := r.breaker(t, fltOpSearch).State; s != "half-open" {
			return fmt.Errorf("breaker %s", s)
		}
		return nil
	})
	if st := fltBreakerState(t, r.gw, fltOpSearch); st != 1 {
		t.Fatalf("gateway_breaker_state{op=search} = %v half-open, want 1", st)
	}
	store2 := r.store.Counts(t)
	var page fltPage
	r.search(t).Data(t, &page)
	if len(page.Items) == 0 {
		t.Fatal("the trial search found nothing")
	}
	res.rec = time.Since(opened)
	if b := r.breaker(t, fltOpSearch); b.State != "closed" {
		t.Fatalf("breaker %s after a successful trial", b.State)
	}
	if st := fltBreakerState(t, r.gw, fltOpSearch); st != 0 {
		t.Fatalf("gateway_breaker_state{op=search} = %v after recovery, want 0", st)
	}
	if d := r.store.Counts(t)[fltStoreSearch] - store2[fltStoreSearch]; d != 1 {
		t.Fatalf("the trial made %d searches at the store, want 1", d)
	}
	if got := fltTransitions(r.gw, fltOpSearch); !slices.Equal(got, []string{"closed>open", "open>half-open", "half-open>closed"}) {
		t.Fatalf("logged transitions %q", got)
	}
	// And the next calls are healthy again.
	r.search(t).Data(t, nil)
	return res
}

func fltSum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// ---------------------------------------------------------------------------
// What must never open a breaker.

// The store's real answers (400, 404, 409) are answers, not faults: many
// of them in a row keep the breaker closed with no failure counted, and
// the client sees the status with the gateway's own message.
func TestFaultsStoreAnswersNeverOpenTheBreaker(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	stranger := idp.Token(t, "0d9a3c1e-7b2f-4e6a-9c8d-5f4e3d2c1b0a", "user") // no such user in the store
	r := fltStart(t, store, idp, nil)

	t.Run("404 for a subject the store does not know", func(t *testing.T) {
		before := r.store.Counts(t)[fltStoreUser]
		for i := range 4 * fltThreshold {
			lang := []string{"en", "tr"}[i%2]
			fltFailure(t, r.gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(stranger), Lang(lang)), http.StatusNotFound, lang)
		}
		if d := r.store.Counts(t)[fltStoreUser] - before; d != 4*fltThreshold {
			t.Fatalf("%d user calls reached the store, want %d (every 404 is an answer, none retried)", d, 4*fltThreshold)
		}
		b := r.breaker(t, fltOpUser)
		if b.State != "closed" || b.Failures != 0 || b.Requests < 4*fltThreshold {
			t.Fatalf("userById breaker after %d 404s: %+v", 4*fltThreshold, b)
		}
		t.Logf("RESULT | 404 from the store (/me of an unknown subject) ×%d | 404 | %d calls at the store | never opens (failures 0) | — | — |", 4*fltThreshold, 4*fltThreshold)
	})
	for _, status := range []int{http.StatusBadRequest, http.StatusConflict} {
		t.Run(fmt.Sprintf("%d from the store", status), func(t *testing.T) {
			if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Status(status)); err != nil {
				t.Fatal(err)
			}
			b0 := r.breaker(t, fltOpSearch)
			for i := range 4 * fltThreshold {
				lang := []string{"en", "tr"}[i%2]
				fltFailure(t, r.search(t, Lang(lang)), status, lang)
			}
			b := r.breaker(t, fltOpSearch)
			if b.State != "closed" || b.Failures != 0 || b.Requests-b0.Requests != 4*fltThreshold {
				t.Fatalf("search breaker after %d answers %d: %+v", 4*fltThreshold, status, b)
			}
			if err := r.proxy.Heal(); err != nil {
				t.Fatal(err)
			}
			r.search(t).Data(t, nil)
			t.Logf("RESULT | %d from the store ×%d | %d | %d calls at the proxy | never opens (failures 0) | — | — |", status, 4*fltThreshold, status, 4*fltThreshold)
		})
	}
	r.finish(t)
}

// A client that hangs up while its search waits on a slow (but not too
// slow) store is not the store's fault: the calls finish, and the breaker
// counts them as the successes they were.
func TestFaultsClientHangUpIsNoFailure(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	// The client hangs up once the proxy holds its call, so whether the
	// call had reached the store does not depend on how busy the machine
	// is; the operation's timeout leaves the held call ample room.
	const delay = 300 * time.Millisecond
	r := fltStart(t, store, idp, map[string]string{fltOpKey(fltOpSearch, "TIMEOUT"): (10 * delay).String()})
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Delay(delay)); err != nil {
		t.Fatal(err)
	}
	impatient := &http.Client{Transport: &http.Transport{}}
	defer impatient.CloseIdleConnections()
	before := r.store.Counts(t)[fltStoreSearch]
	const n = 2 * fltThreshold
	for range n {
		held := r.proxy.Stats().Requests + 1
		ctx, hangUp := context.WithCancel(context.Background())
		go func() {
			defer hangUp()
			for r.proxy.Stats().Requests < held && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		}()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.gw.URL+"/api/v2/users/search?query=sukru", nil)
		req.Header.Set("Authorization", "Bearer "+r.token)
		resp, err := impatient.Do(req)
		hangUp()
		if err == nil {
			t.Fatalf("the impatient client got %d %s: the proxy delay did not hold the call; gateway warnings:\n%s",
				resp.StatusCode, fltReadAll(resp), fltWarnings(r.gw))
		}
	}
	// The gateway carries on with each call; all of them reach the store.
	eventually(t, 5*time.Second, func() error {
		if d := r.store.Counts(t)[fltStoreSearch] - before; d != n {
			return fmt.Errorf("%d of %d searches reached the store", d, n)
		}
		if b := r.breaker(t, fltOpSearch); b.Requests < n {
			return fmt.Errorf("breaker saw %d requests", b.Requests)
		}
		return nil
	})
	b := r.breaker(t, fltOpSearch)
	if b.State != "closed" || b.Failures != 0 || b.ConsecutiveFailures != 0 {
		t.Fatalf("search breaker after %d clients hung up: %+v", n, b)
	}
	if f := fltCalls(t, r.gw, fltOpSearch, "timeout", "canceled", "reset"); f != 0 {
		t.Fatalf("%v search calls ended as failures or cancellations", f)
	}
	r.search(t).Data(t, nil)
	t.Logf("RESULT | client hangs up mid-request ×%d | (gone) | %d calls at the store, all answered | never opens (failures 0) | — | — |", n, n)
	r.finish(t)
}

// A failing search never takes the profile or the username check down:
// each operation has its own breaker.
func TestFaultsSearchOutageLeavesMeUp(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	r := fltStart(t, store, idp, nil)
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Status(http.StatusInternalServerError)); err != nil {
		t.Fatal(err)
	}
	for range fltThreshold {
		fltFailure(t, r.search(t), http.StatusBadGateway, "en")
	}
	if s := r.breaker(t, fltOpSearch).State; s != "open" {
		t.Fatalf("search breaker %s after %d faults", s, fltThreshold)
	}
	fltFailure(t, r.search(t), http.StatusServiceUnavailable, "en")
	before := r.store.Counts(t)
	for range 2 * fltThreshold {
		var me struct {
			ID         string          `json:"id"`
			LiveStream json.RawMessage `json:"liveStream"`
		}
		resp := r.me(t)
		resp.Data(t, &me)
		if me.ID != refstore.DemoUserID || string(me.LiveStream) == "null" || resp.Header.Get("X-Partial-Response") != "" {
			t.Fatalf("/me during the search outage: %s (partial %q)", resp.Body, resp.Header.Get("X-Partial-Response"))
		}
		var check struct{ Available bool }
		r.gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(r.token), JSONBody(`{"username":"johndoe123"}`)).Data(t, &check)
		if !check.Available {
			t.Fatal("johndoe123 should be available")
		}
	}
	after := r.store.Counts(t)
	if d := after[fltStoreUser] - before[fltStoreUser]; d != 2*fltThreshold {
		t.Fatalf("%d profile calls reached the store, want %d", d, 2*fltThreshold)
	}
	if d := after[fltStoreSearch] - before[fltStoreSearch]; d != 0 {
		t.Fatalf("%d searches reached the store while the search breaker was open", d)
	}
	for _, op := range []string{fltOpUser, fltOpLive, fltOpUsername} {
		if b := r.breaker(t, op); b.State != "closed" || b.Failures != 0 {
			t.Fatalf("%s breaker during the search outage: %+v", op, b)
		}
	}
	if s := r.breaker(t, fltOpSearch).State; s != "open" {
		t.Fatalf("search breaker %s", s)
	}
	t.Logf("RESULT | search fails (500) while /me and check-username run | search 502 then 503; /me 200, check 200 | %d profile calls at the store, 0 searches while open | search opens after %d; others stay closed | — | — |", 2*fltThreshold, fltThreshold)
	r.finish(t)
}

// A flapping store (two good answers, two 500s, …) never fails three times
// in a row, so only the ratio rule can see it: with failureRatio 0.5 over
// at least 10 calls the breaker opens on the 12th call (6 of 12 failed).
func TestFaultsFlappingOpensOnTheRatio(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	r := fltStart(t, store, idp, map[string]string{
		fltOpKey("SEARCH", "BREAKER__FAILURERATIO"): "0.5",
		fltOpKey("SEARCH", "BREAKER__MINREQUESTS"):  "10",
		fltOpKey("SEARCH", "BREAKER__INTERVAL"):     "10s",
	})
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Flap(2, faultproxy.Status(http.StatusInternalServerError))); err != nil {
		t.Fatal(err)
	}
	before := r.store.Counts(t)[fltStoreSearch]
	var seen []int
	for len(seen) < 20 {
		resp := r.search(t)
		seen = append(seen, resp.Status)
		if resp.Status == http.StatusServiceUnavailable {
			fltFailure(t, resp, http.StatusServiceUnavailable, "en")
			break
		}
		if resp.Status != http.StatusOK {
			fltFailure(t, resp, http.StatusBadGateway, "en")
		}
	}
	// ok ok 502 502 ok ok 502 502 ok ok 502 502 | 503
	want := []int{200, 200, 502, 502, 200, 200, 502, 502, 200, 200, 502, 502, 503}
	if !slices.Equal(seen, want) {
		t.Fatalf("statuses %v, want %v", seen, want)
	}
	if d := r.store.Counts(t)[fltStoreSearch] - before; d != 6 {
		t.Fatalf("%d searches reached the store, want the 6 healthy ones", d)
	}
	if s := r.breaker(t, fltOpSearch).State; s != "open" {
		t.Fatalf("breaker %s", s)
	}
	if err := r.proxy.Heal(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*fltOpenTimeout, func() error {
		if s := r.breaker(t, fltOpSearch).State; s != "half-open" {
			return fmt.Errorf("breaker %s", s)
		}
		return nil
	})
	r.search(t).Data(t, nil)
	if s := r.breaker(t, fltOpSearch).State; s != "closed" {
		t.Fatalf("breaker %s after the trial", s)
	}
	t.Logf("RESULT | flapping (2 ok / 2 × 500) | 200 ×6, 502 ×6 | 6 at the store, 12 at the proxy | opens on call 12 (ratio 6/12) | — | closed by the first trial |")
	r.finish(t)
}

// A short 503 burst is what retries are for: a read that meets one 503
// is sent again and the app sees 200; the breaker never opens. The
// username check is a POST and is never retried: it answers 502.
func TestFaultsShort503BurstIsRetried(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	r := fltStart(t, store, idp, nil)
	proxied, stored := r.proxy.Stats().Requests, r.store.Counts(t)[fltStoreSearch]
	const n = 2 * fltThreshold
	for range n {
		if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Status(http.StatusServiceUnavailable).Times(1)); err != nil {
			t.Fatal(err)
		}
		r.search(t).Data(t, nil)
	}
	if d := r.store.Counts(t)[fltStoreSearch] - stored; d != n {
		t.Fatalf("%d searches reached the store, want %d", d, n)
	}
	// Each search: the 503, its retry, and the live-stream call.
	if d := r.proxy.Stats().Requests - proxied; d != 3*n {
		t.Fatalf("%d requests reached the proxy, want %d", d, 3*n)
	}
	if got := fltRetries(t, r.gw, fltOpSearch); got != n {
		t.Fatalf("%v retries, want %d", got, n)
	}
	if b := r.breaker(t, fltOpSearch); b.State != "closed" || b.ConsecutiveFailures != 0 {
		t.Fatalf("search breaker after %d absorbed 503s: %+v", n, b)
	}
	t.Logf("RESULT | 503 burst of 1 per search ×%d | 200 (retried once) | %d at the store, %d search attempts at the proxy | never opens (consecutive failures never > 1) | — | — |", n, n, 2*n)

	proxied = r.proxy.Stats().Requests
	if err := r.proxy.SetPath(contract.PathUsernameCheck, faultproxy.Status(http.StatusServiceUnavailable).Times(1)); err != nil {
		t.Fatal(err)
	}
	check := func() *Response {
		return r.gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(r.token), JSONBody(`{"username":"johndoe123"}`))
	}
	fltFailure(t, check(), http.StatusBadGateway, "en")
	if d := r.proxy.Stats().Requests - proxied; d != 1 {
		t.Fatalf("the username check made %d attempts, want 1 (a POST is never retried)", d)
	}
	check().Data(t, nil)
	if got := fltRetries(t, r.gw, fltOpUsername); got != 0 {
		t.Fatalf("%v username-check retries", got)
	}
	r.finish(t)
}
