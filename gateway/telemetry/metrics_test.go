package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/gateway/readcache"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// series finds one series of a family by its labels (all of them), and
// whether it exists.
func series(t *testing.T, m *Metrics, name string, labels map[string]string) (*dto.Metric, bool) {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return seriesIn(fams, name, labels)
}

// seriesIn is series in families already gathered.
func seriesIn(fams []*dto.MetricFamily, name string, labels map[string]string) (*dto.Metric, bool) {
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, s := range f.GetMetric() {
			if len(s.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range s.GetLabel() {
				if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
					continue next
				}
			}
			return s, true
		}
	}
	return nil, false
}

// value is the value of a counter or gauge series; a missing series fails.
func value(t *testing.T, m *Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	s, ok := series(t, m, name, labels)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Untyped != nil:
		return s.Untyped.GetValue()
	}
	t.Fatalf("%s%v is neither counter nor gauge", name, labels)
	return 0
}

func absent(t *testing.T, m *Metrics, name string, labels map[string]string) {
	t.Helper()
	if s, ok := series(t, m, name, labels); ok {
		t.Errorf("series %s%v exists (%v), want none", name, labels, s)
	}
}

// familySize is how many series a family has (0 when it has none).
func familySize(t *testing.T, m *Metrics, name string) int {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return len(f.GetMetric())
		}
	}
	return 0
}

type L = map[string]string

func TestRequestsAreCountedByBoundedLabels(t *testing.T) {
	m := NewMetrics("1.2.3")
	m.RequestStarted()
	m.RequestStarted()
	m.RequestStarted()
	if got := value(t, m, "gateway_requests_in_flight", nil); got != 3 {
		t.Errorf("in flight = %v, want 3", got)
	}
	m.RequestDone(config.RouteSearch, "GET", 200, "mobile_ios", 3*time.Millisecond)
	m.RequestDone(config.RouteSearch, "GET", 204, "mobile_ios", 30*time.Millisecond)
	// Everything unexpected lands in the catch-all values.
	m.RequestDone("/wp-admin/../etc/passwd", "BREW", 999, "<script>", time.Second)
	if got := value(t, m, "gateway_requests_in_flight", nil); got != 0 {
		t.Errorf("in flight after three done = %v, want 0", got)
	}

	if got := value(t, m, "gateway_requests_total", L{"route": "users.search", "method": "GET", "status_class": "2xx", "platform": "mobile_ios"}); got != 2 {
		t.Errorf("users.search GET 2xx mobile_ios = %v, want 2", got)
	}
	if got := value(t, m, "gateway_requests_total", L{"route": "unmatched", "method": "other", "status_class": "other", "platform": "unknown"}); got != 1 {
		t.Errorf("hostile request = %v, want 1 under the catch-alls", got)
	}
	// Only counted combinations are exported.
	if n := familySize(t, m, "gateway_requests_total"); n != 2 {
		t.Errorf("requests_total has %d series, want 2", n)
	}

	h, ok := series(t, m, "gateway_request_duration_seconds", L{"route": "users.search", "platform": "mobile_ios"})
	if !ok {
		t.Fatal("no duration histogram for users.search mobile_ios")
	}
	hist := h.GetHistogram()
	if hist.GetSampleCount() != 2 {
		t.Errorf("sample count = %d, want 2", hist.GetSampleCount())
	}
	if got, want := hist.GetSampleSum(), 0.033; got < want-1e-9 || got > want+1e-9 {
		t.Errorf("sample sum = %v, want %v", got, want)
	}
	buckets := map[float64]uint64{}
	for _, b := range hist.GetBucket() {
		buckets[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	for le, want := range map[float64]uint64{0.0001: 0, 0.0025: 0, 0.005: 1, 0.025: 1, 0.05: 2, 10: 2} {
		if buckets[le] != want {
			t.Errorf("bucket le=%v = %d, want %d", le, buckets[le], want)
		}
	}
	if len(buckets) != len(latencyBuckets) {
		t.Errorf("%d buckets, want %d", len(buckets), len(latencyBuckets))
	}
	slow, ok := series(t, m, "gateway_request_duration_seconds", L{"route": "unmatched", "platform": "unknown"})
	if !ok || slow.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("unmatched/unknown histogram = %v, want one sample", slow)
	}
}

func TestStatusClassesAndMethods(t *testing.T) {
	cases := []struct {
		status int
		class  string
	}{
		{200, "2xx"}, {299, "2xx"}, {301, "3xx"}, {304, "3xx"}, {400, "4xx"}, {429, "4xx"},
		{500, "5xx"}, {503, "5xx"}, {599, "5xx"}, {0, "other"}, {101, "other"}, {199, "other"},
		{600, "other"}, {-1, "other"}, {1 << 40, "other"},
	}
	for _, c := range cases {
		if got := classLabels[classIndex(c.status)]; got != c.class {
			t.Errorf("class of %d = %s, want %s", c.status, got, c.class)
		}
	}
	for _, meth := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		if got := methodLabels[methodIndex(meth)]; got != meth {
			t.Errorf("method %s labelled %s", meth, got)
		}
	}
	for _, meth := range []string{"get", "CONNECT", "TRACE", "", "GET ", strings.Repeat("X", 1000)} {
		if got := methodLabels[methodIndex(meth)]; got != "other" {
			t.Errorf("method %q labelled %s, want other", meth, got)
		}
	}
}

