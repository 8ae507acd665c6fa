package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/faultproxy"
	"github.com/bffgate/edge/upstream/refstore"
)

// mxsFields are the field sets the test's configuration gives.
var (
	mxsPublic       = []string{"id", "username", "firstName", "lastName", "expertise", "minutePrice", "profilePhotoUrl", "liveStream"}
	mxsSelf         = []string{"id", "username", "firstName", "lastName", "email", "phone", "bio", "expertise", "minutePrice", "profilePhotoUrl", "photos", "liveStream", "createdAt"}
	mxsAPIPublic    = []string{"id", "username", "firstName", "lastName"}
	mxsNarrowPublic = []string{"id", "username", "firstName"}
	mxsNarrowSelf   = []string{"id", "username", "email", "minutePrice"}
)

// mxsConfig is the repository's config.yaml with short TTLs, a platform
// (api) that shows fewer fields in search, and mobile_android's field sets
// narrowed or not (what the reloads toggle).
func mxsConfig(t testing.TB, narrow bool, meTTL, searchTTL string) string {
	raw, err := os.ReadFile(repoRoot + "/config.yaml")
	if err != nil {
		t.Error(err)
		return ""
	}
	s := string(raw)
	android := "  mobile_android: {}"
	if narrow {
		android = "  mobile_android:\n    fields:\n      public: [" + strings.Join(mxsNarrowPublic, ", ") + "]\n      self: [" + strings.Join(mxsNarrowSelf, ", ") + "]"
	}
	for _, r := range [][2]string{
		{"      ttl: 30s\n      emptyQueryTTL: 5s\n      staleWhileRevalidate: 30s", "      ttl: " + searchTTL + "\n      emptyQueryTTL: " + searchTTL + "\n      staleWhileRevalidate: 300ms"},
		{"    me:\n      ttl: 10s\n      staleWhileRevalidate: 10s", "    me:\n      ttl: " + meTTL + "\n      staleWhileRevalidate: 300ms"},
		{"  mobile_android: {}", android},
		{"  mobile_ios: {}", "  mobile_ios:\n    cache:\n      ttl: {search: 100ms, me: 50ms}"},
		{"  api:                        # any client may name a platform: none is looser than \"all\"\n", "  api:\n    fields:\n      public: [" + strings.Join(mxsAPIPublic, ", ") + "]\n"},
	} {
		if strings.Count(s, r[0]) != 1 {
			t.Errorf("config.yaml no longer has %q once", r[0])
			return ""
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return s
}

// TestMixupEveryAnswerIsTheCallersUnderConcurrency sends many users' reads
// (their profiles and searches, in both languages and many header
// spellings, from every app platform) pipelined on shared keep-alive
// connections, while the store slows down and speeds up, entries are
// purged and invalidated, and reloads change a platform's field sets and
// the TTLs: misses, hits, stale answers and coalesced loads interleave.
// Every answer must be the one the caller asked for, field by field: the
// profile of the token's subject as the store holds it, shaped for the
// caller's platform and language, and the search page the store gives for
// the query, whatever spelling of it the caller sent.
func TestMixupEveryAnswerIsTheCallersUnderConcurrency(t *testing.T) {
	if testing.Short() {
		t.Skip("a stress test")
	}
	st := cchStartStore(t)
	proxy := cchProxy(t, st)
	idp := StartIdP(t)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	// Written whole, then renamed into place: the gateway also reloads
	// when the file changes.
	writeCfg := func(narrow bool, meTTL, searchTTL string) error {
		return polReplace(cfgPath, mxsConfig(t, narrow, meTTL, searchTTL))
	}
	if err := writeCfg(false, "150ms", "250ms"); err != nil {
		t.Fatal(err)
	}
	gw := StartGateway(t, GatewayOptions{StoreURL: proxy.URL(), IdP: idp, ConfigPath: cfgPath,
		Env: map[string]string{
			"GATEWAY_LOG__LEVEL": "info",
			// Every answer is wanted whole: on a busy machine a store
			// call outlasts config.yaml's timeouts (a 504, or a page
			// without its live streams).
			"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__USERBYID__TIMEOUT":    "2s",
			"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__SEARCH__TIMEOUT":      "2s",
			"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__LIVESTREAMS__TIMEOUT": "2s",
		}})
	ctx := context.Background()

	// The users: those of a few searches, the demo user first.
	queries := []string{"sukru", "şükrü ışık", "ali", "a", "e", "ay", "mehmet", "can", "zzzqqq"}
	type pageKey struct {
		q           string
		page, limit int
	}
	storePages := map[pageKey][]string{}
	ids := map[string]bool{refstore.DemoUserID: true}
	for _, q := range queries {
		for _, pl := range [][2]int{{1, 20}, {2, 5}, {1, 3}} {
			res, err := st.Search(ctx, q, pl[1], (pl[0]-1)*pl[1])
			if err != nil {
				t.Fatal(err)
			}
			var page []string
			for _, u := range res.Items {
				page = append(page, u.ID)
				ids[u.ID] = true
			}
			storePages[pageKey{q, pl[0], pl[1]}] = page
		}
	}
	users := slices.Sorted(func(yield func(string) bool) {
		for id := range ids {
			if !yield(id) {
				return
			}
		}
	})
	tokens := map[string]string{}
	for _, u := range users {
		tokens[u] = idp.Token(t, u, "user")
	}

	// The reference profiles: each user's /me on the web platform (which
	// shows every field a platform here shows), read one at a time, each
	// field checked against the store's record.
	type profile map[string]json.RawMessage
	ref := map[string]map[string]profile{} // user, language
	for _, u := range users {
		rec, found, err := st.UserByID(ctx, u)
		if err != nil || !found {
			t.Fatalf("store: user %s: %v %v", u, found, err)
		}
		ref[u] = map[string]profile{}
		for _, lang := range []string{"en", "tr"} {
			r := gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(tokens[u]), Lang(lang))
			var p profile
			r.Data(t, &p)
			if err := mxsSameKeys(p, mxsSelf); err != nil {
				t.Fatalf("reference /me of %s: %v", u, err)
			}
			for k, want := range map[string]any{
				"id": rec.ID, "username": rec.Username, "firstName": rec.FirstName, "lastName": rec.LastName,
				"email": rec.Email, "phone": rec.Phone, "bio": rec.Bio, "expertise": rec.Expertise,
				"profilePhotoUrl": rec.Photos["96"], "createdAt": rec.CreatedAt,
			} {
				if err := mxsEqualJSON(p[k], want); err != nil {
					t.Fatalf("reference /me of %s (%s): %s: %v", u, lang, k, err)
				}
			}
			var price struct {
				AmountMinor int64
				Currency    string
				Display     string
			}
			if err := json.Unmarshal(p["minutePrice"], &price); err != nil || price.AmountMinor != rec.MinutePrice.AmountMinor || price.Currency != rec.MinutePrice.Currency || price.Display == "" {
				t.Fatalf("reference /me of %s (%s): minutePrice %s, store %+v", u, lang, p["minutePrice"], rec.MinutePrice)
			}
			ref[u][lang] = p
		}
	}
	cchOps(t, gw, http.MethodPost, "/ops/v1/cache/purge?all=true")

	// What a request asks for: route and query spelling, language header
	// spelling, platform spelling.
	type langForm struct{ x, accept string }
	langForms := []langForm{
		{"", ""}, {"en", ""}, {"tr", ""}, {"TR", ""}, {" tr ", ""}, {"", "tr-TR,tr;q=0.9,en;q=0.5"},
		{"", "en-GB,en;q=0.9"}, {"", "de-DE, tr;q=0.5"}, {"", "tr;q=0, en"}, {"", "TR"}, {"", "*"}, {"de", "tr"},
		{"", "tr-TR;q=0.8,en-US;q=0.9"}, {"", "de;q=0.9, *;q=0.5, en;q=0"}, {"", "en;q=0.5, tr;q=0.5"}, {"", "tr_TR"},
	}
	platformForms := []string{"", "web", "WEB", "browser", "ios", "iOS", "mobile_ios", "iphone", "android", "Android", "mobile-android", "api", "API"}
	spell := func(rnd *rand.Rand, q string) string {
		switch rnd.IntN(7) {
		case 0:
			q = strings.ToUpper(q)
		case 1:
			q = "  " + q + " "
		case 2:
			q = strings.ReplaceAll(strings.ReplaceAll(q, "u", "ü"), "s", "ş")
		case 3:
			q = strings.ReplaceAll(q, " ", " \u00a0 ")
		}
		var b strings.Builder
		for _, r := range q {
			switch {
			case r == ' ' && rnd.IntN(2) == 0:
				b.WriteByte('+')
			case r == ' ':
				b.WriteString("%20")
			case r < 0x80 && rnd.IntN(4) == 0:
				fmt.Fprintf(&b, "%%%02X", r)
			default:
				b.WriteString(url.QueryEscape(string(r)))
			}
		}
		return b.String()
	}

	type sent struct {
		user, lang, platform string
		me                   bool
		key                  pageKey
		raw                  string
		ifNoneMatch          string
		epoch, epochEnd      int64
	}
	// epoch counts the reloads' edges: odd while one is on its way (the
	// config file written, the gateway not yet done), even once android's
	// field sets are settled, narrow when epoch/2 is odd. An answer sent
	// and read within one even epoch has that epoch's fields exactly.
	var (
		etags sync.Map // ETag -> data ([]byte) of a 200
		epoch atomic.Int64
		tally = newMixTally(100)
	)
	fail, checked := tally.fail, &tally.checked
	sets := func(s sent) [][]string {
		me := s.me
		switch clientctx.ParsePlatform([]byte(s.platform)) {
		case clientctx.PlatformAndroid:
			wide, narrow := mxsPublic, mxsNarrowPublic
			if me {
				wide, narrow = mxsSelf, mxsNarrowSelf
			}
			switch {
			case s.epoch != s.epochEnd || s.epoch%2 == 1:
				return [][]string{wide, narrow}
			case s.epoch/2%2 == 1:
				return [][]string{narrow}
			}
			return [][]string{wide}
		case clientctx.PlatformAPI:
			if !me {
				return [][]string{mxsAPIPublic}
			}
		}
		if me {
			return [][]string{mxsSelf}
		}
		return [][]string{mxsPublic}
	}
	checkUser := func(s sent, what string, u profile, user string) error {
		var errs []string
		for _, set := range sets(s) {
			err := mxsSameKeys(u, set)
			if err == nil {
				for k, v := range u {
					if !bytes.Equal(v, ref[user][s.lang][k]) {
						err = fmt.Errorf("%s is %s, the store's user %s has %s", k, v, user, ref[user][s.lang][k])
						break
					}
				}
			}
			if err == nil {
				return nil
			}
			errs = append(errs, err.Error())
		}
		return fmt.Errorf("%s: %s", what, strings.Join(errs, "; or "))
	}
	check := func(s sent, data []byte) error {
		if s.me {
			var u profile
			if err := json.Unmarshal(data, &u); err != nil {
				return err
			}
			return checkUser(s, "profile", u, s.user)
		}
		var page struct {
			Items              []profile
			Page, Limit, Total int
		}
		if err := json.Unmarshal(data, &page); err != nil {
			return err
		}
		want := storePages[s.key]
		if page.Page != s.key.page || page.Limit != s.key.limit || len(page.Items) != len(want) {
			return fmt.Errorf("page %d limit %d with %d items, want page %d limit %d with %d", page.Page, page.Limit, len(page.Items), s.key.page, s.key.limit, len(want))
		}
		for i, it := range page.Items {
			if string(it["id"]) != `"`+want[i]+`"` {
				return fmt.Errorf("item %d is %s, the store lists %s", i, it["id"], want[i])
			}
			if err := checkUser(s, fmt.Sprintf("item %d", i), it, want[i]); err != nil {
				return err
			}
		}
		return nil
	}

	addr := strings.TrimPrefix(gw.URL, "http://")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	worker := func(w int) {
		defer wg.Done()
		rnd := rand.New(rand.NewPCG(uint64(w), 36))
		var conn net.Conn
		var br *bufio.Reader
		defer func() {
			if conn != nil {
				conn.Close()
			}
		}()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if conn == nil {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					fail("dial: %v", err)
					return
				}
				conn, br = c, bufio.NewReader(c)
			}
			batch := make([]sent, 1+rnd.IntN(4))
			var out bytes.Buffer
			for i := range batch {
				s := &batch[i]
				s.user = users[rnd.IntN(len(users))]
				lf := langForms[rnd.IntN(len(langForms))]
				s.lang = clientctx.ParseLanguage([]byte(lf.x), []byte(lf.accept)).String()
				s.platform = platformForms[rnd.IntN(len(platformForms))]
				s.me = rnd.IntN(2) == 0
				path := "/api/v1/users/me"
				if !s.me {
					q := queries[rnd.IntN(len(queries))]
					pl := [][2]int{{1, 20}, {2, 5}, {1, 3}}[rnd.IntN(3)]
					s.key = pageKey{q, pl[0], pl[1]}
					param := []string{"q", "query"}[rnd.IntN(2)]
					args := []string{param + "=" + spell(rnd, q)}
					if pl != [2]int{1, 20} || rnd.IntN(2) == 0 {
						args = append(args, fmt.Sprintf("page=%d", pl[0]), fmt.Sprintf("limit=%d", pl[1]))
					}
					if rnd.IntN(3) == 0 {
						args = append(args, "utm_source=x")
					}
					rnd.Shuffle(len(args), func(i, j int) { args[i], args[j] = args[j], args[i] })
					path = "/api/v2/users/search?" + strings.Join(args, "&")
				}
				fmt.Fprintf(&out, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n", path, addr, tokens[s.user])
				if lf.x != "" {
					fmt.Fprintf(&out, "X-Language: %s\r\n", lf.x)
				}
				if lf.accept != "" {
					fmt.Fprintf(&out, "Accept-Language: %s\r\n", lf.accept)
				}
				if s.platform != "" {
					fmt.Fprintf(&out, "X-Platform: %s\r\n", s.platform)
				}
				if rnd.IntN(3) == 0 {
					fmt.Fprintf(&out, "X-App-Version: %d.%d.0\r\nX-Device-Id: dev-%d\r\nX-Timezone: Europe/Istanbul\r\n", rnd.IntN(5), rnd.IntN(9), rnd.IntN(1000))
				}
				if rnd.IntN(4) == 0 {
					// Somebody's tag: a 304 only for this very answer.
					etags.Range(func(k, _ any) bool {
						s.ifNoneMatch = k.(string)
						return rnd.IntN(8) != 0
					})
					if s.ifNoneMatch != "" {
						fmt.Fprintf(&out, "If-None-Match: %s\r\n", s.ifNoneMatch)
					}
				}
				out.WriteString("\r\n")
				s.raw = path
			}
			sentIn := epoch.Load()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(out.Bytes()); err != nil {
				conn.Close()
				conn = nil
				continue
			}
			for i, s := range batch {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					if i == 0 && err == io.EOF {
						break // closed while idle: a new connection
					}
					fail("request %d of %d (%s): %v", i+1, len(batch), s.raw, err)
					conn.Close()
					conn = nil
					break
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				s.epoch, s.epochEnd = sentIn, epoch.Load()
				if err != nil {
					fail("%s: body: %v", s.raw, err)
					conn.Close()
					conn = nil
					break
				}
				tally.saw(resp.StatusCode, resp.Header.Get("X-Cache"))
				etag := resp.Header.Get("ETag")
				switch resp.StatusCode {
				case http.StatusOK:
					var env struct{ Data json.RawMessage }
					if err := json.Unmarshal(body, &env); err != nil {
						fail("%s: %v: %s", s.raw, err, body)
						continue
					}
					if err := check(s, env.Data); err != nil {
						fail("%s user %s lang %s platform %q (X-Cache %s): %v", s.raw, s.user, s.lang, s.platform, resp.Header.Get("X-Cache"), err)
					}
					if s.ifNoneMatch != "" && s.ifNoneMatch == etag {
						fail("%s: 200 for a matching If-None-Match %s", s.raw, etag)
					}
					if etag != "" {
						etags.Store(etag, append([]byte(nil), env.Data...))
					}
				case http.StatusNotModified:
					if etag != s.ifNoneMatch {
						fail("%s: 304 with ETag %s for If-None-Match %s", s.raw, etag, s.ifNoneMatch)
					}
					if d, ok := etags.Load(etag); ok {
						if err := check(s, d.([]byte)); err != nil {
							fail("%s user %s lang %s platform %q: 304 for another answer's tag: %v", s.raw, s.user, s.lang, s.platform, err)
						}
					}
				default:
					fail("%s: %d %s", s.raw, resp.StatusCode, body)
				}
				checked.Add(1)
			}
			if resp := batch; len(resp) > 0 && conn != nil && rnd.IntN(20) == 0 {
				conn.Close()
				conn = nil
			}
		}
	}
	for w := range 12 {
		wg.Add(1)
		go worker(w)
	}

	// The chaos around them: a store whose speed changes, purges and
	// invalidations, reloads that change android's field sets and TTLs.
	chaos := func(every time.Duration, f func(rnd *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(every), 7))
			tk := time.NewTicker(every)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
					f(rnd)
				}
			}
		}()
	}
	ops := strings.Replace(gw.OpsURL, "//0.0.0.0:", "//127.0.0.1:", 1)
	chaos(150*time.Millisecond, func(rnd *rand.Rand) {
		_ = proxy.Set(faultproxy.Delay(time.Duration(rnd.IntN(80)) * time.Millisecond))
	})
	chaos(120*time.Millisecond, func(rnd *rand.Rand) {
		path := []string{"/ops/v1/cache/purge?user=" + users[rnd.IntN(len(users))], "/ops/v1/cache/purge?route=me", "/ops/v1/cache/purge?route=search"}[rnd.IntN(3)]
		if rnd.IntN(10) == 0 {
			path = "/ops/v1/cache/purge?all=true"
		}
		if r, err := sendWith(gw.client, http.MethodPost, ops+path); err != nil || r.Status != http.StatusOK {
			fail("purge %s: %v %v", path, r, err)
		}
	})
	chaos(600*time.Millisecond, func(rnd *rand.Rand) {
		reloads := strings.Count(gw.Logs(), `"msg":"config reloaded"`)
		e := epoch.Add(1)
		if err := writeCfg(e/2%2 == 0, []string{"100ms", "150ms", "400ms"}[rnd.IntN(3)], []string{"150ms", "250ms", "1s"}[rnd.IntN(3)]); err != nil {
			fail("config: %v", err)
		}
		if err := gw.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			fail("SIGHUP: %v", err)
		}
		for deadline := time.Now().Add(5 * time.Second); strings.Count(gw.Logs(), `"msg":"config reloaded"`) == reloads; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				fail("the reload was not applied within 5s")
				break
			}
		}
		epoch.Add(1)
	})

	time.Sleep(8 * time.Second)
	close(stop)
	wg.Wait()
	tally.report(t, 500)
	if strings.Contains(gw.Logs(), "config reload rejected") || strings.Contains(gw.Logs(), "panic recovered") {
		t.Errorf("gateway logs:\n%s", gw.Logs())
	}
}

