package upstream

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/bffgate/edge/config"
)

var errBudgetSpent = errors.New("retry budget spent")

// withRetry retries idempotent reads (never the username check, a POST)
// when an attempt failed in a way that is safe and worth retrying
// (retryable), up to Retry.Attempts more times, with jittered exponential
// backoff. It gives up, returning the last failure, when the breaker has
// opened (before or during the pause) or the caller's deadline cannot hold
// the backoff plus half an attempt; and it fails the call with
// KindUnavailable (outcome budget) when the shared retry budget has no
// retry left.
//
// A retry takes its slot from the budget before its pause, so that calls
// pausing together cannot all count on the same last slot; one that is
// then not sent (the breaker opened, the caller gave up, or the breaker or
// the connection pool refused it) gives the slot back, and is not
// reported as a retry.
func withRetry(o *operation, budget *retryBudget, obs Observer) func(exchange) exchange {
	return func(next exchange) exchange {
		return func(ctx context.Context, r *request) error {
			budget.called()
			err := next(ctx, r)
			if !o.idempotent {
				return err
			}
			s := o.settings.Load()
			for n := 1; n <= s.Retry.Attempts && retryable(err); n++ {
				if o.breaker.Load().open() {
					return err
				}
				pause := backoff(s.Retry, n)
				if d, ok := ctx.Deadline(); ok && time.Until(d) < pause+s.Timeout/2 {
					return err
				}
				slot, ok := budget.take()
				if !ok {
					return unavailable(o.op, OutcomeBudget, 0, errors.Join(errBudgetSpent, err))
				}
				if cerr := sleep(ctx, o.op, pause); cerr != nil {
					budget.giveBack(slot)
					return cerr
				}
				// Other calls may have opened the breaker during the
				// pause: the retry would only be refused by it.
				if o.breaker.Load().open() {
					budget.giveBack(slot)
					return err
				}
				err = next(ctx, r)
				if refusedUnsent(err) {
					budget.giveBack(slot)
					return err
				}
				obs.Retry(o.op)
			}
			return err
		}
	}
}

// refusedUnsent reports whether an attempt was refused before it reached
// the store (KindUnavailable: the breaker, or no free connection).
func refusedUnsent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == KindUnavailable
}

// retryable reports whether a failed attempt may be sent again: the
// connection was refused, or closed or reset before the whole response
// arrived, or the store answered 503. Timeouts are not retried (the store
// may still be working on it, and a retry would double the load on a slow
// store), nor are other 5xx or bad bodies (the answer would be the same).
func retryable(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.notStoreFault {
		return false
	}
	switch e.Outcome {
	case OutcomeReset:
		return true
	case OutcomeConnect:
		var ne net.Error
		return !(errors.As(e.Err, &ne) && ne.Timeout())
	case OutcomeError5xx:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

// backoff is the pause before retry n (1-based): uniformly random between
// BaseBackoff and min(MaxBackoff, BaseBackoff·2ⁿ), so concurrent callers
// do not retry in lockstep.
func backoff(r config.Retry, n int) time.Duration {
	ceiling := r.MaxBackoff
	if n < 30 {
		ceiling = min(ceiling, r.BaseBackoff<<n)
	}
	if ceiling <= r.BaseBackoff {
		return r.BaseBackoff
	}
	return r.BaseBackoff + rand.N(ceiling-r.BaseBackoff+1)
}

// sleep waits d unless the caller gives up first.
func sleep(ctx context.Context, op Op, d time.Duration) *Error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return contextError(op, ctx)
	}
}

// Retry budget window: retries are weighed against calls of the last
// budgetWindow seconds.
const budgetWindow = 10

// retryBudget caps retries, across every operation, at Ratio × calls over
// a sliding window of budgetWindow seconds, and always allows MinPerSecond
// retries per second. During an outage, when every call fails, retries
// thus add at most Ratio to the load instead of multiplying it.
type retryBudget struct {
	mu           sync.Mutex
	ratio        float64
	minPerSecond int64
	epoch        time.Time // monotonic base of the second counter
	buckets      [budgetWindow]budgetBucket
}

type budgetBucket struct {
	second         int64
	calls, retries int64
}

func newRetryBudget(s config.RetryBudget) *retryBudget {
	b := &retryBudget{epoch: time.Now()}
	b.update(s)
	return b
}

func (b *retryBudget) update(s config.RetryBudget) {
	b.mu.Lock()
	b.ratio, b.minPerSecond = s.Ratio, int64(s.MinPerSecond)
	b.mu.Unlock()
}

// bucket returns the bucket of the current second, cleared when it last
// served an older second. Callers hold mu.
func (b *retryBudget) bucket() (*budgetBucket, int64) {
	sec := int64(time.Since(b.epoch) / time.Second)
	bk := &b.buckets[sec%budgetWindow]
	if bk.second != sec {
		*bk = budgetBucket{second: sec}
	}
	return bk, sec
}

// called records a call (not a retry).
func (b *retryBudget) called() {
	b.mu.Lock()
	bk, _ := b.bucket()
	bk.calls++
	b.mu.Unlock()
}

// budgetSlot is a retry taken from the budget: the second it counts in.
type budgetSlot int64

// take takes one retry from the budget if there is one.
func (b *retryBudget) take() (budgetSlot, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, sec := b.bucket()
	if bk.retries < b.minPerSecond {
		bk.retries++
		return budgetSlot(sec), true
	}
	var calls, retries int64
	for i := range b.buckets {
		if x := &b.buckets[i]; x.second > sec-budgetWindow {
			calls += x.calls
			retries += x.retries
		}
	}
	if float64(retries+1) <= b.ratio*float64(calls) {
		bk.retries++
		return budgetSlot(sec), true
	}
	return 0, false
}

// giveBack returns a slot taken for a retry that was not sent. A slot
// whose second has left the window is gone with it.
func (b *retryBudget) giveBack(s budgetSlot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bk := &b.buckets[int64(s)%budgetWindow]; bk.second == int64(s) && bk.retries > 0 {
		bk.retries--
	}
}
