package e2e

// Issue 3, search: GET /api/v2/users/search through the real gateway and
// the real user store. Each item is checked against what the store itself
// holds (asked directly, beside the gateway), shaped for the apps: the
// public fields only, the price displayed for the caller's language, the
// 96 px photo, the active live stream.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/refstore"
)

// epPublicKeys are the fields of a user in a search answer for the apps.
var epPublicKeys = []string{"expertise", "firstName", "id", "lastName", "liveStream", "minutePrice", "profilePhotoUrl", "username"}

// epPage is the data of a search answer.
type epPage struct {
	Items []map[string]json.RawMessage
	Page  int
	Limit int
	Total int
}

func (p epPage) ids(t testing.TB) []string {
	t.Helper()
	ids := make([]string, len(p.Items))
	for i, it := range p.Items {
		ids[i] = epString(t, it["id"])
	}
	return ids
}

// epSearch calls a search path and decodes its data strictly: exactly
// items, page, limit and total.
func epSearch(t testing.TB, gw *Gateway, path string, opts ...ReqOpt) (*Response, epPage) {
	t.Helper()
	r := gw.Do(t, http.MethodGet, path, opts...)
	var data map[string]json.RawMessage
	r.Data(t, &data)
	if got := epSortedKeys(data); !slices.Equal(got, []string{"items", "limit", "page", "total"}) {
		t.Fatalf("%s: data keys %v, want items, page, limit, total", path, got)
	}
	var p epPage
	for k, dst := range map[string]any{"items": &p.Items, "page": &p.Page, "limit": &p.Limit, "total": &p.Total} {
		if err := json.Unmarshal(data[k], dst); err != nil {
			t.Fatalf("%s: %s: %v: %s", path, k, err, data[k])
		}
	}
	if p.Items == nil {
		t.Fatalf("%s: items must be a list, never null: %s", path, r.Body)
	}
	return r, p
}

func epSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func epString(t testing.TB, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a string: %v", raw, err)
	}
	return s
}

// epStoreGet asks the user store directly, as the gateway would.
func epStoreGet(t testing.TB, store *Store, path string, out any) {
	t.Helper()
	resp, err := http.Get(store.URL + path)
	if err != nil {
		t.Fatalf("store %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("store %s: status %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("store %s: %v", path, err)
	}
}

func epStoreSearch(t testing.TB, store *Store, q string, limit, offset int) contract.SearchResponse {
	t.Helper()
	var out contract.SearchResponse
	epStoreGet(t, store, fmt.Sprintf("%s?q=%s&limit=%d&offset=%d", contract.PathSearch, url.QueryEscape(q), limit, offset), &out)
	return out
}

// epStoreStreams returns the active live streams of users, by user id.
func epStoreStreams(t testing.TB, store *Store, users []contract.User) map[string]*contract.LiveStream {
	t.Helper()
	out := map[string]*contract.LiveStream{}
	if len(users) == 0 {
		return out
	}
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	var resp contract.LiveStreamsResponse
	epStoreGet(t, store, contract.PathLiveStreams+"?userIds="+url.QueryEscape(strings.Join(ids, ",")), &resp)
	for i := range resp.Items {
		out[resp.Items[i].UserID] = &resp.Items[i]
	}
	return out
}

// epDisplay is how the apps show a minute price: English "₺1,234.50",
// Turkish "1.234,50 ₺" (the currencies of the seed data all have two
// minor digits).
func epDisplay(t testing.TB, amountMinor int64, currency, lang string) string {
	t.Helper()
	symbol, ok := map[string]string{"TRY": "₺", "USD": "$", "EUR": "€"}[currency]
	if !ok {
		t.Fatalf("no display known for currency %q", currency)
	}
	thousands, decimal := ",", "."
	if lang == "tr" {
		thousands, decimal = ".", ","
	}
	whole := strconv.FormatInt(amountMinor/100, 10)
	var b strings.Builder
	for i, d := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString(thousands)
		}
		b.WriteRune(d)
	}
	number := fmt.Sprintf("%s%s%02d", b.String(), decimal, amountMinor%100)
	if lang == "tr" {
		return number + " " + symbol
	}
	return symbol + number
}

