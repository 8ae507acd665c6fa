package e2e

// The caching suite (issue 5): the read cache and the verified-token cache
// seen from the apps' side. Every test runs the real gateway binary in
// front of a reference user store running in this process, so that it can
// count what reached the store (its recorder) and change data behind the
// gateway's back (Rename), which the store's HTTP surface does not offer.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/faultproxy"
	"github.com/bffgate/edge/upstream/refstore"
)

// ---------------------------------------------------------------------------
// Helpers of this file (prefix cch).

// cchStore is a reference user store served from this process with request
// recording on.
type cchStore struct {
	*refstore.Store
	rec *refstore.Recorder
	URL string
}

func cchStartStore(t *testing.T) *cchStore {
	t.Helper()
	st, err := refstore.Open(context.Background(), refstore.Options{Users: 300})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := st.Handler(refstore.HandlerOptions{Record: true, RecordLimit: 100000})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &cchStore{Store: st, rec: h.Recorder(), URL: srv.URL}
}

// calls is how many calls of op reached the store since the start.
func (s *cchStore) calls(op string) int64 { return s.rec.Counts()[op] }

// otherUser picks a seeded user who is not the demo user and shares no
// search word with them, so that a search for one never lists the other.
func (s *cchStore) otherUser(t *testing.T) contract.User {
	t.Helper()
	res, err := s.Search(context.Background(), "a", 50, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range res.Items {
		names := contract.Fold(u.Username + " " + u.FirstName + " " + u.LastName)
		if u.ID != refstore.DemoUserID && !strings.Contains(names, "sukru") && !strings.Contains(names, "isik") {
			return u
		}
	}
	t.Fatal("no second user found by searching the store")
	return contract.User{}
}

// cchProxy puts a fault proxy between the gateway and the store.
func cchProxy(t *testing.T, st *cchStore) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(st.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func cchMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// cchGateway runs the gateway binary against the store (or storeURL).
func cchGateway(t *testing.T, storeURL string, idp *IdP, env map[string]string) *Gateway {
	t.Helper()
	return StartGateway(t, GatewayOptions{StoreURL: storeURL, IdP: idp, Env: env})
}

// cchSend is Gateway.Do for goroutines: it reports failures as errors.
func cchSend(gw *Gateway, base, method, path string, opts ...ReqOpt) (*Response, error) {
	return sendWith(gw.client, method, base+path, opts...)
}

// cchOps sends a request to the ops listener. An ops listener bound to
// 0.0.0.0 is reached through loopback.
func cchOps(t *testing.T, gw *Gateway, method, path string, opts ...ReqOpt) *Response {
	t.Helper()
	base := strings.Replace(gw.OpsURL, "//0.0.0.0:", "//127.0.0.1:", 1)
	r, err := cchSend(gw, base, method, path, opts...)
	if err != nil {
		t.Fatalf("ops %s %s: %v", method, path, err)
	}
	return r
}

// cchRawHeader sends a header under exactly the given name (Go would
// otherwise canonicalise it).
func cchRawHeader(name, value string) ReqOpt {
	return func(r *http.Request) { r.Header[name] = append(r.Header[name], value) }
}

// cchXCache checks the X-Cache header of a 200 answer.
func cchXCache(t *testing.T, r *Response, want string) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, want 200 (X-Cache %s): %s", r.Status, want, r.Body)
	}
	if got := r.Header.Get("X-Cache"); got != want {
		t.Fatalf("X-Cache %q, want %q", got, want)
	}
}

// cchUser is what the tests read of a shaped user.
type cchUser struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	FirstName   string `json:"firstName"`
	MinutePrice *struct {
		AmountMinor int64  `json:"amountMinor"`
		Display     string `json:"display"`
	} `json:"minutePrice"`
	LiveStream json.RawMessage `json:"liveStream"`
}

type cchPage struct {
	Items []cchUser `json:"items"`
	Page  int       `json:"page"`
	Limit int       `json:"limit"`
	Total int       `json:"total"`
}

func (p cchPage) find(id string) *cchUser {
	for i := range p.Items {
		if p.Items[i].ID == id {
			return &p.Items[i]
		}
	}
	return nil
}

func cchPageOf(t *testing.T, r *Response) cchPage {
	t.Helper()
	var p cchPage
	r.Data(t, &p)
	return p
}

func cchMeOf(t *testing.T, r *Response) cchUser {
	t.Helper()
	var u cchUser
	r.Data(t, &u)
	return u
}

// cchMetric reads one series of the ops listener's /metrics (0 when it is
// not exposed).
func cchMetric(t *testing.T, gw *Gateway, series string) float64 {
	t.Helper()
	r := cchOps(t, gw, http.MethodGet, "/metrics")
	if r.Status != http.StatusOK {
		t.Fatalf("metrics: %d %s", r.Status, r.Body)
	}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// cchStats is the ops view of the read cache.
type cchStats struct {
	Entries    int `json:"entries"`
	MaxEntries int `json:"maxEntries"`
	Loads      int `json:"loads"`
	Evictions  struct {
		Capacity int `json:"capacity"`
		Expired  int `json:"expired"`
		Purge    int `json:"purge"`
	} `json:"evictions"`
}

func cchCacheStats(t *testing.T, gw *Gateway, opts ...ReqOpt) cchStats {
	t.Helper()
	var s cchStats
	cchOps(t, gw, http.MethodGet, "/ops/v1/cache", opts...).Data(t, &s)
	return s
}

// cchPurged checks an ops purge answer: 200 and exactly n entries purged.
func cchPurged(t *testing.T, r *Response, n int) {
	t.Helper()
	var out struct {
		Purged *int `json:"purged"`
	}
	r.Data(t, &out)
	if out.Purged == nil || *out.Purged != n {
		t.Fatalf("purged %v, want %d: %s", out.Purged, n, r.Body)
	}
}

// cchWaitUntil lets the clock pass a point in time (an expiry); there is
// nothing to poll for, the time itself is the condition.
func cchWaitUntil(at time.Time) { time.Sleep(time.Until(at)) }

// cchMint mints a token for sub with the given expiry (whole seconds, as
// the exp claim holds them) and options.
func cchMint(t *testing.T, idp *IdP, sub string, exp time.Time, opts ...devidp.MintOption) string {
	t.Helper()
	tok, err := idp.Mint(devidp.MintClaims{Subject: sub, Roles: []string{"user"}, ExpiresAt: exp}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var cchETagRE = regexp.MustCompile(`^"[0-9a-f]{32}"$`)

const (
	cchMe     = "/api/v1/users/me"
	cchSearch = "/api/v2/users/search"
)

// ---------------------------------------------------------------------------
// Tests.

// Two users open the app at the same time, over and over: each always sees
// their own profile, and the store is asked once per user.
func TestCacheTwoUsersNeverSeeEachOthersProfile(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, nil)
	other := st.otherUser(t)
	tokens := map[string]string{
		refstore.DemoUserID: idp.UserToken(t),
		other.ID:            idp.Token(t, other.ID, "user"),
	}

	const workers, rounds = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*2)
	start := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			<-start
			for i := 0; i < rounds; i++ {
				for sub, tok := range tokens {
					r, err := cchSend(gw, gw.URL, http.MethodGet, cchMe, Bearer(tok), Lang([]string{"en", "tr"}[w%2]))
					if err != nil {
						errs <- err
						continue
					}
					var env struct {
						Data cchUser `json:"data"`
					}
					if r.Status != http.StatusOK || json.Unmarshal(r.Body, &env) != nil {
						errs <- fmt.Errorf("%s: status %d: %s", sub, r.Status, r.Body)
						continue
					}
					if env.Data.ID != sub {
						errs <- fmt.Errorf("the token of %s was answered with the profile of %s", sub, env.Data.ID)
					}
					if cc := r.Header.Get("Cache-Control"); cc != "private, no-store" {
						errs <- fmt.Errorf("/me Cache-Control %q", cc)
					}
				}
			}
		}(w)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	// Two users in two languages: four entries, each loaded once however
	// many requests raced for it.
	if got := st.calls(refstore.OpUser); got != 4 {
		t.Fatalf("the store was asked for a user %d times, want 4 (2 users × 2 languages)", got)
	}
	demo := cchMeOf(t, gw.Do(t, http.MethodGet, cchMe, Bearer(tokens[refstore.DemoUserID])))
	mine := cchMeOf(t, gw.Do(t, http.MethodGet, cchMe, Bearer(tokens[other.ID])))
	if demo.ID != refstore.DemoUserID || mine.ID != other.ID || mine.Username != other.Username {
		t.Fatalf("profiles mixed up: %+v / %+v", demo, mine)
	}
}

