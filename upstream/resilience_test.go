package upstream

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/upstream/faultproxy"
	"github.com/bffgate/edge/upstream/refstore"
)

func kindAndOutcome(t *testing.T, err error, kind Kind, outcome string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Kind != kind || e.Outcome != outcome {
		t.Fatalf("got %v, want %v (%s)", err, kind, outcome)
	}
	return e
}

func TestSlowHeadersTimeOutAtTheOperationTimeout(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	eachOp(&cfg, func(o *config.Operation) { o.Timeout = 150 * time.Millisecond })
	c, _ := newClient(t, cfg)
	p.Set(faultproxy.Delay(3 * time.Second))
	for op, call := range callsByOp(c) {
		start := time.Now()
		err := call()
		elapsed := time.Since(start)
		kindAndOutcome(t, err, KindTimeout, OutcomeTimeout)
		if !IsUpstreamFault(err) {
			t.Errorf("%s: a timeout is an upstream fault", op)
		}
		// The store answers after 3s; returning long before that shows the
		// deadline, not the answer, ended the call (no retry on timeouts).
		if elapsed > time.Second {
			t.Errorf("%s: returned after %s with a 150ms timeout", op, elapsed)
		}
	}
	if n := p.Stats().Requests; n != 4 {
		t.Fatalf("%d requests for 4 calls: timeouts must not be retried", n)
	}
}

func TestSlowBodyTimesOut(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.UserByID.Timeout = 150 * time.Millisecond
	c, _ := newClient(t, cfg)
	p.Set(faultproxy.Drip(8, 50*time.Millisecond))
	start := time.Now()
	_, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID)
	kindAndOutcome(t, err, KindTimeout, OutcomeTimeout)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("returned after %s", elapsed)
	}
}

