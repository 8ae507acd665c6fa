package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/faultproxy"
	"github.com/bffgate/edge/upstream/refstore"
)

// Live streams are an enrichment: when their look-up fails, or its breaker
// is open, search and /me still answer 200 with liveStream null and
// X-Partial-Response: liveStream, and are never cached. The core call
// failing is still an error.
func TestFaultsLiveStreamFaultsDegrade(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	// The core calls get twice the live-stream timeout: only the
	// live-stream look-up is under test, and a core call cut is a 504, not
	// a partial answer.
	core := (2 * fltOpTimeout).String()
	r := fltStart(t, store, idp, map[string]string{
		fltOpKey("SEARCH", "TIMEOUT"):   core,
		fltOpKey("USERBYID", "TIMEOUT"): core,
	})

	// Healthy, the demo user is live: the null below means something.
	var page fltPage
	resp := r.search(t)
	resp.Data(t, &page)
	if resp.Header.Get("X-Partial-Response") != "" || !fltDemoLive(page) {
		t.Fatalf("healthy search: partial %q, page %s", resp.Header.Get("X-Partial-Response"), resp.Body)
	}

	if err := r.proxy.SetPath(contract.PathLiveStreams, faultproxy.Status(http.StatusInternalServerError)); err != nil {
		t.Fatal(err)
	}
	before := r.store.Counts(t)
	proxied := r.proxy.Stats().Requests
	// Each search and /me makes one live-stream call: it fails, and after
	// three the live-stream breaker is open; answers stay 200 throughout.
	for i := range 8 {
		if i%2 == 0 {
			fltPartialSearch(t, r)
		} else {
			fltPartialMe(t, r)
		}
		if i == fltThreshold-1 {
			if s := r.breaker(t, fltOpLive).State; s != "open" {
				t.Fatalf("live-stream breaker %s after %d failures", s, fltThreshold)
			}
		}
	}
	after := r.store.Counts(t)
	if d := after[fltStoreLive] - before[fltStoreLive]; d != 0 {
		t.Fatalf("%d live-stream calls reached the store (the proxy failed them)", d)
	}
	if d := r.proxy.Stats().Requests - proxied; d != 8+fltThreshold {
		// 8 core calls forwarded, and only the 3 live-stream calls before
		// the breaker opened.
		t.Fatalf("%d requests reached the proxy, want %d", d, 8+fltThreshold)
	}
	for _, op := range []string{fltOpSearch, fltOpUser} {
		if b := r.breaker(t, op); b.State != "closed" || b.Failures != 0 {
			t.Fatalf("%s breaker: %+v", op, b)
		}
	}
	t.Logf("RESULT | live streams fail (500), search and /me ×8 | 200, liveStream null, X-Partial-Response: liveStream | 8 core calls at the store, 3 live-stream calls at the proxy, 0 at the store | liveStreams opens after %d; search and userById stay closed | — | — |", fltThreshold)

	// A slow live-stream look-up is cut at its own timeout, the answer is
	// still 200 and partial.
	if err := r.proxy.Heal(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*fltOpenTimeout, func() error {
		resp := r.search(t)
		resp.Data(t, &page)
		if resp.Header.Get("X-Partial-Response") != "" || !fltDemoLive(page) {
			return fmt.Errorf("still partial")
		}
		return nil
	})
	// Slower than the request's deadline (3s), so only the live-stream
	// timeout can make the answer partial; the proxy stops waiting when the
	// gateway hangs up. A cut at that timeout counts against the breaker,
	// one at the request's deadline would not: the count tells which cut
	// it, however long a busy machine takes to answer.
	if err := r.proxy.SetPath(contract.PathLiveStreams, faultproxy.Delay(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	live := r.breaker(t, fltOpLive)
	fltPartialSearch(t, r)
	if b := r.breaker(t, fltOpLive); b.State != "closed" || b.Failures != live.Failures+1 {
		t.Fatalf("live-stream breaker %+v after a slow look-up, before %+v: not cut at its own timeout", b, live)
	}
	fltPartialMe(t, r)

	// The core call failing is an error, enrichment or not.
	if err := r.proxy.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Status(http.StatusInternalServerError).Times(1)); err != nil {
		t.Fatal(err)
	}
	fltFailure(t, r.search(t), http.StatusBadGateway, "en")
	// /me's core call is the user by id; searches keep forwarding.
	if err := r.proxy.SetPath(contract.PathUserPrefix, faultproxy.Status(http.StatusInternalServerError).Times(1)); err != nil {
		t.Fatal(err)
	}
	fltFailure(t, r.me(t, Lang("tr")), http.StatusBadGateway, "tr")
	r.me(t).Data(t, nil)
	r.finish(t)
}

// fltDemoLive reports whether the page has the demo user with a live
// stream.
func fltDemoLive(p fltPage) bool {
	for _, it := range p.Items {
		if it.ID == refstore.DemoUserID {
			return len(it.LiveStream) > 0 && string(it.LiveStream) != "null"
		}
	}
	return false
}

// fltPartialSearch checks a 200 search with every liveStream null, marked
// partial and not cacheable.
func fltPartialSearch(t testing.TB, r *fltRig) *Response {
	t.Helper()
	resp := r.search(t)
	fltCheckPartialSearch(t, resp)
	return resp
}

// fltCheckPartialSearch is fltPartialSearch's check of an answer already
// received.
func fltCheckPartialSearch(t testing.TB, resp *Response) {
	t.Helper()
	var page fltPage
	resp.Data(t, &page)
	fltPartialHeaders(t, resp)
	if len(page.Items) == 0 {
		t.Fatalf("partial search found nothing: %s", resp.Body)
	}
	for _, it := range page.Items {
		if string(it.LiveStream) != "null" {
			t.Fatalf("item %s has liveStream %s in a partial answer", it.ID, it.LiveStream)
		}
	}
}

func fltPartialMe(t testing.TB, r *fltRig) *Response {
	t.Helper()
	var me map[string]json.RawMessage
	resp := r.me(t)
	resp.Data(t, &me)
	fltPartialHeaders(t, resp)
	if string(me["id"]) != `"`+refstore.DemoUserID+`"` {
		t.Fatalf("/me answered %s", resp.Body)
	}
	if ls, ok := me["liveStream"]; !ok || string(ls) != "null" {
		t.Fatalf("/me liveStream %s in a partial answer (present %v)", ls, ok)
	}
	return resp
}

func fltPartialHeaders(t testing.TB, resp *Response) {
	t.Helper()
	if got := resp.Header.Get("X-Partial-Response"); got != "liveStream" {
		t.Fatalf("X-Partial-Response %q, want liveStream", got)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Fatalf("a partial answer with Cache-Control %q", cc)
	}
	if resp.Header.Get("ETag") != "" {
		t.Fatal("a partial answer with an ETag")
	}
}

// More concurrent slow searches than maxInFlight: the excess is refused at
// once with a 503 (no queue), the store sees only the admitted ones, and
// the breaker counts nothing against the store.
func TestFaultsBulkheadRefusesTheExcessFast(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	const maxInFlight, slow = 2, 600 * time.Millisecond
	r := fltStart(t, store, idp, map[string]string{
		fltOpKey("SEARCH", "MAXINFLIGHT"): fmt.Sprint(maxInFlight),
		fltOpKey("SEARCH", "TIMEOUT"):     "2s",
	})
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Delay(slow)); err != nil {
		t.Fatal(err)
	}
	before := r.store.Counts(t)[fltStoreSearch]
	proxied := r.proxy.Stats().Requests
	var wg sync.WaitGroup
	slowResults := make([]*Response, maxInFlight)
	slowErrs := make([]error, maxInFlight)
	for i := range maxInFlight {
		wg.Go(func() { slowResults[i], slowErrs[i] = r.trySearch() })
	}
	// Both slow calls are held at the proxy: the bulkhead is full.
	eventually(t, 5*time.Second, func() error {
		if n := r.proxy.Stats().Requests - proxied; n != maxInFlight {
			return fmt.Errorf("%d calls at the proxy", n)
		}
		return nil
	})
	const excess = 4
	var lat []time.Duration
	for i := range excess {
		lang := []string{"en", "tr"}[i%2]
		resp, d := fltTimed(func() *Response { return r.search(t, Lang(lang)) })
		fltFailure(t, resp, http.StatusServiceUnavailable, lang)
		lat = append(lat, d)
	}
	wg.Wait()
	for i, resp := range slowResults {
		if slowErrs[i] != nil {
			t.Fatalf("slow search: %v", slowErrs[i])
		}
		resp.Data(t, nil)
	}
	// The excess never waited for a slot: each answered well before the
	// slow calls could have freed one.
	for _, d := range lat {
		if d >= slow/2 {
			t.Fatalf("an excess call took %s: it queued behind the %s calls", d, slow)
		}
	}
	if d := r.store.Counts(t)[fltStoreSearch] - before; d != maxInFlight {
		t.Fatalf("%d searches reached the store, want %d", d, maxInFlight)
	}
	if n := fltCalls(t, r.gw, fltOpSearch, "bulkhead_full"); n != excess {
		t.Fatalf("%v calls refused by the bulkhead, want %d", n, excess)
	}
	if b := r.breaker(t, fltOpSearch); b.State != "closed" || b.Failures != 0 {
		t.Fatalf("search breaker: %+v", b)
	}
	t.Logf("RESULT | bulkhead: %d slow calls (%s) + %d more, maxInFlight %d | 200 ×%d; 503 + Retry-After ×%d | %d at the store | never opens | excess answered in median %s | — |",
		maxInFlight, slow, excess, maxInFlight, maxInFlight, excess, maxInFlight, fltMedian(lat).Round(10*time.Microsecond))
	r.finish(t)
}

