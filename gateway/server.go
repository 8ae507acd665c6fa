// Package gateway is the Fiber edge: the routes, the middleware that turns
// every request into typed values (client context, identity, policy), the
// handlers that shape user-store data for the apps, and the one envelope
// every response is written in.
//
// A request flows one way: normalize → authenticate → apply policy → cache
// → upstream → shape → envelope.
package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/auth"
	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/gateway/readcache"
	"github.com/bffgate/edge/gateway/telemetry"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream"
	"github.com/bffgate/edge/upstream/contract"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// Authenticator verifies access tokens (gateway/auth.Verifier), with the
// memo of the client connection the request came on (nil: none), at the
// request's arrival.
type Authenticator interface {
	AuthenticateOn(ctx context.Context, authorization [][]byte, memo *auth.Memo, now time.Time) (*auth.Identity, error)
	Ready() (bool, string)
}

// UserStore is the typed user-store client (upstream.Client).
type UserStore interface {
	// CheckUsername must not keep username after it returns (copy it to
	// keep it): it may be the request's own bytes (plainUsernameBody), or
	// pooled ones when the app sent capitals (canonicalUsername). Nor
	// call, or its strings: it is pooled too (usernameCheck).
	CheckUsername(ctx context.Context, call *upstream.Call, username string) (bool, error)
	Search(ctx context.Context, call *upstream.Call, q string, limit, offset int) (*contract.SearchResponse, error)
	UserByID(ctx context.Context, call *upstream.Call, id string) (*contract.User, error)
	ActiveLiveStreams(ctx context.Context, call *upstream.Call, userIDs []string) ([]contract.LiveStream, error)
}

// Observer receives the per-request measurements (Prometheus in
// production). Every method must be cheap and safe for concurrent use.
type Observer interface {
	RequestStarted()
	RequestDone(route, method string, status int, platform string, d time.Duration)
	RateLimited(policy, kind string)
	CacheResult(route, status string)
	// ConnectionRefused counts a client connection refused over
	// server.maxConnections.
	ConnectionRefused()
	// ConnectionRefusedPerIP counts a client connection refused over
	// server.maxConnectionsPerIP.
	ConnectionRefusedPerIP()
}

type nopObserver struct{}

func (nopObserver) RequestStarted()                                        {}
func (nopObserver) RequestDone(string, string, int, string, time.Duration) {}
func (nopObserver) RateLimited(string, string)                             {}
func (nopObserver) CacheResult(string, string)                             {}
func (nopObserver) ConnectionRefused()                                     {}
func (nopObserver) ConnectionRefusedPerIP()                                {}

// Deps is everything the server needs; main builds them.
type Deps struct {
	Config   *config.Config
	Policies *policies.Set
	Logger   *slog.Logger
	Auth     Authenticator
	Store    UserStore
	// Cache is nil when caching is disabled.
	Cache    *readcache.Cache
	Limiter  *policies.Limiter
	Observer Observer
	// Tracing is nil or disabled unless tracing is configured.
	Tracing *telemetry.Tracing
	// AccessLog receives the access log lines (JSON, one per request);
	// nil turns the access log off whatever log.access says.
	AccessLog io.Writer
}

// runtime is the part of the configuration that can change while running.
// A reload swaps it whole; a request keeps the snapshot it started with.
type runtime struct {
	cfg      *config.Config
	policies *policies.Set
	trusted  []netip.Prefix
}

