package e2e

// Operations: what the people who run the gateway see of it and do with
// it. Metrics after real traffic (and their labels staying bounded under
// junk), logs that never hold a token or personal data, health and
// readiness through start-up and shutdown, the ops listener's protection,
// and traces that follow the client's trace into the user store.

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream"
	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// ---------------------------------------------------------------------------
// Metrics

// A day of traffic, in miniature: a user opens the app twice, searches,
// checks a name; an admin looks up a user who does not exist; a stranger
// calls without a token; an API client runs into its per-user limit; a
// slow store keeps one request in flight; the configuration is reloaded,
// once well and once with a broken file. Every one of those shows in
// /metrics with the labels an operator would filter on.
func TestOpsMetricsAfterRealTraffic(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gate := opsStartGate(t, store.URL)
	repoConfig, err := os.ReadFile(repoRoot + "/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	gw := StartGateway(t, GatewayOptions{StoreURL: gate.URL, IdP: idp, ConfigYAML: string(repoConfig), Env: map[string]string{
		// The api platform's own per-user limit: two calls, then 429.
		"GATEWAY_POLICIES__API__RATELIMITS__PERUSER__RATE":  "0.001",
		"GATEWAY_POLICIES__API__RATELIMITS__PERUSER__BURST": "2",
		// A held search must not time out while the test looks at it.
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__SEARCH__TIMEOUT": "2500ms",
	}})

	start := opsScrape(t, gw)
	start.expect(t, "gateway_build_info", opsLabels{"version": "e2e", "goversion": runtime.Version()}, 1)
	for _, op := range []string{"usernameCheck", "search", "userById", "liveStreams"} {
		start.expect(t, "gateway_breaker_state", opsLabels{"op": op}, 0) // closed
	}
	start.expect(t, "gateway_auth_keys_ready", nil, 1)
	start.expect(t, "gateway_jwks_keys", nil, 2) // devidp serves an RSA and an EC key
	start.expect(t, "gateway_jwks_fetches_total", opsLabels{"result": "error"}, 0)
	if ok := start.must(t, "gateway_jwks_fetches_total", opsLabels{"result": "ok"}); ok < 1 {
		t.Errorf("jwks_fetches_total{result=ok} = %v after the keys loaded", ok)
	}
	start.must(t, "gateway_jwks_keys_age_seconds", nil)
	start.expect(t, "gateway_requests_in_flight", nil, 0)
	start.expect(t, "gateway_config_reloads_total", opsLabels{"result": "ok"}, 0)
	start.expect(t, "gateway_config_reloads_total", opsLabels{"result": "error"}, 0)

	user := idp.UserToken(t)
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), Platform("web")).Data(t, nil)
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), Platform("web")).Data(t, nil)
	gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru", Bearer(user), Platform("mobile_ios")).Data(t, nil)
	gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(user), Platform("mobile_android"),
		JSONBody(`{"username":"johndoe123"}`)).Data(t, nil)
	gw.Do(t, http.MethodGet, "/api/admin/v1/users/"+refstore.DemoMissingID, Bearer(idp.AdminToken(t)), Platform("admin")).
		Failure(t, http.StatusNotFound, "Resource not found")
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Platform("web")).Failure(t, http.StatusUnauthorized, "Authentication required")
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), Platform("api")).Data(t, nil)
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), Platform("api")).Data(t, nil)
	if r := gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), Platform("api")); r.Status != http.StatusTooManyRequests {
		t.Fatalf("third api call: %d, want 429: %s", r.Status, r.Body)
	}

	m := opsScrape(t, gw)
	req := func(route, method, class, platform string) opsLabels {
		return opsLabels{"route": route, "method": method, "status_class": class, "platform": platform}
	}
	m.expect(t, "gateway_requests_total", req("users.me", "GET", "2xx", "web"), 2)
	m.expect(t, "gateway_requests_total", req("users.me", "GET", "4xx", "web"), 1)
	m.expect(t, "gateway_requests_total", req("users.search", "GET", "2xx", "mobile_ios"), 1)
	m.expect(t, "gateway_requests_total", req("users.checkUsername", "POST", "2xx", "mobile_android"), 1)
	m.expect(t, "gateway_requests_total", req("admin.users.get", "GET", "4xx", "admin"), 1)
	m.expect(t, "gateway_requests_total", req("users.me", "GET", "2xx", "api"), 2)
	m.expect(t, "gateway_requests_total", req("users.me", "GET", "4xx", "api"), 1)
	// The histogram counts every answer of the route, failures included.
	m.expect(t, "gateway_request_duration_seconds", opsLabels{"route": "users.me", "platform": "web"}, 3)
	m.expect(t, "gateway_request_duration_seconds", opsLabels{"route": "users.search", "platform": "mobile_ios"}, 1)

	m.expect(t, "gateway_upstream_calls_total", opsLabels{"op": "usernameCheck", "outcome": "ok"}, 1)
	m.expect(t, "gateway_upstream_calls_total", opsLabels{"op": "search", "outcome": "ok"}, 1)
	m.expect(t, "gateway_upstream_calls_total", opsLabels{"op": "userById", "outcome": "not_found"}, 1)
	// The demo user's profile: one load, whatever platform asked later.
	if n := m.must(t, "gateway_upstream_calls_total", opsLabels{"op": "userById", "outcome": "ok"}); n < 1 {
		t.Errorf("userById ok calls = %v", n)
	}
	if n := m.must(t, "gateway_upstream_call_duration_seconds", opsLabels{"op": "userById"}); n < 2 {
		t.Errorf("userById call durations observed = %v, want the ok and the not_found call", n)
	}
	m.expect(t, "gateway_cache_lookups_total", opsLabels{"route": "users.me", "status": "miss"}, 1)
	if n := m.must(t, "gateway_cache_lookups_total", opsLabels{"route": "users.me", "status": "hit"}); n < 1 {
		t.Errorf("the second /me was not a cache hit: %v", n)
	}
	m.expect(t, "gateway_cache_lookups_total", opsLabels{"route": "users.search", "status": "miss"}, 1)
	if n := m.must(t, "gateway_token_cache_lookups_total", opsLabels{"result": "hit"}); n < 1 {
		t.Errorf("the same token seven times never hit the token cache: %v", n)
	}
	m.must(t, "gateway_token_cache_lookups_total", opsLabels{"result": "miss"})
	m.expect(t, "gateway_rate_limited_total", opsLabels{"policy": "api", "kind": "perUser"}, 1)
	for _, op := range []string{"usernameCheck", "search", "userById", "liveStreams"} {
		m.expect(t, "gateway_breaker_state", opsLabels{"op": op}, 0)
	}
	m.expect(t, "gateway_cache_entries", nil, 2) // the profile and the search
	m.must(t, "gateway_cache_max_entries", nil)
	m.expect(t, "gateway_requests_in_flight", nil, 0)

	// A request held by a slow store is in flight until it is answered.
	publicURL := gw.URL
	release := gate.hold()
	defer release()
	answered := make(chan *Response, 1)
	go func() {
		// Not gw.Do: the harness's Ops borrows gw.URL while it scrapes.
		answered <- opsDo(t, gw.client, http.MethodGet, publicURL+"/api/v2/users/search?query=ayse", Bearer(user), Platform("mobile_ios"))
	}()
	eventually(t, 5*time.Second, func() error {
		if n := opsScrape(t, gw).must(t, "gateway_requests_in_flight", nil); n != 1 {
			return fmt.Errorf("requests_in_flight = %v while the store holds one search", n)
		}
		return nil
	})
	release()
	r := <-answered
	if r == nil {
		t.FailNow() // opsDo said why
	}
	if r.Status != http.StatusOK {
		t.Fatalf("held search: %d %s", r.Status, r.Body)
	}
	opsScrape(t, gw).expect(t, "gateway_requests_in_flight", nil, 0)

	// Reloads: SIGHUP with the same file is a good (empty) reload; a broken
	// file is refused and counted, and the running configuration stays.
	before := opsScrape(t, gw).must(t, "gateway_config_last_reload_success_timestamp_seconds", nil)
	gw.Signal(t, syscall.SIGHUP)
	eventually(t, 5*time.Second, func() error {
		m := opsScrape(t, gw)
		if n := m.must(t, "gateway_config_reloads_total", opsLabels{"result": "ok"}); n != 1 {
			return fmt.Errorf("config_reloads_total{result=ok} = %v after SIGHUP", n)
		}
		if ts := m.must(t, "gateway_config_last_reload_success_timestamp_seconds", nil); ts <= before {
			return fmt.Errorf("last reload success %v did not move past %v", ts, before)
		}
		return nil
	})
	if err := os.WriteFile(gw.ConfigPath, []byte("server: [this is not\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		if n := opsScrape(t, gw).must(t, "gateway_config_reloads_total", opsLabels{"result": "error"}); n < 1 {
			return fmt.Errorf("config_reloads_total{result=error} = %v after a broken file", n)
		}
		return nil
	})
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), Platform("web")).Data(t, nil)
	opsScrape(t, gw).expect(t, "gateway_config_reloads_total", opsLabels{"result": "ok"}, 1)
}