func TestCallerDeadlineShorterThanOperationTimeout(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.Search.Timeout = 5 * time.Second
	cfg.Operations.Search.Breaker.ConsecutiveFailures = 1
	c, _ := newClient(t, cfg)
	p.Set(faultproxy.Delay(3 * time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Search(ctx, testCall(), "ali", 5, 0)
	kindAndOutcome(t, err, KindTimeout, OutcomeTimeout)
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("returned after %s with a 100ms deadline", elapsed)
	}
	// The caller's deadline, not the store, ended it: the breaker ignores
	// it (one failure would have opened it).
	b := breakerOf(c, OpSearch)
	if b.State != "closed" || b.Counts.Exclusions != 1 || b.Counts.Failures != 0 {
		t.Fatalf("breaker %+v", b)
	}

	// A deadline already past: no request at all.
	before := p.Stats().Requests
	_, err = c.Search(ctx, testCall(), "ali", 5, 0)
	kindAndOutcome(t, err, KindTimeout, OutcomeTimeout)
	if p.Stats().Requests != before {
		t.Fatal("a call with an expired deadline reached the store")
	}
}

func TestCanceledCallsDoNotCountAgainstTheStore(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.UserByID.Timeout = 200 * time.Millisecond
	cfg.Operations.UserByID.Breaker.ConsecutiveFailures = 1
	c, obs := newClient(t, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.UserByID(ctx, testCall(), refstore.DemoUserID)
	kindAndOutcome(t, err, KindCanceled, OutcomeCanceled)
	if IsUpstreamFault(err) || p.Stats().Requests != 0 {
		t.Fatalf("canceled before: fault %v, %d requests", IsUpstreamFault(err), p.Stats().Requests)
	}

	// Canceled while the store is slow: fasthttp cannot be interrupted, so
	// the attempt runs to its timeout, but the call is the caller's.
	p.Set(faultproxy.Delay(time.Second))
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err = c.UserByID(ctx, testCall(), refstore.DemoUserID)
	kindAndOutcome(t, err, KindCanceled, OutcomeCanceled)
	if b := breakerOf(c, OpUserByID); b.State != "closed" || b.Counts.Failures != 0 || b.Counts.Exclusions != 2 {
		t.Fatalf("breaker %+v", b)
	}
	if obs.outcomes(OpUserByID, OutcomeCanceled) != 2 {
		t.Fatalf("observer %v", obs.calls)
	}
}

func TestUpdateChangesTimeoutsLive(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.DialTimeout = 200 * time.Millisecond // the pool wait, 50ms, stays below every timeout
	c, _ := newClient(t, cfg)
	p.Set(faultproxy.Delay(250 * time.Millisecond))
	ctx := context.Background()
	if _, err := c.UserByID(ctx, testCall(), refstore.DemoUserID); err != nil {
		t.Fatalf("1s timeout, 250ms store: %v", err)
	}
	cfg.Operations.UserByID.Timeout = 100 * time.Millisecond
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	_, err := c.UserByID(ctx, testCall(), refstore.DemoUserID)
	kindAndOutcome(t, err, KindTimeout, OutcomeTimeout)
	if _, err := c.Search(ctx, testCall(), "ali", 5, 0); err != nil {
		t.Fatalf("other operations keep their timeout: %v", err)
	}

	// Invalid settings change nothing.
	bad := cfg
	bad.Operations.UserByID.Timeout = time.Second
	bad.Operations.Search.MaxInFlight = 0
	bad.RetryBudget.Ratio = 2
	err = c.Update(bad)
	if err == nil || !strings.Contains(err.Error(), "maxInFlight") || !strings.Contains(err.Error(), "ratio") {
		t.Fatalf("invalid update: %v", err)
	}
	_, err = c.UserByID(ctx, testCall(), refstore.DemoUserID)
	kindAndOutcome(t, err, KindTimeout, OutcomeTimeout)
}

func TestRetriesOnlyReadsOnlyRightFailures(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	// Allowed retries as the reads are: the username check, a POST, is
	// never retried whatever its settings say (docs/configuration.md).
	cfg.Operations.UsernameCheck.Retry = cfg.Operations.Search.Retry
	c, obs := newClient(t, cfg)
	ctx := context.Background()

	for _, tc := range []struct {
		name     string
		mode     faultproxy.Mode
		call     func() error
		ok       bool
		requests int64
	}{
		{"503 once, read", faultproxy.Status(503).Times(1), func() error { _, err := c.Search(ctx, testCall(), "ali", 5, 0); return err }, true, 2},
		{"hang-up once, read", faultproxy.HangUp().Times(1), func() error { _, err := c.UserByID(ctx, testCall(), refstore.DemoUserID); return err }, true, 2},
		{"reset once, read", faultproxy.Reset().Times(1), func() error {
			_, err := c.ActiveLiveStreams(ctx, testCall(), []string{refstore.DemoUserID})
			return err
		}, true, 2},
		{"503 always, read", faultproxy.Status(503), func() error { _, err := c.Search(ctx, testCall(), "ali", 5, 0); return err }, false, 3},
		{"500, read", faultproxy.Status(500).Times(1), func() error { _, err := c.Search(ctx, testCall(), "ali", 5, 0); return err }, false, 1},
		{"bad body, read", faultproxy.HTML().Times(1), func() error { _, err := c.Search(ctx, testCall(), "ali", 5, 0); return err }, false, 1},
		{"404, read", faultproxy.Status(404).Times(1), func() error { _, err := c.Search(ctx, testCall(), "ali", 5, 0); return err }, false, 1},
		{"503, POST", faultproxy.Status(503).Times(1), func() error { _, err := c.CheckUsername(ctx, testCall(), "x.y"); return err }, false, 1},
		{"hang-up, POST", faultproxy.HangUp().Times(1), func() error { _, err := c.CheckUsername(ctx, testCall(), "x.y"); return err }, false, 1},
	} {
		p.Set(tc.mode)
		before := p.Stats().Requests
		err := tc.call()
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if n := p.Stats().Requests - before; n != tc.requests {
			t.Errorf("%s: %d requests, want %d", tc.name, n, tc.requests)
		}
	}
	if obs.retried(OpUsernameCheck) != 0 {
		t.Fatal("the username check was retried")
	}
	if n := obs.retried(OpSearch); n != 3 {
		t.Fatalf("%d search retries, want 3", n)
	}

	// Refused connections are retried too (nothing reaches the proxy).
	p.Set(faultproxy.Refuse())
	_, err := c.UserByID(ctx, testCall(), refstore.DemoUserID)
	if e := kindAndOutcome(t, err, KindBadGateway, OutcomeConnect); e == nil || obs.retried(OpUserByID) != 1+2 {
		t.Fatalf("refused: %d user retries", obs.retried(OpUserByID))
	}
}

func TestCallAddsUpUpstreamTime(t *testing.T) {
	p := proxied(t)
	c, _ := newClient(t, testConfig(p.URL()))
	ctx := context.Background()
	call := testCall()
	p.SetPath("/internal/v1/users/search", faultproxy.Status(503).Times(1))
	p.SetPath("/internal/v1/live-streams/", faultproxy.Delay(50*time.Millisecond))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if _, err := c.Search(ctx, call, "ali", 5, 0); err != nil {
			t.Error(err)
		}
	}()
	go func() {
		defer wg.Done()
		if _, err := c.ActiveLiveStreams(ctx, call, []string{refstore.DemoUserID}); err != nil {
			t.Error(err)
		}
	}()
	wg.Wait()
	if call.Exchanges() != 3 || call.UpstreamTime() < 50*time.Millisecond {
		t.Fatalf("%d exchanges in %s; want 3 (a retried search and a live-stream look-up) and at least 50ms",
			call.Exchanges(), call.UpstreamTime())
	}
	var none *Call
	if none.Exchanges() != 0 || none.UpstreamTime() != 0 {
		t.Fatal("a nil Call reports time")
	}
}

func TestNoRetryWhenTheDeadlineCannotHoldIt(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.Search.Timeout = 200 * time.Millisecond
	cfg.Operations.Search.Retry = config.Retry{Attempts: 3, BaseBackoff: 150 * time.Millisecond, MaxBackoff: 150 * time.Millisecond}
	c, obs := newClient(t, cfg)
	p.Set(faultproxy.Status(503))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Search(ctx, testCall(), "ali", 5, 0)
	kindAndOutcome(t, err, KindBadGateway, OutcomeError5xx)
	if n := p.Stats().Requests; n != 1 || obs.retried(OpSearch) != 0 {
		t.Fatalf("%d requests, %d retries: 150ms backoff + 100ms do not fit in 200ms", n, obs.retried(OpSearch))
	}
}

// A retry that is not sent gives its slot back to the retry budget: one
// skipped because the breaker opened during its pause, one whose caller
// gave up during it, and one the breaker refused when it was sent (the
// breaker turned half-open during the pause, its one trial already
// taken). Kept, each slot would count as a retry sent for the whole
// window, and in a store outage the budget would run out faster than
// the retries reaching the store. None is reported sent either.
func TestRetryNotSentGivesBackItsBudget(t *testing.T) {
	const pause = 500 * time.Millisecond
	for _, tc := range []struct {
		name    string
		outcome string
		// duringPause runs while the first call waits out its pause,
		// its retry's slot taken.
		duringPause func(t *testing.T, c *Client, p *faultproxy.Proxy, cancel context.CancelFunc)
	}{
		{"breaker opened", OutcomeError5xx, func(t *testing.T, c *Client, _ *faultproxy.Proxy, _ context.CancelFunc) {
			_, err := c.Search(context.Background(), testCall(), "ali", 5, 0)
			kindAndOutcome(t, err, KindBadGateway, OutcomeError5xx)
			if b := breakerOf(c, OpSearch); b.State != "open" {
				t.Fatalf("breaker %+v", b)
			}
		}},
		{"caller gave up", OutcomeCanceled, func(t *testing.T, _ *Client, _ *faultproxy.Proxy, cancel context.CancelFunc) {
			cancel()
		}},
		{"refused by the half-open breaker", OutcomeBreakerOpen, func(t *testing.T, c *Client, p *faultproxy.Proxy, _ context.CancelFunc) {
			_, err := c.Search(context.Background(), testCall(), "ali", 5, 0)
			kindAndOutcome(t, err, KindBadGateway, OutcomeError5xx)
			for breakerOf(c, OpSearch).State != "half-open" {
				time.Sleep(time.Millisecond)
			}
			// The one trial is held at the proxy past the pause.
			p.Set(faultproxy.Delay(2 * pause))
			trial := make(chan struct{})
			t.Cleanup(func() { <-trial })
			go func() {
				defer close(trial)
				c.Search(context.Background(), testCall(), "ali", 5, 0)
			}()
			for p.Stats().Requests < 3 {
				time.Sleep(time.Millisecond)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := proxied(t)
			cfg := testConfig(p.URL())
			cfg.RetryBudget = config.RetryBudget{Ratio: 1, MinPerSecond: 0}
			cfg.Operations.Search.Retry = config.Retry{Attempts: 1, BaseBackoff: pause, MaxBackoff: pause}
			cfg.Operations.Search.Breaker.ConsecutiveFailures = 2
			cfg.Operations.Search.Breaker.HalfOpenRequests = 1
			if tc.outcome == OutcomeBreakerOpen {
				cfg.Operations.Search.Breaker.OpenTimeout = 20 * time.Millisecond
			} else {
				cfg.Operations.Search.Breaker.OpenTimeout = 5 * time.Second
			}
			c, obs := newClient(t, cfg)
			p.Set(faultproxy.Status(503))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			first := make(chan error, 1)
			go func() {
				_, err := c.Search(ctx, testCall(), "ali", 5, 0)
				first <- err
			}()
			for deadline := time.Now().Add(10 * time.Second); retriesTaken(c.budget) < 1; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the first call took no retry from the budget (ratio 1, one call)")
				}
			}
			tc.duringPause(t, c, p, cancel)
			err := <-first
			var e *Error
			if !errors.As(err, &e) || e.Outcome != tc.outcome {
				t.Fatalf("the paused call: %v, want outcome %s", err, tc.outcome)
			}
			if n := retriesTaken(c.budget); n != 0 {
				t.Fatalf("the budget holds %d retries; none was sent", n)
			}
			if n := obs.retried(OpSearch); n != 0 {
				t.Fatalf("%d retries reported sent; none was", n)
			}
		})
	}
}

