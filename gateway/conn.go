package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bffgate/edge/gateway/auth"
	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/policies"
	"github.com/valyala/fasthttp"
)

// clientConn is a client's connection to the public server, as the
// server's listener hands it out (clientListener). It carries what the
// gateway keeps per connection: the socket deadlines given lazily, the
// memo of the last token verified on it (auth.Memo), which spares the next
// request with the same token the token cache's hash and look-up, and the
// memo of its last app version and device id (clientctx.Memo), which
// spares the next request sending the same ones their copies.
//
// Lazy deadlines: the public server has read, write and idle timeouts, and
// fasthttp sets them as socket deadlines on every request of a keep-alive
// connection: the idle deadline before waiting for the next request, the
// read deadline once it starts, the write deadline before the answer. Each
// moves a runtime timer and reads the clock again (BenchmarkServerDeadlines:
// ~0.4 µs a request for the three). Most of them change nothing that
// matters: the request usually arrives whole with the first read, so its
// read deadline never bounds a wait, and the next request's deadline is
// the last one moved on by a few milliseconds. So clientConn keeps the
// deadline asked for and gives it to the socket only when a Read or Write
// is about to wait under it, and then a little later than asked (by
// slack), so the next requests on the connection, asking for nearly the
// same deadline, find it already covered. Every timeout is still enforced,
// at most slack late.
//
// It is made for fasthttp's serving loop, where one goroutine at a time
// serves a connection's requests, reading and writing it and setting its
// deadlines before it does. A deadline set while another goroutine is
// blocked in Read or Write applies from their next call (fasthttp's
// shutdown closes idle connections instead).
type clientConn struct {
	net.Conn
	slack int64 // nanoseconds

	read, write lazyDeadline

	memo   auth.Memo      // used by the request being served, one at a time
	client clientctx.Memo // the same
	peer   netip.Addr     // the remote address, read once

	hook hookState // what the HeaderReceived hook saw of the latest header block (held.go)

	// lineRun is the number of bytes read since the last LF that ended a
	// line with something on it (blank lines, which fasthttp skips before
	// a request line, do not end the run), counted up to lineMax, the
	// server's read buffer (requestLineTooLong); lineMax 0: not counted.
	// lineHead is what the line being read holds so far: nothing
	// (lineEmpty), a CR (lineCR) or more (lineText).
	lineRun, lineMax int
	lineHead         lineHead

	// head is how far Read has looked into the header block being read,
	// fieldLine and colon what it saw of the line it is in (a field line,
	// holding a colon so far), and badLine that the block had a folded
	// line or a field line without a colon (scanHead). got is the number
	// of bytes read from the connection, and blockEnd where in them the
	// last block looked at whole ended (after its blank line), -1 once a
	// block was read before the look could begin (afterBody).
	head      headScan
	fieldLine bool
	colon     bool
	badLine   bool
	got       int64
	blockEnd  int64

	// tail is what followed the blank line in the read that ended the
	// block looked at (until the next read), where a chunked body begins.
	// chunks is how far Read has looked into a chunked body, up to its
	// trailer section, which scanHead looks at (scanChunks); chunkDigits
	// and chunkLeft what it saw of the chunk it is in: the size's digits
	// so far and their value, then the bytes of its data (with the CRLF
	// after them) still to come.
	tail        []byte
	chunks      chunkScan
	chunkDigits int
	chunkLeft   int64

	open   *atomic.Int64 // the listener's count of open connections, or nil
	addrs  *addrConns    // the listener's count per client address, or nil
	addr   netip.Addr    // the key the connection is counted under in addrs
	closed atomic.Bool

	// linger: the connection closes after a refusal sent before its
	// request was read whole, and its close lingers (lingerOnClose).
	// lingering is the listener's count of such connections whose close
	// has not ended, or nil.
	linger    atomic.Bool
	lingering *atomic.Int64

	// set: the listener's set of open connections, which a drain cut
	// short closes, or nil; prev and next link the connection in it.
	set        *connSet
	prev, next *clientConn
}

// Close closes the connection and, the first time, counts it out of the
// listener's open connections and its address's. A connection marked by
// lingerOnClose lingers first: it stays counted while it does, so a client
// cannot open more connections than its share by having them refused.
func (c *clientConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		if c.linger.Load() {
			_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
			discardUntilClosed(c.Conn, lingerBytes)
			if c.lingering != nil {
				c.lingering.Add(-1)
			}
		}
		if c.open != nil {
			c.open.Add(-1)
		}
		if c.addrs != nil {
			c.addrs.release(c.addr)
		}
		if c.set != nil {
			c.set.remove(c)
		}
	}
	return c.Conn.Close()
}