// Server is the gateway's public edge.
type Server struct {
	app     *fiber.App
	logger  *slog.Logger
	auth    Authenticator
	store   UserStore
	cache   *readcache.Cache
	limiter *policies.Limiter
	obs     Observer
	tracing *telemetry.Tracing
	rt      atomic.Pointer[runtime]

	access     *accessLog
	accessLog  atomic.Bool
	inFlight   atomic.Int64
	failureLog failureLogSampler

	// Client connections open, and those refused over server.maxConnections
	// (clientListener).
	maxConns      int64
	openConns     atomic.Int64
	connsRefused  atomic.Uint64
	refusedLogged atomic.Int64 // Unix nanoseconds of the last warning
	refusing      atomic.Int64 // refusals being sent (answerRefused), which Shutdown waits for
	// Those refused over server.maxConnectionsPerIP, and the count of
	// each address's open connections.
	connsRefusedPerIP  atomic.Uint64
	refusedPerIPLogged atomic.Int64
	addrConns          addrConns
	acceptLogged       atomic.Int64 // Unix nanoseconds of the last failed accept logged

	// deadlineSlack: how late the public connections' timeouts may fire
	// (clientConn).
	deadlineSlack time.Duration

	// The listener Serve was given, which Shutdown closes itself: fasthttp
	// only stops a listener its Serve has registered, so a Shutdown that
	// comes first (a stop asked for while the gateway starts) would leave
	// it serving, and the process waiting for it, for good.
	lnMu     sync.Mutex
	ln       net.Listener
	stopping bool

	// closing: Shutdown has begun; drainOver: it has returned, on time
	// or not (serveStopping).
	closing, drainOver atomic.Bool
	// lingering: client connections whose close lingers after a refusal
	// (lingerOnClose), which Shutdown waits for.
	lingering atomic.Int64
	// conns: the client connections open, which CutShort closes.
	conns    connSet
	cutShort atomic.Bool
}

