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
// as "suppressed". Every request still has its access line, and the
// metrics count every call.
type failureLogSampler struct {
	mu   sync.Mutex
	keys map[failureKey]*failureWindow
}

type failureKey struct{ op, outcome string }

type failureWindow struct {
	second     int64 // Unix seconds of the window counted in n
	n          int
	suppressed uint64 // lines not logged since the last one logged
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
		return false, 0
	}
	w.n++
	s := w.suppressed
	w.suppressed = 0
	return true, s
}
