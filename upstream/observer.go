package upstream

import (
	"context"
	"time"
)

// Observer receives the client's measurements; the gateway wires
// Prometheus to it. Methods must be cheap and safe for concurrent use.
// BreakerState runs while the breaker holds its lock: it must not call back
// into the client.
type Observer interface {
	// Call reports one finished call (all its attempts) with one of the
	// Outcome* labels and the time it took, waits and backoffs included.
	Call(op Op, outcome string, d time.Duration)
	// Retry reports one retry sent, after it: a retry skipped, or refused
	// before it reached the store (breaker, connection pool), is none.
	Retry(op Op)
	// BreakerState reports a breaker moving between "closed", "open" and
	// "half-open".
	BreakerState(op Op, from, to string)
}

type nopObserver struct{}

func (nopObserver) Call(Op, string, time.Duration)  {}
func (nopObserver) Retry(Op)                        {}
func (nopObserver) BreakerState(Op, string, string) {}

// withObserver is the outermost layer: it sees every call once, whatever
// refused or failed it, and reports its outcome and duration.
func withObserver(o *operation, obs Observer) func(exchange) exchange {
	return func(next exchange) exchange {
		return func(ctx context.Context, r *request) error {
			start := time.Now()
			err := next(ctx, r)
			obs.Call(o.op, outcomeOf(err), time.Since(start))
			return err
		}
	}
}