// connSet is the open connections of a listener (clientListener), from
// their accept to the end of their Close (a lingering close included), so
// that a drain cut short can close them all (Server.CutShort). It links
// them through the connections themselves: adding one allocates nothing.
type connSet struct {
	mu     sync.Mutex
	head   *clientConn
	closed bool // closeAll ran: no connection is added any more
}

// add puts c in the set, and reports false when closeAll has run.
func (s *connSet) add(c *clientConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	c.set, c.next = s, s.head
	if s.head != nil {
		s.head.prev = c
	}
	s.head = c
	return true
}

func (s *connSet) remove(c *clientConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.prev != nil {
		c.prev.next = c.next
	} else if s.head == c {
		s.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
}

// closeAll closes the socket of every connection in the set, and of every
// one added later. Each is still counted open until its own Close (which
// fasthttp calls once its serving of it ends), but what waits on the
// socket (a read of the next request or of a body, a write to a client
// that does not read, a lingering close) ends at once.
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := s.head; c != nil; c = c.next {
		_ = c.Conn.Close()
	}
}

// Lingering close, after a refusal sent before what the client sent was
// read: a body announced over the limit (413), an ambiguous header block
// (400), a request line or header block over the limit (414, 431), one
// that does not parse or a broken request line (400, 505). The client may
// still be sending what was refused (an app may write the whole body
// before it reads an answer), and a socket closed with bytes unread, or
// that bytes reach after it closed, is reset: on some stacks (Windows,
// some mobile proxies) the reset destroys the answer before the app has
// read it, and on any, answer bytes not yet sent are dropped. So, as
// nginx's lingering_close, such a connection half-closes after the answer
// (the client reads it, then an end of stream) and reads and discards
// what still comes until the client closes, for at most lingerTime and
// lingerBytes; a client still sending then is reset. A refusal of a
// request that did not come in time (408) does not linger: its client was
// not sending.
const (
	lingerTime  = 5 * time.Second
	lingerBytes = 1 << 20
)

// lingerOnClose marks the connection of ctx, which closes after the
// answer being written, to linger when it closes.
func lingerOnClose(ctx *fasthttp.RequestCtx) {
	cc, ok := ctx.Conn().(*clientConn)
	if ok && cc.linger.CompareAndSwap(false, true) && cc.lingering != nil {
		// Counted from now, not from Close: fasthttp stops counting the
		// connection as served just before it closes it, and Shutdown
		// must not look in between and find it in neither count.
		cc.lingering.Add(1)
	}
}

// discardUntilClosed half-closes c, so that the client reads what was
// written and then an end of stream, and reads and discards what the
// client still sends, until it closes its side, at most max bytes (and
// until the read deadline c has).
func discardUntilClosed(c net.Conn, max int64) {
	if tc, ok := c.(interface{ CloseWrite() error }); ok && tc.CloseWrite() == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(c, max))
	}
}

// addrConns counts the open connections of each client address
// (server.maxConnectionsPerIP). It holds only addresses with a connection
// open, so it is bounded by server.maxConnections.
type addrConns struct {
	mu sync.Mutex
	n  map[netip.Addr]int
}

// take counts one more connection of addr unless it has max already.
func (a *addrConns) take(addr netip.Addr, max int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[addr] >= max {
		return false
	}
	if a.n == nil {
		a.n = make(map[netip.Addr]int)
	}
	a.n[addr]++
	return true
}

func (a *addrConns) release(addr netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[addr] <= 1 {
		delete(a.n, addr)
		return
	}
	a.n[addr]--
}

// authMemo is the auth memo of the connection c's request came on; nil
// when it did not come through the server's listener (in-process tests).
func authMemo(c *fasthttp.RequestCtx) *auth.Memo {
	if cc, ok := c.Conn().(*clientConn); ok {
		return &cc.memo
	}
	return nil
}

// clientMemo is the client-context memo of the connection c's request came
// on; nil when it did not come through the server's listener.
func clientMemo(c *fasthttp.RequestCtx) *clientctx.Memo {
	if cc, ok := c.Conn().(*clientConn); ok {
		return &cc.client
	}
	return nil
}

// answerDeadline gives ctx's connection a fresh write deadline, timeout
// from now, for what fasthttp writes outside a handler's answer: an
// interim 100 Continue, or the refusal of a request it could not read.
// fasthttp sets one only before a handler's answer, so those would be
// written under the previous answer's deadline: long past once the
// connection idled for longer than the write timeout, and then nothing is
// sent (no timeout configured: nothing to renew).
func answerDeadline(ctx *fasthttp.RequestCtx, timeout time.Duration) {
	if timeout > 0 {
		_ = ctx.Conn().SetWriteDeadline(time.Now().Add(timeout))
	}
}

// deadlineSlack is how late a lazily applied deadline may be: a tenth of
// the shortest timeout, at most a second.
func deadlineSlack(timeouts ...time.Duration) time.Duration {
	slack := time.Second
	for _, t := range timeouts {
		if t > 0 && t/10 < slack {
			slack = t / 10
		}
	}
	return slack
}