// New builds the server and its routes.
func New(d Deps) (*Server, error) {
	if d.Config == nil || d.Policies == nil || d.Auth == nil || d.Store == nil || d.Limiter == nil {
		return nil, errors.New("gateway: config, policies, auth, store and limiter are required")
	}
	s := &Server{
		logger:  d.Logger,
		auth:    d.Auth,
		store:   d.Store,
		cache:   d.Cache,
		limiter: d.Limiter,
		obs:     d.Observer,
		tracing: d.Tracing,
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	s.failureLog.report = func(op, outcome string, suppressed uint64) {
		s.logger.LogAttrs(context.Background(), slog.LevelWarn, "upstream failure lines suppressed",
			slog.String("op", op), slog.String("outcome", outcome), slog.Uint64("suppressed", suppressed))
	}
	if s.tracing.Enabled() {
		s.store = tracedStore{inner: s.store, tracing: s.tracing}
	}
	if d.AccessLog != nil {
		s.access = newAccessLog(d.AccessLog)
	}
	if err := s.Reload(d.Config, d.Policies); err != nil {
		return nil, err
	}
	cfg := d.Config.Server
	s.deadlineSlack = deadlineSlack(cfg.ReadTimeout, cfg.WriteTimeout, cfg.IdleTimeout)
	s.maxConns = int64(cfg.MaxConnections)
	s.app = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ServerHeader:          "",
		BodyLimit:             int(cfg.BodyLimit),
		ReadBufferSize:        int(cfg.HeaderLimit),
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		// The cap is the listener's (clientListener), which answers with
		// an envelope; fasthttp's, in plain text, stays out of reach.
		Concurrency:   cfg.MaxConnections + cfg.MaxConnections/8 + 64,
		CaseSensitive: true,
		// No route takes a form: fasthttp would otherwise parse every
		// multipart body before the handler, and refuse one that does
		// not parse with a bare 400, whatever the route (a body on GET
		// included) and before the username check could say why.
		DisablePreParseMultipartForm: true,
		ErrorHandler:                 s.lastResortErrorHandler,
		// Request strings are copied explicitly where they are kept; the
		// zero-copy default stays for speed.
		Immutable: false,
	})
	// Fiber answers an unknown HTTP method itself in plain text; put the
	// edge in front so that answer is an envelope too.
	fh := s.app.Server().Handler
	bodyLimit, writeTimeout := int(cfg.BodyLimit), cfg.WriteTimeout
	s.app.Server().HeaderReceived = func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
		return holdHeaders(h, bodyLimit, writeTimeout) // held.go
	}
	// Fiber calls a failed read of the client's connection a 502, the
	// status of a failing user store (errors.go, readFailed).
	fiberReadErrors := s.app.Server().ErrorHandler
	s.app.Server().ErrorHandler = func(ctx *fasthttp.RequestCtx, err error) {
		// The answer to HEAD has no body (RFC 9110 section 9.3.2), a
		// refusal as its body is read included: fasthttp skips it for a
		// handler's answer only.
		if headRequest(ctx) {
			defer func() { ctx.Response.SkipBody = true }()
		}
		if nothingRead(ctx, err) {
			closeUnanswered(ctx) // errors.go
			return
		}
		// fasthttp gives the socket a write deadline only before a
		// handler's answer: the refusal of a request it could not read
		// (400, 408, 413, 414, 431) would go out under the previous answer's,
		// long past on a keep-alive connection idle for more than the
		// write timeout, and the client would get no answer at all.
		answerDeadline(ctx, writeTimeout)
		if readRefusedFraming(ctx) {
			// Its body was not waited for (holdHeaders): the refusal of
			// an ambiguous header block, as serve gives it when the body
			// was already there, not a 408 once the read timeout passed.
			bodyRead(ctx)
			writeUnroutedError(&ctx.Response, &ctx.Request.Header, fiber.StatusBadRequest, false)
			s.finishUnrouted(ctx, time.Now(), false)
			lingerOnClose(ctx)
			return
		}
		if connFailed(err) {
			s.readFailed(ctx)
			return
		}
		fiberReadErrors(ctx, fiberReadable(err))
		// The client may still be sending what was refused (conn.go),
		// unless it did not send in time.
		if ctx.Response.StatusCode() != fiber.StatusRequestTimeout {
			lingerOnClose(ctx)
		}
	}
	serve := func(ctx *fasthttp.RequestCtx) {
		// Answered as unparsable, their headers not trusted: a request
		// whose end is not certain (and nothing more of its connection is
		// read), and one whose chunked body ended in trailer fields, which
		// fasthttp merged into its headers.
		if ambiguous := refusedFraming(ctx); ambiguous || sentTrailers(ctx) {
			bodyRead(ctx)
			if ambiguous {
				ctx.SetConnectionClose()
				lingerOnClose(ctx) // what follows on the connection is not read
			}
			writeUnroutedError(&ctx.Response, &ctx.Request.Header, fiber.StatusBadRequest, false)
			s.finishUnrouted(ctx, ctx.Time(), false)
			return
		}
		// A broken request line, or another HTTP version: its headers
		// are not trusted either, as for a request that did not parse.
		if status := requestLineStatus(&ctx.Request.Header); status != 0 {
			bodyRead(ctx)
			ctx.SetConnectionClose()
			lingerOnClose(ctx)
			writeUnroutedError(&ctx.Response, &ctx.Request.Header, status, false)
			s.finishUnrouted(ctx, ctx.Time(), false)
			return
		}
		// An HTTP/1.1 request without Host, or a Host that is no host
		// (RFC 9112 section 3.2), or an absolute-form target whose
		// authority is none or whose scheme is not served (section
		// 3.2.2; targetFault). Its framing is sound and its headers
		// parsed: answered in the caller's language, and the connection
		// kept.
		if detail, refused := hostRefused(ctx); refused {
			bodyRead(ctx)
			if s.limitUnrouted(ctx, arrival(ctx)) {
				return
			}
			writeUnroutedError(&ctx.Response, &ctx.Request.Header, fiber.StatusBadRequest, true, detail)
			s.unroutedCORS(&ctx.Response, &ctx.Request.Header)
			s.finishUnrouted(ctx, ctx.Time(), true)
			return
		}
		if !knownMethod(ctx.Method()) {
			bodyRead(ctx) // the handler runs: the body was read
			if s.limitUnrouted(ctx, arrival(ctx)) {
				return
			}
			// The headers were read: answer in the caller's language, keep
			// a sane request id, and on a known path say which methods it
			// takes (RFC 9110 requires Allow on a 405); an unknown path is
			// a 404, whatever the method. The asterisk target is a 400, as
			// for every method but OPTIONS (unrouted).
			status := fiber.StatusNotFound
			if string(ctx.Request.Header.RequestURI()) == "*" {
				status = fiber.StatusBadRequest
			} else if allow := allowedMethods(string(ctx.URI().PathOriginal())); allow != "" {
				ctx.Response.Header.Set(fiber.HeaderAllow, allow)
				status = fiber.StatusMethodNotAllowed
			}
			writeUnroutedError(&ctx.Response, &ctx.Request.Header, status, true)
			s.unroutedCORS(&ctx.Response, &ctx.Request.Header)
			s.finishUnrouted(ctx, ctx.Time(), true)
			return
		}
		fh(ctx)
	}
	s.app.Server().Handler = func(ctx *fasthttp.RequestCtx) {
		if s.closing.Load() && s.serveStopping(ctx) {
			return
		}
		serve(ctx)
		if s.closing.Load() {
			// A request still in flight when the drain starts gets the
			// connection's last answer, and that answer must say so and
			// go out: fasthttp alone closed the connection after an
			// answer that promised to keep it, and dropped an answer
			// still buffered behind a client's pipelined request, unsent.
			// (Its CloseOnShutdown would do this only while its own drain
			// lasts: see serveStopping.)
			ctx.SetConnectionClose()
		}
	}
	s.routes()
	return s, nil
}

