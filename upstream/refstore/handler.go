package refstore

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/bffgate/edge/upstream/contract"
)

// Codes of non-2xx bodies outside the contract's table: the contract
// fixes the codes of the calls; these answer requests that never reached
// one.
const (
	CodeUnauthorized     = "unauthorized"       // 401: missing or wrong service token
	CodeMethodNotAllowed = "method_not_allowed" // 405: known path, other method
)

// HandlerOptions configure (*Store).Handler.
type HandlerOptions struct {
	// ServiceToken, when set, must arrive on every request as
	// "Authorization: Bearer <token>"; anything else gets 401.
	ServiceToken string
	// Record turns on the Recorder and the /_debug/ endpoints.
	Record bool
	// RecordLimit is how many requests the Recorder keeps
	// (DefaultRecordLimit when 0).
	RecordLimit int
	// Timeout bounds the store work of one call (default 5s); running out
	// answers 503 unavailable.
	Timeout time.Duration
	// Logger receives store errors (500), unavailability (503) and
	// recovered panics, never a line per request (default: none).
	Logger *slog.Logger
}

// Handler serves the user-store contract over HTTP.
type Handler struct {
	store      *Store
	opts       HandlerOptions
	logger     *slog.Logger
	recorder   *Recorder
	mux        *http.ServeMux
	operations map[string]string // mux pattern → operation
	root       http.Handler
}

// Handler returns the HTTP handler of the store.
func (s *Store) Handler(opts HandlerOptions) *Handler {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	h := &Handler{
		store:      s,
		opts:       opts,
		logger:     opts.Logger,
		mux:        http.NewServeMux(),
		operations: map[string]string{},
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if opts.Record {
		h.recorder = NewRecorder(opts.RecordLimit)
	}
	h.root = h.routes()
	return h
}

// ServeHTTP answers r, echoing its X-Request-Id (the contract lets the
// gateway refuse an answer that names another request).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id := r.Header.Get(contract.HeaderRequestID); id != "" {
		w.Header().Set(contract.HeaderRequestID, id)
	}
	h.root.ServeHTTP(w, r)
}

// Recorder returns the recorder, or nil when HandlerOptions.Record is off.
func (h *Handler) Recorder() *Recorder { return h.recorder }

// maxBodyBytes caps request bodies; the only body is a username check.
const maxBodyBytes = 4 << 10

// errorBody is the wire form of contract.Error with details always
// present ({} when there are none), so a client never has to tell a
// missing key from an empty one.
type errorBody struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// writeJSON is the one place responses are encoded.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"code":"internal","message":"Internal error","details":{}}`)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}

func writeError(w http.ResponseWriter, status int, code, message string, details map[string]any) {
	if details == nil {
		details = map[string]any{}
	}
	writeJSON(w, status, errorBody{Code: code, Message: message, Details: details})
}

func writeValidation(w http.ResponseWriter, verr *ValidationError) {
	details := make(map[string]any, len(verr.Problems))
	for field, problem := range verr.Problems {
		details[field] = problem
	}
	writeError(w, http.StatusBadRequest, contract.CodeValidationFailed, "Validation failed", details)
}

// fail answers a store error with its contract error. Internal causes are
// logged, never sent.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var verr *ValidationError
	switch {
	case errors.As(err, &verr):
		writeValidation(w, verr)
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, contract.CodeNotFound, "Resource not found", nil)
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, contract.CodeConflict, "Resource already exists or cannot be changed in its current state", nil)
	case unavailable(err) || h.store.closed.Load():
		// A call that passed checkOpen just before Close fails with
		// database/sql's own "database is closed": unavailable too.
		h.logger.WarnContext(r.Context(), "store unavailable", "err", err, "path", r.URL.Path,
			"requestId", r.Header.Get(contract.HeaderRequestID))
		writeError(w, http.StatusServiceUnavailable, contract.CodeUnavailable, "Service unavailable", nil)
	default:
		h.logger.ErrorContext(r.Context(), "store error", "err", err, "path", r.URL.Path,
			"requestId", r.Header.Get(contract.HeaderRequestID))
		writeError(w, http.StatusInternalServerError, contract.CodeInternal, "Internal error", nil)
	}
}

// unavailable reports errors that say "try again later" rather than "this
// is broken": a closed store, a deadline, a client that went away, or a
// database locked by a writer for longer than busy_timeout.
func unavailable(err error) bool {
	if errors.Is(err, ErrClosed) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var serr *sqlite.Error
	if errors.As(err, &serr) {
		switch serr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}

// statusWriter remembers the status written through it, and tells
// onStatus (when set) before the status goes on.
type statusWriter struct {
	http.ResponseWriter
	status   int
	onStatus func(status int)
}

func (w *statusWriter) setStatus(status int) {
	if w.status == 0 {
		w.status = status
		if w.onStatus != nil {
			w.onStatus(status)
		}
	}
}

func (w *statusWriter) WriteHeader(status int) {
	w.setStatus(status)
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.setStatus(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverPanics turns a panic into a 500 contract body (when nothing was
// written yet) and a log line, instead of a dropped connection.
func recoverPanics(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			logger.ErrorContext(r.Context(), "panic serving request", "panic", fmt.Sprint(v), "path", r.URL.Path,
				"requestId", r.Header.Get(contract.HeaderRequestID))
			if sw.status == 0 {
				writeError(sw, http.StatusInternalServerError, contract.CodeInternal, "Internal error", nil)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// requireServiceToken enforces the optional static bearer token. Both
// sides are hashed first so the comparison takes the same time whatever
// the length of the guess.
func requireServiceToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		gotSum := sha256.Sum256([]byte(got))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(gotSum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="userstore"`)
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "Authentication required", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// contractFallback serves mux, but answers the requests it has no pattern
// for with contract bodies: ServeMux's own 404 and 405 are plain text. The
// mux still decides which of the two it is (and the Allow header).
func contractFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !canonicalPath(r) {
			writeError(w, http.StatusNotFound, contract.CodeNotFound, "Resource not found", nil)
			return
		}
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &probeWriter{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method not allowed",
				map[string]any{"method": r.Method})
			return
		}
		writeError(w, http.StatusNotFound, contract.CodeNotFound, "Resource not found", nil)
	})
}

// canonicalPath reports whether r's path is already clean. ServeMux
// would answer any other path with a redirect to the cleaned one (an HTML
// body); no call lives at such a path, so it is an unknown path: 404.
func canonicalPath(r *http.Request) bool {
	p := r.URL.EscapedPath()
	return p == "/" || strings.HasPrefix(p, "/") && path.Clean(p) == strings.TrimSuffix(p, "/")
}

// probeWriter captures what ServeMux's fallback handler would answer.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}
func (p *probeWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// record notes every request except the debug endpoints themselves. A
// request is noted when its status is written, before any byte of the
// answer leaves: a client holding the answer finds its request recorded
// (a test may reset the recorder right after an answer, and a request
// noted later would land among the next test's).
func (h *Handler) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_debug/") {
			next.ServeHTTP(w, r)
			return
		}
		var op string
		if canonicalPath(r) {
			_, pattern := h.mux.Handler(r)
			op = h.operations[pattern]
		}
		recorded := false
		sw := &statusWriter{ResponseWriter: w, onStatus: func(status int) {
			recorded = true
			h.recorder.add(r, op, status)
		}}
		defer func() { // nothing written, or the handler aborted
			if !recorded {
				h.recorder.add(r, op, sw.status)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}