// epCheckMoney checks a minutePrice object: exactly amountMinor, currency
// and display.
func epCheckMoney(t testing.TB, raw json.RawMessage, want contract.Money, lang string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("minutePrice %s: %v", raw, err)
	}
	if got := epSortedKeys(m); !slices.Equal(got, []string{"amountMinor", "currency", "display"}) {
		t.Fatalf("minutePrice keys %v: %s", got, raw)
	}
	if string(m["amountMinor"]) != strconv.FormatInt(want.AmountMinor, 10) {
		t.Fatalf("amountMinor %s, want the integer %d", m["amountMinor"], want.AmountMinor)
	}
	if c := epString(t, m["currency"]); c != want.Currency {
		t.Fatalf("currency %q, want %q", c, want.Currency)
	}
	if d, wantD := epString(t, m["display"]), epDisplay(t, want.AmountMinor, want.Currency, lang); d != wantD {
		t.Fatalf("display %q in %s, want %q", d, lang, wantD)
	}
}

// epCheckLiveStream checks a liveStream member: null, or exactly id,
// title, startedAt and viewerCount of the store's stream.
func epCheckLiveStream(t testing.TB, raw json.RawMessage, want *contract.LiveStream) {
	t.Helper()
	if want == nil {
		if string(raw) != "null" {
			t.Fatalf("liveStream %s, want null", raw)
		}
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		t.Fatalf("liveStream %s, want the stream %s", raw, want.ID)
	}
	if got := epSortedKeys(m); !slices.Equal(got, []string{"id", "startedAt", "title", "viewerCount"}) {
		t.Fatalf("liveStream keys %v: %s", got, raw)
	}
	if epString(t, m["id"]) != want.ID || epString(t, m["title"]) != want.Title ||
		epString(t, m["startedAt"]) != want.StartedAt || string(m["viewerCount"]) != strconv.Itoa(want.ViewerCount) {
		t.Fatalf("liveStream %s, want %+v", raw, *want)
	}
}

// epCheckPhoto checks a photo member: the URL, or null when missing.
func epCheckPhoto(t testing.TB, name string, raw json.RawMessage, want string) {
	t.Helper()
	if want == "" {
		if string(raw) != "null" {
			t.Fatalf("%s %s, want null for a missing photo", name, raw)
		}
		return
	}
	if got := epString(t, raw); got != want {
		t.Fatalf("%s %q, want %q", name, got, want)
	}
}

// epCheckPublicItem checks one search item against the store's user: the
// public fields only, each as the apps expect it.
func epCheckPublicItem(t testing.TB, item map[string]json.RawMessage, u contract.User, ls *contract.LiveStream, lang string) {
	t.Helper()
	if got := epSortedKeys(item); !slices.Equal(got, epPublicKeys) {
		t.Fatalf("item %s: keys %v, want exactly %v", u.Username, got, epPublicKeys)
	}
	for k, want := range map[string]string{"id": u.ID, "username": u.Username, "firstName": u.FirstName, "lastName": u.LastName} {
		if got := epString(t, item[k]); got != want {
			t.Fatalf("item %s: %s %q, want %q", u.ID, k, got, want)
		}
	}
	var expertise []string
	if err := json.Unmarshal(item["expertise"], &expertise); err != nil || expertise == nil || !slices.Equal(expertise, u.Expertise) {
		t.Fatalf("item %s: expertise %s, want %q", u.ID, item["expertise"], u.Expertise)
	}
	epCheckMoney(t, item["minutePrice"], u.MinutePrice, lang)
	epCheckPhoto(t, "profilePhotoUrl", item["profilePhotoUrl"], u.Photos["96"])
	epCheckLiveStream(t, item["liveStream"], ls)
}

