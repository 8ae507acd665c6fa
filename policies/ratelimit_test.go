package policies_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/policies"
)

var t0 = time.Date(2026, 5, 22, 16, 0, 0, 0, time.UTC)

func limited(t *testing.T, doc string) *policies.Policy {
	t.Helper()
	return compile(t, doc).For(clientctx.PlatformWeb)
}

func TestAllowUserSpendsAndRefills(t *testing.T) {
	web := limited(t, `web: {rateLimits: {perUser: {rate: 1, burst: 3}}}`)
	l := policies.NewLimiter(1000)
	for i, want := range []int{2, 1, 0} {
		v := l.AllowUser(web, "alice", t0)
		if !v.Allowed || v.Remaining != want || v.Limit != 3 || v.Kind != "perUser" {
			t.Fatalf("request %d: %+v", i, v)
		}
	}
	v := l.AllowUser(web, "alice", t0)
	if v.Allowed || v.RetryAfter != time.Second || v.Remaining != 0 || v.Reset != 3*time.Second {
		t.Fatalf("over the limit: %+v", v)
	}
	h := headers{}
	v.Headers(h.set)
	want := headers{"RateLimit-Limit": "3", "RateLimit-Remaining": "0", "RateLimit-Reset": "3", "Retry-After": "1"}
	if len(h) != len(want) {
		t.Fatalf("headers %v", h)
	}
	for k, val := range want {
		if h[k] != val {
			t.Errorf("%s = %q, want %q", k, h[k], val)
		}
	}

	// Half a token later: still refused, and Retry-After rounds up to 1.
	v = l.AllowUser(web, "alice", t0.Add(500*time.Millisecond))
	if v.Allowed || v.RetryAfter != 500*time.Millisecond {
		t.Fatalf("half refilled: %+v", v)
	}
	h = headers{}
	v.Headers(h.set)
	if h["Retry-After"] != "1" {
		t.Fatalf("Retry-After %q", h["Retry-After"])
	}
	// One token later: allowed again, and only once.
	if v = l.AllowUser(web, "alice", t0.Add(time.Second)); !v.Allowed || v.Remaining != 0 {
		t.Fatalf("refilled: %+v", v)
	}
	if v = l.AllowUser(web, "alice", t0.Add(time.Second)); v.Allowed {
		t.Fatalf("second after refill: %+v", v)
	}
	// A long pause refills to the burst, never beyond.
	if v = l.AllowUser(web, "alice", t0.Add(time.Hour)); !v.Allowed || v.Remaining != 2 {
		t.Fatalf("after an hour: %+v", v)
	}
	h = headers{}
	v.Headers(h.set)
	if _, ok := h["Retry-After"]; ok || h["RateLimit-Reset"] != "1" {
		t.Fatalf("allowed headers %v", h)
	}
	// Another user has its own bucket.
	if v = l.AllowUser(web, "bob", t0); !v.Allowed || v.Remaining != 2 {
		t.Fatalf("bob: %+v", v)
	}
}

