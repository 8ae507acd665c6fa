package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
)

// Rate limits seen by the apps: per verified user, per device, per client
// IP (behind trusted proxies or not), and the failed-authentication budget
// that stops anonymous floods before any signature is checked.

// polSlowRate refills one token in 1000 s: within a test a bucket only
// ever empties.
const polSlowRate = 0.001

// polLimitEnv sets the limit of kind (perIP, authFailures, perUser,
// perDevice) of every platform through the environment, over the
// harness's raised values: in "all", and in "admin", which sets its own.
func polLimitEnv(env map[string]string, kind string, rate float64, burst int) map[string]string {
	if env == nil {
		env = map[string]string{}
	}
	for _, policy := range []string{"ALL", "ADMIN"} {
		prefix := "GATEWAY_POLICIES__" + policy + "__RATELIMITS__" + strings.ToUpper(kind)
		env[prefix+"__RATE"] = strconv.FormatFloat(rate, 'g', -1, 64)
		env[prefix+"__BURST"] = strconv.Itoa(burst)
	}
	return env
}

// polTooMany checks a 429 envelope in lang with its rate-limit headers:
// RateLimit-Limit is the burst, nothing remains, and Retry-After and
// RateLimit-Reset are whole seconds within what the slow refill implies.
func polTooMany(t testing.TB, r *Response, lang string, burst int) {
	t.Helper()
	msg := map[string]string{
		"en": "Too many requests, please try again later",
		"tr": "Çok fazla istek gönderildi, lütfen daha sonra tekrar deneyin",
	}[lang]
	if msgs := r.Failure(t, http.StatusTooManyRequests, msg); len(msgs) != 1 {
		t.Fatalf("errors %q", msgs)
	}
	seconds := func(name string) int {
		v, err := strconv.Atoi(r.Header.Get(name))
		if err != nil {
			t.Fatalf("%s %q is not whole seconds", name, r.Header.Get(name))
		}
		return v
	}
	if got := r.Header.Get("RateLimit-Limit"); got != strconv.Itoa(burst) {
		t.Fatalf("RateLimit-Limit %q, want %d", got, burst)
	}
	if got := r.Header.Get("RateLimit-Remaining"); got != "0" {
		t.Fatalf("RateLimit-Remaining %q, want 0", got)
	}
	// One token at 0.001/s: just under 1000 s. A full bucket: burst times
	// that.
	if ra := seconds("Retry-After"); ra < 900 || ra > 1000 {
		t.Fatalf("Retry-After %d s, want about 1000", ra)
	}
	if reset := seconds("RateLimit-Reset"); reset < (burst-1)*1000 || reset > burst*1000 {
		t.Fatalf("RateLimit-Reset %d s, want about %d", reset, burst*1000)
	}
}

// polRateLimited reads gateway_rate_limited_total for a policy and kind.
func polRateLimited(t testing.TB, gw *Gateway, policy, kind string) float64 {
	t.Helper()
	return polMetric(t, gw, fmt.Sprintf(`gateway_rate_limited_total{kind=%q,policy=%q}`, kind, policy))
}

// polSend sends one request from a goroutine that may not call t.Fatal:
// the status, headers and body, or the error.
func polSend(client *http.Client, method, url string, header http.Header) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header = header
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