// One keep-alive connection carrying several users' requests, as a proxy's
// connection does: the gateway remembers the last token verified on a
// connection, and each request is still answered for its own token only:
// the other user's profile, a forged copy of the remembered token, and
// the remembered token after another one in between.
func TestCacheOneConnectionManyUsers(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, nil)
	other := st.otherUser(t)
	demoTok, otherTok := idp.UserToken(t), idp.Token(t, other.ID, "user")

	ka := gw.KeepAlive(t)
	me := func(tok string) (int, string) {
		t.Helper()
		r := ka.Send(t, "GET "+cchMe+" HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+tok+"\r\n\r\n")
		var env struct {
			Data cchUser `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &env); err != nil {
			t.Fatal(err)
		}
		return r.Status, env.Data.ID
	}
	for i, step := range []struct {
		tok    string
		status int
		id     string
	}{
		{demoTok, http.StatusOK, refstore.DemoUserID},
		{demoTok, http.StatusOK, refstore.DemoUserID},
		{otherTok, http.StatusOK, other.ID},
		{demoTok, http.StatusOK, refstore.DemoUserID},
		{fndTamper(t, demoTok, 2), http.StatusUnauthorized, ""}, // the remembered token, its signature changed
		{demoTok[:len(demoTok)-8], http.StatusUnauthorized, ""}, // cut short
		{demoTok, http.StatusOK, refstore.DemoUserID},
		{otherTok, http.StatusOK, other.ID},
		{otherTok, http.StatusOK, other.ID},
	} {
		status, id := me(step.tok)
		if status != step.status || id != step.id {
			t.Fatalf("request %d on the connection: %d for %q, want %d for %q", i, status, id, step.status, step.id)
		}
	}
}

// An expired session is refused even though its profile sits in the
// cache, and so is a token whose signing key the identity provider
// withdrew; the cached profile itself stays for valid tokens.
func TestCacheExpiredOrRevokedTokenIsNeverAnsweredFromCache(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, map[string]string{
		"GATEWAY_AUTH__LEEWAY":                   "0s",
		"GATEWAY_AUTH__JWKS__UNKNOWNKIDINTERVAL": "50ms",
		"GATEWAY_AUTH__JWKS__UNKNOWNKIDWAIT":     "2s",
	})
	refused := func(t *testing.T, tok string) {
		t.Helper()
		r := gw.Do(t, http.MethodGet, cchMe, Bearer(tok))
		r.Failure(t, http.StatusUnauthorized, "Authentication required")
		if r.Header.Get("X-Cache") != "" || r.Header.Get("ETag") != "" {
			t.Fatalf("a refused request carries cache headers: %v", r.Header)
		}
		gw.Do(t, http.MethodGet, cchMe, Bearer(tok), Lang("tr")).Failure(t, http.StatusUnauthorized, "Kimlik doğrulaması gerekli")
	}

	t.Run("expired", func(t *testing.T) {
		exp := time.Unix(time.Now().Add(2*time.Second).Unix(), 0)
		short := cchMint(t, idp, refstore.DemoUserID, exp)
		before := st.calls(refstore.OpUser)
		cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(short)), "MISS")
		cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(short)), "HIT")

		cchWaitUntil(exp.Add(100 * time.Millisecond))
		refused(t, short)
		// The profile is still cached: a valid token of the same user is
		// answered from it, and the store was asked once in all.
		fresh := cchMint(t, idp, refstore.DemoUserID, time.Now().Add(time.Hour))
		cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(fresh)), "HIT")
		if got := st.calls(refstore.OpUser) - before; got != 1 {
			t.Fatalf("the store was asked for the user %d times, want 1", got)
		}
	})

	t.Run("signing key removed", func(t *testing.T) {
		oldKID := idp.CurrentKID(devidp.RS256)
		old := cchMint(t, idp, refstore.DemoUserID, time.Now().Add(time.Hour))
		cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(old)), "HIT")
		cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(old)), "HIT") // token cache warm too

		if _, err := idp.Rotate(devidp.RS256); err != nil {
			t.Fatal(err)
		}
		if !idp.RemoveKey(oldKID) {
			t.Fatal("no old key to remove")
		}
		// A token of the new key makes the gateway fetch the key set, which
		// no longer has the old key.
		fresh := cchMint(t, idp, refstore.DemoUserID, time.Now().Add(time.Hour))
		eventually(t, 5*time.Second, func() error {
			r, err := cchSend(gw, gw.URL, http.MethodGet, cchMe, Bearer(fresh))
			if err != nil {
				return err
			}
			if r.Status != http.StatusOK || r.Header.Get("X-Cache") != "HIT" {
				return fmt.Errorf("new key's token: %d %s %s", r.Status, r.Header.Get("X-Cache"), r.Body)
			}
			return nil
		})
		refused(t, old)
		if got := st.calls(refstore.OpUser); got != 1 {
			t.Fatalf("the store was asked for the user %d times in this test, want 1", got)
		}
	})
}

// Every dimension of a key is tried: what changes the answer splits the
// cache, everything else shares one entry. Counted at the store.
func TestCacheKeySplitsExactlyWhereTheAnswerDiffers(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, map[string]string{
		// The api platform shows fewer fields in search results: another
		// visibility class.
		"GATEWAY_POLICIES__API__FIELDS__PUBLIC": "id,username,firstName,lastName",
	})
	tok := idp.UserToken(t)
	other := st.otherUser(t)
	otherTok := idp.Token(t, other.ID, "user")
	es256, err := idp.Mint(devidp.MintClaims{Subject: refstore.DemoUserID, Roles: []string{"user"}}, devidp.WithAlgorithm(devidp.ES256))
	cchMust(t, err)

	q := url.QueryEscape
	type step struct {
		name   string
		path   string
		opts   []ReqOpt
		cache  string // X-Cache
		search int64  // search calls this step adds at the store
	}
	auth := Bearer(tok)
	steps := []step{
		{"first search", cchSearch + "?q=" + q("şükrü "), []ReqOpt{auth}, "MISS", 1},
		{"capitalised, without the space", cchSearch + "?query=" + q("Şükrü"), []ReqOpt{auth}, "HIT", 0},
		{"upper case", cchSearch + "?query=" + q("ŞÜKRÜ"), []ReqOpt{auth}, "HIT", 0},
		{"without diacritics", cchSearch + "?q=sukru", []ReqOpt{auth}, "HIT", 0},
		{"decomposed (NFD)", cchSearch + "?q=" + q("S\u0327u\u0308kru\u0308"), []ReqOpt{auth}, "HIT", 0},
		{"surrounded by Unicode spaces", cchSearch + "?query=" + q(" \u00a0şükrü\u3000 "), []ReqOpt{auth}, "HIT", 0},
		{"explicit default page and limit", cchSearch + "?query=sukru&page=1&limit=20", []ReqOpt{auth}, "HIT", 0},
		{"unknown parameters", cchSearch + "?utm_source=x&query=sukru&fbclid=abc&page=1", []ReqOpt{auth}, "HIT", 0},
		{"bare token", cchSearch + "?q=sukru", []ReqOpt{Bare(tok)}, "HIT", 0},
		{"another user", cchSearch + "?q=sukru", []ReqOpt{Bearer(otherTok)}, "HIT", 0},
		{"another signing algorithm", cchSearch + "?q=sukru", []ReqOpt{Bearer(es256)}, "HIT", 0},
		{"time zone, app version, device", cchSearch + "?q=sukru", []ReqOpt{auth,
			Header("X-Timezone", "Europe/Istanbul"), Header("X-App-Version", "4.2.0"), Header("X-Device-Id", "dev-123")}, "HIT", 0},
		{"explicit English", cchSearch + "?q=sukru", []ReqOpt{auth, Lang("en")}, "HIT", 0},
		{"English by Accept-Language", cchSearch + "?q=sukru", []ReqOpt{auth, Header("Accept-Language", "en-GB,en;q=0.9")}, "HIT", 0},
		{"mobile_ios: same visibility", cchSearch + "?q=sukru", []ReqOpt{auth, Platform("mobile_ios")}, "HIT", 0},
		{"ios alias, odd spelling", cchSearch + "?q=sukru", []ReqOpt{auth, cchRawHeader("x-platform", "iOS")}, "HIT", 0},
		{"mobile_android", cchSearch + "?q=sukru", []ReqOpt{auth, Platform("Android")}, "HIT", 0},

		{"another query", cchSearch + "?q=" + q("şükrü ışık"), []ReqOpt{auth}, "MISS", 1},
		{"another query, spelled otherwise", cchSearch + "?q=" + q("SUKRU   ISIK"), []ReqOpt{auth}, "HIT", 0},
		{"page 2", cchSearch + "?q=sukru&page=2", []ReqOpt{auth}, "MISS", 1},
		{"limit 5", cchSearch + "?q=sukru&limit=5", []ReqOpt{auth}, "MISS", 1},
		{"limit 5 again", cchSearch + "?limit=5&query=SUKRU", []ReqOpt{auth}, "HIT", 0},
		{"Turkish", cchSearch + "?q=sukru", []ReqOpt{auth, Lang("tr")}, "MISS", 1},
		{"Turkish by Accept-Language", cchSearch + "?q=sukru", []ReqOpt{auth, Header("Accept-Language", "tr-TR,tr;q=0.9,en;q=0.5")}, "HIT", 0},
		{"Turkish, other header spelling", cchSearch + "?q=sukru", []ReqOpt{auth, cchRawHeader("x-language", "TR")}, "HIT", 0},
		{"api: another visibility class", cchSearch + "?q=sukru", []ReqOpt{auth, Platform("api")}, "MISS", 1},
		{"api again", cchSearch + "?q=" + q("Şükrü"), []ReqOpt{auth, Platform("API")}, "HIT", 0},
	}
	bodies := map[string]*Response{}
	for _, s := range steps {
		before := st.calls(refstore.OpSearch)
		r := gw.Do(t, http.MethodGet, s.path, s.opts...)
		if r.Status != http.StatusOK || r.Header.Get("X-Cache") != s.cache {
			t.Fatalf("%s: %d X-Cache %q, want 200 %q: %s", s.name, r.Status, r.Header.Get("X-Cache"), s.cache, r.Body)
		}
		if got := st.calls(refstore.OpSearch) - before; got != s.search {
			t.Fatalf("%s: %d search calls reached the store, want %d", s.name, got, s.search)
		}
		bodies[s.name] = r
	}

	// What the split entries hold differs, as it must.
	en := cchPageOf(t, bodies["first search"]).find(refstore.DemoUserID)
	tr := cchPageOf(t, bodies["Turkish"]).find(refstore.DemoUserID)
	if en == nil || tr == nil || en.MinutePrice == nil || tr.MinutePrice == nil {
		t.Fatalf("the demo user is missing from a page: %s / %s", bodies["first search"].Body, bodies["Turkish"].Body)
	}
	if en.MinutePrice.Display != "₺12.50" || tr.MinutePrice.Display != "12,50 ₺" {
		t.Fatalf("price display en %q tr %q, want ₺12.50 and 12,50 ₺", en.MinutePrice.Display, tr.MinutePrice.Display)
	}
	if p := cchPageOf(t, bodies["limit 5"]); p.Limit != 5 || len(p.Items) > 5 {
		t.Fatalf("limit 5 page: limit %d, %d items", p.Limit, len(p.Items))
	}
	if p := cchPageOf(t, bodies["page 2"]); p.Page != 2 {
		t.Fatalf("page 2 says page %d", p.Page)
	}
	var api struct {
		Items []map[string]json.RawMessage `json:"items"`
	}
	bodies["api: another visibility class"].Data(t, &api)
	for _, it := range api.Items {
		if _, ok := it["minutePrice"]; ok || len(it) != 4 {
			t.Fatalf("api item shows more than its four fields: %v", cchKeys(it))
		}
	}
	if bytes.Equal(bodies["first search"].Body, bodies["api: another visibility class"].Body) {
		t.Fatal("api and web got the same body")
	}
	// Entries shared by a HIT carry the same validator.
	if a, b := bodies["first search"].Header.Get("ETag"), bodies["English by Accept-Language"].Header.Get("ETag"); a == "" || a != b {
		t.Fatalf("ETag of one entry differs between its answers: %q %q", a, b)
	}

	t.Run("me", func(t *testing.T) {
		before := st.calls(refstore.OpUser)
		for _, s := range []step{
			{"first", cchMe, []ReqOpt{auth}, "MISS", 1},
			{"another token of the same user", cchMe, []ReqOpt{Bearer(es256)}, "HIT", 0},
			{"query parameters", cchMe + "?utm_source=x&page=3", []ReqOpt{auth}, "HIT", 0},
			{"same visibility, other platform", cchMe, []ReqOpt{auth, Platform("mobile_android")}, "HIT", 0},
			{"Turkish", cchMe, []ReqOpt{auth, Header("Accept-Language", "tr")}, "MISS", 1},
			{"another user", cchMe, []ReqOpt{Bearer(otherTok), Header("Accept-Language", "tr")}, "MISS", 1},
		} {
			r := gw.Do(t, http.MethodGet, s.path, s.opts...)
			if r.Status != http.StatusOK || r.Header.Get("X-Cache") != s.cache {
				t.Fatalf("%s: %d X-Cache %q, want 200 %q: %s", s.name, r.Status, r.Header.Get("X-Cache"), s.cache, r.Body)
			}
			before += s.search
			if got := st.calls(refstore.OpUser); got != before {
				t.Fatalf("%s: the store saw %d user calls, want %d", s.name, got, before)
			}
		}
	})
}

func cchKeys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// /me's clientMaxAge, when ops give one, is capped like search's: a client
// keeps the profile no longer than the gateway does, on a platform with a
// shorter TTL of its own too; a miss and the hits after it say the same.
func TestCacheMeClientMaxAgeNeverOutlivesTheEntry(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, map[string]string{
		"GATEWAY_CACHE__ROUTES__ME__CLIENTMAXAGE":      "60s",
		"GATEWAY_POLICIES__MOBILE_IOS__CACHE__TTL__ME": "3s",
	})
	tok := idp.UserToken(t)
	for _, c := range []struct{ platform, want string }{
		{"web", "private, max-age=10"},
		{"mobile_ios", "private, max-age=3"},
	} {
		for i := 0; i < 2; i++ {
			resp := gw.Do(t, http.MethodGet, cchMe, Bearer(tok), Platform(c.platform))
			x := resp.Header.Get("X-Cache")
			if cc := resp.Header.Get("Cache-Control"); cc != c.want {
				t.Errorf("/me on %s (%s): Cache-Control %q, want %q (never longer than the gateway keeps it)", c.platform, x, cc, c.want)
			}
		}
	}
}

// Platforms of one visibility class share entries, but a platform with a
// shorter TTL of its own never reads one as fresh for longer than that TTL:
// past it, the entry the web app stored for the route's 10 s is stale for
// the Android app (served while one refresh runs), still a hit for the web.
func TestCacheShorterPlatformTTLBoundsWhatItReads(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, map[string]string{
		"GATEWAY_POLICIES__MOBILE_ANDROID__CACHE__TTL__ME": "2s",
	})
	tok := idp.UserToken(t)
	web, android := []ReqOpt{Bearer(tok), Platform("web")}, []ReqOpt{Bearer(tok), Platform("mobile_android")}

	cchXCache(t, gw.Do(t, http.MethodGet, cchMe, web...), "MISS")
	stored := time.Now()
	cchXCache(t, gw.Do(t, http.MethodGet, cchMe, android...), "HIT")
	if got := st.calls(refstore.OpUser); got != 1 {
		t.Fatalf("the store saw %d user calls, want 1 (one shared entry)", got)
	}

	cchWaitUntil(stored.Add(2100 * time.Millisecond))
	cchXCache(t, gw.Do(t, http.MethodGet, cchMe, web...), "HIT")
	if got := st.calls(refstore.OpUser); got != 1 {
		t.Fatalf("the web app's hit called the store (%d user calls)", got)
	}
	cchXCache(t, gw.Do(t, http.MethodGet, cchMe, android...), "STALE")
	deadline := time.Now().Add(5 * time.Second)
	for st.calls(refstore.OpUser) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := st.calls(refstore.OpUser); got != 2 {
		t.Fatalf("the stale answer refreshed the entry with %d user calls, want 2", got)
	}
	var x string
	for time.Now().Before(deadline) {
		if x = gw.Do(t, http.MethodGet, cchMe, android...).Header.Get("X-Cache"); x == "HIT" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if x != "HIT" {
		t.Fatalf("after the refresh the Android app got X-Cache %q, want HIT", x)
	}
}

// A burst of empty searches (random users) costs one call, but the sample
// changes after the short TTL of its own, while a real query's entry lives
// its full TTL; clients are told no longer than that either.
func TestCacheEmptyQueryHasItsOwnShortTTL(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, map[string]string{
		"GATEWAY_CACHE__ROUTES__SEARCH__EMPTYQUERYTTL":        "1s",
		"GATEWAY_CACHE__ROUTES__SEARCH__STALEWHILEREVALIDATE": "0s",
	})
	tok := idp.UserToken(t)

	first := gw.Do(t, http.MethodGet, cchSearch, Bearer(tok))
	cchXCache(t, first, "MISS")
	stored := time.Now()
	if cc := first.Header.Get("Cache-Control"); cc != "private, max-age=1" {
		t.Fatalf("random sample Cache-Control %q, want private, max-age=1 (never longer than the gateway keeps it)", cc)
	}
	for _, path := range []string{cchSearch, cchSearch + "?query=", cchSearch + "?q=%20%20", cchSearch + "?utm_source=x"} {
		cchXCache(t, gw.Do(t, http.MethodGet, path, Bearer(tok)), "HIT")
	}
	q := gw.Do(t, http.MethodGet, cchSearch+"?q=sukru", Bearer(tok))
	cchXCache(t, q, "MISS")
	if cc := q.Header.Get("Cache-Control"); cc != "private, max-age=15" {
		t.Fatalf("search Cache-Control %q, want private, max-age=15", cc)
	}
	if got := st.calls(refstore.OpSearch); got != 2 {
		t.Fatalf("%d search calls, want 2", got)
	}

	cchWaitUntil(stored.Add(1100 * time.Millisecond))
	cchXCache(t, gw.Do(t, http.MethodGet, cchSearch, Bearer(tok)), "MISS")
	cchXCache(t, gw.Do(t, http.MethodGet, cchSearch, Bearer(tok)), "HIT")
	cchXCache(t, gw.Do(t, http.MethodGet, cchSearch+"?q=sukru", Bearer(tok)), "HIT")
	if got := st.calls(refstore.OpSearch); got != 3 {
		t.Fatalf("%d search calls, want 3", got)
	}
}

// Many apps ask for the same thing while the store is slow: one call
// reaches it, and every app gets the answer.
func TestCacheConcurrentMissesMakeOneStoreCall(t *testing.T) {
	st := cchStartStore(t)
	proxy := cchProxy(t, st)
	idp := StartIdP(t)
	gw := cchGateway(t, proxy.URL(), idp, map[string]string{
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__SEARCH__TIMEOUT":   "2500ms",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__USERBYID__TIMEOUT": "2500ms",
	})
	tok := idp.UserToken(t)
	cchMust(t, proxy.SetPath(contract.PathSearch, faultproxy.Delay(time.Second)))
	cchMust(t, proxy.SetPath(contract.PathUserPrefix+refstore.DemoUserID, faultproxy.Delay(time.Second)))

	const n = 16
	for _, c := range []struct {
		name, path, op string
	}{
		{"search", cchSearch + "?q=sukru", refstore.OpSearch},
		{"me", cchMe, refstore.OpUser},
	} {
		t.Run(c.name, func(t *testing.T) {
			loads := cchCacheStats(t, gw).Loads
			var wg sync.WaitGroup
			results := make(chan *Response, n)
			errs := make(chan error, n)
			start := make(chan struct{})
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					r, err := cchSend(gw, gw.URL, http.MethodGet, c.path, Bearer(tok))
					if err != nil {
						errs <- err
						return
					}
					results <- r
				}()
			}
			close(start)
			wg.Wait()
			close(results)
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			var body []byte
			for r := range results {
				// All of them were waiting for the one load: none came late
				// enough to be a HIT, so this really measured coalescing.
				cchXCache(t, r, "MISS")
				data := r.Body[:bytes.Index(r.Body, []byte(`,"errors"`))]
				if body == nil {
					body = data
				} else if !bytes.Equal(body, data) {
					t.Fatal("coalesced callers got different answers")
				}
			}
			if got := st.calls(c.op); got != 1 {
				t.Fatalf("%d concurrent misses made %d %s calls at the store, want 1", n, got, c.op)
			}
			if got := st.calls(refstore.OpLiveStreams); got < 1 {
				t.Fatal("no live-stream call")
			}
			if got := cchCacheStats(t, gw).Loads - loads; got != 1 {
				t.Fatalf("the cache ran %d loads, want 1", got)
			}
			cchXCache(t, gw.Do(t, http.MethodGet, c.path, Bearer(tok)), "HIT")
			st.rec.Reset()
		})
	}
}

// After an entry expires, the next apps are answered at once from it
// (STALE) while exactly one background refresh fetches the change; then
// the new data is served from cache.
func TestCacheStaleWhileRevalidate(t *testing.T) {
	st := cchStartStore(t)
	proxy := cchProxy(t, st)
	idp := StartIdP(t)
	gw := cchGateway(t, proxy.URL(), idp, map[string]string{
		"GATEWAY_CACHE__ROUTES__SEARCH__TTL":                  "500ms",
		"GATEWAY_CACHE__ROUTES__SEARCH__STALEWHILEREVALIDATE": "10s",
		"GATEWAY_CACHE__ROUTES__SEARCH__STALEIFERROR":         "0s",
	})
	tok := idp.UserToken(t)
	path := cchSearch + "?q=sukru"

	first := gw.Do(t, http.MethodGet, path, Bearer(tok))
	cchXCache(t, first, "MISS")
	stored := time.Now()
	if _, err := st.Rename(context.Background(), refstore.DemoUserID, "Selim"); err != nil {
		t.Fatal(err)
	}
	cchXCache(t, gw.Do(t, http.MethodGet, path, Bearer(tok)), "HIT")

	// The store now answers slowly: stale answers must not wait for it.
	cchMust(t, proxy.SetPath(contract.PathSearch, faultproxy.Delay(800*time.Millisecond)))
	cchWaitUntil(stored.Add(600 * time.Millisecond))
	const n = 5
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			r, err := cchSend(gw, gw.URL, http.MethodGet, path, Bearer(tok))
			took := time.Since(began)
			switch {
			case err != nil:
				errs <- err
			case r.Status != http.StatusOK || r.Header.Get("X-Cache") != "STALE":
				errs <- fmt.Errorf("expired entry: %d X-Cache %q", r.Status, r.Header.Get("X-Cache"))
			case r.Header.Get("ETag") != first.Header.Get("ETag"):
				errs <- fmt.Errorf("stale answer has ETag %q, the stored one %q", r.Header.Get("ETag"), first.Header.Get("ETag"))
			case took > 700*time.Millisecond: // below the store's 800ms, wide for a busy machine
				errs <- fmt.Errorf("the stale answer waited %s for a store that takes 800ms", took)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	if demo := cchPageOf(t, gw.Do(t, http.MethodGet, path, Bearer(tok))).find(refstore.DemoUserID); demo == nil || demo.FirstName != "Şükrü" {
		t.Fatalf("stale answer should still show the old name: %+v", demo)
	}

	var fresh *Response
	// The store's calls are counted when the refresh's new data is first
	// seen: later, a poll that comes after the refreshed answer expired too
	// (500ms: a busy machine can poll that late) asks for a refresh of its
	// own, which reaches the store 800ms after it at the earliest.
	calls := int64(-1)
	eventually(t, 5*time.Second, func() error {
		r, err := cchSend(gw, gw.URL, http.MethodGet, path, Bearer(tok))
		if err != nil {
			return err
		}
		if calls < 0 && r.Header.Get("ETag") != first.Header.Get("ETag") {
			calls = st.calls(refstore.OpSearch)
		}
		if r.Header.Get("X-Cache") != "HIT" {
			return fmt.Errorf("X-Cache %q, waiting for the refresh", r.Header.Get("X-Cache"))
		}
		fresh = r
		return nil
	})
	if demo := cchPageOf(t, fresh).find(refstore.DemoUserID); demo == nil || demo.FirstName != "Selim" {
		t.Fatalf("after the refresh the new name should show: %+v", demo)
	}
	if fresh.Header.Get("ETag") == first.Header.Get("ETag") {
		t.Fatal("new data under the old ETag")
	}
	if calls != 2 {
		t.Fatalf("%d search calls had reached the store when the refresh's data showed, want 2 (the load and exactly one refresh for the five stale answers)", calls)
	}
}

// The user is deleted while their profile is cached: once the profile has
// expired, the stale-while-revalidate window serves it while one refresh
// asks the store, but the store's 404 ends it there: the next request is
// the 404, not the deleted profile for the rest of the window.
func TestCacheDeletedUserIsNotServedStale(t *testing.T) {
	st := cchStartStore(t)
	proxy := cchProxy(t, st)
	idp := StartIdP(t)
	gw := cchGateway(t, proxy.URL(), idp, map[string]string{
		"GATEWAY_CACHE__ROUTES__ME__TTL":                  "300ms",
		"GATEWAY_CACHE__ROUTES__ME__STALEWHILEREVALIDATE": "1m",
		"GATEWAY_CACHE__ROUTES__ME__STALEIFERROR":         "5m",
	})
	tok := idp.UserToken(t)

	cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(tok)), "MISS")
	stored := time.Now()
	// The store no longer knows the user (the reference store cannot
	// delete one; its 404 is what the gateway would get).
	cchMust(t, proxy.SetPath(contract.PathUserPrefix, faultproxy.Status(http.StatusNotFound)))
	cchWaitUntil(stored.Add(400 * time.Millisecond))

	// This answer was already on its way: served stale, the refresh starts.
	cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(tok)), "STALE")
	eventually(t, 5*time.Second, func() error {
		r, err := cchSend(gw, gw.URL, http.MethodGet, cchMe, Bearer(tok))
		if err != nil {
			return err
		}
		if r.Status != http.StatusNotFound {
			return fmt.Errorf("%d X-Cache %q: the deleted user's profile is still served", r.Status, r.Header.Get("X-Cache"))
		}
		return nil
	})
	r := gw.Do(t, http.MethodGet, cchMe, Bearer(tok))
	r.Failure(t, http.StatusNotFound, "Resource not found")
	if r.Header.Get("X-Cache") != "" || r.Header.Get("ETag") != "" {
		t.Fatalf("a 404 carries cache headers: %v", r.Header)
	}
}

// The store's 404 for a profile says the user is gone, whatever key asked:
// their profile cached in the other language, and the search pages that
// list them, go too. Before, only the asking key's entry was dropped, and
// the next failure served the Turkish profile of the deleted user STALE.
func TestCacheDeletedUserIsGoneFromEveryEntry(t *testing.T) {
	st := cchStartStore(t)
	proxy := cchProxy(t, st)
	idp := StartIdP(t)
	gw := cchGateway(t, proxy.URL(), idp, map[string]string{
		"GATEWAY_CACHE__ROUTES__ME__TTL":                  "300ms",
		"GATEWAY_CACHE__ROUTES__ME__STALEWHILEREVALIDATE": "0s",
		"GATEWAY_CACHE__ROUTES__ME__STALEIFERROR":         "5m",
		"GATEWAY_CACHE__ROUTES__SEARCH__TTL":              "1m",
	})
	tok := idp.UserToken(t)
	page := cchSearch + "?q=sukru"

	cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(tok), Lang("en")), "MISS")
	cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(tok), Lang("tr")), "MISS")
	listed := gw.Do(t, http.MethodGet, page, Bearer(tok))
	cchXCache(t, listed, "MISS")
	if p := cchPageOf(t, listed); len(p.Items) == 0 || p.Items[0].ID != refstore.DemoUserID {
		t.Fatalf("the page does not list the demo user: %s", listed.Body)
	}
	stored := time.Now()
	profile := contract.PathUserPrefix + refstore.DemoUserID
	cchMust(t, proxy.SetPath(profile, faultproxy.Status(http.StatusNotFound)))
	cchWaitUntil(stored.Add(400 * time.Millisecond))

	gw.Do(t, http.MethodGet, cchMe, Bearer(tok), Lang("en")).Failure(t, http.StatusNotFound, "Resource not found")

	// The Turkish profile, expired too, finds the store failing: the
	// error, not the deleted user's profile.
	cchMust(t, proxy.SetPath(profile, faultproxy.Status(http.StatusInternalServerError)))
	r := gw.Do(t, http.MethodGet, cchMe, Bearer(tok), Lang("tr"))
	if r.Status == http.StatusOK {
		t.Fatalf("X-Cache %q: the deleted user's profile is served again", r.Header.Get("X-Cache"))
	}
	r.Failure(t, http.StatusBadGateway, "Hizmetten geçersiz bir yanıt alındı")
	// The page that lists them, fresh for a minute more, is loaded again.
	cchXCache(t, gw.Do(t, http.MethodGet, page, Bearer(tok)), "MISS")
}

// A load that was already on its way when another key's load found the
// user gone is not stored, though nothing showed the user when the 404
// came (nothing to purge): its data predates the 404, as a load running
// during an invalidation does. Before, the English profile loaded just
// before the Turkish one's 404 was stored and served as a HIT for the TTL,
// then STALE on the next failure, long after the store said the user is
// gone.
func TestCacheDeletedUserIsNotStoredByALoadThatOverlappedThe404(t *testing.T) {
	st := cchStartStore(t)
	proxy := cchProxy(t, st)
	idp := StartIdP(t)
	gw := cchGateway(t, proxy.URL(), idp, map[string]string{
		"GATEWAY_CACHE__ROUTES__ME__TTL":          "1m",
		"GATEWAY_CACHE__ROUTES__ME__STALEIFERROR": "5m",
		// The held call must not time out on a busy machine.
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__USERBYID__TIMEOUT": "2s",
	})
	tok := idp.UserToken(t)
	profile := contract.PathUserPrefix + refstore.DemoUserID

	// The English profile's load reads the store just before the user goes
	// (the proxy holds its answer back a while).
	cchMust(t, proxy.SetPath(profile, faultproxy.Delay(300*time.Millisecond).Times(1)))
	proxy.Record(true)
	early := make(chan *Response, 1)
	go func() {
		r, err := cchSend(gw, gw.URL, http.MethodGet, cchMe, Bearer(tok), Lang("en"))
		if err != nil {
			t.Error(err)
		}
		early <- r
	}()
	eventually(t, 5*time.Second, func() error {
		for _, seen := range proxy.Seen() {
			if seen.RequestURI == profile {
				return nil
			}
		}
		return fmt.Errorf("the English load has not reached the proxy yet")
	})
	if n := st.calls(refstore.OpUser); n != 0 {
		t.Fatalf("the store saw %d user calls while the proxy held the first", n)
	}
	cchMust(t, proxy.SetPath(profile, faultproxy.Status(http.StatusNotFound)))
	gw.Do(t, http.MethodGet, cchMe, Bearer(tok), Lang("tr")).Failure(t, http.StatusNotFound, "Kaynak bulunamadı")
	if r := <-early; r == nil || r.Status != http.StatusOK {
		t.Fatalf("the load on its way: %v, want its 200", r)
	}

	r := gw.Do(t, http.MethodGet, cchMe, Bearer(tok), Lang("en"))
	if r.Status == http.StatusOK {
		t.Fatalf("X-Cache %q: the profile of a user the store said is gone was stored", r.Header.Get("X-Cache"))
	}
	r.Failure(t, http.StatusNotFound, "Resource not found")
	// Nor does a failure bring it back.
	cchMust(t, proxy.SetPath(profile, faultproxy.Status(http.StatusInternalServerError)))
	gw.Do(t, http.MethodGet, cchMe, Bearer(tok), Lang("en")).Failure(t, http.StatusBadGateway, "The service returned an invalid response")
}

// The store goes down and the breakers open: apps keep getting the last
// answers (STALE) within the stale-if-error window, then the error.
func TestCacheStaleIfErrorWhileTheStoreIsDown(t *testing.T) {
	st := cchStartStore(t)
	proxy := cchProxy(t, st)
	idp := StartIdP(t)
	// The api platform bypasses the cache: its failed loads are counted
	// as bypass lookups (below).
	env := map[string]string{"GATEWAY_POLICIES__API__CACHE__BYPASS": "true"}
	for _, route := range []string{"SEARCH", "ME"} {
		env["GATEWAY_CACHE__ROUTES__"+route+"__TTL"] = "400ms"
		env["GATEWAY_CACHE__ROUTES__"+route+"__STALEWHILEREVALIDATE"] = "0s"
		env["GATEWAY_CACHE__ROUTES__"+route+"__STALEIFERROR"] = "1500ms"
	}
	for _, op := range []string{"SEARCH", "USERBYID"} {
		p := "GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__" + op + "__"
		env[p+"RETRY__ATTEMPTS"] = "0"
		env[p+"BREAKER__CONSECUTIVEFAILURES"] = "1"
		env[p+"BREAKER__OPENTIMEOUT"] = "30s"
	}
	gw := cchGateway(t, proxy.URL(), idp, env)
	tok := idp.UserToken(t)
	paths := []string{cchSearch + "?q=sukru", cchMe}

	warm := map[string]*Response{}
	for _, p := range paths {
		warm[p] = gw.Do(t, http.MethodGet, p, Bearer(tok))
		cchXCache(t, warm[p], "MISS")
	}
	stored := time.Now()
	cchMust(t, proxy.Set(faultproxy.Refuse()))
	cchWaitUntil(stored.Add(500 * time.Millisecond))

	// The first expired lookup finds the store refusing connections, the
	// next ones an open breaker: both are served the stored answer.
	for round := 0; round < 2; round++ {
		for _, p := range paths {
			r := gw.Do(t, http.MethodGet, p, Bearer(tok))
			cchXCache(t, r, "STALE")
			if !bytes.Equal(cchData(t, r), cchData(t, warm[p])) || r.Header.Get("ETag") != warm[p].Header.Get("ETag") {
				t.Fatalf("%s: the stale answer is not the stored one:\n%s\n%s", p, r.Body, warm[p].Body)
			}
		}
	}
	var br struct {
		Breakers []struct{ Op, State string }
	}
	cchOps(t, gw, http.MethodGet, "/ops/v1/breakers").Data(t, &br)
	open := map[string]bool{}
	for _, b := range br.Breakers {
		open[b.Op] = b.State == "open"
	}
	if !open["search"] || !open["userById"] {
		t.Fatalf("breakers should be open: %+v", br.Breakers)
	}

	// Past the window, the failure shows.
	cchWaitUntil(stored.Add(400*time.Millisecond + 1500*time.Millisecond + 100*time.Millisecond))
	for _, p := range paths {
		r := gw.Do(t, http.MethodGet, p, Bearer(tok))
		r.Failure(t, http.StatusServiceUnavailable, "Service temporarily unavailable, please try again later")
		if r.Header.Get("Retry-After") == "" || r.Header.Get("ETag") != "" || r.Header.Get("X-Cache") != "" {
			t.Fatalf("%s: 503 headers %v", p, r.Header)
		}
		gw.Do(t, http.MethodGet, p, Bearer(tok), Lang("tr")).Failure(t, http.StatusServiceUnavailable,
			"Hizmet geçici olarak kullanılamıyor, lütfen daha sonra tekrar deneyin")
	}
	if got := st.calls(refstore.OpSearch) + st.calls(refstore.OpUser); got != 2 {
		t.Fatalf("%d calls reached the store, want the 2 warming ones", got)
	}
	for _, p := range paths {
		if r := gw.Do(t, http.MethodGet, p, Bearer(tok), Platform("api")); r.Status != http.StatusServiceUnavailable {
			t.Fatalf("%s on the bypassing platform: %d", p, r.Status)
		}
	}
	// Every lookup is counted, the failed ones too: the warming miss, two
	// stale answers, two misses that failed, and a bypass whose load
	// failed (the runbook's hit ratio would read high during an outage
	// without them).
	for _, route := range []string{"users.search", "users.me"} {
		for status, want := range map[string]float64{"miss": 3, "stale": 2, "hit": 0, "bypass": 1} {
			if got := cchMetric(t, gw, `gateway_cache_lookups_total{route="`+route+`",status="`+status+`"}`); got != want {
				t.Errorf("%s: %s lookups counted %v, want %v", route, status, got, want)
			}
		}
	}
}

// cchData is the data member of a success envelope, as bytes.
func cchData(t *testing.T, r *Response) []byte {
	t.Helper()
	return r.Envelope(t).Data
}

// Apps revalidate with If-None-Match and get 304 without a body when they
// already hold the answer; the validators and caching headers say what
// clients may do.
func TestCacheETagAndNotModified(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, nil)
	tok := idp.UserToken(t)

	for _, c := range []struct {
		name, path, cacheControl string
	}{
		{"search", cchSearch + "?q=sukru", "private, max-age=15"},
		{"me", cchMe, "private, no-store"},
	} {
		t.Run(c.name, func(t *testing.T) {
			first := gw.Do(t, http.MethodGet, c.path, Bearer(tok))
			cchXCache(t, first, "MISS")
			etag := first.Header.Get("ETag")
			if !cchETagRE.MatchString(etag) {
				t.Fatalf("ETag %q is not a strong quoted validator", etag)
			}
			if cc := first.Header.Get("Cache-Control"); cc != c.cacheControl {
				t.Fatalf("Cache-Control %q, want %q", cc, c.cacheControl)
			}
			calls := st.calls(refstore.OpSearch) + st.calls(refstore.OpUser)

			for _, inm := range []string{etag, "W/" + etag, `"0123", ` + etag, `W/"x",W/` + etag, "*"} {
				r := gw.Do(t, http.MethodGet, c.path, Bearer(tok), Header("If-None-Match", inm),
					Header("X-Request-Id", "cch-304"))
				if r.Status != http.StatusNotModified || len(r.Body) != 0 {
					t.Fatalf("If-None-Match %s: %d with %d body bytes, want 304 and none", inm, r.Status, len(r.Body))
				}
				if r.Header.Get("ETag") != etag || r.Header.Get("Cache-Control") != c.cacheControl ||
					r.Header.Get("X-Request-Id") != "cch-304" || r.Header.Get("X-Cache") != "HIT" {
					t.Fatalf("If-None-Match %s: 304 headers %v", inm, r.Header)
				}
			}
			for _, inm := range []string{`"0123456789abcdef0123456789abcdef"`, strings.Trim(etag, `"`), `W/"nope"`} {
				r := gw.Do(t, http.MethodGet, c.path, Bearer(tok), Header("If-None-Match", inm))
				cchXCache(t, r, "HIT")
				if !bytes.Equal(cchData(t, r), cchData(t, first)) || r.Header.Get("ETag") != etag {
					t.Fatalf("If-None-Match %s: a full answer must follow a tag that does not match", inm)
				}
			}
			// A validator is no credential: without a token it is 401.
			gw.Do(t, http.MethodGet, c.path, Header("If-None-Match", etag)).Failure(t, http.StatusUnauthorized, "Authentication required")

			// On the wire: 304, the headers, and not one byte of body.
			head, body := cchRawGet(t, gw, c.path, "Authorization: Bearer "+tok, "If-None-Match: "+etag)
			if !strings.HasPrefix(head, "HTTP/1.1 304 ") || len(body) != 0 {
				t.Fatalf("raw 304: %q then %d body bytes", head, len(body))
			}
			if got := st.calls(refstore.OpSearch) + st.calls(refstore.OpUser); got != calls {
				t.Fatal("revalidations reached the store")
			}
		})
	}

	// The ETag names the bytes, not the process: another gateway on the
	// same data gives the same one.
	gw2 := cchGateway(t, st.URL, idp, nil)
	a := gw.Do(t, http.MethodGet, cchSearch+"?q=sukru", Bearer(tok))
	b := gw2.Do(t, http.MethodGet, cchSearch+"?q=sukru", Bearer(tok))
	cchXCache(t, b, "MISS")
	if a.Header.Get("ETag") != b.Header.Get("ETag") {
		t.Fatalf("two gateways, two ETags for the same answer: %q %q", a.Header.Get("ETag"), b.Header.Get("ETag"))
	}
}