// Junk from the internet: random paths, methods, platforms and query
// strings, some with a valid token. The metrics count every request, and
// no label ever carries a path, a user id, query text or a platform that
// is not one of the six: the series stay bounded.
func TestOpsMetricLabelsStayBounded(t *testing.T) {
	began := time.Now()
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{
		// The unknown platform's own per-IP limit would turn most junk
		// into 429s before it reaches a route.
		"GATEWAY_POLICIES__UNKNOWN__RATELIMITS__PERIP__RATE":  "100000",
		"GATEWAY_POLICIES__UNKNOWN__RATELIMITS__PERIP__BURST": "100000",
	}})
	user := idp.UserToken(t)
	before := opsScrape(t, gw).sum("gateway_requests_total")

	publicURL := gw.URL
	seed := mrand.Uint64()
	t.Logf("junk seed %d", seed)
	const workers, perWorker = 4, 100
	var (
		mu      sync.Mutex
		planted []string // every random string sent, to look for in the exposition
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(seed, uint64(w)))
			for range perWorker {
				j := opsJunkRequest(rng)
				mu.Lock()
				planted = append(planted, j.planted...)
				mu.Unlock()
				opts := []ReqOpt{}
				if j.platform != "" {
					opts = append(opts, Platform(j.platform))
				}
				if rng.IntN(2) == 0 {
					opts = append(opts, Bearer(user))
				}
				r := opsDo(t, gw.client, j.method, publicURL+j.target, opts...)
				if r == nil {
					return
				}
				if r.Status >= 500 {
					t.Errorf("%s %s answered %d: %s", j.method, j.target, r.Status, r.Body)
				}
			}
		}()
	}
	wg.Wait()

	if t.Failed() {
		t.FailNow()
	}
	// Requests fasthttp cannot even take in count too.
	huge := opsDo(t, gw.client, http.MethodGet, publicURL+"/api/v1/users/me", Header("X-Junk", strings.Repeat("j", 10<<10)))
	big := opsDo(t, gw.client, http.MethodPost, publicURL+"/api/v1/users/check-username", Bearer(user),
		RawBody("application/json", bytes.Repeat([]byte("j"), 17<<10)))
	if huge == nil || big == nil {
		t.FailNow()
	}
	huge.Failure(t, http.StatusRequestHeaderFieldsTooLarge, "Request headers too large")
	big.Failure(t, http.StatusRequestEntityTooLarge, "Request body too large")
	const sent = workers*perWorker + 2

	m := opsScrape(t, gw)
	if got := m.sum("gateway_requests_total") - before; got != sent {
		t.Errorf("requests_total grew by %v for %d requests: some were not counted", got, sent)
	}
	// And each has its access line, with a latency no longer than the test
	// has been running (fasthttp leaves the arrival time unset on a request
	// it could not read; that must not turn into centuries).
	eventually(t, 5*time.Second, func() error {
		n := 0
		for _, l := range gw.LogLines() {
			if l["msg"] != "request" {
				continue
			}
			n++
			if ms, _ := l["latency_ms"].(float64); ms < 0 || ms > float64(time.Since(began).Milliseconds()) {
				t.Fatalf("access line with latency %v ms: %v", ms, l)
			}
		}
		if n != sent {
			return fmt.Errorf("%d access lines for %d requests", n, sent)
		}
		return nil
	})
	if secs := m.histogramSum("gateway_request_duration_seconds"); secs > time.Since(began).Seconds()*workers {
		t.Errorf("request durations sum to %v s in a test running %v", secs, time.Since(began))
	}
	opsCheckLabelsBounded(t, m)
	lower := strings.ToLower(m.text)
	for _, needle := range append(planted, strings.ToLower(refstore.DemoUserID), "/api", "users/", "sukru") {
		if strings.Contains(lower, strings.ToLower(needle)) {
			t.Errorf("the exposition carries %q, sent by a client", needle)
		}
	}
}

// opsJunk is one random request: what it sends and the random strings in it.
type opsJunk struct {
	method, target, platform string
	planted                  []string
}

func opsJunkRequest(rng *mrand.Rand) opsJunk {
	mark := func() string { return fmt.Sprintf("zq7%08x", rng.Uint32()) }
	a, b := mark(), mark()
	uuid := fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xfff, rng.Uint32()&0xfff, rng.Uint64()&0xffffffffffff)
	paths := []string{
		"/api/v1/users/" + a,
		"/" + a + "/" + b,
		"/api/admin/v1/users/" + uuid,
		"/api/admin/v1/users/" + a,
		"/api/v2/users/search?query=" + a + "&" + b + "=" + a,
		"/api/v2/users/search?q=" + url.QueryEscape(a+"@example.com") + "&limit=3",
		"/api/v1/users/me?" + a + "=" + b,
		"/api/v1/users/me/" + a,
		"/api/v1/users/check-username?username=" + a,
		"/api/v1/users/%7B" + a + "%7D",
		"/api/../" + a,
		"/metrics?" + a,
	}
	methods := []string{"GET", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PROPFIND", "TRACE", "ZQ7" + strings.ToUpper(b[3:])}
	platforms := []string{"", "web", "ios", "android", "admin", "api", "WEB", a, "web," + b, "mobile_ios " + a}
	j := opsJunk{
		method:   methods[rng.IntN(len(methods))],
		target:   paths[rng.IntN(len(paths))],
		platform: platforms[rng.IntN(len(platforms))],
		planted:  []string{a, b, uuid},
	}
	return j
}

