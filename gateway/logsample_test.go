package gateway

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/devidp"
)

func TestFailureLogSamplerBoundsEachOperationAndOutcome(t *testing.T) {
	var l failureLogSampler
	t0 := time.Unix(1_800_000_000, 0)
	for i := range failureLogBurst {
		if ok, s := l.allow("search", "breaker_open", t0.Add(time.Duration(i)*time.Millisecond)); !ok || s != 0 {
			t.Fatalf("line %d: allowed %v, suppressed %d", i, ok, s)
		}
	}
	for i := range 100 {
		if ok, _ := l.allow("search", "breaker_open", t0.Add(500*time.Millisecond)); ok {
			t.Fatalf("line %d beyond the burst was allowed", failureLogBurst+i)
		}
	}
	// Another operation, another outcome: their own budgets.
	if ok, _ := l.allow("userById", "breaker_open", t0); !ok {
		t.Fatal("another operation was suppressed")
	}
	if ok, _ := l.allow("search", "timeout", t0); !ok {
		t.Fatal("another outcome was suppressed")
	}
	// The next second: allowed again, carrying the count.
	ok, s := l.allow("search", "breaker_open", t0.Add(time.Second))
	if !ok || s != 100 {
		t.Fatalf("next second: allowed %v, suppressed %d, want true, 100", ok, s)
	}
	if _, s := l.allow("search", "breaker_open", t0.Add(time.Second)); s != 0 {
		t.Fatalf("the count was reported twice: %d", s)
	}
}

// A count that no later line takes is reported on its own once its second
// is over, and a count a line took is not reported again.
func TestFailureLogSamplerReportsACountNoLineTook(t *testing.T) {
	l, reports, now := timeoutsOverTheBurst()
	select {
	case r := <-reports:
		if r != "search timeout 3" {
			t.Fatalf("reported %q, want search timeout 3", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the count of the lines left out was never reported")
	}

	// The next second's first line takes the count before the timer
	// fires (its time is given, not awaited): the timer reports nothing.
	// The timer fires at the end of the real second, so this phase starts
	// at the beginning of one, for all of it to run before.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 5*time.Millisecond)))
	now = time.Now()
	for range failureLogBurst + 2 {
		l.allow("search", "breaker_open", now)
	}
	if ok, s := l.allow("search", "breaker_open", now.Add(time.Second)); !ok || s != 2 {
		t.Fatalf("next second: allowed %v, suppressed %d, want true, 2", ok, s)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		l.mu.Lock()
		pending := l.keys[failureKey{"search", "breaker_open"}].reporting
		l.mu.Unlock()
		if !pending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the timer never fired")
		}
	}
	select {
	case r := <-reports:
		t.Fatalf("a count already logged was reported again: %q", r)
	default:
	}
}

// The counts of failure lines left out that no timer has reported yet are
// logged when the server shuts down, once its last request has ended: the
// process exits right after, and they were lost. So after Shutdown every
// failure is logged or counted.
func TestShutdownReportsTheFailureLinesLeftOut(t *testing.T) {
	s, logs, idp := edgeServerWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError) // the store is down
	}))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if ok, _ := s.auth.Ready(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the verifier never loaded the keys")
		}
	}
	tok, err := idp.Mint(devidp.MintClaims{Subject: "2f1b6c3e-8f7a-4d2b-9c1e-5a6b7c8d9e0f", Roles: []string{"user"},
		ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// The failures start with a second, so that the timers, which report
	// at its end, have not fired when Shutdown returns.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 5*time.Millisecond)))
	const requests = 3 * failureLogBurst
	for range requests {
		if a := edgeDo(t, s, http.MethodGet, "/api/v2/users/search?query=ali", "Authorization", "Bearer "+tok); a.status < 500 {
			t.Fatalf("search against a failing store: %d %s", a.status, a.body)
		}
	}
	if !s.Shutdown(5 * time.Second) {
		t.Fatal("not drained")
	}
	logged, suppressed := 0, 0
	for _, l := range logs.lines("upstream failure") {
		logged++
		if n, ok := l["suppressed"].(float64); ok {
			suppressed += int(n)
		}
	}
	for _, l := range logs.lines("upstream failure lines suppressed") {
		suppressed += int(l["suppressed"].(float64))
	}
	if logged+suppressed != requests {
		t.Fatalf("after Shutdown: %d failure lines logged and %d counted as left out, for %d failed searches", logged, suppressed, requests)
	}
}

// stop reports at once the counts waiting for their timer; a timer that
// fires after it reports nothing, and every later line is logged.
func TestFailureLogSamplerStopReportsWhatWaits(t *testing.T) {
	l, reports, now := timeoutsOverTheBurst()
	l.stop()
	select {
	case r := <-reports:
		if r != "search timeout 3" {
			t.Fatalf("reported %q, want search timeout 3", r)
		}
	default:
		t.Fatal("stop did not report the count waiting for its timer")
	}
	l.flush(failureKey{"search", "timeout"}) // as the timer does, after stop
	select {
	case r := <-reports:
		t.Fatalf("a timer reported %q after stop", r)
	default:
	}
	for i := range failureLogBurst + 1 {
		if ok, s := l.allow("search", "timeout", now); !ok || s != 0 {
			t.Fatalf("line %d after stop: allowed %v, suppressed %d", i, ok, s)
		}
	}
}

// timeoutsOverTheBurst is a sampler whose reports go to the channel, after
// three search timeouts more than the burst in the second of now.
func timeoutsOverTheBurst() (l *failureLogSampler, reports chan string, now time.Time) {
	reports = make(chan string, 10)
	l = &failureLogSampler{report: func(op, outcome string, n uint64) {
		reports <- fmt.Sprint(op, " ", outcome, " ", n)
	}}
	now = time.Now()
	for range failureLogBurst + 3 {
		l.allow("search", "timeout", now)
	}
	return l, reports, now
}

// During an outage every failure beyond the burst is only counted: one
// timer a second reports the count, not one per line left out (thousands
// a second). allow then allocates nothing. (A timer that fires during the
// measurement, and the one made after it, are far below one allocation a
// call on average.)
func TestFailureLogSamplerOneTimerASecond(t *testing.T) {
	l, _, now := timeoutsOverTheBurst()
	if allocs := testing.AllocsPerRun(100, func() { l.allow("search", "timeout", now) }); allocs != 0 {
		t.Fatalf("a line left out allocates %v times: a timer each, want one a second", allocs)
	}
	l.stop()
}