// A sustained 503 outage with the breaker out of the way (it would stop
// the retries first) and three retries allowed per call: the retry budget
// keeps the attempts that reach the store near the calls made, at most
// calls × (1 + ratio) + minPerSecond × window, instead of 4 × calls.
func TestFaultsRetryBudgetBoundsLoadInAnOutage(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	const (
		ratio        = 0.1
		minPerSecond = 2
		window       = 10 // seconds, upstream.budgetWindow
		calls        = 150
		workers      = 6
	)
	r := fltStart(t, store, idp, map[string]string{
		fltOpKey("SEARCH", "BREAKER__CONSECUTIVEFAILURES"):        "1000000",
		fltOpKey("SEARCH", "BREAKER__FAILURERATIO"):               "0",
		fltOpKey("SEARCH", "RETRY__ATTEMPTS"):                     "3",
		fltOpKey("SEARCH", "RETRY__BASEBACKOFF"):                  "1ms",
		fltOpKey("SEARCH", "RETRY__MAXBACKOFF"):                   "2ms",
		"GATEWAY_UPSTREAMS__USERSTORE__RETRYBUDGET__RATIO":        fmt.Sprint(ratio),
		"GATEWAY_UPSTREAMS__USERSTORE__RETRYBUDGET__MINPERSECOND": fmt.Sprint(minPerSecond),
	})
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Status(http.StatusServiceUnavailable)); err != nil {
		t.Fatal(err)
	}
	proxied := r.proxy.Stats().Requests
	start := time.Now()
	var (
		status  = map[int]int{}
		results = make([]*Response, calls)
		errs    = make([]error, calls)
		wg      sync.WaitGroup
	)
	next := make(chan int, calls)
	for i := range calls {
		next <- i
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for i := range next {
				results[i], errs[i] = r.trySearch(Lang([]string{"en", "tr"}[i%2]))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, resp := range results {
		if errs[i] != nil {
			t.Fatalf("search %d: %v", i, errs[i])
		}
		switch resp.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable:
			fltFailure(t, resp, resp.Status, []string{"en", "tr"}[i%2])
		default:
			t.Errorf("status %d during the outage: %s", resp.Status, resp.Body)
		}
		status[resp.Status]++
	}
	attempts := r.proxy.Stats().Requests - proxied
	// The budget's window is 10 s: a run that a busy machine stretched
	// past it has a budget per window it spans.
	windows := int64(elapsed/(window*time.Second)) + 1
	bound := calls + (int64(calls*ratio)+minPerSecond*window)*windows
	if attempts > bound {
		t.Fatalf("%d attempts for %d calls: over the budget's %d", attempts, calls, bound)
	}
	if attempts <= calls {
		t.Fatalf("%d attempts for %d calls: no retry at all", attempts, calls)
	}
	if status[http.StatusServiceUnavailable] == 0 {
		t.Fatal("no call was refused for want of budget")
	}
	if b := r.breaker(t, fltOpSearch); b.State != "closed" {
		t.Fatalf("breaker %s", b.State)
	}
	t.Logf("RESULT | retry budget: %d calls in a 503 outage, 3 retries allowed, ratio %.1f, minPerSecond %d | 502 ×%d, 503 (budget spent) ×%d | %d attempts at the proxy (bound %d; unbudgeted %d) in %s | breaker kept out | — | — |",
		calls, ratio, minPerSecond, status[http.StatusBadGateway], status[http.StatusServiceUnavailable], attempts, bound, 4*calls, elapsed.Round(time.Millisecond))
	r.finish(t)
}