// The label lists mirror other packages; a value added there must not
// silently fall into a catch-all here.
func TestLabelListsMatchTheirSources(t *testing.T) {
	check := func(name string, labels []string, index func(string) int, catchAll int) {
		t.Helper()
		for i, l := range labels {
			if i == catchAll {
				continue
			}
			if got := index(l); got != i {
				t.Errorf("%s: %q indexes to %d, want %d", name, l, got, i)
			}
		}
		if got := index("\x00nonsense"); got != catchAll {
			t.Errorf("%s: nonsense indexes to %d, want the catch-all %d", name, got, catchAll)
		}
	}
	check("route", routeLabels[:], routeIndex, len(routeLabels)-1)
	check("method", methodLabels[:], methodIndex, len(methodLabels)-1)
	check("platform", platformLabels[:], platformIndex, len(platformLabels)-1)
	check("cache", cacheLabels[:], cacheIndex, len(cacheLabels)-1)
	check("op", opLabels[:], func(s string) int { return opIndex(upstream.Op(s)) }, len(opLabels)-1)
	check("outcome", outcomeLabels[:], outcomeIndex, len(outcomeLabels)-1)
	check("breaker", breakerLabels[:], breakerIndex, len(breakerLabels)-1)
	check("policy", policyLabels[:], policyIndex, len(policyLabels)-1)
	check("kind", limitKindLabels[:], limitKindIndex, len(limitKindLabels)-1)
	check("eviction", evictionLabels[:], evictionIndex, len(evictionLabels)-1)

	if got := routeLabels[:len(routeLabels)-1]; !slices.Equal(got, config.RouteIDs) {
		t.Errorf("routes %v, config.RouteIDs %v", got, config.RouteIDs)
	}
	if got := policyLabels[:len(policyLabels)-1]; !slices.Equal(got, config.PolicyNames) {
		t.Errorf("policies %v, config.PolicyNames %v", got, config.PolicyNames)
	}
	var ops []string
	for _, op := range upstream.Ops {
		ops = append(ops, string(op))
	}
	if got := opLabels[:len(opLabels)-1]; !slices.Equal(got, ops) {
		t.Errorf("ops %v, upstream.Ops %v", got, ops)
	}
	if got := outcomeLabels[:len(outcomeLabels)-1]; !slices.Equal(got, upstream.Outcomes) {
		t.Errorf("outcomes %v, upstream.Outcomes %v", got, upstream.Outcomes)
	}
	for p := clientctx.PlatformWeb; p <= clientctx.PlatformUnknown; p++ {
		if got := platformLabels[platformIndex(p.String())]; got != p.String() {
			t.Errorf("platform %s labelled %s", p, got)
		}
	}
	// The limit kinds are the yaml names of config.RateLimits' fields.
	var kinds []string
	rt := reflect.TypeFor[config.RateLimits]()
	for i := range rt.NumField() {
		kinds = append(kinds, strings.Split(rt.Field(i).Tag.Get("yaml"), ",")[0])
	}
	if got := limitKindLabels[:len(limitKindLabels)-1]; !slices.Equal(got, kinds) {
		t.Errorf("limit kinds %v, config.RateLimits %v", got, kinds)
	}
	for _, s := range []readcache.Status{readcache.Hit, readcache.Miss, readcache.Stale} {
		if got := cacheLabels[cacheIndex(s.String())]; got != strings.ToLower(s.String()) {
			t.Errorf("cache status %s labelled %s", s, got)
		}
	}
}

