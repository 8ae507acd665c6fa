package gateway

import (
	"bufio"
	"bytes"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// Headers held while a request's body is read.
//
// fasthttp reads a request's header block, then its body, and only then
// calls the handler. When the body fails (it never arrives: 408; a chunked
// body grows past the limit: 413; a malformed chunk: 400), fasthttp resets
// the whole request, headers included, before the error handler runs: the
// answer would lose the caller's language, request id and CORS origin, and
// the access line the method and client context. So the server's
// HeaderReceived hook, which fasthttp calls between the two reads, copies
// the header block of a request with a body onto its connection, and the
// error handler puts it back when fasthttp dropped it. A request whose body
// was read gives the copy up as the edge starts.
//
// The same hook counts a chunked request's header fields, so that trailer
// fields, which fasthttp adds to the header list after the body, can be
// told apart from headers (sentTrailers).
//
// And it refuses a header block whose framing is ambiguous, notes an
// HTTP/1.1 one without Host, a Host (or a target's authority) that is no
// host and a target of a scheme not served, notes more than one
// Content-Type line (sentContentTypeTwice), makes fasthttp hear a close
// option or a 100-continue expectation in the spellings it misses
// (framing.go), and read the Host and target as they are (settleHost).

// maxHeld bounds the header block (with the request's URI) held per
// connection: a larger one (the header limit allows 8 KiB) is not held,
// and its body's failure is answered as before, in English with a new
// request id, so that connections cannot each keep a full header limit's
// worth for it.
const maxHeld = 4 << 10

var heldPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<10); return &b }}

// hookState is what holdHeaders saw of a connection's latest header block.
type hookState struct {
	// after is the number of the connection's request before the block's:
	// fasthttp numbers a request only once it was read whole, so that is
	// the number its context has while the body is read and when the body
	// fails, and the block's request has after+1 when it is handled.
	after uint64
	// ambiguous: the block's framing could be read differently by another
	// parser (framing.go).
	ambiguous bool
	// host: what refuses a sound block's Host field, if anything: none
	// in HTTP/1.1, or a value that is no host, or an absolute-form
	// target's authority that is none, or its scheme one not served
	// (framing.go).
	host hostFault
	// contentTypeTwice: the block has more than one Content-Type line
	// (sentContentTypeTwice).
	contentTypeTwice bool
	// fields is the number of header fields of a chunked request, -1 for
	// any other (sentTrailers).
	fields int
	// held is the block, for a request with a body, until the body was
	// read (nil otherwise).
	held *[]byte
	// seen: a header block was read on the connection (nothingRead).
	seen bool
	// chunked: the block's request has a chunked body, whose end the
	// connection's reads have not reached before the request is handled
	// (clientConn.Read).
	chunked bool
}

// holdHeaders is the server's HeaderReceived hook; bodyLimit and
// writeTimeout are the server's. It changes nothing of how the request is
// read, but for a connection to close after an ambiguous header block, a
// chunked body or a request that lists the close option, for a
// 100-continue expectation spelled otherwise to be heard, for one
// that must not be (settleExpect), and for the request's Host and target
// to be read as RFC 9112 reads them (settleHost).
func holdHeaders(h *fasthttp.RequestHeader, bodyLimit int, writeTimeout time.Duration) fasthttp.RequestConfig {
	ctx := requestCtxOf(h)
	cc, ok := ctx.Conn().(*clientConn)
	if !ok {
		return fasthttp.RequestConfig{}
	}
	hs := &cc.hook
	hs.seen = true
	hs.after = ctx.ConnRequestNum()
	raw := h.RawHeaders()
	var facts framingFacts
	hs.ambiguous, hs.host, facts = ambiguousFraming(raw, h.IsHTTP11())
	if cc.takeBadLine() { // a fold fasthttp took away, as it arrived (conn.go)
		hs.ambiguous = true
	}
	hs.contentTypeTwice = facts.contentTypeTwice
	if hs.ambiguous || facts.closeAsked {
		h.SetConnectionClose()
	}
	if !hs.ambiguous && hs.host == hostFine {
		if uri := h.RequestURI(); len(uri) == 0 || uri[0] == '/' { // an app's
			settleHost(h)
		} else if hs.host = targetFault(uri); hs.host == hostFine {
			settleHost(h)
		}
	}
	if hs.ambiguous {
		// Refused whatever its body holds: no read waits for it. fasthttp
		// reads what it already has; a body still to come fails the read
		// at once, and the refusal is written then (readRefusedFraming).
		_ = cc.SetReadDeadline(longPast)
	}
	n := h.ContentLength()
	if facts.expects || hs.ambiguous { // an ambiguous block's facts may stop short of its Expect
		settleExpect(ctx, h, facts, n > bodyLimit || hs.ambiguous, writeTimeout)
	}
	hs.fields = -1
	hs.chunked = n == -1
	if n == -1 {
		// Chunked. fasthttp reads a chunk-size line leniently (whatever
		// follows the size up to a CR is skipped, a bare LF included), so
		// a parser in front could end the body elsewhere: nothing after
		// this request is read from the connection (framing.go).
		h.SetConnectionClose()
		// A trailer section may follow the body (sentTrailers). Counted
		// after the line above: Len counts Connection: close too.
		hs.fields = h.Len()
		if !hs.ambiguous { // an ambiguous one's body is not waited for
			cc.lookAtChunks() // a trailer section fasthttp would wait on (conn.go)
		}
	}
	cc.tail = nil
	uri := h.RequestURI()
	if n == 0 || n == -2 || len(raw)+len(uri) > maxHeld { // no body to fail, or too large a block to hold
		cc.releaseHeld()
		return fasthttp.RequestConfig{}
	}
	p := hs.held
	if p == nil {
		p = heldPool.Get().(*[]byte)
	}
	b := append((*p)[:0], h.Method()...)
	b = append(append(b, ' '), uri...)
	b = append(append(b, ' '), h.Protocol()...)
	b = append(append(b, "\r\n"...), raw...)
	*p = b
	hs.held = p
	return fasthttp.RequestConfig{}
}

