package gateway

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/auth"
	"github.com/bffgate/edge/gateway/readcache"
	"github.com/bffgate/edge/upstream"
	"github.com/bffgate/edge/upstream/contract"
)

// Ops is the operations listener's handler: health and readiness for
// probes, metrics, breaker and cache state, cache purge and invalidation,
// the running configuration (secrets redacted) and, when switched on,
// pprof. Answers are envelopes like the public API's, except /metrics and
// pprof, which speak their own formats.
//
// Protection: the probes are open. Everything else is open only when the
// ops listener is bound to loopback; otherwise it needs the ops token or
// an access token with the admin role (Authorization: Bearer …). The
// user store's invalidation call may also use cache.invalidationToken.
type Ops struct {
	d        OpsDeps
	cfg      atomic.Pointer[config.Config]
	draining atomic.Bool
	mux      *http.ServeMux
}

// OpsDeps is what the ops handler reports on and acts on.
type OpsDeps struct {
	Config  *config.Config
	Auth    *auth.Verifier
	Store   *upstream.Client
	Cache   *readcache.Cache // nil when caching is off
	Metrics http.Handler
	// Loopback says the ops listener only accepts local connections.
	Loopback bool
}

// NewOps builds the ops handler.
func NewOps(d OpsDeps) *Ops {
	o := &Ops{d: d, mux: http.NewServeMux()}
	o.cfg.Store(d.Config)
	m := o.mux
	// allow is each endpoint's Allow, for the 405 of another method: the
	// catch-all below matches every method, so the mux never answers one.
	allow := map[string]string{}
	handle := func(method, path string, h http.Handler) {
		m.Handle(method+" "+path, h)
		if method == http.MethodGet {
			method += ", " + http.MethodHead // a GET pattern serves HEAD too
		}
		allow[path] = method
	}
	handle(http.MethodGet, "/healthz", http.HandlerFunc(o.healthz))
	handle(http.MethodGet, "/readyz", http.HandlerFunc(o.readyz))
	if d.Metrics != nil {
		handle(http.MethodGet, "/metrics", o.protect(d.Metrics))
	}
	handle(http.MethodGet, "/ops/v1/breakers", o.protect(http.HandlerFunc(o.breakers)))
	handle(http.MethodGet, "/ops/v1/cache", o.protect(http.HandlerFunc(o.cacheStats)))
	handle(http.MethodPost, "/ops/v1/cache/purge", o.protect(http.HandlerFunc(o.purge)))
	handle(http.MethodPost, "/ops/v1/cache/invalidate", o.protectWith(o.invalidationToken, http.HandlerFunc(o.invalidate)))
	handle(http.MethodGet, "/ops/v1/config", o.protect(http.HandlerFunc(o.config)))
	if d.Config.Ops.Pprof {
		m.Handle("/debug/pprof/", o.protect(http.HandlerFunc(pprof.Index)))
		m.Handle("/debug/pprof/cmdline", o.protect(http.HandlerFunc(pprof.Cmdline)))
		m.Handle("/debug/pprof/profile", o.protect(http.HandlerFunc(pprof.Profile)))
		m.Handle("/debug/pprof/symbol", o.protect(http.HandlerFunc(pprof.Symbol)))
		m.Handle("/debug/pprof/trace", o.protect(http.HandlerFunc(pprof.Trace)))
	}
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if methods, ok := allow[r.URL.Path]; ok {
			w.Header().Set("Allow", methods)
			writeOps(w, http.StatusMethodNotAllowed, nil, msgMethodNotAllowed.text(0))
			return
		}
		writeOps(w, http.StatusNotFound, nil, msgNotFound.text(0))
	})
	return o
}

// opsBodyTimeout is how long a request to the ops listener has to send
// its body (a variable for tests).
var opsBodyTimeout = 5 * time.Second

func (o *Ops) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		// A body, of a known length or chunked: it must arrive within
		// opsBodyTimeout. The server has only a header timeout (a whole
		// request's ReadTimeout would also end a long pprof profile's
		// context), and net/http reads a body the handler left unread
		// after it: trickled a byte at a time, it held an ops connection
		// for as long as it trickled, and enough of them would keep the
		// probes out.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(opsBodyTimeout))
	}
	w.Header().Set("Cache-Control", "no-store")
	// Every response carries a request id, the ops listener's too.
	id := r.Header.Get("X-Request-Id")
	if !saneRequestID([]byte(id)) {
		id = newRequestID()
	}
	w.Header().Set("X-Request-Id", id)
	if r.RequestURI == "*" {
		// The asterisk target asks about the server as a whole, and only
		// OPTIONS may use it (RFC 9112 section 3.2.4): as on the public
		// listener, 204 with the methods some endpoint takes, and a 400
		// for any other method. (The daemon turns off net/http's own
		// answer, an empty 200 with no request id; the mux's is a bare
		// 400.)
		if r.Method != http.MethodOptions {
			writeOps(w, http.StatusBadRequest, nil, msgValidationFailed.text(0))
			return
		}
		w.Header().Set("Allow", opsMethods)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	o.mux.ServeHTTP(w, r)
}

