package upstream

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/sony/gobreaker/v2"
)

// breakerBuckets is how many buckets the breaker's counting window has: the
// counts roll over gradually instead of being wiped every Interval.
const breakerBuckets = 10

// breaker is one operation's circuit breaker and what gobreaker does not
// tell: when an open breaker will let trial calls through.
type breaker struct {
	cb       *gobreaker.CircuitBreaker[struct{}]
	settings config.Breaker
	// openUntil is when the breaker turns half-open (unix nanoseconds), 0
	// when it is not open.
	openUntil atomic.Int64
	// retired: a reload replaced the breaker (Update). Calls that started
	// on it still report to it, and it may still trip, but it is not the
	// operation's breaker any more: its changes are neither logged nor
	// observed.
	retired atomic.Bool
}

// BreakerStatus is a snapshot of one operation's breaker.
type BreakerStatus struct {
	Op Op
	// State is "closed", "open" or "half-open".
	State  string
	Counts BreakerCounts
	// OpenUntil is when an open breaker lets trial calls through; zero
	// unless open.
	OpenUntil time.Time
	// RetryAfter is what an open breaker answers callers (whole seconds, at
	// least 1s); zero unless open.
	RetryAfter time.Duration
}

// BreakerCounts are the breaker's counts in its current window (closed) or
// since it turned half-open. Calls excluded from counting (the caller
// canceled or ran out of its own time) are in Requests and Exclusions only.
type BreakerCounts struct {
	Requests             uint32
	Successes            uint32
	Failures             uint32
	Exclusions           uint32
	ConsecutiveSuccesses uint32
	ConsecutiveFailures  uint32
}

// newBreaker builds the breaker of op from s. Only store faults count as
// failures (isStoreFault); a 400/404/409 is a success, and calls that say
// nothing about the store are excluded.
func (c *Client) newBreaker(op Op, s config.Breaker) *breaker {
	b := &breaker{settings: s}
	st := gobreaker.Settings{
		Name:        string(op),
		MaxRequests: s.HalfOpenRequests,
		Interval:    s.Interval,
		Timeout:     s.OpenTimeout,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			if s.ConsecutiveFailures > 0 && n.ConsecutiveFailures >= s.ConsecutiveFailures {
				return true
			}
			counted := n.TotalSuccesses + n.TotalFailures
			return s.FailureRatio > 0 && counted >= s.MinRequests && counted > 0 &&
				float64(n.TotalFailures)/float64(counted) >= s.FailureRatio
		},
		IsSuccessful: func(err error) bool { return !isStoreFault(err) },
		IsExcluded:   isExcludedFromBreaker,
		// This runs under the breaker's lock: it must not call into the
		// breaker (Counts, State) or it deadlocks.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openUntil.Store(time.Now().Add(s.OpenTimeout).UnixNano())
			} else {
				b.openUntil.Store(0)
			}
			if b.retired.Load() {
				return
			}
			c.logger.LogAttrs(context.Background(), slog.LevelWarn, "upstream breaker state changed",
				slog.String("op", string(op)), slog.String("from", from.String()), slog.String("to", to.String()))
			c.obs.BreakerState(op, from.String(), to.String())
		},
	}
	if s.Interval >= breakerBuckets*time.Millisecond {
		st.BucketPeriod = s.Interval / breakerBuckets
	}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](st)
	return b
}

// isStoreFault reports whether err counts against the store: 5xx,
// timeouts, refused or reset connections, bodies that break the contract.
// Real answers (400/404/409) and calls refused locally do not.
func isStoreFault(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if !errors.As(err, &e) {
		return true
	}
	switch e.Kind {
	case KindBadGateway, KindTimeout:
		return !e.notStoreFault
	}
	return false
}

// isExcludedFromBreaker: the call says nothing either way about the store
// (the caller canceled, the caller's own deadline was shorter than the
// operation timeout, the local pool was full).
func isExcludedFromBreaker(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Kind == KindCanceled || e.notStoreFault
}

// retryAfter is how long callers should wait: the time until half-open,
// in whole seconds, at least one.
func (b *breaker) retryAfter(now time.Time) time.Duration {
	until := b.openUntil.Load()
	if until == 0 {
		return time.Second
	}
	d := time.Unix(0, until).Sub(now)
	return max(time.Second, (d+time.Second-1)/time.Second*time.Second)
}

// open reports whether the breaker currently refuses every call.
func (b *breaker) open() bool { return b.cb.State() == gobreaker.StateOpen }

// withBreaker admits each attempt through the operation's breaker and
// reports its result back. Refused attempts fail in microseconds with
// KindUnavailable and never reach the store.
//
// Execute, not the two-step breaker: Allow returns its report as a new
// closure, a heap allocation per attempt, where the function given to
// Execute stays on the stack. An attempt that panics is reported as a
// failure before the panic goes on (Execute's recover); one that ran is
// told apart from a refusal by ran, as Execute returns both as its error.
func withBreaker(o *operation) func(exchange) exchange {
	return func(next exchange) exchange {
		return func(ctx context.Context, r *request) error {
			b := o.breaker.Load()
			ran := false
			_, err := b.cb.Execute(func() (struct{}, error) {
				ran = true
				return struct{}{}, next(ctx, r)
			})
			if !ran {
				return unavailable(o.op, OutcomeBreakerOpen, b.retryAfter(time.Now()), err)
			}
			return err
		}
	}
}

// Breakers reports every operation's breaker, in the order of Ops.
func (c *Client) Breakers() []BreakerStatus {
	out := make([]BreakerStatus, 0, len(Ops))
	now := time.Now()
	for _, op := range Ops {
		b := c.op(op).breaker.Load()
		state := b.cb.State() // may move open → half-open, so read it first
		n := b.cb.Counts()
		s := BreakerStatus{
			Op:    op,
			State: state.String(),
			Counts: BreakerCounts{
				Requests: n.Requests, Successes: n.TotalSuccesses, Failures: n.TotalFailures,
				Exclusions: n.TotalExclusions, ConsecutiveSuccesses: n.ConsecutiveSuccesses,
				ConsecutiveFailures: n.ConsecutiveFailures,
			},
		}
		if state == gobreaker.StateOpen {
			if until := b.openUntil.Load(); until != 0 {
				s.OpenUntil = time.Unix(0, until)
			}
			s.RetryAfter = b.retryAfter(now)
		}
		out = append(out, s)
	}
	return out
}