// opsCheckLabelsBounded checks that every label value of the gateway's
// families is one of its documented values, and that no label anywhere
// (Go and process collectors included) looks like a path or an id.
func opsCheckLabelsBounded(t *testing.T, m opsExposition) {
	t.Helper()
	withOther := func(v ...string) []string { return append(v, "other") }
	allowed := map[string][]string{
		"route":        {"users.checkUsername", "users.search", "users.me", "admin.users.search", "admin.users.get", "unmatched"},
		"method":       withOther("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"),
		"status_class": withOther("2xx", "3xx", "4xx", "5xx"),
		"platform":     {"web", "mobile_ios", "mobile_android", "admin", "api", "unknown"},
		"op":           withOther("usernameCheck", "search", "userById", "liveStreams"),
		"outcome":      withOther(upstream.Outcomes...),
		"from":         withOther("closed", "half-open", "open"),
		"to":           withOther("closed", "half-open", "open"),
		"status":       withOther("hit", "miss", "stale", "bypass"),
		"reason":       withOther("capacity", "expired", "purge"),
		"result":       {"ok", "error", "hit", "miss"},
		"policy":       withOther("all", "web", "mobile_ios", "mobile_android", "admin", "api", "unknown"),
		"kind":         withOther("perIP", "authFailures", "perUser", "perDevice"),
		"version":      {"e2e"},
		"goversion":    {runtime.Version()},
	}
	suspicious := regexp.MustCompile(`[/?=@&]|[0-9a-f]{8}-[0-9a-f]{4}-`)
	for name, fam := range m.fams {
		for _, s := range fam.GetMetric() {
			for _, lp := range s.GetLabel() {
				k, v := lp.GetName(), lp.GetValue()
				if suspicious.MatchString(v) && !(k == "le" || k == "quantile") {
					t.Errorf("%s{%s=%q}: a label value that looks like a path, query or id", name, k, v)
				}
				if !strings.HasPrefix(name, "gateway_") || k == "le" {
					continue
				}
				vals, known := allowed[k]
				if !known {
					t.Errorf("%s has an undocumented label %q", name, k)
					continue
				}
				if !slices.Contains(vals, v) {
					t.Errorf("%s{%s=%q}: not one of %v", name, k, v, vals)
				}
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Logs

// A session that touches every endpoint and most ways to fail: profiles
// and admin answers full of e-mail addresses and phone numbers, searches
// for an address and a number, tokens that are bad in every way, a Basic
// credential, ops calls with their secrets, a reload, and a second gateway
// whose store is down until its breaker opens. Not one line of what the
// gateways logged holds a token, a secret, an e-mail address or a phone
// number; every line is JSON; the access line carries what an operator
// needs.
func TestOpsLogsHoldNoTokensOrPersonalData(t *testing.T) {
	opsToken, serviceToken, invalidationToken := opsSecret(t), opsSecret(t), opsSecret(t)
	store := StartStore(t, map[string]string{"USERSTORE_SERVICE_TOKEN": serviceToken})
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{
		"GATEWAY_OPS__TOKEN":                         opsToken,
		"GATEWAY_UPSTREAMS__USERSTORE__SERVICETOKEN": serviceToken,
		"GATEWAY_CACHE__INVALIDATIONTOKEN":           invalidationToken,
	}})

	user, admin := idp.UserToken(t), idp.AdminToken(t)
	expired, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID,
		IssuedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	foreign := opsForeignToken(t)
	noneAlg, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID}, devidp.WithAlgNone())
	if err != nil {
		t.Fatal(err)
	}
	unknownKID, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID}, devidp.WithKeyID("kid-nobody-has"))
	if err != nil {
		t.Fatal(err)
	}
	tampered := user[:len(user)-6] + "AAAAAA"
	basic := "Basic " + "c3VrcnUuaXNpa0BleGFtcGxlLmNvbTpodW50ZXIy" // sukru.isik@example.com:hunter2
	secrets := []string{user, admin, expired, foreign, noneAlg, unknownKID, tampered, basic,
		opsToken, serviceToken, invalidationToken, "hunter2"}

	// The apps.
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), Platform("mobile_ios"),
		Header("X-App-Version", "5.2.0"), Header("X-Request-Id", "ops-log-me-miss")).Data(t, nil)
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bare(user), Platform("mobile_ios"),
		Header("X-App-Version", "5.2.0"), Header("X-Request-Id", "ops-log-me-hit")).Data(t, nil)
	// An app that mixes up its headers: a (short) token as its request id,
	// the user's phone number as its app version. Both are well-formed
	// for their header, so the gateway keeps them; neither may be logged.
	shortJWT := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdWtydSJ9."
	secrets = append(secrets, shortJWT)
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), Header("X-Request-Id", shortJWT),
		Header("X-App-Version", "+905551112233")).Data(t, nil)
	for _, q := range []string{"sukru", "sukru.isik@example.com", "+905551112233", "905551112233"} {
		r := gw.Do(t, http.MethodGet, "/api/v2/users/search?query="+url.QueryEscape(q), Bearer(user), Platform("web"))
		if r.Status != http.StatusOK {
			t.Fatalf("search %q: %d %s", q, r.Status, r.Body)
		}
	}
	gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(user), JSONBody(`{"username":"sukru.isik"}`)).Data(t, nil)
	gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(user), JSONBody(`{"username":"sukru.isik@example.com"}`)).
		Failure(t, http.StatusBadRequest, "Validation failed")
	gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(user), JSONBody(`{"username":"+905551112233"`)).
		Failure(t, http.StatusBadRequest, "Validation failed")
	// The admin platform: answers full of e-mail addresses and phones.
	var page struct {
		Items []map[string]any `json:"items"`
	}
	gw.Do(t, http.MethodGet, "/api/admin/v1/users/search?query=sukru", Bearer(admin), Platform("admin")).Data(t, &page)
	if len(page.Items) == 0 || page.Items[0]["email"] == nil {
		t.Fatalf("the admin search should show e-mail addresses: %+v", page.Items)
	}
	var profile map[string]any
	gw.Do(t, http.MethodGet, "/api/admin/v1/users/"+refstore.DemoUserID, Bearer(admin), Platform("admin")).Data(t, &profile)
	if profile["phone"] != "+905551112233" {
		t.Fatalf("the admin view should show the phone: %v", profile)
	}
	gw.Do(t, http.MethodGet, "/api/admin/v1/users/"+refstore.DemoMissingID, Bearer(admin), Platform("admin")).
		Failure(t, http.StatusNotFound, "Resource not found")
	gw.Do(t, http.MethodGet, "/api/admin/v1/users/"+refstore.DemoAdminID, Bearer(user), Platform("admin")).
		Failure(t, http.StatusForbidden, "Insufficient permissions")
	// Every way a credential can be wrong.
	for _, auth := range []ReqOpt{Bearer(expired), Bearer(foreign), Bearer(noneAlg), Bearer(unknownKID), Bearer(tampered),
		Header("Authorization", basic), Bearer("sukru.isik@example.com"), Bearer("+905551112233"), Bearer("not.a.jwt")} {
		gw.Do(t, http.MethodGet, "/api/v1/users/me", auth).Failure(t, http.StatusUnauthorized, "Authentication required")
	}
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user), Bearer(admin)).Failure(t, http.StatusBadRequest, "Validation failed")
	gw.Do(t, http.MethodGet, "/api/v1/users/"+url.PathEscape("sukru.isik@example.com"), Bearer(user)).
		Failure(t, http.StatusNotFound, "Resource not found")
	gw.Do(t, http.MethodDelete, "/api/v1/users/me", Bearer(user)).Failure(t, http.StatusMethodNotAllowed, "Method not allowed")
	// The ops listener, with every one of its secrets in use.
	gw.Ops(t, http.MethodGet, "/ops/v1/config", Bearer(opsToken)).Data(t, nil)
	gw.Ops(t, http.MethodGet, "/ops/v1/breakers").Data(t, nil)
	gw.Ops(t, http.MethodPost, "/ops/v1/cache/purge?user="+refstore.DemoUserID, Bearer(admin)).Data(t, nil)
	gw.Ops(t, http.MethodPost, "/ops/v1/cache/invalidate", Bearer(invalidationToken),
		JSONBody(`{"userId":"`+refstore.DemoUserID+`"}`)).Data(t, nil)
	gw.Ops(t, http.MethodPost, "/ops/v1/cache/invalidate", Bearer(invalidationToken),
		JSONBody(`{"userId":"sukru.isik@example.com"}`)).Failure(t, http.StatusBadRequest, "Validation failed")
	gw.Signal(t, syscall.SIGHUP)
	eventually(t, 5*time.Second, func() error {
		if !strings.Contains(gw.Logs(), "config reload") {
			return errors.New("no reload line yet")
		}
		return nil
	})

	// A second gateway whose store refuses connections: the searches fail,
	// are logged as upstream failures, and open the breaker.
	deadAddr := opsRefusedAddr(t)
	down := StartGateway(t, GatewayOptions{StoreURL: "http://" + deadAddr, IdP: idp, Env: map[string]string{
		"GATEWAY_UPSTREAMS__USERSTORE__SERVICETOKEN": serviceToken,
	}})
	var openID string
	eventually(t, 10*time.Second, func() error {
		r := down.Do(t, http.MethodGet, "/api/v2/users/search?query="+url.QueryEscape("sukru.isik@example.com"), Bearer(user))
		if r.Status == http.StatusServiceUnavailable && r.Header.Get("Retry-After") != "" {
			openID = r.Header.Get("X-Request-Id")
			return nil
		}
		if r.Status != http.StatusBadGateway {
			t.Fatalf("search against a dead store: %d %s", r.Status, r.Body)
		}
		return errors.New("the breaker is not open yet")
	})

	if err := gw.Stop(t); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	if err := down.Stop(t); err != nil {
		t.Fatalf("second gateway exit: %v", err)
	}
	logs := gw.Logs() + down.Logs()
	opsScanLogs(t, logs, secrets)

	// The access lines.
	lines := append(gw.LogLines(), down.LogLines()...)
	miss := opsAccessLine(t, lines, "ops-log-me-miss")
	opsExpectFields(t, miss, map[string]any{"msg": "request", "level": "INFO", "method": "GET", "route": "users.me",
		"status": 200.0, "platform": "mobile_ios", "app_version": "5.2.0", "cache": "MISS", "breaker_open": "", "partial": false})
	if miss["upstream_ms"].(float64) <= 0 || miss["latency_ms"].(float64) <= 0 {
		t.Errorf("a miss took upstream time: %v", miss)
	}
	hit := opsAccessLine(t, lines, "ops-log-me-hit")
	opsExpectFields(t, hit, map[string]any{"route": "users.me", "status": 200.0, "cache": "HIT", "upstream_ms": 0.0, "breaker_open": ""})
	mixedUp := opsAccessLine(t, lines, "[REDACTED]")
	opsExpectFields(t, mixedUp, map[string]any{"route": "users.me", "status": 200.0, "app_version": "[REDACTED]"})
	open := opsAccessLine(t, lines, openID)
	opsExpectFields(t, open, map[string]any{"route": "users.search", "status": 503.0, "breaker_open": "search", "platform": "web"})

	// The event lines: keys loaded, the reload, the breaker opening.
	for _, want := range []struct{ logs, msg string }{
		{gw.Logs(), `"msg":"identity provider keys loaded"`},
		{gw.Logs(), `"msg":"config reload`},
		{down.Logs(), `"msg":"upstream breaker state changed"`},
		{down.Logs(), `"msg":"upstream failure"`},
	} {
		if !strings.Contains(want.logs, want.msg) {
			t.Errorf("no %s line in the logs", want.msg)
		}
	}
}

