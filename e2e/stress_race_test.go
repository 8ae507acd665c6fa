package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/faultproxy"
	"github.com/bffgate/edge/upstream/refstore"
)

// TestStressRaceEverythingAtOnce runs the gateway binary built with the race
// detector and, for a few seconds, does everything at once to it: many
// users on keep-alive and fresh connections reading their profiles (HEAD
// and revalidation included), cached and uncached searches, username
// checks with valid, invalid, chunked, cut-off and reset bodies, the admin
// routes, configuration reloads that change TTLs, a rate limit and the log
// level, cache purges and invalidations, a key rotation at the identity
// provider (a new key appears, the old one goes) and a user store that
// slows down and fails so that breakers open and close. Then it lets the
// gateway come to rest and stops it with requests in flight.
//
// It checks what must hold whatever the interleaving: the race detector
// reports nothing and no panic is logged; every answer is the envelope
// (or an empty 304 or HEAD answer) and none is a 500; no /me answer
// carries another user's profile and no admin answer another user's; a
// token of the removed key stops working, on the connection that used it
// too; once the load ends, the breakers close, no request is counted in
// flight and no goroutine is left over beyond idle server workers; and a
// graceful shutdown answers the requests in flight and exits 0 within
// the drain timeout.
func TestStressRaceEverythingAtOnce(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	proxy, err := faultproxy.New(store.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })

	cfg := strsConfig{searchTTL: "2s", meTTL: "500ms", apiRate: 5, level: "info"}
	gw := StartGateway(t, GatewayOptions{
		StoreURL: proxy.URL(), IdP: idp, Race: true,
		ConfigYAML: cfg.yaml(t),
		Env: map[string]string{
			"GATEWAY_LOG__LEVEL":                           "", // the file's, which reloads change
			"GATEWAY_AUTH__JWKS__UNKNOWNKIDINTERVAL":       "100ms",
			"GATEWAY_AUTH__JWKS__REFRESHINTERVAL":          "700ms",
			"GATEWAY_AUTH__JWKS__UNKNOWNKIDWAIT":           "2s",
			"GATEWAY_OPS__PPROF":                           "true",
			"GATEWAY_SERVER__DRAINTIMEOUT":                 strsDrain.String(),
			strsBreakerEnv("USERNAMECHECK", "OPENTIMEOUT"): "300ms",
			strsBreakerEnv("SEARCH", "OPENTIMEOUT"):        "300ms",
			strsBreakerEnv("USERBYID", "OPENTIMEOUT"):      "300ms",
			strsBreakerEnv("LIVESTREAMS", "OPENTIMEOUT"):   "300ms",
		},
	})
	addr := strings.TrimPrefix(gw.URL, "http://")

	// Users: the demo user and others the store knows; the last one only
	// meets the rate limit (below), in a bucket no other worker refills.
	all := strsUsers(t, gw, idp, 7)
	users, limited := all[:6], all[6]
	tokens := &strsTokenSet{}
	tokens.mint(t, idp, all)
	firstKID := idp.CurrentKID(devidp.RS256)
	holderToken := idp.Token(t, users[0], "user") // signed with firstKID, used on one connection throughout

	// The resting state to come back to: after one request of every kind,
	// with every client connection closed.
	strsWarmUp(t, gw, tokens.load(), users)
	baseline := strsGoroutines(t, gw)

	var (
		fails  strsFailures
		counts strsCounts
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	run := func(name string, n int, f func(w int, rnd *rand.Rand)) {
		for w := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rnd := rand.New(rand.NewPCG(uint64(w), uint64(len(name))))
				for {
					select {
					case <-stop:
						return
					default:
					}
					f(w, rnd)
				}
			}()
		}
	}
	var transports []*http.Transport
	var trMu sync.Mutex
	client := func(keepAlive bool) *http.Client {
		tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}
		trMu.Lock()
		transports = append(transports, tr)
		trMu.Unlock()
		return &http.Client{Transport: tr, Timeout: 20 * time.Second}
	}
	platforms := []string{"ios", "android", "web", "mobile_ios", "api", "unknown", ""}

	// Profiles: one keep-alive connection per user, and fresh connections.
	meClients := make([]*http.Client, len(users))
	for i := range users {
		meClients[i] = client(true)
	}
	fresh := client(false)
	meOnce := func(c *http.Client, user string, rnd *rand.Rand, etag *string) {
		ts := tokens.load()
		method := http.MethodGet
		if rnd.IntN(8) == 0 {
			method = http.MethodHead
		}
		opts := []ReqOpt{Bearer(ts.byUser[user]), Platform(platforms[rnd.IntN(len(platforms))])}
		if rnd.IntN(2) == 0 {
			opts = append(opts, Lang("tr"))
		}
		if etag != nil && *etag != "" && rnd.IntN(3) == 0 {
			opts = append(opts, Header("If-None-Match", *etag))
		}
		r, err := strsDo(c, method, gw.URL+"/api/v1/users/me", opts...)
		if err != nil {
			fails.add("GET /me as %s: %v", user, err)
			return
		}
		counts.add(fmt.Sprintf("me %s %d %s", method, r.Status, r.Header.Get("X-Cache")))
		if err := strsCheck(r, method, tokens.replaced(ts)); err != nil {
			fails.add("%s /me as %s: %v", method, user, err)
			return
		}
		if r.Status == http.StatusOK && method == http.MethodGet {
			var d struct{ ID string }
			e, _ := r.CheckEnvelope()
			if err := json.Unmarshal(e.Data, &d); err != nil || d.ID != user {
				fails.add("/me as %s answered the profile of %q: %s", user, d.ID, r.Body)
			}
			counts.add("me ok " + user)
			if etag != nil {
				*etag = r.Header.Get("ETag")
			}
		}
	}
	run("me keep-alive", len(users), func(w int, rnd *rand.Rand) {
		var etag string
		for range 20 {
			meOnce(meClients[w], users[w], rnd, &etag)
		}
	})
	run("me fresh", 2, func(w int, rnd *rand.Rand) {
		meOnce(fresh, users[rnd.IntN(len(users))], rnd, nil)
	})

	// The api platform's per-user limit (rate 1, 5 or 50 as the reloads
	// change it): one user asks without pause from two connections, so
	// that refusals meet the reloads. The mix above seldom reaches it: a
	// user's bucket is one for every platform, and the looser platforms'
	// requests refill it (a loaded run had no 429).
	limitedOnce := func(c *http.Client) int {
		ts := tokens.load()
		r, err := strsDo(c, http.MethodGet, gw.URL+"/api/v1/users/me", Bearer(ts.byUser[limited]), Platform("api"))
		if err != nil {
			fails.add("GET /me as %s on the api platform: %v", limited, err)
			return 0
		}
		counts.add(fmt.Sprintf("limited %d", r.Status))
		if err := strsCheck(r, http.MethodGet, tokens.replaced(ts)); err != nil {
			fails.add("GET /me as %s on the api platform: %v", limited, err)
		}
		return r.Status
	}
	limitClients := []*http.Client{client(true), client(true)}
	run("limited", len(limitClients), func(w int, rnd *rand.Rand) {
		limitedOnce(limitClients[w])
		// Well above every rate the reloads set (at most 50/s), without
		// taking the race-built gateway's time from the other workers.
		time.Sleep(10 * time.Millisecond)
	})

	// Searches: a few popular queries (cached) and one-off ones.
	popular := []string{"sukru", "ayse", "mehmet", "ali", "zeynep"}
	searchOnce := func(c *http.Client, path, user, platform string) {
		ts := tokens.load()
		r, err := strsDo(c, http.MethodGet, gw.URL+path, Bearer(ts.byUser[user]), Platform(platform))
		if err != nil {
			fails.add("search: %v", err)
			return
		}
		counts.add(fmt.Sprintf("search %d %s", r.Status, r.Header.Get("X-Cache")))
		if err := strsCheck(r, http.MethodGet, tokens.replaced(ts)); err != nil {
			fails.add("search %s: %v", path, err)
		}
	}
	searchClient := client(true)
	run("search", 2, func(w int, rnd *rand.Rand) {
		// Popular searches come in two page sizes only, so that they hit
		// the cache even when faults leave few answers to cache (a page
		// size per request made 100 keys: a loaded run had no hit).
		q, limit := popular[rnd.IntN(len(popular))], 5*(1+rnd.IntN(2))
		if rnd.IntN(3) == 0 {
			q, limit = strsWord(rnd), 1+rnd.IntN(20)
		}
		path := "/api/v2/users/search?query=" + url.QueryEscape(q) + "&limit=" + strconv.Itoa(limit)
		c := searchClient
		if rnd.IntN(4) == 0 {
			c = fresh
		}
		searchOnce(c, path, users[rnd.IntN(len(users))], platforms[rnd.IntN(len(platforms))])
	})
	// The same search twice in a row: the second is a HIT unless a purge,
	// an expiry (the TTL goes down to 300ms) or a failing store came
	// between. The mix above spreads too few searches over too many keys
	// for that on a loaded machine (a loaded run had no hit).
	pairClient := client(true)
	run("search twice", 1, func(w int, rnd *rand.Rand) {
		path := "/api/v2/users/search?query=" + popular[rnd.IntN(len(popular))] + "&limit=3"
		user, platform := users[rnd.IntN(len(users))], platforms[rnd.IntN(len(platforms))]
		searchOnce(pairClient, path, user, platform)
		searchOnce(pairClient, path, user, platform)
	})

	// Username checks, on raw connections: whole bodies (valid and not,
	// with a Content-Length or chunked), bodies cut off, connections reset.
	run("username", 2, func(w int, rnd *rand.Rand) {
		ts := tokens.load()
		token := ts.byUser[users[rnd.IntN(len(users))]]
		body := []string{`{"username":"johndoe123"}`, `{"username":"Sukru.Isik"}`, `{"username":"a"}`,
			`{"username":"x__y"}`, `{"username":`, `{"user":"abc"}`, `{"username":"İsmail"}`}[rnd.IntN(7)]
		head := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + token +
			"\r\nContent-Type: application/json\r\nX-Platform: " + platforms[rnd.IntN(len(platforms))] + "\r\n"
		switch kind := rnd.IntN(6); kind {
		case 0, 1: // whole, with a Content-Length, two on one connection
			raw := head + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
			strsRaw(addr, &fails, &counts, tokens.replaced(ts), raw, raw)
		case 2: // chunked, in two chunks
			cut := len(body) / 2
			raw := head + "Transfer-Encoding: chunked\r\n\r\n" +
				strconv.FormatInt(int64(cut), 16) + "\r\n" + body[:cut] + "\r\n" +
				strconv.FormatInt(int64(len(body)-cut), 16) + "\r\n" + body[cut:] + "\r\n0\r\n\r\n"
			strsRaw(addr, &fails, &counts, tokens.replaced(ts), raw)
		case 3: // the body cut off: the client goes away
			strsAbandon(addr, head+"Content-Length: 200\r\n\r\n"+body, false)
		case 4: // reset in the middle of the header block
			strsAbandon(addr, head[:10+rnd.IntN(len(head)-10)], true)
		case 5: // reset right after a whole request, before its answer
			strsAbandon(addr, head+"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body, true)
		}
	})

	// The admin platform: its search and a user by id.
	adminClient := client(true)
	run("admin", 1, func(w int, rnd *rand.Rand) {
		ts := tokens.load()
		id := users[rnd.IntN(len(users))]
		path := "/api/admin/v1/users/" + id
		if rnd.IntN(2) == 0 {
			path = "/api/admin/v1/users/search?query=" + popular[rnd.IntN(len(popular))]
		}
		r, err := strsDo(adminClient, http.MethodGet, gw.URL+path, Bearer(ts.admin), Platform("admin"))
		if err != nil {
			fails.add("admin %s: %v", path, err)
			return
		}
		counts.add(fmt.Sprintf("admin %d", r.Status))
		if err := strsCheck(r, http.MethodGet, tokens.replaced(ts)); err != nil {
			fails.add("admin %s: %v", path, err)
			return
		}
		if r.Status == http.StatusOK && !strings.Contains(path, "search") {
			var d struct{ ID string }
			e, _ := r.CheckEnvelope()
			if json.Unmarshal(e.Data, &d) != nil || d.ID != id {
				fails.add("admin user %s answered %q: %s", id, d.ID, r.Body)
			}
		}
	})

	// The connection that keeps a token of the first key: accepted until
	// the gateway learns that the key is gone, refused from then on.
	var holderRefused atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := client(true)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			r, err := strsDo(c, http.MethodGet, gw.URL+"/api/v1/users/me", Bearer(holderToken))
			if err != nil {
				fails.add("holder: %v", err)
				continue
			}
			if err := strsCheck(r, http.MethodGet, true); err != nil {
				fails.add("holder: %v", err)
				continue
			}
			switch {
			case r.Status == http.StatusUnauthorized:
				holderRefused.Store(true)
			case holderRefused.Load() && r.Status != http.StatusUnauthorized:
				fails.add("a token of the removed key was refused, then accepted again: %d %s", r.Status, r.Body)
			}
		}
	}()

	// Operations: purges, invalidations, stats, metrics, the config.
	opsClient := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	run("ops", 1, func(w int, rnd *rand.Rand) {
		time.Sleep(150 * time.Millisecond)
		method, path, body := http.MethodPost, "", ""
		switch rnd.IntN(8) {
		case 0:
			path = "/ops/v1/cache/purge?user=" + users[rnd.IntN(len(users))]
		case 1:
			path = "/ops/v1/cache/purge?route=me"
		case 2:
			path = "/ops/v1/cache/purge?route=search"
		case 3:
			path = "/ops/v1/cache/purge?all=true"
		case 4:
			path, body = "/ops/v1/cache/invalidate", `{"userId":"`+users[rnd.IntN(len(users))]+`"}`
		case 5:
			method, path = http.MethodGet, "/ops/v1/cache"
		case 6:
			method, path = http.MethodGet, "/ops/v1/breakers"
		case 7:
			method, path = http.MethodGet, "/ops/v1/config"
		}
		var opts []ReqOpt
		if body != "" {
			opts = append(opts, JSONBody(body))
		}
		r, err := strsDo(opsClient, method, gw.OpsURL+path, opts...)
		if err != nil {
			fails.add("ops %s: %v", path, err)
			return
		}
		counts.add("ops " + strconv.Itoa(r.Status))
		if _, err := r.CheckEnvelope(); err != nil || r.Status != http.StatusOK {
			fails.add("ops %s %s: %d %v", method, path, r.Status, err)
		}
	})

	// Reloads: TTLs, the api platform's per-user limit and the log level
	// change, by SIGHUP (and the file watch sees each write too).
	var variants []string
	for _, v := range []strsConfig{
		{searchTTL: "300ms", meTTL: "200ms", apiRate: 1, level: "debug"},
		{searchTTL: "5s", meTTL: "2s", apiRate: 50, level: "warn"},
		{searchTTL: "1s", meTTL: "500ms", apiRate: 5, level: "info"},
	} {
		variants = append(variants, v.yaml(t))
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			// Replaced whole, as deploy tools do: written in place, the
			// file watch's reload (or a late SIGHUP's) can read the next
			// write half done and reject it.
			if err := polReplace(gw.ConfigPath, variants[i%len(variants)]); err != nil {
				fails.add("writing the config: %v", err)
				return
			}
			_ = gw.cmd.Process.Signal(syscall.SIGHUP)
		}
	}()

	// The store: slow, failing, reset, flapping, healthy again.
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Healthy every other step, so that answers are served and cached
		// between the failures.
		modes := []faultproxy.Mode{
			faultproxy.Forward(), faultproxy.Delay(700 * time.Millisecond),
			faultproxy.Forward(), faultproxy.Status(503),
			faultproxy.Forward(), faultproxy.Reset(),
			faultproxy.Forward(), faultproxy.FlapEvery(60*time.Millisecond, faultproxy.Status(500)),
			faultproxy.Forward(), faultproxy.HangUp(),
		}
		for i := 0; ; i++ {
			if err := proxy.Set(modes[i%len(modes)]); err != nil {
				fails.add("fault proxy: %v", err)
			}
			select {
			case <-stop:
				return
			case <-time.After(350 * time.Millisecond):
			}
		}
	}()

	// The identity provider rotates: a new key appears and signs every new
	// token; later the first key goes and yet another appears, whose first
	// token makes the gateway fetch the set without the first key.
	time.Sleep(1500 * time.Millisecond)
	if _, err := idp.Rotate(devidp.RS256); err != nil {
		t.Fatal(err)
	}
	tokens.mint(t, idp, all)
	time.Sleep(1500 * time.Millisecond)
	if !idp.RemoveKey(firstKID) {
		t.Fatal("the first key was not there to remove")
	}
	if _, err := idp.Rotate(devidp.RS256); err != nil {
		t.Fatal(err)
	}
	tokens.mint(t, idp, all)
	time.Sleep(2 * time.Second)
	close(stop)
	workersDone := make(chan struct{})
	go func() { wg.Wait(); close(workersDone) }()
	select {
	case <-workersDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the load's workers did not stop")
	}
	_ = proxy.Heal()
	// Back to the info level, which the stop's log lines need.
	polReplaceFile(t, gw.ConfigPath, cfg.yaml(t))
	gw.Signal(t, syscall.SIGHUP)
	eventually(t, 10*time.Second, func() error {
		r, err := strsDo(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, http.MethodGet, gw.OpsURL+"/ops/v1/config")
		if err != nil {
			return err
		}
		if !strings.Contains(string(r.Body), `"level":"info"`) {
			return fmt.Errorf("log level not info yet")
		}
		return nil
	})

	// The limit refuses for certain now, at the file's rate (5 a second,
	// burst 10): four connections asking without pause spend the burst
	// long before it refills, however slowly the gateway answers; the
	// deadline only guards against a hang.
	var refused atomic.Bool
	var limitWG sync.WaitGroup
	limitUntil := time.Now().Add(20 * time.Second)
	for range 4 {
		c := client(true)
		limitWG.Go(func() {
			for !refused.Load() && time.Now().Before(limitUntil) {
				if limitedOnce(c) == http.StatusTooManyRequests {
					refused.Store(true)
				}
			}
		})
	}
	limitWG.Wait()
	if !refused.Load() {
		t.Errorf("the api platform's per-user limit (rate 5, burst 10) never refused %s", limited)
	}

	for _, f := range fails.list() {
		t.Error(f)
	}
	t.Logf("answers: %s", counts.String())
	strsNoRaceNoPanic(t, gw)

	// The load did what it is for (the rate limit's refusals and the
	// cache's hits, which a loaded machine may not reach, are made
	// certain apart).
	for _, u := range users {
		if counts.get("me ok "+u) == 0 {
			t.Errorf("user %s never got their profile", u)
		}
	}
	for _, kind := range []string{"me GET 304 ", "me HEAD 200 ", "me GET 200 STALE", "search 200 MISS",
		"username 200", "username 400", "admin 200", "ops 200"} {
		counts.atLeastOne(t, kind)
	}
	counts.atLeastOne(t, "me GET 502", "me GET 503", "me GET 504", "search 502", "search 503", "search 504")
	if !holderRefused.Load() {
		t.Errorf("the token of the removed key %s was never refused", firstKID)
	}
	if !regexp.MustCompile(`"msg":"upstream breaker state changed"[^\n]*"to":"open"`).MatchString(gw.Logs()) {
		t.Errorf("no breaker opened")
	}
	if n := strings.Count(gw.Logs(), `"msg":"config reloaded"`); n < 5 {
		t.Errorf("%d reloads applied, want several", n)
	}
	for _, line := range strings.Split(gw.Logs(), "\n") {
		if strings.Contains(line, "config reload rejected") {
			t.Errorf("a reload was rejected: %s", line)
		}
	}

	// At rest: closed connections, healed store.
	trMu.Lock()
	for _, tr := range transports {
		tr.CloseIdleConnections()
	}
	trMu.Unlock()
	strsBreakersClose(t, gw, tokens.load(), users)
	// The cache's hits, for certain: the load may have had too few
	// (searches fail while the store does); at rest, with a 2s TTL, a
	// search asked twice in a row is answered the second time from cache.
	for i, want := range []string{"MISS", "HIT"} {
		r := gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru&limit=4", Bearer(tokens.load().byUser[users[0]]))
		if r.Status != http.StatusOK || r.Header.Get("X-Cache") != want {
			t.Errorf("search %d at rest: %d X-Cache %q, want 200 %s", i+1, r.Status, r.Header.Get("X-Cache"), want)
		}
	}
	trMu.Lock()
	for _, tr := range transports {
		tr.CloseIdleConnections()
	}
	trMu.Unlock()
	gw.client.Transport.(*http.Transport).CloseIdleConnections()
	eventually(t, 15*time.Second, func() error {
		if n := strsMetric(t, gw, "gateway_requests_in_flight"); n != 0 {
			return fmt.Errorf("gateway_requests_in_flight %v", n)
		}
		// The count decides; the stacks only explain. A goroutine caught
		// mid-step (the profile's own connection reading, the accept loop
		// between two connections) shows another stack than at rest.
		if now := strsGoroutines(t, gw); now.total > baseline.total {
			return fmt.Errorf("goroutines beyond the resting %d (now %d):\n%s", baseline.total, now.total, strings.Join(now.beyond(baseline), "\n"))
		}
		return nil
	})

	// The rotation's outcome: the first key's tokens are refused anywhere,
	// the newest key's accepted.
	if r := gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(holderToken)); r.Status != http.StatusUnauthorized {
		t.Errorf("a token of the removed key: %d %s", r.Status, r.Body)
	}
	var me struct{ ID string }
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(tokens.load().byUser[users[0]])).Data(t, &me)
	if me.ID != users[0] {
		t.Errorf("/me of %s answered %s", users[0], me.ID)
	}

	// Shutdown with requests in flight: each is answered, and the process
	// exits 0 within the drain timeout.
	if err := proxy.SetPath(contract.PathSearch, faultproxy.Delay(600*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	// Only these searches are counted at the store: a /me answered stale
	// above may still send its refresh there.
	proxy.Record(true)
	answers := make(chan error, 6)
	for i := range cap(answers) {
		slow := client(false) // its own connection: all six are in flight at once
		go func() {
			r, err := strsDo(slow, http.MethodGet, gw.URL+"/api/v2/users/search?query=draining"+strconv.Itoa(i),
				Bearer(tokens.load().byUser[users[0]]))
			switch {
			case err != nil:
				answers <- err
			case r.Status != http.StatusOK:
				answers <- fmt.Errorf("status %d: %s", r.Status, r.Body)
			default:
				_, err := r.CheckEnvelope()
				answers <- err
			}
		}()
	}
	eventually(t, 10*time.Second, func() error {
		got := 0
		for _, r := range proxy.Seen() {
			if strings.Contains(r.RequestURI, "draining") {
				got++
			}
		}
		if got < cap(answers) {
			return fmt.Errorf("%d of %d slow searches at the store", got, cap(answers))
		}
		return nil
	})
	stopAt := time.Now()
	gw.Signal(t, syscall.SIGTERM)
	for range cap(answers) {
		if err := <-answers; err != nil {
			t.Errorf("a search in flight at shutdown: %v", err)
		}
	}
	select {
	case <-gw.stopped:
	case <-time.After(strsDrain + 10*time.Second):
		t.Fatalf("the gateway did not exit within the drain timeout %s (and a margin)", strsDrain)
	}
	if took := time.Since(stopAt); took > strsDrain+5*time.Second {
		t.Errorf("the gateway took %s to exit; drain timeout %s", took, strsDrain)
	}
	if gw.exitErr != nil {
		t.Errorf("the gateway exited with %v", gw.exitErr)
	}
	if !strings.Contains(gw.Logs(), `"msg":"stopped","drained":true`) {
		t.Errorf("no drained stop logged")
	}
	strsNoRaceNoPanic(t, gw)
}

const strsDrain = 8 * time.Second

// strsConfig is what the reloads change.
type strsConfig struct {
	searchTTL, meTTL string
	apiRate          int
	level            string
}

// yaml is the repository's config.yaml with the values changed.
func (c strsConfig) yaml(t testing.TB) string {
	raw, err := os.ReadFile(repoRoot + "/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for _, r := range [][2]string{
		{"      ttl: 30s\n      emptyQueryTTL: 5s", "      ttl: " + c.searchTTL + "\n      emptyQueryTTL: " + c.searchTTL},
		{"    me:\n      ttl: 10s", "    me:\n      ttl: " + c.meTTL},
		{"  level: info", "  level: " + c.level},
		{"      perUser: {rate: 5, burst: 10}", fmt.Sprintf("      perUser: {rate: %d, burst: %d}", c.apiRate, 2*c.apiRate)},
	} {
		if strings.Count(s, r[0]) != 1 {
			t.Fatalf("config.yaml no longer has %q once", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return s
}

func strsBreakerEnv(op, key string) string {
	return "GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__" + op + "__BREAKER__" + key
}

// strsTokenSet is every user's current token; a rotation replaces it.
type strsTokenSet struct{ cur atomic.Pointer[strsTokens] }

type strsTokens struct {
	gen    int
	byUser map[string]string
	admin  string
}

func (s *strsTokenSet) load() *strsTokens { return s.cur.Load() }

func (s *strsTokenSet) mint(t testing.TB, idp *IdP, users []string) {
	next := &strsTokens{byUser: map[string]string{}, admin: idp.AdminToken(t)}
	if old := s.cur.Load(); old != nil {
		next.gen = old.gen + 1
	}
	for _, u := range users {
		next.byUser[u] = idp.Token(t, u, "user")
	}
	s.cur.Store(next)
}

// replaced: the tokens were replaced by a newer set (their key may be gone).
func (s *strsTokenSet) replaced(ts *strsTokens) bool { return s.cur.Load().gen > ts.gen }

// strsUsers are the demo user and n-1 more the store knows.
func strsUsers(t testing.TB, gw *Gateway, idp *IdP, n int) []string {
	t.Helper()
	var page struct{ Items []struct{ ID string } }
	gw.Do(t, http.MethodGet, "/api/v2/users/search?query=a&limit=20", Bearer(idp.UserToken(t))).Data(t, &page)
	users := []string{refstore.DemoUserID}
	for _, it := range page.Items {
		if it.ID != refstore.DemoUserID && it.ID != refstore.DemoAdminID && len(users) < n {
			users = append(users, it.ID)
		}
	}
	if len(users) < n {
		t.Fatalf("only %d users found", len(users))
	}
	return users
}

// strsWarmUp makes one request of every kind, so that what starts once
// (connection cleaners, pools) is in the baseline.
func strsWarmUp(t testing.TB, gw *Gateway, ts *strsTokens, users []string) {
	t.Helper()
	for _, u := range users {
		gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(ts.byUser[u])).Data(t, nil)
	}
	gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru", Bearer(ts.byUser[users[0]])).Data(t, nil)
	gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(ts.byUser[users[0]]), JSONBody(`{"username":"johndoe123"}`)).Data(t, nil)
	gw.Do(t, http.MethodGet, "/api/admin/v1/users/"+users[1], Bearer(ts.admin), Platform("admin")).Data(t, nil)
	gw.Ops(t, http.MethodPost, "/ops/v1/cache/purge?all=true").Data(t, nil)
	gw.client.Transport.(*http.Transport).CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
}

// strsDo sends one request and reads its answer.
func strsDo(c *http.Client, method, url string, opts ...ReqOpt) (*Response, error) {
	return sendWith(c, method, url, opts...)
}

// strsCheck: an answer is the envelope with a status that can happen
// here, a 304 without a body, or a HEAD answer without one. A 401 is
// expected only for a token that a rotation replaced.
func strsCheck(r *Response, method string, tokenReplaced bool) error {
	switch {
	case r.Status == http.StatusInternalServerError:
		return fmt.Errorf("500: %s", r.Body)
	case r.Status == http.StatusUnauthorized && !tokenReplaced:
		return fmt.Errorf("401 for a current token: %s", r.Body)
	case method == http.MethodHead:
		if len(r.Body) != 0 {
			return fmt.Errorf("HEAD answered with a body: %q", r.Body)
		}
		return nil
	case r.Status == http.StatusNotModified:
		if len(r.Body) != 0 || r.Header.Get("ETag") == "" {
			return fmt.Errorf("304 with body %q, ETag %q", r.Body, r.Header.Get("ETag"))
		}
		return nil
	}
	switch r.Status {
	case 200, 400, 401, 429, 502, 503, 504:
	default:
		return fmt.Errorf("unexpected status %d: %s", r.Status, r.Body)
	}
	_, err := r.CheckEnvelope()
	return err
}

// strsRaw sends each raw request on one connection and checks each answer.
func strsRaw(addr string, fails *strsFailures, counts *strsCounts, tokenReplaced bool, raws ...string) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		fails.add("dial: %v", err)
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	for _, raw := range raws {
		if _, err := io.WriteString(conn, raw); err != nil {
			fails.add("username: writing: %v", err)
			return
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			fails.add("username: reading the answer: %v", err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			fails.add("username: reading the body: %v", err)
			return
		}
		r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
		counts.add("username " + strconv.Itoa(r.Status))
		if err := strsCheck(r, http.MethodPost, tokenReplaced); err != nil {
			fails.add("username %q: %v", raw[strings.LastIndex(raw, "\r\n")+2:], err)
		}
		if strings.Contains(raw, "chunked") && !resp.Close {
			fails.add("a chunked request's connection stays open")
		}
		if resp.Close {
			return
		}
	}
}

// strsAbandon writes part of a request and goes: closed, or reset.
func strsAbandon(addr, raw string, reset bool) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	_, _ = io.WriteString(conn, raw)
	if reset {
		_ = conn.(*net.TCPConn).SetLinger(0)
	}
	_ = conn.Close()
}

// strsWord is a search no one else makes.
func strsWord(rnd *rand.Rand) string {
	b := make([]byte, 6)
	for i := range b {
		b[i] = byte('a' + rnd.IntN(26))
	}
	return string(b)
}

// strsBreakersClose drives calls of every operation until every breaker
// is closed again.
func strsBreakersClose(t testing.TB, gw *Gateway, ts *strsTokens, users []string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	eventually(t, 20*time.Second, func() error {
		_, _ = strsDo(c, http.MethodPost, gw.OpsURL+"/ops/v1/cache/purge?all=true")
		_, _ = strsDo(c, http.MethodGet, gw.URL+"/api/v1/users/me", Bearer(ts.byUser[users[0]]))
		_, _ = strsDo(c, http.MethodGet, gw.URL+"/api/v2/users/search?query=rest"+strconv.Itoa(rand.IntN(1e6)), Bearer(ts.byUser[users[0]]))
		_, _ = strsDo(c, http.MethodPost, gw.URL+"/api/v1/users/check-username", Bearer(ts.byUser[users[0]]), JSONBody(`{"username":"johndoe123"}`))
		r, err := strsDo(c, http.MethodGet, gw.OpsURL+"/ops/v1/breakers")
		if err != nil {
			return err
		}
		var out struct {
			Data struct{ Breakers []struct{ Op, State string } }
		}
		if err := json.Unmarshal(r.Body, &out); err != nil {
			return err
		}
		for _, b := range out.Data.Breakers {
			if b.State != "closed" {
				return fmt.Errorf("breaker %s is %s", b.Op, b.State)
			}
		}
		return nil
	})
}

// strsMetric reads one unlabelled sample from /metrics.
func strsMetric(t testing.TB, gw *Gateway, name string) float64 {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	r, err := strsDo(c, http.MethodGet, gw.OpsURL+"/metrics")
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("metrics: %v %v", err, r)
	}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// strsStacks counts the gateway's goroutines by stack (function names
// only), leaving out the public server's idle workers: fasthttp keeps a
// worker goroutine for a while after its connection ends, to reuse it.
type strsStacks struct {
	total   int
	byStack map[string]int
}

func strsGoroutines(t testing.TB, gw *Gateway) strsStacks {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	r, err := strsDo(c, http.MethodGet, gw.OpsURL+"/debug/pprof/goroutine?debug=1")
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("goroutine profile: %v %v", err, r)
	}
	return strsParseGoroutines(string(r.Body))
}