func TestUpstreamMetrics(t *testing.T) {
	m := NewMetrics("v")
	m.Call(upstream.OpSearch, upstream.OutcomeOK, 2*time.Millisecond)
	m.Call(upstream.OpSearch, upstream.OutcomeTimeout, 800*time.Millisecond)
	m.Call(upstream.OpSearch, upstream.OutcomeTimeout, 900*time.Millisecond)
	m.Call("dropTables", "exploded", time.Millisecond)
	// Refused in the gateway: counted, not timed.
	m.Call(upstream.OpSearch, upstream.OutcomeBreakerOpen, time.Microsecond)
	m.Call(upstream.OpSearch, upstream.OutcomeBulkheadFull, time.Microsecond)
	m.Retry(upstream.OpUserByID)
	m.Retry(upstream.OpUserByID)
	m.Retry("nope")

	if got := value(t, m, "gateway_upstream_calls_total", L{"op": "search", "outcome": "timeout"}); got != 2 {
		t.Errorf("search timeouts = %v, want 2", got)
	}
	if got := value(t, m, "gateway_upstream_calls_total", L{"op": "search", "outcome": "ok"}); got != 1 {
		t.Errorf("search ok = %v, want 1", got)
	}
	if got := value(t, m, "gateway_upstream_calls_total", L{"op": "search", "outcome": "breaker_open"}); got != 1 {
		t.Errorf("search breaker_open = %v, want 1", got)
	}
	if got := value(t, m, "gateway_upstream_calls_total", L{"op": "other", "outcome": "other"}); got != 1 {
		t.Errorf("unknown op and outcome = %v, want 1 under other/other", got)
	}
	d, ok := series(t, m, "gateway_upstream_call_duration_seconds", L{"op": "search"})
	if !ok || d.GetHistogram().GetSampleCount() != 3 {
		t.Errorf("search call duration = %v, want 3 samples", d)
	}
	if got := value(t, m, "gateway_upstream_retries_total", L{"op": "userById"}); got != 2 {
		t.Errorf("userById retries = %v, want 2", got)
	}
	if got := value(t, m, "gateway_upstream_retries_total", L{"op": "other"}); got != 1 {
		t.Errorf("unknown op retries = %v, want 1", got)
	}
	// Retries are a small fixed family: every op shows, 0 included.
	if got := value(t, m, "gateway_upstream_retries_total", L{"op": "liveStreams"}); got != 0 {
		t.Errorf("liveStreams retries = %v, want 0", got)
	}

	// Every change a breaker of a known operation can make is there from
	// the start, at 0, so that increase() counts its first one; nothing
	// else is.
	if got := familySize(t, m, "gateway_breaker_transitions_total"); got != 4*4 {
		t.Errorf("%d transition series before any change, want 16 (4 operations × 4 changes)", got)
	}
	for _, ch := range [][2]string{{"closed", "open"}, {"open", "half-open"}, {"half-open", "closed"}, {"half-open", "open"}} {
		if got := value(t, m, "gateway_breaker_transitions_total", L{"op": "liveStreams", "from": ch[0], "to": ch[1]}); got != 0 {
			t.Errorf("%s→%s before any change = %v, want 0", ch[0], ch[1], got)
		}
	}
	absent(t, m, "gateway_breaker_transitions_total", L{"op": "liveStreams", "from": "open", "to": "closed"})
	absent(t, m, "gateway_breaker_transitions_total", L{"op": "other", "from": "closed", "to": "open"})

	// Without a client named, the breaker gauge follows the events.
	absent(t, m, "gateway_breaker_state", L{"op": "search"})
	m.BreakerState(upstream.OpSearch, "closed", "open")
	if got := value(t, m, "gateway_breaker_state", L{"op": "search"}); got != 2 {
		t.Errorf("search breaker = %v, want 2 (open)", got)
	}
	m.BreakerState(upstream.OpSearch, "open", "half-open")
	if got := value(t, m, "gateway_breaker_state", L{"op": "search"}); got != 1 {
		t.Errorf("search breaker = %v, want 1 (half-open)", got)
	}
	m.BreakerState(upstream.OpSearch, "half-open", "melted")
	if got := value(t, m, "gateway_breaker_state", L{"op": "search"}); got != 1 {
		t.Errorf("an unknown state changed the gauge to %v", got)
	}
	if got := value(t, m, "gateway_breaker_transitions_total", L{"op": "search", "from": "closed", "to": "open"}); got != 1 {
		t.Errorf("closed→open = %v, want 1", got)
	}
	if got := value(t, m, "gateway_breaker_transitions_total", L{"op": "search", "from": "half-open", "to": "other"}); got != 1 {
		t.Errorf("half-open→unknown = %v, want 1 under other", got)
	}
}