// limitUnrouted charges a request that never reaches the edge but whose
// headers were read and trusted (no Host, an unknown method, a body fasthttp
// refused: lastResortErrorHandler) to its client IP's bucket at now, as the
// edge does every other request (limitIP). When the bucket is empty it
// answers the 429, as the edge would, and reports true.
func (s *Server) limitUnrouted(ctx *fasthttp.RequestCtx, now time.Time) bool {
	rt := s.rt.Load()
	h := &ctx.Request.Header
	p := rt.policies.For(clientctx.ParsePlatform(h.Peek(clientctx.HeaderPlatform)))
	ip := policies.ClientIP(peerAddr(ctx), h.PeekAll(fiber.HeaderXForwardedFor), rt.trusted)
	v := s.limiter.AllowIP(p, ip, now)
	if v.Allowed {
		return false
	}
	s.obs.RateLimited(p.Name, v.Kind)
	writeUnroutedError(&ctx.Response, h, fiber.StatusTooManyRequests, true)
	v.Headers(ctx.Response.Header.Set)
	s.unroutedCORS(&ctx.Response, h)
	s.finishUnrouted(ctx, now, true)
	return true
}

func knownMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH":
		return true
	}
	return false
}

// Reload swaps in a new validated configuration and its compiled policies.
// In-flight requests finish on the snapshot they started with.
func (s *Server) Reload(cfg *config.Config, set *policies.Set) error {
	trusted, err := policies.ParseTrusted(cfg.Server.TrustedProxies)
	if err != nil {
		return err
	}
	s.rt.Store(&runtime{cfg: cfg, policies: set, trusted: trusted})
	s.accessLog.Store(cfg.Log.Access)
	return nil
}

// Serve answers requests on ln until Shutdown. Each connection carries
// its own state (clientConn): its read, write and idle timeouts, given to
// the socket lazily (at most a tenth of the shortest timeout late), and
// the memo of the last token verified on it.
func (s *Server) Serve(ln net.Listener) error {
	s.lnMu.Lock()
	if s.stopping {
		s.lnMu.Unlock()
		return ln.Close()
	}
	s.ln = ln
	s.lnMu.Unlock()
	err := s.app.Listener(clientListener{Listener: ln, slack: s.deadlineSlack, readBuffer: s.app.Server().ReadBufferSize,
		max: s.maxConns, open: &s.openConns, refuse: s.refuseConn, acceptFailed: s.acceptFailed, lingering: &s.lingering,
		perAddr: s.connectionsPerAddr, addrs: &s.addrConns, refuseAddr: s.refuseAddrConn, conns: &s.conns})
	if err == nil {
		// fasthttp returns nil when its listener says it is closed
		// (io.EOF, net.ErrClosed). Only Shutdown closes it on purpose;
		// before that the gateway has lost its listener and must not
		// go on as if it still served.
		s.lnMu.Lock()
		stopping := s.stopping
		s.lnMu.Unlock()
		if !stopping {
			err = errListenerClosed
		}
	}
	return err
}

// errListenerClosed: the public listener was closed while the gateway
// served, by something other than Shutdown.
var errListenerClosed = errors.New("the listener was closed while serving")