// strsParseGoroutines reads a debug=1 goroutine profile: a header line, then
// one block per stack, the largest count first. Stacks with no frame outside
// the runtime are left out: the finalizer and cleanup goroutines show up in
// the profile, without a frame of their own, while they run. So is the
// profile request's background read, which comes and goes.
func strsParseGoroutines(profile string) strsStacks {
	out := strsStacks{byStack: map[string]int{}}
	frame := regexp.MustCompile(`^#\s+0x[0-9a-f]+\s+(\S+)`)
	if _, rest, ok := strings.Cut(profile, "\n"); ok && strings.HasPrefix(profile, "goroutine profile:") {
		profile = rest
	}
	for _, block := range strings.Split(profile, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		var n int
		if _, err := fmt.Sscanf(lines[0], "%d @", &n); err != nil {
			continue
		}
		var funcs []string
		for _, l := range lines[1:] {
			if m := frame.FindStringSubmatch(l); m != nil {
				fn := m[1]
				if i := strings.LastIndex(fn, "+0x"); i > 0 {
					fn = fn[:i]
				}
				funcs = append(funcs, fn)
			}
		}
		if len(funcs) == 0 {
			continue
		}
		stack := strings.Join(funcs, " < ")
		if strings.Contains(stack, "workerPool).workerFunc") && !strings.Contains(stack, "serveConn") {
			continue
		}
		// net/http runs a background read only while a handler runs: at
		// rest, that is the profile's own request, there or not yet.
		if strings.HasSuffix(stack, "net/http.(*connReader).backgroundRead") {
			continue
		}
		out.total += n
		out.byStack[stack] += n
	}
	return out
}

