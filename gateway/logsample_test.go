package gateway

import (
	"fmt"
	"testing"
	"time"
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
	reports := make(chan string, 10)
	l := failureLogSampler{report: func(op, outcome string, n uint64) {
		reports <- fmt.Sprint(op, " ", outcome, " ", n)
	}}
	now := time.Now()
	for range failureLogBurst + 3 {
		l.allow("search", "timeout", now)
	}
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