// mxsSameKeys reports whether u has exactly the fields of set.
func mxsSameKeys(u map[string]json.RawMessage, set []string) error {
	got := make([]string, 0, len(u))
	for k := range u {
		got = append(got, k)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(set))
	if !slices.Equal(got, want) {
		return fmt.Errorf("fields %v, want %v", got, want)
	}
	return nil
}

// mxsEqualJSON compares a JSON value with a Go value (a nil pointer or an
// empty string where the gateway writes null are the same).
func mxsEqualJSON(raw json.RawMessage, want any) error {
	w, err := json.Marshal(want)
	if err != nil {
		return err
	}
	if bytes.Equal(raw, w) {
		return nil
	}
	if (string(w) == `""` || string(w) == "null") && string(raw) == "null" {
		return nil
	}
	var a, b any
	_ = json.Unmarshal(raw, &a)
	_ = json.Unmarshal(w, &b)
	if fmt.Sprint(a) == fmt.Sprint(b) {
		return nil
	}
	return fmt.Errorf("%s, the store has %s", raw, w)
}

// TestMixupNoRequestAfterAnInvalidationSeesTheOldUser renames users at the
// store again and again, each time telling the gateway (the invalidation
// endpoint), while many clients read those users' profiles and the search
// pages that list them through a store that slows down and speeds up.
// caching.md: the user's entries "go at once: the next requests are MISS
// and show the change", a load running during the purge is not stored, and
// a request that starts after it never joins a load that started before.
// So no answer to a request sent after an invalidation returned may show a
// name older than the one it was sent for.
func TestMixupNoRequestAfterAnInvalidationSeesTheOldUser(t *testing.T) {
	if testing.Short() {
		t.Skip("a stress test")
	}
	st := cchStartStore(t)
	proxy := cchProxy(t, st)
	idp := StartIdP(t)
	const invToken = "mixup-invalidation-token"
	gw := cchGateway(t, proxy.URL(), idp, map[string]string{
		"GATEWAY_CACHE__INVALIDATIONTOKEN":                               "mixup-invalidation-token",
		"GATEWAY_CACHE__ROUTES__ME__TTL":                                 "1m",
		"GATEWAY_CACHE__ROUTES__SEARCH__TTL":                             "1m",
		"GATEWAY_LOG__LEVEL":                                             "info",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__USERBYID__TIMEOUT":    "2s",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__SEARCH__TIMEOUT":      "2s",
		"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__LIVESTREAMS__TIMEOUT": "2s",
	})
	ctx := context.Background()
	res, err := st.Search(ctx, "a", 50, 0)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		id, token, page string
		published       atomic.Int64 // the last version whose invalidation returned
	}
	var targets []*target
	for _, u := range res.Items {
		// A page of the user's own username lists them.
		page, err := st.Search(ctx, u.Username, 20, 0)
		if err != nil || !slices.ContainsFunc(page.Items, func(p contract.User) bool { return p.ID == u.ID }) {
			continue
		}
		targets = append(targets, &target{id: u.ID, token: idp.Token(t, u.ID, "user"),
			page: "/api/v2/users/search?q=" + url.QueryEscape(u.Username)})
		if len(targets) == 4 {
			break
		}
	}
	if len(targets) < 4 {
		t.Fatalf("only %d users found", len(targets))
	}
	version := func(firstName string) int64 {
		var v int64
		if _, err := fmt.Sscanf(firstName, "Version%d", &v); err != nil {
			return -1
		}
		return v
	}

	ops := strings.Replace(gw.OpsURL, "//0.0.0.0:", "//127.0.0.1:", 1)
	stop := make(chan struct{})
	var (
		wg    sync.WaitGroup
		tally = newMixTally(50)
	)
	fail, checked := tally.fail, &tally.checked
	loop := func(f func(rnd *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(rand.Uint64(), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				f(rnd)
			}
		}()
	}
	for _, tg := range targets {
		if _, err := st.Rename(ctx, tg.id, "Version0"); err != nil {
			t.Fatal(err)
		}
		var v int64
		loop(func(rnd *rand.Rand) {
			v++
			if _, err := st.Rename(ctx, tg.id, fmt.Sprintf("Version%d", v)); err != nil {
				fail("rename: %v", err)
				return
			}
			r, err := sendWith(gw.client, http.MethodPost, ops+"/ops/v1/cache/invalidate", Bearer(invToken),
				JSONBody(`{"userId":"`+tg.id+`"}`))
			if err != nil || r.Status != http.StatusOK {
				fail("invalidate: %v %v", r, err)
				return
			}
			tg.published.Store(v)
			time.Sleep(time.Duration(rnd.IntN(30)) * time.Millisecond)
		})
	}
	loop(func(rnd *rand.Rand) {
		_ = proxy.Set(faultproxy.Delay(time.Duration(rnd.IntN(60)) * time.Millisecond))
		time.Sleep(100 * time.Millisecond)
	})
	for range 10 {
		client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
		loop(func(rnd *rand.Rand) {
			tg := targets[rnd.IntN(len(targets))]
			path, tok := "/api/v1/users/me", tg.token
			if rnd.IntN(2) == 0 {
				path, tok = tg.page, targets[rnd.IntN(len(targets))].token
			}
			lang := []string{"en", "tr"}[rnd.IntN(2)]
			floor := tg.published.Load()
			r, err := sendWith(client, http.MethodGet, gw.URL+path, Bearer(tok), Lang(lang))
			if err != nil {
				fail("%s: %v", path, err)
				return
			}
			tally.saw(r.Status, r.Header.Get("X-Cache"))
			if r.Status != http.StatusOK {
				fail("%s: %d %s", path, r.Status, r.Body)
				return
			}
			var data struct {
				ID        string
				FirstName string
				Items     []struct{ ID, FirstName string }
			}
			if err := json.Unmarshal(r.Body, &struct{ Data any }{&data}); err != nil {
				fail("%s: %v", path, err)
				return
			}
			if path == tg.page {
				data.FirstName = ""
				for _, it := range data.Items {
					if it.ID == tg.id {
						data.ID, data.FirstName = it.ID, it.FirstName
					}
				}
			}
			if data.ID != tg.id {
				fail("%s: the answer does not show %s: %s", path, tg.id, r.Body)
				return
			}
			if got := version(data.FirstName); got < floor {
				fail("%s (%s, X-Cache %s): %s is %q, but version %d was invalidated before the request was sent",
					path, lang, r.Header.Get("X-Cache"), tg.id, data.FirstName, floor)
			}
			checked.Add(1)
		})
	}
	time.Sleep(6 * time.Second)
	close(stop)
	wg.Wait()
	tally.report(t, 300)
}

