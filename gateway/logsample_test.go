package gateway

import (
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