// A user who checks names too fast is refused with 429 in their language,
// before the user store hears of it; another user is not affected, and
// switching X-Platform buys no fresh budget.
func TestRateLimitPerUser(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: polLimitEnv(nil, "perUser", polSlowRate, 3)})
	alice, bob := idp.UserToken(t), idp.Token(t, "bob-0001", "user")
	check := polRoutes[0]

	store.Reset(t)
	for range 3 {
		check.call(t, gw, Bearer(alice)).Data(t, nil)
	}
	polTooMany(t, check.call(t, gw, Bearer(alice), Lang("en")), "en", 3)
	polTooMany(t, check.call(t, gw, Bearer(alice), Lang("tr")), "tr", 3)
	// Every platform alice may call shares her one budget (api is left
	// out: config.yaml gives it a limit of its own, applied to the same
	// bucket).
	for _, p := range []string{"mobile_ios", "mobile_android", "unknown", "web"} {
		polTooMany(t, check.call(t, gw, Bearer(alice), Platform(p)), "en", 3)
	}
	polTooMany(t, polRoutes[1].call(t, gw, Bearer(alice)), "en", 3)
	if got := store.Counts(t)[refstore.OpUsernameCheck]; got != 3 {
		t.Fatalf("the store checked %d names, want the 3 allowed", got)
	}

	check.call(t, gw, Bearer(bob)).Data(t, nil)
	if got := polRateLimited(t, gw, "web", "perUser"); got != 4 {
		t.Fatalf("rate_limited_total{web,perUser} = %g, want 4", got)
	}
}

// A device that sends too much is limited by its X-Device-Id, whoever is
// signed in on it and whatever platform it claims; other devices, and
// requests without a device id, are not.
func TestRateLimitPerDevice(t *testing.T) {
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, Env: polLimitEnv(nil, "perDevice", polSlowRate, 2)})
	alice, bob := idp.UserToken(t), idp.Token(t, "bob-0002", "user")
	search := polRoutes[1]
	device := func(id string) ReqOpt { return Header("X-Device-Id", id) }

	for range 2 {
		search.call(t, gw, Bearer(alice), Platform("mobile_ios"), device("ios-device-A")).Data(t, nil)
	}
	polTooMany(t, search.call(t, gw, Bearer(alice), Platform("mobile_ios"), device("ios-device-A"), Lang("tr")), "tr", 2)
	polTooMany(t, search.call(t, gw, Bearer(bob), Platform("mobile_ios"), device("ios-device-A")), "en", 2)
	polTooMany(t, search.call(t, gw, Bearer(alice), Platform("mobile_android"), device("ios-device-A")), "en", 2)

	search.call(t, gw, Bearer(alice), Platform("mobile_ios"), device("ios-device-B")).Data(t, nil)
	search.call(t, gw, Bearer(alice), Platform("mobile_ios")).Data(t, nil)
	if got := polRateLimited(t, gw, "mobile_ios", "perDevice") + polRateLimited(t, gw, "mobile_android", "perDevice"); got != 3 {
		t.Fatalf("rate_limited_total{perDevice} = %g, want 3", got)
	}
}

// The per-IP limit applies to every request before authentication: a
// client over it gets 429 even without a token, on every platform.
func TestRateLimitPerIP(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: polLimitEnv(nil, "perIP", polSlowRate, 4)})
	alice := idp.UserToken(t)

	for range 4 {
		polRoutes[1].call(t, gw, Bearer(alice)).Data(t, nil)
	}
	store.Reset(t)
	polTooMany(t, polRoutes[1].call(t, gw, Bearer(alice)), "en", 4)
	polTooMany(t, polRoutes[2].call(t, gw, Lang("tr")), "tr", 4)
	polTooMany(t, polRoutes[0].call(t, gw, Bearer(alice), Platform("api")), "en", 4)
	polTooMany(t, polRoutes[3].call(t, gw, Bearer(alice), Platform("admin")), "en", 4)
	if n := store.Total(t); n != 0 {
		t.Fatalf("refused requests reached the store: %v", store.Counts(t))
	}
	if got := polRateLimited(t, gw, "web", "perIP"); got != 2 {
		t.Fatalf("rate_limited_total{web,perIP} = %g, want 2", got)
	}
}