// The request's overall deadline (server.requestTimeout) bounds what the
// per-call settings would allow: retries stop when the deadline cannot
// hold another backoff and half an attempt, and an attempt whose own
// timeout is longer is cut at the deadline (and not held against the
// store).
func TestFaultsRequestDeadlineBoundsRetriesAndAttempts(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	t.Run("retries", func(t *testing.T) {
		// Five retries 500ms apart would take 2.5s. A retry needs its
		// pause and half an attempt (900ms) left of the 1.8s request: the
		// first attempt may take up to 400ms (a busy machine's slow 503),
		// and a second retry never fits. Every call may use the whole
		// request (at 200ms, a slow 503 was a 504).
		const deadline, backoff = 1800 * time.Millisecond, 500 * time.Millisecond
		env := map[string]string{
			"GATEWAY_SERVER__REQUESTTIMEOUT":                   deadline.String(),
			fltOpKey("SEARCH", "BREAKER__CONSECUTIVEFAILURES"): "1000000",
			fltOpKey("SEARCH", "BREAKER__FAILURERATIO"):        "0",
			fltOpKey("SEARCH", "RETRY__ATTEMPTS"):              "5",
			fltOpKey("SEARCH", "RETRY__BASEBACKOFF"):           backoff.String(),
			fltOpKey("SEARCH", "RETRY__MAXBACKOFF"):            backoff.String(),
		}
		for _, op := range []string{"USERNAMECHECK", "SEARCH", "USERBYID", "LIVESTREAMS"} {
			env[fltOpKey(op, "TIMEOUT")] = deadline.String()
		}
		r := fltStart(t, store, idp, env)
		if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Status(http.StatusServiceUnavailable)); err != nil {
			t.Fatal(err)
		}
		proxied := r.proxy.Stats().Requests
		resp, d := fltTimed(func() *Response { return r.search(t) })
		fltFailure(t, resp, http.StatusBadGateway, "en")
		attempts := r.proxy.Stats().Requests - proxied
		if attempts != 2 {
			t.Fatalf("%d attempts within a %s deadline, want 2 (one retry)", attempts, deadline)
		}
		if d >= 5*backoff {
			t.Fatalf("the call took %s: the deadline did not stop the retries", d)
		}
		t.Logf("RESULT | request deadline %s vs 5 retries %s apart (503s) | 502 after %s | 2 attempts at the proxy (of 6 allowed) | — | — | — |", deadline, backoff, d.Round(time.Millisecond))
		r.finish(t)
	})

	t.Run("sequential calls", func(t *testing.T) {
		// A search is two calls in a row, search then live streams, each
		// allowed 1.2s: together up to 2.4s, but the request has 1.5s. The
		// store takes 800ms to search (400ms within its timeout, so a busy
		// machine does not turn it into a 504) and 3s for live streams: the
		// live streams are cut at the request's deadline, the answer is
		// partial, and the cut is not held against the live-stream breaker.
		const deadline, callTimeout, searchDelay = 1500 * time.Millisecond, 1200 * time.Millisecond, 800 * time.Millisecond
		r := fltStart(t, store, idp, map[string]string{
			"GATEWAY_SERVER__REQUESTTIMEOUT":   deadline.String(),
			fltOpKey("SEARCH", "TIMEOUT"):      callTimeout.String(),
			fltOpKey("LIVESTREAMS", "TIMEOUT"): callTimeout.String(),
		})
		if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Delay(searchDelay)); err != nil {
			t.Fatal(err)
		}
		if err := r.proxy.SetPath(contract.PathLiveStreams, faultproxy.Delay(3*time.Second)); err != nil {
			t.Fatal(err)
		}
		// More than the breaker's threshold, at once.
		const n = fltThreshold + 1
		lat := make([]time.Duration, n)
		results := make([]*Response, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				start := time.Now()
				results[i], errs[i] = r.trySearch()
				lat[i] = time.Since(start)
			})
		}
		wg.Wait()
		for i, resp := range results {
			if errs[i] != nil {
				t.Fatalf("search %d: %v", i, errs[i])
			}
			fltCheckPartialSearch(t, resp)
		}
		for _, d := range lat {
			if d >= searchDelay+callTimeout {
				t.Fatalf("a search took %s: the live-stream call ran to its own timeout, past the %s deadline", d, deadline)
			}
		}
		if b := r.breaker(t, fltOpLive); b.State != "closed" || b.Failures != 0 {
			t.Fatalf("live-stream breaker after %d deadline cuts: %+v", n, b)
		}
		if b := r.breaker(t, fltOpSearch); b.State != "closed" || b.Failures != 0 {
			t.Fatalf("search breaker: %+v", b)
		}
		t.Logf("RESULT | request deadline %s over search (800ms) then live streams (3s), each call allowed %s | 200 partial after median %s | %d searches at the store, %d live-stream calls cut | never opens (the cut is the caller's deadline) | — | — |",
			deadline, callTimeout, fltMedian(lat).Round(time.Millisecond), n, n)
		r.finish(t)
	})
}