func TestBucketsAreKeyedByKindAndKey(t *testing.T) {
	set := compile(t, `all: {rateLimits: {perIP: {rate: 1, burst: 1}, perUser: {rate: 1, burst: 1}, perDevice: {rate: 1, burst: 1}}}`)
	web, ios := set.For(clientctx.PlatformWeb), set.For(clientctx.PlatformIOS)
	l := policies.NewLimiter(1000)
	ip := netip.MustParseAddr("198.51.100.7")
	if !l.AllowIP(web, ip, t0).Allowed || l.AllowIP(web, ip, t0).Allowed {
		t.Fatal("perIP burst 1")
	}
	if v := l.AllowIP(web, ip, t0); v.Kind != "perIP" {
		t.Fatalf("kind %q", v.Kind)
	}
	if l.AllowIP(ios, ip, t0).Allowed {
		t.Fatal("switching X-Platform gave the same IP a fresh per-IP budget")
	}
	if !l.AllowIP(web, netip.MustParseAddr("198.51.100.8"), t0).Allowed {
		t.Fatal("another IP has its own bucket")
	}
	if !l.AllowUser(web, "198.51.100.7", t0).Allowed {
		t.Fatal("a user named like the IP has its own bucket")
	}
	if !l.AllowDevice(web, "198.51.100.7", t0).Allowed {
		t.Fatal("perDevice is its own kind")
	}
	if v := l.AllowDevice(web, "198.51.100.7", t0); v.Allowed || v.Kind != "perDevice" {
		t.Fatalf("device twice: %+v", v)
	}
	// IPv4-mapped IPv6 is the same client as IPv4.
	if l.AllowIP(web, netip.MustParseAddr("::ffff:198.51.100.7"), t0).Allowed {
		t.Fatal("mapped address escaped the IPv4 bucket")
	}
	// IPv6 shares a bucket per /64.
	if !l.AllowIP(web, netip.MustParseAddr("2001:db8:1:2::1"), t0).Allowed {
		t.Fatal("first v6")
	}
	if l.AllowIP(web, netip.MustParseAddr("2001:db8:1:2:ffff::9"), t0).Allowed {
		t.Fatal("same /64 must share the bucket")
	}
	if !l.AllowIP(web, netip.MustParseAddr("2001:db8:1:3::1"), t0).Allowed {
		t.Fatal("another /64 has its own bucket")
	}
}

func TestLimitOffAndEmptyKeys(t *testing.T) {
	web := limited(t, `web: {rateLimits: {perUser: {rate: 0}}}`)
	l := policies.NewLimiter(100)
	for range 1000 {
		if v := l.AllowUser(web, "alice", t0); !v.Allowed || v.Limit != 0 {
			t.Fatalf("off limit: %+v", v)
		}
	}
	if v := l.AllowDevice(web, "", t0); !v.Allowed || v.Limit != 0 {
		t.Fatalf("empty device: %+v", v)
	}
	if v := l.AllowIP(nil, netip.MustParseAddr("192.0.2.1"), t0); !v.Allowed {
		t.Fatalf("nil policy: %+v", v)
	}
	if got := l.Stats().Keys; got != 0 {
		t.Fatalf("%d buckets for limits that do not apply", got)
	}
	h := headers{}
	policies.Verdict{Allowed: true}.Headers(h.set)
	if len(h) != 0 {
		t.Fatalf("no limit, no headers: %v", h)
	}
}

func TestAuthFailuresStopAnIPBeforeVerification(t *testing.T) {
	web := limited(t, `web: {rateLimits: {authFailures: {rate: 0.5, burst: 3}}}`)
	l := policies.NewLimiter(1000)
	ip := netip.MustParseAddr("203.0.113.9")

	v := l.AuthFailuresExhausted(web, ip, t0)
	if !v.Allowed || v.Remaining != 3 || v.Kind != "authFailures" {
		t.Fatalf("fresh: %+v", v)
	}
	if l.Stats().Keys != 0 {
		t.Fatal("checking must not create a bucket")
	}
	for range 3 {
		l.RecordAuthFailure(web, ip, t0)
	}
	v = l.AuthFailuresExhausted(web, ip, t0)
	if v.Allowed || v.RetryAfter != 2*time.Second {
		t.Fatalf("after 3 failures: %+v", v)
	}
	// Checking does not spend: the same answer again, and other IPs pass.
	if v2 := l.AuthFailuresExhausted(web, ip, t0); v2 != v {
		t.Fatalf("check spent something: %+v then %+v", v, v2)
	}
	if !l.AuthFailuresExhausted(web, netip.MustParseAddr("203.0.113.10"), t0).Allowed {
		t.Fatal("another IP")
	}
	// The budget comes back at 0.5 per second.
	if !l.AuthFailuresExhausted(web, ip, t0.Add(2*time.Second)).Allowed {
		t.Fatal("one failure allowed again after 2s")
	}
	off := limited(t, `web: {rateLimits: {authFailures: {rate: 0}}}`)
	l.RecordAuthFailure(off, ip, t0)
	if !l.AuthFailuresExhausted(off, ip, t0).Allowed {
		t.Fatal("off limit")
	}
}

