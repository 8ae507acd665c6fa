package readcache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"go.uber.org/goleak"
)

var ctx = context.Background()

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{Miss: "MISS", Hit: "HIT", Stale: "STALE"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), want)
		}
	}
}

func TestMissThenHitThenExpiry(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	l := &loader{data: `{"id":"1"}`, tags: []string{"user:1"}}
	p := Policy{TTL: time.Minute}

	e, st, err := c.Get(ctx, "k", p, l.load, isFault)
	if err != nil || st != Miss || e.Data() != `{"id":"1"}` {
		t.Fatalf("first Get = %v, %v, %v; want the loaded data as a miss", e, st, err)
	}
	e2, st, err := c.Get(ctx, "k", p, l.load, isFault)
	if err != nil || st != Hit || e2 != e {
		t.Fatalf("second Get = %v, %v; want the same entry as a hit", st, err)
	}
	if got, ok := c.Peek("k"); !ok || got != e {
		t.Fatal("Peek missed a fresh entry")
	}
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("loads = %d, want 1", n)
	}
	if !e.FreshUntil().Equal(e.StoredAt().Add(time.Minute)) {
		t.Errorf("FreshUntil = %v, want StoredAt + TTL", e.FreshUntil())
	}

	clock.Advance(time.Minute) // freshness ends at exactly StoredAt + TTL
	if _, ok := c.Peek("k"); ok {
		t.Fatal("Peek returned an expired entry")
	}
	l.set(`{"id":"1","v":2}`, nil)
	e3, st, err := c.Get(ctx, "k", p, l.load, isFault)
	if err != nil || st != Miss || e3.Data() != `{"id":"1","v":2}` {
		t.Fatalf("Get after expiry = %v, %v; want a new load", st, err)
	}
	s := c.Stats()
	if s.Hits != 2 || s.Misses != 2 || s.StaleServes != 0 || s.Loads != 2 {
		t.Errorf("stats = %+v, want 2 hits, 2 misses, 2 loads", s)
	}
	checkConsistent(t, c)
}

// A lookup never reads an entry as fresh for longer than its own TTL: a
// platform with a shorter TTL reading what another stored for longer (or
// any lookup after a reload shortened the TTL) sees it stale once its own
// TTL has passed since the load, while the longer lookup still hits.
func TestShorterTTLLookupJudgesFreshnessByItsOwn(t *testing.T) {
	for _, c := range []struct {
		name string
		swr  time.Duration
		want Status // the short lookup's answer once its TTL has passed
	}{
		{"stale while revalidating", time.Minute, Stale},
		{"loaded again without a stale window", 0, Miss},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache, clock := newTestCache(t, Options{})
			l := &loader{data: `"v1"`}
			long := Policy{TTL: time.Minute, StaleWhileRevalidate: c.swr}
			short := Policy{TTL: 10 * time.Second, StaleWhileRevalidate: c.swr}
			first, _, err := cache.Get(ctx, "k", long, l.load, isFault)
			if err != nil {
				t.Fatal(err)
			}

			clock.Advance(9 * time.Second)
			if e, st, err := cache.Get(ctx, "k", short, l.load, isFault); err != nil || st != Hit || e != first {
				t.Fatalf("short lookup within its TTL = %v, %v; want a hit", st, err)
			}
			if _, ok := cache.PeekAt("k", clock.Now(), short.TTL); !ok {
				t.Fatal("PeekAt missed an entry fresh for its TTL")
			}

			clock.Advance(time.Second) // 10 s since the load: the short TTL's end
			if _, ok := cache.PeekAt("k", clock.Now(), short.TTL); ok {
				t.Fatal("PeekAt returned an entry stored longer ago than its TTL")
			}
			if e, ok := cache.PeekAt("k", clock.Now(), long.TTL); !ok || e != first {
				t.Fatal("PeekAt with the long TTL missed the entry fresh for it")
			}
			if e, ok := cache.Peek("k"); !ok || e != first {
				t.Fatal("Peek (the entry's own freshness) missed it")
			}
			l.set(`"v2"`, nil)
			e, st, err := cache.Get(ctx, "k", short, l.load, isFault)
			if err != nil || st != c.want {
				t.Fatalf("short lookup past its TTL = %v, %v; want %v", st, err, c.want)
			}
			if c.want == Stale && e != first {
				t.Fatal("the stale answer is not the stored entry")
			}
			eventually(t, "the short lookup's load replaces the entry", func() bool {
				e, ok := cache.Peek("k")
				return ok && e.Data() == `"v2"`
			})
			if n := l.calls.Load(); n != 2 {
				t.Fatalf("loads = %d, want 2", n)
			}
			// The new entry was stored by the short lookup: fresh for 10 s,
			// for the long lookup too.
			if e, st, _ := cache.Get(ctx, "k", long, l.load, isFault); st != Hit || e.Data() != `"v2"` {
				t.Fatalf("long lookup after the reload = %v %q, want a hit on v2", st, e.Data())
			}
			checkConsistent(t, cache)
		})
	}
}

// Past a short lookup's TTL, an entry another lookup stored for longer is
// still that lookup's stale-if-error stand-in, served as stale (not as a
// hit) when the store fails; a client-meaningful answer drops it.
func TestShorterTTLLookupStaleIfError(t *testing.T) {
	cache, clock := newTestCache(t, Options{})
	l := &loader{data: `"v1"`}
	long := Policy{TTL: time.Minute, StaleIfError: time.Minute}
	short := Policy{TTL: 10 * time.Second, StaleIfError: time.Minute}
	first, _, err := cache.Get(ctx, "k", long, l.load, isFault)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(20 * time.Second)
	l.set("", errUpstream)
	if e, st, err := cache.Get(ctx, "k", short, l.load, isFault); err != nil || st != Stale || e != first {
		t.Fatalf("short lookup, store failing = %v, %v; want the entry as stale", st, err)
	}
	l.set("", errNotFound)
	if _, st, err := cache.Get(ctx, "k", short, l.load, isFault); !errors.Is(err, errNotFound) || st != Miss {
		t.Fatalf("short lookup, store says not found = %v, %v; want the error", st, err)
	}
	if _, ok := cache.Peek("k"); ok {
		t.Fatal("the entry outlived the store's not found")
	}
	checkConsistent(t, cache)
}