// cchRawGet sends a GET with the given header lines over a fresh
// connection and returns the status line and headers, and every byte that
// followed them until the gateway closed the connection.
func cchRawGet(t *testing.T, gw *Gateway, path string, headers ...string) (string, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(gw.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n" + strings.Join(headers, "\r\n") + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no end of headers in %q", raw)
	}
	return string(head), body
}

// Errors and partial answers are never cached: the next request asks the
// store again; once the store answers in full, the answer is cached.
func TestCacheErrorsAndPartialAnswersAreNeverCached(t *testing.T) {
	st := cchStartStore(t)
	proxy := cchProxy(t, st)
	idp := StartIdP(t)
	// No retries, so that every request is one call; a live-stream
	// breaker that stays closed, so that the healed store is used at once.
	gw := cchGateway(t, proxy.URL(), idp, map[string]string{
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__SEARCH__RETRY__ATTEMPTS":                   "0",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__LIVESTREAMS__RETRY__ATTEMPTS":              "0",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__LIVESTREAMS__BREAKER__CONSECUTIVEFAILURES": "100",
	})
	tok := idp.UserToken(t)

	t.Run("not found", func(t *testing.T) {
		ghost := idp.Token(t, refstore.DemoMissingID, "user")
		for i, lang := range []string{"en", "tr"} {
			r := gw.Do(t, http.MethodGet, cchMe, Bearer(ghost), Lang(lang))
			r.Failure(t, http.StatusNotFound, []string{"Resource not found", "Kaynak bulunamadı"}[i])
			if r.Header.Get("ETag") != "" || r.Header.Get("X-Cache") != "" {
				t.Fatalf("a 404 carries cache headers: %v", r.Header)
			}
		}
		gw.Do(t, http.MethodGet, cchMe, Bearer(ghost)).Failure(t, http.StatusNotFound, "Resource not found")
		if got := st.calls(refstore.OpUser); got != 3 {
			t.Fatalf("%d user calls for 3 requests: an error was cached", got)
		}
	})

	t.Run("store error", func(t *testing.T) {
		before := st.calls(refstore.OpSearch)
		cchMust(t, proxy.SetPath(contract.PathSearch, faultproxy.Status(500).Times(2)))
		for i := 0; i < 2; i++ {
			gw.Do(t, http.MethodGet, cchSearch+"?q=isik", Bearer(tok)).Failure(t, http.StatusBadGateway, "The service returned an invalid response")
		}
		cchXCache(t, gw.Do(t, http.MethodGet, cchSearch+"?q=isik", Bearer(tok)), "MISS")
		cchXCache(t, gw.Do(t, http.MethodGet, cchSearch+"?q=isik", Bearer(tok)), "HIT")
		// The faulted requests never reached the store; the good one did.
		if got := st.calls(refstore.OpSearch) - before; got != 1 {
			t.Fatalf("%d search calls reached the store, want 1", got)
		}
		cchMust(t, proxy.Heal())
	})

	t.Run("partial", func(t *testing.T) {
		cchMust(t, proxy.SetPath(contract.PathLiveStreams, faultproxy.Status(500)))
		for _, c := range []struct{ path, op string }{{cchSearch + "?q=sukru", refstore.OpSearch}, {cchMe, refstore.OpUser}} {
			before := st.calls(c.op)
			for i := 0; i < 2; i++ {
				r := gw.Do(t, http.MethodGet, c.path, Bearer(tok))
				cchXCache(t, r, "MISS")
				if r.Header.Get("X-Partial-Response") != "liveStream" || r.Header.Get("Cache-Control") != "private, no-store" || r.Header.Get("ETag") != "" {
					t.Fatalf("%s: partial answer headers %v", c.path, r.Header)
				}
				var demo *cchUser
				if c.op == refstore.OpSearch {
					demo = cchPageOf(t, r).find(refstore.DemoUserID)
				} else {
					me := cchMeOf(t, r)
					demo = &me
				}
				if demo == nil || string(demo.LiveStream) != "null" {
					t.Fatalf("%s: the demo user's live stream should be null in a partial answer: %s", c.path, r.Body)
				}
			}
			if got := st.calls(c.op) - before; got != 2 {
				t.Fatalf("%s: %d %s calls for two partial answers: a partial answer was cached", c.path, got, c.op)
			}
		}
		cchMust(t, proxy.Heal())
		for _, path := range []string{cchSearch + "?q=sukru", cchMe} {
			r := gw.Do(t, http.MethodGet, path, Bearer(tok))
			cchXCache(t, r, "MISS")
			if r.Header.Get("X-Partial-Response") != "" || r.Header.Get("ETag") == "" {
				t.Fatalf("%s: a full answer: %v", path, r.Header)
			}
			cchXCache(t, gw.Do(t, http.MethodGet, path, Bearer(tok)), "HIT")
		}
	})
}

