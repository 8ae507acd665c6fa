package gateway

// Tests that many users, languages and request ids sharing the gateway's
// pooled state (pooled requests, keys built in their buffers, connection
// memos, shared cache loads and background refreshes) never get one
// another's answers. They run a real gateway on loopback, in front of a
// real JWKS and the reference user store.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
	"github.com/valyala/fasthttp"
)

// mixRig is a gateway serving on loopback, its identity provider and its
// user store.
type mixRig struct {
	s     *Server
	addr  string
	idp   *devidp.Provider
	store *refstore.Store
	held  chan struct{} // with TEST_STORE_HOLD: store calls wait until it is closed
}

func newMixRig(t *testing.T, envs ...map[string]string) *mixRig {
	t.Helper()
	idp, idpSrv := loopbackIDP(t, "http://idp.mix")
	st := loopbackStore(t, 300)
	var storeHandler http.Handler = st.Handler(refstore.HandlerOptions{})
	held := make(chan struct{})
	for _, env := range envs {
		if env["TEST_STORE_HOLD"] == "true" {
			inner := storeHandler
			storeHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-held:
				case <-r.Context().Done():
				}
				inner.ServeHTTP(w, r)
			})
		}
		if d, err := time.ParseDuration(env["TEST_STORE_MAX_DELAY"]); err == nil {
			inner := storeHandler
			storeHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(rand.N(d))
				inner.ServeHTTP(w, r)
			})
		}
	}
	stSrv := httptest.NewServer(storeHandler)
	t.Cleanup(stSrv.Close)

	all := map[string]string{
		"GATEWAY_AUTH__JWKSURLS":                idpSrv.URL + "/.well-known/jwks.json",
		"GATEWAY_AUTH__ISSUER":                  "http://idp.mix",
		"GATEWAY_UPSTREAMS__USERSTORE__BASEURL": stSrv.URL,
		"GATEWAY_LOG__ACCESS":                   "true",
	}
	raiseRateLimits(all, "ALL", "ADMIN")
	for _, env := range envs {
		for k, v := range env {
			all[k] = v
		}
	}
	s := newRepoServer(t, all, nil)
	return &mixRig{s: s, addr: serveLoopback(t, s), idp: idp, store: st, held: held}
}

// storeTimeouts gives every store operation the timeout d. Tests that
// want every answer (or hold a store call) give it 2s: a busy machine (a
// load of 10 on 2 cores, the race detector on) made a store call outlast
// config.yaml's 500ms for userById, and a caller got a 504.
func storeTimeouts(d string) map[string]string {
	env := map[string]string{}
	for _, op := range []string{"USERNAMECHECK", "SEARCH", "USERBYID", "LIVESTREAMS"} {
		env["GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__"+op+"__TIMEOUT"] = d
	}
	return env
}

// users returns n user ids of the store.
func (r *mixRig) users(t *testing.T, n int) []string {
	t.Helper()
	res, err := r.store.Search(context.Background(), "", n, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(res.Items))
	for _, u := range res.Items {
		ids = append(ids, u.ID)
	}
	if len(ids) < n {
		t.Fatalf("only %d users", len(ids))
	}
	return ids
}