func TestLiveLimitChange(t *testing.T) {
	before := limited(t, `web: {rateLimits: {perUser: {rate: 1, burst: 10}}}`)
	after := limited(t, `web: {rateLimits: {perUser: {rate: 100, burst: 2}}}`)
	l := policies.NewLimiter(1000)
	for range 3 {
		l.AllowUser(before, "alice", t0)
	}
	// Reload: the bucket (7 tokens) is capped at the new burst at once.
	v := l.AllowUser(after, "alice", t0)
	if !v.Allowed || v.Limit != 2 || v.Remaining != 1 {
		t.Fatalf("after reload: %+v", v)
	}
	l.AllowUser(after, "alice", t0)
	if v = l.AllowUser(after, "alice", t0); v.Allowed {
		t.Fatalf("new burst spent: %+v", v)
	}
	// And refills at the new rate: one token per 10ms.
	if v = l.AllowUser(after, "alice", t0.Add(10*time.Millisecond)); !v.Allowed {
		t.Fatalf("new rate: %+v", v)
	}
	// Back to the old limits: the bucket grows back towards 10 at 1/s.
	if v = l.AllowUser(before, "alice", t0.Add(10*time.Millisecond+5*time.Second)); !v.Allowed || v.Remaining != 4 || v.Limit != 10 {
		t.Fatalf("back: %+v", v)
	}
}

func TestKeysAreCopied(t *testing.T) {
	web := limited(t, `web: {rateLimits: {perUser: {rate: 1, burst: 5}}}`)
	l := policies.NewLimiter(100)
	buf := []byte("alice")
	borrowed := unsafe.String(unsafe.SliceData(buf), len(buf)) // as a zero-copy server hands it over
	l.AllowUser(web, borrowed, t0)
	copy(buf, "mallo") // the server reuses its buffer
	if v := l.AllowUser(web, "alice", t0); v.Remaining != 3 {
		t.Fatalf("alice lost her bucket: %+v", v)
	}
}

func TestMemoryIsBoundedUnderAFlood(t *testing.T) {
	web := limited(t, `web: {rateLimits: {perUser: {rate: 1, burst: 5}, perIP: {rate: 1, burst: 5}}}`)
	const maxKeys = 1024
	l := policies.NewLimiter(maxKeys)
	// A steady client spends its burst and keeps asking during the flood.
	for range 5 {
		l.AllowUser(web, "steady", t0)
	}
	for i := range 50000 {
		now := t0.Add(time.Duration(i) * time.Microsecond)
		l.AllowUser(web, fmt.Sprintf("attacker-%d", i), now)
		l.AllowIP(web, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
		if i%100 == 0 {
			l.AllowUser(web, "steady", now)
		}
	}
	s := l.Stats()
	if s.Keys > maxKeys || s.MaxKeys != maxKeys {
		t.Fatalf("stats %+v", s)
	}
	if want := uint64(100001 - maxKeys); s.Evictions < want-uint64(maxKeys) || s.Evictions > want {
		t.Fatalf("evictions %d, want about %d", s.Evictions, want)
	}
	// The steady client was used recently all along, so its empty bucket
	// survived: it is still refused.
	if v := l.AllowUser(web, "steady", t0.Add(50*time.Millisecond)); v.Allowed {
		t.Fatalf("the flood reset an active client's bucket: %+v", v)
	}
}

func TestEvictionPrefersRefilledBuckets(t *testing.T) {
	slow := limited(t, `web: {rateLimits: {perUser: {rate: 0.001, burst: 10}}}`)
	fast := limited(t, `web: {rateLimits: {perUser: {rate: 1000, burst: 10}}}`)
	l := policies.NewLimiter(64) // one shard of 64
	l.AllowUser(slow, "slow", t0)
	l.AllowUser(slow, "slow", t0) // 8 left, full again only after 2000s
	for i := range 63 {
		l.AllowUser(fast, fmt.Sprint("fast-", i), t0) // full again after 1ms
	}
	// "slow" is the least recently used, but it still remembers something;
	// the refilled bucket just above it goes instead.
	l.AllowUser(fast, "newcomer", t0.Add(time.Second))
	if s := l.Stats(); s.Evictions != 1 || s.Keys != 64 {
		t.Fatalf("stats %+v", s)
	}
	if v := l.AllowUser(slow, "slow", t0.Add(time.Second)); v.Remaining != 7 {
		t.Fatalf("slow lost its state: %+v", v)
	}

	// When nothing has refilled, the least recently used goes.
	l = policies.NewLimiter(64)
	for i := range 64 {
		l.AllowUser(slow, fmt.Sprint("u", i), t0)
	}
	l.AllowUser(slow, "newcomer", t0)
	if v := l.AllowUser(slow, "u0", t0); v.Remaining != 9 {
		t.Fatalf("u0 should have been evicted and start full: %+v", v)
	}
	if v := l.AllowUser(slow, "u1", t0); v.Remaining != 9 {
		t.Fatalf("u1 (now least recently used) should have made room for u0: %+v", v)
	}
	if v := l.AllowUser(slow, "u63", t0); v.Remaining != 8 {
		t.Fatalf("u63 kept: %+v", v)
	}
}

func TestConcurrentClientsNeverOverspend(t *testing.T) {
	web := limited(t, `web: {rateLimits: {perUser: {rate: 1, burst: 100}, perIP: {rate: 10, burst: 20}}}`)
	l := policies.NewLimiter(256)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				if l.AllowUser(web, "hot", t0).Allowed {
					allowed.Add(1)
				}
				l.AllowUser(web, fmt.Sprint("g", g, "-", i%300), t0.Add(time.Duration(i)*time.Millisecond))
				l.AllowIP(web, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), t0.Add(time.Duration(i)*time.Millisecond))
				l.RecordAuthFailure(web, netip.AddrFrom4([4]byte{192, 0, 2, byte(g)}), t0)
				l.AuthFailuresExhausted(web, netip.AddrFrom4([4]byte{192, 0, 2, byte(g)}), t0)
			}
		}()
	}
	wg.Wait()
	if got := allowed.Load(); got != 100 {
		t.Fatalf("hot key allowed %d times at one instant, burst is 100", got)
	}
	if s := l.Stats(); s.Keys > 256 {
		t.Fatalf("stats %+v", s)
	}
}