// beyond lists the stacks with more goroutines than in base.
func (s strsStacks) beyond(base strsStacks) []string {
	var out []string
	for stack, n := range s.byStack {
		if n > base.byStack[stack] {
			out = append(out, fmt.Sprintf("%d (was %d): %s", n, base.byStack[stack], stack))
		}
	}
	sort.Strings(out)
	return out
}

// strsNoRaceNoPanic: the race detector and the logs say nothing went wrong.
func strsNoRaceNoPanic(t testing.TB, gw *Gateway) {
	t.Helper()
	logs := gw.Logs()
	if i := strings.Index(logs, "WARNING: DATA RACE"); i >= 0 {
		t.Errorf("the race detector found a race:\n%s", logs[i:min(len(logs), i+8000)])
	}
	for _, bad := range []string{`"msg":"panic recovered"`, "panic: ", "fatal error: "} {
		if i := strings.Index(logs, bad); i >= 0 {
			t.Errorf("the logs hold %q:\n%s", bad, logs[i:min(len(logs), i+4000)])
		}
	}
}

// strsFailures collects what went wrong in the workers (the first few).
type strsFailures struct {
	mu    sync.Mutex
	n     int
	items []string
}

func (f *strsFailures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if len(f.items) < 20 {
		f.items = append(f.items, fmt.Sprintf(format, args...))
	}
}