// A flood of distinct searches cannot grow the cache past its bound: the
// oldest entries go first, and the operators can see it.
func TestCacheBoundHoldsUnderAFloodOfKeys(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, map[string]string{"GATEWAY_CACHE__MAXENTRIES": "50"})
	tok := idp.UserToken(t)

	const workers, perWorker = 8, 15
	stop := make(chan struct{})
	var watch sync.WaitGroup
	var maxSeen, maxMetric float64
	watchErr := make(chan error, 1)
	watch.Add(1)
	go func() {
		defer watch.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			r, err := cchSend(gw, gw.OpsURL, http.MethodGet, "/ops/v1/cache")
			if err != nil {
				watchErr <- err
				return
			}
			var env struct{ Data cchStats }
			if err := json.Unmarshal(r.Body, &env); err != nil {
				watchErr <- err
				return
			}
			maxSeen = max(maxSeen, float64(env.Data.Entries))
			m, err := cchSend(gw, gw.OpsURL, http.MethodGet, "/metrics")
			if err != nil {
				watchErr <- err
				return
			}
			for _, line := range strings.Split(string(m.Body), "\n") {
				if rest, ok := strings.CutPrefix(line, "gateway_cache_entries "); ok {
					v, _ := strconv.ParseFloat(rest, 64)
					maxMetric = max(maxMetric, v)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				r, err := cchSend(gw, gw.URL, http.MethodGet, fmt.Sprintf("%s?q=flood%02d%03d", cchSearch, w, i), Bearer(tok))
				if err == nil && (r.Status != http.StatusOK || r.Header.Get("X-Cache") != "MISS") {
					err = fmt.Errorf("flood: %d %s %s", r.Status, r.Header.Get("X-Cache"), r.Body)
				}
				if err != nil {
					errs <- err
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case err := <-watchErr:
		t.Fatal(err)
	default:
	}
	if maxSeen > 50 || maxMetric > 50 || maxSeen == 0 || maxMetric == 0 {
		t.Fatalf("entries peaked at %v (ops) and %v (metric), bound 50", maxSeen, maxMetric)
	}
	s := cchCacheStats(t, gw)
	if s.Entries != 50 || s.MaxEntries != 50 || s.Evictions.Capacity != workers*perWorker-50 {
		t.Fatalf("after %d keys: %+v, want 50 entries and %d capacity evictions", workers*perWorker, s, workers*perWorker-50)
	}
	if got := cchMetric(t, gw, `gateway_cache_evictions_total{reason="capacity"}`); got != float64(workers*perWorker-50) {
		t.Fatalf("gateway_cache_evictions_total{capacity} = %v", got)
	}
	if got := cchMetric(t, gw, "gateway_cache_max_entries"); got != 50 {
		t.Fatalf("gateway_cache_max_entries = %v", got)
	}

	// The eviction rule is first in, first out: after 50 new keys in
	// order, the newest is there and the oldest goes first.
	key := func(i int) string { return fmt.Sprintf("%s?q=order%02d", cchSearch, i) }
	for i := 0; i < 50; i++ {
		cchXCache(t, gw.Do(t, http.MethodGet, key(i), Bearer(tok)), "MISS")
	}
	cchXCache(t, gw.Do(t, http.MethodGet, key(49), Bearer(tok)), "HIT")
	cchXCache(t, gw.Do(t, http.MethodGet, key(0), Bearer(tok)), "HIT") // a hit does not make it younger…
	cchXCache(t, gw.Do(t, http.MethodGet, cchSearch+"?q=newcomer", Bearer(tok)), "MISS")
	cchXCache(t, gw.Do(t, http.MethodGet, key(0), Bearer(tok)), "MISS") // …so it was the one to go
	cchXCache(t, gw.Do(t, http.MethodGet, key(2), Bearer(tok)), "HIT")
	if s := cchCacheStats(t, gw); s.Entries != 50 || s.Evictions.Capacity != workers*perWorker-50+52 {
		t.Fatalf("after the ordered keys: %+v", s)
	}
}

// Search pages fill cache.maxBytes long before cache.maxEntries (a page of
// 20 users counts about 11 KB: its data and a tag per user), so the
// runbook's cache-full alert must watch the bytes too: with the entries
// alone it would never fire for a cache of search pages.
func TestCacheSearchPagesFillTheBytesBoundFirst(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, map[string]string{
		"GATEWAY_CACHE__MAXBYTES": "1MiB",
		// Random samples (full pages of the default 20) stay for the test.
		"GATEWAY_CACHE__ROUTES__SEARCH__EMPTYQUERYTTL": "1m",
	})
	tok := idp.UserToken(t)
	const pages = 150
	for page := 1; page <= pages; page++ {
		cchXCache(t, gw.Do(t, http.MethodGet, fmt.Sprintf("%s?page=%d", cchSearch, page), Bearer(tok)), "MISS")
	}

	var s struct {
		Entries, MaxEntries int
		Bytes, MaxBytes     int64
		Evictions           struct{ Capacity int }
	}
	cchOps(t, gw, http.MethodGet, "/ops/v1/cache").Data(t, &s)
	if perPage := s.Bytes / int64(s.Entries); perPage < 9000 || perPage > 14000 {
		t.Errorf("a full search page counts %d bytes, docs/runbook.md says about 11 KB", perPage)
	}
	if s.Evictions.Capacity == 0 || s.Entries+s.Evictions.Capacity != pages {
		t.Fatalf("%d pages stored: %+v, want the bound met and the rest evicted", pages, s)
	}
	// The runbook's "full" clause, on the exported gauges.
	byBytes := cchMetric(t, gw, "gateway_cache_bytes") / cchMetric(t, gw, "gateway_cache_max_bytes")
	byEntries := cchMetric(t, gw, "gateway_cache_entries") / cchMetric(t, gw, "gateway_cache_max_entries")
	if byBytes <= 0.95 || byEntries > 0.01 {
		t.Fatalf("fill by bytes %.3f, by entries %.5f: want full by bytes with almost no entries", byBytes, byEntries)
	}
}

// An operator purges one user's entries, one route, or everything, on the
// loopback ops listener (no credential needed there).
func TestCachePurgeOnTheOpsListener(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, nil)
	tok := idp.UserToken(t)
	other := st.otherUser(t)
	otherTok := idp.Token(t, other.ID, "user")

	type req struct {
		path string
		tok  string
	}
	demoMe := req{cchMe, tok}
	otherMe := req{cchMe, otherTok}
	demoPage := req{cchSearch + "?q=sukru", tok}
	otherPage := req{cchSearch + "?q=" + url.QueryEscape(other.Username), tok}
	emptyPage := req{cchSearch + "?q=nobodyhasthisname", tok}
	all := []req{demoMe, otherMe, demoPage, otherPage, emptyPage}
	expect := func(t *testing.T, want map[req]string) {
		t.Helper()
		for _, r := range all {
			w, ok := want[r]
			if !ok {
				w = "HIT"
			}
			resp := gw.Do(t, http.MethodGet, r.path, Bearer(r.tok))
			if resp.Status != http.StatusOK || resp.Header.Get("X-Cache") != w {
				t.Fatalf("%s: %d X-Cache %q, want %q", r.path, resp.Status, resp.Header.Get("X-Cache"), w)
			}
		}
	}
	miss := func(rs ...req) map[req]string {
		m := map[req]string{}
		for _, r := range rs {
			m[r] = "MISS"
		}
		return m
	}
	if p := cchPageOf(t, gw.Do(t, http.MethodGet, otherPage.path, Bearer(tok))); p.find(other.ID) == nil || p.find(refstore.DemoUserID) != nil {
		t.Fatalf("the other user's page should list them and not the demo user: %+v", p)
	}
	expect(t, miss(demoMe, otherMe, demoPage, emptyPage))

	purge := func(query string) *Response {
		return cchOps(t, gw, http.MethodPost, "/ops/v1/cache/purge?"+query)
	}
	// The demo user: their profile and the page that lists them.
	cchPurged(t, purge("user="+strings.ToUpper(refstore.DemoUserID)), 2)
	expect(t, miss(demoMe, demoPage))
	cchPurged(t, purge("route=search"), 3)
	expect(t, miss(demoPage, otherPage, emptyPage))
	cchPurged(t, purge("route=me"), 2)
	expect(t, miss(demoMe, otherMe))
	cchPurged(t, purge("all=true"), 5)
	expect(t, miss(all...))
	cchPurged(t, purge("user="+refstore.DemoMissingID), 0)

	// One of them, once: a typo in the user beside all=true (or any two
	// together) must not purge more than was meant.
	for _, bad := range []string{"", "user=not-a-uuid", "route=checkUsername", "all=yes",
		"user=not-a-uuid&all=true", "user=" + refstore.DemoUserID + "&all=true", "route=me&all=true",
		"user=" + refstore.DemoUserID + "&route=search", "all=true&all=true"} {
		r := purge(bad)
		errs := r.Failure(t, http.StatusBadRequest, "Validation failed")
		if len(errs) != 2 || errs[1] != "give one of user=<uuid>, route=search|me, all=true" {
			t.Fatalf("purge?%s: %q", bad, errs)
		}
	}
	if s := cchCacheStats(t, gw); s.Entries != 5 || s.Evictions.Purge != 12 {
		t.Fatalf("after the purges: %+v, want 5 entries and 12 purged", s)
	}
}

