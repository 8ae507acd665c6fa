package upstream

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind says what a failed call means to the gateway. The gateway maps it
// onto its own status and message; nothing of the store's body reaches a
// client.
type Kind int

const (
	// KindBadGateway: the store failed or broke the contract (5xx, a 3xx,
	// an unexpected status, a body that does not decode, a refused or reset
	// connection, an oversized body). The gateway answers 502.
	KindBadGateway Kind = iota
	// KindBadRequest: the store answered 400 validation_failed, or the call
	// itself was malformed and never sent (outcome invalid_input).
	KindBadRequest
	// KindNotFound: the store answered 404 not_found to the one-user call
	// (on any other call a 404 is KindBadGateway: see checkResponse).
	KindNotFound
	// KindConflict: the store answered 409 conflict.
	KindConflict
	// KindUnavailable: the call was refused before reaching the store
	// (breaker open, bulkhead full, retry budget spent, connection pool
	// exhausted). The gateway answers 503 with Retry-After.
	KindUnavailable
	// KindTimeout: an attempt ran out of time. The gateway answers 504.
	KindTimeout
	// KindCanceled: the caller's context was canceled.
	KindCanceled
)

func (k Kind) String() string {
	switch k {
	case KindBadGateway:
		return "bad gateway"
	case KindBadRequest:
		return "bad request"
	case KindNotFound:
		return "not found"
	case KindConflict:
		return "conflict"
	case KindUnavailable:
		return "unavailable"
	case KindTimeout:
		return "timeout"
	case KindCanceled:
		return "canceled"
	}
	return "kind " + strconv.Itoa(int(k))
}

// Outcomes of a call, as reported to Observer.Call and kept in
// Error.Outcome. The set is closed, so it is safe as a metric label.
const (
	OutcomeOK           = "ok"            // 200 with a body that honours the contract
	OutcomeBadRequest   = "bad_request"   // 400 validation_failed
	OutcomeNotFound     = "not_found"     // 404 not_found
	OutcomeConflict     = "conflict"      // 409 conflict
	OutcomeError5xx     = "error_5xx"     // any 5xx
	OutcomeRedirect     = "redirect"      // any 3xx (never followed)
	OutcomeBadStatus    = "bad_status"    // any other status (1xx, 2xx but 200, other 4xx, 404 but to the one-user call)
	OutcomeBadResponse  = "bad_response"  // unusable response: wrong content type, body that breaks the contract, garbage headers
	OutcomeTooLarge     = "too_large"     // body over MaxResponseBytes
	OutcomeTimeout      = "timeout"       // an attempt ran out of time
	OutcomeConnect      = "connect"       // could not connect (refused, dial timeout, unreachable)
	OutcomeReset        = "reset"         // connection closed or reset before the whole response arrived
	OutcomeCanceled     = "canceled"      // the caller's context was canceled
	OutcomeBreakerOpen  = "breaker_open"  // refused by the op's open (or saturated half-open) breaker
	OutcomeBulkheadFull = "bulkhead_full" // refused: MaxInFlight calls already running
	OutcomeBudget       = "budget"        // a retry was needed but the retry budget was spent
	OutcomePoolFull     = "pool_full"     // no free connection to the store in time
	OutcomeInvalidInput = "invalid_input" // the call was malformed and never sent
)

// Outcomes lists every outcome label, for pre-registering metrics.
var Outcomes = []string{
	OutcomeOK, OutcomeBadRequest, OutcomeNotFound, OutcomeConflict,
	OutcomeError5xx, OutcomeRedirect, OutcomeBadStatus, OutcomeBadResponse, OutcomeTooLarge,
	OutcomeTimeout, OutcomeConnect, OutcomeReset, OutcomeCanceled,
	OutcomeBreakerOpen, OutcomeBulkheadFull, OutcomeBudget, OutcomePoolFull, OutcomeInvalidInput,
}

// Error is every error the client returns. Its text names the operation,
// the kind, the outcome and the store's status and code, never a backend
// body or an address: those stay in Err, the cause, for logs.
type Error struct {
	Op      Op
	Kind    Kind
	Outcome string
	// Status is the store's HTTP status, 0 when none was received.
	Status int
	// Code and Details come from a contract error body (400/404/409, and a
	// 5xx when it carried one).
	Code    string
	Details map[string]any
	// RetryAfter is set for KindUnavailable: when trying again makes sense.
	RetryAfter time.Duration
	// Err is the underlying cause, when there is one. It may hold addresses;
	// log it, never show it.
	Err error

	// notStoreFault marks failures that say nothing about the store's
	// health (the caller's own deadline ran out, the local pool was full):
	// the breaker neither counts them as failures nor as successes.
	notStoreFault bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("upstream ")
	b.WriteString(string(e.Op))
	b.WriteString(": ")
	b.WriteString(e.Kind.String())
	b.WriteString(" (")
	b.WriteString(e.Outcome)
	if e.Status != 0 {
		b.WriteString(", status ")
		b.WriteString(strconv.Itoa(e.Status))
	}
	if e.Code != "" {
		b.WriteString(", code ")
		b.WriteString(quoteCode(e.Code))
	}
	b.WriteString(")")
	return b.String()
}

// maxCodeText bounds the store's error code quoted in an error's text: the
// contract's codes are short words, but the code is the store's to write,
// as long as its body, and the text goes to the log with every failure.
const maxCodeText = 64

// quoteCode quotes code, cut to maxCodeText bytes ("..." after the quote
// says it was cut).
func quoteCode(code string) string {
	if len(code) > maxCodeText {
		return strconv.Quote(code[:maxCodeText]) + "..."
	}
	return strconv.Quote(code)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// IsUpstreamFault reports whether err means the store is failing or out
// of reach (timeout, bad gateway, unavailable), as opposed to a real answer
// (400/404/409) or the caller giving up. The read cache serves stale
// entries on these.
func IsUpstreamFault(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Kind {
	case KindTimeout, KindBadGateway, KindUnavailable:
		return true
	}
	return false
}

// newError builds an Error for op with the kind that belongs to outcome.
func newError(op Op, outcome string, cause error) *Error {
	return &Error{Op: op, Kind: kindOf(outcome), Outcome: outcome, Err: cause}
}

func kindOf(outcome string) Kind {
	switch outcome {
	case OutcomeBadRequest, OutcomeInvalidInput:
		return KindBadRequest
	case OutcomeNotFound:
		return KindNotFound
	case OutcomeConflict:
		return KindConflict
	case OutcomeTimeout:
		return KindTimeout
	case OutcomeCanceled:
		return KindCanceled
	case OutcomeBreakerOpen, OutcomeBulkheadFull, OutcomeBudget, OutcomePoolFull:
		return KindUnavailable
	}
	return KindBadGateway
}

// invalidInput reports a call that the client refuses to send.
func invalidInput(op Op, format string, args ...any) *Error {
	e := newError(op, OutcomeInvalidInput, fmt.Errorf(format, args...))
	e.notStoreFault = true
	return e
}

// unavailable reports a call refused before it reached the store.
func unavailable(op Op, outcome string, retryAfter time.Duration, cause error) *Error {
	e := newError(op, outcome, cause)
	e.RetryAfter = max(retryAfter, time.Second)
	e.notStoreFault = true
	return e
}

// outcomeOf is the outcome label of a call's result.
func outcomeOf(err error) string {
	if err == nil {
		return OutcomeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Outcome
	}
	return OutcomeBadResponse
}