// The per-IP limit charges every request whose headers were read, on an
// API route or not: unknown paths, methods a path does not take, unknown
// methods, preflights, bodies over the limit and requests without Host
// spend the same budget as
// API calls, and once it is spent they are refused with 429 too, in the
// caller's language, before anything else is done. Another client IP
// keeps its own budget.
func TestRateLimitPerIPCoversUnroutedRequests(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: polLimitEnv(nil, "perIP", polSlowRate, 5)})
	alice := idp.UserToken(t)
	preflight := []ReqOpt{Header("Origin", polWebOrigin), Header("Access-Control-Request-Method", "GET")}

	oversized := []ReqOpt{JSONBody(`{"username":"` + strings.Repeat("a", 20<<10) + `"}`)}
	for _, c := range []struct {
		method, path string
		opts         []ReqOpt
		want         int
	}{
		{"GET", "/no-such-path", nil, http.StatusNotFound},
		{"DELETE", "/api/v1/users/me", nil, http.StatusMethodNotAllowed},
		{"PROPFIND", "/api/v1/users/me", nil, http.StatusMethodNotAllowed},
		{"OPTIONS", "/api/v1/users/me", preflight, http.StatusNoContent},
		{"POST", "/api/v1/users/check-username", oversized, http.StatusRequestEntityTooLarge},
	} {
		if r := gw.Do(t, c.method, c.path, c.opts...); r.Status != c.want {
			t.Fatalf("%s %s: status %d, want %d", c.method, c.path, r.Status, c.want)
		}
	}
	store.Reset(t)
	polTooMany(t, polRoutes[2].call(t, gw, Bearer(alice)), "en", 5)
	polTooMany(t, gw.Do(t, "GET", "/no-such-path", Lang("tr")), "tr", 5)
	polTooMany(t, gw.Do(t, "DELETE", "/api/v1/users/me"), "en", 5)
	polTooMany(t, gw.Do(t, "PROPFIND", "/api/v1/users/me", Lang("tr")), "tr", 5)
	polTooMany(t, gw.Do(t, "OPTIONS", "/api/v1/users/me", preflight...), "en", 5)
	polTooMany(t, gw.KeepAlive(t).Send(t, "GET /api/v1/users/me HTTP/1.1\r\nX-Language: tr\r\n\r\n"), "tr", 5)
	// A body over the limit is refused by fasthttp before any handler,
	// but its headers were read: it is charged and limited all the same.
	polTooMany(t, gw.Do(t, "POST", "/api/v1/users/check-username", append(oversized, Lang("tr"))...), "tr", 5)
	if n := store.Total(t); n != 0 {
		t.Fatalf("refused requests reached the store: %v", store.Counts(t))
	}
	if got := polRateLimited(t, gw, "web", "perIP"); got != 7 {
		t.Fatalf("rate_limited_total{web,perIP} = %g, want 7", got)
	}

	other := gw.KeepAliveFrom(t, "127.0.0.2")
	if r := other.Send(t, "GET /no-such-path HTTP/1.1\r\nHost: gateway\r\n\r\n"); r.Status != http.StatusNotFound {
		t.Fatalf("another client IP: status %d, want 404", r.Status)
	}
}

// Many clients of one user at once: the bucket never lets more than its
// burst through, however the requests interleave.
func TestRateLimitConcurrentClientsNeverGetMoreThanBurst(t *testing.T) {
	const burst, clients, each = 10, 8, 10
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, Env: polLimitEnv(nil, "perUser", polSlowRate, burst)})
	alice := idp.UserToken(t)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()

	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		errs     []error
		wg       sync.WaitGroup
		start    = make(chan struct{})
	)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range each {
				h := http.Header{"Authorization": {"Bearer " + alice}, "X-Platform": {"mobile_android"}}
				status, _, body, err := polSend(client, http.MethodGet, fmt.Sprintf("%s/api/v2/users/search?query=c%di%d", gw.URL, c, i), h)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					statuses[status]++
					if status == http.StatusTooManyRequests && !strings.Contains(string(body), `"statusCode":429`) {
						errs = append(errs, fmt.Errorf("429 without its envelope: %s", body))
					}
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %v", len(errs), errs[0])
	}
	if statuses[http.StatusOK] != burst || statuses[http.StatusTooManyRequests] != clients*each-burst || len(statuses) != 2 {
		t.Fatalf("statuses %v, want %d × 200 and %d × 429", statuses, burst, clients*each-burst)
	}
}

