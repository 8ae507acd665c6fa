package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/policies"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// edged wraps every handler, of a route or of the catch-all behind them,
// so that the edge runs first for every request, matched or not: it gives
// the request its id, normalizes the client context, resolves the client
// IP and the platform policy, recovers panics, turns every error into an
// envelope, and writes the access log line. The handler gets the request's
// state as an argument (no per-request Locals, no second trip through the
// router).
func (s *Server) edged(h func(*fiber.Ctx, *request) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		s.edge(c, h)
		return nil
	}
}

func (s *Server) edge(c *fiber.Ctx, handler func(*fiber.Ctx, *request) error) {
	bodyRead(c.Context())
	rq := acquireRequest()
	rq.start = arrival(c.Context())
	rq.rt = s.rt.Load()
	h := &c.Request().Header
	rq.headers.read(h)
	rq.setID(rq.headers.requestID)
	setCanonical(&c.Response().Header, hdrRequestID, rq.id)
	rq.client = clientctx.NormalizeOn(&rq.headers, rq.start, clientMemo(c.Context()))
	rq.clientIP = policies.ClientIP(peerAddr(c.Context()), h.PeekAll(fiber.HeaderXForwardedFor), rq.rt.trusted)
	rq.policy = rq.rt.policies.For(rq.client.Platform)
	rq.traceparent = rq.headers.traceparent
	if s.tracing.Enabled() {
		rq.traceCtx, rq.span = s.tracing.StartRequest(rq.traceparent, "", c.Method())
	}
	s.inFlight.Add(1)
	s.obs.RequestStarted()

	defer func() {
		if p := recover(); p != nil {
			s.logger.LogAttrs(context.Background(), slog.LevelError, "panic recovered",
				slog.String("request_id", rq.id), slog.String("route", rq.route),
				slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(debug.Stack())))
			// Drop what the handler set for the answer it did not finish:
			// validators and cache headers must not describe a 500.
			for _, h := range [...]string{fiber.HeaderETag, fiber.HeaderCacheControl, headerCache, headerPartial} {
				c.Response().Header.Del(h)
			}
			writeErrors(c.Response(), fiber.StatusInternalServerError, msgInternal.text(rq.client.Language))
		}
		s.finish(c, rq)
		s.inFlight.Add(-1)
		releaseRequest(rq)
	}()

	s.applyCORS(c, rq)
	if err := handler(c, rq); err != nil {
		s.writeError(c, rq, err)
	}
}

// arrival is when the request was read: fasthttp reads the clock for it
// just before the handler runs (ctx.Time), so the edge need not read it
// again. A context served outside fasthttp's loop has no such time and
// gets the clock's.
func arrival(ctx *fasthttp.RequestCtx) time.Time {
	if t := ctx.Time(); !t.IsZero() {
		return t
	}
	return time.Now()
}

// unrouted is the catch-all's handler: nothing else matched, and Fiber's
// router says whether the path takes other methods (405) or none (404).
// The request is charged to its IP's bucket first, as every request is:
// a scan of unknown paths is limited like any other flood.
func (s *Server) unrouted(c *fiber.Ctx, rq *request) error {
	if err := s.limitIP(rq); err != nil {
		return err
	}
	// The asterisk form of the target (RFC 9112 section 3.2.4) asks about
	// the server as a whole, and only OPTIONS may use it: the methods the
	// API takes anywhere, as for a plain OPTIONS on one of its paths.
	if string(c.Request().Header.RequestURI()) == "*" {
		if c.Method() != fiber.MethodOptions {
			return validationError()
		}
		c.Set(fiber.HeaderAllow, serverMethods)
		c.Status(fiber.StatusNoContent)
		return nil
	}
	return c.Next()
}

// serverMethods are the methods some route of the API takes.
const serverMethods = "GET, HEAD, POST, OPTIONS"

// finish records the request in metrics and the access log.
func (s *Server) finish(c *fiber.Ctx, rq *request) {
	status := c.Response().StatusCode()
	d := time.Since(rq.start)
	route := rq.route
	if route == "" {
		route = "unmatched"
	}
	platform := rq.client.Platform.String()
	s.obs.RequestDone(route, c.Method(), status, platform, d)
	if rq.traceCtx != nil {
		rq.span.SetRoute(c.Method(), route)
		rq.span.SetHTTPStatus(status)
		rq.span.End()
	}
	if s.access == nil || !s.accessLog.Load() {
		return
	}
	rq.logBuf = appendAccessLine(rq.logBuf[:0], rq, c.Method(), route, status, d)
	s.access.write(rq.logBuf)
}