// epCheckPageAgainstStore checks a gateway page item by item against the
// same page asked of the store.
func epCheckPageAgainstStore(t testing.TB, store *Store, p epPage, q string, page, limit int, lang string) {
	t.Helper()
	want := epStoreSearch(t, store, q, limit, (page-1)*limit)
	streams := epStoreStreams(t, store, want.Items)
	if p.Page != page || p.Limit != limit || p.Total != want.Total {
		t.Fatalf("%q page %d: page %d, limit %d, total %d; want %d, %d, %d", q, page, p.Page, p.Limit, p.Total, page, limit, want.Total)
	}
	if len(p.Items) != len(want.Items) {
		t.Fatalf("%q page %d: %d items, the store has %d", q, page, len(p.Items), len(want.Items))
	}
	for i, u := range want.Items {
		epCheckPublicItem(t, p.Items[i], u, streams[u.ID], lang)
	}
}

// Search results are the store's users in the store's order, shaped for
// the apps, in English and Turkish; page, limit and total agree with the
// store.
func TestEndpointsSearchMatchesTheStore(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)
	for _, lang := range []string{"en", "tr"} {
		for _, c := range []struct {
			path        string
			q           string
			page, limit int
		}{
			{"/api/v2/users/search?query=sukru", "sukru", 1, 20},
			{"/api/v2/users/search?query=sukru&page=2", "sukru", 2, 20},
			{"/api/v2/users/search?q=sukru&page=3&limit=7", "sukru", 3, 7},
			{"/api/v2/users/search?query=ay%C5%9Fe&limit=50", "ayşe", 1, 50},
			{"/api/v2/users/search?query=admin", "admin", 1, 20},
			{"/api/v2/users/search?query=zzqqxx", "zzqqxx", 1, 20},
		} {
			_, p := epSearch(t, gw, c.path, Bearer(tok), Lang(lang))
			epCheckPageAgainstStore(t, store, p, c.q, c.page, c.limit, lang)
		}
	}

	// The demo user in full: Şükrü Işık, live right now, all photos.
	for lang, display := range map[string]string{"en": "₺12.50", "tr": "12,50 ₺"} {
		_, p := epSearch(t, gw, "/api/v2/users/search?query=sukru.isik&limit=1", Bearer(tok), Lang(lang))
		if len(p.Items) != 1 {
			t.Fatalf("sukru.isik: %d items", len(p.Items))
		}
		want := map[string]any{
			"id": refstore.DemoUserID, "username": "sukru.isik", "firstName": "Şükrü", "lastName": "Işık",
			"expertise":       []any{"career coaching", "astrology"},
			"minutePrice":     map[string]any{"amountMinor": 1250.0, "currency": "TRY", "display": display},
			"profilePhotoUrl": "https://cdn.example.com/u/" + refstore.DemoUserID + "/96.jpg",
			"liveStream": map[string]any{"id": refstore.DemoLiveStreamID, "title": "Kariyer sohbetleri: soru-cevap",
				"startedAt": "2026-05-22T15:30:00.000Z", "viewerCount": 128.0},
		}
		epEqualJSON(t, "the demo user's search item", p.Items[0], want)
	}

	// The admin demo user has no 96 px photo and no live stream.
	_, p := epSearch(t, gw, "/api/v2/users/search?query=admin", Bearer(tok))
	found := false
	for _, it := range p.Items {
		if epString(t, it["id"]) == refstore.DemoAdminID {
			found = true
			if string(it["profilePhotoUrl"]) != "null" || string(it["liveStream"]) != "null" {
				t.Fatalf("admin item: profilePhotoUrl %s, liveStream %s; want both null", it["profilePhotoUrl"], it["liveStream"])
			}
		}
	}
	if !found {
		t.Fatal(`"admin" did not find the admin demo user`)
	}
}

// epEqualJSON compares a decoded JSON object with the expected value, all
// keys included.
func epEqualJSON(t testing.TB, what string, got map[string]json.RawMessage, want map[string]any) {
	t.Helper()
	raw, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var g any
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(g)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Fatalf("%s:\n got %s\nwant %s", what, gj, wj)
	}
}