// An anonymous flood of bad tokens spends the IP's failed-authentication
// budget; after that every request from the IP, even with a valid token,
// is refused before the token is looked at: no token-cache look-up, no
// signature check, no key fetch for an unknown kid, no user-store call.
func TestRateLimitAuthFailureFloodStopsBeforeVerification(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: polLimitEnv(nil, "authFailures", polSlowRate, 5)})
	valid := idp.UserToken(t)
	foreign, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID, Roles: []string{"user", "admin"}},
		devidp.WithAlgorithm(devidp.ES256), devidp.WithSigningKey(foreign))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID, IssuedAt: time.Now().Add(-2 * time.Hour),
		ExpiresAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	unknownKID := func(i int) string {
		tok, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID}, devidp.WithKeyID(fmt.Sprintf("rotated-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	// Five failures of every kind: each one a plain 401.
	for _, opts := range [][]ReqOpt{{Bearer(forged)}, {Bearer(expired)}, {Bare("not.a.jwt")}, {}, {Bearer(unknownKID(0))}} {
		polRoutes[2].call(t, gw, opts...).Failure(t, http.StatusUnauthorized, "Authentication required")
	}

	lookups := func() float64 {
		return polMetric(t, gw, `gateway_token_cache_lookups_total{result="hit"}`) +
			polMetric(t, gw, `gateway_token_cache_lookups_total{result="miss"}`)
	}
	fetches := func() float64 {
		return polMetric(t, gw, `gateway_jwks_fetches_total{result="ok"}`) +
			polMetric(t, gw, `gateway_jwks_fetches_total{result="error"}`)
	}
	eventually(t, 3*time.Second, func() error { // the unknown kid's refresh is asynchronous to the 401
		before := fetches()
		time.Sleep(100 * time.Millisecond)
		if after := fetches(); after != before {
			return fmt.Errorf("JWKS fetches still moving: %g -> %g", before, after)
		}
		return nil
	})
	lookupsBefore, fetchesBefore := lookups(), fetches()
	store.Reset(t)

	polTooMany(t, polRoutes[2].call(t, gw, Bearer(forged)), "en", 5)
	polTooMany(t, polRoutes[2].call(t, gw, Bearer(valid), Lang("tr")), "tr", 5)
	polTooMany(t, polRoutes[1].call(t, gw, Bearer(valid), Platform("mobile_ios")), "en", 5)
	for i := 1; i <= 20; i++ {
		polTooMany(t, polRoutes[1].call(t, gw, Bearer(unknownKID(i))), "en", 5)
	}

	if got := lookups(); got != lookupsBefore {
		t.Fatalf("token cache look-ups %g -> %g: tokens were examined after the budget was spent", lookupsBefore, got)
	}
	if got := fetches(); got != fetchesBefore {
		t.Fatalf("JWKS fetches %g -> %g: unknown kids triggered key fetches after the budget was spent", fetchesBefore, got)
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("the store was called: %v", store.Counts(t))
	}
	if got := polRateLimited(t, gw, "web", "authFailures"); got != 22 {
		t.Fatalf("rate_limited_total{web,authFailures} = %g, want 22", got)
	}
}

// Behind a trusted proxy, the client is the address the proxy appended to
// X-Forwarded-For, and each client has its own per-IP budget; what the
// client wrote further left is never believed.
func TestRateLimitTrustedProxyKeysByForwardedClient(t *testing.T) {
	idp := StartIdP(t)
	env := polLimitEnv(map[string]string{"GATEWAY_SERVER__TRUSTEDPROXIES": "127.0.0.1/32"}, "perIP", polSlowRate, 3)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, Env: env})
	alice := idp.UserToken(t)
	xff := func(v string) ReqOpt { return Header("X-Forwarded-For", v) }
	search := polRoutes[1]

	for range 3 {
		search.call(t, gw, Bearer(alice), xff("203.0.113.7")).Data(t, nil)
	}
	polTooMany(t, search.call(t, gw, Bearer(alice), xff("203.0.113.7")), "en", 3)
	// Rotating the client-written part changes nothing: the proxy's entry
	// (the rightmost untrusted one) is the client.
	for i := range 5 {
		polTooMany(t, search.call(t, gw, Bearer(alice), xff(fmt.Sprintf("198.51.100.%d, 203.0.113.7", i+1))), "en", 3)
	}
	polTooMany(t, search.call(t, gw, Bearer(alice), xff("203.0.113.7, 127.0.0.1")), "en", 3)
	polTooMany(t, search.call(t, gw, Bearer(alice), xff("10.9.9.9"), xff("203.0.113.7")), "en", 3)

	// Other clients behind the same proxy keep their own budgets.
	search.call(t, gw, Bearer(alice), xff("203.0.113.8")).Data(t, nil)
	search.call(t, gw, Bearer(alice), xff("2001:db8:7::1")).Data(t, nil)
	search.call(t, gw, Bearer(alice)).Data(t, nil) // the proxy itself
}

