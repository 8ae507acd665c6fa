package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/valyala/fasthttp"
)

// send is the innermost exchange: one HTTP request built from scratch, sent
// with the attempt's deadline, and its response checked against the
// contract. Nothing of the response is kept beyond what r.answer copies.
func (c *Client) send(ctx context.Context, r *request) error {
	o := r.op
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c.build(req, r)

	resets := o.target.resets.Load()
	start := time.Now()
	err := o.target.client.DoDeadline(req, resp, r.deadline)
	r.call.spent(time.Since(start))
	if o.target.resets.Load() != resets {
		// A connection was found reset meanwhile, maybe this call's after
		// a body fasthttp took as complete: drop the idle ones, which
		// may include it (see resetConn).
		defer dropIdle(o.target)
	}
	if err != nil {
		if e := refusal(o.op, r, resp); e != nil {
			if errors.Is(e, errOtherRequest) {
				// Its connection is closed, but the others may be out of
				// step too (below).
				dropIdle(o.target)
			}
			return e
		}
		err := transportError(ctx, o.op, r, err)
		if err.Outcome == OutcomeReset {
			dropIdle(o.target)
		}
		return err
	}
	if e := checkResponse(o.op, r, resp); e != nil {
		chunked := resp.Header.ContentLength() < 0
		// A body with neither length nor chunks is read to the
		// connection's close (fasthttp then gives it the length it read
		// and marks the connection closed): a reset ends it as silently.
		// fasthttp keeps no trace of the missing length, and a whole body
		// of its Content-Length with Connection: close looks the same, so
		// it counts only when this very connection was found reset.
		toClose := resp.Header.ConnectionClose() && connReset(resp)
		if e.Outcome == OutcomeBadResponse && (chunked || toClose) && o.target.resets.Load() != resets {
			// A chunked body (or one read to the close) cut by a reset
			// looks complete to fasthttp, and shows only as a body that
			// does not decode. With a reset found on the host during the
			// call, it is taken for what it most likely is: the
			// connection reset before the whole response, which a read
			// may retry, as it may one cut short of its Content-Length.
			cut := newError(o.op, OutcomeReset, fmt.Errorf("body cut by a reset: %w", e.Err))
			cut.Status = e.Status
			e = cut
		}
		// Whatever it was, the connection is dead (a cut chunked body),
		// or out of step (an answer to another request), and back in the
		// pool. A call waiting for a connection may have been handed it
		// already (fasthttp hands a released connection straight to a
		// waiter): that call then fails on it, or, when what is left on
		// it is a whole answer, takes it for its own unless the store
		// echoes X-Request-Id. answerConn refuses an answer fasthttp reads
		// no body after (1xx, 204, 304) before it gets here, its status
		// found as fasthttp finds it, and its connection is closed. The
		// bodiless check below stays in case a later fasthttp reads
		// status lines otherwise (FuzzStatusOf would tell).
		if e.Outcome == OutcomeReset || e.Outcome == OutcomeBadResponse && (chunked || errors.Is(e, errOtherRequest)) ||
			bodilessStatus(resp.StatusCode()) {
			dropIdle(o.target)
		}
		return e
	}
	return nil
}

// refusal is the failure of an exchange whose answer answerConn refused,
// nil if it refused none. The store answered, and fasthttp closed the
// connection.
func refusal(op Op, r *request, resp *fasthttp.Response) *Error {
	m := marksOf(resp)
	if m == nil {
		return nil
	}
	status := int(m.refused.Load())
	switch {
	case status == 0:
		return nil
	case m.head == nil:
		// A 1xx that could not be skipped, its final answer unread.
		return badStatus(op, status, errInterim)
	}
	// A 204 or 304, whatever may have followed it unread: checked as any
	// answer, with no body, as fasthttp would have read it.
	resp.Reset()
	if err := resp.Header.Read(bufio.NewReaderSize(bytes.NewReader(m.head), len(m.head))); err != nil {
		// A header line fasthttp cannot parse: it would have read on,
		// into what followed, to the call's timeout.
		return newError(op, OutcomeBadResponse, fmt.Errorf("header block of a %d answer: %w", status, err))
	}
	if e := checkResponse(op, r, resp); e != nil {
		return e
	}
	return badStatus(op, status, errBodiless) // checkResponse takes only a 200
}