// opsScanLogs fails for every log line that holds a secret, a JWT, an
// e-mail address, a phone number or an Authorization value, and for every
// line that is not a JSON object with time, level and msg.
func opsScanLogs(t *testing.T, logs string, secrets []string) {
	t.Helper()
	checks := []struct {
		what string
		re   *regexp.Regexp
	}{
		{"a JWT", regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}`)},
		{"an e-mail address", regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+`)},
		{"a phone number", regexp.MustCompile(`\+\d[\d ().-]{8,}\d`)},
		{"the demo users' phone numbers", regexp.MustCompile(`5551112233|5550000001`)},
		{"a Bearer credential", regexp.MustCompile(`(?i)bearer\s+\S`)},
		{"a Basic credential", regexp.MustCompile(`(?i)basic\s+[A-Za-z0-9+/=]{8,}`)},
	}
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		n++
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("a log line that is not JSON: %q", line)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := m[k]; !ok {
				t.Errorf("a log line without %q: %s", k, line)
			}
		}
		for _, c := range checks {
			if c.re.MatchString(line) {
				t.Errorf("a log line holds %s (%q): %s", c.what, c.re.FindString(line), line)
			}
		}
		for _, s := range secrets {
			if strings.Contains(line, s) || len(s) > 40 && strings.Contains(line, s[len(s)-40:]) {
				t.Errorf("a log line holds a credential the test used: %s", line)
			}
		}
	}
	if n < 30 {
		t.Errorf("only %d log lines: the scan saw too little to mean anything", n)
	}
}

func opsAccessLine(t *testing.T, lines []map[string]any, requestID string) map[string]any {
	t.Helper()
	for _, l := range lines {
		if l["msg"] == "request" && l["request_id"] == requestID {
			return l
		}
	}
	t.Fatalf("no access line for request %q", requestID)
	return nil
}

func opsExpectFields(t *testing.T, line map[string]any, want map[string]any) {
	t.Helper()
	for _, k := range []string{"time", "request_id", "method", "route", "status", "latency_ms", "platform",
		"app_version", "cache", "upstream_ms", "breaker_open"} {
		if _, ok := line[k]; !ok {
			t.Errorf("access line without %q: %v", k, line)
		}
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("access line %s = %#v, want %#v (line %v)", k, line[k], v, line)
		}
	}
}

// ---------------------------------------------------------------------------
// Health and readiness

// Readiness follows the keys: while the identity provider's JWKS fails the
// gateway is alive but not ready, and says why; once keys load it is ready.
func TestOpsReadinessWaitsForKeys(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	idp.SetJWKSMode(devidp.JWKSStatus(http.StatusServiceUnavailable))
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, NoReadyWait: true,
		Env: map[string]string{"GATEWAY_AUTH__JWKS__RETRYINTERVAL": "100ms"}})

	eventually(t, 5*time.Second, func() error {
		if n, _ := opsScrape(t, gw).value("gateway_jwks_fetches_total", opsLabels{"result": "error"}); n < 1 {
			return errors.New("no failed JWKS fetch counted yet")
		}
		return nil
	})
	msgs := gw.Ops(t, http.MethodGet, "/readyz").Failure(t, http.StatusServiceUnavailable,
		"Service temporarily unavailable, please try again later")
	if len(msgs) != 2 || !strings.HasPrefix(msgs[1], "auth: no identity provider keys loaded yet") {
		t.Fatalf("readyz should name auth as what is not ready: %q", msgs)
	}
	if strings.Contains(msgs[1], "draining") {
		t.Fatalf("not draining: %q", msgs)
	}
	var alive map[string]string
	gw.Ops(t, http.MethodGet, "/healthz").Data(t, &alive)
	if alive["status"] != "alive" {
		t.Fatalf("healthz: %v", alive)
	}
	m := opsScrape(t, gw)
	m.expect(t, "gateway_auth_keys_ready", nil, 0)
	m.expect(t, "gateway_jwks_keys_age_seconds", nil, 0)
	// An app calling now is told to come back, not that its token is bad.
	r := gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(idp.UserToken(t)))
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("a call before keys loaded: %d %s", r.Status, r.Body)
	}

	idp.SetJWKSMode(devidp.JWKSNormal)
	eventually(t, 5*time.Second, func() error {
		if r := gw.Ops(t, http.MethodGet, "/readyz"); r.Status != http.StatusOK {
			return fmt.Errorf("readyz %d: %s", r.Status, r.Body)
		}
		return nil
	})
	var ready struct {
		Ready    bool     `json:"ready"`
		NotReady []string `json:"notReady"`
	}
	gw.Ops(t, http.MethodGet, "/readyz").Data(t, &ready)
	if !ready.Ready || ready.NotReady == nil || len(ready.NotReady) != 0 {
		t.Fatalf("readyz data: %+v", ready)
	}
	opsScrape(t, gw).expect(t, "gateway_auth_keys_ready", nil, 1)
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(idp.UserToken(t))).Data(t, nil)
}