// settleExpect decides what fasthttp does with a request's Expect lines
// before the handler runs: it answers 100 Continue, whatever the
// request's version, when the first line is exactly "100-continue"
// (Request.MayContinue), and it writes that answer under the write
// deadline the connection has, the previous answer's.
//
//   - An HTTP/1.0 request's expectation is ignored (RFC 9110 section
//     10.1.1: a server MUST; such a client may not read a 1xx answer).
//   - So is the expectation of a request whose body is refused anyway
//     (refused): one announced over the limit, or one whose header block
//     is ambiguous. fasthttp answers 100 Continue before it looks at the
//     length, and only then refuses the body (413): the client is invited
//     to send a body that is refused anyway, and uploads it. Without the
//     field, fasthttp refuses the length at once, before reading a byte
//     of the body, and the 413 envelope is the only answer (a server may
//     answer with the final status instead of 100); an ambiguous block
//     gets its 400 the same way. fasthttp's ContinueHandler could refuse
//     the body too, but only with a bare 417 and without the error
//     handler.
//   - 100-continue in another spelling, on another line or among other
//     expectations is written as fasthttp reads it
//     (framingFacts.expectsContinue).
//   - When a 100 Continue is to be written, the connection gets a fresh
//     write deadline for it (answerDeadline).
func settleExpect(ctx *fasthttp.RequestCtx, h *fasthttp.RequestHeader, facts framingFacts, refused bool, writeTimeout time.Duration) {
	switch {
	case !h.IsHTTP11() || refused:
		h.Del(fasthttp.HeaderExpect)
		return
	case facts.expectsContinue:
		h.Set(fasthttp.HeaderExpect, "100-continue")
	}
	if string(h.Peek(fasthttp.HeaderExpect)) == "100-continue" {
		answerDeadline(ctx, writeTimeout)
	}
}

// settleHost makes fasthttp read a sound header block's Host and target as
// RFC 9112 does. fasthttp builds the request's URI, whose path the router
// matches, from the two:
//
//   - It keeps an HTAB around the Host value (it trims spaces only), and
//     then fails to parse the host: the URI had no path, and a request
//     for a route was answered 404. The value is given without it.
//   - It reads a target that starts with "//" as a network-path reference
//     when the request names no host (HTTP/1.0 without Host, an empty
//     Host), and also, whatever the Host, when "://" appears anywhere in
//     the target (a URL in the query): "//x/api/v1/users/me" became the
//     path /api/v1/users/me on the host x, and was served, where a proxy
//     in front that matches on paths (one that keeps /api/admin/ from the
//     internet) sees another path. The target is an absolute path whose
//     first segment is empty (origin-form, section 3.2.1), no route's. It
//     is given as the target URI section 3.3 makes of it, in absolute
//     form with the scheme and an authority (the server's default name,
//     as for a request that names no host), which fasthttp reads as its
//     path whatever follows. A target that starts with one "/" (every
//     app's) is left alone: fasthttp reads it as its path.
func settleHost(h *fasthttp.RequestHeader) {
	host := h.Host()
	if n := len(host); n > 0 && (host[0] == '\t' || host[n-1] == '\t') {
		h.SetHostBytes(bytes.Trim(host, " \t")) // a copy within its own buffer
	}
	if uri := h.RequestURI(); len(uri) > 1 && uri[0] == '/' && uri[1] == '/' {
		h.SetRequestURI(defaultOrigin + string(uri))
	}
}