// mixTally gathers a mix-up test's findings from its many goroutines: the
// first failures (fail never blocks), the answers checked, and how many
// came with each status and X-Cache.
type mixTally struct {
	fails    chan string
	checked  atomic.Int64
	statuses sync.Map // "status X-Cache" -> *atomic.Int64
}

func newMixTally(keep int) *mixTally { return &mixTally{fails: make(chan string, keep)} }

func (m *mixTally) fail(format string, args ...any) {
	select {
	case m.fails <- fmt.Sprintf(format, args...):
	default:
	}
}

func (m *mixTally) saw(status int, xCache string) {
	n, _ := m.statuses.LoadOrStore(fmt.Sprintf("%d %s", status, xCache), new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

// report fails t with the first 20 failures, and when fewer than least
// answers were checked; every fail must have returned.
func (m *mixTally) report(t *testing.T, least int64) {
	t.Helper()
	close(m.fails)
	n := 0
	for f := range m.fails {
		if n++; n <= 20 {
			t.Error(f)
		}
	}
	var summary []string
	m.statuses.Range(func(k, v any) bool {
		summary = append(summary, fmt.Sprintf("%s: %d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(summary)
	t.Logf("%d answers checked (%s)", m.checked.Load(), strings.Join(summary, ", "))
	if m.checked.Load() < least {
		t.Errorf("only %d answers checked", m.checked.Load())
	}
}