// With two identity providers, gateway_jwks_keys is the key set the
// gateway verifies with, the union of both (2 + 2 keys), and it stays so
// when one of them fails later: not the count of whichever URL answered
// last.
func TestOpsJWKSKeysCountsTheUnionOfEveryURL(t *testing.T) {
	store := SharedStore(t)
	a, b := StartIdP(t), StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: a, Env: map[string]string{
		"GATEWAY_AUTH__JWKSURLS":                 a.JWKSURL + "," + b.JWKSURL,
		"GATEWAY_AUTH__JWKS__REFRESHINTERVAL":    "100ms",
		"GATEWAY_AUTH__JWKS__RETRYINTERVAL":      "100ms",
		"GATEWAY_AUTH__JWKS__UNKNOWNKIDINTERVAL": "100ms",
	}})
	eventually(t, 5*time.Second, func() error {
		if n := opsScrape(t, gw).must(t, "gateway_jwks_keys", nil); n != 4 {
			return fmt.Errorf("gateway_jwks_keys = %v with two providers of 2 keys each, want 4", n)
		}
		return nil
	})
	b.SetJWKSMode(devidp.JWKSStatus(http.StatusServiceUnavailable))
	fetched := opsScrape(t, gw).must(t, "gateway_jwks_fetches_total", opsLabels{"result": "ok"})
	eventually(t, 5*time.Second, func() error {
		m := opsScrape(t, gw)
		if n := m.must(t, "gateway_jwks_fetches_total", opsLabels{"result": "ok"}); n < fetched+2 {
			return fmt.Errorf("%v good fetches since the second provider failed, want 2 more", n-fetched)
		}
		if n := m.must(t, "gateway_jwks_keys", nil); n != 4 {
			t.Fatalf("gateway_jwks_keys = %v while one provider fails and its keys are kept, want 4", n)
		}
		return nil
	})
}

// gateway_connections_open counts the public listener's open connections,
// idle ones too, and falls back as they close: what server.maxConnections
// bounds, so ops can see a refusal coming.
func TestOpsConnectionsOpenGauge(t *testing.T) {
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: StartIdP(t)})
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", strings.TrimPrefix(gw.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	eventually(t, 5*time.Second, func() error {
		if n := opsScrape(t, gw).must(t, "gateway_connections_open", nil); n != 5 {
			return fmt.Errorf("gateway_connections_open = %v with 5 connections open, want 5", n)
		}
		return nil
	})
	for _, c := range conns {
		c.Close()
	}
	eventually(t, 5*time.Second, func() error {
		if n := opsScrape(t, gw).must(t, "gateway_connections_open", nil); n != 0 {
			return fmt.Errorf("gateway_connections_open = %v once every connection closed, want 0", n)
		}
		return nil
	})
}

// Shutdown as Kubernetes does it: SIGTERM, then the gateway reports not
// ready for server.shutdownDelay while still answering, so the load
// balancer moves traffic away; liveness stays 200 until the process is
// gone, so nothing restarts a pod that is only draining; the exit is clean.
func TestOpsDrainingOnSIGTERM(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	const delay = 1500 * time.Millisecond
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp,
		Env: map[string]string{"GATEWAY_SERVER__SHUTDOWNDELAY": delay.String()}})
	user := idp.UserToken(t)
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user)).Data(t, nil)

	sent := time.Now()
	gw.Signal(t, syscall.SIGTERM)
	eventually(t, time.Second, func() error {
		if r := gw.Ops(t, http.MethodGet, "/readyz"); r.Status != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d after SIGTERM", r.Status)
		}
		return nil
	})
	msgs := gw.Ops(t, http.MethodGet, "/readyz").Failure(t, http.StatusServiceUnavailable,
		"Service temporarily unavailable, please try again later")
	if !slices.Contains(msgs, "draining: the gateway is shutting down") {
		t.Fatalf("readyz should say it is draining: %q", msgs)
	}
	// Still serving while the load balancer catches up.
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(user)).Data(t, nil)

	// Liveness answers 200 until the listener is gone; readiness never
	// turns back.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	healthy := 0
	for {
		resp, err := client.Get(gw.OpsURL + "/healthz")
		if err != nil {
			break
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz %d while draining", resp.StatusCode)
		}
		healthy++
		if resp, err := client.Get(gw.OpsURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("readyz turned %d while draining", resp.StatusCode)
			}
		}
		if time.Since(sent) > 20*time.Second {
			t.Fatal("the gateway still answers 20 s after SIGTERM")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if healthy == 0 {
		t.Fatal("healthz never answered after SIGTERM")
	}
	if err := gw.Stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, gw.Logs())
	}
	if took := time.Since(sent); took < delay {
		t.Errorf("the gateway stopped %v after SIGTERM, before its shutdown delay of %v", took, delay)
	}
	if !strings.Contains(gw.Logs(), `"msg":"stopped","drained":true`) {
		t.Errorf("no clean stop line:\n%s", gw.Logs())
	}
}

// ---------------------------------------------------------------------------
// The ops listener's protection

// Bound to every interface, the ops listener asks for a credential on
// everything but the probes: the ops token, or an admin's access token. A
// normal user's token, a wrong token and no token get a 401 envelope.
func TestOpsEndpointsOffLoopbackNeedACredential(t *testing.T) {
	opsToken, invalidationToken := opsSecret(t), opsSecret(t)
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{
		"GATEWAY_OPS__LISTEN":              "0.0.0.0:0",
		"GATEWAY_OPS__TOKEN":               opsToken,
		"GATEWAY_OPS__PPROF":               "true",
		"GATEWAY_CACHE__INVALIDATIONTOKEN": invalidationToken,
	}})
	opsLocal(t, gw)
	user, admin := idp.UserToken(t), idp.AdminToken(t)

	type call struct {
		method, path string
		body         ReqOpt
	}
	protected := []call{
		{http.MethodGet, "/metrics", nil},
		{http.MethodGet, "/ops/v1/breakers", nil},
		{http.MethodGet, "/ops/v1/cache", nil},
		{http.MethodPost, "/ops/v1/cache/purge?all=true", nil},
		{http.MethodPost, "/ops/v1/cache/invalidate", JSONBody(`{"userId":"` + refstore.DemoUserID + `"}`)},
		{http.MethodGet, "/ops/v1/config", nil},
		{http.MethodGet, "/debug/pprof/", nil},
		{http.MethodGet, "/debug/pprof/cmdline", nil},
	}
	do := func(c call, auth ...ReqOpt) *Response {
		opts := slices.Clone(auth)
		if c.body != nil {
			opts = append(opts, c.body)
		}
		return gw.Ops(t, c.method, c.path, opts...)
	}
	for _, c := range protected {
		for name, auth := range map[string][]ReqOpt{
			"no credential":      nil,
			"a wrong token":      {Bearer(opsSecret(t))},
			"a user's token":     {Bearer(user)},
			"the bare ops token": {Bare(opsToken)},
			"an expired admin":   {Bearer(opsExpiredAdmin(t, idp))},
		} {
			r := do(c, auth...)
			r.Failure(t, http.StatusUnauthorized, "Authentication required")
			if got := r.Header.Get("WWW-Authenticate"); got != `Bearer realm="ops"` {
				t.Errorf("%s %s with %s: WWW-Authenticate %q", c.method, c.path, name, got)
			}
		}
		for name, auth := range map[string]ReqOpt{"the ops token": Bearer(opsToken), "an admin's token": Bearer(admin)} {
			if r := do(c, auth); r.Status != http.StatusOK {
				t.Errorf("%s %s with %s: %d %s", c.method, c.path, name, r.Status, r.Body)
			}
		}
	}
	// The user store's invalidation credential opens invalidation only.
	if r := do(protected[4], Bearer(invalidationToken)); r.Status != http.StatusOK {
		t.Errorf("invalidate with the invalidation token: %d %s", r.Status, r.Body)
	}
	do(protected[0], Bearer(invalidationToken)).Failure(t, http.StatusUnauthorized, "Authentication required")
	do(protected[5], Bearer(invalidationToken)).Failure(t, http.StatusUnauthorized, "Authentication required")

	// The probes stay open: the kubelet has no credential.
	gw.Ops(t, http.MethodGet, "/healthz").Data(t, nil)
	gw.Ops(t, http.MethodGet, "/readyz").Data(t, nil)
	gw.Ops(t, http.MethodGet, "/nothing-here").Failure(t, http.StatusNotFound, "Resource not found")
}

