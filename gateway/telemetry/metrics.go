package telemetry

import (
	"net/http"
	"reflect"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/bffgate/edge/gateway/readcache"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "gateway_"

// latencyBuckets suit an edge: a cache hit answers in tens of
// microseconds, a slow user store in seconds, and the request timeout caps
// the rest.
var latencyBuckets = []time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

const (
	nMethods   = len(methodLabels)
	nClasses   = len(classLabels)
	nPlatforms = len(platformLabels)
	nCache     = len(cacheLabels)
	nOutcomes  = len(outcomeLabels)
	nOps       = len(opLabels)
	nStates    = len(breakerLabels)
	nKinds     = len(limitKindLabels)
)

// KeySource is the JWT verifier (*auth.Verifier), read at scrape time.
type KeySource interface {
	Ready() (bool, string)
	KeysAge() time.Duration
	// TokenCacheSize is the verified-token cache's entries and bound.
	TokenCacheSize() (entries, maxEntries int)
}

// BreakerSource is the user-store client (*upstream.Client), read at
// scrape time.
type BreakerSource interface {
	Breakers() []upstream.BreakerStatus
}

// CacheSource is the read cache (*readcache.Cache), read at scrape time.
type CacheSource interface {
	Stats() readcache.Stats
}

// LimiterSource is the rate limiter (*policies.Limiter), read at scrape
// time.
type LimiterSource interface {
	Stats() policies.LimiterStats
}

type sources struct {
	keys     KeySource
	breakers BreakerSource
	cache    CacheSource
	limiter  LimiterSource
}

// Metrics records the gateway's measurements in Prometheus form. It
// implements gateway.Observer, auth.Observer, upstream.Observer and
// readcache.Observer, so no other package needs Prometheus. All methods are
// safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests     *counterTable
	duration     *histogramTable
	inFlight     atomic.Int64
	calls        *counterTable
	callDuration *histogramTable
	retries      *counterTable
	transitions  *counterTable
	// breakerState is each op's last known state index, -1 until known.
	breakerState      [nOps]atomic.Int32
	cacheLookups      *counterTable
	evictions         *counterTable
	tokenCache        *counterTable
	jwksFetches       *counterTable
	jwksKeys          atomic.Int64
	rateLimited       *counterTable
	reloads           *counterTable
	lastReload        atomic.Int64 // unix nanoseconds
	connsRefused      atomic.Uint64
	connsRefusedPerIP atomic.Uint64
	connsOpen         atomic.Pointer[func() int64] // SetOpenConnections

	sources atomic.Pointer[sources]
}

