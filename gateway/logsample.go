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
// count every call.
type failureLogSampler struct {
	mu   sync.Mutex
	keys map[failureKey]*failureWindow
	// report logs a count no line took (nil: the count waits for the
	// next line). Set before the first allow.
	report func(op, outcome string, suppressed uint64)
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
// since has taken it.
func (l *failureLogSampler) flush(k failureKey) {
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