func TestCacheAuthLimitAndConfigMetrics(t *testing.T) {
	m := NewMetrics("v")
	m.CacheResult(config.RouteMe, "HIT")
	m.CacheResult(config.RouteMe, "HIT")
	m.CacheResult(config.RouteSearch, "STALE")
	m.CacheResult(config.RouteSearch, "MISS")
	m.CacheResult(config.RouteSearch, "BYPASS")
	m.CacheResult("nowhere", "PURPLE")
	m.Lookup(readcache.Hit) // counted through CacheResult, not twice
	m.Evicted(readcache.EvictCapacity, 5)
	m.Evicted(readcache.EvictExpired, 1)
	m.Evicted("cosmic-ray", 2)
	m.Evicted(readcache.EvictPurge, -3)

	for _, c := range []struct {
		route, status string
		want          float64
	}{
		{"users.me", "hit", 2}, {"users.search", "stale", 1}, {"users.search", "miss", 1},
		{"users.search", "bypass", 1}, {"unmatched", "other", 1},
	} {
		if got := value(t, m, "gateway_cache_lookups_total", L{"route": c.route, "status": c.status}); got != c.want {
			t.Errorf("cache %s %s = %v, want %v", c.route, c.status, got, c.want)
		}
	}
	if n := familySize(t, m, "gateway_cache_lookups_total"); n != 5 {
		t.Errorf("cache_lookups_total has %d series, want 5", n)
	}
	for reason, want := range map[string]float64{"capacity": 5, "expired": 1, "purge": 0, "other": 2} {
		if got := value(t, m, "gateway_cache_evictions_total", L{"reason": reason}); got != want {
			t.Errorf("evictions %s = %v, want %v", reason, got, want)
		}
	}

	if got := value(t, m, "gateway_jwks_fetches_total", L{"result": "error"}); got != 0 {
		t.Errorf("jwks errors before any = %v", got)
	}
	m.JWKSFetch(nil, 3)
	m.JWKSFetch(errors.New("503"), 0)
	m.JWKSFetch(nil, 2)
	m.JWKSFetch(errors.New("timeout"), 0)
	if got := value(t, m, "gateway_jwks_fetches_total", L{"result": "ok"}); got != 2 {
		t.Errorf("jwks ok = %v, want 2", got)
	}
	if got := value(t, m, "gateway_jwks_fetches_total", L{"result": "error"}); got != 2 {
		t.Errorf("jwks error = %v, want 2", got)
	}
	if got := value(t, m, "gateway_jwks_keys", nil); got != 2 {
		t.Errorf("jwks keys = %v, want 2 (the last good set; failures keep it)", got)
	}
	m.TokenCache(true)
	m.TokenCache(true)
	m.TokenCache(false)
	if got := value(t, m, "gateway_token_cache_lookups_total", L{"result": "hit"}); got != 2 {
		t.Errorf("token cache hits = %v, want 2", got)
	}
	if got := value(t, m, "gateway_token_cache_lookups_total", L{"result": "miss"}); got != 1 {
		t.Errorf("token cache misses = %v, want 1", got)
	}

	m.RateLimited("mobile_ios", "perUser")
	m.RateLimited("evil\npolicy", "perGalaxy")
	if got := value(t, m, "gateway_rate_limited_total", L{"policy": "mobile_ios", "kind": "perUser"}); got != 1 {
		t.Errorf("rate limited mobile_ios perUser = %v", got)
	}
	if got := value(t, m, "gateway_rate_limited_total", L{"policy": "other", "kind": "other"}); got != 1 {
		t.Errorf("rate limited unknown = %v, want 1 under other/other", got)
	}

	first := value(t, m, "gateway_config_last_reload_success_timestamp_seconds", nil)
	if now := float64(time.Now().Unix()); first < now-60 || first > now+1 {
		t.Errorf("start-up reload time %v is not now (%v)", first, now)
	}
	time.Sleep(20 * time.Millisecond)
	m.ConfigReload(errors.New("bad yaml"))
	if got := value(t, m, "gateway_config_last_reload_success_timestamp_seconds", nil); got != first {
		t.Errorf("a failed reload moved the success time")
	}
	m.ConfigReload(nil)
	if got := value(t, m, "gateway_config_last_reload_success_timestamp_seconds", nil); got <= first {
		t.Errorf("a good reload did not move the success time (%v ≤ %v)", got, first)
	}
	if got := value(t, m, "gateway_config_reloads_total", L{"result": "ok"}); got != 1 {
		t.Errorf("reloads ok = %v", got)
	}
	if got := value(t, m, "gateway_config_reloads_total", L{"result": "error"}); got != 1 {
		t.Errorf("reloads error = %v", got)
	}

	if got := value(t, m, "gateway_build_info", L{"version": "v", "goversion": runtime.Version()}); got != 1 {
		t.Errorf("build_info = %v", got)
	}
}