// takeOne takes one retry from b, reporting whether there was one.
func takeOne(b *retryBudget) bool {
	_, ok := b.take()
	return ok
}

// retriesTaken is how many retries b counts in its window.
func retriesTaken(b *retryBudget) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, sec := b.bucket()
	var n int64
	for _, x := range b.buckets {
		if x.second > sec-budgetWindow {
			n += x.retries
		}
	}
	return n
}

// TestRetryBudgetUnderSustainedFailure: every call fails with 503; without
// a budget each of them would be tried three times.
func TestRetryBudgetUnderSustainedFailure(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.RetryBudget = config.RetryBudget{Ratio: 0.2, MinPerSecond: 1}
	c, obs := newClient(t, cfg)
	p.Set(faultproxy.Status(503))
	const calls = 50
	start := time.Now()
	budgetRefusals := 0
	for range calls {
		_, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID)
		var e *Error
		if !errors.As(err, &e) || !IsUpstreamFault(err) {
			t.Fatalf("got %v", err)
		}
		if e.Outcome == OutcomeBudget {
			budgetRefusals++
			if e.Kind != KindUnavailable || e.RetryAfter < time.Second {
				t.Fatalf("budget refusal %+v", e)
			}
		}
	}
	// The budget's seconds count from the client's creation, not from
	// start: a span of d seconds touches at most floor(d)+2 of them, each
	// with its MinPerSecond retry.
	seconds := int64(time.Since(start)/time.Second) + 2
	retries := p.Stats().Requests - calls
	if max := int64(0.2*calls) + seconds; retries > max || retries < 1 {
		t.Fatalf("%d retries for %d calls in %ds: want 1..%d", retries, calls, seconds, max)
	}
	if int64(obs.retried(OpUserByID)) != retries || budgetRefusals == 0 {
		t.Fatalf("observer saw %d retries, %d budget refusals", obs.retried(OpUserByID), budgetRefusals)
	}
}

func TestRetryBudgetWindow(t *testing.T) {
	b := newRetryBudget(config.RetryBudget{Ratio: 0.5, MinPerSecond: 0})
	if takeOne(b) {
		t.Fatal("a retry without calls")
	}
	for range 4 {
		b.called()
	}
	for i := range 2 {
		if !takeOne(b) {
			t.Fatalf("retry %d of 2 refused", i)
		}
	}
	if takeOne(b) {
		t.Fatal("a third retry for four calls at ratio 0.5")
	}
	// The window slides: calls and retries older than 10s are forgotten.
	b.epoch = b.epoch.Add(-budgetWindow * time.Second)
	if takeOne(b) {
		t.Fatal("forgotten calls still allow retries")
	}
	b.update(config.RetryBudget{Ratio: 0, MinPerSecond: 2})
	if !takeOne(b) || !takeOne(b) || takeOne(b) {
		t.Fatal("MinPerSecond 2 must allow exactly two retries this second")
	}
	// A slot given back can be taken again; one whose second has left the
	// window frees nothing in the current one.
	start := b.epoch
	b.epoch = start.Add(-budgetWindow * time.Second)
	slot, ok := b.take()
	if !ok || !takeOne(b) || takeOne(b) {
		t.Fatal("MinPerSecond 2 must allow exactly two retries in a later second")
	}
	b.giveBack(slot)
	if !takeOne(b) || takeOne(b) {
		t.Fatal("the slot given back was not taken again, or taken twice")
	}
	b.epoch = start.Add(-2 * budgetWindow * time.Second)
	if !takeOne(b) || !takeOne(b) {
		t.Fatal("MinPerSecond 2 must allow two retries in a later second")
	}
	b.giveBack(slot)
	if takeOne(b) {
		t.Fatal("a slot of a second out of the window was given back to the current one")
	}
}

func TestBackoffStaysInBounds(t *testing.T) {
	r := config.Retry{BaseBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	for n := 1; n <= 40; n++ {
		for range 50 {
			d := backoff(r, n)
			ceiling := min(r.MaxBackoff, r.BaseBackoff<<min(n, 20))
			if d < r.BaseBackoff || d > ceiling {
				t.Fatalf("retry %d: %s outside [%s, %s]", n, d, r.BaseBackoff, ceiling)
			}
		}
	}
}

func TestBulkheadFailsFast(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.Search.MaxInFlight = 2
	c, obs := newClient(t, cfg)
	p.Set(faultproxy.Delay(300 * time.Millisecond))
	ctx := context.Background()
	var wg sync.WaitGroup
	// Also when the test stops early: the calls' t.Errorf must come
	// before it ends.
	defer wg.Wait()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Search(ctx, testCall(), "ali", 5, 0); err != nil {
				t.Errorf("call within the bulkhead: %v", err)
			}
		}()
	}
	for p.Stats().Requests < 2 {
		time.Sleep(2 * time.Millisecond)
	}
	_, err := c.Search(ctx, testCall(), "ali", 5, 0)
	e := kindAndOutcome(t, err, KindUnavailable, OutcomeBulkheadFull)
	if e.RetryAfter < time.Second || !IsUpstreamFault(err) {
		t.Fatalf("bulkhead error %+v", e)
	}
	// Other operations have their own bulkhead.
	if _, err := c.UserByID(ctx, testCall(), refstore.DemoUserID); err != nil {
		t.Fatalf("userById while search is full: %v", err)
	}
	wg.Wait()
	if n := p.Stats().Requests; n != 3 {
		t.Fatalf("%d requests: the refused call must not reach the store", n)
	}
	if _, err := c.Search(ctx, testCall(), "ali", 5, 0); err != nil {
		t.Fatalf("after the bulkhead drained: %v", err)
	}
	if obs.outcomes(OpSearch, OutcomeBulkheadFull) != 1 {
		t.Fatalf("observer %v", obs.calls)
	}
	if b := breakerOf(c, OpSearch); b.Counts.Failures != 0 {
		t.Fatalf("a full bulkhead counted as a store failure: %+v", b)
	}
}