func TestConcurrentMissesShareOneLoad(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	l := &loader{data: `"shared"`}
	gate := l.hold()
	const callers = 32
	type result struct {
		e   *Entry
		st  Status
		err error
	}
	results := make(chan result, callers)
	for range callers {
		go func() {
			e, st, err := c.Get(ctx, "k", Policy{TTL: time.Minute}, l.load, isFault)
			results <- result{e, st, err}
		}()
	}
	// The load runs on a goroutine of its own, which a busy machine may
	// start after every caller is already waiting for it.
	eventually(t, "every caller waits on the load, and it started", func() bool {
		return c.Stats().Waiting == callers && l.calls.Load() > 0
	})
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("%d loads started for %d concurrent misses, want 1", n, callers)
	}
	close(gate)
	var first *Entry
	for range callers {
		r := <-results
		if r.err != nil || r.st != Miss || r.e.Data() != `"shared"` {
			t.Fatalf("caller got %v, %v, %v", r.e, r.st, r.err)
		}
		if first == nil {
			first = r.e
		} else if r.e != first {
			t.Fatal("callers of one load got different entries")
		}
	}
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("loads = %d, want 1", n)
	}
	if s := c.Stats(); s.Loads != 1 || s.Misses != callers || s.Entries != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestAbandonedCallerDoesNotCancelTheLoad(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	l := &loader{data: `"late"`}
	gate := l.hold()
	p := Policy{TTL: time.Minute, RefreshTimeout: 30 * time.Second}

	callerCtx, cancel := context.WithCancel(ctx)
	started := time.Now()
	done := make(chan error, 1)
	go func() {
		_, st, err := c.Get(callerCtx, "k", p, l.load, isFault)
		if st != Miss {
			err = fmt.Errorf("status %v", st)
		}
		done <- err
	}()
	eventually(t, "the load starts", func() bool { return l.calls.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned caller got %v, want context.Canceled", err)
	}
	loadCtx, _ := l.context()
	if loadCtx.Err() != nil {
		t.Fatalf("the shared load was cancelled with its first caller: %v", loadCtx.Err())
	}
	dl, ok := loadCtx.Deadline()
	if !ok || dl.Before(started.Add(p.RefreshTimeout)) || dl.After(time.Now().Add(p.RefreshTimeout)) {
		t.Errorf("load deadline = %v (set %v), want RefreshTimeout from the start", dl, ok)
	}
	close(gate)
	eventually(t, "the load stores its answer", func() bool { _, ok := c.Peek("k"); return ok })
	if _, end := l.context(); end != nil {
		t.Errorf("load context ended with %v", end)
	}
}

func TestLoadTakesFirstCallersDeadline(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	l := &loader{data: `1`}
	want := time.Now().Add(time.Hour).Round(0)
	callerCtx, cancel := context.WithDeadline(ctx, want)
	defer cancel()
	if _, _, err := c.Get(callerCtx, "k", Policy{TTL: time.Minute, RefreshTimeout: time.Second}, l.load, isFault); err != nil {
		t.Fatal(err)
	}
	loadCtx, _ := l.context()
	if dl, ok := loadCtx.Deadline(); !ok || !dl.Equal(want) {
		t.Errorf("load deadline = %v, want the caller's %v", dl, want)
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	l := &loader{data: `"v1"`}
	p := Policy{TTL: time.Minute, StaleWhileRevalidate: time.Minute}
	old, _, err := c.Get(ctx, "k", p, l.load, isFault)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(90 * time.Second)
	l.set(`"v2"`, nil)
	gate := l.hold()

	// Every caller is answered at once, while the refresh is held.
	const callers = 16
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			e, st, err := c.Get(ctx, "k", p, l.load, isFault)
			if err != nil || st != Stale || e != old {
				t.Errorf("stale Get = %v, %v; want the old entry as stale", st, err)
			}
		})
	}
	wg.Wait()
	eventually(t, "the refresh starts", func() bool { return l.calls.Load() == 2 })
	if n := l.calls.Load(); n != 2 {
		t.Fatalf("loads = %d, want the first plus exactly one refresh", n)
	}
	close(gate)
	eventually(t, "the refresh replaces the entry", func() bool {
		e, ok := c.Peek("k")
		return ok && e.Data() == `"v2"`
	})
	e, st, _ := c.Get(ctx, "k", p, l.load, isFault)
	if st != Hit || e.Data() != `"v2"` {
		t.Errorf("after refresh Get = %v %q, want a hit on v2", st, e.Data())
	}
	if n := l.calls.Load(); n != 2 {
		t.Errorf("loads = %d, want 2", n)
	}
	if s := c.Stats(); s.StaleServes != callers || s.Entries != 1 {
		t.Errorf("stats = %+v", s)
	}
	checkConsistent(t, c)
}

func TestFailedRefreshKeepsStaleEntry(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	l := &loader{data: `"v1"`}
	p := Policy{TTL: time.Minute, StaleWhileRevalidate: time.Minute}
	old, _, _ := c.Get(ctx, "k", p, l.load, isFault)
	clock.Advance(70 * time.Second)
	l.set("", errUpstream)

	if e, st, err := c.Get(ctx, "k", p, l.load, isFault); err != nil || st != Stale || e != old {
		t.Fatalf("Get = %v, %v", st, err)
	}
	eventually(t, "the refresh fails", func() bool { return c.Stats().RefreshFailures == 1 })
	// The failed refresh allows another; the entry is still served meanwhile.
	eventually(t, "a second refresh runs", func() bool {
		e, st, err := c.Get(ctx, "k", p, l.load, isFault)
		if err != nil || st != Stale || e != old {
			t.Fatalf("Get after failed refresh = %v, %v", st, err)
		}
		return l.calls.Load() >= 3
	})
}

// A refresh that gets a real answer instead of data (the user was deleted:
// not found) ends the stale entry: the next lookup loads and gets that
// answer, instead of the deleted data for the rest of the window.
func TestRefreshAnsweredNotFoundDropsTheStaleEntry(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	l := &loader{data: `"v1"`, tags: []string{"u1"}}
	p := Policy{TTL: time.Minute, StaleWhileRevalidate: time.Minute, StaleIfError: 5 * time.Minute}
	old, _, _ := c.Get(ctx, "k", p, l.load, isFault)
	clock.Advance(70 * time.Second)
	l.set("", errNotFound)

	if e, st, err := c.Get(ctx, "k", p, l.load, isFault); err != nil || st != Stale || e != old {
		t.Fatalf("Get = %v, %v; want the old entry as stale while the refresh runs", st, err)
	}
	eventually(t, "the refresh is answered", func() bool { return c.Stats().RefreshFailures == 1 })
	eventually(t, "the entry goes", func() bool { return c.Stats().Entries == 0 })
	if e, st, err := c.Get(ctx, "k", p, l.load, isFault); !errors.Is(err, errNotFound) || st != Miss || e != nil {
		t.Fatalf("Get after the refresh = %v, %v, %v; want the store's not found", e, st, err)
	}
	if s := c.Stats(); s.Evictions.Purge != 1 {
		t.Errorf("evictions = %+v, want the dropped entry counted as a purge", s.Evictions)
	}
	checkConsistent(t, c)
}

// TestStaleIfErrorWhenTheDeadlineRunsOut: a load still running when the
// caller's deadline ends (a store slower than the request may wait; the
// load, cut at the same deadline, fails a moment later) is a timeout, and
// the stale entry within staleIfError is served rather than the deadline's
// error (a 504). A caller that canceled gets its error (see
// TestAbandonedCallerDoesNotCancelTheLoad).
func TestStaleIfErrorWhenTheDeadlineRunsOut(t *testing.T) {
	p := Policy{TTL: time.Minute, StaleIfError: 5 * time.Minute}
	c, clock := newTestCache(t, Options{})
	l := &loader{data: `"saved"`}
	old, _, err := c.Get(ctx, "k", p, l.load, isFault)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	var ended atomic.Int64
	slow := func(ctx context.Context) (Loaded, error) {
		defer ended.Add(1)
		<-ctx.Done()
		time.Sleep(5 * time.Millisecond)
		return Loaded{}, errUpstream
	}
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	e, st, err := c.Get(dctx, "k", p, slow, isFault)
	if err != nil || st != Stale || e != old {
		t.Fatalf("Get = %v, %v; want the saved entry as stale", st, err)
	}

	// Past the window, the deadline's error (once the first load ended:
	// a second caller would share it).
	eventually(t, "the first load ends", func() bool { return ended.Load() == 1 })
	clock.Advance(5 * time.Minute)
	dctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if e, st, err := c.Get(dctx, "k", p, slow, isFault); !errors.Is(err, context.DeadlineExceeded) || st != Miss || e != nil {
		t.Fatalf("Get = %v, %v, %v; want the deadline's error", e, st, err)
	}
}