// With the read cache on (the shipped default), a live-stream look-up cut
// at the request's deadline still gives the 200 partial answer, as with the
// cache off: the caller waiting on the shared load must not give up at the
// very deadline the load's own live-stream call is cut at, and answer 504
// for a search the store did answer.
func TestFaultsDeadlineCutLiveStreamsIsPartialWithCache(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	const deadline, callTimeout, searchDelay = 1500 * time.Millisecond, 1200 * time.Millisecond, 800 * time.Millisecond
	r := fltStart(t, store, idp, map[string]string{
		"GATEWAY_CACHE__ENABLED":           "true",
		"GATEWAY_SERVER__REQUESTTIMEOUT":   deadline.String(),
		fltOpKey("SEARCH", "TIMEOUT"):      callTimeout.String(),
		fltOpKey("USERBYID", "TIMEOUT"):    callTimeout.String(),
		fltOpKey("LIVESTREAMS", "TIMEOUT"): callTimeout.String(),
	})
	if err := r.proxy.SetPath(contract.PathSearch, faultproxy.Delay(searchDelay)); err != nil {
		t.Fatal(err)
	}
	if err := r.proxy.SetPath(contract.PathUserPrefix, faultproxy.Delay(searchDelay)); err != nil {
		t.Fatal(err)
	}
	if err := r.proxy.SetPath(contract.PathLiveStreams, faultproxy.Delay(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		resp, d := fltTimed(func() *Response { return r.search(t) })
		if resp.Status != http.StatusOK {
			t.Fatalf("search %d: %d after %s, want the 200 partial answer: %s", i, resp.Status, d, resp.Body)
		}
		fltCheckPartialSearch(t, resp)
		if d >= searchDelay+callTimeout {
			t.Fatalf("search %d took %s, past the %s deadline", i, d, deadline)
		}
	}
	// /me: the live stream, in parallel with the profile (800ms), is cut
	// at the deadline too.
	fltPartialMe(t, r)
	r.finish(t)
}