// build writes the request of r on req, a fresh request. A fixed path's
// URI was parsed once (host.fixed); any other is parsed per call.
func (c *Client) build(req *fasthttp.Request, r *request) {
	if u := r.op.target.fixed[r.path]; u != nil {
		req.SetURI(u)
	} else {
		req.SetRequestURI(r.op.target.base + r.path)
	}
	req.Header.SetMethod(r.method)
	req.Header.SetUserAgent(userAgent)
	// The request is fresh: Add appends each header where Set would first
	// look for an earlier one.
	req.Header.Add(fasthttp.HeaderAccept, mimeJSON)
	if r.body != nil {
		req.Header.SetContentType(mimeJSON)
		req.SetBodyRaw(r.body)
	}
	if c.bearer != "" {
		req.Header.Add(fasthttp.HeaderAuthorization, c.bearer)
	}
	r.call.writeHeaders(&req.Header, r.traceparent)
}

// dropIdle closes the host's idle connections after a connection was
// closed or reset under a call. The store probably restarted or crashed,
// so its other kept-alive connections are likely dead too; and fasthttp
// returns a connection reset in the middle of a body to the pool as if it
// were healthy. Without this, the next calls would fail on them without
// ever reaching the store (and the username check is never retried).
func dropIdle(h *host) { h.client.CloseIdleConnections() }

// transportError classifies a failed exchange.
func transportError(ctx context.Context, op Op, r *request, err error) *Error {
	var e *Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return unavailable(op, OutcomePoolFull, 0, err)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e = newError(op, OutcomeTooLarge, err)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		e = newError(op, OutcomeConnect, err)
		if isTimeout(err) {
			// No connection within dialTimeout: to the client a store
			// that did not answer in time (504, as nginx answers when its
			// proxy_connect_timeout runs out), not a broken answer; the
			// outcome still says where the call failed.
			e.Kind = KindTimeout
		}
	case isTimeout(err):
		e = newError(op, OutcomeTimeout, err)
		e.notStoreFault = r.ctxBound
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, fasthttp.ErrConnectionClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		e = newError(op, OutcomeReset, err)
	default:
		// Unparsable status line or headers, and anything else fasthttp
		// refuses: the store did not speak HTTP as agreed.
		e = newError(op, OutcomeBadResponse, err)
	}
	// fasthttp cannot be interrupted: a caller that canceled meanwhile
	// learns it now, and the failure is not held against the store.
	if errors.Is(ctx.Err(), context.Canceled) {
		ce := newError(op, OutcomeCanceled, errors.Join(context.Canceled, err))
		ce.notStoreFault = true
		return ce
	}
	return e
}