// A load that answers when the caller's deadline (its own) cuts it short,
// as a page whose live-stream enrichment was cut is answered partial, is
// that caller's answer: not the deadline's error, which the same load
// without the cache would not have been.
func TestLoadAnsweringAtItsCallersDeadlineIsTheAnswer(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	partial := func(ctx context.Context) (Loaded, error) {
		<-ctx.Done()
		time.Sleep(5 * time.Millisecond) // builds the page without the cut part
		return Loaded{Data: []byte(`"partial"`)}, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	e, st, err := c.Get(dctx, "k", Policy{TTL: time.Minute}, partial, isFault)
	if err != nil || st != Miss || e == nil || e.Data() != `"partial"` {
		t.Fatalf("Get = %v, %v, %v; want the load's answer", e, st, err)
	}
	if _, ok := c.Peek("k"); ok {
		t.Fatal("an uncacheable answer was stored")
	}
}

func TestStaleIfError(t *testing.T) {
	p := Policy{TTL: time.Minute, StaleIfError: 5 * time.Minute}
	setup := func(t *testing.T) (*Cache, *fakeClock, *loader, *Entry) {
		c, clock := newTestCache(t, Options{})
		l := &loader{data: `"saved"`}
		e, _, err := c.Get(ctx, "k", p, l.load, isFault)
		if err != nil {
			t.Fatal(err)
		}
		return c, clock, l, e
	}

	t.Run("fault within the window serves stale", func(t *testing.T) {
		c, clock, l, old := setup(t)
		clock.Advance(5*time.Minute + time.Minute - time.Nanosecond)
		l.set("", fmt.Errorf("search: %w", errUpstream))
		e, st, err := c.Get(ctx, "k", p, l.load, isFault)
		if err != nil || st != Stale || e != old {
			t.Fatalf("Get = %v, %v; want the saved entry as stale", st, err)
		}
	})
	t.Run("fault after the window is returned", func(t *testing.T) {
		c, clock, l, _ := setup(t)
		clock.Advance(6 * time.Minute)
		l.set("", errUpstream)
		if e, st, err := c.Get(ctx, "k", p, l.load, isFault); !errors.Is(err, errUpstream) || st != Miss || e != nil {
			t.Fatalf("Get = %v, %v, %v; want the upstream error", e, st, err)
		}
	})
	t.Run("a narrower window on reload applies", func(t *testing.T) {
		c, clock, l, _ := setup(t)
		clock.Advance(3 * time.Minute)
		l.set("", errUpstream)
		narrow := p
		narrow.StaleIfError = time.Minute
		if _, _, err := c.Get(ctx, "k", narrow, l.load, isFault); !errors.Is(err, errUpstream) {
			t.Fatalf("Get = %v; want the upstream error", err)
		}
	})
	t.Run("client errors are not masked", func(t *testing.T) {
		c, clock, l, _ := setup(t)
		clock.Advance(2 * time.Minute)
		l.set("", errNotFound)
		if _, st, err := c.Get(ctx, "k", p, l.load, isFault); !errors.Is(err, errNotFound) || st != Miss {
			t.Fatalf("Get = %v, %v; want not found", st, err)
		}
	})
	// Once the store said the data is gone (the user was deleted), a later
	// failure within the window must not bring the old data back.
	t.Run("a fault after a not found is not masked by the old data", func(t *testing.T) {
		c, clock, l, _ := setup(t)
		clock.Advance(2 * time.Minute)
		l.set("", errNotFound)
		if _, _, err := c.Get(ctx, "k", p, l.load, isFault); !errors.Is(err, errNotFound) {
			t.Fatalf("Get = %v; want not found", err)
		}
		l.set("", errUpstream)
		if e, st, err := c.Get(ctx, "k", p, l.load, isFault); !errors.Is(err, errUpstream) || st != Miss || e != nil {
			t.Fatalf("Get after the not found = %v, %v, %v; want the upstream error, not the deleted data", e, st, err)
		}
		if s := c.Stats(); s.Entries != 0 || s.Evictions.Purge != 1 {
			t.Errorf("stats %+v, want the entry dropped as a purge", s)
		}
		checkConsistent(t, c)
	})
	t.Run("no fault classifier masks nothing", func(t *testing.T) {
		c, clock, l, _ := setup(t)
		clock.Advance(2 * time.Minute)
		l.set("", errUpstream)
		if _, _, err := c.Get(ctx, "k", p, l.load, nil); !errors.Is(err, errUpstream) {
			t.Fatalf("Get = %v; want the upstream error", err)
		}
	})
	t.Run("a purged entry is not served", func(t *testing.T) {
		c, clock, l, _ := setup(t)
		clock.Advance(2 * time.Minute)
		c.PurgeAll()
		l.set("", errUpstream)
		if _, _, err := c.Get(ctx, "k", p, l.load, isFault); !errors.Is(err, errUpstream) {
			t.Fatalf("Get = %v; want the upstream error", err)
		}
	})
}

func TestErrorsAndUncacheableAreNotStored(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	p := Policy{TTL: time.Minute, StaleIfError: time.Minute}

	failing := &loader{err: errNotFound}
	for range 2 {
		if _, _, err := c.Get(ctx, "err", p, failing.load, isFault); !errors.Is(err, errNotFound) {
			t.Fatalf("Get = %v", err)
		}
	}
	if n := failing.calls.Load(); n != 2 {
		t.Errorf("an error was served from the cache: %d loads for 2 lookups", n)
	}

	partial := &loader{data: `"partial"`, uncached: true}
	e, st, err := c.Get(ctx, "partial", p, partial.load, isFault)
	if err != nil || st != Miss || e.Data() != `"partial"` || e.Cacheable() {
		t.Fatalf("Get = %v, %v, cacheable %v", st, err, e.Cacheable())
	}
	if !e.FreshUntil().Equal(e.StoredAt()) {
		t.Error("an uncacheable answer claims freshness")
	}
	if _, ok := c.Peek("partial"); ok {
		t.Error("an uncacheable answer was stored")
	}

	noTTL := &loader{data: `"x"`}
	if _, _, err := c.Get(ctx, "nottl", Policy{}, noTTL.load, isFault); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Peek("nottl"); ok {
		t.Error("an answer was stored with TTL 0")
	}
	if s := c.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Errorf("stats = %+v, want an empty cache", s)
	}
	if _, _, err := c.Get(ctx, "none", p, nil, isFault); !errors.Is(err, ErrNoLoader) {
		t.Errorf("Get without a loader = %v", err)
	}
}

func TestPanickingLoadIsAnError(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	_, _, err := c.Get(ctx, "k", Policy{TTL: time.Minute}, func(context.Context) (Loaded, error) {
		panic("boom")
	}, isFault)
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Get = %v, want the panic as an error", err)
	}
}

func TestCallerAlreadyDone(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	l := &loader{data: `1`}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := c.Get(done, "k", Policy{TTL: time.Minute}, l.load, isFault); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get = %v", err)
	}
	if l.calls.Load() != 0 {
		t.Error("a load started for a caller that was already gone")
	}
}