// Without trusted proxies X-Forwarded-For is whatever the client wrote: a
// client rotating it stays one client.
func TestRateLimitUntrustedForwardedForDoesNotEscape(t *testing.T) {
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, Env: polLimitEnv(nil, "perIP", polSlowRate, 3)})
	alice := idp.UserToken(t)
	for i := range 3 {
		polRoutes[1].call(t, gw, Bearer(alice), Header("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1))).Data(t, nil)
	}
	for i := range 5 {
		r := polRoutes[1].call(t, gw, Bearer(alice), Header("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1)),
			Header("X-Real-Ip", fmt.Sprintf("198.51.100.%d", i+1)), Header("Forwarded", fmt.Sprintf("for=198.51.100.%d", i+1)))
		polTooMany(t, r, "en", 3)
	}
}

// The shipped config.yaml writes the apps' limits out in "all"; the admin
// platform keeps its stricter ones (it inherited the apps' before): the
// sixth failed authentication from one address is refused.
func TestRateLimitAdminStricterWithTheShippedConfig(t *testing.T) {
	idp := StartIdP(t)
	env := map[string]string{} // blank the harness's raised limits
	for _, policy := range []string{"ALL", "ADMIN"} {
		for _, k := range []string{"PERIP", "PERUSER", "PERDEVICE", "AUTHFAILURES"} {
			env["GATEWAY_POLICIES__"+policy+"__RATELIMITS__"+k+"__RATE"] = ""
			env["GATEWAY_POLICIES__"+policy+"__RATELIMITS__"+k+"__BURST"] = ""
		}
	}
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp, Env: env})
	for i := range 5 {
		if r := gw.Do(t, http.MethodGet, "/api/admin/v1/users/search?query=a", Bare("not.a.jwt"), Platform("admin")); r.Status != http.StatusUnauthorized {
			t.Fatalf("failed authentication %d: %d, want 401", i+1, r.Status)
		}
	}
	r := gw.Do(t, http.MethodGet, "/api/admin/v1/users/search?query=a", Bare("not.a.jwt"), Platform("admin"))
	r.Failure(t, http.StatusTooManyRequests, "Too many requests, please try again later")
	if got := r.Header.Get("RateLimit-Limit"); got != "5" {
		t.Fatalf("RateLimit-Limit %q, want the admin platform's burst 5", got)
	}
}