func TestPoolFullFailsFast(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.MaxConnsPerHost = 1
	cfg.DialTimeout = 200 * time.Millisecond // waits for a free connection up to 50ms
	eachOp(&cfg, func(o *config.Operation) { o.Breaker.ConsecutiveFailures = 1 })
	c, obs := newClient(t, cfg)
	p.Set(faultproxy.Delay(400 * time.Millisecond))
	ctx := context.Background()
	done := make(chan error)
	go func() {
		_, err := c.Search(ctx, testCall(), "ali", 5, 0)
		done <- err
	}()
	for p.Stats().Requests < 1 {
		time.Sleep(2 * time.Millisecond)
	}
	_, err := c.UserByID(ctx, testCall(), refstore.DemoUserID)
	e := kindAndOutcome(t, err, KindUnavailable, OutcomePoolFull)
	if e.RetryAfter < time.Second || obs.retried(OpUserByID) != 0 {
		t.Fatalf("pool full: %+v, %d retries", e, obs.retried(OpUserByID))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b := breakerOf(c, OpUserByID); b.State != "closed" || b.Counts.Exclusions != 1 {
		t.Fatalf("a full local pool is not the store's fault: %+v", b)
	}
}

// With operation timeouts shorter than a quarter of the dial timeout, the
// wait for a free connection follows them: a longer wait was cut by the
// attempt's deadline and reported as the store's timeout, opening its
// breaker although nothing was sent. A reload cannot go below the wait.
func TestPoolFullFailsFastUnderShortTimeouts(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.MaxConnsPerHost, cfg.DialTimeout = 1, time.Second
	eachOp(&cfg, func(o *config.Operation) {
		o.Timeout, o.Breaker.ConsecutiveFailures, o.Retry.Attempts = 200*time.Millisecond, 1, 0
	})
	cfg.Operations.Search.Timeout = time.Second
	c, _ := newClient(t, cfg)
	p.Set(faultproxy.Delay(400 * time.Millisecond))
	done := make(chan error)
	go func() {
		_, err := c.Search(context.Background(), testCall(), "ali", 5, 0)
		done <- err
	}()
	for p.Stats().Requests < 1 {
		time.Sleep(2 * time.Millisecond)
	}
	before := p.Stats().Requests
	_, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID)
	kindAndOutcome(t, err, KindUnavailable, OutcomePoolFull)
	if sent := p.Stats().Requests - before; sent != 0 {
		t.Fatalf("%d requests sent while the pool was full", sent)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b := breakerOf(c, OpUserByID); b.State != "closed" {
		t.Fatalf("a full local pool opened the breaker: %+v", b)
	}

	// The wait is 200ms/4, fixed until a restart.
	shorter := cfg
	shorter.Operations.UserByID.Timeout = 50 * time.Millisecond
	if err := c.Update(shorter); err == nil || !strings.Contains(err.Error(), "operations.userById.timeout") {
		t.Fatalf("a timeout at the connection wait was accepted on reload: %v", err)
	}
	if got := c.op(OpUserByID).settings.Load().Timeout; got != 200*time.Millisecond {
		t.Fatalf("the refused reload changed the timeout to %s", got)
	}
	shorter.Operations.UserByID.Timeout = 60 * time.Millisecond
	if err := c.Update(shorter); err != nil {
		t.Fatalf("a timeout above the wait was refused: %v", err)
	}
}

func breakerOf(c *Client, op Op) BreakerStatus {
	for _, b := range c.Breakers() {
		if b.Op == op {
			return b
		}
	}
	panic("no breaker for " + op)
}

func TestBreakerOpensOnFaultsOnly(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	eachOp(&cfg, func(o *config.Operation) {
		o.Retry.Attempts = 0
		o.Breaker.ConsecutiveFailures = 3
		o.Breaker.OpenTimeout = 2 * time.Second
	})
	var logs strings.Builder
	var logMu sync.Mutex
	cfgLogger := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	obs := &recorder{}
	c, err := New(cfg, cfgLogger, obs)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	calls := callsByOp(c)

	// Real answers never trip it.
	for _, status := range []int{400, 404, 409} {
		p.Set(faultproxy.Status(status))
		for range 5 {
			if err := calls[OpUserByID](); IsUpstreamFault(err) {
				t.Fatalf("%d: %v", status, err)
			}
		}
	}
	if b := breakerOf(c, OpUserByID); b.State != "closed" || b.Counts.Successes != 15 || b.Counts.Failures != 0 {
		t.Fatalf("after 400/404/409: %+v", b)
	}

	// Three faults in a row open it.
	p.Set(faultproxy.Status(500))
	for range 3 {
		kindAndOutcome(t, calls[OpUserByID](), KindBadGateway, OutcomeError5xx)
	}
	b := breakerOf(c, OpUserByID)
	if b.State != "open" || b.RetryAfter < time.Second || b.RetryAfter > 2*time.Second || time.Until(b.OpenUntil) <= 0 {
		t.Fatalf("after 3 faults: %+v", b)
	}
	before := p.Stats().Requests
	for range 50 {
		e := kindAndOutcome(t, calls[OpUserByID](), KindUnavailable, OutcomeBreakerOpen)
		if e.RetryAfter < time.Second || e.RetryAfter > 2*time.Second || !IsUpstreamFault(e) {
			t.Fatalf("open breaker error %+v", e)
		}
	}
	if p.Stats().Requests != before {
		t.Fatal("calls reached the store while the breaker was open")
	}
	// Only this operation's breaker opened.
	calls[OpSearch]()
	if breakerOf(c, OpSearch).State != "closed" {
		t.Fatalf("search breaker %+v", breakerOf(c, OpSearch))
	}
	if got := obs.transitions(); len(got) != 1 || got[0] != "userById closed>open" {
		t.Fatalf("observer transitions %v", got)
	}
	logMu.Lock()
	text := logs.String()
	logMu.Unlock()
	if !strings.Contains(text, "op=userById from=closed to=open") {
		t.Fatalf("log: %s", text)
	}
}

func TestBreakerHalfOpenTrialsAndRecovery(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.Search.Retry.Attempts = 0
	cfg.Operations.Search.Breaker.ConsecutiveFailures = 2
	// Long enough that "open" is still what a busy machine reads after the
	// failures; the test waits for half-open rather than sleeping past it.
	cfg.Operations.Search.Breaker.OpenTimeout = time.Second
	cfg.Operations.Search.Breaker.HalfOpenRequests = 2
	cfg.Operations.Search.Timeout = 5 * time.Second // well above the slow trials' 1s
	c, obs := newClient(t, cfg)
	ctx := context.Background()
	search := func() error { _, err := c.Search(ctx, testCall(), "ali", 5, 0); return err }
	halfOpen := func() {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); breakerOf(c, OpSearch).State != "half-open"; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the breaker did not turn half-open: %+v", breakerOf(c, OpSearch))
			}
		}
	}

	p.Set(faultproxy.Status(502))
	search()
	search()
	if breakerOf(c, OpSearch).State != "open" {
		t.Fatal("not open after 2 faults")
	}
	// A failing trial re-opens it.
	halfOpen()
	kindAndOutcome(t, search(), KindBadGateway, OutcomeError5xx)
	if breakerOf(c, OpSearch).State != "open" {
		t.Fatal("a failed trial must re-open the breaker")
	}

	// Healthy but slow: while HalfOpenRequests trials are in flight, every
	// other call is refused at once without reaching the store.
	halfOpen()
	p.Set(faultproxy.Delay(time.Second)) // the trials stay in flight through the calls below
	before := p.Stats().Requests
	trials := make(chan error, 2)
	for range 2 {
		go func() { trials <- search() }()
	}
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Requests-before < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the 2 trials did not reach the store: %d requests", p.Stats().Requests-before)
		}
	}
	outcomes := map[string]int{}
	for range 4 {
		outcomes[outcomeOf(search())]++
	}
	for range 2 {
		outcomes[outcomeOf(<-trials)]++
	}
	if n := p.Stats().Requests - before; n != 2 || outcomes[OutcomeOK] != 2 || outcomes[OutcomeBreakerOpen] != 4 {
		t.Fatalf("half-open: %d requests, outcomes %v", n, outcomes)
	}
	if b := breakerOf(c, OpSearch); b.State != "closed" {
		t.Fatalf("2 good trials must close it: %+v", b)
	}
	p.Heal()
	for range 5 {
		if err := search(); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	}
	want := []string{"search closed>open", "search open>half-open", "search half-open>open", "search open>half-open", "search half-open>closed"}
	if got := obs.transitions(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("transitions %v, want %v", got, want)
	}
}