func (f *strsFailures) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n > len(f.items) {
		return append(f.items, fmt.Sprintf("… %d failures in all", f.n))
	}
	return f.items
}

// strsCounts counts answers by kind.
type strsCounts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *strsCounts) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[k]++
}

func (c *strsCounts) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

// atLeastOne fails unless some answer's kind starts with one of prefixes.
func (c *strsCounts) atLeastOne(t testing.TB, prefixes ...string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, n := range c.m {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) && n > 0 {
				return
			}
		}
	}
	t.Errorf("no answer of kind %q in the run", prefixes)
}

func (c *strsCounts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		if !strings.HasPrefix(k, "me ok ") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-28s %d", k, c.m[k])
	}
	return b.String()
}

// TestStrsParseGoroutines: the leak check's reading of a goroutine profile
// counts the first stack (the header shares its block) and leaves out the
// runtime's own goroutines, which have no frame to show.
func TestStrsParseGoroutines(t *testing.T) {
	profile := "goroutine profile: total 7\n" +
		"3 @ 0x47e16e 0x481305 0x4d9fdd 0x484621\n" +
		"#\t0x481304\ttime.Sleep+0x164\t/usr/local/go/src/runtime/time.go:363\n" +
		"#\t0x4d9fdc\tmain.main.func1+0x1c\t/tmp/gp.go:15\n\n" +
		"1 @ 0x47e16e 0x4260f7 0x484621\n\n" +
		"2 @ 0x47e16e 0x481305 0x4da018 0x484621\n" +
		"# labels: {\"k\":\"v\"}\n" +
		"#\t0x4da017\tnet/http.(*persistConn).readLoop+0x17\t/usr/local/go/src/net/http/transport.go:2200\n\n" +
		"1 @ 0x47e16e 0x484621\n" +
		"#\t0x4da017\tnet/http.(*connReader).backgroundRead+0x17\t/usr/local/go/src/net/http/server.go:690\n\n"
	got := strsParseGoroutines(profile)
	want := map[string]int{
		"time.Sleep < main.main.func1":     3,
		"net/http.(*persistConn).readLoop": 2,
	}
	if got.total != 5 || !maps.Equal(got.byStack, want) {
		t.Errorf("got total %d %v, want 5 %v", got.total, got.byStack, want)
	}
}