func TestOversizeAnswerIsNotAdmitted(t *testing.T) {
	c, _ := newTestCache(t, Options{MaxBytes: 64 << 10})
	l := &loader{data: strings.Repeat("x", 8<<10)} // over MaxBytes/8 with overhead
	e, st, err := c.Get(ctx, "big", Policy{TTL: time.Minute}, l.load, isFault)
	if err != nil || st != Miss || len(e.Data()) != 8<<10 {
		t.Fatalf("Get = %v, %v", st, err)
	}
	if _, ok := c.Peek("big"); ok {
		t.Error("an oversize answer was stored")
	}
	if s := c.Stats(); s.Rejected != 1 || s.Entries != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestEntriesAreImmutable(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	buf := []byte(`{"name":"ada"}`)
	tags := []string{"user:2", "user:1", "user:2", ""}
	load := func(context.Context) (Loaded, error) {
		return Loaded{Data: buf, Tags: tags, Cacheable: true}, nil
	}
	e, _, err := c.Get(ctx, "k", Policy{TTL: time.Minute}, load, isFault)
	if err != nil {
		t.Fatal(err)
	}
	etag := e.ETag()
	// The loader reuses its buffers: the entry must not change.
	copy(buf, `{"name":"eve"}`)
	tags[0] = "user:3"
	got, _ := c.Peek("k")
	if got.Data() != `{"name":"ada"}` || got.ETag() != etag {
		t.Fatalf("entry changed with the loader's buffer: %s", got.Data())
	}
	// Tags come back as a copy; the entry's own are untouched.
	ts := got.Tags()
	if strings.Join(ts, ",") != "user:1,user:2" {
		t.Fatalf("Tags() = %v, want sorted and unique", ts)
	}
	ts[0] = "user:9"
	if got.Tags()[0] != "user:1" {
		t.Fatal("modifying Tags() changed the entry")
	}
	if c.PurgeTag("user:9") != 0 || c.PurgeTag("user:3") != 0 {
		t.Fatal("the tag index followed a caller's modification")
	}
	// Data is a string: there is no slice of the entry to write to.
	var _ string = got.Data()
}

func TestETagIsStableAndStrong(t *testing.T) {
	a, _ := newTestCache(t, Options{})
	b, _ := newTestCache(t, Options{})
	l := &loader{data: `{}`}
	ea, _, _ := a.Get(ctx, "x", Policy{TTL: time.Minute}, l.load, isFault)
	eb, _, _ := b.Get(ctx, "other", Policy{TTL: time.Hour}, l.load, isFault)
	// SHA-256("{}") = 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a
	const want = `"44136fa355b3678a1146ad16f7e8649e"`
	if ea.ETag() != want || eb.ETag() != want {
		t.Fatalf("ETags %s, %s; want %s in every cache", ea.ETag(), eb.ETag(), want)
	}
	l.set(`{ }`, nil)
	ec, _, _ := a.Get(ctx, "y", Policy{TTL: time.Minute}, l.load, isFault)
	if ec.ETag() == want {
		t.Fatal("different data got the same ETag")
	}
}

func TestBoundHoldsUnderFlood(t *testing.T) {
	const maxEntries, maxBytes = 200, 256 << 10
	c, _ := newTestCache(t, Options{MaxEntries: maxEntries, MaxBytes: maxBytes})
	stop := make(chan struct{})
	var violations []string
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if s := c.Stats(); s.Entries > maxEntries || s.Bytes > maxBytes || s.Entries < 0 || s.Bytes < 0 {
				violations = append(violations, fmt.Sprintf("%d entries, %d bytes", s.Entries, s.Bytes))
			}
		}
	})
	var writers sync.WaitGroup
	for w := range 8 {
		writers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range 1500 {
				data := strings.Repeat("d", r.IntN(6000))
				tags := []string{"user:" + strconv.Itoa(r.IntN(50)), "route:search"}
				load := func(context.Context) (Loaded, error) {
					return Loaded{Data: []byte(data), Tags: tags, Cacheable: true}, nil
				}
				key := Key("search", strconv.Itoa(w), strconv.Itoa(i))
				if _, _, err := c.Get(ctx, key, Policy{TTL: time.Hour}, load, isFault); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	sampler.Wait()
	if len(violations) > 0 {
		t.Fatalf("bound exceeded %d times, e.g. %s", len(violations), violations[0])
	}
	s := c.Stats()
	if s.Evictions.Capacity == 0 {
		t.Fatal("a flood past the bound evicted nothing")
	}
	// Every key was distinct and cacheable: what was stored is either still
	// here or was evicted for capacity.
	if stored := s.Loads - s.Rejected; uint64(s.Entries)+s.Evictions.Capacity != stored {
		t.Errorf("%d entries + %d evictions != %d stored", s.Entries, s.Evictions.Capacity, stored)
	}
	checkConsistent(t, c)
}

func TestEvictionIsOldestFirst(t *testing.T) {
	c, clock := newTestCache(t, Options{MaxEntries: 3})
	for i := range 5 {
		l := &loader{data: strconv.Itoa(i)}
		if _, _, err := c.Get(ctx, strconv.Itoa(i), Policy{TTL: time.Hour}, l.load, isFault); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := c.Peek(strconv.Itoa(i)); ok != want {
			t.Errorf("entry %d present = %v, want %v", i, ok, want)
		}
	}
	if s := c.Stats(); s.Evictions.Capacity != 2 {
		t.Errorf("capacity evictions = %d, want 2", s.Evictions.Capacity)
	}
	checkConsistent(t, c)
}

// With partitions, one that holds more than its share makes room from its
// own oldest entries: a flood of one cannot push another below its share
// (by entries or by bytes), while within its share a partition takes
// the oldest of all, so a partition left alone still fills the cache.
func TestPartitionKeepsItsShare(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		size int // bytes of the flood's data
	}{
		{"entries", Options{MaxEntries: 10, Partitions: 2}, 10},
		{"bytes", Options{MaxBytes: 64 << 10, Partitions: 2}, 4 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, clock := newTestCache(t, tc.o)
			put := func(key string, part, size int) {
				t.Helper()
				l := &loader{data: strings.Repeat("d", size)}
				if _, _, err := c.Get(ctx, key, Policy{TTL: time.Hour, Partition: part}, l.load, isFault); err != nil {
					t.Fatal(err)
				}
				clock.Advance(time.Second)
			}
			for i := range 3 {
				put("keep"+strconv.Itoa(i), 1, 10)
			}
			for i := range 200 {
				put("flood"+strconv.Itoa(i), 0, tc.size)
			}
			for i := range 3 {
				if _, ok := c.Peek("keep" + strconv.Itoa(i)); !ok {
					t.Errorf("partition 1's entry %d was pushed out by partition 0's flood", i)
				}
			}
			if _, ok := c.Peek("flood199"); !ok {
				t.Error("the flood's newest entry is not stored")
			}
			if s := c.Stats(); s.Evictions.Capacity == 0 {
				t.Fatal("the flood evicted nothing")
			}
			checkConsistent(t, c)
		})
	}

	// Alone, a partition fills the whole cache; a newcomer below its share
	// then takes the oldest of all, up to its share.
	c, clock := newTestCache(t, Options{MaxEntries: 4, Partitions: 2})
	for i, key := range []string{"a0", "a1", "a2", "a3", "b0", "b1", "b2"} {
		l := &loader{data: key}
		part := 0
		if key[0] == 'b' {
			part = 1
		}
		if _, _, err := c.Get(ctx, key, Policy{TTL: time.Hour, Partition: part}, l.load, isFault); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		if i == 3 && c.Stats().Entries != 4 {
			t.Fatalf("one partition alone holds %d entries, want all 4", c.Stats().Entries)
		}
	}
	for key, want := range map[string]bool{"a0": false, "a1": false, "a2": true, "a3": true, "b0": false, "b1": true, "b2": true} {
		if _, ok := c.Peek(key); ok != want {
			t.Errorf("%s present = %v, want %v", key, ok, want)
		}
	}
	checkConsistent(t, c)
}

func TestAccountingAcrossOverwriteExpiryAndPurge(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	store := func(key, data string, ttl time.Duration, tags ...string) *Entry {
		t.Helper()
		l := &loader{data: data, tags: tags}
		e, st, err := c.Get(ctx, key, Policy{TTL: ttl}, l.load, isFault)
		if err != nil || st != Miss {
			t.Fatalf("store %s: %v %v", key, st, err)
		}
		return e
	}

	// Overwrite: go-cache replaces the value silently; the old size must go.
	store("a", "short", time.Minute, "user:1")
	clock.Advance(2 * time.Minute)
	e := store("a", strings.Repeat("long", 100), time.Minute, "user:2")
	if s := c.Stats(); s.Entries != 1 || s.Bytes != e.Size() {
		t.Fatalf("after overwrite: %d entries, %d bytes; want 1, %d", s.Entries, s.Bytes, e.Size())
	}
	if c.PurgeTag("user:1") != 0 {
		t.Fatal("the overwritten entry's tag is still indexed")
	}
	checkConsistent(t, c)

	// Expiry: the sweep removes what is past its retention on the cache's
	// clock, and accounts for it in the same step.
	for i := range 10 {
		store("short"+strconv.Itoa(i), "x", time.Second, "user:3")
	}
	keep := store("long", "y", time.Hour, "user:3")
	clock.Advance(time.Second)
	if n := c.sweep(); n != 10 {
		t.Fatalf("sweep removed %d, want 10", n)
	}
	s := c.Stats()
	if s.Entries != 2 || s.Bytes != e.Size()+keep.Size() || s.Evictions.Expired != 10 {
		t.Fatalf("after sweep: %+v", s)
	}
	checkConsistent(t, c)

	// Purge.
	if n := c.PurgeTag("user:3"); n != 1 {
		t.Fatalf("PurgeTag removed %d, want 1", n)
	}
	if s := c.Stats(); s.Entries != 1 || s.Bytes != e.Size() || s.Evictions.Purge != 1 {
		t.Fatalf("after purge: %+v", s)
	}
	checkConsistent(t, c)
}