// An attempt that panics (a bug, not the store) is reported to its breaker
// as a failure before the panic goes on, as gobreaker's Execute does: a
// half-open breaker's trial that panicked does not hold its trial slot for
// good, so the next trial is let through.
func TestBreakerCountsAPanickingAttempt(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1") // never dialed: the exchange below stands in for the store
	cfg.Operations.Search.Retry.Attempts = 0
	cfg.Operations.Search.Breaker.ConsecutiveFailures = 1
	cfg.Operations.Search.Breaker.HalfOpenRequests = 1
	c, _ := newClient(t, cfg)
	const (
		fail = iota
		panics
		answers
	)
	mode := fail
	o := c.op(OpSearch)
	o.run = c.chain(o, func(context.Context, *request) error {
		switch mode {
		case fail:
			return newError(OpSearch, OutcomeError5xx, errors.New("status 502"))
		case panics:
			panic("a bug in an attempt")
		}
		return nil
	})
	search := func() (err error, panicked any) {
		defer func() { panicked = recover() }()
		_, err = c.Search(context.Background(), testCall(), "ali", 5, 0)
		return err, nil
	}

	if err, _ := search(); outcomeOf(err) != OutcomeError5xx || breakerOf(c, OpSearch).State != "open" {
		t.Fatalf("a failure: %v, breaker %+v", err, breakerOf(c, OpSearch))
	}
	for deadline := time.Now().Add(10 * time.Second); breakerOf(c, OpSearch).State != "half-open"; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the breaker did not turn half-open: %+v", breakerOf(c, OpSearch))
		}
	}
	mode = panics
	if _, p := search(); p == nil {
		t.Fatal("the trial's panic did not reach the caller")
	}
	if b := breakerOf(c, OpSearch); b.State != "open" {
		t.Fatalf("a trial that panicked must re-open the breaker: %+v", b)
	}
	for deadline := time.Now().Add(10 * time.Second); breakerOf(c, OpSearch).State != "half-open"; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the breaker did not turn half-open again: %+v", breakerOf(c, OpSearch))
		}
	}
	mode = answers
	if err, _ := search(); err != nil {
		t.Fatalf("the next trial: %v", err)
	}
	if b := breakerOf(c, OpSearch); b.State != "closed" {
		t.Fatalf("a good trial must close the breaker: %+v", b)
	}
}

func TestBreakerFailureRatio(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.Search.Retry.Attempts = 0
	cfg.Operations.Search.Breaker = config.Breaker{
		FailureRatio: 0.5, MinRequests: 10, Interval: time.Minute, OpenTimeout: time.Second, HalfOpenRequests: 1,
	}
	c, _ := newClient(t, cfg)
	p.Set(faultproxy.Flap(1, faultproxy.Status(500))) // ok, fail, ok, fail…
	for i := range 9 {
		c.Search(context.Background(), testCall(), "ali", 5, 0)
		if s := breakerOf(c, OpSearch).State; s != "closed" {
			t.Fatalf("open after %d calls, before MinRequests", i+1)
		}
	}
	c.Search(context.Background(), testCall(), "ali", 5, 0) // the 10th: 5 of 10 failed
	if b := breakerOf(c, OpSearch); b.State != "open" {
		t.Fatalf("after 10 calls at 50%%: %+v", b)
	}
}

func TestUpdateRebuildsOnlyChangedBreakers(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	eachOp(&cfg, func(o *config.Operation) {
		o.Retry.Attempts = 0
		o.Breaker.ConsecutiveFailures = 1
		o.Breaker.OpenTimeout = time.Minute
	})
	c, _ := newClient(t, cfg)
	p.Set(faultproxy.Status(500))
	for _, call := range callsByOp(c) {
		call()
	}
	for _, b := range c.Breakers() {
		if b.State != "open" {
			t.Fatalf("%s not open", b.Op)
		}
	}
	cfg.Operations.Search.Breaker.ConsecutiveFailures = 5
	cfg.Operations.UserByID.Timeout = 2 * time.Second // not a breaker setting
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	for _, b := range c.Breakers() {
		if want := map[bool]string{true: "closed", false: "open"}[b.Op == OpSearch]; b.State != want {
			t.Errorf("%s: %s, want %s", b.Op, b.State, want)
		}
	}
}