// defaultOrigin is the scheme and authority of a target that starts with
// "//" (settleHost): the gateway has no name of its own, and nothing reads
// it but fasthttp's URI parser (which takes the scheme from the
// connection). A name under .invalid (RFC 6761) is never a real one.
const defaultOrigin = "http://gateway.invalid"

// handledHook is the hook's state of the request being handled, nil when
// the hook did not see its header block (a context served outside the
// gateway's listener).
func handledHook(ctx *fasthttp.RequestCtx) *hookState {
	if cc, ok := ctx.Conn().(*clientConn); ok && cc.hook.after+1 == ctx.ConnRequestNum() {
		return &cc.hook
	}
	return nil
}

// requestCtxOf is the request context whose Request.Header h is: fasthttp's
// server calls HeaderReceived with &ctx.Request.Header of the request it
// is reading, and never with another header (server.go, serveConn).
func requestCtxOf(h *fasthttp.RequestHeader) *fasthttp.RequestCtx {
	var ctx *fasthttp.RequestCtx
	off := unsafe.Offsetof(ctx.Request) + unsafe.Offsetof(ctx.Request.Header)
	return (*fasthttp.RequestCtx)(unsafe.Add(unsafe.Pointer(h), -int(off)))
}

// restoreHeld puts back the header block held for the request being
// answered, whose body failed, and reports whether it did. fasthttp
// dropped the headers when the body itself failed; when the trailer
// section after a chunked body failed (it never ended, or holds a field
// fasthttp refuses), the headers are still there but may have trailer
// fields merged into them, which the held block has not. A block held
// for another request of the connection is left alone.
func restoreHeld(ctx *fasthttp.RequestCtx) bool {
	cc, ok := ctx.Conn().(*clientConn)
	if !ok || cc.hook.held == nil {
		return false
	}
	defer cc.releaseHeld()
	if cc.hook.after != ctx.ConnRequestNum() {
		return false
	}
	// The reader holds the whole block: fasthttp reads a header only
	// within its reader's buffer, and a held one may be larger than
	// bufio's default (maxHeld, with the request line added).
	held := *cc.hook.held
	var h fasthttp.RequestHeader
	if h.Read(bufio.NewReaderSize(bytes.NewReader(held), len(held))) != nil {
		return false
	}
	h.CopyTo(&ctx.Request.Header)
	return true
}

// releaseHeld gives up the connection's held header block, if any.
func (c *clientConn) releaseHeld() {
	if c.hook.held != nil {
		heldPool.Put(c.hook.held)
		c.hook.held = nil
	}
}

// headRequest reports whether the request fasthttp failed to read is a
// HEAD: by its headers when fasthttp kept them, else by the block held for
// it, which begins with the method. A request whose header block did not
// parse, or was too large to hold, is not known to be one.
func headRequest(ctx *fasthttp.RequestCtx) bool {
	if ctx.IsHead() {
		return true
	}
	cc, ok := ctx.Conn().(*clientConn)
	return ok && cc.hook.held != nil && cc.hook.after == ctx.ConnRequestNum() &&
		bytes.HasPrefix(*cc.hook.held, []byte(fasthttp.MethodHead+" "))
}

// bodyRead tells the request's connection that the body was read, so the
// header block held for it can go, and what is read next is a header
// block again (scanHead, afterBody).
func bodyRead(ctx *fasthttp.RequestCtx) {
	if cc, ok := ctx.Conn().(*clientConn); ok {
		cc.hook.chunked = false
		cc.chunks = chunkOff
		cc.afterBody(ctx.Request.Header.ContentLength())
		if cc.hook.held != nil {
			cc.releaseHeld()
		}
	}
}

// sentTrailers reports whether the request's chunked body ended in trailer
// fields. fasthttp appends them to the header list, where they would pass
// for headers the client never sent in the header section (X-Platform,
// Origin, X-Forwarded-For after a proxy's own entry), so such a request is
// refused (RFC 9110 section 6.5.1: trailers are not merged into headers).
// The count was taken by holdHeaders when the header block was read.
func sentTrailers(ctx *fasthttp.RequestCtx) bool {
	hs := handledHook(ctx)
	return hs != nil && hs.fields >= 0 && ctx.Request.Header.Len() > hs.fields
}
