package gateway

import (
	"bytes"
	"strconv"
	"time"

	"github.com/bffgate/edge/gateway/readcache"
	"github.com/bffgate/edge/gateway/telemetry"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
)

// peek is the hot path of a cached read: a fresh entry at now (the
// request's arrival), without allocating.
func (s *Server) peek(key string, ttl time.Duration, p *policies.Policy, now time.Time) (*readcache.Entry, bool) {
	if s.cache == nil || ttl <= 0 || p.CacheBypass() {
		return nil, false
	}
	return s.cache.PeekAt(key, now, ttl)
}

// traceHit gives a hit found by peek (the /me fast path, which skips
// serveCached) the cache span every cached read has, when tracing is on.
func (s *Server) traceHit(rq *request) {
	if !s.tracing.Enabled() {
		return
	}
	_, span := s.tracing.StartSpan(rq.traceCtx, "cache", attribute.String("cache.status", readcache.Hit.String()))
	span.End()
}

// CachePartitions is the read cache's Options.Partitions: each cached
// route has half of cache.maxEntries and cache.maxBytes to itself. A client
// paging through searches (a new key a page, ~11 KB each) would otherwise
// push every cached profile out, the oldest first; now a route holding
// more than its half makes room from its own oldest entries.
const CachePartitions = 2

// cachePartition is a cached route's partition of the read cache.
func cachePartition(route string) int {
	if route == "me" {
		return 1
	}
	return 0
}

// serveCached answers a cacheable read through the read cache: a fresh
// entry, a stale one (while revalidating, or because the store is failing),
// or a load shared by every concurrent miss of the key.
func (s *Server) serveCached(c *fiber.Ctx, rq *request, route, key string, ttl, swr, sie, clientMaxAge time.Duration, call *upstream.Call, load readcache.LoadFunc) error {
	if s.cache == nil || ttl <= 0 || rq.policy.CacheBypass() {
		l, err := load(rq.upstreamContext())
		rq.addUpstreamTime(call.UpstreamTime())
		// Counted like every other cache answer (the bypass series of
		// gateway_cache_lookups_total would otherwise stay at zero), a
		// failed load too.
		rq.cacheStatus = "BYPASS"
		s.obs.CacheResult(rq.route, "BYPASS")
		if err != nil {
			return err
		}
		setCanonical(&c.Response().Header, hdrCache, "BYPASS")
		if !l.Cacheable {
			rq.partial = true
			c.Set(headerPartial, partialLive)
		}
		setCanonical(&c.Response().Header, hdrCacheControl, cacheControlNoStore)
		writeDataBytes(c.Response(), fiber.StatusOK, l.Data)
		return nil
	}
	pol := readcache.Policy{
		TTL:                  ttl,
		StaleWhileRevalidate: swr,
		StaleIfError:         sie,
		RefreshTimeout:       rq.rt.cfg.Server.RequestTimeout,
		Partition:            cachePartition(route),
	}
	// The loads run under the cache span, and the request's deadline.
	_, span := s.tracing.StartSpan(rq.traceCtx, "cache")
	ctx := telemetry.ContextWithSpan(rq, span)
	e, status, err := s.cache.Get(ctx, key, pol, load, upstream.IsUpstreamFault)
	span.SetAttributes(attribute.String("cache.status", status.String()))
	span.End()
	rq.addUpstreamTime(call.UpstreamTime())
	if err != nil {
		// A miss whose load failed (and no stale entry stood in) is a
		// lookup like any other: left out, the hit ratio of the runbook
		// would read high just while the store fails.
		rq.cacheStatus = status.String()
		s.obs.CacheResult(rq.route, rq.cacheStatus)
		return err
	}
	return s.writeEntry(c, rq, route, e, status, clientMaxAge)
}