func (r *mixRig) token(t *testing.T, sub string) string {
	t.Helper()
	tok, err := r.idp.Mint(devidp.MintClaims{Subject: sub, Roles: []string{"user"}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type mixEnvelope struct {
	StatusCode int             `json:"statusCode"`
	Data       json.RawMessage `json:"data"`
}

// Many apps, each user on its own token, over a few keep-alive connections
// that carry every user in turn (as a proxy's would), with /me entries
// expiring every few milliseconds so that misses, shared loads, stale
// answers and background refreshes all happen: every answer is its
// caller's own profile, in its caller's language, under its own request id.
func TestMixedUsersOnSharedConnectionsGetTheirOwnAnswers(t *testing.T) {
	r := newMixRig(t, map[string]string{
		"GATEWAY_CACHE__ROUTES__ME__TTL":                  "5ms",
		"GATEWAY_CACHE__ROUTES__ME__STALEWHILEREVALIDATE": "1s",
	}, storeTimeouts("2s"))
	ids := r.users(t, 12)
	tokens := make([]string, len(ids))
	for i, id := range ids {
		tokens[i] = r.token(t, id)
	}
	client := &fasthttp.HostClient{Addr: r.addr, MaxConns: 4, MaxConnWaitTimeout: 5 * time.Second}
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	var served, stale int
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for n := 0; time.Now().Before(deadline); n++ {
				i := rand.IntN(len(ids))
				lang := []string{"en", "tr"}[rand.IntN(2)]
				rid := fmt.Sprintf("mix-%d-%d-%s", w, n, ids[i][:8])
				req.Reset()
				req.SetRequestURI("http://" + r.addr + "/api/v1/users/me")
				req.Header.Set("Authorization", "Bearer "+tokens[i])
				req.Header.Set("X-Language", lang)
				req.Header.Set("X-Request-Id", rid)
				req.Header.Set("X-Platform", "web")
				if err := client.DoTimeout(req, resp, 5*time.Second); err != nil {
					fail("request: %v", err)
					return
				}
				if got := string(resp.Header.Peek("X-Request-Id")); got != rid {
					fail("X-Request-Id %q, sent %q", got, rid)
				}
				var env mixEnvelope
				if err := json.Unmarshal(resp.Body(), &env); err != nil || resp.StatusCode() != 200 {
					fail("status %d: %s", resp.StatusCode(), resp.Body())
					continue
				}
				var u struct {
					ID          string `json:"id"`
					MinutePrice struct {
						Display string `json:"display"`
					} `json:"minutePrice"`
				}
				if err := json.Unmarshal(env.Data, &u); err != nil {
					fail("data: %v", err)
					continue
				}
				if u.ID != ids[i] {
					fail("user %s got the profile of %s (X-Cache %s)", ids[i], u.ID, resp.Header.Peek("X-Cache"))
				}
				// "₺12.50" in English, "12,50 ₺" in Turkish: the currency
				// sign leads in English only.
				if d := u.MinutePrice.Display; d != "" {
					if en := !('0' <= d[0] && d[0] <= '9'); en != (lang == "en") {
						fail("language %s got the price display %q", lang, d)
					}
				}
				mu.Lock()
				served++
				if string(resp.Header.Peek("X-Cache")) == "STALE" {
					stale++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d answers, %d stale", served, stale)
	if served < 20 {
		t.Errorf("only %d answers", served)
	}
}

// Every route at once, over shared keep-alive connections: username checks
// (bodies of many sizes), admin look-ups by path id, searches in both
// languages and /me; each answer must be the one its own request asked for.
func TestMixedRoutesOnSharedConnectionsGetTheirOwnAnswers(t *testing.T) {
	for _, tracing := range []bool{false, true} {
		t.Run(fmt.Sprintf("tracing=%v", tracing), func(t *testing.T) { mixedRoutes(t, tracing, false) })
	}
	// A store slower than the requests' deadline: callers give up on
	// shared loads that go on (and store) after their pooled requests
	// were released and reused.
	t.Run("slow store", func(t *testing.T) { mixedRoutes(t, false, true) })
}

func mixedRoutes(t *testing.T, tracing, slow bool) {
	env := storeTimeouts("2s")
	if slow {
		env = storeTimeouts("60ms")
		env["TEST_STORE_MAX_DELAY"] = "120ms"
		env["GATEWAY_SERVER__REQUESTTIMEOUT"] = "60ms"
	}
	if tracing {
		// Spans go to a collector that takes anything.
		col := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		t.Cleanup(col.Close)
		env["GATEWAY_TRACING__ENABLED"] = "true"
		env["GATEWAY_TRACING__ENDPOINT"] = strings.TrimPrefix(col.URL, "http://")
		env["GATEWAY_TRACING__INSECURE"] = "true"
		env["GATEWAY_TRACING__SAMPLERATIO"] = "1"
	}
	r := newMixRig(t, map[string]string{
		"GATEWAY_CACHE__ROUTES__ME__TTL":                      "5ms",
		"GATEWAY_CACHE__ROUTES__ME__STALEWHILEREVALIDATE":     "1s",
		"GATEWAY_CACHE__ROUTES__SEARCH__TTL":                  "5ms",
		"GATEWAY_CACHE__ROUTES__SEARCH__STALEWHILEREVALIDATE": "1s",
	}, env)
	ctx := context.Background()
	res, err := r.store.Search(ctx, "", 30, 0)
	if err != nil {
		t.Fatal(err)
	}
	type user struct{ id, username, first, token string }
	var users []user
	for _, u := range res.Items {
		users = append(users, user{u.ID, u.Username, u.FirstName, r.token(t, u.ID)})
	}
	admin, err := r.idp.Mint(devidp.MintClaims{Subject: users[0].id, Roles: []string{"user", "admin"}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// What the store says, asked directly.
	searches := map[string][]string{}
	for _, u := range users[:10] {
		q := contract.NormalizeQuery(u.first)
		if _, done := searches[q]; done {
			continue
		}
		sr, err := r.store.Search(ctx, q, 5, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range sr.Items {
			searches[q] = append(searches[q], it.ID)
		}
	}
	client := &fasthttp.HostClient{Addr: r.addr, MaxConns: 3, MaxConnWaitTimeout: 5 * time.Second}
	deadline := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	counts := map[string]int{}
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	queries := make([]string, 0, len(searches))
	for q := range searches {
		queries = append(queries, q)
	}
	timeouts := 0
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for n := 0; time.Now().Before(deadline); n++ {
				u := users[rand.IntN(len(users))]
				req.Reset()
				rid := fmt.Sprintf("mix-%d-%d", w, n)
				req.Header.Set("X-Request-Id", rid)
				req.Header.Set("X-Language", []string{"en", "tr"}[rand.IntN(2)])
				kind := []string{"username", "admin", "search", "me"}[rand.IntN(4)]
				var check func(data json.RawMessage)
				switch kind {
				case "username":
					// A taken name (padded to vary the body's length) or a free one.
					name, want := u.username, false
					if rand.IntN(2) == 0 {
						name, want = fmt.Sprintf("free%dx%d", w, n), true
					}
					// Capitals half the time: the canonical name is then
					// pooled bytes (canonicalUsername, usernameCheck).
					if rand.IntN(2) == 0 {
						name = strings.ToUpper(name)
					}
					req.Header.SetMethod("POST")
					req.SetRequestURI("http://" + r.addr + "/api/v1/users/check-username")
					req.Header.SetContentType("application/json")
					req.Header.Set("Authorization", "Bearer "+u.token)
					req.SetBodyString(`{"username":"` + name + `"` + strings.Repeat(" ", rand.IntN(64)) + `}`)
					check = func(data json.RawMessage) {
						var d struct{ Available bool }
						_ = json.Unmarshal(data, &d)
						if d.Available != want {
							fail("username %q: available %v, want %v", name, d.Available, want)
						}
					}
				case "admin":
					target := users[rand.IntN(len(users))]
					req.SetRequestURI("http://" + r.addr + "/api/admin/v1/users/" + target.id)
					req.Header.Set("Authorization", "Bearer "+admin)
					req.Header.Set("X-Platform", "admin")
					check = func(data json.RawMessage) {
						var d struct{ ID string }
						_ = json.Unmarshal(data, &d)
						if d.ID != target.id {
							fail("admin asked for %s, got %s", target.id, d.ID)
						}
					}
				case "search":
					q := queries[rand.IntN(len(queries))]
					req.SetRequestURI("http://" + r.addr + "/api/v2/users/search?limit=5&query=" + url.QueryEscape(q))
					req.Header.Set("Authorization", "Bearer "+u.token)
					check = func(data json.RawMessage) {
						var d struct{ Items []struct{ ID string } }
						_ = json.Unmarshal(data, &d)
						var got []string
						for _, it := range d.Items {
							got = append(got, it.ID)
						}
						if !slices.Equal(got, searches[q]) {
							fail("search %q: %v, want %v", q, got, searches[q])
						}
					}
				case "me":
					req.SetRequestURI("http://" + r.addr + "/api/v1/users/me")
					req.Header.Set("Authorization", "Bearer "+u.token)
					check = func(data json.RawMessage) {
						var d struct{ ID string }
						_ = json.Unmarshal(data, &d)
						if d.ID != u.id {
							fail("me of %s: got %s", u.id, d.ID)
						}
					}
				}
				if err := client.DoTimeout(req, resp, 5*time.Second); err != nil {
					fail("%s: %v", kind, err)
					return
				}
				if got := string(resp.Header.Peek("X-Request-Id")); got != rid {
					fail("%s: X-Request-Id %q, sent %q", kind, got, rid)
				}
				if slow && resp.StatusCode() == 504 {
					mu.Lock()
					timeouts++
					mu.Unlock()
					continue
				}
				var env mixEnvelope
				if err := json.Unmarshal(resp.Body(), &env); err != nil || resp.StatusCode() != 200 {
					fail("%s: status %d: %s", kind, resp.StatusCode(), resp.Body())
					continue
				}
				check(env.Data)
				mu.Lock()
				counts[kind]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("answers: %v, timeouts %d", counts, timeouts)
	if slow && timeouts == 0 {
		t.Error("no request ran out of time: the abandoned loads were not exercised")
	}
}