func TestLiveStreamsUseTheirOwnBaseURL(t *testing.T) {
	main := proxied(t)
	live := proxied(t)
	cfg := testConfig(main.URL())
	cfg.LiveStreamsBaseURL = live.URL() + "/"
	c, _ := newClient(t, cfg)
	ctx := context.Background()
	if _, err := c.ActiveLiveStreams(ctx, testCall(), []string{refstore.DemoUserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UserByID(ctx, testCall(), refstore.DemoUserID); err != nil {
		t.Fatal(err)
	}
	if main.Stats().Requests != 1 || live.Stats().Requests != 1 {
		t.Fatalf("main saw %d, live saw %d", main.Stats().Requests, live.Stats().Requests)
	}
}

func TestBaseURLPathPrefix(t *testing.T) {
	p := proxied(t)
	p.Record(true)
	c, _ := newClient(t, testConfig(p.URL()+"/userstore/"))
	c.UserByID(context.Background(), testCall(), refstore.DemoUserID)
	if seen := p.Seen(); len(seen) != 1 || seen[0].RequestURI != "/userstore/internal/v1/users/"+refstore.DemoUserID {
		t.Fatalf("seen %+v", seen)
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	good := testConfig("http://127.0.0.1:1")
	for name, change := range map[string]func(*config.UserStore){
		"no base URL":     func(c *config.UserStore) { c.BaseURL = "" },
		"relative URL":    func(c *config.UserStore) { c.BaseURL = "/x" },
		"ftp":             func(c *config.UserStore) { c.BaseURL = "ftp://h" },
		"credentials":     func(c *config.UserStore) { c.BaseURL = "http://u:p@h" },
		"query":           func(c *config.UserStore) { c.LiveStreamsBaseURL = "http://h/?a=1" },
		"no conns":        func(c *config.UserStore) { c.MaxConnsPerHost = 0 },
		"no dial timeout": func(c *config.UserStore) { c.DialTimeout = 0 },
		"no body":         func(c *config.UserStore) { c.MaxResponseBytes = 0 },
		"no timeout":      func(c *config.UserStore) { c.Operations.Search.Timeout = 0 },
		"no trip rule":    func(c *config.UserStore) { c.Operations.Search.Breaker.ConsecutiveFailures = 0 },
		"backoff order": func(c *config.UserStore) {
			c.Operations.Search.Retry.MaxBackoff = c.Operations.Search.Retry.BaseBackoff / 2
		},
	} {
		cfg := good
		change(&cfg)
		if c, err := New(cfg, nil, nil); err == nil {
			c.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	c, err := New(good, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// A call the bulkhead refuses never counts as in flight: the count is the
// calls admitted, never above MaxInFlight. It added itself before it
// looked, so while refused calls crowded in, the count ran past the cap
// and a call that arrived as a slot freed could be refused with fewer
// than MaxInFlight running.
func TestBulkheadCountsOnlyAdmittedCalls(t *testing.T) {
	const max = 2
	o := &operation{op: OpSearch}
	o.settings.Store(&config.Operation{MaxInFlight: max})
	admitted := make(chan struct{}, max)
	release := make(chan struct{})
	run := withBulkhead(o)(func(context.Context, *request) error {
		admitted <- struct{}{}
		<-release
		return nil
	})
	var held sync.WaitGroup
	for range max {
		held.Go(func() { _ = run(t.Context(), nil) })
		<-admitted
	}
	defer held.Wait()
	defer close(release)

	stop := make(chan struct{})
	var spam sync.WaitGroup
	for range 2 {
		spam.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := run(t.Context(), nil); err == nil {
					t.Error("a call was admitted over the cap")
				}
			}
		})
	}
	// Watched for a while rather than for a number of looks: on a busy
	// machine 200,000 looks could end before the refused calls ran.
	var over int64
	for start := time.Now(); time.Since(start) < 200*time.Millisecond && over <= max; {
		for range 10_000 {
			if n := o.inFlight.Load(); n > over {
				over = n
			}
		}
	}
	close(stop)
	spam.Wait()
	if over > max {
		t.Errorf("in flight reached %d with a cap of %d: refused calls were counted", over, max)
	}
}

// The failure-ratio rule weighs only the attempts the store answered:
// calls excluded from counting (here the caller gave up) count towards
// neither minRequests nor the ratio (docs/resilience.md, "What counts as a
// failure").
func TestBreakerRatioLeavesOutExcludedCalls(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.Search.Retry.Attempts = 0
	cfg.Operations.Search.Breaker = config.Breaker{
		FailureRatio: 0.5, MinRequests: 4, Interval: time.Minute, OpenTimeout: time.Minute, HalfOpenRequests: 1,
	}
	c, _ := newClient(t, cfg)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for range 2 {
		_, err := c.Search(gone, testCall(), "ali", 5, 0)
		kindAndOutcome(t, err, KindCanceled, OutcomeCanceled)
	}
	p.Set(faultproxy.Status(500))
	for i := range 4 {
		_, err := c.Search(context.Background(), testCall(), "ali", 5, 0)
		kindAndOutcome(t, err, KindBadGateway, OutcomeError5xx)
		b := breakerOf(c, OpSearch)
		if i < 3 && (b.State != "closed" || b.Counts.Exclusions != 2) {
			t.Fatalf("after %d failures and 2 excluded calls (minRequests 4): %+v", i+1, b)
		}
		if i == 3 && b.State != "open" {
			t.Fatalf("after 4 failures of 4 counted: %+v", b)
		}
	}
}

// Breakers reports each count of the current window under its own name
// (GET /ops/v1/breakers shows them).
func TestBreakersReportTheirCounts(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.UserByID.Retry.Attempts = 0
	c, _ := newClient(t, cfg)
	ctx := context.Background()
	user := func(ctx context.Context) error {
		_, err := c.UserByID(ctx, testCall(), refstore.DemoUserID)
		return err
	}
	if err := user(ctx); err != nil {
		t.Fatal(err)
	}
	p.Set(faultproxy.Status(500))
	user(ctx)
	user(ctx)
	gone, cancel := context.WithCancel(ctx)
	cancel()
	user(gone)
	want := BreakerCounts{Requests: 4, Successes: 1, Failures: 2, Exclusions: 1, ConsecutiveFailures: 2}
	if b := breakerOf(c, OpUserByID); b.Counts != want {
		t.Fatalf("after a success, 2 failures and a canceled call: %+v, want %+v", b.Counts, want)
	}
	p.Heal()
	if err := user(ctx); err != nil {
		t.Fatal(err)
	}
	want = BreakerCounts{Requests: 5, Successes: 2, Failures: 2, Exclusions: 1, ConsecutiveSuccesses: 1}
	if b := breakerOf(c, OpUserByID); b.Counts != want {
		t.Fatalf("after one more success: %+v, want %+v", b.Counts, want)
	}
}

// An open breaker tells callers to come back when it turns half-open:
// the time left, rounded up to whole seconds, at least one.
func TestOpenBreakerRetryAfterIsTheTimeToHalfOpen(t *testing.T) {
	b := &breaker{}
	now := time.Now()
	if got := b.retryAfter(now); got != time.Second {
		t.Fatalf("not open: %s, want 1s", got)
	}
	for _, tc := range []struct{ left, want time.Duration }{
		{-time.Second, time.Second}, {0, time.Second}, {300 * time.Millisecond, time.Second},
		{time.Second, time.Second}, {time.Second + time.Nanosecond, 2 * time.Second}, {4500 * time.Millisecond, 5 * time.Second},
	} {
		b.openUntil.Store(now.Add(tc.left).UnixNano())
		if got := b.retryAfter(now); got != tc.want {
			t.Errorf("%s left: Retry-After %s, want %s", tc.left, got, tc.want)
		}
	}

	// What a refused call carries, and what Breakers shows.
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.Search.Retry.Attempts = 0
	cfg.Operations.Search.Breaker.ConsecutiveFailures = 1
	cfg.Operations.Search.Breaker.OpenTimeout = 5 * time.Second
	c, _ := newClient(t, cfg)
	p.Set(faultproxy.Status(500))
	c.Search(context.Background(), testCall(), "ali", 5, 0)
	_, err := c.Search(context.Background(), testCall(), "ali", 5, 0)
	e := kindAndOutcome(t, err, KindUnavailable, OutcomeBreakerOpen)
	// 5s from the opening, less what the calls took: 5s, or 4s on a
	// machine that stalled over a second.
	if e.RetryAfter < 4*time.Second || e.RetryAfter > 5*time.Second {
		t.Fatalf("Retry-After %s with 5s until half-open", e.RetryAfter)
	}
	if s := breakerOf(c, OpSearch); s.RetryAfter < 4*time.Second || s.RetryAfter > 5*time.Second {
		t.Fatalf("Breakers: %+v", s)
	}
}

// The breaker's counting window rolls in ten buckets: a failure ages out
// one interval after it was counted, not when a fixed window that began
// before it ends (docs/resilience.md, interval). Timing-based: a round in
// which the machine stalled past the margins (a second) is run again.
func TestBreakerWindowRolls(t *testing.T) {
	const interval = 4 * time.Second // buckets of 400ms
	c, _ := newClient(t, testConfig("http://127.0.0.1:1"))
	fail := func() error { return newError(OpSearch, OutcomeError5xx, errors.New("status 500")) }
	for range 3 {
		start := time.Now()
		b := c.newBreaker(OpSearch, config.Breaker{
			ConsecutiveFailures: 100, Interval: interval, OpenTimeout: time.Second, HalfOpenRequests: 1,
		})
		// A failure in the window's second half...
		time.Sleep(time.Until(start.Add(interval / 2)))
		b.cb.Execute(func() (struct{}, error) { return struct{}{}, fail() })
		if time.Since(start) > interval*3/4 {
			continue
		}
		// ...is still counted an eighth of an interval after the first
		// interval ended (a fixed window would have been wiped), and
		// would be until about an interval after it was counted.
		time.Sleep(time.Until(start.Add(interval * 9 / 8)))
		b.cb.State() // moves the window on, as Breakers does
		n := b.cb.Counts()
		if time.Since(start) > interval*11/8 {
			continue
		}
		if n.TotalFailures != 1 {
			t.Fatalf("the failure was dropped %s after it, within the interval of %s: %+v", interval*5/8, interval, n)
		}
		return
	}
	t.Fatal("the machine stalled past the test's margins (a second) in each of three rounds")
}

// The in-flight cap follows a reload, as every operation setting but the
// connection pool's does.
func TestUpdateChangesTheBulkheadLive(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1") // never dialed: the exchange below stands in for the store
	cfg.Operations.Search.MaxInFlight = 2
	c, _ := newClient(t, cfg)
	entered, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	o := c.op(OpSearch)
	o.run = c.chain(o, func(context.Context, *request) error {
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		return newError(OpSearch, OutcomeError5xx, errors.New("status 500"))
	})
	cfg.Operations.Search.MaxInFlight = 1
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	held := make(chan error)
	go func() {
		_, err := c.Search(context.Background(), testCall(), "ali", 5, 0)
		held <- err
	}()
	<-entered
	_, err := c.Search(context.Background(), testCall(), "ali", 5, 0)
	close(release)
	<-held
	kindAndOutcome(t, err, KindUnavailable, OutcomeBulkheadFull)
}

// A call whose caller's deadline has already passed sends nothing and is
// not held against the store (docs/resilience.md: the request's deadline
// is not counted).
func TestCallPastItsDeadlineIsNotCounted(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.UserByID.Breaker.ConsecutiveFailures = 1
	c, _ := newClient(t, cfg)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := c.UserByID(ctx, testCall(), refstore.DemoUserID)
	kindAndOutcome(t, err, KindTimeout, OutcomeTimeout)
	if b := breakerOf(c, OpUserByID); b.State != "closed" || b.Counts.Failures != 0 || b.Counts.Exclusions != 1 {
		t.Fatalf("breaker %+v", b)
	}
	if n := p.Stats().Requests; n != 0 {
		t.Fatalf("%d requests", n)
	}
}

// A retry goes out when the request's deadline holds its pause and half
// an attempt, even though not a whole attempt.
func TestRetryWhenTheDeadlineHoldsHalfAnAttempt(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.Search.Timeout = time.Second
	cfg.Operations.Search.Retry = config.Retry{Attempts: 1, BaseBackoff: 100 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	c, obs := newClient(t, cfg)
	p.Set(faultproxy.Status(503).Times(1))
	// 1s holds the 100ms pause and half of the 1s attempt, not all of it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := c.Search(ctx, testCall(), "ali", 5, 0); err != nil {
		t.Fatalf("not retried: %v", err)
	}
	if n := p.Stats().Requests; n != 2 || obs.retried(OpSearch) != 1 {
		t.Fatalf("%d requests, %d retries", n, obs.retried(OpSearch))
	}
}

// A connect that timed out is not retried (docs/resilience.md: connection
// refused, not a dial timeout): the store may be overloaded, and a retry
// would wait out another dial timeout. Here the TLS handshake stalls, a
// connect failure too.
func TestDialTimeoutIsNotRetried(t *testing.T) {
	cfg := testConfig(silentTLSStore(t))
	cfg.DialTimeout = 100 * time.Millisecond
	c, obs := newClient(t, cfg)
	call := testCall()
	_, err := c.UserByID(context.Background(), call, refstore.DemoUserID)
	kindAndOutcome(t, err, KindTimeout, OutcomeConnect)
	if n := call.Exchanges(); n != 1 || obs.retried(OpUserByID) != 0 {
		t.Fatalf("%d exchanges, %d retries: a dial timeout was retried", n, obs.retried(OpUserByID))
	}
}

// Retries are jittered over the whole range, from BaseBackoff to
// min(MaxBackoff, BaseBackoff·2ⁿ), so that callers failing together do
// not retry in lockstep.
func TestBackoffIsJittered(t *testing.T) {
	r := config.Retry{BaseBackoff: 10 * time.Millisecond, MaxBackoff: time.Second}
	for n, ceiling := range map[int]time.Duration{1: 20 * time.Millisecond, 2: 40 * time.Millisecond} {
		low, high := ceiling, time.Duration(0)
		for range 1000 {
			d := backoff(r, n)
			low, high = min(low, d), max(high, d)
		}
		// Out of 1000 uniform draws, none in the bottom or top quarter
		// happens once in 10^120 runs.
		span := ceiling - r.BaseBackoff
		if low > r.BaseBackoff+span/4 || high < ceiling-span/4 || high > ceiling || low < r.BaseBackoff {
			t.Errorf("retry %d: pauses from %s to %s, want spread over [%s, %s]", n, low, high, r.BaseBackoff, ceiling)
		}
	}
}

// durations is an Observer that keeps the duration of each call.
type durations struct {
	nopObserver
	mu sync.Mutex
	d  []time.Duration
}

func (o *durations) Call(_ Op, _ string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.d = append(o.d, d)
}

// The observer is told how long each call took, the store's time included.
func TestObserverTimesTheCall(t *testing.T) {
	p := proxied(t)
	obs := &durations{}
	c, err := New(testConfig(p.URL()), nil, obs)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.Set(faultproxy.Delay(100 * time.Millisecond))
	if _, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID); err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.d) != 1 || obs.d[0] < 100*time.Millisecond {
		t.Fatalf("durations %v for one call to a store that takes 100ms", obs.d)
	}
}

// The dial timeout stays capped by the shortest operation timeout after a
// reload that shortens them (fasthttp cannot interrupt a dial: the
// attempt's deadline does not end it). Here the TLS handshake stalls,
// which the dial timeout bounds.
func TestUpdateCapsTheDialTimeout(t *testing.T) {
	cfg := testConfig(silentTLSStore(t))
	cfg.DialTimeout = 3 * time.Second
	eachOp(&cfg, func(o *config.Operation) { o.Timeout, o.Retry.Attempts = 3*time.Second, 0 })
	c, _ := newClient(t, cfg)
	eachOp(&cfg, func(o *config.Operation) { o.Timeout = time.Second })
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := c.CheckUsername(context.Background(), testCall(), "sukru.isik")
	kindAndOutcome(t, err, KindTimeout, OutcomeConnect)
	// 1s, now the shortest operation timeout, not the 3s dial timeout.
	if took := time.Since(start); took >= 2500*time.Millisecond {
		t.Fatalf("the handshake stalled %s after a reload to 1s timeouts", took)
	}
}

// silentTLSStore is the https URL of a listener that accepts connections
// and never answers: a TLS handshake with it stalls.
func silentTLSStore(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted // conns is the accepting goroutine's until it ends
		for _, c := range conns {
			c.Close()
		}
	})
	return "https://" + ln.Addr().String()
}

