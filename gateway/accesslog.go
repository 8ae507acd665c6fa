package gateway

import (
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// accessLog writes the one-line-per-request access log. It is on the hot
// path of every request, so it is not slog: each line is appended by hand
// into a per-request buffer (every field is a value the gateway made
// itself — route ids, canonical platforms, numbers — or a narrow client
// value checked by appendClientString, so slog's redaction is not needed),
// copied into a shared pending buffer, and a
// background writer hands the pending lines to the output in batches, a
// few write calls per second instead of one per request.
//
// A request never waits for the output: when the output is slower than the
// traffic and 4 MiB of lines are pending, further lines are dropped and
// counted, and the count is logged with the next batch.
type accessLog struct {
	out io.Writer
	// what names the lines in the count of those dropped; eager writes
	// every line as soon as the output takes it (LogOutput), not in
	// batches.
	what  string
	eager bool

	mu      sync.Mutex
	pending []byte
	dropped uint64

	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	closed  atomic.Bool
}

const (
	accessLogMaxPending = 4 << 20
	accessLogBatch      = 32 << 10
	accessLogInterval   = 100 * time.Millisecond
)

// accessLogCloseWait bounds Close's wait for the pending lines to be
// written: an output that takes nothing (a log pipeline that is stuck)
// must not hold the process's exit.
const accessLogCloseWait = time.Second

// LogCloseWait is the longest a log queue's Close waits for the output. A
// process stopping closes two, the access log's and the event log's, after
// the drain: daemon.AfterDrain counts them.
const LogCloseWait = accessLogCloseWait

func newAccessLog(out io.Writer) *accessLog { return startLog(out, "access log lines", false) }

// startLog starts a queue writing to out (accessLog's what and eager).
func startLog(out io.Writer, what string, eager bool) *accessLog {
	a := &accessLog{
		out:     out,
		what:    what,
		eager:   eager,
		pending: make([]byte, 0, accessLogBatch*2),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go a.run()
	return a
}

func (a *accessLog) run() {
	defer close(a.stopped)
	t := time.NewTicker(accessLogInterval)
	defer t.Stop()
	spare := make([]byte, 0, accessLogBatch*2)
	for {
		select {
		case <-a.stop:
			a.flush(spare)
			return
		case <-t.C:
		case <-a.kick:
		}
		spare = a.flush(spare)
	}
}

// flush writes what is pending, swapping buffers so that requests keep
// appending while the output is written. It returns the emptied buffer.
func (a *accessLog) flush(spare []byte) []byte {
	a.mu.Lock()
	lines, dropped := a.pending, a.dropped
	a.pending, a.dropped = spare[:0], 0
	a.mu.Unlock()
	if dropped > 0 {
		lines = append(lines, `{"time":"`...)
		lines = appendTimestamp(lines, time.Now())
		lines = append(lines, `","level":"WARN","msg":"`...)
		lines = append(lines, a.what...)
		lines = append(lines, ` dropped: output too slow","dropped":`...)
		lines = strconv.AppendUint(lines, dropped, 10)
		lines = append(lines, "}\n"...)
	}
	if len(lines) > 0 {
		_, _ = a.out.Write(lines)
	}
	if cap(lines) > accessLogMaxPending {
		return make([]byte, 0, accessLogBatch*2) // don't keep a burst's buffer forever
	}
	return lines[:0]
}

// write queues one line (which must end in a newline).
func (a *accessLog) write(line []byte) {
	a.mu.Lock()
	if len(a.pending)+len(line) > accessLogMaxPending || a.closed.Load() {
		a.dropped++
		a.mu.Unlock()
		return
	}
	a.pending = append(a.pending, line...)
	full := a.eager || len(a.pending) >= accessLogBatch
	a.mu.Unlock()
	if full {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// Close writes what is pending and stops the writer, waiting
// accessLogCloseWait at most for the output. A second Close waits too: the
// binary's exit on a second signal closes the queues while the run may be
// closing them, and must not exit before the lines are written.
func (a *accessLog) Close() {
	if !a.closed.Swap(true) {
		close(a.stop)
	}
	select {
	case <-a.stopped:
	case <-time.After(accessLogCloseWait):
	}
}

// LogOutput is the output of the gateway's other log lines (slog's): the
// access log's queue, so that no caller waits for the output either. A
// line is logged on a request's path (an upstream failure), in the accept
// loop (a refused connection) and on the way out (shutting down, the
// second signal): written straight to a log pipeline that had stopped
// taking lines, it held each such request past its deadline for as long
// as the pipeline was stuck, the listener with it, and SIGTERM could not
// stop the process. Lines are written as soon as the output takes them;
// past 4 MiB waiting they are dropped and counted.
type LogOutput struct{ a *accessLog }

// NewLogOutput starts a LogOutput writing to out.
func NewLogOutput(out io.Writer) *LogOutput {
	return &LogOutput{a: startLog(out, "log lines", true)}
}

// Write queues p, one or more whole lines, and never blocks on the output.
func (l *LogOutput) Write(p []byte) (int, error) {
	l.a.write(p)
	return len(p), nil
}

// Close writes what is pending, waiting a second at most for the output.
func (l *LogOutput) Close() { l.a.Close() }

// finishUnrouted counts and logs a request answered before the edge
// middleware could run: an unknown method, or a request fasthttp could not
// read (headers or body over the limit, unparsable). Without it such junk
// and floods would be missing from requests_total and the access log. Its
// route is "unmatched" and its method one of the known ones or "other" (a
// client's method string is never written out; a request whose headers
// were not read is "other" too); the client context is read only when
// headersRead says the header block was parsed in full. start is
// the request's arrival when known; fasthttp sets ctx.Time() only once a
// request was read whole, so a request it failed to read passes time.Now().
func (s *Server) finishUnrouted(ctx *fasthttp.RequestCtx, start time.Time, headersRead bool) {
	d := time.Since(start)
	status := ctx.Response.StatusCode()
	method := "other" // fasthttp says GET for a request whose headers it never read, or dropped
	if headersRead && knownMethod(ctx.Method()) {
		method = string(ctx.Method())
	}
	rq := acquireRequest()
	defer releaseRequest(rq)
	rq.start = start
	rq.id = string(ctx.Response.Header.Peek(fiber.HeaderXRequestID))
	rq.client = clientctx.Default()
	if headersRead {
		rq.client = clientctx.Normalize(&ctx.Request.Header, start)
	}
	s.obs.RequestStarted()
	s.obs.RequestDone("unmatched", method, status, rq.client.Platform.String(), d)
	if s.access == nil || !s.accessLog.Load() {
		return
	}
	rq.logBuf = appendAccessLine(rq.logBuf[:0], rq, method, "unmatched", status, d)
	s.access.write(rq.logBuf)
}

// appendAccessLine appends the access log line of a finished request
// that took d from rq.start: its time is the end of the request, without
// reading the clock again.
func appendAccessLine(b []byte, rq *request, method, route string, status int, d time.Duration) []byte {
	b = append(b, `{"time":"`...)
	b = appendTimestamp(b, rq.start.Add(d))
	b = append(b, `","level":"INFO","msg":"request","request_id":`...)
	if rq.idMade {
		b = append(append(append(b, '"'), rq.id...), '"') // the gateway's own UUID: nothing to escape or redact
	} else {
		b = appendClientString(b, rq.id)
	}
	b = append(b, `,"method":`...)
	b = appendJSONString(b, method)
	b = append(b, `,"route":"`...)
	b = append(b, route...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"latency_ms":`...)
	b = appendMillis(b, d)
	b = append(b, `,"platform":"`...)
	b = append(b, rq.client.Platform.String()...)
	b = append(b, `","app_version":`...)
	b = appendClientString(b, rq.client.AppVersion)
	b = append(b, `,"cache":"`...)
	b = append(b, rq.cacheStatus...)
	b = append(b, `","upstream_ms":`...)
	b = appendMillis(b, time.Duration(rq.upstreamTime.Load()))
	b = append(b, `,"breaker_open":"`...)
	b = append(b, rq.breakerOpen...)
	b = append(b, `","partial":`...)
	b = strconv.AppendBool(b, rq.partial)
	return append(b, "}\n"...)
}

// appendMillis appends d in milliseconds to the microsecond, without
// trailing zeros ("0.18", "12", "1234.567"): the digits
// strconv.AppendFloat(µs/1000, 'f', -1, 64) gives, without going through
// a float.
func appendMillis(b []byte, d time.Duration) []byte {
	us := d.Microseconds()
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	if frac == 0 {
		return b
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

// appendClientString appends a value the client chose: its request id or
// its app version. Their character sets are narrow, yet a short JWT is a
// well-formed request id and a phone number a well-formed app version, and
// this line skips the logger's redaction; such a value is written as
// "[REDACTED]" instead.
func appendClientString(b []byte, s string) []byte {
	if mayHoldSecret(s) {
		return append(b, `"[REDACTED]"`...)
	}
	return appendJSONString(b, s)
}

// mayHoldSecret: a JWT starts "eyJ" (base64url of `{"`) and has dots; a
// phone number is '+' and a digit at the start or after a byte that is not
// a letter or digit (semver build metadata, 1.2.3+45, follows a digit).
func mayHoldSecret(s string) bool {
	if strings.Contains(s, "eyJ") && strings.IndexByte(s, '.') >= 0 {
		return true
	}
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '+' && s[i+1] >= '0' && s[i+1] <= '9' && (i == 0 || !isAlnumByte(s[i-1])) {
			return true
		}
	}
	return false
}

func isAlnumByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
