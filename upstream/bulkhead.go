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
			// Admitted only while under the cap, and counted only once
			// admitted: a refused call that counted itself for a moment
			// would push the count past the cap, and a call arriving as a
			// slot freed could be refused with fewer than the cap running.
			max := int64(o.settings.Load().MaxInFlight)
			for {
				n := o.inFlight.Load()
				if n >= max {
					return unavailable(o.op, OutcomeBulkheadFull, 0, errBulkheadFull)
				}
				if o.inFlight.CompareAndSwap(n, n+1) {
					break
				}
			}
			defer o.inFlight.Add(-1)
			return next(ctx, r)
		}
	}
}