func TestStricter(t *testing.T) {
	none := policies.Verdict{Allowed: true}
	ok5 := policies.Verdict{Allowed: true, Limit: 10, Remaining: 5, Kind: "perIP"}
	ok2 := policies.Verdict{Allowed: true, Limit: 30, Remaining: 2, Kind: "perUser"}
	no1 := policies.Verdict{Limit: 10, RetryAfter: time.Second, Kind: "perIP"}
	no3 := policies.Verdict{Limit: 10, RetryAfter: 3 * time.Second, Kind: "perDevice"}
	tests := []struct{ a, b, want policies.Verdict }{
		{none, ok5, ok5}, {ok5, none, ok5}, {ok5, ok2, ok2}, {ok2, ok5, ok2},
		{ok2, no1, no1}, {no1, ok2, no1}, {no1, no3, no3}, {no3, no1, no3},
	}
	for _, tt := range tests {
		if got := policies.Stricter(tt.a, tt.b); got != tt.want {
			t.Errorf("Stricter(%+v, %+v) = %+v", tt.a, tt.b, got)
		}
	}
}

func TestNewLimiterDefaultsItsBound(t *testing.T) {
	if got := policies.NewLimiter(0).Stats().MaxKeys; got != policies.DefaultMaxKeys {
		t.Fatalf("MaxKeys %d", got)
	}
	if got := policies.NewLimiter(1).Stats().MaxKeys; got != 1 {
		t.Fatalf("MaxKeys %d", got)
	}
}