// Email, phone and status (and everything else not public) never show on
// the apps' search, whatever platform the app says it is.
func TestEndpointsSearchNeverShowsPrivateFields(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)
	private := epStoreSearch(t, store, "sukru", 50, 0)
	for _, platform := range []string{"", "web", "mobile_ios", "ios", "mobile_android", "android", "api", "unknown", "smart-fridge"} {
		opts := []ReqOpt{Bearer(tok)}
		if platform != "" {
			opts = append(opts, Platform(platform))
		}
		for _, path := range []string{"/api/v2/users/search?query=sukru&limit=50", "/api/v2/users/search?limit=50"} {
			r, p := epSearch(t, gw, path, opts...)
			if len(p.Items) == 0 {
				t.Fatalf("%s %q: no items", path, platform)
			}
			for _, it := range p.Items {
				if got := epSortedKeys(it); !slices.Equal(got, epPublicKeys) {
					t.Fatalf("%s platform %q: item keys %v, want exactly %v", path, platform, got, epPublicKeys)
				}
			}
			for _, field := range []string{`"email"`, `"phone"`, `"status"`, `"roles"`, `"bio"`, `"photos"`, `"createdAt"`, `"updatedAt"`} {
				if bytes.Contains(r.Body, []byte(field)) {
					t.Fatalf("%s platform %q: the answer carries %s: %s", path, platform, field, r.Body)
				}
			}
			for _, u := range private.Items {
				if bytes.Contains(r.Body, []byte(u.Email)) || bytes.Contains(r.Body, []byte(u.Phone)) {
					t.Fatalf("%s platform %q: %s's email or phone leaked", path, platform, u.Username)
				}
			}
		}
	}
}

// epFindUser pages through a search (50 a page) until it meets id, and
// returns the total; it fails when the whole result never shows id.
func epFindUser(t testing.TB, gw *Gateway, tok, query, id string) int {
	t.Helper()
	for page := 1; ; page++ {
		_, p := epSearch(t, gw, fmt.Sprintf("/api/v2/users/search?query=%s&limit=50&page=%d", url.QueryEscape(query), page), Bearer(tok))
		if slices.Contains(p.ids(t), id) {
			return p.Total
		}
		if page*50 >= p.Total || len(p.Items) == 0 {
			t.Fatalf("search %q: %d results, none is %s", query, p.Total, id)
		}
	}
}

// A Turkish user types names the way their keyboard lets them: with or
// without Turkish letters, in any case, with stray spaces. All of them
// find Şükrü Işık, and spellings of one word find the same users.
func TestEndpointsSearchFoldsCaseAndDiacritics(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)
	totals := map[string]int{}
	for _, q := range []string{"sukru", "SUKRU", "ŞÜKRÜ", "şükrü ", "  Şükrü", "isik", "IŞIK", "ışık", "Işık", "ISIK", "şükrü ışık", "SUKRU  ISIK", "suk", "sukru.isik"} {
		totals[q] = epFindUser(t, gw, tok, q, refstore.DemoUserID)
	}
	for _, group := range [][]string{
		{"sukru", "SUKRU", "ŞÜKRÜ", "şükrü ", "  Şükrü"},
		{"isik", "IŞIK", "ışık", "Işık", "ISIK"},
		{"şükrü ışık", "SUKRU  ISIK"},
	} {
		for _, q := range group[1:] {
			if totals[q] != totals[group[0]] {
				t.Fatalf("search %q found %d users, %q %d: spellings of one word must find the same", q, totals[q], group[0], totals[group[0]])
			}
		}
	}
	if !(totals["şükrü ışık"] <= totals["sukru"] && totals["sukru"] <= totals["suk"]) {
		t.Fatalf("totals %v: more words must narrow, a shorter prefix widen", totals)
	}
}