// The instants Unix nanoseconds can say (1677-09-21 to 2262-04-11).
var (
	firstUnixNano = time.Unix(0, math.MinInt64)
	lastUnixNano  = time.Unix(0, math.MaxInt64)
)

// unixNanos is t in Unix nanoseconds, 0 for none. An instant beyond
// their range is held at its end (time.UnixNano would wrap around, and a
// timeout of centuries, time.Now().Add of the longest Duration, would
// have become a deadline long past): still centuries away, or long past,
// as net.Conn would read it.
func unixNanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.After(lastUnixNano):
		return math.MaxInt64
	case t.Before(firstUnixNano):
		return math.MinInt64
	}
	if n := t.UnixNano(); n != 0 {
		return n
	}
	return 1 // the Unix epoch itself: long past, but not "none"
}

func (c *clientConn) SetDeadline(t time.Time) error {
	n := unixNanos(t)
	c.read.want.Store(n)
	c.write.want.Store(n)
	return nil
}

func (c *clientConn) SetReadDeadline(t time.Time) error {
	c.read.want.Store(unixNanos(t))
	return nil
}

func (c *clientConn) SetWriteDeadline(t time.Time) error {
	c.write.want.Store(unixNanos(t))
	return nil
}

// Read reads from the client. The end of the stream inside a chunked body
// is an unexpected one: fasthttp takes io.EOF where a chunk-size line
// would start for a connection closing between requests, and then
// answered neither the request nor, when it had been pipelined after
// another, the other's answer, which it keeps back while the pipeline's
// next request is read. With io.ErrUnexpectedEOF the body fails, as a
// Content-Length body cut short does: a 400, written with what was kept.
func (c *clientConn) Read(p []byte) (int, error) {
	if c.badLine {
		// fasthttp wants more of a block that holds a line it must not
		// read (scanHead): it parses what it has, and fails, or the hook
		// refuses the block.
		return 0, errBadFieldLine
	}
	if err := c.beforeRead(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if err == io.EOF && c.hook.chunked {
		err = io.ErrUnexpectedEOF
	}
	if n > 0 && c.lineMax > 0 {
		c.countLine(p[:n])
	}
	c.tail = nil
	if n > 0 && c.head != headDone {
		c.scanHead(p[:n])
		if c.head == headDone && !c.badLine && c.blockEnd > c.got { // the block ended in this read
			c.tail = p[c.blockEnd-c.got : n]
		}
	} else if n > 0 && c.chunks != chunkOff {
		c.scanChunks(p[:n])
	}
	c.got += int64(n)
	return n, err
}

// Field lines as they arrive.
//
// fasthttp v1.51 unfolds an obs-fold in place, in its read buffer, as it
// parses a header block: it writes the value without the fold and moves
// the rest of the buffer up over the gap, which leaves a copy of the
// buffer's last bytes at its end. When the block does not parse at that
// pass (it is cut between reads, or the fold was of spaces only: what
// remains of it reads as a line without a colon, and fasthttp waits for
// more), fasthttp parses the rewritten buffer once more bytes come or the
// read timeout passes. The block then holds no fold (RawHeaders shows
// none, so ambiguousFraming passes it), and the copied bytes are read
// after it: a body ending in a request line came out as a second request
// the client never sent, request smuggling behind a proxy that passes
// folds on. fasthttp also waits, until the read timeout, on a field line
// without a colon when no later line has one: a 408 for a request that
// cannot parse.
//
// So Read looks at a header block's lines as they come, before fasthttp
// parses them, up to the blank line that ends the block: a line that
// begins with SP or HTAB after the request line or a field line (a fold),
// or a field line without a colon, marks the connection (badLine). The
// next Read fails at once, so fasthttp refuses the block as unparsable
// (400), or, when the rewritten block parses, holdHeaders takes the mark
// for ambiguous framing (400, and the connection closed). Bodies are not
// looked at (a chunked one only for where its trailer section begins,
// scanChunks): the look stops at the block's end (and at the hook), and
// starts again when the request's body was read (bodyRead), if nothing
// after it was read yet (afterBody). Known gap: a request pipelined behind
// another and read with it, and every later one on its connection, is
// left to ambiguousFraming, which sees a fold only when fasthttp parsed
// the block at one pass; a proxy in front sends a connection's next
// request after the answer, so only a client's own pipeline can bring one.

// errBadFieldLine fails the read of a header block that holds a folded line
// or a field line without a colon. Its text has no "timeout": Fiber takes
// an error whose text has one for a 408.
var errBadFieldLine = errors.New("header block with a folded line or a field line without a colon")

// headScan is where Read is in a header block (scanHead).
type headScan uint8

const (
	headBefore   headScan = iota // before the request line, where fasthttp skips blank lines
	headBeforeCR                 // there, after a CR that begins a line
	headLine                     // in the request line or a field line
	headStart                    // at the start of a line after one of those
	headStartCR                  // there, after a CR
	headDone                     // past the block (or marked), until its body was read
)

// scanHead moves head on by what was just read, b, and marks the
// connection (badLine) at a folded line or a field line without a colon.
func (c *clientConn) scanHead(b []byte) {
	for i := 0; i < len(b); {
		switch c.head {
		case headBefore, headBeforeCR:
			if b[i] == '\n' {
				c.head = headBefore
				i++
				continue
			}
			if b[i] == '\r' && c.head == headBefore {
				c.head = headBeforeCR
				i++
				continue
			}
			c.head, c.fieldLine = headLine, false
		case headStart, headStartCR:
			switch {
			case b[i] == '\n': // the blank line
				c.head, c.blockEnd = headDone, c.got+int64(i)+1
				return
			case b[i] == '\r' && c.head == headStart:
				c.head = headStartCR
				i++
				continue
			case (b[i] == ' ' || b[i] == '\t') && c.head == headStart:
				c.head, c.badLine = headDone, true
				return
			}
			c.head, c.fieldLine, c.colon = headLine, true, false
		case headLine:
			// Line by line while each is followed by another field line,
			// the common case, without going round the switch.
			for {
				line := b[i:]
				end := bytes.IndexByte(line, '\n')
				if end >= 0 {
					line = line[:end]
				}
				if c.fieldLine && !c.colon {
					c.colon = bytes.IndexByte(line, ':') >= 0
				}
				if end < 0 {
					return
				}
				if c.fieldLine && !c.colon {
					c.head, c.badLine = headDone, true
					return
				}
				c.head = headStart
				if i += end + 1; i == len(b) {
					return
				}
				if next := b[i]; next == '\r' || next == '\n' || next == ' ' || next == '\t' {
					break
				}
				c.head, c.fieldLine, c.colon = headLine, true, false
			}
		default:
			return
		}
	}
}

// Trailer sections as they arrive.
//
// fasthttp reads a chunked body's trailer section as a header block, and
// waits for more, until the read timeout, on one that holds a line
// without a colon or begins with a fold, as it does on such a header
// block: a request received whole was a 408 once the timeout passed, in
// the caller's language, as if its body had never come. So was a body
// whose chunk-size line fasthttp reads as the last chunk's ("0x19": the
// size 0, then an extension it skips), whose data then came as the
// trailer section. So once the hook saw a chunked request's header block
// (lookAtChunks), Read follows its chunks as fasthttp reads them (the
// size's hex digits, whatever follows them up to a CR, that is any
// extension, junk or a bare LF, a CRLF, the data and a CRLF) to the last
// chunk, and hands what follows to scanHead, as the lines after a
// request line: a fold or a line without a colon marks the connection,
// and the read fasthttp waits on fails at once (400, in the caller's
// language: the block was held). Where fasthttp refuses the body itself
// at once (a size that is no hex number or too long, no LF after the
// CR), the look stops. Field lines that parse are refused as trailer
// fields (sentTrailers).

// chunkScan is where Read is in a chunked body (scanChunks).
type chunkScan uint8

const (
	chunkOff     chunkScan = iota // not in a chunked body, or no longer looking
	chunkSize                     // in the hex digits of a chunk's size
	chunkExt                      // after them, up to the CR
	chunkLF                       // after the CR
	chunkData                     // in a chunk's data and its CRLF
	chunkTrailer                  // at the start of the trailer section
	chunkSkip                     // in the bytes fasthttp skips there
)

// maxChunkDigits is the most hex digits fasthttp reads in a chunk size
// (maxHexIntChars, on a 64-bit platform); it refuses one more at once.
const maxChunkDigits = 15

// lookAtChunks starts the look at the chunked body of the header block
// the hook just saw, from where the block ended, when that is known.
func (c *clientConn) lookAtChunks() {
	tail := c.tail
	c.tail = nil
	if c.blockEnd < 0 || c.blockEnd+int64(len(tail)) != c.got {
		return
	}
	c.chunks, c.chunkDigits, c.chunkLeft = chunkSize, 0, 0
	c.scanChunks(tail)
}

// scanChunks moves the chunk look on by what was just read, b.
func (c *clientConn) scanChunks(b []byte) {
	for i := 0; i < len(b); {
		switch c.chunks {
		case chunkSize:
			k := hexDigit(b[i])
			if k < 0 {
				if c.chunkDigits == 0 { // refused by fasthttp
					c.chunks = chunkOff
					return
				}
				c.chunks = chunkExt
				continue
			}
			if c.chunkDigits == maxChunkDigits { // refused by fasthttp
				c.chunks = chunkOff
				return
			}
			c.chunkLeft = c.chunkLeft<<4 | int64(k)
			c.chunkDigits++
			i++
		case chunkExt:
			j := bytes.IndexByte(b[i:], '\r')
			if j < 0 {
				return
			}
			i += j + 1
			c.chunks = chunkLF
		case chunkLF:
			if b[i] != '\n' { // refused by fasthttp
				c.chunks = chunkOff
				return
			}
			i++
			if c.chunkLeft == 0 {
				c.chunks = chunkTrailer
			} else {
				c.chunks, c.chunkLeft = chunkData, c.chunkLeft+2
			}
		case chunkData, chunkSkip:
			k := min(c.chunkLeft, int64(len(b)-i))
			i += int(k)
			if c.chunkLeft -= k; c.chunkLeft > 0 {
				return
			}
			if c.chunks == chunkSkip {
				c.startTrailer(b, i)
				return
			}
			c.chunks, c.chunkDigits = chunkSize, 0
		case chunkTrailer:
			// A section that begins with "0" has its first three bytes
			// skipped by fasthttp (an extra last chunk, "0\r\n").
			if b[i] == '0' {
				c.chunks, c.chunkLeft = chunkSkip, 3
				continue
			}
			c.startTrailer(b, i)
			return
		default:
			return
		}
	}
}

// startTrailer hands the trailer section, which begins at b[i], to
// scanHead. Its end is no block's: the connection closes after a chunked
// request (holdHeaders).
func (c *clientConn) startTrailer(b []byte, i int) {
	c.chunks = chunkOff
	c.head = headStart
	c.scanHead(b[i:])
	c.blockEnd = -1
}

// hexDigit is the value of the hex digit d, or -1.
func hexDigit(d byte) int {
	switch {
	case '0' <= d && d <= '9':
		return int(d - '0')
	case 'a' <= d && d <= 'f':
		return int(d-'a') + 10
	case 'A' <= d && d <= 'F':
		return int(d-'A') + 10
	}
	return -1
}

// afterBody moves the look on once the body of the request whose block it
// saw last was read, n its length (the request's ContentLength: -1 for
// chunked, -2 for none): to the next block when nothing of it was read
// yet. When some was (a request pipelined behind this one, read with it),
// that part went to fasthttp unseen and the next read starts within the
// block: looked at from there, a blank line that ends the block would
// make its body read as a block, and a body's indented or colonless line
// refuse a sound request. So the look stops on that connection, whose
// later blocks are left to ambiguousFraming (where the next block begins
// is not known any more).
func (c *clientConn) afterBody(n int) {
	if n == -2 {
		n = 0
	}
	if n >= 0 && c.blockEnd >= 0 && c.got == c.blockEnd+int64(n) {
		c.head = headBefore
		return
	}
	c.head, c.blockEnd = headDone, -1
}

// takeBadLine reports whether the header block fasthttp just parsed was
// marked, and stops the look at it (its body follows).
func (c *clientConn) takeBadLine() bool {
	bad := c.badLine
	if c.head != headDone { // the look did not see where the block ends
		c.blockEnd = -1
	}
	c.head, c.badLine = headDone, false
	return bad
}

// countLine moves lineRun and lineHead on by what was just read, b (never
// empty: Read counts only what it read). Only LFs in b's last lineMax
// bytes are looked for, from its end back to one that ends a line with
// something on it: a request read whole ends in its header block's blank
// line, after a header line's LF, and a body read is looked back over by
// at most lineMax.
func (c *clientConn) countLine(b []byte) {
	head, n := c.lineHead, len(b)
	lo := max(n-c.lineMax, 0)
	i := bytes.LastIndexByte(b[lo:], '\n')
	if i < 0 {
		c.lineRun = min(c.lineRun+n, c.lineMax)
		if n == 1 && b[0] == '\r' && head == lineEmpty {
			c.lineHead = lineCR
		} else {
			c.lineHead = lineText
		}
		return
	}
	i += lo
	switch {
	case i == n-1:
		c.lineHead = lineEmpty
	case i == n-2 && b[n-1] == '\r':
		c.lineHead = lineCR
	default:
		c.lineHead = lineText
	}
	// The line ending at i is blank when it holds nothing or a CR (what
	// fasthttp's nextLine takes away), what was read of it before b
	// counted; the line before a blank one ends at the LF before it.
	for {
		start := i
		if start > 0 && b[start-1] == '\r' {
			start--
		}
		if start == 0 { // the line began before b
			if start == i && head != lineText || start < i && head == lineEmpty {
				break
			}
		} else if b[start-1] == '\n' {
			if i = start - 1; i >= lo {
				continue
			}
			break
		}
		c.lineRun = n - 1 - i
		return
	}
	c.lineRun = min(c.lineRun+n, c.lineMax)
}

// lineHead is what a line holds before its LF comes (countLine).
type lineHead uint8

const (
	lineEmpty lineHead = iota
	lineCR
	lineText
)

// requestLineTooLong reports whether a request whose header block did not
// fit the server's read buffer (431) failed in its request line: no LF
// in the buffer. RFC 9112 section 3 has a server answer a request-target
// longer than it will parse with 414, as nginx does for a request line
// over its buffer, where 431 is for header fields. fasthttp reads the
// block through a buffer of lineMax bytes and gives up when it is full:
// its bytes are then the last lineMax read from the connection, and the
// request's first, so it holds no LF but those of blank lines before the
// request line (which fasthttp skips) exactly when lineRun reached
// lineMax. A header block the hook saw is not in question: what failed
// after it was the trailer section of a chunked body.
func requestLineTooLong(ctx *fasthttp.RequestCtx) bool {
	cc, ok := ctx.Conn().(*clientConn)
	return ok && cc.lineMax > 0 && cc.lineRun >= cc.lineMax &&
		!(cc.hook.seen && cc.hook.after == ctx.ConnRequestNum())
}

func (c *clientConn) Write(p []byte) (int, error) {
	if err := c.beforeWrite(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *clientConn) beforeRead() error  { return c.read.apply(c.slack, c.Conn.SetReadDeadline) }
func (c *clientConn) beforeWrite() error { return c.write.apply(c.slack, c.Conn.SetWriteDeadline) }

// lazyDeadline is one side's deadline: the one asked for, and the one the
// socket has.
type lazyDeadline struct {
	want atomic.Int64 // Unix nanoseconds, 0 for none
	real int64        // touched only by the side's own Read or Write
}

// apply gives the socket the deadline wanted (slack late) unless the one
// it has stands for it.
func (d *lazyDeadline) apply(slack int64, set func(time.Time) error) error {
	want := d.want.Load()
	if covered(d.real, want, slack) {
		return nil
	}
	real := lateBy(want, slack)
	if err := set(deadlineTime(real)); err != nil {
		return err
	}
	d.real = real
	return nil
}

// covered: the socket's deadline (real) stands for the one wanted: both
// none, or the socket's no earlier and at most slack later. The
// difference is taken unsigned: real-want of a deadline long past and one
// centuries away does not fit an int64.
func covered(real, want, slack int64) bool {
	if want == 0 || real == 0 {
		return want == real
	}
	return real >= want && uint64(real)-uint64(want) <= uint64(slack)
}

// lateBy is the deadline to give the socket for the one wanted: slack
// later, but no later than Unix nanoseconds go (want+slack would wrap
// around into the past). One before 1970 is long past and given as it is:
// slack later, one exactly slack before 1970 would have become 0, none.
func lateBy(want, slack int64) int64 {
	if want <= 0 {
		return want
	}
	if want > math.MaxInt64-slack {
		return math.MaxInt64
	}
	return want + slack
}

func deadlineTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// clientListener hands out clientConns, and with max set at most max open
// at once (server.maxConnections): a connection beyond them goes to refuse,
// which answers it and closes it. fasthttp's own cap (Concurrency) would
// answer in plain text, naming its setting; it is set above this one.
//
// With perAddr set, it also keeps one client address (IPv6 by its /64)
// to the current server.maxConnectionsPerIP, so that one client cannot
// take every connection of max, holding idle keep-alive connections that
// a 404 now and then keeps open, and lock everyone else out. A trusted
// proxy's connections carry many clients and are not capped. A connection
// beyond its address's share goes to refuseAddr.
type clientListener struct {
	net.Listener
	slack time.Duration
	// readBuffer is the server's read buffer, which bounds a request's
	// header block (requestLineTooLong; 0: not known).
	readBuffer int

	max    int64
	open   *atomic.Int64
	refuse func(net.Conn)

	// lingering counts the connections whose close lingers (nil: not
	// counted).
	lingering *atomic.Int64

	// perAddr is read for every connection, so a reload applies to the
	// next: the cap per address (0: none) and the trusted proxies.
	perAddr    func() (int, []netip.Prefix)
	addrs      *addrConns
	refuseAddr func(net.Conn)
	// acceptFailed is told of an accept that failed for want of file
	// descriptors or memory, and is retried (nil: not told).
	acceptFailed func(error)
	// conns holds the connections handed out (nil: not kept).
	conns *connSet
}

func (l clientListener) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			// fasthttp takes every accept error but a timeout for the end
			// of the listener: it would stop serving for good.
			if retryAccept(err, &wait, l.acceptFailed) {
				continue
			}
			return nil, err
		}
		wait = 0
		if l.open != nil && l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refuse(c)
			continue
		}
		cc := newClientConn(c, l.slack)
		cc.open, cc.lingering, cc.lineMax = l.open, l.lingering, l.readBuffer
		if l.perAddr != nil {
			if limit, trusted := l.perAddr(); limit > 0 && !policies.IsTrustedPeer(cc.peer, trusted) {
				addr := policies.AddressKey(cc.peer)
				if !l.addrs.take(addr, limit) {
					if l.open != nil {
						l.open.Add(-1)
					}
					l.refuseAddr(c)
					continue
				}
				cc.addrs, cc.addr = l.addrs, addr
			}
		}
		if l.conns != nil && !l.conns.add(cc) {
			_ = cc.Close() // accepted as the drain was cut short
			continue
		}
		return cc, nil
	}
}