// On loopback (the default) only this machine can connect, so the ops
// endpoints need no credential.
func TestOpsEndpointsOnLoopbackAreOpen(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	if !strings.HasPrefix(gw.OpsURL, "http://127.0.0.1:") {
		t.Fatalf("ops listener not on loopback: %s", gw.OpsURL)
	}
	opsScrape(t, gw)
	var breakers struct {
		Breakers []struct {
			Op, State string
		} `json:"breakers"`
	}
	gw.Ops(t, http.MethodGet, "/ops/v1/breakers").Data(t, &breakers)
	if len(breakers.Breakers) != 4 {
		t.Fatalf("breakers: %+v", breakers)
	}
	for _, b := range breakers.Breakers {
		if b.State != "closed" {
			t.Errorf("breaker %s is %s at start", b.Op, b.State)
		}
	}
	var cache map[string]any
	gw.Ops(t, http.MethodGet, "/ops/v1/cache").Data(t, &cache)
	if cache["enabled"] != true || cache["maxEntries"] != 100000.0 {
		t.Fatalf("cache stats: %v", cache)
	}
	ev, _ := cache["evictions"].(map[string]any)
	for _, k := range []string{"capacity", "expired", "purge"} {
		if _, ok := ev[k]; !ok || len(ev) != 3 {
			t.Errorf("cache evictions %v, want exactly capacity, expired and purge", cache["evictions"])
		}
	}
	gw.Ops(t, http.MethodGet, "/ops/v1/config").Data(t, nil)
	gw.Ops(t, http.MethodPost, "/ops/v1/cache/purge?all=true").Data(t, nil)
	gw.Ops(t, http.MethodPost, "/ops/v1/cache/purge").Failure(t, http.StatusBadRequest, "Validation failed")
}

// An ops listener open to the network with no token is a mistake the
// gateway refuses to start with, and says how to fix.
func TestOpsNonLoopbackWithoutTokenRefusesToStart(t *testing.T) {
	idp := StartIdP(t)
	for name, env := range map[string]map[string]string{
		"no token":    {"GATEWAY_OPS__LISTEN": "0.0.0.0:0"},
		"short token": {"GATEWAY_OPS__LISTEN": "0.0.0.0:0", "GATEWAY_OPS__TOKEN": "short"},
	} {
		t.Run(name, func(t *testing.T) {
			o := GatewayOptions{IdP: idp, StoreURL: "http://127.0.0.1:1", Env: env}
			cmd := exec.Command(bins.gateway, "-config", o.configFile(t))
			cmd.Env = os.Environ()
			for k, v := range o.env() {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("the gateway started with an open ops listener and no token:\n%s", stdout.String())
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("exit %v, want a non-zero exit", err)
			}
			msg := stderr.String()
			if !strings.Contains(msg, "ops.token") {
				t.Errorf("the refusal does not name ops.token: %q", msg)
			}
			if name == "no token" && !strings.Contains(msg, "GATEWAY_OPS__TOKEN") {
				t.Errorf("the refusal does not say which variable to set: %q", msg)
			}
			if strings.Contains(stdout.String(), `"msg":"listening"`) {
				t.Errorf("it listened before refusing:\n%s", stdout.String())
			}
		})
	}
}

// /ops/v1/config shows what the process runs with, keyed as config.yaml
// is, with every secret replaced by <redacted> and never its value.
func TestOpsConfigRedactsSecrets(t *testing.T) {
	opsToken, serviceToken, invalidationToken := opsSecret(t), opsSecret(t), opsSecret(t)
	store := StartStore(t, map[string]string{"USERSTORE_SERVICE_TOKEN": serviceToken})
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{
		"GATEWAY_OPS__TOKEN":                         opsToken,
		"GATEWAY_UPSTREAMS__USERSTORE__SERVICETOKEN": serviceToken,
		"GATEWAY_CACHE__INVALIDATIONTOKEN":           invalidationToken,
		"GATEWAY_SERVER__REQUESTTIMEOUT":             "2500ms",
	}})
	// The service token really is in use: the store requires it.
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(idp.UserToken(t))).Data(t, nil)

	r := gw.Ops(t, http.MethodGet, "/ops/v1/config")
	var cfg struct {
		Server struct {
			RequestTimeout string `json:"requestTimeout"`
			Listen         string `json:"listen"`
		} `json:"server"`
		Ops struct {
			Token string `json:"token"`
		} `json:"ops"`
		Cache struct {
			InvalidationToken string `json:"invalidationToken"`
		} `json:"cache"`
		Upstreams struct {
			UserStore struct {
				BaseURL      string `json:"baseURL"`
				ServiceToken string `json:"serviceToken"`
			} `json:"userstore"`
		} `json:"upstreams"`
	}
	r.Data(t, &cfg)
	if cfg.Ops.Token != "<redacted>" || cfg.Cache.InvalidationToken != "<redacted>" || cfg.Upstreams.UserStore.ServiceToken != "<redacted>" {
		t.Errorf("secrets not redacted: %+v", cfg)
	}
	if cfg.Server.RequestTimeout != "2.5s" || cfg.Upstreams.UserStore.BaseURL != store.URL {
		t.Errorf("the config shown is not the running one: %+v", cfg)
	}
	for _, s := range []string{opsToken, serviceToken, invalidationToken} {
		if bytes.Contains(r.Body, []byte(s)) {
			t.Errorf("/ops/v1/config shows a secret's value")
		}
	}
}

// pprof is off unless switched on, even on loopback.
func TestOpsPprofOnlyWhenSwitchedOn(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	off := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
		off.Ops(t, http.MethodGet, p).Failure(t, http.StatusNotFound, "Resource not found")
	}
	on := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{"GATEWAY_OPS__PPROF": "true"}})
	r := on.Ops(t, http.MethodGet, "/debug/pprof/")
	if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte("goroutine")) {
		t.Fatalf("pprof index: %d %.200s", r.Status, r.Body)
	}
	r = on.Ops(t, http.MethodGet, "/debug/pprof/heap?debug=1")
	if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte("heap profile")) {
		t.Fatalf("pprof heap: %d %.200s", r.Status, r.Body)
	}
}

// ---------------------------------------------------------------------------
// Tracing