// An IP that spent its failed-authentication budget and keeps trying is
// refused by AuthFailuresExhausted alone: no failure is recorded any more,
// yet it is the most active client there is. A flood of newcomers must not
// evict its empty bucket before the idle, refilled ones, or the abuser
// gets a fresh budget out of the flood.
func TestEvictionKeepsTheBucketsOfRefusedAbusers(t *testing.T) {
	web := limited(t, `web: {rateLimits: {authFailures: {rate: 0.001, burst: 2}, perUser: {rate: 1000, burst: 10}}}`)
	l := policies.NewLimiter(64) // one shard of 64
	abusers := make([]netip.Addr, 8)
	for i := range abusers {
		abusers[i] = netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)})
		l.RecordAuthFailure(web, abusers[i], t0)
		l.RecordAuthFailure(web, abusers[i], t0)
	}
	for i := range 56 { // other clients, full again 1ms later
		l.AllowUser(web, fmt.Sprint("user-", i), t0)
	}
	t1 := t0.Add(time.Second)
	for _, ip := range abusers { // the abusers keep trying, and are refused
		if v := l.AuthFailuresExhausted(web, ip, t1); v.Allowed {
			t.Fatalf("%v: budget not spent: %+v", ip, v)
		}
	}
	for i := range 8 { // newcomers need room
		l.AllowUser(web, fmt.Sprint("newcomer-", i), t1)
	}
	if s := l.Stats(); s.Evictions != 8 || s.Keys != 64 {
		t.Fatalf("stats %+v", s)
	}
	for _, ip := range abusers {
		if v := l.AuthFailuresExhausted(web, ip, t1); v.Allowed {
			t.Fatalf("%v got a fresh failed-authentication budget from the flood: %+v", ip, v)
		}
	}
}

// Failures that passed the check together are each charged, beyond the
// budget: the IP then waits until its debt is paid.
func TestAuthFailuresBeyondTheBudgetAreOwed(t *testing.T) {
	web := limited(t, `web: {rateLimits: {authFailures: {rate: 1, burst: 2}}}`)
	l := policies.NewLimiter(1000)
	ip := netip.MustParseAddr("203.0.113.9")
	for i := range 4 { // four in flight at once, all checked before any failed
		if !l.AuthFailuresExhausted(web, ip, t0).Allowed {
			t.Fatalf("check %d refused before any failure", i)
		}
	}
	for i, within := range []bool{true, true, false, false} {
		if v := l.RecordAuthFailure(web, ip, t0); v.Allowed != within {
			t.Fatalf("failure %d: %+v, want within the budget %v", i, v, within)
		}
	}
	v := l.AuthFailuresExhausted(web, ip, t0)
	if v.Allowed || v.Remaining != 0 || v.RetryAfter != 3*time.Second || v.Reset != 4*time.Second {
		t.Fatalf("after 4 failures against 2: %+v", v)
	}
	if l.AuthFailuresExhausted(web, ip, t0.Add(2*time.Second)).Allowed {
		t.Fatal("allowed again before the debt was paid")
	}
	if !l.AuthFailuresExhausted(web, ip, t0.Add(3*time.Second)).Allowed {
		t.Fatal("refused after the debt was paid")
	}
}

// The debt of failures beyond the budget stops at one burst: a flood of
// failures in flight from one address (many users behind a carrier's NAT)
// locks it out for at most two bursts' refill, not for as long as the
// flood was wide.
func TestAuthFailureDebtStopsAtOneBurst(t *testing.T) {
	web := limited(t, `web: {rateLimits: {authFailures: {rate: 1, burst: 2}}}`)
	l := policies.NewLimiter(1000)
	ip := netip.MustParseAddr("203.0.113.10")
	for range 100 {
		l.RecordAuthFailure(web, ip, t0)
	}
	v := l.AuthFailuresExhausted(web, ip, t0)
	if v.Allowed || v.RetryAfter != 3*time.Second || v.Reset != 4*time.Second {
		t.Fatalf("after 100 failures against 2: %+v, want a debt of one burst (retry in 3 s, full in 4 s)", v)
	}
	if !l.AuthFailuresExhausted(web, ip, t0.Add(3*time.Second)).Allowed {
		t.Fatal("still refused once one burst of debt was paid")
	}
}