// PurgeHeldTag of a tag no entry carries logs no purge: a lookup that
// starts meanwhile still joins the load running for its key, whose answer
// is stored. Of a tag an entry carries, it purges as PurgeTag does.
func TestPurgeHeldTagOfAnAbsentTagLeavesLoadsShared(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	l := &loader{data: "d", tags: []string{"user:1"}}
	gate := l.hold()
	p := Policy{TTL: time.Minute}
	var wg sync.WaitGroup
	get := func() {
		wg.Go(func() {
			if _, _, err := c.Get(ctx, "k", p, l.load, isFault); err != nil {
				t.Error(err)
			}
		})
	}
	get()
	eventually(t, "the first load to start", func() bool { return l.calls.Load() == 1 })
	if n := c.PurgeHeldTag("user:9"); n != 0 {
		t.Fatalf("PurgeHeldTag of an absent tag removed %d", n)
	}
	get()
	eventually(t, "both callers to wait", func() bool { return c.Stats().Waiting == 2 })
	close(gate)
	wg.Wait()
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("%d loads, want the one shared: PurgeHeldTag split the flight", n)
	}
	if got := storedData(c, "k"); got != "d" {
		t.Fatalf("stored %q, want the load's answer", got)
	}
	if n := c.PurgeHeldTag("user:1"); n != 1 || storedData(c, "k") == "d" || c.Stats().Evictions.Purge != 1 {
		t.Fatalf("PurgeHeldTag of a held tag removed %d (%+v)", n, c.Stats())
	}
	checkConsistent(t, c)
}

// PurgeHeldTag of a tag no entry carries still keeps the loads already
// running whose answers carry it from being stored: they may have read
// what the load that found it gone no longer found (a user's profile in
// another language, a page listing them). Their callers get their answer;
// the loads that start afterwards are stored, and loads of other tags as
// before.
func TestPurgeHeldTagOfAnAbsentTagKeepsOverlappingLoadsOut(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	p := Policy{TTL: time.Minute}
	gone := &loader{data: "profile", tags: []string{"user:1"}}
	page := &loader{data: "page", tags: []string{"user:2", "user:1"}}
	other := &loader{data: "other", tags: []string{"user:2"}}
	var wg sync.WaitGroup
	// The gone profile's load starts last, just before the tag is logged.
	for _, kl := range []struct {
		key string
		l   *loader
	}{{"other", other}, {"page", page}, {"me", gone}} {
		key, l := kl.key, kl.l
		l.hold()
		wg.Go(func() {
			e, _, err := c.Get(ctx, key, p, l.load, isFault)
			if err != nil || e.Data() != l.data {
				t.Errorf("%s: %v %v, want the load's answer", key, e, err)
			}
		})
		eventually(t, key+"'s load to start", func() bool { return l.calls.Load() == 1 })
	}
	gen := c.gen.Load()
	if n := c.PurgeHeldTag("user:1"); n != 0 {
		t.Fatalf("PurgeHeldTag of an absent tag removed %d", n)
	}
	if c.gen.Load() != gen {
		t.Fatal("PurgeHeldTag of an absent tag logged a purge: every key's loads are split")
	}
	for _, l := range []*loader{gone, page, other} {
		l.mu.Lock()
		close(l.gate)
		l.gate = nil
		l.mu.Unlock()
	}
	wg.Wait()
	for key, want := range map[string]string{"me": "nothing", "page": "nothing", "other": "other"} {
		if got := storedData(c, key); got != want {
			t.Errorf("%s: stored %q, want %q", key, got, want)
		}
	}
	// A load that starts after it is stored.
	if _, _, err := c.Get(ctx, "me", p, gone.load, isFault); err != nil || storedData(c, "me") != "profile" {
		t.Fatalf("a later load: %v, stored %q", err, storedData(c, "me"))
	}
	checkConsistent(t, c)
}

// The gone log holds goneLogSize tags: a load that overlapped that many
// others' is stored, one that overlapped one more may have overlapped its
// own and is not. The same tag again takes no second place (a user's
// repeated 404s do not push the others out).
func TestPurgeHeldTagGoneLogBound(t *testing.T) {
	many := func(n int, tag func(i int) string) []string {
		tags := make([]string, n)
		for i := range tags {
			tags[i] = tag(i)
		}
		return tags
	}
	other := func(i int) string { return "gone:" + strconv.Itoa(i) }
	for _, tc := range []struct {
		name   string
		during []string
		stored bool
	}{
		{"the log's size", many(goneLogSize, other), true},
		{"one more", many(goneLogSize+1, other), false},
		{"one tag many times", many(3*goneLogSize, func(int) string { return "gone:again" }), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := storedThroughGone(t, nil, tc.during); got != tc.stored {
				t.Fatalf("stored %v, want %v", got, tc.stored)
			}
		})
	}
}

func TestAccountingUnderConcurrentChurn(t *testing.T) {
	c, clock := newTestCache(t, Options{MaxEntries: 100, MaxBytes: 128 << 10})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for range 2000 {
				key := Key("k", strconv.Itoa(r.IntN(300))) // overwrites are frequent
				switch n := r.IntN(100); {
				case n < 3:
					c.PurgeTag("user:" + strconv.Itoa(r.IntN(20)))
				case n < 4:
					c.PurgePrefix(Key("k", strconv.Itoa(r.IntN(3))))
				case n == 4:
					c.sweep()
				case n == 5 && w == 0:
					c.PurgeAll()
				case n < 10:
					clock.Advance(time.Second)
				default:
					ttl := time.Minute
					if r.IntN(4) == 0 {
						ttl = 3 * time.Second
					}
					data := strings.Repeat("z", r.IntN(3000))
					tags := []string{"user:" + strconv.Itoa(r.IntN(20)), "user:" + strconv.Itoa(r.IntN(20))}
					load := func(context.Context) (Loaded, error) {
						return Loaded{Data: []byte(data), Tags: tags, Cacheable: true}, nil
					}
					c.Get(ctx, key, Policy{TTL: ttl}, load, isFault)
				}
			}
		})
	}
	wg.Wait()
	checkConsistent(t, c)
	if c.Stats().Evictions.Expired == 0 {
		t.Error("the churn expired nothing: the sweep was not exercised")
	}
	s := c.Stats()
	if s.Entries > 100 || s.Bytes > 128<<10 {
		t.Errorf("bound exceeded: %+v", s)
	}
}

func TestSweepRemovesExactlyTheExpired(t *testing.T) {
	c, clock := newTestCache(t, Options{MaxEntries: 10_000, MaxBytes: 1 << 30})
	const n = 3*sweepChunk + 7
	for i := range n {
		ttl := time.Hour
		if i%3 != 0 {
			ttl = time.Minute
		}
		// Stale windows extend retention: kept until TTL + max(SWR, SIE).
		p := Policy{TTL: ttl, StaleIfError: time.Minute, StaleWhileRevalidate: 30 * time.Second}
		l := &loader{data: "1", tags: []string{"user:" + strconv.Itoa(i%5)}}
		if _, _, err := c.Get(ctx, strconv.Itoa(i), p, l.load, isFault); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2*time.Minute - time.Nanosecond)
	if got := c.sweep(); got != 0 {
		t.Fatalf("sweep removed %d entries still within their stale window", got)
	}
	clock.Advance(time.Nanosecond)
	want := n - (n+2)/3
	if got := c.sweep(); got != want {
		t.Fatalf("sweep removed %d, want %d", got, want)
	}
	for i := range n {
		if _, ok := c.Peek(strconv.Itoa(i)); ok != (i%3 == 0) {
			t.Fatalf("entry %d present = %v", i, ok)
		}
	}
	checkConsistent(t, c)
}

func TestSweeperRunsOnItsOwn(t *testing.T) {
	c, clock := newTestCache(t, Options{CleanupInterval: time.Millisecond})
	for i := range 20 {
		l := &loader{data: "1"}
		c.Get(ctx, strconv.Itoa(i), Policy{TTL: time.Minute}, l.load, isFault)
	}
	clock.Advance(time.Minute)
	eventually(t, "the sweeper removes the expired entries", func() bool {
		s := c.Stats()
		return s.Entries == 0 && s.Evictions.Expired == 20
	})
	checkConsistent(t, c)
}