// Every setting the client cannot work with is refused at start, not
// left to a library default (gobreaker takes an open timeout of 0 for 60s).
func TestNewRejectsEveryBadSetting(t *testing.T) {
	good := testConfig("http://127.0.0.1:1")
	for name, change := range map[string]func(*config.UserStore){
		"no idle duration":      func(c *config.UserStore) { c.MaxIdleConnDuration = 0 },
		"body over 1GiB":        func(c *config.UserStore) { c.MaxResponseBytes = 1<<30 + 1 },
		"budget ratio over 1":   func(c *config.UserStore) { c.RetryBudget.Ratio = 1.5 },
		"negative budget ratio": func(c *config.UserStore) { c.RetryBudget.Ratio = -0.1 },
		"negative minPerSecond": func(c *config.UserStore) { c.RetryBudget.MinPerSecond = -1 },
		"no in-flight calls":    func(c *config.UserStore) { c.Operations.UserByID.MaxInFlight = 0 },
		"negative attempts":     func(c *config.UserStore) { c.Operations.Search.Retry.Attempts = -1 },
		"no base backoff":       func(c *config.UserStore) { c.Operations.Search.Retry.BaseBackoff = 0 },
		"failure ratio over 1":  func(c *config.UserStore) { c.Operations.LiveStreams.Breaker.FailureRatio = 1.5 },
		"ratio without minimum": func(c *config.UserStore) {
			c.Operations.Search.Breaker.FailureRatio, c.Operations.Search.Breaker.MinRequests = 0.5, 0
		},
		"negative interval":   func(c *config.UserStore) { c.Operations.Search.Breaker.Interval = -time.Second },
		"no open timeout":     func(c *config.UserStore) { c.Operations.UsernameCheck.Breaker.OpenTimeout = 0 },
		"no half-open trials": func(c *config.UserStore) { c.Operations.UserByID.Breaker.HalfOpenRequests = 0 },
		"timeout past any request's": func(c *config.UserStore) {
			c.Operations.Search.Timeout = config.MaxRequestTimeout + time.Millisecond
		},
	} {
		cfg := good
		change(&cfg)
		if c, err := New(cfg, nil, nil); err == nil {
			c.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	// The longest timeout a valid configuration can give an operation
	// (server.requestTimeout's bound) is accepted, at start and by a reload.
	cfg := good
	cfg.Operations.Search.Timeout = config.MaxRequestTimeout
	c, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatalf("an operation timeout of config.MaxRequestTimeout: %v", err)
	}
	defer c.Close()
	if err := c.Update(cfg); err != nil {
		t.Fatalf("a reload to an operation timeout of config.MaxRequestTimeout: %v", err)
	}
}

// A reload applies the retry budget too.
func TestUpdateChangesTheRetryBudget(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	c, _ := newClient(t, cfg)
	cfg.RetryBudget = config.RetryBudget{Ratio: 0, MinPerSecond: 0}
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	p.Set(faultproxy.Status(503).Times(1))
	_, err := c.Search(context.Background(), testCall(), "ali", 5, 0)
	kindAndOutcome(t, err, KindUnavailable, OutcomeBudget)
}

// TestUpdateLengthensTimeoutsPastThePoolsOwn: the connection pool is built
// at start with read and write timeouts of its own (10s, or twice the
// longest operation timeout of the file it started with), and fasthttp
// ends an exchange at the earlier of them and the attempt's deadline. An
// operation timeout a reload lengthens past them must still be the one
// that bounds the attempt.
func TestUpdateLengthensTimeoutsPastThePoolsOwn(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 10.5s for the store")
	}
	p := proxied(t)
	cfg := testConfig(p.URL())
	c, _ := newClient(t, cfg)
	cfg.Operations.UserByID.Timeout = 15 * time.Second
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	p.Set(faultproxy.Delay(10500 * time.Millisecond))
	start := time.Now()
	if _, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID); err != nil {
		t.Fatalf("a 15s timeout, a store answering in 10.5s: %v after %s", err, time.Since(start).Round(time.Millisecond))
	}
}