// peerAddr is the address the request's connection comes from (read once
// per connection when it is the gateway's own).
func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if cc, ok := ctx.Conn().(*clientConn); ok {
		return cc.peer
	}
	return tcpPeer(ctx.RemoteAddr())
}

// tcpPeer is a TCP address's IP (IPv4-mapped IPv6 as IPv4); the zero
// Addr for any other kind of address.
func tcpPeer(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// endpoint wraps a route's handler with the steps every API route takes,
// in order: per-IP limit, the auth-failure limit (before any signature
// check), authentication, the platform policy's access rule, per-user and
// per-device limits.
func (s *Server) endpoint(route string, h func(*fiber.Ctx, *request) error) func(*fiber.Ctx, *request) error {
	return func(c *fiber.Ctx, rq *request) error {
		rq.route = route
		p := rq.policy
		if err := s.limitIP(rq); err != nil {
			return err
		}
		if v := s.limiter.AuthFailuresExhausted(p, rq.clientIP, rq.start); !v.Allowed {
			return s.rateLimited(rq, v)
		}
		_, span := s.tracing.StartSpan(rq.traceCtx, "authenticate")
		id, err := s.auth.AuthenticateOn(rq, c.Request().Header.PeekAll(fiber.HeaderAuthorization), authMemo(c.Context()), rq.start)
		span.Fail(err)
		span.End()
		if err != nil {
			if errorsIsUnauthenticated(err) {
				s.limiter.RecordAuthFailure(p, rq.clientIP, rq.start)
			}
			return err
		}
		rq.identity = id
		if d := p.Authorize(route, id); !d.Allowed {
			s.logger.LogAttrs(context.Background(), slog.LevelDebug, "access denied",
				slog.String("request_id", rq.id), slog.String("route", route),
				slog.String("policy", p.Name), slog.String("reason", d.Reason))
			return errForbidden
		}
		if v := s.limiter.AllowUser(p, id.Subject, rq.start); !v.Allowed {
			return s.rateLimited(rq, v)
		}
		if rq.client.DeviceID != "" {
			if v := s.limiter.AllowDevice(p, rq.client.DeviceID, rq.start); !v.Allowed {
				return s.rateLimited(rq, v)
			}
		}
		return h(c, rq)
	}
}

// limitIP takes one token from the client IP's bucket (the perIP limit of
// the request's policy). Every request whose headers the gateway read
// and trusts is charged, on an API route or not: 404s, 405s and CORS
// preflights too, so that no kind of request floods the gateway unlimited.
func (s *Server) limitIP(rq *request) error {
	if v := s.limiter.AllowIP(rq.policy, rq.clientIP, rq.start); !v.Allowed {
		return s.rateLimited(rq, v)
	}
	return nil
}

func (s *Server) rateLimited(rq *request, v policies.Verdict) error {
	s.obs.RateLimited(rq.policy.Name, v.Kind)
	return &apiError{status: fiber.StatusTooManyRequests, msgs: []msg{msgTooManyRequests}, verdict: &v}
}

// The request is its own context: its deadline is the request's overall
// deadline, and the timer behind Done is only made when something waits
// (a retry's pause, parallel calls), so requests that only ask Err, as
// every call does before it starts, never start one. It must not be kept
// after the request ends.
func (rq *request) Deadline() (time.Time, bool) {
	return rq.start.Add(rq.rt.cfg.Server.RequestTimeout), true
}
func (rq *request) Done() <-chan struct{} { return rq.context().Done() }
func (rq *request) Value(any) any         { return nil }

// Err is the timer's verdict once Done made one, and until then the
// clock's: the request is never canceled for any other reason, and a
// Done made after the deadline is closed from the start, so the two agree.
func (rq *request) Err() error {
	rq.ctxMu.Lock()
	ctx := rq.ctx
	rq.ctxMu.Unlock()
	if ctx != nil {
		return ctx.Err()
	}
	if d, _ := rq.Deadline(); !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}