func TestPurges(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	put := func(key string, tags ...string) {
		l := &loader{data: `"` + key + `"`, tags: tags}
		if _, _, err := c.Get(ctx, key, Policy{TTL: time.Hour}, l.load, isFault); err != nil {
			t.Fatal(err)
		}
	}
	me1 := Key("me", "1")
	search1 := Key("search", "ada", "1")
	search2 := Key("search", "ada", "2")
	searchX := Key("searchx", "ada") // shares the text "search" but not the part
	put(me1, "user:1", "route:me")
	put(search1, "user:1", "user:2", "route:search")
	put(search2, "user:3", "route:search")
	put(searchX, "user:4")

	if n := c.PurgeTag("user:1"); n != 2 {
		t.Fatalf("PurgeTag(user:1) = %d, want 2", n)
	}
	for key, want := range map[string]bool{me1: false, search1: false, search2: true, searchX: true} {
		if _, ok := c.Peek(key); ok != want {
			t.Errorf("after PurgeTag %q present = %v, want %v", key, ok, want)
		}
	}
	if n := c.PurgeTag("user:1"); n != 0 {
		t.Errorf("second PurgeTag = %d", n)
	}
	checkConsistent(t, c)

	put(search1, "user:1")
	if n := c.PurgePrefix(Key("search")); n != 2 {
		t.Fatalf("PurgePrefix(search) = %d, want 2", n)
	}
	if _, ok := c.Peek(searchX); !ok {
		t.Error("PurgePrefix removed another route that shares its text")
	}
	checkConsistent(t, c)

	put(me1, "user:1")
	if n := c.PurgeAll(); n != 2 {
		t.Fatalf("PurgeAll = %d, want 2", n)
	}
	s := c.Stats()
	if s.Entries != 0 || s.Bytes != 0 || s.Evictions.Purge != 6 {
		t.Errorf("stats = %+v", s)
	}
	checkConsistent(t, c)
	if len(c.tags) != 0 {
		t.Error("tag index kept tags of purged entries")
	}
}

// The entries PurgeAll drops must be free for the collector even while one
// of them is still held (by a background refresh, or a request writing
// it): linked to each other through the insertion list and the tag index,
// that one entry kept every dropped entry, the whole old cache, in memory
// beside the new one.
func TestPurgeAllLetsGoOfTheDroppedEntries(t *testing.T) {
	c, _ := newTestCache(t, Options{MaxBytes: 1 << 30, Partitions: 2})
	data := []byte(strings.Repeat("x", 64<<10))
	var held *Entry
	var dropped []weak.Pointer[Entry]
	for i := range 64 {
		tags := []string{"user:" + strconv.Itoa(i%5), "user:" + strconv.Itoa(i%7)}
		load := func(context.Context) (Loaded, error) {
			return Loaded{Data: data, Tags: tags, Cacheable: true}, nil
		}
		e, _, err := c.Get(ctx, strconv.Itoa(i), Policy{TTL: time.Hour, Partition: i % 2}, load, isFault)
		if err != nil {
			t.Fatal(err)
		}
		if i == 31 {
			held = e
		} else {
			dropped = append(dropped, weak.Make(e))
		}
	}
	if n := c.PurgeAll(); n != 64 {
		t.Fatalf("PurgeAll = %d, want 64", n)
	}
	runtime.GC()
	runtime.GC()
	alive := 0
	for _, w := range dropped {
		if w.Value() != nil {
			alive++
		}
	}
	if alive > 0 {
		t.Errorf("%d of %d purged entries are still in memory while one other is held", alive, len(dropped))
	}
	if held.Data() != string(data) {
		t.Error("the held entry changed")
	}
	runtime.KeepAlive(held)
	checkConsistent(t, c)
}

func TestPurgeDuringLoad(t *testing.T) {
	p := Policy{TTL: time.Hour}
	t.Run("a matching purge keeps the answer out", func(t *testing.T) {
		c, _ := newTestCache(t, Options{})
		l := &loader{data: `"before"`, tags: []string{"user:1"}}
		gate := l.hold()
		done := make(chan *Entry, 1)
		go func() {
			e, _, _ := c.Get(ctx, "me", p, l.load, isFault)
			done <- e
		}()
		eventually(t, "the load starts", func() bool { return l.calls.Load() == 1 })
		c.PurgeTag("user:1")

		// A lookup after the purge does not join the earlier load.
		l2 := &loader{data: `"after"`, tags: []string{"user:1"}}
		e2, st, err := c.Get(ctx, "me", p, l2.load, isFault)
		if err != nil || st != Miss || e2.Data() != `"after"` {
			t.Fatalf("Get after purge = %v, %v; want its own load", st, err)
		}

		close(gate)
		if e := <-done; e.Data() != `"before"` {
			t.Fatalf("the first caller got %q", e.Data())
		}
		if got, ok := c.Peek("me"); !ok || got.Data() != `"after"` {
			t.Fatal("the load that overlapped the purge overwrote the newer answer")
		}
	})
	t.Run("an unrelated purge does not", func(t *testing.T) {
		c, _ := newTestCache(t, Options{})
		l := &loader{data: `"mine"`, tags: []string{"user:1"}}
		gate := l.hold()
		done := make(chan struct{})
		go func() {
			c.Get(ctx, "me", p, l.load, isFault)
			close(done)
		}()
		eventually(t, "the load starts", func() bool { return l.calls.Load() == 1 })
		c.PurgeTag("user:2")
		c.PurgePrefix(Key("search"))
		close(gate)
		<-done
		if _, ok := c.Peek("me"); !ok {
			t.Fatal("an unrelated purge kept the answer out")
		}
	})
	// Every purge separates the loads of every key (flightKey), so after
	// one for another user a lookup of "me" starts a load of its own while
	// the earlier one still runs. Whichever ends last must not decide what
	// is stored: the answer of the load that started later stays.
	t.Run("after an unrelated purge an older load does not replace a newer answer", func(t *testing.T) {
		c, _ := newTestCache(t, Options{})
		older := &loader{data: `"older"`, tags: []string{"user:1"}}
		gate := older.hold()
		done := make(chan *Entry, 1)
		go func() {
			e, _, _ := c.Get(ctx, "me", p, older.load, isFault)
			done <- e
		}()
		eventually(t, "the first load starts", func() bool { return older.calls.Load() == 1 })
		c.PurgeTag("user:2")
		newer := &loader{data: `"newer"`, tags: []string{"user:1"}}
		if e, st, err := c.Get(ctx, "me", p, newer.load, isFault); err != nil || st != Miss || e.Data() != `"newer"` {
			t.Fatalf("Get after the purge = %v, %v; want its own load", st, err)
		}

		close(gate)
		if e := <-done; e.Data() != `"older"` {
			t.Fatalf("the first caller got %q, want its own load's answer", e.Data())
		}
		if got := storedData(c, "me"); got != `"newer"` {
			t.Fatalf("stored %s; the load that started first replaced the answer of the one that started later", got)
		}
		checkConsistent(t, c)
	})
	t.Run("after an unrelated purge a newer load replaces an older answer", func(t *testing.T) {
		c, _ := newTestCache(t, Options{})
		older := &loader{data: `"older"`, tags: []string{"user:1"}}
		olderGate := older.hold()
		newer := &loader{data: `"newer"`, tags: []string{"user:1"}}
		newerGate := newer.hold()
		olderDone, newerDone := make(chan struct{}), make(chan struct{})
		go func() {
			c.Get(ctx, "me", p, older.load, isFault)
			close(olderDone)
		}()
		eventually(t, "the first load starts", func() bool { return older.calls.Load() == 1 })
		c.PurgeTag("user:2")
		go func() {
			c.Get(ctx, "me", p, newer.load, isFault)
			close(newerDone)
		}()
		eventually(t, "the second load starts", func() bool { return newer.calls.Load() == 1 })

		close(olderGate)
		<-olderDone
		if got := storedData(c, "me"); got != `"older"` {
			t.Fatalf("stored %s, want the first load's answer until the second ends", got)
		}
		close(newerGate)
		<-newerDone
		if got := storedData(c, "me"); got != `"newer"` {
			t.Fatalf("stored %s; the load that started later did not replace the older answer", got)
		}
		checkConsistent(t, c)
	})
	t.Run("a prefix purge keeps matching answers out", func(t *testing.T) {
		c, _ := newTestCache(t, Options{})
		l := &loader{data: `1`}
		gate := l.hold()
		done := make(chan struct{})
		key := Key("search", "q")
		go func() {
			c.Get(ctx, key, p, l.load, isFault)
			close(done)
		}()
		eventually(t, "the load starts", func() bool { return l.calls.Load() == 1 })
		c.PurgePrefix(Key("search"))
		close(gate)
		<-done
		if _, ok := c.Peek(key); ok {
			t.Fatal("an answer loaded across a prefix purge was stored")
		}
	})
}