// Keyboards write punctuation their own way: an iPhone types O’Brien (its
// smart punctuation is on by default), a full-width keyboard Ｏ＇Ｂｒｉｅｎ
// and ８１３, a word processor Smith‐Jones with U+2010. Each is the name
// spelled with ASCII punctuation and digits: it finds the same users, from
// the same cache entry.
func TestEndpointsSearchFoldsTypographicPunctuation(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)
	path := func(q string) string { return "/api/v2/users/search?limit=50&query=" + url.QueryEscape(q) }
	for _, group := range [][]string{
		{"o'brien", "O\u2019Brien", "o\u2018brien", "O\u02bcbrien", "O\u00b4Brien", "\uff2f\uff07\uff22\uff52\uff49\uff45\uff4e"},
		{"o'b", "o\u2019b"},
		{"smith-jones", "Smith\u2010Jones", "smith\u2011jones", "Smith\u2013Jones", "Smith\u2212Jones", "\uff53\uff4d\uff49\uff54\uff48\uff0d\uff4a\uff4f\uff4e\uff45\uff53"},
		{"sukruisik813", "sukruisik\uff18\uff11\uff13"},
	} {
		_, want := epSearch(t, gw, path(group[0]), Bearer(tok))
		if want.Total == 0 {
			t.Fatalf("search %q found nobody", group[0])
		}
		for _, q := range group[1:] {
			r, got := epSearch(t, gw, path(q), Bearer(tok))
			if got.Total != want.Total || !slices.Equal(got.ids(t), want.ids(t)) {
				t.Fatalf("search %q found %d users, %q %d (or another page): one name, one answer", q, got.Total, group[0], want.Total)
			}
			if c := r.Header.Get("X-Cache"); c != "HIT" {
				t.Fatalf("search %q: X-Cache %q, want HIT: the entry of %q", q, c, group[0])
			}
		}
	}
}

// An empty query returns a random sample of users: two searches with the
// cache off show different people; the total is every user.
func TestEndpointsSearchEmptyQueryIsARandomSample(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{"GATEWAY_CACHE__ENABLED": "false"}})
	tok := idp.UserToken(t)
	everyone := epStoreSearch(t, store, "", 1, 0).Total
	var samples [][]string
	for _, path := range []string{"/api/v2/users/search", "/api/v2/users/search?query=", "/api/v2/users/search?q=%20%20", "/api/v2/users/search?query=&page=1&limit=20"} {
		r, p := epSearch(t, gw, path, Bearer(tok))
		if x := r.Header.Get("X-Cache"); x != "BYPASS" {
			t.Fatalf("%s: X-Cache %q with the cache off, want BYPASS", path, x)
		}
		if p.Page != 1 || p.Limit != 20 || p.Total != everyone || len(p.Items) != 20 {
			t.Fatalf("%s: page %d limit %d total %d items %d; want 1, 20, %d, 20", path, p.Page, p.Limit, p.Total, len(p.Items), everyone)
		}
		for _, it := range p.Items {
			if got := epSortedKeys(it); !slices.Equal(got, epPublicKeys) {
				t.Fatalf("%s: item keys %v", path, got)
			}
		}
		ids := p.ids(t)
		slices.Sort(ids)
		for _, prev := range samples {
			if slices.Equal(prev, ids) {
				t.Fatalf("%s: the same 20 of %d users twice: the sample is not random", path, everyone)
			}
		}
		samples = append(samples, ids)
	}
}