// TestRetiredBreakerReportsNothing: a reload that changes a breaker's
// settings replaces it, and calls already running report to the one they
// started on. That breaker serves no call any more: its tripping is no
// state change of the operation's breaker, and must not be logged or
// counted as one (gateway_breaker_transitions_total, which the runbook's
// alert watches).
func TestRetiredBreakerReportsNothing(t *testing.T) {
	p := proxied(t)
	cfg := testConfig(p.URL())
	cfg.Operations.UserByID.Timeout = time.Second
	cfg.Operations.UserByID.Retry.Attempts = 0
	cfg.Operations.UserByID.Breaker.ConsecutiveFailures = 1
	logged := lockedWriter{mu: new(sync.Mutex), b: new(strings.Builder)}
	obs := &recorder{}
	c, err := New(cfg, slog.New(slog.NewTextHandler(logged, nil)), obs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p.Set(faultproxy.Delay(3 * time.Second))
	done := make(chan error, 1)
	go func() {
		_, err := c.UserByID(context.Background(), testCall(), refstore.DemoUserID)
		done <- err
	}()
	// The call is on its way, on the breaker the reload replaces.
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Requests == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the call did not reach the store")
		}
	}
	cfg.Operations.UserByID.Breaker.ConsecutiveFailures = 2
	if err := c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	kindAndOutcome(t, <-done, KindTimeout, OutcomeTimeout)
	if b := breakerOf(c, OpUserByID); b.State != "closed" {
		t.Fatalf("the operation's breaker is %s", b.State)
	}
	if tr := obs.transitions(); len(tr) != 0 {
		t.Errorf("transitions reported: %v", tr)
	}
	logged.mu.Lock()
	defer logged.mu.Unlock()
	if s := logged.b.String(); strings.Contains(s, "state changed") {
		t.Errorf("logged: %s", s)
	}
}