// A rate so slow that a token takes longer than a time.Duration can hold
// (about 292 years) saturates: the headers say "a very long time", never
// "retry in 1 s" or "full in 0 s", and eviction does not take the bucket
// for refilled.
func TestVerySlowRatesSaturate(t *testing.T) {
	web := limited(t, `web: {rateLimits: {perUser: {rate: 1e-10, burst: 2}}}`)
	l := policies.NewLimiter(64) // one shard of 64
	// After the limiter's creation, as every real request is (t0 is before).
	t0 := time.Now().Add(time.Hour)
	l.AllowUser(web, "alice", t0)
	l.AllowUser(web, "alice", t0)
	v := l.AllowUser(web, "alice", t0)
	if v.Allowed {
		t.Fatalf("third request: %+v", v)
	}
	h := headers{}
	v.Headers(h.set)
	for _, name := range []string{"Retry-After", "RateLimit-Reset"} {
		if secs, err := strconv.ParseInt(h[name], 10, 64); err != nil || secs < 9e9 {
			t.Errorf("%s %q, want the longest wait a duration holds (about 9.2e9 s)", name, h[name])
		}
	}

	// alice is the least recently used of a full shard whose other buckets
	// have all refilled: one of them goes, not her empty bucket.
	fast := limited(t, `web: {rateLimits: {perUser: {rate: 1000, burst: 10}}}`)
	for i := range 63 {
		l.AllowUser(fast, fmt.Sprint("u", i), t0) // full again 1ms later
	}
	l.AllowUser(fast, "newcomer", t0.Add(time.Second))
	if v := l.AllowUser(web, "alice", t0.Add(time.Second)); v.Allowed {
		t.Fatalf("alice's empty bucket was evicted as if it had refilled: %+v", v)
	}
}

// Callers read the clock before they take the bucket's lock, so a request
// may reach the bucket with an earlier time than the one before it: that
// time earns nothing, and costs nothing either.
func TestEarlierTimeNeitherEarnsNorCosts(t *testing.T) {
	web := limited(t, `web: {rateLimits: {perUser: {rate: 1, burst: 2}}}`)
	l := policies.NewLimiter(1000)
	if v := l.AllowUser(web, "alice", t0); !v.Allowed || v.Remaining != 1 {
		t.Fatalf("first: %+v", v)
	}
	if v := l.AllowUser(web, "alice", t0.Add(-time.Millisecond)); !v.Allowed || v.Remaining != 0 {
		t.Fatalf("second, read a millisecond earlier: %+v", v)
	}
	if v := l.AllowUser(web, "alice", t0.Add(-time.Second)); v.Allowed {
		t.Fatalf("third, a second earlier, found a token: %+v", v)
	}
	// The bucket's own time did not move back: a second after t0 earns
	// one token, no more.
	if v := l.AllowUser(web, "alice", t0.Add(time.Second)); !v.Allowed || v.Remaining != 0 {
		t.Fatalf("a second later: %+v", v)
	}
}

// Reset and Retry-After round up to whole seconds, so a client that waits
// as told is never early; Retry-After is at least 1 on every refusal.
func TestVerdictHeadersRoundUp(t *testing.T) {
	h := headers{}
	policies.Verdict{Limit: 3, Reset: 1500 * time.Millisecond, RetryAfter: 1500 * time.Millisecond}.Headers(h.set)
	if h["RateLimit-Reset"] != "2" || h["Retry-After"] != "2" {
		t.Fatalf("1.5s: %v", h)
	}
	h = headers{}
	policies.Verdict{Limit: 3, Allowed: true, Remaining: 2, Reset: time.Nanosecond}.Headers(h.set)
	if h["RateLimit-Reset"] != "1" {
		t.Fatalf("1ns: %v", h)
	}
	h = headers{}
	policies.Verdict{Limit: 3}.Headers(h.set)
	if h["Retry-After"] != "1" || h["RateLimit-Reset"] != "0" {
		t.Fatalf("refused with no wait: %v", h)
	}
}

