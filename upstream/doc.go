// Package upstream owns everything that talks to the user store: the typed
// client of the gateway ↔ user-store contract (upstream/contract), and the
// resilience around every call: per-attempt timeouts, retries within a
// budget, bulkheads and circuit breakers.
//
// # API
//
//	c, err := upstream.New(cfg.Upstreams.UserStore, logger, observer)
//	ok, err := c.CheckUsername(ctx, call, "johndoe123")
//	page, err := c.Search(ctx, call, "şükrü", 20, 0)
//	user, err := c.UserByID(ctx, call, id)
//	streams, err := c.ActiveLiveStreams(ctx, call, ids)
//	err = c.Update(newCfg.Upstreams.UserStore) // live reload
//	c.Breakers()                               // for the ops endpoints
//	c.Close()
//
// The gateway builds a Call for each incoming request; the client writes its
// headers, and only those, on every call: nothing a client sent to the
// gateway ever reaches the store. ctx carries the request's overall
// deadline.
//
// # Responses are checked, never passed on
//
// A 200 must carry application/json and a body that decodes into the
// contract's types and answers what was asked (see decode.go). A 400, 404
// or 409 is the store's answer only with a contract error body whose code
// matches the status, and a 404 only to the user look-up, the one call
// whose contract has it; anything else (an HTML 404 from a misrouted proxy,
// a 404 to a search, a 3xx, a 5xx, a refused or reset connection, a body
// over MaxResponseBytes) is a store failure. Errors are always *Error; its Kind tells the gateway
// what to answer, and its text never holds a backend body or an address.
//
// # Resilience
//
// Each concern is a middleware around a plain exchange function, composed
// per operation (see Client.chain), outermost first:
//
//	observe → bulkhead → retry → breaker → deadline → send
//
// What each layer does:
//   - observe reports every call's outcome (Outcomes) and duration.
//   - bulkhead caps concurrent calls per operation (MaxInFlight) and fails
//     fast over it (KindUnavailable, outcome bulkhead_full).
//   - retry re-sends idempotent reads (never the username check) after a
//     refused or reset connection or a 503, with jittered exponential
//     backoff, only while the breaker is not open, the caller's deadline
//     holds the backoff plus half an attempt, and the retry budget shared
//     by all operations allows it (Ratio × calls over 10 s, plus
//     MinPerSecond).
//   - breaker is one gobreaker per operation. Only store faults count as
//     failures (5xx, timeouts, refused or reset connections, bodies that
//     break the contract, redirects); 400/404/409 are successes; calls the
//     caller canceled or whose deadline was the caller's rather than the
//     operation's are excluded. An open breaker fails calls in microseconds
//     with KindUnavailable and a RetryAfter until half-open.
//   - deadline gives each attempt min(now + operation timeout, ctx
//     deadline).
//   - send builds the request from scratch on a fasthttp.HostClient (one per
//     base URL) with DoDeadline. fasthttp never re-sends on its own
//     (MaxIdemponentCallAttempts = 1) and never follows redirects.
//
// fasthttp cannot interrupt an exchange in flight: a canceled ctx is seen
// before each attempt, during backoff, and when the attempt ends (the call
// then fails with KindCanceled and the breaker ignores it). The attempt
// deadline bounds everything else, including waiting for a pooled
// connection; connection set-up is bounded by DialTimeout capped at the
// shortest operation timeout.
package upstream