// NewMetrics builds the metrics on a registry of their own, with the Go
// runtime and process collectors beside them. version is the build's
// version, exported in gateway_build_info.
func NewMetrics(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.lastReload.Store(time.Now().UnixNano())
	for i := range m.breakerState {
		m.breakerState[i].Store(-1)
	}

	routes, platforms, ops := routeLabels[:], platformLabels[:], opLabels[:]
	m.requests = newCounterTable(namespace+"requests_total",
		"Requests answered, by route id, method, status class and client platform.", false,
		newGrid([]string{"route", "method", "status_class", "platform"}, routes, methodLabels[:], classLabels[:], platforms))
	m.duration = newHistogramTable(namespace+"request_duration_seconds",
		"Time from a request's arrival to its answer, by route id and client platform.", false, latencyBuckets,
		newGrid([]string{"route", "platform"}, routes, platforms))
	m.calls = newCounterTable(namespace+"upstream_calls_total",
		"User-store calls finished, by operation and outcome (all attempts of one call count once).", false,
		newGrid([]string{"op", "outcome"}, ops, outcomeLabels[:]))
	m.callDuration = newHistogramTable(namespace+"upstream_call_duration_seconds",
		"Time a user-store call took, retries, waits and backoffs included, by operation (calls refused before they left the gateway are not timed).", false, latencyBuckets,
		newGrid([]string{"op"}, ops))
	m.retries = newCounterTable(namespace+"upstream_retries_total",
		"Retries sent to the user store, by operation.", true,
		newGrid([]string{"op"}, ops))
	m.transitions = newCounterTable(namespace+"breaker_transitions_total",
		"Circuit breaker state changes, by operation and the states left and entered.", false,
		newGrid([]string{"op", "from", "to"}, ops, breakerLabels[:], breakerLabels[:]))
	// The changes a breaker makes are there from the start, at 0: a
	// series that first appears at 1 hides its first opening from
	// increase() (and the runbook's alert on it).
	m.transitions.zeroWhen = func(lv []string) bool { return lv[0] != otherLabel && breakerChange(lv[1], lv[2]) }
	m.cacheLookups = newCounterTable(namespace+"cache_lookups_total",
		"Read-cache answers served, by route id and cache status (hit, miss, stale, bypass).", false,
		newGrid([]string{"route", "status"}, routes, cacheLabels[:]))
	m.evictions = newCounterTable(namespace+"cache_evictions_total",
		"Entries that left the read cache, by reason (capacity, expired, purge).", true,
		newGrid([]string{"reason"}, evictionLabels[:]))
	m.tokenCache = newCounterTable(namespace+"token_cache_lookups_total",
		"Look-ups of the verified-token cache, by result (hit, miss).", true,
		newGrid([]string{"result"}, hitLabels[:]))
	m.jwksFetches = newCounterTable(namespace+"jwks_fetches_total",
		"JWKS fetch attempts, by result (ok, error).", true,
		newGrid([]string{"result"}, resultLabels[:]))
	m.rateLimited = newCounterTable(namespace+"rate_limited_total",
		"Requests refused by a rate limit, by platform policy and limit kind.", false,
		newGrid([]string{"policy", "kind"}, policyLabels[:], limitKindLabels[:]))
	m.reloads = newCounterTable(namespace+"config_reloads_total",
		"Configuration reloads, by result (ok, error).", true,
		newGrid([]string{"result"}, resultLabels[:]))

	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        namespace + "build_info",
		Help:        "Always 1; its labels name the build.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: namespace + "requests_in_flight",
			Help: "Requests being answered now.",
		}, func() float64 { return float64(m.inFlight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: namespace + "jwks_keys",
			Help: "Usable keys in the key set tokens are verified with (with several JWKS URLs, the union of their last good sets).",
		}, m.keyCount),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: namespace + "connections_open",
			Help: "Client connections open on the public listener (those whose close lingers included), against server.maxConnections.",
		}, m.openConnections),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: namespace + "connections_refused_total",
			Help: "Client connections refused (503) because server.maxConnections were open.",
		}, func() float64 { return float64(m.connsRefused.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: namespace + "connections_refused_per_ip_total",
			Help: "Client connections refused (503) because their address had server.maxConnectionsPerIP open.",
		}, func() float64 { return float64(m.connsRefusedPerIP.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: namespace + "config_last_reload_success_timestamp_seconds",
			Help: "When the configuration last loaded successfully (start-up counts), as a Unix time.",
		}, func() float64 { return float64(m.lastReload.Load()) / float64(time.Second) }),
		m.requests, m.duration, m.calls, m.callDuration, m.retries, m.transitions,
		m.cacheLookups, m.evictions, m.tokenCache, m.jwksFetches, m.rateLimited, m.reloads,
		scrapeCollector{m},
	)
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// SetSources names what the scrape-time gauges read. Any of them may be nil
// (a nil pointer included), and its gauges are then left out. It may be
// called again, say after a reload builds a new cache.
func (m *Metrics) SetSources(keys KeySource, breakers BreakerSource, cache CacheSource, limiter LimiterSource) {
	m.sources.Store(&sources{
		keys:     orNil(keys),
		breakers: orNil(breakers),
		cache:    orNil(cache),
		limiter:  orNil(limiter),
	})
}

// orNil turns an interface holding a nil pointer into a nil interface, so
// that a disabled component passed as (*readcache.Cache)(nil) is skipped
// rather than called.
func orNil[T any](v T) T {
	var zero T
	if any(v) == nil {
		return zero
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return zero
	}
	return v
}

// RequestStarted counts a request in flight (gateway.Observer).
func (m *Metrics) RequestStarted() { m.inFlight.Add(1) }

// RequestDone records an answered request and ends its in-flight count
// (gateway.Observer).
func (m *Metrics) RequestDone(route, method string, status int, platform string, d time.Duration) {
	r, p := routeIndex(route), platformIndex(platform)
	m.requests.add(((r*nMethods+methodIndex(method))*nClasses+classIndex(status))*nPlatforms+p, 1)
	m.duration.observe(r*nPlatforms+p, d)
	m.inFlight.Add(-1)
}

// RateLimited counts a request refused by a limit (gateway.Observer).
func (m *Metrics) RateLimited(policy, kind string) {
	m.rateLimited.add(policyIndex(policy)*nKinds+limitKindIndex(kind), 1)
}