// connectionsPerAddr is the running server.maxConnectionsPerIP and trusted
// proxies (clientListener).
func (s *Server) connectionsPerAddr() (int, []netip.Prefix) {
	rt := s.rt.Load()
	return rt.cfg.Server.MaxConnectionsPerIP, rt.trusted
}

// CloseAccessLog writes the access log lines still queued and stops the
// queue, waiting a second at most for the output; the lines of requests
// answered after it are dropped. Shutdown does it once the drain is over;
// a process that exits without it (the binary's second signal) calls this,
// or loses the lines of the last 100 ms.
func (s *Server) CloseAccessLog() {
	if s.access != nil {
		s.access.Close()
	}
}

// Shutdown stops accepting connections and waits up to timeout for
// in-flight requests to finish, for every client connection still open to
// close (one whose request is still coming, one lingering after a refusal,
// each at most lingerTime), and for the refusals of connections over
// server.maxConnections and maxConnectionsPerIP still being sent
// (answerRefused, each at most a second): the process exiting would reset
// them. It reports whether they all did (never after CutShort).
func (s *Server) Shutdown(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	s.closing.Store(true)
	defer s.drainOver.Store(true)
	s.lnMu.Lock()
	s.stopping = true
	ln := s.ln
	s.lnMu.Unlock()
	// ShutdownWithTimeout may return at its deadline while handlers still
	// run: wait for them too, within the same deadline. It returns at once
	// when fasthttp has not registered the listener yet: closing it makes
	// that Serve return as soon as it accepts.
	_ = s.app.ShutdownWithTimeout(timeout)
	if ln != nil {
		_ = ln.Close() // already closed when fasthttp had it
	}
	drained := true
	// No refusal starts once ShutdownWithTimeout has returned in time:
	// fasthttp counts its accept loop as an open connection, and a
	// refusal is counted in refusing inside Accept (clientListener).
	// Open connections too: after CutShort, fasthttp's own wait may have
	// ended at once (the listener it closes was closed already), and its
	// serving of each connection ends only with the handler.
	for s.inFlight.Load() > 0 || s.lingering.Load() > 0 || s.refusing.Load() > 0 || s.openConns.Load() > 0 {
		if time.Now().After(deadline) {
			drained = false
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The counts of failure lines left out that wait for their second's
	// end: the process exits before it.
	s.failureLog.stop()
	if s.access != nil {
		s.access.Close()
	}
	return drained && !s.cutShort.Load()
}

// CutShort ends a drain early (or the serving, without one): it closes
// the listener and every client connection at once, what a client was
// still sending or waiting for included, and lingering closes end with
// them. Handlers still running go on to their end (server.requestTimeout
// at most) and their answers are lost; Shutdown, running or called after,
// returns once they have, and once the 503s of refused connections still
// being sent have (answerRefused, a second at most: those connections are
// not among the ones closed).
func (s *Server) CutShort() {
	s.cutShort.Store(true)
	s.closing.Store(true)
	s.lnMu.Lock()
	s.stopping = true
	ln := s.ln
	s.lnMu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	s.conns.closeAll()
}

// serveStopping answers a request that arrives after the drain is over,
// and reports whether it did. fasthttp's own stop flag lasts only as long
// as its drain: it clears it when the drain ends, on time or not, and a
// connection still busy then went on serving requests, none of them the
// last, while the process closed what they need (the verifier, the store
// client, the cache). So from the moment Shutdown starts, every answer is
// its connection's last (the handler sets it after the request), and once
// Shutdown has returned a request is answered 503 and its connection
// closed.
func (s *Server) serveStopping(ctx *fasthttp.RequestCtx) bool {
	if !s.drainOver.Load() {
		return false
	}
	bodyRead(ctx)
	ctx.SetConnectionClose()
	writeUnroutedError(&ctx.Response, &ctx.Request.Header, fiber.StatusServiceUnavailable, true)
	s.unroutedCORS(&ctx.Response, &ctx.Request.Header)
	s.finishUnrouted(ctx, ctx.Time(), true)
	return true
}

// InFlight is the number of requests being handled.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// OpenConnections is the number of client connections open on the
// listener, from their accept to the end of their close (a lingering one
// included): what server.maxConnections bounds.
func (s *Server) OpenConnections() int64 { return s.openConns.Load() }