// With tracing on, a request that arrives with a sampled W3C traceparent
// is traced inside the client's trace: the request, authentication, the
// cache and each user-store call are spans of it, exported over OTLP/HTTP,
// and the user store receives a traceparent of the same trace whose parent
// is the gateway's span of that call.
func TestOpsTracingFollowsTheClientsTrace(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	collector := opsStartCollector(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{
		"GATEWAY_TRACING__ENABLED":  "true",
		"GATEWAY_TRACING__ENDPOINT": collector.addr,
		"GATEWAY_TRACING__INSECURE": "true",
		// Nothing is sampled on the gateway's own say: what is exported
		// is there because the client's traceparent asked for it.
		"GATEWAY_TRACING__SAMPLERATIO": "0",
	}})
	const (
		traceID   = "4bf92f3577b34da6a3ce929d0e0e4736"
		clientSID = "00f067aa0ba902b7"
	)
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(idp.UserToken(t)),
		Header("traceparent", "00-"+traceID+"-"+clientSID+"-01"), Header("X-Request-Id", "ops-traced")).Data(t, nil)
	// The same profile again, now from the cache (the /me fast path): its
	// request span has a cache span too, with HIT.
	const hitSID = "00f067aa0ba902b8"
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(idp.UserToken(t)),
		Header("traceparent", "00-"+traceID+"-"+hitSID+"-01"), Header("X-Request-Id", "ops-traced-hit")).Data(t, nil)
	gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru", Bearer(idp.UserToken(t)),
		Header("X-Request-Id", "ops-untraced")).Data(t, nil)
	// Two traceparents are no traceparent (W3C Trace Context): a new
	// trace starts, here unsampled, whatever either copy says.
	gw.Do(t, http.MethodGet, "/api/v2/users/search?query=ayse", Bearer(idp.UserToken(t)),
		Header("traceparent", "00-"+traceID+"-"+clientSID+"-01"),
		Header("traceparent", "00-"+traceID+"-"+clientSID+"-01"), Header("X-Request-Id", "ops-traced-twice")).Data(t, nil)

	calls := 0
	storeParents := map[string]string{} // store-side parent span id → operation
	for _, rec := range store.Requests(t) {
		tp := rec.Headers["traceparent"]
		switch rec.Headers["X-Request-Id"] {
		case "ops-traced":
			calls++
			parts := strings.Split(tp, "-")
			if len(parts) != 4 || parts[0] != "00" || parts[1] != traceID || parts[3] != "01" {
				t.Fatalf("the store got traceparent %q for a call of the client's trace %s", tp, traceID)
			}
			if parts[2] == clientSID {
				t.Errorf("the store's parent is the client's span, not the gateway's")
			}
			storeParents[parts[2]] = rec.Operation
		case "ops-untraced":
			if !opsTraceparentRE.MatchString(tp) || strings.Contains(tp, traceID) {
				t.Errorf("an unsampled request sent %q", tp)
			}
		case "ops-traced-twice":
			if !opsTraceparentRE.MatchString(tp) || strings.Contains(tp, traceID) || !strings.HasSuffix(tp, "-00") {
				t.Errorf("a request with two traceparents sent the store %q, want a new unsampled trace", tp)
			}
		}
	}
	if calls < 1 {
		t.Fatal("the traced request made no store call")
	}

	// Stopping flushes the exporter's queue.
	if err := gw.Stop(t); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	spans := collector.spans()
	// The second /me's request span and its children, apart.
	var hitRoot *tracepb.Span
	for _, s := range spans {
		if hex.EncodeToString(s.GetParentSpanId()) == hitSID {
			hitRoot = s
		}
	}
	if hitRoot == nil {
		t.Fatal("no request span for the cached /me")
	}
	var hitCache []string
	byID := map[string]*tracepb.Span{}
	names := map[string]*tracepb.Span{}
	for _, s := range spans {
		if hex.EncodeToString(s.GetTraceId()) != traceID {
			t.Errorf("span %q of trace %x was exported, but only the client's trace was sampled", s.GetName(), s.GetTraceId())
			continue
		}
		switch {
		case s == hitRoot:
			continue
		case string(s.GetParentSpanId()) == string(hitRoot.GetSpanId()):
			if s.GetName() == "cache" {
				hitCache = append(hitCache, opsSpanAttr(s, "cache.status"))
			} else if s.GetName() != "authenticate" {
				t.Errorf("the cached /me has a %q span", s.GetName())
			}
			continue
		}
		byID[hex.EncodeToString(s.GetSpanId())] = s
		names[s.GetName()] = s
	}
	if len(hitCache) != 1 || hitCache[0] != "HIT" {
		t.Errorf("the cached /me's cache spans: %q, want one with HIT", hitCache)
	}
	root := names["GET users.me"]
	if root == nil {
		t.Fatalf("no request span; got %v", slices.Collect(mapKeysOf(names)))
	}
	if hex.EncodeToString(root.GetParentSpanId()) != clientSID || root.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("request span: parent %x kind %v, want the client's span %s and SERVER", root.GetParentSpanId(), root.GetKind(), clientSID)
	}
	if got := opsSpanAttr(root, "http.response.status_code"); got != "200" {
		t.Errorf("request span status attribute %q", got)
	}
	rootID := hex.EncodeToString(root.GetSpanId())
	for _, name := range []string{"authenticate", "cache"} {
		s := names[name]
		if s == nil {
			t.Errorf("no %q span; got %v", name, slices.Collect(mapKeysOf(names)))
			continue
		}
		if hex.EncodeToString(s.GetParentSpanId()) != rootID {
			t.Errorf("%q is not a child of the request span", name)
		}
	}
	if got := opsSpanAttr(names["cache"], "cache.status"); got != "MISS" {
		t.Errorf("cache span status %q, want MISS", got)
	}
	call := names["userstore userById"]
	if call == nil {
		t.Fatalf("no user-store span; got %v", slices.Collect(mapKeysOf(names)))
	}
	if call.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("user-store span kind %v", call.GetKind())
	}
	// Each traceparent the store received names one of the gateway's
	// user-store spans as its parent.
	for parent, op := range storeParents {
		s := byID[parent]
		if s == nil || !strings.HasPrefix(s.GetName(), "userstore ") {
			t.Errorf("the store's %s call has parent %s, which is no exported user-store span", op, parent)
		}
	}
}

// With tracing off (the default), the gateway still joins the store to the
// client's trace: a valid traceparent goes on unchanged, and a malformed
// one is replaced by a fresh, valid, unsampled one.
func TestOpsTraceparentWithoutTracing(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	valid := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	invalid := map[string]string{
		"upper-case hex": "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
		"zero trace id":  "00-00000000000000000000000000000000-b7ad6b7169203331-01",
		"wrong length":   "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
		"garbage":        "sukru.isik@example.com",
	}
	sent := map[string]string{"ops-tp-valid": valid}
	gw.Do(t, http.MethodGet, "/api/v2/users/search?query=a", Bearer(idp.UserToken(t)),
		Header("traceparent", valid), Header("X-Request-Id", "ops-tp-valid")).Data(t, nil)
	// Two traceparents, each valid alone, are no traceparent (W3C Trace
	// Context): neither is passed on.
	other := "00-1bf7651916cd43dd8448eb211c80319d-c7ad6b7169203332-01"
	sent["ops-tp-twice"] = valid
	gw.Do(t, http.MethodGet, "/api/v2/users/search?query=c", Bearer(idp.UserToken(t)),
		Header("traceparent", valid), Header("traceparent", other), Header("X-Request-Id", "ops-tp-twice")).Data(t, nil)
	i := 0
	for name, tp := range invalid {
		i++
		id := "ops-tp-invalid-" + strconv.Itoa(i)
		sent[id] = tp
		r := gw.Do(t, http.MethodGet, "/api/v2/users/search?query=b"+strconv.Itoa(i), Bearer(idp.UserToken(t)),
			Header("traceparent", tp), Header("X-Request-Id", id))
		if r.Status != http.StatusOK {
			t.Fatalf("%s traceparent: %d %s", name, r.Status, r.Body)
		}
	}
	seen := 0
	for _, rec := range store.Requests(t) {
		id := rec.Headers["X-Request-Id"]
		in, ok := sent[id]
		if !ok {
			continue
		}
		seen++
		got := rec.Headers["traceparent"]
		if id == "ops-tp-valid" {
			if got != valid {
				t.Errorf("a valid traceparent reached the store as %q", got)
			}
			continue
		}
		if got == in || strings.Contains(got, "0af7651916cd43dd8448eb211c80319c") || strings.Contains(got, "1bf7651916cd43dd8448eb211c80319d") ||
			!opsTraceparentRE.MatchString(got) || !strings.HasSuffix(got, "-00") {
			t.Errorf("traceparent %q reached the store as %q, want a fresh unsampled one", in, got)
		}
	}
	if seen < len(sent) {
		t.Fatalf("the store saw %d of the %d requests", seen, len(sent))
	}
}

var opsTraceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

func opsSpanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() != key {
			continue
		}
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			return v.StringValue
		case *commonpb.AnyValue_IntValue:
			return strconv.FormatInt(v.IntValue, 10)
		}
	}
	return ""
}

func mapKeysOf[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// opsCollector is an OTLP/HTTP trace receiver.
type opsCollector struct {
	addr string
	mu   sync.Mutex
	got  []*tracepb.Span
}

func opsStartCollector(t *testing.T) *opsCollector {
	c := &opsCollector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			t.Errorf("collector: not an OTLP export (%s): %v", r.Header.Get("Content-Type"), err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				c.got = append(c.got, ss.GetSpans()...)
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	c.addr = strings.TrimPrefix(srv.URL, "http://")
	return c
}

func (c *opsCollector) spans() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// ---------------------------------------------------------------------------
// Helpers

// opsExposition is one scrape of /metrics, parsed.
type opsExposition struct {
	text string
	fams map[string]*dto.MetricFamily
}

type opsLabels map[string]string

func opsScrape(t testing.TB, gw *Gateway, opts ...ReqOpt) opsExposition {
	t.Helper()
	r := gw.Ops(t, http.MethodGet, "/metrics", opts...)
	if r.Status != http.StatusOK {
		t.Fatalf("/metrics: %d %s", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return opsExposition{text: string(r.Body), fams: fams}
}

// value sums the series of a family whose labels include want; a
// histogram gives its observation count. ok is false when no series
// matched.
func (e opsExposition) value(name string, want opsLabels) (v float64, ok bool) {
	fam := e.fams[name]
	for _, s := range fam.GetMetric() {
		have := map[string]string{}
		for _, lp := range s.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, w := range want {
			if have[k] != w {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		ok = true
		switch {
		case s.Counter != nil:
			v += s.GetCounter().GetValue()
		case s.Gauge != nil:
			v += s.GetGauge().GetValue()
		case s.Histogram != nil:
			v += float64(s.GetHistogram().GetSampleCount())
		case s.Untyped != nil:
			v += s.GetUntyped().GetValue()
		}
	}
	return v, ok
}

func (e opsExposition) must(t testing.TB, name string, want opsLabels) float64 {
	t.Helper()
	v, ok := e.value(name, want)
	if !ok {
		t.Fatalf("no series %s%v in the exposition", name, want)
	}
	return v
}

func (e opsExposition) expect(t testing.TB, name string, want opsLabels, value float64) {
	t.Helper()
	if v, ok := e.value(name, want); !ok || v != value {
		t.Errorf("%s%v = %v (present %v), want %v", name, want, v, ok, value)
	}
}

// histogramSum is the sum of observations over every series of a histogram.
func (e opsExposition) histogramSum(name string) float64 {
	var v float64
	for _, s := range e.fams[name].GetMetric() {
		v += s.GetHistogram().GetSampleSum()
	}
	return v
}

func (e opsExposition) sum(name string) float64 {
	v, _ := e.value(name, nil)
	return v
}

// opsDo sends a request without the harness's Gateway.Do, which is not
// safe to use while another goroutine calls Gateway.Ops. It reports
// failures with Errorf (it runs off the test goroutine) and returns nil.
func opsDo(t testing.TB, client *http.Client, method, url string, opts ...ReqOpt) *Response {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return nil
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s: reading body: %v", method, url, err)
		return nil
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// opsGate is a reverse proxy in front of the store that can hold requests.
type opsGate struct {
	URL  string
	held atomic.Pointer[chan struct{}]
}

func opsStartGate(t *testing.T, target string) *opsGate {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &opsGate{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ch := g.held.Load(); ch != nil {
			select {
			case <-*ch:
			case <-time.After(10 * time.Second):
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// hold makes requests wait until release is called (once or more).
func (g *opsGate) hold() (release func()) {
	ch := make(chan struct{})
	g.held.Store(&ch)
	return sync.OnceFunc(func() {
		g.held.Store(nil)
		close(ch)
	})
}

// opsLocal points the test at the ops listener through loopback when it is
// bound to every interface.
func opsLocal(t *testing.T, gw *Gateway) {
	t.Helper()
	u, err := url.Parse(gw.OpsURL)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsUnspecified() {
		t.Fatalf("ops listener %s is not bound to every interface", gw.OpsURL)
	}
	gw.OpsURL = "http://127.0.0.1:" + u.Port()
}

func opsSecret(t testing.TB) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// opsRefusedAddr is a loopback address nothing listens on.
func opsRefusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// opsForeignToken is a well-formed token from an identity provider the
// gateway does not trust.
func opsForeignToken(t *testing.T) string {
	p, err := devidp.New(devidp.Options{Issuer: "https://idp.elsewhere.example", Audience: "edge-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.Mint(devidp.MintClaims{Subject: refstore.DemoUserID, Roles: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func opsExpiredAdmin(t *testing.T, idp *IdP) string {
	tok, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoAdminID, Roles: []string{"user", "admin"},
		IssuedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A store outage fails every request that needs it. The event log must not
// turn into one WARN line per request: each operation and outcome logs at
// most five "upstream failure" lines a second, and the lines left out are
// counted, in the next line logged or, when none follows within the
// second, in an "upstream failure lines suppressed" line. So every failure
// is logged or counted, also when the failures stop. The access log still
// has every request.
func TestOpsUpstreamFailureLinesAreBounded(t *testing.T) {
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{StoreURL: "http://" + opsRefusedAddr(t), IdP: idp,
		Env: map[string]string{"GATEWAY_CACHE__ENABLED": "false"}})
	user := idp.UserToken(t)
	const requests = 60
	start := time.Now()
	for range requests {
		if r := gw.Do(t, http.MethodGet, "/api/v2/users/search?query=ali", Bearer(user)); r.Status < 500 {
			t.Fatalf("search against a dead store: %d %s", r.Status, r.Body)
		}
	}
	// The budget is per calendar second (the sampler's window is the Unix
	// second), so 60 requests in 0.5 s that cross a second's boundary may
	// log two seconds' worth: count the seconds they touched.
	seconds := int(time.Now().Unix()-start.Unix()) + 1
	// No failure follows: the count of those left out is logged on its own
	// once their second is over.
	var perKind map[string]int
	var logged, suppressed int
	eventually(t, 10*time.Second, func() error {
		perKind = map[string]int{}
		logged, suppressed = 0, 0
		for _, l := range gw.LogLines() {
			switch l["msg"] {
			case "upstream failure":
				perKind[fmt.Sprint(l["op"], " ", l["error"])]++
				logged++
				if n, ok := l["suppressed"].(float64); ok {
					suppressed += int(n)
				}
			case "upstream failure lines suppressed":
				if l["op"] != "search" || l["outcome"] == "" {
					return fmt.Errorf("a count without its operation and outcome: %v", l)
				}
				if n, ok := l["suppressed"].(float64); ok {
					suppressed += int(n)
				}
			}
		}
		if logged+suppressed != requests {
			return fmt.Errorf("%d failure lines logged and %d counted as left out, for %d failed searches", logged, suppressed, requests)
		}
		return nil
	})
	if err := gw.Stop(t); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	// Counted once the gateway has stopped: the access log is written in
	// batches (accesslog.go), so a search's line may still be pending when
	// the count of its failure is logged at the end of its second.
	accessLines := 0
	for _, l := range gw.LogLines() {
		if l["msg"] == "request" && l["route"] == "users.search" {
			accessLines++
		}
	}
	if accessLines != requests {
		t.Errorf("%d access lines for %d searches", accessLines, requests)
	}
	for kind, n := range perKind {
		// The error text holds the outcome, so each kind is one budget.
		if n > 5*seconds {
			t.Errorf("%d lines of %q in %d s", n, kind, seconds)
		}
	}
	if suppressed == 0 {
		t.Errorf("no line was left out of %d failures in %d s", requests, seconds)
	}
}