// writeEntry answers an entry with its validators: X-Cache, ETag,
// Cache-Control (and Age), and 304 when the client already has these bytes.
// The 304 carries the headers the 200 would.
func (s *Server) writeEntry(c *fiber.Ctx, rq *request, route string, e *readcache.Entry, status readcache.Status, clientMaxAge time.Duration) error {
	st := status.String()
	rq.cacheStatus = st
	s.obs.CacheResult(rq.route, st)
	h := &c.Response().Header
	setCanonical(h, hdrCache, st)
	if !e.Cacheable() {
		// A partial answer: served to this caller, cached nowhere.
		rq.partial = true
		h.Set(headerPartial, partialLive)
		setCanonical(h, hdrCacheControl, cacheControlNoStore)
		writeData(c.Response(), fiber.StatusOK, e.Data())
		return nil
	}
	setCanonical(h, hdrETag, e.ETag())
	if clientMaxAge <= 0 {
		setCanonical(h, hdrCacheControl, cacheControlNoStore)
	} else {
		clientFreshness(h, rq, e, status, clientMaxAge)
		// A client may keep the answer: its cache, keyed by the URL, must
		// not give it to another user, language or platform (added to
		// CORS's Vary: Origin, on the 304 too). On a platform with CORS,
		// the answer depends on Origin also when the request sent none
		// (CORS only sets Vary for a request with one): a copy kept
		// without Access-Control-Allow-Origin must not answer the web
		// app's cross-origin fetch.
		vary := varyClientContext
		if len(rq.headers.origin) == 0 && rq.policy.CORS() != nil {
			vary = varyClientContextOrigin
		}
		h.Add(fiber.HeaderVary, vary)
	}
	if notModified(c, rq, e.ETag()) {
		// 304 carries no body by definition: the one response that is
		// not an envelope.
		c.Response().ResetBody()
		c.Status(fiber.StatusNotModified)
		return nil
	}
	writeData(c.Response(), fiber.StatusOK, e.Data())
	return nil
}

// cacheControlNoStore is the Cache-Control of a successful answer no
// client may keep: personalised by default, partial, or not cached.
const cacheControlNoStore = "private, no-store"

// cacheControlStale is the Cache-Control of a stale answer a client could
// otherwise keep: it may store it, to revalidate it with its ETag, but
// never reuse it as fresh.
const cacheControlStale = "private, max-age=0"

// clientFreshness sets Cache-Control and Age on an answer a client may keep
// (clientMaxAge above 0). max-age counts from when the gateway loaded the
// data, as RFC 9111 counts it from when the origin made the answer, and Age
// says how long ago that was: a client keeps the answer max-age minus Age
// (section 4.2), so what an app shows is never older than clientMaxAge, an
// entry served near the end of its TTL included. A miss was loaded for
// this request and has no Age. A stale answer is past the gateway's own
// freshness: max-age=0, whatever clientMaxAge says.
func clientFreshness(h *fasthttp.ResponseHeader, rq *request, e *readcache.Entry, status readcache.Status, clientMaxAge time.Duration) {
	if status == readcache.Stale {
		setCanonical(h, hdrCacheControl, cacheControlStale)
	} else {
		setCanonical(h, hdrCacheControl, cacheControlMaxAge(clientMaxAge))
	}
	if status != readcache.Miss {
		var b [20]byte
		h.SetCanonical(hdrAge, strconv.AppendInt(b[:0], ageSeconds(e.StoredAt(), rq.start), 10))
	}
}

// ageSeconds is the Age of an entry stored at storedAt and served to a
// request that arrived at now: whole seconds, rounded up, so that max-age
// minus Age never keeps a client's copy past storedAt + max-age (the
// client adds the time the answer took to reach it, section 4.2.3). An
// entry stored after the request arrived is 0.
func ageSeconds(storedAt, now time.Time) int64 {
	d := now.Sub(storedAt)
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// varyClientContext names the request headers a cached answer depends on
// besides its URL: the token (whose answer), the language (messages, price
// display) and the platform (which fields).
const varyClientContext = "Authorization, X-Language, Accept-Language, X-Platform"

// varyClientContextOrigin is varyClientContext with Origin, for a request
// without one on a platform with CORS.
const varyClientContextOrigin = varyClientContext + ", Origin"

// cacheControlMaxAge is the Cache-Control of an answer a client may keep
// for maxAge (above 0): private, as every answer is personalised.
func cacheControlMaxAge(maxAge time.Duration) string {
	return "private, max-age=" + strconv.Itoa(int(maxAge/time.Second))
}

// notModified reports whether the request's If-None-Match lists etag (or
// "*") on any of its lines.
func notModified(c *fiber.Ctx, rq *request, etag string) bool {
	if matchesETag(rq.headers.ifNoneMatch, etag) {
		return true
	}
	if rq.headers.moreIfNoneMatch {
		for _, line := range c.Request().Header.PeekAll(fiber.HeaderIfNoneMatch)[1:] {
			if matchesETag(line, etag) {
				return true
			}
		}
	}
	return false
}

// matchesETag implements If-None-Match for GET: "*", or a list of entity
// tags compared weakly (a W/ prefix is ignored).
func matchesETag(header []byte, etag string) bool {
	if len(header) == 0 {
		return false
	}
	for len(header) > 0 {
		var tag []byte
		tag, header, _ = bytes.Cut(header, []byte{','})
		tag = bytes.TrimSpace(tag)
		tag = bytes.TrimPrefix(tag, []byte("W/"))
		if string(tag) == "*" || string(tag) == etag {
			return true
		}
	}
	return false
}