// Each uncached search costs the store exactly one search call and one
// batched live-stream call for the ids of the page; a cached one costs
// nothing.
func TestEndpointsSearchCallsTheStoreOncePerPage(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)

	store.Reset(t)
	r, p := epSearch(t, gw, "/api/v2/users/search?query=sukru&page=2&limit=10", Bearer(tok))
	if len(p.Items) != 10 {
		t.Fatalf("%d items", len(p.Items))
	}
	epWantCalls(t, store, map[string]int64{refstore.OpSearch: 1, refstore.OpLiveStreams: 1})
	var searchQuery, streamIDs string
	for _, rec := range store.Requests(t) {
		v, err := url.ParseQuery(rec.Query)
		if err != nil {
			t.Fatal(err)
		}
		switch rec.Operation {
		case refstore.OpSearch:
			searchQuery = v.Get("q") + " " + v.Get("limit") + " " + v.Get("offset")
		case refstore.OpLiveStreams:
			streamIDs = v.Get("userIds")
		}
	}
	if searchQuery != "sukru 10 10" {
		t.Fatalf("the store was asked q, limit, offset = %q, want \"sukru 10 10\"", searchQuery)
	}
	if want := strings.Join(p.ids(t), ","); streamIDs != want {
		t.Fatalf("live streams asked for %q, want the page's ids %q", streamIDs, want)
	}
	if x, cc := r.Header.Get("X-Cache"), r.Header.Get("Cache-Control"); x != "MISS" || cc != "private, max-age=15" || r.Header.Get("ETag") == "" {
		t.Fatalf("first search: X-Cache %q, Cache-Control %q, ETag %q", x, cc, r.Header.Get("ETag"))
	}

	// The same page again, and with q instead of query, and with the
	// query typed differently: all the one cached answer.
	store.Reset(t)
	for _, path := range []string{"/api/v2/users/search?query=sukru&page=2&limit=10", "/api/v2/users/search?q=SUKRU&limit=10&page=2", "/api/v2/users/search?query=%C5%9E%C3%BCkr%C3%BC%20&page=2&limit=10"} {
		again, p2 := epSearch(t, gw, path, Bearer(tok))
		if again.Header.Get("X-Cache") != "HIT" || !slices.Equal(p2.ids(t), p.ids(t)) {
			t.Fatalf("%s: X-Cache %q, ids equal %v", path, again.Header.Get("X-Cache"), slices.Equal(p2.ids(t), p.ids(t)))
		}
	}
	notModified := gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru&page=2&limit=10", Bearer(tok), Header("If-None-Match", r.Header.Get("ETag")))
	if notModified.Status != http.StatusNotModified || len(notModified.Body) != 0 {
		t.Fatalf("If-None-Match: status %d, body %q; want 304 without a body", notModified.Status, notModified.Body)
	}
	// A client may keep the page for 15 s: its cache must not answer
	// another user, language or platform with it (CORS's Origin stays).
	web, _ := epSearch(t, gw, "/api/v2/users/search?query=sukru&page=2&limit=10", Bearer(tok), Header("Origin", "http://localhost:3000"))
	for _, a := range []*Response{r, notModified, web} {
		for _, h := range []string{"Authorization", "X-Language", "Accept-Language", "X-Platform"} {
			if !polVaries(a, h) {
				t.Errorf("%d answer: Vary %q lacks %s", a.Status, a.Header.Values("Vary"), h)
			}
		}
	}
	if !polVaries(web, "Origin") {
		t.Errorf("the web origin's answer: Vary %q lacks Origin", web.Header.Values("Vary"))
	}
	epNoStoreCall(t, store, "cached searches")

	// A page without users needs no live-stream call.
	store.Reset(t)
	_, empty := epSearch(t, gw, "/api/v2/users/search?query=zzqqxx", Bearer(tok))
	if len(empty.Items) != 0 || empty.Total != 0 {
		t.Fatalf("zzqqxx: %+v", empty)
	}
	epWantCalls(t, store, map[string]int64{refstore.OpSearch: 1})

	// A random sample is kept briefly, by the gateway and by the client.
	sample, _ := epSearch(t, gw, "/api/v2/users/search", Bearer(tok))
	if x, cc := sample.Header.Get("X-Cache"), sample.Header.Get("Cache-Control"); x != "MISS" || cc != "private, max-age=5" {
		t.Fatalf("random sample: X-Cache %q, Cache-Control %q; want MISS, private, max-age=5", x, cc)
	}

	// With the cache off every request pays its two calls.
	off := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{"GATEWAY_CACHE__ENABLED": "false"}})
	store.Reset(t)
	for range 3 {
		r, _ := epSearch(t, off, "/api/v2/users/search?query=sukru", Bearer(tok))
		if x, cc := r.Header.Get("X-Cache"), r.Header.Get("Cache-Control"); x != "BYPASS" || cc != "private, no-store" {
			t.Fatalf("cache off: X-Cache %q, Cache-Control %q", x, cc)
		}
	}
	epWantCalls(t, store, map[string]int64{refstore.OpSearch: 3, refstore.OpLiveStreams: 3})
}