// outOfResources: an accept error that ends when connections close.
func outOfResources(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

func newClientConn(c net.Conn, slack time.Duration) *clientConn {
	return &clientConn{Conn: c, slack: int64(slack), peer: tcpPeer(c.RemoteAddr())}
}

// acceptFailed logs an accept that failed for want of resources, at most
// once a minute: the listener retries it.
func (s *Server) acceptFailed(err error) { logAcceptFailed(s.logger, &s.acceptLogged, err) }

// retryAccept reports whether an accept that failed with err is tried
// again: out of file descriptors or memory (a flood of connections above
// the process's limit), which passes as connections close. It then tells
// failed (when not nil) and waits, from 5 ms doubling up to a second
// (wait is the last wait, 0 after an accept that succeeded), as net/http
// does.
func retryAccept(err error, wait *time.Duration, failed func(error)) bool {
	if !outOfResources(err) {
		return false
	}
	if failed != nil {
		failed(err)
	}
	*wait = min(max(2**wait, 5*time.Millisecond), time.Second)
	time.Sleep(*wait)
	return true
}

// logAcceptFailed logs a failed accept that is retried, at most once a
// minute (last: when it was last logged).
func logAcceptFailed(logger *slog.Logger, last *atomic.Int64, err error) {
	if oncePerMinute(last) {
		logger.LogAttrs(context.Background(), slog.LevelError, "accepting a connection failed; retrying",
			slog.String("error", err.Error()))
	}
}

// oncePerMinute reports whether a minute has passed since it last said
// yes for last (Unix nanoseconds), and then notes now: a warning that a
// flood would repeat is logged at most once a minute.
func oncePerMinute(last *atomic.Int64) bool {
	now := time.Now().UnixNano()
	if now-last.Load() <= int64(time.Minute) {
		return false
	}
	last.Store(now)
	return true
}

// maxRefusing bounds the connections being refused at once; beyond it,
// under a flood, a connection is closed without an answer.
const maxRefusing = 256

// refuseConn refuses a connection over server.maxConnections.
func (s *Server) refuseConn(c net.Conn) {
	s.obs.ConnectionRefused()
	n := s.connsRefused.Add(1)
	if oncePerMinute(&s.refusedLogged) {
		s.logger.LogAttrs(context.Background(), slog.LevelWarn, "connection refused: server.maxConnections reached",
			slog.Int64("max_connections", s.maxConns), slog.Uint64("refused_total", n))
	}
	s.answerRefused(c)
}

// refuseAddrConn refuses a connection over server.maxConnectionsPerIP. The
// log does not name the address (personal data).
func (s *Server) refuseAddrConn(c net.Conn) {
	s.obs.ConnectionRefusedPerIP()
	n := s.connsRefusedPerIP.Add(1)
	if oncePerMinute(&s.refusedPerIPLogged) {
		s.logger.LogAttrs(context.Background(), slog.LevelWarn, "connection refused: server.maxConnectionsPerIP reached",
			slog.Int("max_connections_per_ip", s.rt.Load().cfg.Server.MaxConnectionsPerIP), slog.Uint64("refused_total", n))
	}
	s.answerRefused(c)
}

// answerRefused answers a refused connection with a 503 envelope (English
// and a new request id: nothing of the request was read), Retry-After and
// Connection: close, then closes it after letting the client read the
// answer (a close with the request unread would reset the connection, and
// the client could lose the answer). Shutdown waits for the refusals being
// sent (refusing), as it does for lingering closes.
func (s *Server) answerRefused(c net.Conn) {
	if s.refusing.Add(1) > maxRefusing {
		s.refusing.Add(-1)
		_ = c.Close()
		return
	}
	go func() {
		defer s.refusing.Add(-1)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		writeUnroutedError(resp, nil, fasthttp.StatusServiceUnavailable, false)
		resp.Header.Set(fasthttp.HeaderRetryAfter, "1")
		resp.SetConnectionClose()
		w := bufio.NewWriterSize(c, 2<<10)
		if resp.Write(w) != nil || w.Flush() != nil {
			return
		}
		discardUntilClosed(c, 64<<10)
	}()
}

// Bounds of the ops listener's connections. Its clients are few (the
// kubelet's probes, Prometheus, an operator), but anyone who reaches a
// non-loopback ops address can open connections before any credential is
// asked, each ~19 KiB while it idles (net/http keeps it a minute): without
// a bound, 5,000 of them took the gateway from 19 to 632 MB.
const (
	opsMaxConnections      = 512
	opsMaxConnectionsPerIP = 64
)

// OpsListener bounds ln's open connections to opsMaxConnections, and
// opsMaxConnectionsPerIP from one address (IPv6 by its /64), so that one
// client cannot lock the probes out either. One more is closed at once,
// unanswered: net/http has no hook to answer it, and probes and scrapers
// try again. An accept that fails for want of file descriptors or memory
// is retried here, as on the public listener, and logged to logger at most
// once a minute: net/http would retry it too, but write every retry (once
// a second while it lasts) as plain text on stderr, outside the JSON log.
func OpsListener(ln net.Listener, logger *slog.Logger) net.Listener {
	return &opsListener{Listener: ln, logger: logger}
}

type opsListener struct {
	net.Listener
	open   atomic.Int64
	addrs  addrConns
	logger *slog.Logger
	// acceptLogged: Unix nanoseconds of the last failed accept logged.
	acceptLogged atomic.Int64
}

func (l *opsListener) failed(err error) { logAcceptFailed(l.logger, &l.acceptLogged, err) }

func (l *opsListener) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if retryAccept(err, &wait, l.failed) {
				continue
			}
			return nil, err
		}
		wait = 0
		if l.open.Add(1) > opsMaxConnections {
			l.open.Add(-1)
			_ = c.Close()
			continue
		}
		addr := policies.AddressKey(tcpPeer(c.RemoteAddr()))
		if !l.addrs.take(addr, opsMaxConnectionsPerIP) {
			l.open.Add(-1)
			_ = c.Close()
			continue
		}
		return &opsConn{Conn: c, l: l, addr: addr}, nil
	}
}

