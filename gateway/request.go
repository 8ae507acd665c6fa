package gateway

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/bffgate/edge/gateway/auth"
	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/gateway/telemetry"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream"
)

// request is everything the gateway knows about one incoming request once
// the edge has run: the normalized client context, the verified
// identity, the policy that applies. Handlers read these typed values,
// never raw headers. It is pooled; nothing may keep it after the request.
type request struct {
	start   time.Time
	headers requestHeaders
	// id is idBuf's bytes (the client's sane id, or a made one): valid
	// until the request ends. Whatever outlives the request copies it
	// (call).
	id       string
	idBuf    [maxRequestIDLen]byte
	idMade   bool // id is the gateway's own, not the client's
	client   clientctx.Context
	clientIP netip.Addr
	rt       *runtime
	policy   *policies.Policy
	route    string // route id, "" until a route matched
	identity *auth.Identity

	// ctx carries the overall deadline of the request; made when
	// something first waits on Done, so that requests answered from cache
	// or with one store call never pay for a timer. ctxMu guards making
	// it: a request's calls may run in parallel (a profile and its live
	// stream), and each asks for it.
	ctxMu  sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc

	// Tracing: the request's span and its context (nil when tracing is
	// off), and the client's traceparent header (valid while the handler
	// runs only).
	traceCtx    context.Context
	span        telemetry.Span
	traceparent []byte

	// For the access log.
	cacheStatus  string
	upstreamTime atomic.Int64 // nanoseconds, summed over calls
	partial      bool
	breakerOpen  string // operation whose breaker refused the call, if any

	// logBuf is reused across requests for the access log line, keyBuf
	// for the read-cache key of a look-up.
	logBuf []byte
	keyBuf []byte
}

var requestPool = sync.Pool{New: func() any { return new(request) }}

func acquireRequest() *request { return requestPool.Get().(*request) }

func releaseRequest(rq *request) {
	if rq.cancel != nil {
		rq.cancel()
	}
	*rq = request{logBuf: rq.logBuf[:0], keyBuf: rq.keyBuf[:0]}
	requestPool.Put(rq)
}

// context returns the request's context with its overall deadline.
func (rq *request) context() context.Context {
	rq.ctxMu.Lock()
	defer rq.ctxMu.Unlock()
	if rq.ctx == nil {
		d, _ := rq.Deadline()
		rq.ctx, rq.cancel = context.WithDeadline(context.Background(), d)
	}
	return rq.ctx
}

// call describes this request to the user store: identity and context
// headers come only from verified and normalized values. Without tracing,
// the client's traceparent goes on when it is valid W3C (a new one is made
// otherwise); with tracing, each call sends its own span's.
func (rq *request) call() *upstream.Call {
	o := new(ownedCall)
	rq.describe(o)
	return &o.Call
}

// describe writes what call returns into o (a pooled one: the username
// check's).
func (rq *request) describe(o *ownedCall) {
	c := &o.Call
	// The request id is copied: the call may outlive the request (a
	// background refresh), and rq.id is the pooled request's bytes.
	id := append(o.buf[:0], rq.id...)
	c.RequestID = unsafe.String(unsafe.SliceData(id), len(id))
	c.Language = rq.client.Language.String()
	c.Timezone = rq.client.Timezone
	c.Platform = rq.client.Platform.String()
	c.AppVersion = rq.client.AppVersion
	c.DeviceID = rq.client.DeviceID
	if rq.identity != nil {
		c.UserID = rq.identity.Subject
		c.Roles = rq.identity.Roles()
	}
	if rq.traceCtx == nil {
		tp := telemetry.AppendPropagatedTraceparent(id[len(id):], rq.traceparent)
		c.Traceparent = unsafe.String(unsafe.SliceData(tp), len(tp))
	}
}

// ownedCall is a Call with room for the bytes of the two strings it holds
// that are made for it, the request id and the traceparent: one allocation
// for the three. buf is written before the strings are handed out, and
// never again while they are: never for a call's, and for the username
// check's, which is pooled, only once it is released.
type ownedCall struct {
	upstream.Call
	buf [maxRequestIDLen + telemetry.TraceparentLen]byte
}

// upstreamContext is the context of the request's store calls: its
// deadline, and its span when tracing.
func (rq *request) upstreamContext() context.Context {
	if rq.traceCtx == nil {
		return rq
	}
	return telemetry.ContextWithSpan(rq, rq.span)
}

func (rq *request) addUpstreamTime(d time.Duration) { rq.upstreamTime.Add(int64(d)) }

// Request ids: a client's X-Request-Id is kept when it is sane (1-128 of
// [A-Za-z0-9._:-]); otherwise the gateway makes a random UUID-shaped id.
const maxRequestIDLen = 128

func saneRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > maxRequestIDLen {
		return false
	}
	for _, ch := range b {
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9',
			ch == '-', ch == '_', ch == '.', ch == ':':
		default:
			return false
		}
	}
	return true
}

// setID gives the request the client's id when it is sane, a new one
// otherwise, in idBuf.
func (rq *request) setID(sent []byte) {
	var id []byte
	if rq.idMade = !saneRequestID(sent); rq.idMade {
		id = appendRequestID(rq.idBuf[:0])
	} else {
		id = append(rq.idBuf[:0], sent...)
	}
	rq.id = unsafe.String(unsafe.SliceData(id), len(id))
}

// newRequestID returns a random version-4 UUID as a string of its own.
func newRequestID() string { return string(appendRequestID(nil)) }

// appendRequestID appends a random version-4 UUID. math/rand/v2's
// generator is unpredictable enough for correlation ids and costs
// nanoseconds.
func appendRequestID(dst []byte) []byte {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], rand.Uint64()&^(0xf<<12)|0x4<<12) // version 4
	binary.BigEndian.PutUint64(raw[8:], rand.Uint64()&^(0x3<<62)|0x2<<62) // variant 10
	var out [36]byte
	hex.Encode(out[0:8], raw[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], raw[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], raw[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], raw[8:10])
	out[23] = '-'
	hex.Encode(out[24:], raw[10:])
	return append(dst, out[:]...)
}