// The user store tells the gateway a user changed, with its own
// credential, on an ops listener that is reachable from the network: that
// user's entries go at once. Wrong or missing credentials change nothing.
func TestCacheInvalidationByTheUserStore(t *testing.T) {
	const opsToken, invToken = "ops-token-0123456789abcdef", "invalidation-0123456789abcdef"
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, map[string]string{
		"GATEWAY_OPS__LISTEN":              "0.0.0.0:0",
		"GATEWAY_OPS__TOKEN":               opsToken,
		"GATEWAY_CACHE__INVALIDATIONTOKEN": invToken,
	})
	tok := idp.UserToken(t)
	page := cchSearch + "?q=sukru"

	cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(tok)), "MISS")
	cchXCache(t, gw.Do(t, http.MethodGet, page, Bearer(tok)), "MISS")
	if _, err := st.Rename(context.Background(), refstore.DemoUserID, "Selim"); err != nil {
		t.Fatal(err)
	}
	me := gw.Do(t, http.MethodGet, cchMe, Bearer(tok))
	cchXCache(t, me, "HIT")
	if cchMeOf(t, me).FirstName != "Şükrü" {
		t.Fatal("the cached profile should still show the old name before the invalidation")
	}

	invalidate := func(body string, opts ...ReqOpt) *Response {
		return cchOps(t, gw, http.MethodPost, "/ops/v1/cache/invalidate", append(opts, JSONBody(body))...)
	}
	body := `{"userId":"` + refstore.DemoUserID + `"}`
	for name, opts := range map[string][]ReqOpt{
		"no credential":             nil,
		"wrong token":               {Bearer("invalidation-0123456789abcdeX")},
		"token without Bearer":      {Header("Authorization", invToken)},
		"a user's access token":     {Bearer(tok)},
		"token twice":               {Bearer(invToken), Bearer(invToken)},
		"lower-case scheme (basic)": {Header("Authorization", "Basic "+invToken)},
	} {
		r := invalidate(body, opts...)
		r.Failure(t, http.StatusUnauthorized, "Authentication required")
		if r.Header.Get("WWW-Authenticate") != `Bearer realm="ops"` {
			t.Fatalf("%s: WWW-Authenticate %q", name, r.Header.Get("WWW-Authenticate"))
		}
	}
	cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(tok)), "HIT")

	// Exactly {"userId": "<uuid>"}: no other spelling of the key, no second
	// one, nothing after the object.
	for _, bad := range []string{`{}`, `{"userId":"nope"}`, `{"userId":"` + refstore.DemoUserID + `","x":1}`, `not json`,
		`{"userId":"` + refstore.DemoUserID + `"} trailing`,
		`{"userId":"` + refstore.DemoUserID + `"}{"userId":"` + refstore.DemoUserID + `"}`,
		`{"UserID":"` + refstore.DemoUserID + `"}`,
		`{"userId":"` + refstore.DemoUserID + `","userId":"` + refstore.DemoUserID + `"}`,
		`{"userId":null}`, `{"userId":["` + refstore.DemoUserID + `"]}`,
	} {
		errs := invalidate(bad, Bearer(invToken)).Failure(t, http.StatusBadRequest, "Validation failed")
		if len(errs) != 2 {
			t.Fatalf("invalidate %s: %q", bad, errs)
		}
	}
	cchPurged(t, invalidate(body, Bearer(invToken)), 2)

	// At once: the profile and the page show the change.
	me = gw.Do(t, http.MethodGet, cchMe, Bearer(tok))
	cchXCache(t, me, "MISS")
	if cchMeOf(t, me).FirstName != "Selim" {
		t.Fatalf("after the invalidation the new name should show: %s", me.Body)
	}
	p := gw.Do(t, http.MethodGet, page, Bearer(tok))
	cchXCache(t, p, "MISS")
	if demo := cchPageOf(t, p).find(refstore.DemoUserID); demo == nil || demo.FirstName != "Selim" {
		t.Fatalf("the search page should show the new name: %s", p.Body)
	}

	// The invalidation credential does only that; the ops token and an
	// admin's access token may purge; the rest of ops needs a credential.
	cchOps(t, gw, http.MethodPost, "/ops/v1/cache/purge?all=true", Bearer(invToken)).Failure(t, http.StatusUnauthorized, "Authentication required")
	cchOps(t, gw, http.MethodGet, "/ops/v1/cache").Failure(t, http.StatusUnauthorized, "Authentication required")
	cchOps(t, gw, http.MethodPost, "/ops/v1/cache/purge?all=true", Bearer(tok)).Failure(t, http.StatusUnauthorized, "Authentication required")
	cchPurged(t, cchOps(t, gw, http.MethodPost, "/ops/v1/cache/purge?user="+refstore.DemoUserID, Bearer(opsToken)), 2)
	cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(tok)), "MISS")
	cchPurged(t, cchOps(t, gw, http.MethodPost, "/ops/v1/cache/purge?route=me", Bearer(idp.AdminToken(t))), 1)
	cchXCache(t, gw.Do(t, http.MethodGet, cchMe, Bearer(tok)), "MISS")
	cchPurged(t, invalidate(body, Bearer(opsToken)), 1)
	if s := cchCacheStats(t, gw, Bearer(opsToken)); s.Entries != 0 {
		t.Fatalf("entries left: %+v", s)
	}
}