func TestPurgeLogOverrunIsConservative(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	e := newEntry(Loaded{Tags: []string{"user:1"}}, time.Now())
	e.key = "k"
	start := c.gen.Load()
	for i := range purgeLogSize {
		c.PurgeTag("other:" + strconv.Itoa(i))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.purgedSinceLocked(e, start) {
		t.Error("a load older than the purge log was treated as unaffected")
	}
	if c.purgedSinceLocked(e, start+1) {
		t.Error("unrelated purges within the log affected the entry")
	}
}

type countingObserver struct {
	mu      sync.Mutex
	lookups map[Status]int
	evicted map[string]int
}

func (o *countingObserver) Lookup(s Status) {
	o.mu.Lock()
	o.lookups[s]++
	o.mu.Unlock()
}

func (o *countingObserver) Evicted(reason string, n int) {
	o.mu.Lock()
	o.evicted[reason] += n
	o.mu.Unlock()
}

func TestObserver(t *testing.T) {
	obs := &countingObserver{lookups: map[Status]int{}, evicted: map[string]int{}}
	clock := newClock()
	c := New(Options{MaxEntries: 2, Clock: clock.Now, CleanupInterval: time.Hour}, obs)
	defer c.Close()
	p := Policy{TTL: time.Millisecond, StaleWhileRevalidate: time.Hour}
	l := &loader{data: `1`}
	c.Get(ctx, "a", p, l.load, isFault) // miss
	c.Get(ctx, "a", p, l.load, isFault) // hit
	c.Peek("a")                         // hit
	c.Peek("nothing")                   // not observed
	c.Get(ctx, "b", Policy{TTL: time.Hour}, l.load, isFault)
	c.Get(ctx, "c", Policy{TTL: time.Hour}, l.load, isFault) // evicts a
	c.PurgeTag("none")
	c.PurgeAll() // b, c
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.lookups[Miss] != 3 || obs.lookups[Hit] != 2 {
		t.Errorf("lookups = %v", obs.lookups)
	}
	if obs.evicted[EvictCapacity] != 1 || obs.evicted[EvictPurge] != 2 {
		t.Errorf("evictions = %v", obs.evicted)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	l := &loader{data: `{"a":1}`}
	load := l.load
	p := Policy{TTL: time.Hour}
	if _, _, err := c.Get(ctx, "k", p, load, isFault); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { c.Peek("k") }); n != 0 {
		t.Errorf("Peek hit allocates %.1f times", n)
	}
	if n := testing.AllocsPerRun(100, func() { c.Get(ctx, "k", p, load, isFault) }); n != 0 {
		t.Errorf("Get hit allocates %.1f times", n)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	clock := newClock()
	c := New(Options{Clock: clock.Now, CleanupInterval: time.Millisecond}, nil)
	t.Cleanup(c.Close)
	p := Policy{TTL: time.Minute, StaleWhileRevalidate: time.Minute}
	l := &loader{data: `"v1"`}
	if _, _, err := c.Get(ctx, "k", p, l.load, isFault); err != nil {
		t.Fatal(err)
	}
	clock.Advance(90 * time.Second)
	l.hold() // never opened: only Close ends the refresh and the load below
	if _, st, _ := c.Get(ctx, "k", p, l.load, isFault); st != Stale {
		t.Fatalf("status %v, want stale", st)
	}
	waiter := make(chan error, 1)
	go func() {
		_, _, err := c.Get(ctx, "other", p, (&loader{gate: make(chan struct{})}).load, isFault)
		waiter <- err
	}()
	eventually(t, "the refresh and the load are running", func() bool {
		return l.calls.Load() == 2 && c.Stats().Waiting == 1
	})
	c.Close()
	if loadCtx, _ := l.context(); loadCtx.Err() == nil {
		t.Error("Close left the refresh running")
	}
	if err := <-waiter; !errors.Is(err, context.Canceled) {
		t.Errorf("waiter got %v, want the cancelled load's error", err)
	}
	c.Close() // idempotent

	// After Close: hits still answer, a miss is a plain pass-through.
	after := &loader{data: `"direct"`}
	e, st, err := c.Get(ctx, "new", p, after.load, isFault)
	if err != nil || st != Miss || e.Data() != `"direct"` {
		t.Fatalf("Get after Close = %v, %v", st, err)
	}
	if _, ok := c.Peek("new"); ok {
		t.Error("an answer was stored after Close")
	}
}

// A load that Close cancels says nothing about the data: a caller waiting
// on it gets the error, but the expired entry it would have stood in for
// stays (as a background refresh cut by Close leaves it), and no purge is
// counted; after Close, lookups still answer from memory.
func TestCloseDoesNotDropTheStaleEntryOfACanceledLoad(t *testing.T) {
	obs := &countingObserver{lookups: map[Status]int{}, evicted: map[string]int{}}
	clock := newClock()
	c := New(Options{Clock: clock.Now, CleanupInterval: time.Hour}, obs)
	t.Cleanup(c.Close)
	p := Policy{TTL: time.Minute, StaleIfError: 5 * time.Minute}
	l := &loader{data: `"saved"`}
	old, _, err := c.Get(ctx, "k", p, l.load, isFault)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	l.hold() // never opened: only Close ends the load
	waiter := make(chan error, 1)
	go func() {
		_, _, err := c.Get(ctx, "k", p, l.load, isFault)
		waiter <- err
	}()
	eventually(t, "the load is running", func() bool {
		return l.calls.Load() == 2 && c.Stats().Waiting == 1
	})
	c.Close()
	if err := <-waiter; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter got %v, want the canceled load's error", err)
	}
	if s := c.Stats(); s.Entries != 1 || s.Evictions.Purge != 0 {
		t.Errorf("after Close: %d entries, %d purges; want the entry kept, no purge", s.Entries, s.Evictions.Purge)
	}
	obs.mu.Lock()
	purged := obs.evicted[EvictPurge]
	obs.mu.Unlock()
	if purged != 0 {
		t.Errorf("observer saw %d purges", purged)
	}
	failing := &loader{err: errUpstream}
	if e, st, err := c.Get(ctx, "k", p, failing.load, isFault); err != nil || st != Stale || e != old {
		t.Errorf("Get after Close = %v, %v; want the saved entry as stale", st, err)
	}
	checkConsistent(t, c)
}

func TestDefaults(t *testing.T) {
	c := New(Options{MaxEntries: -1, MaxBytes: -5, CleanupInterval: -time.Second}, nil)
	defer c.Close()
	s := c.Stats()
	if s.MaxEntries != defaultMaxEntries || s.MaxBytes != defaultMaxBytes {
		t.Errorf("defaults not applied: %+v", s)
	}
	if s.FillRatio != 0 {
		t.Errorf("fill ratio of an empty cache = %v", s.FillRatio)
	}
}

// The caller whose deadline a load has waits for the load's answer at that
// deadline, but only briefly: a load that does not end with its context
// (a call without a deadline of its own, stuck) must not hold the caller
// past its deadline, as no other caller is held (doc.go: a caller whose
// own context ends stops waiting).
func TestLoadIgnoringItsDeadlineDoesNotHoldItsCaller(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	release := make(chan struct{})
	defer close(release)
	stuck := func(context.Context) (Loaded, error) {
		<-release
		return Loaded{Data: []byte(`"late"`)}, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Get(dctx, "k", Policy{TTL: time.Minute}, stuck, isFault)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Get = %v, want the deadline's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Get still waits for a stuck load, long after its deadline")
	}
}

// An entry is kept for the stale windows of the lookup that stored it, and
// not a moment longer: a later lookup with longer windows (another route's
// policy, a reload that lengthened them) neither serves it stale while
// refreshing nor stands it in for a failure, even before a sweep removed it.
func TestEntryPastItsRetentionIsNeverServed(t *testing.T) {
	c, clock := newTestCache(t, Options{})
	l := &loader{data: `"v1"`}
	stored := Policy{TTL: 10 * time.Second, StaleWhileRevalidate: time.Second, StaleIfError: time.Second}
	if _, _, err := c.Get(ctx, "k", stored, l.load, isFault); err != nil {
		t.Fatal(err)
	}
	clock.Advance(11 * time.Second) // past freshness + retention; not swept
	if s := c.Stats(); s.Entries != 1 {
		t.Fatalf("entries = %d, want the unswept entry still held", s.Entries)
	}

	longer := Policy{TTL: 10 * time.Second, StaleWhileRevalidate: time.Minute, StaleIfError: time.Minute}
	failing := &loader{err: errUpstream}
	if e, st, err := c.Get(ctx, "k", longer, failing.load, isFault); !errors.Is(err, errUpstream) || st != Miss || e != nil {
		t.Fatalf("failing load past retention = %v, %v; want the error, not the old entry", st, err)
	}
	l.set(`"v2"`, nil)
	e, st, err := c.Get(ctx, "k", longer, l.load, isFault)
	if err != nil || st != Miss || e.Data() != `"v2"` {
		t.Fatalf("Get past retention = %v, %v; want a load of v2 as a miss", st, err)
	}
	if s := c.Stats(); s.StaleServes != 0 {
		t.Errorf("stale serves = %d, want 0", s.StaleServes)
	}
	checkConsistent(t, c)
}

// The bound on one answer is MaxBytes/8 inclusive: an answer whose estimated
// size is exactly that is stored, one byte more is not.
func TestAnswerAtTheSizeLimitIsAdmitted(t *testing.T) {
	const maxEntry = 1000
	c, _ := newTestCache(t, Options{MaxBytes: 8 * maxEntry})
	fits := &loader{data: strings.Repeat("x", maxEntry-EntryOverhead-len("k"))}
	e, _, err := c.Get(ctx, "k", Policy{TTL: time.Minute}, fits.load, isFault)
	if err != nil || e.Size() != maxEntry {
		t.Fatalf("Get = %v, size %d; want size %d", err, e.Size(), maxEntry)
	}
	if _, ok := c.Peek("k"); !ok {
		t.Error("an answer of exactly MaxBytes/8 was not stored")
	}
	over := &loader{data: strings.Repeat("x", maxEntry-EntryOverhead-len("j")+1)}
	if _, _, err := c.Get(ctx, "j", Policy{TTL: time.Minute}, over.load, isFault); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Peek("j"); ok {
		t.Error("an answer one byte over MaxBytes/8 was stored")
	}
	if s := c.Stats(); s.Rejected != 1 || s.Entries != 1 {
		t.Errorf("stats = %+v, want 1 rejected, 1 entry", s)
	}
}

// The defaults are the documented numbers (Options), not whatever the
// constants say.
func TestDefaultsAreTheDocumentedOnes(t *testing.T) {
	c := New(Options{}, nil)
	defer c.Close()
	if s := c.Stats(); s.MaxEntries != 10_000 || s.MaxBytes != 64<<20 {
		t.Errorf("default bounds = %d entries, %d bytes; want 10000 and 64 MiB", s.MaxEntries, s.MaxBytes)
	}
}

// An entry's size is what the docs say the bounds count: its data, key and
// tags plus EntryOverhead, and TagOverhead per tag.
func TestEntrySizeCountsEveryTag(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	l := &loader{data: `{"id":"1"}`, tags: []string{"user:1", "user:22"}}
	e, _, err := c.Get(ctx, "key", Policy{TTL: time.Minute}, l.load, isFault)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(len(`{"id":"1"}`) + len("key") + len("user:1") + len("user:22") + EntryOverhead + 2*TagOverhead)
	if e.Size() != want {
		t.Errorf("Size() = %d, want %d", e.Size(), want)
	}
	if s := c.Stats(); s.Bytes != want {
		t.Errorf("Stats().Bytes = %d, want %d", s.Bytes, want)
	}
}

// FillRatio is the larger of the two ratios, so a cache full by count with
// small entries reads as full.
func TestFillRatioIsTheLargerRatio(t *testing.T) {
	c, _ := newTestCache(t, Options{MaxEntries: 4, MaxBytes: 1 << 30})
	l := &loader{data: `{}`}
	for _, k := range []string{"a", "b"} {
		if _, _, err := c.Get(ctx, k, Policy{TTL: time.Minute}, l.load, isFault); err != nil {
			t.Fatal(err)
		}
	}
	if s := c.Stats(); s.FillRatio != 0.5 {
		t.Errorf("FillRatio = %v with 2 of 4 entries and few bytes, want 0.5", s.FillRatio)
	}
}

// PurgePrefix with the empty prefix (Key() of no parts) is a prefix of every
// key: it removes everything, like PurgeAll.
func TestPurgeEmptyPrefixRemovesEverything(t *testing.T) {
	c, _ := newTestCache(t, Options{})
	l := &loader{data: `{}`, tags: []string{"user:1"}}
	for _, k := range []string{Key("search", "x"), Key("me", "y")} {
		if _, _, err := c.Get(ctx, k, Policy{TTL: time.Minute}, l.load, isFault); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.PurgePrefix(Key()); n != 2 {
		t.Errorf("PurgePrefix(Key()) = %d, want 2", n)
	}
	if s := c.Stats(); s.Entries != 0 || s.Evictions.Purge != 2 {
		t.Errorf("after the purge: %d entries, %d purged; want 0 and 2", s.Entries, s.Evictions.Purge)
	}
	checkConsistent(t, c)
}

// The same tag found gone again while a load carrying it runs keeps that
// load out, though the tag's last record was logged before the load began
// (a user's repeated 404s): the record is renewed, not skipped. And a load
// of another user's data that ran through a burst of 404s for unknown ids,
// fewer than the 1024 the gone log remembers (doc.go), is stored.
func TestPurgeHeldTagAgainAndABurstOfOthers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before []string // found gone before the load starts
		during []string // while it runs
		stored bool
	}{
		{"the same tag again", []string{"user:1"}, []string{"user:1"}, false},
		{"the same tag again after others", []string{"user:9", "user:1"}, []string{"user:8", "user:1"}, false},
		{"a burst of others", nil, burstOfGoneTags(1000), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := storedThroughGone(t, tc.before, tc.during); got != tc.stored {
				t.Fatalf("stored %v, want %v", got, tc.stored)
			}
		})
	}
}

func burstOfGoneTags(n int) []string {
	tags := make([]string, n)
	for i := range tags {
		tags[i] = "user:unknown-" + strconv.Itoa(i)
	}
	return tags
}

// storedThroughGone reports whether a load of user:1's data is stored when
// the tags before were found gone before it started and the tags during
// while it ran.
func storedThroughGone(t *testing.T, before, during []string) bool {
	t.Helper()
	p := Policy{TTL: time.Minute}
	c, _ := newTestCache(t, Options{})
	for _, tag := range before {
		c.PurgeHeldTag(tag)
	}
	l := &loader{data: "d", tags: []string{"user:1"}}
	l.hold()
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Get(ctx, "k", p, l.load, isFault)
		done <- err
	}()
	eventually(t, "the load to start", func() bool { return l.calls.Load() == 1 })
	for _, tag := range during {
		c.PurgeHeldTag(tag)
	}
	l.mu.Lock()
	close(l.gate)
	l.gate = nil
	l.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return storedData(c, "k") == "d"
}