// Fakes of the scrape-time sources.
type fakeKeys struct {
	ready bool
	age   time.Duration
}

func (f fakeKeys) Ready() (bool, string) {
	if f.ready {
		return true, ""
	}
	return false, "no keys yet"
}
func (f fakeKeys) KeysAge() time.Duration     { return f.age }
func (f fakeKeys) TokenCacheSize() (int, int) { return 0, 0 }

type fakeCache struct{ stats readcache.Stats }

func (f *fakeCache) Stats() readcache.Stats { return f.stats }

type fakeLimiter struct {
	keys      int
	evictions uint64
}

func (f *fakeLimiter) Stats() policies.LimiterStats {
	return policies.LimiterStats{Keys: f.keys, MaxKeys: 100, Evictions: f.evictions}
}

// fakeBreakers behaves like upstream.Client: reading a state may move an
// open breaker to half-open, and the client reports that move through the
// observer while holding the breaker's lock.
type fakeBreakers struct {
	mu       sync.Mutex
	states   map[upstream.Op]string
	obs      upstream.Observer
	moveOnce upstream.Op
}

func (f *fakeBreakers) Breakers() []upstream.BreakerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.moveOnce != "" {
		f.states[f.moveOnce] = "half-open"
		f.obs.BreakerState(f.moveOnce, "open", "half-open")
		f.moveOnce = ""
	}
	var out []upstream.BreakerStatus
	for _, op := range upstream.Ops {
		out = append(out, upstream.BreakerStatus{Op: op, State: f.states[op]})
	}
	return out
}