// A platform whose policy bypasses the cache always reaches the store, and
// its answers never fill the cache for others.
func TestCachePolicyBypass(t *testing.T) {
	st := cchStartStore(t)
	idp := StartIdP(t)
	gw := cchGateway(t, st.URL, idp, map[string]string{"GATEWAY_POLICIES__API__CACHE__BYPASS": "true"})
	tok := idp.UserToken(t)

	for _, c := range []struct{ path, op string }{{cchSearch + "?q=sukru", refstore.OpSearch}, {cchMe, refstore.OpUser}} {
		for i := 1; i <= 3; i++ {
			r := gw.Do(t, http.MethodGet, c.path, Bearer(tok), Platform("api"))
			cchXCache(t, r, "BYPASS")
			if r.Header.Get("Cache-Control") != "private, no-store" || r.Header.Get("ETag") != "" {
				t.Fatalf("%s: bypass headers %v", c.path, r.Header)
			}
			if got := st.calls(c.op); got != int64(i) {
				t.Fatalf("%s: call %d made %d store calls", c.path, i, got)
			}
		}
		// The web platform has the same visibility: it would share the
		// entry, but the bypassing platform stored none.
		cchXCache(t, gw.Do(t, http.MethodGet, c.path, Bearer(tok)), "MISS")
		cchXCache(t, gw.Do(t, http.MethodGet, c.path, Bearer(tok)), "HIT")
		cchXCache(t, gw.Do(t, http.MethodGet, c.path, Bearer(tok), Platform("api")), "BYPASS")
	}
	for route, n := range map[string]float64{"users.search": 4, "users.me": 4} {
		if got := cchMetric(t, gw, `gateway_cache_lookups_total{route="`+route+`",status="bypass"}`); got != n {
			t.Fatalf("%s bypass lookups counted %v, want %v", route, got, n)
		}
		if got := cchMetric(t, gw, `gateway_cache_lookups_total{route="`+route+`",status="hit"}`); got != 1 {
			t.Fatalf("%s hits counted %v, want 1", route, got)
		}
	}
}

// A platform that bypasses the cache is told of a partial answer as every
// other platform is: X-Partial-Response, liveStream null.
func TestCachePolicyBypassMarksPartialAnswers(t *testing.T) {
	st := cchStartStore(t)
	proxy := cchProxy(t, st)
	idp := StartIdP(t)
	gw := cchGateway(t, proxy.URL(), idp, map[string]string{
		"GATEWAY_POLICIES__API__CACHE__BYPASS":                                   "true",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__LIVESTREAMS__RETRY__ATTEMPTS": "0",
	})
	tok := idp.UserToken(t)
	cchMust(t, proxy.SetPath(contract.PathLiveStreams, faultproxy.Status(500)))
	for _, path := range []string{cchSearch + "?q=sukru", cchMe} {
		r := gw.Do(t, http.MethodGet, path, Bearer(tok), Platform("api"))
		cchXCache(t, r, "BYPASS")
		if r.Header.Get("X-Partial-Response") != "liveStream" || r.Header.Get("Cache-Control") != "private, no-store" {
			t.Errorf("%s: a partial answer on a bypassing platform: %v", path, r.Header)
		}
	}
}