// SetOpenConnections names what gateway_connections_open reads: the
// public listener's count of open connections (0 until it is set).
func (m *Metrics) SetOpenConnections(open func() int64) { m.connsOpen.Store(&open) }

func (m *Metrics) openConnections() float64 {
	if open := m.connsOpen.Load(); open != nil {
		return float64((*open)())
	}
	return 0
}

// ConnectionRefused counts a client connection refused over
// server.maxConnections (gateway.Observer).
func (m *Metrics) ConnectionRefused() { m.connsRefused.Add(1) }

// ConnectionRefusedPerIP counts a client connection refused over
// server.maxConnectionsPerIP (gateway.Observer).
func (m *Metrics) ConnectionRefusedPerIP() { m.connsRefusedPerIP.Add(1) }

// CacheResult counts how the read cache answered a route
// (gateway.Observer).
func (m *Metrics) CacheResult(route, status string) {
	m.cacheLookups.add(routeIndex(route)*nCache+cacheIndex(status), 1)
}

// keyCount is gateway_jwks_keys: the key source's count of the keys in
// use when it has one, else the count of the last good fetch. With several
// JWKS URLs only the source knows the set in use, their union: the last
// fetch is one URL's, whichever answered last.
func (m *Metrics) keyCount() float64 {
	if s := m.sources.Load(); s != nil {
		if kc, ok := s.keys.(interface{ KeyCount() int }); ok {
			return float64(kc.KeyCount())
		}
	}
	return float64(m.jwksKeys.Load())
}

// JWKSFetch counts a key set fetch and, when it succeeded, remembers how
// many keys it carried (auth.Observer), for gateway_jwks_keys when no key
// source counts them (see keyCount).
func (m *Metrics) JWKSFetch(err error, keys int) {
	m.jwksFetches.add(resultIndex(err), 1)
	if err == nil {
		m.jwksKeys.Store(int64(keys))
	}
}

// TokenCache counts a verified-token cache look-up (auth.Observer).
func (m *Metrics) TokenCache(hit bool) { m.tokenCache.add(hitIndex(hit), 1) }

// Call records a finished user-store call (upstream.Observer).
func (m *Metrics) Call(op upstream.Op, outcome string, d time.Duration) {
	o := opIndex(op)
	m.calls.add(o*nOutcomes+outcomeIndex(outcome), 1)
	switch outcome {
	case upstream.OutcomeBreakerOpen, upstream.OutcomeBulkheadFull, upstream.OutcomeInvalidInput:
		// Refused before leaving the gateway, in microseconds: timed, a
		// breaker open under an outage would pull the store's latency
		// quantiles towards zero just when they matter.
	default:
		m.callDuration.observe(o, d)
	}
}

// Retry counts a retry about to be sent (upstream.Observer).
func (m *Metrics) Retry(op upstream.Op) { m.retries.add(opIndex(op), 1) }

// BreakerState records a breaker's move (upstream.Observer). It runs under
// the breaker's lock, so it only touches atomics.
func (m *Metrics) BreakerState(op upstream.Op, from, to string) {
	o, f, t := opIndex(op), breakerIndex(from), breakerIndex(to)
	m.transitions.add((o*nStates+f)*nStates+t, 1)
	if t < nStates-1 {
		m.breakerState[o].Store(int32(t))
	}
}

// breakerChange reports whether a breaker goes from one state to the
// other: closed to open, open to half-open, half-open to closed or open.
func breakerChange(from, to string) bool {
	switch from {
	case "closed":
		return to == "open"
	case "open":
		return to == "half-open"
	case "half-open":
		return to == "closed" || to == "open"
	}
	return false
}

// Lookup is part of readcache.Observer and records nothing: the gateway
// reports every cache answer with its route through CacheResult, and
// counting here as well would count each twice.
func (m *Metrics) Lookup(readcache.Status) {}

// Evicted counts entries that left the read cache (readcache.Observer).
func (m *Metrics) Evicted(reason string, n int) {
	if n > 0 {
		m.evictions.add(evictionIndex(reason), uint64(n))
	}
}

// ConfigReload counts a configuration reload; a successful one also sets
// the last-success time.
func (m *Metrics) ConfigReload(err error) {
	m.reloads.add(resultIndex(err), 1)
	if err == nil {
		m.lastReload.Store(time.Now().UnixNano())
	}
}

// scrapeCollector reads the sources when Prometheus scrapes, for values
// that are cheaper to ask for than to track.
type scrapeCollector struct{ m *Metrics }

