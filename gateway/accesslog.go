package gateway

import (
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// accessLog writes the one-line-per-request access log. It is on the hot
// path of every request, so it is not slog: each line is appended by hand
// into a per-request buffer (every field is a value the gateway made
// itself — ids, route ids, canonical platforms, bounded app versions — so
// nothing needs redaction), copied into a shared pending buffer, and a
// background writer hands the pending lines to the output in batches, a
// few write calls per second instead of one per request.
//
// A request never waits for the output: when the output is slower than the
// traffic and 4 MiB of lines are pending, further lines are dropped and
// counted, and the count is logged with the next batch.
type accessLog struct {
	out io.Writer

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

func newAccessLog(out io.Writer) *accessLog {
	a := &accessLog{
		out:     out,
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
		lines = append(lines, timestamp()...)
		lines = append(lines, `","level":"WARN","msg":"access log lines dropped: output too slow","dropped":`...)
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
	full := len(a.pending) >= accessLogBatch
	a.mu.Unlock()
	if full {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// Close writes what is pending and stops the writer.
func (a *accessLog) Close() {
	if a.closed.Swap(true) {
		return
	}
	close(a.stop)
	<-a.stopped
}

// appendAccessLine appends the access log line of a finished request.
func appendAccessLine(b []byte, rq *request, method, route string, status int, d time.Duration) []byte {
	b = append(b, `{"time":"`...)
	b = append(b, timestamp()...)
	b = append(b, `","level":"INFO","msg":"request","request_id":`...)
	b = appendJSONString(b, rq.id)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, method)
	b = append(b, `,"route":"`...)
	b = append(b, route...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"latency_ms":`...)
	b = strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"platform":"`...)
	b = append(b, rq.client.Platform.String()...)
	b = append(b, `","app_version":`...)
	b = appendJSONString(b, rq.client.AppVersion)
	b = append(b, `,"cache":"`...)
	b = append(b, rq.cacheStatus...)
	b = append(b, `","upstream_ms":`...)
	b = strconv.AppendFloat(b, float64(time.Duration(rq.upstreamTime.Load()).Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"breaker_open":"`...)
	b = append(b, rq.breakerOpen...)
	b = append(b, `","partial":`...)
	b = strconv.AppendBool(b, rq.partial)
	return append(b, "}\n"...)
}
