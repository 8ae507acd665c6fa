package refstore

import (
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bffgate/edge/upstream/contract"
)

// DefaultRecordLimit is how many requests a Recorder keeps by default.
const DefaultRecordLimit = 1000

// recordedHeaders are the headers the gateway must propagate; a Recorder
// keeps their values so tests can check what arrived. Authorization is
// only noted as present or not: a recorder must never hold a credential.
var recordedHeaders = []string{
	contract.HeaderRequestID,
	contract.HeaderTraceparent,
	contract.HeaderUserID,
	contract.HeaderUserRoles,
	contract.HeaderLanguage,
	contract.HeaderTimezone,
	contract.HeaderPlatform,
	contract.HeaderAppVersion,
	contract.HeaderDeviceID,
}

// RecordedRequest is one request as the store received it.
type RecordedRequest struct {
	At        time.Time `json:"at"`
	Operation string    `json:"operation"` // one of the Op constants, "" when no call matched
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Query     string    `json:"query"` // raw, as sent
	Status    int       `json:"status"`
	// Headers holds the propagated headers that were present, keyed by
	// their contract spelling (contract.HeaderRequestID, ...). Repeated
	// headers are joined with ", ".
	Headers map[string]string `json:"headers"`
	// Authorization reports whether an Authorization header was sent.
	Authorization bool `json:"authorization"`
}

// Recorder counts calls per operation and keeps the most recent requests.
// It is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	limit  int
	counts map[string]int64
	ring   []RecordedRequest // oldest at next once full
	next   int
}

// NewRecorder keeps the last limit requests (DefaultRecordLimit when
// limit < 1).
func NewRecorder(limit int) *Recorder {
	if limit < 1 {
		limit = DefaultRecordLimit
	}
	r := &Recorder{limit: limit}
	r.Reset()
	return r
}

// Counts returns the number of calls per operation since the last Reset,
// every operation present (0 when never called). Calls count whatever
// their outcome, rejected ones included.
func (r *Recorder) Counts() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.counts)
}

// Requests returns the kept requests, oldest first.
func (r *Recorder) Requests() []RecordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RecordedRequest, 0, len(r.ring))
	if len(r.ring) == r.limit {
		out = append(out, r.ring[r.next:]...)
		out = append(out, r.ring[:r.next]...)
	} else {
		out = append(out, r.ring...)
	}
	for i := range out {
		out[i].Headers = maps.Clone(out[i].Headers)
	}
	return out
}

// Reset forgets every count and request.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts = map[string]int64{OpUsernameCheck: 0, OpSearch: 0, OpUser: 0, OpLiveStreams: 0}
	r.ring = make([]RecordedRequest, 0, min(r.limit, 64))
	r.next = 0
}

func (r *Recorder) add(req *http.Request, op string, status int) {
	rec := RecordedRequest{
		At:            time.Now().UTC(),
		Operation:     op,
		Method:        req.Method,
		Path:          req.URL.Path,
		Query:         req.URL.RawQuery,
		Status:        status,
		Headers:       map[string]string{},
		Authorization: len(req.Header.Values("Authorization")) > 0,
	}
	for _, name := range recordedHeaders {
		if vs := req.Header.Values(name); len(vs) > 0 {
			rec.Headers[name] = strings.Join(vs, ", ")
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if op != "" {
		r.counts[op]++
	}
	if len(r.ring) < r.limit {
		r.ring = append(r.ring, rec)
		return
	}
	r.ring[r.next] = rec
	r.next = (r.next + 1) % r.limit
}