// Failed authentications that were in flight together are charged: the
// budget bounds the failures, not only the check made before them.
// Unknown-kid tokens all wait for the one key refresh they set off, which
// the identity provider holds here; six of them pass the check at once
// against a budget of two, and the IP then owes what it overspent, up to
// one burst.
func TestRateLimitAuthFailuresInFlightTogetherAreAllCharged(t *testing.T) {
	idp := StartIdP(t)
	var hold atomic.Bool
	release := make(chan struct{})
	provider := idp.Handler()
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		provider.ServeHTTP(w, r)
	}))
	defer jwks.Close()
	var released sync.Once
	releaseKeys := func() { released.Do(func() { close(release) }) }
	defer releaseKeys() // before jwks.Close, which waits for held fetches

	// Nothing but the held refresh ends the wait.
	env := polLimitEnv(map[string]string{
		"GATEWAY_AUTH__JWKS__UNKNOWNKIDWAIT": "60s",
		"GATEWAY_AUTH__JWKS__FETCHTIMEOUT":   "60s",
		"GATEWAY_SERVER__REQUESTTIMEOUT":     "60s",
	}, "authFailures", polSlowRate, 2)
	gw := StartGateway(t, GatewayOptions{Store: SharedStore(t), IdP: idp,
		JWKSURL: jwks.URL + "/.well-known/jwks.json", Env: env})
	hold.Store(true)

	const n = 6
	client := &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	type result struct {
		status int
		err    error
	}
	results := make(chan result, n)
	for i := range n {
		tok, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID}, devidp.WithKeyID(fmt.Sprintf("rotated-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			status, _, _, err := polSend(client, http.MethodGet, gw.URL+"/api/v1/users/me", http.Header{"Authorization": {"Bearer " + tok}})
			results <- result{status, err}
		}()
	}
	eventually(t, 30*time.Second, func() error {
		if got := polMetric(t, gw, "gateway_requests_in_flight"); got != n {
			return fmt.Errorf("%g requests in flight, want the %d waiting for the key refresh", got, n)
		}
		return nil
	})
	releaseKeys()
	for range n {
		r := <-results
		if r.err != nil || r.status != http.StatusUnauthorized {
			t.Fatalf("an unknown kid: %d %v, want 401", r.status, r.err)
		}
	}

	// Six failures against a budget of two: two tokens owed, the most a
	// burst of two may owe (without charging them, 1000 and 2000), so the
	// next token is three refills (3000 s at 0.001/s) away, a full bucket
	// four.
	r := polRoutes[2].call(t, gw, Bearer(idp.UserToken(t)))
	r.Failure(t, http.StatusTooManyRequests, "Too many requests, please try again later")
	for name, want := range map[string]int{"Retry-After": 3000, "RateLimit-Reset": 4000} {
		got, err := strconv.Atoi(r.Header.Get(name))
		if err != nil || got < want-100 || got > want {
			t.Errorf("%s %q, want about %d s: the failures beyond the budget were not charged", name, r.Header.Get(name), want)
		}
	}
}

// While the identity provider's keys are not loaded, a valid token is
// answered 503, and that is no failed authentication: it spends nothing
// of the IP's authFailures budget, so the same app is let in the moment
// the keys arrive.
func TestRateLimitUnavailableKeysAreNoAuthFailures(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	idp.SetJWKSMode(devidp.JWKSStatus(http.StatusServiceUnavailable))
	env := polLimitEnv(map[string]string{"GATEWAY_AUTH__JWKS__RETRYINTERVAL": "100ms"}, "authFailures", polSlowRate, 2)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, NoReadyWait: true, Env: env})
	tok := idp.UserToken(t)
	for i := 0; i < 4; i++ {
		polRoutes[2].call(t, gw, Bearer(tok)).Failure(t, http.StatusServiceUnavailable,
			"Authentication is temporarily unavailable, please try again later")
	}
	idp.SetJWKSMode(devidp.JWKSNormal)
	gw.AwaitReady(t)
	polRoutes[2].call(t, gw, Bearer(tok)).Data(t, nil)
	if got := polRateLimited(t, gw, "web", "authFailures"); got != 0 {
		t.Fatalf("rate_limited_total{web,authFailures} = %g, want 0", got)
	}
}