// epWantCalls checks the store's call counts since its last Reset; the
// operations not named must be 0.
func epWantCalls(t testing.TB, store *Store, want map[string]int64) {
	t.Helper()
	got := store.Counts(t)
	for _, op := range []string{refstore.OpUsernameCheck, refstore.OpSearch, refstore.OpUser, refstore.OpLiveStreams} {
		if got[op] != want[op] {
			t.Fatalf("store calls %v, want %v", got, want)
		}
	}
}

// Paging and query parameters: defaults, documented bounds, and a 400 with
// the reason, in English and Turkish, for anything else. Refused searches
// never reach the store.
func TestEndpointsSearchParameters(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{"GATEWAY_CACHE__ENABLED": "false"}})
	tok := idp.UserToken(t)
	get := func(query string) func(lang string) *Response {
		return func(lang string) *Response {
			return gw.Do(t, http.MethodGet, "/api/v2/users/search?"+query, Bearer(tok), Lang(lang))
		}
	}
	const (
		once     = "query must be given once"
		pageOnce = "page must be given once"
		limOnce  = "limit must be given once"
		badLimit = "limit must be a whole number between 1 and 50"
		badPage  = "page must be a whole number of at least 1"
		tooFar   = "page is too far: at most the first 10000 results can be fetched"
		tooLong  = "query must be at most 100 characters long"
		tooMany  = "query must have at most 8 words"
		invalid  = "query contains invalid characters"
	)
	for _, c := range []struct {
		query string
		want  string
	}{
		{"query=sukru&q=isik", once},
		{"q=sukru&query=sukru", once},
		{"query=sukru&query=isik", once},
		{"q=sukru&q=sukru", once},
		{"query=&q=sukru", once},
		// Like query: which of two a server takes differs, so neither is.
		{"page=1&page=2", pageOnce},
		{"page=2&page=2", pageOnce},
		{"page=&page=2", pageOnce},
		{"query=sukru&page=1&limit=5&page=9", pageOnce},
		{"limit=10&limit=20", limOnce},
		{"limit=10&limit=10", limOnce},
		{"limit=10&limit", limOnce},
		{"limit=51", badLimit},
		{"limit=100", badLimit},
		{"limit=0", badLimit},
		{"limit=-1", badLimit},
		{"limit=abc", badLimit},
		{"limit=", badLimit},
		{"limit=2.5", badLimit},
		{"limit=99999999999999999999999", badLimit},
		{"page=0", badPage},
		{"page=-1", badPage},
		{"page=abc", badPage},
		{"page=", badPage},
		{"page=1.5", badPage},
		{"page=501", tooFar},
		// A whole number past what an int holds is a page too far, not
		// "not a whole number".
		{"page=99999999999999999999999", tooFar},
		{"page=9223372036854775808&limit=1", tooFar},
		{"page=201&limit=50", tooFar},
		{"page=9223372036854775807&limit=50", tooFar},
		{"query=" + strings.Repeat("a", 101), tooLong},
		{"query=" + url.QueryEscape(strings.Repeat("ş", 101)), tooLong},
		// Under 100 characters but over the store's 200 bytes.
		{"query=" + url.QueryEscape(strings.Repeat("😀", 51)), tooLong},
		{"query=" + url.QueryEscape(strings.Repeat("漢", 70)), tooLong},
		{"query=" + strings.Repeat("a", 2000), tooLong},
		// 1025 bytes as sent, though only "ali" once the spaces collapse.
		{"query=" + strings.Repeat("+", 1022) + "ali", tooLong},
		{"query=" + url.QueryEscape("ahmet mehmet ali veli ayşe fatma zeynep elif can"), tooMany},
		{"q=" + url.QueryEscape("a b c d e f g h i"), tooMany},
		{"query=sukru%00", invalid},
		{"query=sukru%0Aisik", invalid},
		{"query=%FF%FE", invalid},
	} {
		t.Run(c.query[:min(len(c.query), 40)], func(t *testing.T) {
			store.Reset(t)
			epFails(t, get(c.query), http.StatusBadRequest, "Validation failed", c.want)
			epNoStoreCall(t, store, c.query)
		})
	}

	// What is accepted, and what the store is asked for it.
	for _, c := range []struct {
		query                    string
		q                        string
		page, limit, storeOffset int
	}{
		{"query=sukru", "sukru", 1, 20, 0},
		{"q=sukru", "sukru", 1, 20, 0},
		{"query=sukru&page=2&limit=50", "sukru", 2, 50, 50},
		{"query=sukru&limit=1", "sukru", 1, 1, 0},
		{"query=sukru&page=500", "sukru", 500, 20, 9980},
		{"query=sukru&page=200&limit=50", "sukru", 200, 50, 9950},
		{"query=" + strings.Repeat("a", 100), strings.Repeat("a", 100), 1, 20, 0},
		{"query=" + url.QueryEscape(strings.Repeat("ş", 100)), strings.Repeat("ş", 100), 1, 20, 0},
		// Counted, and sent, in NFC: "ş" written as s and a combining
		// cedilla is one character, as the search folds it.
		{"query=" + url.QueryEscape(strings.Repeat("s\u0327", 100)), strings.Repeat("ş", 100), 1, 20, 0},
		{"query=" + url.QueryEscape("S\u0327u\u0308kru\u0308 Is\u0327\u0131k"), "Şükrü Işık", 1, 20, 0},
		{"query=" + url.QueryEscape("  ali   veli  "), "ali veli", 1, 20, 0},
		// The 100 characters are counted after the spaces collapse; as
		// sent, the value may hold 1024 bytes.
		{"query=" + strings.Repeat("+", 1021) + "ali", "ali", 1, 20, 0},
		{"query=" + url.QueryEscape("ahmet mehmet ali veli ayşe fatma zeynep elif"), "ahmet mehmet ali veli ayşe fatma zeynep elif", 1, 20, 0},
		// Repeated words and punctuation are no extra words.
		{"query=" + url.QueryEscape("ali ali, veli - ayşe ece can cem efe naz"), "ali ali, veli - ayşe ece can cem efe naz", 1, 20, 0},
		{"query=sukru&unknown=1", "sukru", 1, 20, 0},
	} {
		store.Reset(t)
		_, p := epSearch(t, gw, "/api/v2/users/search?"+c.query, Bearer(tok))
		if p.Page != c.page || p.Limit != c.limit {
			t.Fatalf("%s: page %d limit %d, want %d %d", c.query, p.Page, p.Limit, c.page, c.limit)
		}
		var asked url.Values
		for _, rec := range store.Requests(t) {
			if rec.Operation == refstore.OpSearch {
				if asked != nil {
					t.Fatalf("%s: two search calls", c.query)
				}
				asked, _ = url.ParseQuery(rec.Query)
			}
		}
		if asked.Get("q") != c.q || asked.Get("limit") != strconv.Itoa(c.limit) || asked.Get("offset") != strconv.Itoa(c.storeOffset) {
			t.Fatalf("%s: the store was asked %v, want q=%q limit=%d offset=%d", c.query, asked, c.q, c.limit, c.storeOffset)
		}
		want := epStoreSearch(t, store, c.q, c.limit, c.storeOffset)
		if p.Total != want.Total || !slices.Equal(p.ids(t), epUserIDs(want.Items)) {
			t.Fatalf("%s: total %d ids %v; the store has total %d ids %v", c.query, p.Total, p.ids(t), want.Total, epUserIDs(want.Items))
		}
	}
}

func epUserIDs(users []contract.User) []string {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	return ids
}