// A client refused by a limit that then pauses drifts to the least
// recently used end. A flood of newcomers, each a token into its own
// bucket, must not push its empty bucket out while theirs would refill
// sooner: eviction would hand it a fresh budget (the binary, flooded with
// 120,000 addresses through a trusted proxy, lifted an authFailures
// lockout and a spent perIP budget that way).
func TestEvictionKeepsAnIdleExhaustedBucketFromAFlood(t *testing.T) {
	web := limited(t, `web: {rateLimits: {authFailures: {rate: 0.01, burst: 3}, perIP: {rate: 0.01, burst: 3}}}`)
	l := policies.NewLimiter(64) // one shard of 64
	victim := netip.MustParseAddr("203.0.113.9")
	for range 3 {
		l.RecordAuthFailure(web, victim, t0)
		l.AllowIP(web, victim, t0)
	}
	if v := l.AllowIP(web, victim, t0); v.Allowed {
		t.Fatalf("perIP budget not spent: %+v", v)
	}
	// The victim's two buckets are full again 300 s after t0; each
	// newcomer's, 100 s after its request.
	for i := range 1000 {
		now := t0.Add(time.Second + time.Duration(i)*time.Millisecond)
		l.AllowIP(web, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), now)
	}
	t1 := t0.Add(2 * time.Second)
	if v := l.AuthFailuresExhausted(web, victim, t1); v.Allowed {
		t.Fatalf("the flood lifted the victim's failed-authentication lockout: %+v", v)
	}
	if v := l.AllowIP(web, victim, t1); v.Allowed {
		t.Fatalf("the flood gave the victim a fresh perIP budget: %+v", v)
	}
}

// Eviction looks at the 8 least recently used buckets and no further, so
// that a full table costs a bounded scan per new key: with those 8 all
// still refilling, the one that refills soonest goes, even when a bucket
// just past them has refilled.
func TestEvictionLooksAtTheEightLeastRecentlyUsedOnly(t *testing.T) {
	slow := limited(t, `web: {rateLimits: {perUser: {rate: 0.001, burst: 10}}}`)
	fast := limited(t, `web: {rateLimits: {perUser: {rate: 1000, burst: 10}}}`)
	l := policies.NewLimiter(64) // one shard of 64
	// Full again 1000 s after their request, u0 first.
	for i := range 8 {
		l.AllowUser(slow, fmt.Sprint("u", i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	l.AllowUser(fast, "fast", t0.Add(10*time.Millisecond)) // full again 1 ms later
	for i := range 55 {
		l.AllowUser(slow, fmt.Sprint("recent-", i), t0.Add(20*time.Millisecond))
	}
	t1 := t0.Add(time.Second)
	l.AllowUser(slow, "newcomer", t1)
	if s := l.Stats(); s.Evictions != 1 || s.Keys != 64 {
		t.Fatalf("stats %+v", s)
	}
	if v := l.AllowUser(slow, "u1", t1); v.Remaining != 8 {
		t.Fatalf("u1 lost its state: %+v", v)
	}
	if v := l.AllowUser(slow, "u0", t1); v.Remaining != 9 {
		t.Fatalf("u0, the 8 least recently used's soonest refilled, was kept (a bucket past them evicted instead): %+v", v)
	}
}

// A shard of fewer than 8 buckets is scanned whole, and no further: with
// none of them refilled, the one that refills soonest goes, not the least
// recently used.
func TestEvictionInAShardOfFewerThanEight(t *testing.T) {
	slow := limited(t, `web: {rateLimits: {perUser: {rate: 0.001, burst: 10}}}`)
	l := policies.NewLimiter(3) // one shard of 3
	l.AllowUser(slow, "a", t0)  // the least recently used, 2 tokens short
	l.AllowUser(slow, "a", t0)
	l.AllowUser(slow, "b", t0.Add(time.Millisecond)) // 1 short: the soonest refilled
	l.AllowUser(slow, "c", t0.Add(2*time.Millisecond))
	l.AllowUser(slow, "newcomer", t0.Add(time.Second))
	if s := l.Stats(); s.Evictions != 1 || s.Keys != 3 {
		t.Fatalf("stats %+v", s)
	}
	if v := l.AllowUser(slow, "c", t0.Add(time.Second)); v.Remaining != 8 {
		t.Fatalf("c lost its state: %+v", v)
	}
	if v := l.AllowUser(slow, "a", t0.Add(time.Second)); v.Remaining != 7 {
		t.Fatalf("a lost its state: %+v", v)
	}
}