func TestScrapeTimeSources(t *testing.T) {
	m := NewMetrics("v")
	for _, name := range []string{"gateway_cache_entries", "gateway_jwks_keys_age_seconds", "gateway_auth_keys_ready", "gateway_rate_limit_keys", "gateway_rate_limit_max_keys", "gateway_rate_limit_evictions_total", "gateway_breaker_state"} {
		absent(t, m, name, nil)
		if n := familySize(t, m, name); n != 0 {
			t.Errorf("%s has %d series with no source named", name, n)
		}
	}

	cache := &fakeCache{stats: readcache.Stats{Entries: 7, Bytes: 4096, MaxEntries: 100, MaxBytes: 1 << 20}}
	lim := &fakeLimiter{keys: 42, evictions: 5}
	br := &fakeBreakers{obs: m, states: map[upstream.Op]string{
		upstream.OpUsernameCheck: "closed", upstream.OpSearch: "open", upstream.OpUserByID: "closed", upstream.OpLiveStreams: "closed",
	}}
	m.SetSources(fakeKeys{ready: false}, br, cache, lim)

	if got := value(t, m, "gateway_auth_keys_ready", nil); got != 0 {
		t.Errorf("keys ready = %v, want 0", got)
	}
	if got := value(t, m, "gateway_jwks_keys_age_seconds", nil); got != 0 {
		t.Errorf("keys age = %v, want 0", got)
	}
	for name, want := range map[string]float64{
		"gateway_cache_entries": 7, "gateway_cache_bytes": 4096, "gateway_cache_max_entries": 100,
		"gateway_cache_max_bytes": 1 << 20, "gateway_rate_limit_keys": 42,
		"gateway_rate_limit_max_keys": 100, "gateway_rate_limit_evictions_total": 5,
	} {
		if got := value(t, m, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, m, "gateway_breaker_state", L{"op": "search"}); got != 2 {
		t.Errorf("search breaker = %v, want 2", got)
	}
	if got := value(t, m, "gateway_breaker_state", L{"op": "userById"}); got != 0 {
		t.Errorf("userById breaker = %v, want 0", got)
	}

	// Values are read at each scrape, not copied once.
	cache.stats.Entries = 9
	lim.keys = 43
	lim.evictions = 6
	m.SetSources(fakeKeys{ready: true, age: 90 * time.Second}, br, cache, lim)
	if got := value(t, m, "gateway_cache_entries", nil); got != 9 {
		t.Errorf("cache entries = %v, want 9", got)
	}
	if got := value(t, m, "gateway_rate_limit_keys", nil); got != 43 {
		t.Errorf("limit keys = %v, want 43", got)
	}
	if got := value(t, m, "gateway_rate_limit_evictions_total", nil); got != 6 {
		t.Errorf("limit evictions = %v, want 6", got)
	}
	if got := value(t, m, "gateway_auth_keys_ready", nil); got != 1 {
		t.Errorf("keys ready = %v, want 1", got)
	}
	if got := value(t, m, "gateway_jwks_keys_age_seconds", nil); got != 90 {
		t.Errorf("keys age = %v, want 90", got)
	}

	// A scrape that moves a breaker (the observer is called back under the
	// client's lock) neither deadlocks nor misses the move.
	br.moveOnce = upstream.OpSearch
	type scrape struct {
		fams []*dto.MetricFamily
		err  error
	}
	done := make(chan scrape, 1)
	go func() {
		// Only the scrape runs here: the test is failed from its own
		// goroutine.
		fams, err := m.reg.Gather()
		done <- scrape{fams, err}
	}()
	select {
	case got := <-done:
		if got.err != nil {
			t.Fatalf("gather: %v", got.err)
		}
		s, ok := seriesIn(got.fams, "gateway_breaker_state", L{"op": "search"})
		if !ok {
			t.Fatal("no search breaker series in the scrape that moved it")
		}
		if v := s.GetGauge().GetValue(); v != 1 {
			t.Errorf("search breaker after the move = %v, want 1", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("scrape deadlocked on a breaker event")
	}
	if got := value(t, m, "gateway_breaker_transitions_total", L{"op": "search", "from": "open", "to": "half-open"}); got != 1 {
		t.Errorf("open→half-open = %v, want 1", got)
	}
}

// A disabled component reaches SetSources as a nil pointer inside a
// non-nil interface; it must be skipped, not called.
func TestSetSourcesSkipsNilPointers(t *testing.T) {
	m := NewMetrics("v")
	var cache *readcache.Cache
	var lim *policies.Limiter
	var client *upstream.Client
	m.SetSources(nil, client, cache, lim)
	if _, err := m.reg.Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
	absent(t, m, "gateway_cache_entries", nil)
	absent(t, m, "gateway_rate_limit_keys", nil)
	absent(t, m, "gateway_rate_limit_evictions_total", nil)
}

// The real cache and limiter, wired as main wires them.
func TestRealCacheAndLimiterAsSources(t *testing.T) {
	m := NewMetrics("v")
	cache := readcache.New(readcache.Options{MaxEntries: 2, MaxBytes: 1 << 20, CleanupInterval: time.Hour}, m)
	t.Cleanup(cache.Close)
	lim := policies.NewLimiter(1000)
	m.SetSources(nil, nil, cache, lim)

	pol := readcache.Policy{TTL: time.Minute}
	for _, key := range []string{"a", "b", "c"} {
		_, _, err := cache.Get(context.Background(), key, pol, func(context.Context) (readcache.Loaded, error) {
			return readcache.Loaded{Data: []byte(`{"k":"` + key + `"}`), Cacheable: true}, nil
		}, nil)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
	}
	if got := value(t, m, "gateway_cache_entries", nil); got != 2 {
		t.Errorf("cache entries = %v, want 2 (the bound)", got)
	}
	if got := value(t, m, "gateway_cache_max_entries", nil); got != 2 {
		t.Errorf("cache max entries = %v, want 2", got)
	}
	if got := value(t, m, "gateway_cache_bytes", nil); got <= 0 {
		t.Errorf("cache bytes = %v, want > 0", got)
	}
	if got := value(t, m, "gateway_cache_evictions_total", L{"reason": "capacity"}); got != 1 {
		t.Errorf("capacity evictions = %v, want 1", got)
	}
	if got := value(t, m, "gateway_rate_limit_keys", nil); got != 0 {
		t.Errorf("limit keys = %v, want 0", got)
	}
	if got := value(t, m, "gateway_rate_limit_max_keys", nil); got != 1000 {
		t.Errorf("limit max keys = %v, want 1000", got)
	}
}

func TestHandlerServesExposition(t *testing.T) {
	m := NewMetrics("9.9.9")
	m.RequestStarted()
	m.RequestDone(config.RouteMe, "GET", 200, "web", time.Millisecond)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{
		`gateway_build_info{goversion="` + runtime.Version() + `",version="9.9.9"} 1`,
		`gateway_requests_total{method="GET",platform="web",route="users.me",status_class="2xx"} 1`,
		`gateway_request_duration_seconds_bucket{platform="web",route="users.me",le="0.001"} 1`,
		`gateway_requests_in_flight 0`,
		"# TYPE gateway_request_duration_seconds histogram",
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// Observers and scrapes run together (meaningful under -race).
func TestConcurrentObservationAndScrape(t *testing.T) {
	m := NewMetrics("v")
	m.SetSources(fakeKeys{ready: true}, nil, &fakeCache{}, &fakeLimiter{})
	const workers, each = 4, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m.RequestStarted()
				m.RequestDone(config.RouteIDs[i%len(config.RouteIDs)], "GET", 200+w, "web", time.Duration(i)*time.Microsecond)
				m.Call(upstream.OpSearch, upstream.OutcomeOK, time.Millisecond)
				m.CacheResult(config.RouteSearch, "HIT")
				m.TokenCache(i%2 == 0)
				m.BreakerState(upstream.OpSearch, "closed", "open")
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			if _, err := m.reg.Gather(); err != nil {
				t.Errorf("gather: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	var total float64
	for _, route := range config.RouteIDs {
		if s, ok := series(t, m, "gateway_request_duration_seconds", L{"route": route, "platform": "web"}); ok {
			total += float64(s.GetHistogram().GetSampleCount())
		}
	}
	if total != workers*each {
		t.Errorf("histograms hold %v samples, want %d", total, workers*each)
	}
	if got := value(t, m, "gateway_cache_lookups_total", L{"route": "users.search", "status": "hit"}); got != workers*each {
		t.Errorf("cache hits = %v, want %d", got, workers*each)
	}
	if got := value(t, m, "gateway_requests_in_flight", nil); got != 0 {
		t.Errorf("in flight = %v, want 0", got)
	}
}

// Every gateway series follows the Prometheus naming rule: a counter's
// name ends in _total and nothing else's does (a gauge named so reads as
// a rate in every dashboard that applies rate() to it). And every series
// the scrape-time collector sends is one it describes: a pedantic
// registry refuses one it did not, which a plain registry lets through.
func TestScrapeTimeMetricsAreDescribedAndTyped(t *testing.T) {
	m := NewMetrics("v")
	cache := &fakeCache{stats: readcache.Stats{Entries: 7, Bytes: 4096, MaxEntries: 100, MaxBytes: 1 << 20}}
	br := &fakeBreakers{obs: m, states: map[upstream.Op]string{
		upstream.OpUsernameCheck: "closed", upstream.OpSearch: "open", upstream.OpUserByID: "closed", upstream.OpLiveStreams: "closed",
	}}
	m.SetSources(fakeKeys{ready: true, age: time.Minute}, br, cache, &fakeLimiter{keys: 42, evictions: 5})

	pedantic := prometheus.NewPedanticRegistry()
	pedantic.MustRegister(scrapeCollector{m})
	if _, err := pedantic.Gather(); err != nil {
		t.Errorf("the scrape-time collector sends a series it does not describe: %v", err)
	}

	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range fams {
		name := f.GetName()
		if !strings.HasPrefix(name, namespace) {
			continue
		}
		seen[name] = true
		if counter := f.GetType() == dto.MetricType_COUNTER; counter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s is a %v", name, f.GetType())
		}
	}
	for _, name := range []string{"gateway_rate_limit_evictions_total", "gateway_rate_limit_max_keys"} {
		if !seen[name] {
			t.Errorf("no %s in the scrape", name)
		}
	}
}