var (
	breakerStateDesc = prometheus.NewDesc(namespace+"breaker_state",
		"Circuit breaker state by operation: 0 closed, 1 half-open, 2 open.", []string{"op"}, nil)
	cacheEntriesDesc = prometheus.NewDesc(namespace+"cache_entries",
		"Entries in the read cache, expired ones not yet swept included.", nil, nil)
	cacheBytesDesc = prometheus.NewDesc(namespace+"cache_bytes",
		"Bytes held by the read cache's entries.", nil, nil)
	cacheMaxEntriesDesc = prometheus.NewDesc(namespace+"cache_max_entries",
		"The read cache's bound on entries.", nil, nil)
	cacheMaxBytesDesc = prometheus.NewDesc(namespace+"cache_max_bytes",
		"The read cache's bound on bytes.", nil, nil)
	keysAgeDesc = prometheus.NewDesc(namespace+"jwks_keys_age_seconds",
		"Time since the JWKS was last fetched successfully (of the stalest JWKS URL); 0 until the first success (see gateway_auth_keys_ready).", nil, nil)
	keysReadyDesc = prometheus.NewDesc(namespace+"auth_keys_ready",
		"1 when the verifier holds a usable key set, else 0.", nil, nil)
	limitKeysDesc = prometheus.NewDesc(namespace+"rate_limit_keys",
		"Rate-limit buckets in use.", nil, nil)
	limitMaxKeysDesc = prometheus.NewDesc(namespace+"rate_limit_max_keys",
		"The rate limiter's bound on buckets.", nil, nil)
	// Past the bound a new key takes an idle bucket's slot, and that
	// client starts again with a full one: evictions of buckets not yet
	// refilled give budgets back, so ops must see the churn, not only a
	// gauge stuck at the bound.
	limitEvictionsDesc = prometheus.NewDesc(namespace+"rate_limit_evictions_total",
		"Rate-limit buckets dropped to make room for new keys.", nil, nil)
	tokenCacheEntriesDesc = prometheus.NewDesc(namespace+"token_cache_entries",
		"Verified tokens cached (expired ones too, until a hit or an eviction removes them).", nil, nil)
	tokenCacheMaxEntriesDesc = prometheus.NewDesc(namespace+"token_cache_max_entries",
		"The token cache's bound (auth.tokenCache.maxEntries); 0 when it is off.", nil, nil)
)

func (c scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{breakerStateDesc, cacheEntriesDesc, cacheBytesDesc,
		cacheMaxEntriesDesc, cacheMaxBytesDesc, keysAgeDesc, keysReadyDesc, limitKeysDesc,
		limitMaxKeysDesc, limitEvictionsDesc, tokenCacheEntriesDesc, tokenCacheMaxEntriesDesc} {
		ch <- d
	}
}

func (c scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	s := m.sources.Load()
	if s == nil {
		s = &sources{}
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	if s.breakers != nil {
		// The snapshot is the truth at scrape time; the events keep the
		// states current when no client is named.
		for _, b := range s.breakers.Breakers() {
			if st := breakerIndex(b.State); st < nStates-1 {
				m.breakerState[opIndex(b.Op)].Store(int32(st))
			}
		}
	}
	for i := range m.breakerState {
		if st := m.breakerState[i].Load(); st >= 0 {
			gauge(breakerStateDesc, float64(st), opLabels[i])
		}
	}
	if s.cache != nil {
		st := s.cache.Stats()
		gauge(cacheEntriesDesc, float64(st.Entries))
		gauge(cacheBytesDesc, float64(st.Bytes))
		gauge(cacheMaxEntriesDesc, float64(st.MaxEntries))
		gauge(cacheMaxBytesDesc, float64(st.MaxBytes))
	}
	if s.keys != nil {
		gauge(keysAgeDesc, s.keys.KeysAge().Seconds())
		ready := 0.0
		if ok, _ := s.keys.Ready(); ok {
			ready = 1
		}
		gauge(keysReadyDesc, ready)
		n, limit := s.keys.TokenCacheSize()
		gauge(tokenCacheEntriesDesc, float64(n))
		gauge(tokenCacheMaxEntriesDesc, float64(limit))
	}
	if s.limiter != nil {
		st := s.limiter.Stats()
		gauge(limitKeysDesc, float64(st.Keys))
		gauge(limitMaxKeysDesc, float64(st.MaxKeys))
		ch <- prometheus.MustNewConstMetric(limitEvictionsDesc, prometheus.CounterValue, float64(st.Evictions))
	}
}
