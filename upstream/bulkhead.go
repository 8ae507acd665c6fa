package upstream

import (
	"context"
	"errors"
)

var errBulkheadFull = errors.New("too many calls in flight")

// withBulkhead caps the calls of one operation running at once at
// MaxInFlight. Over the cap a call fails at once with KindUnavailable: no
// queue, so a slow store cannot pile up waiting requests in the gateway.
func withBulkhead(o *operation) func(exchange) exchange {
	return func(next exchange) exchange {
		return func(ctx context.Context, r *request) error {
			n := o.inFlight.Add(1)
			defer o.inFlight.Add(-1)
			if n > int64(o.settings.Load().MaxInFlight) {
				return unavailable(o.op, OutcomeBulkheadFull, 0, errBulkheadFull)
			}
			return next(ctx, r)
		}
	}
}