// opsConn counts itself out of its listener the first time it closes.
type opsConn struct {
	net.Conn
	l      *opsListener
	addr   netip.Addr
	closed atomic.Bool
}

func (c *opsConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
		c.l.addrs.release(c.addr)
	}
	return c.Conn.Close()
}

// Write passes net/http's writes on, but for the refusals it writes
// itself, before any handler runs: straight to the connection, a header
// block over MaxHeaderBytes (431), a request it cannot parse (400), a
// transfer coding it does not know (501), an HTTP version it does not
// speak (505), all plain text; and, as an answer of its own, an empty 417
// for an expectation other than 100-continue. The ops listener answers
// them as it answers everything else, with an envelope (opsRefusal).
func (c *opsConn) Write(p []byte) (int, error) {
	status, ok := netHTTPRefusal(p)
	body := true
	if !ok {
		if body, ok = expectationFailed(p); ok {
			status = fasthttp.StatusExpectationFailed
		}
	}
	if !ok {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(opsRefusal(status, body)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite ends the stream before net/http closes a connection whose
// client may still be sending (after a 431, or a body over its limit):
// hidden by the wrapper, the close came without it, and the client read a
// reset where the answer ended, or lost the answer with it.
func (c *opsConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// netHTTPRefusal reports whether p is one of net/http's own refusals, and
// its status: "HTTP/1.1 ", the status and its text, then the fixed header
// lines net/http writes them with (server.go's errorHeaders). An answer of
// a handler has a Date line at least, never these alone.
func netHTTPRefusal(p []byte) (status int, ok bool) {
	const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 4 || rest[3] != ' ' {
		return 0, false
	}
	for _, d := range rest[:3] {
		if d < '0' || d > '9' {
			return 0, false
		}
		status = status*10 + int(d-'0')
	}
	end := bytes.Index(rest, []byte("\r\n"))
	if status < 400 || end < 0 || !bytes.HasPrefix(rest[end:], []byte(errorHeaders)) {
		return 0, false
	}
	return status, true
}

// expectationFailed reports whether p is net/http's answer to a request
// whose Expect it does not meet (its sendExpectationFailed, before any
// handler; no handler of the ops listener answers 417): the header block
// alone, flushed at once, and whether it announces a body, that is
// whether the request was not a HEAD (Content-Length: 0, which net/http
// leaves out for HEAD).
func expectationFailed(p []byte) (body, ok bool) {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 417 "))
	if !ok {
		rest, ok = bytes.CutPrefix(p, []byte("HTTP/1.0 417 ")) // to an HTTP/1.0 request
	}
	if !ok || bytes.Index(rest, []byte("\r\n\r\n")) != len(rest)-4 {
		return false, false
	}
	return bytes.Contains(rest, []byte("\r\nContent-Length: 0\r\n")), true
}
