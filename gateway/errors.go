package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/bffgate/edge/gateway/auth"
	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// apiError is an answer the gateway decided on: a status and the messages
// to show, in the caller's language. The first message is always the
// status's generic message; details follow.
type apiError struct {
	status     int
	msgs       []msg
	args       [][]any // optional arguments of msgs[i], for messages with verbs
	retryAfter time.Duration
	verdict    *policies.Verdict
}

func (e *apiError) Error() string { return "api error " + strconv.Itoa(e.status) }

var (
	errForbidden = &apiError{status: fiber.StatusForbidden, msgs: []msg{msgForbidden}}
	errNotFound  = &apiError{status: fiber.StatusNotFound, msgs: []msg{msgNotFound}}
)

// validationError is a 400 "Validation failed" with what is wrong.
func validationError(details ...msg) *apiError {
	return &apiError{status: fiber.StatusBadRequest, msgs: append([]msg{msgValidationFailed}, details...)}
}

// with adds a detail message whose text takes arguments (fmt verbs).
func (e *apiError) with(m msg, args ...any) *apiError {
	for len(e.args) < len(e.msgs) {
		e.args = append(e.args, nil)
	}
	e.msgs = append(e.msgs, m)
	e.args = append(e.args, args)
	return e
}

func errorsIsUnauthenticated(err error) bool { return errors.Is(err, auth.ErrUnauthenticated) }

