package gateway

import (
	"sync"
	"time"
)

// failureLogBurst is how many "upstream failure" lines each operation and
// outcome may log per second.
const failureLogBurst = 5

// failureLogSampler keeps a store outage from flooding the event log. An
// outage fails every request that needs the store: thousands of identical
// WARN lines a second, each written synchronously through slog, so a slow
// log pipeline would slow the answers too. Each operation and outcome
// (say search, breaker_open) logs at most failureLogBurst lines a second;
// the rest are counted, and the next line logged for it carries the count
// as "suppressed". When no line has taken the count by the end of the
// second, report gives it on its own: otherwise the last second of an
// outage would never be counted, or its count would ride on a failure
// hours later. Every request still has its access line, and the metrics
// count every call. When the server shuts down, stop reports the counts
// still waiting for their timer.
type failureLogSampler struct {
	mu      sync.Mutex
	keys    map[failureKey]*failureWindow
	stopped bool
	// report logs a count no line took (nil: the count waits for the
	// next line). Set before the first allow.
	report func(op, outcome string, suppressed uint64)
	// reportMu is held while a count is reported, so that stop returns
	// only once no timer is still writing its line.
	reportMu sync.Mutex
}

type failureKey struct{ op, outcome string }

type failureWindow struct {
	second     int64 // Unix seconds of the window counted in n
	n          int
	suppressed uint64 // lines not logged since the last one logged
	reporting  bool   // a timer will report suppressed
}

// allow reports whether a failure of op with outcome at now may be logged,
// and if so how many were suppressed before it. The key set is small and
// closed (the store's operations and upstream's outcomes), so the map
// stays small.
func (l *failureLogSampler) allow(op, outcome string, now time.Time) (bool, uint64) {
	sec := now.Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		// A request that outlived the drain: no timer would report
		// what it left out, and such requests are few.
		return true, 0
	}
	if l.keys == nil {
		l.keys = make(map[failureKey]*failureWindow)
	}
	k := failureKey{op, outcome}
	w := l.keys[k]
	if w == nil {
		w = &failureWindow{}
		l.keys[k] = w
	}
	if w.second != sec {
		w.second, w.n = sec, 0
	}
	if w.n >= failureLogBurst {
		w.suppressed++
		// At most one timer per operation and outcome, once a second
		// during an outage.
		if !w.reporting && l.report != nil {
			w.reporting = true
			time.AfterFunc(time.Unix(sec+1, 0).Sub(now), func() { l.flush(k) })
		}
		return false, 0
	}
	w.n++
	s := w.suppressed
	w.suppressed = 0
	return true, s
}

// flush reports the count of k's lines left out, unless a line logged
// since (or stop) has taken it.
func (l *failureLogSampler) flush(k failureKey) {
	l.reportMu.Lock()
	defer l.reportMu.Unlock()
	l.mu.Lock()
	w := l.keys[k]
	w.reporting = false
	s := w.suppressed
	w.suppressed = 0
	l.mu.Unlock()
	if s > 0 {
		l.report(k.op, k.outcome, s)
	}
}

// stop reports every count left out that a timer has not reported yet,
// and from then on lets every line be logged: the server has shut down,
// and its process is about to exit, timers and all. Once stop returns, no
// timer reports anything.
func (l *failureLogSampler) stop() {
	type count struct {
		failureKey
		n uint64
	}
	var left []count
	l.mu.Lock()
	l.stopped = true
	for k, w := range l.keys {
		if w.suppressed > 0 {
			left = append(left, count{k, w.suppressed})
			w.suppressed = 0
		}
	}
	l.mu.Unlock()
	// A timer that took its count before stop did is reporting it now.
	l.reportMu.Lock()
	defer l.reportMu.Unlock()
	for _, c := range left {
		if l.report != nil {
			l.report(c.op, c.outcome, c.n)
		}
	}
}