// opsMethods are the methods some endpoint of the ops listener takes.
const opsMethods = "GET, HEAD, POST"

// SetDraining turns readiness false for good: the process is stopping.
func (o *Ops) SetDraining() { o.draining.Store(true) }

// SetConfig records a reloaded configuration.
func (o *Ops) SetConfig(c *config.Config) { o.cfg.Store(c) }

// opsRefusal is the ops listener's answer to a request net/http refused
// before any handler ran (opsConn.Write): the envelope of status, in
// English (the request's headers were not read), with a new request id,
// no-store, and the connection closed after it, as net/http's was. Without
// body (the answer to HEAD), the header block alone, the envelope's length
// in it.
func opsRefusal(status int, withBody bool) []byte {
	m := statusMessage(status)
	if status == http.StatusNotImplemented {
		m = msgMalformedRequest // an unknown transfer coding: the request's fault, not the gateway's
	}
	body := appendEnvelope(make([]byte, 0, 192), status, nil, []string{m.text(0)})
	b := make([]byte, 0, 256+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nX-Request-Id: "...)
	b = appendRequestID(b)
	b = append(b, "\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nConnection: close\r\n\r\n"...)
	if !withBody {
		return b
	}
	return append(b, body...)
}

func writeOps(w http.ResponseWriter, status int, data any, errs ...string) {
	var raw []byte
	if len(errs) == 0 {
		var err error
		if raw, err = json.Marshal(data); err != nil {
			status, errs = http.StatusInternalServerError, []string{msgInternal.text(0)}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(appendEnvelope(make([]byte, 0, 256+len(raw)), status, raw, errs))
}

func (o *Ops) healthz(w http.ResponseWriter, r *http.Request) {
	writeOps(w, http.StatusOK, map[string]string{"status": "alive"})
}

// readyz: ready when keys are loaded and the process is not draining. The
// configuration is always valid while running: a bad reload keeps the old.
func (o *Ops) readyz(w http.ResponseWriter, r *http.Request) {
	var notReady []string
	if o.draining.Load() {
		notReady = append(notReady, "draining: the gateway is shutting down")
	}
	if o.d.Auth != nil {
		if ok, reason := o.d.Auth.Ready(); !ok {
			notReady = append(notReady, "auth: "+reason)
		}
	}
	if len(notReady) > 0 {
		// A 503 is a failure envelope like any other (isSuccess false, data
		// null); the reasons follow the generic message.
		writeOps(w, http.StatusServiceUnavailable, nil, append([]string{msgUnavailable.text(0)}, notReady...)...)
		return
	}
	writeOps(w, http.StatusOK, map[string]any{"ready": true, "notReady": []string{}})
}

func (o *Ops) protect(h http.Handler) http.Handler { return o.protectWith(nil, h) }

// protectWith lets a request through on a loopback-only listener, or with
// the ops token, an admin access token, or the extra credential.
func (o *Ops) protectWith(extra func() string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.d.Loopback || o.authorized(r, extra) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="ops"`)
		writeOps(w, http.StatusUnauthorized, nil, msgAuthRequired.text(0))
	})
}

func (o *Ops) authorized(r *http.Request, extra func() string) bool {
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return false
	}
	// The scheme is case-insensitive (RFC 9110 section 11.1), as on the
	// public listener: "bearer x" is the same credential.
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	token = strings.TrimLeft(token, " ")
	cfg := o.cfg.Load()
	if equalSecret(token, cfg.Ops.Token) {
		return true
	}
	if extra != nil && equalSecret(token, extra()) {
		return true
	}
	if o.d.Auth == nil {
		return false
	}
	id, err := o.d.Auth.Authenticate(r.Context(), [][]byte{[]byte(values[0])})
	return err == nil && id.HasRole(cfg.Auth.AdminRole)
}

// equalSecret compares in constant time; an unset secret matches nothing.
func equalSecret(given, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(given), []byte(want)) == 1
}

func (o *Ops) invalidationToken() string { return o.cfg.Load().Cache.InvalidationToken }

type breakerView struct {
	Op                  string `json:"op"`
	State               string `json:"state"`
	Requests            uint32 `json:"requests"`
	Failures            uint32 `json:"failures"`
	ConsecutiveFailures uint32 `json:"consecutiveFailures"`
	RetryAfterSeconds   int    `json:"retryAfterSeconds,omitempty"`
}

func (o *Ops) breakers(w http.ResponseWriter, r *http.Request) {
	var out []breakerView
	if o.d.Store != nil {
		for _, b := range o.d.Store.Breakers() {
			out = append(out, breakerView{
				Op: string(b.Op), State: b.State,
				Requests: b.Counts.Requests, Failures: b.Counts.Failures,
				ConsecutiveFailures: b.Counts.ConsecutiveFailures,
				RetryAfterSeconds:   int(b.RetryAfter / time.Second),
			})
		}
	}
	writeOps(w, http.StatusOK, map[string]any{"breakers": out})
}

func (o *Ops) cacheStats(w http.ResponseWriter, r *http.Request) {
	if o.d.Cache == nil {
		writeOps(w, http.StatusOK, map[string]any{"enabled": false})
		return
	}
	st := o.d.Cache.Stats()
	writeOps(w, http.StatusOK, map[string]any{
		"enabled": true, "entries": st.Entries, "bytes": st.Bytes,
		"maxEntries": st.MaxEntries, "maxBytes": st.MaxBytes, "fillRatio": st.FillRatio,
		"hits": st.Hits, "misses": st.Misses, "staleServes": st.StaleServes,
		"loads": st.Loads, "refreshFailures": st.RefreshFailures, "rejected": st.Rejected,
		// Spelled out: readcache.Evictions has no JSON names, and its Go
		// field names (Capacity, …) would break this API's camelCase.
		"evictions": map[string]uint64{
			"capacity": st.Evictions.Capacity, "expired": st.Evictions.Expired, "purge": st.Evictions.Purge,
		},
		"lastSweepMicros": st.LastSweep.Microseconds(),
	})
}

// purge: POST /ops/v1/cache/purge?user=<id> | ?route=search|me | ?all=true
func (o *Ops) purge(w http.ResponseWriter, r *http.Request) {
	// Exactly one parameter, given once: beside another, a typo in one (a
	// user id next to all=true) would purge far more than was meant.
	q := r.URL.Query()
	once := func(name string) string {
		if vs := q[name]; len(q) == 1 && len(vs) == 1 {
			return vs[0]
		}
		return ""
	}
	// The parameters are checked with the cache off too, as invalidate's
	// body is: a purge that is wrong must not pass there and fail on a
	// gateway with a cache.
	var purge func(*readcache.Cache) int
	switch user, route := once("user"), once("route"); {
	case contract.IsUUID(user):
		purge = func(c *readcache.Cache) int { return c.PurgeTag(strings.ToLower(user)) }
	case route == "search" || route == "me":
		purge = func(c *readcache.Cache) int { return c.PurgePrefix(readcache.Key(route)) }
	case once("all") == "true":
		purge = (*readcache.Cache).PurgeAll
	default:
		writeOps(w, http.StatusBadRequest, nil, msgValidationFailed.text(0),
			"give one of user=<uuid>, route=search|me, all=true")
		return
	}
	n := 0
	if o.d.Cache != nil {
		n = purge(o.d.Cache)
	}
	writeOps(w, http.StatusOK, map[string]int{"purged": n})
}

// invalidate: POST /ops/v1/cache/invalidate {"userId": "<uuid>"} — the user
// store saying a user changed; every cached answer carrying them goes.
func (o *Ops) invalidate(w http.ResponseWriter, r *http.Request) {
	id, ok := invalidationUserID(http.MaxBytesReader(w, r.Body, 4096))
	if !ok || !contract.IsUUID(id) {
		writeOps(w, http.StatusBadRequest, nil, msgValidationFailed.text(0), msgUserIDInvalid.text(0))
		return
	}
	n := 0
	if o.d.Cache != nil {
		n = o.d.Cache.PurgeTag(strings.ToLower(id))
	}
	writeOps(w, http.StatusOK, map[string]int{"purged": n})
}

// invalidationUserID reads a body that is exactly {"userId": "<string>"}.
// Read token by token: encoding/json alone would take "UserID" for the
// key, let a repeated key win and ignore whatever follows the object.
func invalidationUserID(body io.Reader) (string, bool) {
	dec := json.NewDecoder(body)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	if key, err := dec.Token(); err != nil || key != "userId" {
		return "", false
	}
	var id *string
	if err := dec.Decode(&id); err != nil || id == nil {
		return "", false
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return "", false
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", false
	}
	return *id, true
}

// config shows the running configuration with config.yaml's key names,
// secrets redacted.
func (o *Ops) config(w http.ResponseWriter, r *http.Request) {
	tree, err := config.View(o.cfg.Load())
	if err != nil {
		writeOps(w, http.StatusInternalServerError, nil, msgInternal.text(0))
		return
	}
	writeOps(w, http.StatusOK, tree)
}