func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// checkResponse turns a received response into nil (a 200 whose body the
// contract accepts) or an *Error.
func checkResponse(op Op, r *request, resp *fasthttp.Response) *Error {
	status := resp.StatusCode()
	body := resp.Body()
	// fasthttp reports a connection reset in the middle of a body as a
	// success with a short body. After a 1xx, 204 or 304 it reads no body
	// at all, and keeps a Content-Length (a 304's is the representation's,
	// RFC 9110, 8.6): nothing was cut there.
	if n := resp.Header.ContentLength(); n >= 0 && len(body) != n && !bodilessStatus(status) {
		e := newError(op, OutcomeReset, fmt.Errorf("body cut short: %d of %d bytes", len(body), n))
		e.Status = status
		return e
	}
	// The store may echo X-Request-Id; an echo of another id is an answer
	// to another request (a store that sent one answer too many, read
	// here as the next request's): whatever its status, not this call's.
	// A call that sent no id (a nil Call) has nothing to compare: a store
	// or a proxy in front of it may answer with an id of its own.
	if sent := r.call.requestID(); sent != "" {
		if id := resp.Header.Peek(contract.HeaderRequestID); len(id) > 0 && string(id) != sent {
			return badResponse(op, status, errOtherRequest)
		}
	}
	switch {
	case status == http.StatusOK:
		if !isJSON(resp.Header.ContentType()) {
			return badResponse(op, status, errors.New("200 without a JSON content type"))
		}
		// JSON is UTF-8 (RFC 8259 section 8.1). encoding/json reads any
		// other byte as U+FFFD, so a store speaking Windows-1254 would
		// have Şükrü shown to the apps as "��kr�", and cached.
		if !utf8.Valid(body) {
			return badResponse(op, status, errors.New("200 body is not UTF-8"))
		}
		if err := r.answer.accept(body); err != nil {
			return badResponse(op, status, err)
		}
		return nil
	case status == http.StatusNotFound && op != OpUserByID:
		// Only the one-user call names a resource that can be missing.
		// Any other call answered 404, contract-shaped or not, reached a
		// path the store does not have: a wrong base URL. Passed on as a
		// 404 it would tell every app "not found" and no 5xx alert would
		// fire; as a broken answer it is a 502, fails the breaker and is
		// logged with this hint.
		return badStatus(op, status, errNoSuchCall)
	case status == http.StatusBadRequest, status == http.StatusNotFound, status == http.StatusConflict:
		want, outcome := contract.CodeValidationFailed, OutcomeBadRequest
		switch status {
		case http.StatusNotFound:
			want, outcome = contract.CodeNotFound, OutcomeNotFound
		case http.StatusConflict:
			want, outcome = contract.CodeConflict, OutcomeConflict
		}
		ce, err := decodeError(resp)
		if err == nil && ce.Code != want {
			err = fmt.Errorf("status %d with code %s", status, quoteCode(ce.Code))
		}
		if err != nil {
			// Not the store's answer: a proxy's HTML 404, a stranger's
			// JSON. Treat it as the store failing.
			return badResponse(op, status, err)
		}
		e := newError(op, outcome, nil)
		e.Status, e.Code, e.Details = status, ce.Code, ce.Details
		return e
	case status >= 500 && status <= 599:
		e := newError(op, OutcomeError5xx, fmt.Errorf("status %d", status))
		e.Status = status
		if ce, err := decodeError(resp); err == nil {
			e.Code, e.Details = ce.Code, ce.Details
		}
		return e
	case status >= 300 && status <= 399:
		e := newError(op, OutcomeRedirect, fmt.Errorf("status %d", status))
		e.Status = status
		return e
	default:
		return badStatus(op, status, fmt.Errorf("status %d", status))
	}
}

// errNoSuchCall is the cause of a 404 on a call that names no resource.
var errNoSuchCall = errors.New("404 on a call that names no resource: is the store's base URL right?")

func badStatus(op Op, status int, cause error) *Error {
	e := newError(op, OutcomeBadStatus, cause)
	e.Status = status
	return e
}

// errOtherRequest is the cause of an answer whose X-Request-Id is not the
// request's.
var errOtherRequest = errors.New("the answer echoes another request's X-Request-Id")

func badResponse(op Op, status int, cause error) *Error {
	e := newError(op, OutcomeBadResponse, cause)
	e.Status = status
	return e
}

// isJSON reports whether a Content-Type is application/json, parameters
// (charset) allowed.
func isJSON(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return bytes.EqualFold(bytes.TrimSpace(ct), []byte(mimeJSON))
}

// decodeError reads a contract error body: JSON, an object with a string
// code and message, details an object when present.
func decodeError(resp *fasthttp.Response) (*contract.Error, error) {
	if !isJSON(resp.Header.ContentType()) {
		return nil, errors.New("error body is not JSON")
	}
	var w struct {
		Code    *string        `json:"code"`
		Message *string        `json:"message"`
		Details map[string]any `json:"details"`
	}
	if err := json.Unmarshal(resp.Body(), &w); err != nil {
		return nil, fmt.Errorf("error body: %w", err)
	}
	if w.Code == nil || *w.Code == "" || w.Message == nil {
		return nil, errors.New("error body without code or message")
	}
	return &contract.Error{Code: *w.Code, Message: *w.Message, Details: w.Details}, nil
}
