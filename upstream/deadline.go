package upstream

import (
	"context"
	"errors"
	"time"
)

// withDeadline gives each attempt its deadline: the operation timeout from
// now, never past the caller's deadline (the gateway passes the request's
// overall deadline in ctx). A caller that already gave up gets no attempt.
func withDeadline(o *operation) func(exchange) exchange {
	return func(next exchange) exchange {
		return func(ctx context.Context, r *request) error {
			if err := contextError(o.op, ctx); err != nil {
				return err
			}
			now := time.Now()
			r.deadline = now.Add(o.settings.Load().Timeout)
			r.ctxBound = false
			if d, ok := ctx.Deadline(); ok && d.Before(r.deadline) {
				r.deadline, r.ctxBound = d, true
			}
			return next(ctx, r)
		}
	}
}

// contextError is the error of a call whose caller already gave up, or nil.
// Neither says anything about the store.
func contextError(op Op, ctx context.Context) *Error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	outcome := OutcomeCanceled
	if errors.Is(err, context.DeadlineExceeded) {
		outcome = OutcomeTimeout
	}
	e := newError(op, outcome, err)
	e.notStoreFault = true
	return e
}