// writeError turns any error into the envelope. Nothing of an internal
// error's text ever reaches the client; unexpected errors are logged with
// the request id.
func (s *Server) writeError(c *fiber.Ctx, rq *request, err error) {
	lang := rq.client.Language
	resp := c.Response()
	resp.Header.Del(fiber.HeaderETag)
	resp.Header.Del(fiber.HeaderCacheControl)
	var (
		ae *apiError
		ue *upstream.Error
		fe *fiber.Error
	)
	switch {
	case errors.As(err, &ae):
		if ae.verdict != nil {
			ae.verdict.Headers(resp.Header.Set)
		}
		if ae.retryAfter > 0 {
			resp.Header.Set(fiber.HeaderRetryAfter, retryAfterSeconds(ae.retryAfter))
		}
		texts := make([]string, len(ae.msgs))
		for i, m := range ae.msgs {
			texts[i] = m.text(lang)
			if i < len(ae.args) && len(ae.args[i]) > 0 {
				texts[i] = fmt.Sprintf(texts[i], ae.args[i]...)
			}
		}
		writeErrors(resp, ae.status, texts...)
	case auth.RequestMalformed(err):
		resp.Header.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="api", error="invalid_request"`)
		writeErrors(resp, fiber.StatusBadRequest, msgValidationFailed.text(lang), msgAuthorizationTwice.text(lang))
	case errors.Is(err, auth.ErrUnauthenticated):
		// RFC 6750 section 3.1: error="invalid_token" tells a client that
		// sent a token to get a new one; never why it was refused.
		challenge := `Bearer realm="api"`
		if auth.TokenRefused(err) {
			challenge = `Bearer realm="api", error="invalid_token"`
		}
		resp.Header.Set(fiber.HeaderWWWAuthenticate, challenge)
		writeErrors(resp, fiber.StatusUnauthorized, msgAuthRequired.text(lang))
	case errors.Is(err, auth.ErrKeysUnavailable):
		resp.Header.Set(fiber.HeaderRetryAfter, "2")
		writeErrors(resp, fiber.StatusServiceUnavailable, msgAuthUnavailable.text(lang))
	case errors.As(err, &ue):
		s.writeUpstreamError(c, rq, ue)
	case errors.As(err, &fe):
		if fe.Code == fiber.StatusMethodNotAllowed {
			if allow := allowedMethods(c.Path()); allow != "" {
				resp.Header.Set(fiber.HeaderAllow, allow)
			}
		}
		status := fe.Code
		if status < 400 || status > 599 {
			status = fiber.StatusInternalServerError
		}
		writeErrors(resp, status, statusMessage(status).text(lang))
	case errors.Is(err, context.DeadlineExceeded):
		writeErrors(resp, fiber.StatusGatewayTimeout, msgGatewayTimeout.text(lang))
	default:
		s.logger.LogAttrs(context.Background(), slog.LevelError, "unexpected error",
			slog.String("request_id", rq.id), slog.String("route", rq.route), slog.String("error", err.Error()))
		writeErrors(resp, fiber.StatusInternalServerError, msgInternal.text(lang))
	}
}

// writeUpstreamError maps a user-store failure onto the envelope: the
// store's 4xx keep their meaning with the gateway's own message; faults are
// 502, timeouts 504, an open breaker or a full bulkhead 503 with
// Retry-After. The store's body never reaches the client.
func (s *Server) writeUpstreamError(c *fiber.Ctx, rq *request, ue *upstream.Error) {
	lang := rq.client.Language
	resp := c.Response()
	var status int
	switch ue.Kind {
	case upstream.KindBadRequest:
		status = fiber.StatusBadRequest
	case upstream.KindNotFound:
		status = fiber.StatusNotFound
	case upstream.KindConflict:
		status = fiber.StatusConflict
	case upstream.KindUnavailable:
		status = fiber.StatusServiceUnavailable
		rq.breakerOpen = string(ue.Op)
		ra := ue.RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		resp.Header.Set(fiber.HeaderRetryAfter, retryAfterSeconds(ra))
	case upstream.KindTimeout:
		status = fiber.StatusGatewayTimeout
	case upstream.KindCanceled:
		// Only the request's own deadline cancels a call.
		status = fiber.StatusGatewayTimeout
	default:
		status = fiber.StatusBadGateway
	}
	if status >= 500 {
		if ok, suppressed := s.failureLog.allow(string(ue.Op), ue.Outcome, time.Now()); ok {
			attrs := []slog.Attr{slog.String("request_id", rq.id), slog.String("route", rq.route),
				slog.String("op", string(ue.Op)), slog.Int("status", status), slog.String("error", ue.Error()),
				slog.String("cause", causeText(ue.Err))}
			if suppressed > 0 {
				attrs = append(attrs, slog.Uint64("suppressed", suppressed))
			}
			s.logger.LogAttrs(context.Background(), slog.LevelWarn, "upstream failure", attrs...)
		}
	}
	writeErrors(resp, status, statusMessage(status).text(lang))
}

func retryAfterSeconds(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.FormatInt(secs, 10)
}

// lastResortErrorHandler answers what fails before or outside the edge
// (whose handlers never return an error): a request line too long (414)
// or headers too large (431), body too large (413), unparsable requests
// (400). Fiber's default would send the error's text.
func (s *Server) lastResortErrorHandler(c *fiber.Ctx, err error) error {
	status := fiber.StatusInternalServerError
	var fe *fiber.Error
	if errors.As(err, &fe) && fe.Code >= 400 && fe.Code <= 599 {
		status = fe.Code
	}
	// Fiber calls every header block over the read buffer a 431.
	if status == fiber.StatusRequestHeaderFieldsTooLarge && requestLineTooLong(c.Context()) {
		status = fiber.StatusRequestURITooLong
	}
	// The request may not even have parsed: answer in the default language,
	// unless the header block was read whole. A body over a declared
	// Content-Length is refused with the headers in place; a body that
	// fails while it is read (too slow, chunked past the limit, malformed)
	// makes fasthttp drop the headers too, and they come back from where
	// they were held (held.go).
	restored := restoreHeld(c.Context())
	headersRead := restored || status == fiber.StatusRequestEntityTooLarge && len(c.Request().Header.RawHeaders()) > 0
	// fasthttp has not read this request whole: its context's time is
	// the previous request's on a keep-alive connection.
	now := time.Now()
	c.Response().SetConnectionClose()
	// A request whose headers were read is charged to its IP's bucket, as
	// every such request is (the limit is checked before anything else):
	// a flood of oversized bodies, or of bodies that never come, is
	// limited like any other.
	if headersRead && s.limitUnrouted(c.Context(), now) {
		return nil
	}
	writeUnroutedError(c.Response(), &c.Request().Header, status, headersRead)
	if headersRead {
		s.unroutedCORS(c.Response(), &c.Request().Header)
	}
	s.finishUnrouted(c.Context(), now, headersRead)
	return nil
}

// errUnparsable is what Fiber's read-error handler is given for a request
// that cannot be parsed (fiberReadable).
var errUnparsable = errors.New("request cannot be parsed")

// fiberReadable is err as Fiber's read-error handler should see it. It
// maps by type (a header block over the read buffer 431, a timeout 408, a
// body over the limit 413), then by text: an error whose text has
// "timeout" is a 408, one with "unsupported http request method" a 501,
// and the rest 400. fasthttp's parse errors quote the request, so a
// request that could not be parsed and held the word (GET /timeout, a
// broken field line) was a 408. Every read error but those mapped by type
// is a request that cannot be parsed: Fiber gets one without the quote.
func fiberReadable(err error) error {
	// fasthttp's ErrTimeout has Timeout alone: it is no net.Error.
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() || errors.As(err, new(*fasthttp.ErrSmallBuffer)) ||
		errors.Is(err, fasthttp.ErrBodyTooLarge) || errors.Is(err, fasthttp.ErrGetOnly) {
		return err
	}
	return errUnparsable
}

// connFailed reports whether err, met while fasthttp read a request, is
// the client's connection failing (reset by the client or the network)
// rather than a timeout or bytes that do not parse.
func connFailed(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && !ne.Timeout()
}

// readFailed answers a request whose connection failed while it was read.
// Fiber would make it a 502, the status of a failing user store, and the
// 5xx ratio pages on it: a client that resets its connection mid-request
// (a phone losing its network during an upload) is a failed request of
// the client's, a 400 that reaches no one.
func (s *Server) readFailed(ctx *fasthttp.RequestCtx) {
	restored := restoreHeld(ctx)
	writeUnroutedError(&ctx.Response, &ctx.Request.Header, fiber.StatusBadRequest, restored)
	ctx.SetConnectionClose()
	s.finishUnrouted(ctx, time.Now(), restored)
}

// nothingRead reports whether err, met while fasthttp read a request,
// came before the request's first byte. fasthttp passes the socket's
// error as it is only then (a broken header block or body comes wrapped)
// or after a header block the hook saw; and it calls the error handler
// for it only on a connection's first request: a later one that never
// began is an idle keep-alive connection, closed without a word.
func nothingRead(ctx *fasthttp.RequestCtx, err error) bool {
	if _, bare := err.(*net.OpError); !bare {
		return false
	}
	cc, ok := ctx.Conn().(*clientConn)
	return ok && !cc.hook.seen
}

// closeUnanswered closes the connection of a request that never began
// (nothingRead): one reset before it sent a byte (a load balancer's TCP
// health check), or silent until the read timeout (a connection a browser
// opened ahead of need and did not use). It is no request at all, as for
// one closed cleanly: neither answered, counted nor logged, as an idle
// keep-alive connection is closed. A 408 written there could be read as
// the answer to a request the client sent at that moment. fasthttp
// writes the error handler's answer whatever it holds: to the closed
// connection, where the write fails.
func closeUnanswered(ctx *fasthttp.RequestCtx) {
	_ = ctx.Conn().Close()
}

// writeUnroutedError answers a request the edge never saw (an
// unknown method, a body over the limit, an unparsable request).
// headersRead says whether the request's header block was parsed in full:
// only then are its language and a sane X-Request-Id honoured. details
// follow the status's message.
func writeUnroutedError(resp *fasthttp.Response, h *fasthttp.RequestHeader, status int, headersRead bool, details ...msg) {
	id, lang := "", clientctx.LanguageEN
	if headersRead {
		if v := h.Peek(fiber.HeaderXRequestID); saneRequestID(v) {
			id = string(v)
		}
		lang = clientctx.ParseLanguage(h.Peek(clientctx.HeaderLanguage), acceptLanguageOf(h))
	}
	if id == "" {
		id = newRequestID()
	}
	resp.Header.Set(fiber.HeaderXRequestID, id)
	if len(details) == 0 {
		writeErrors(resp, status, statusMessage(status).text(lang))
		return
	}
	texts := make([]string, 0, 1+len(details))
	texts = append(texts, statusMessage(status).text(lang))
	for _, d := range details {
		texts = append(texts, d.text(lang))
	}
	writeErrors(resp, status, texts...)
}

func causeText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
