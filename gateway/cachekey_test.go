package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/upstream/devidp"
)

// keyGet sends a GET of path as a platform, in a language, with the token,
// and returns the answer's data and its X-Cache and Cache-Control.
func keyGet(t *testing.T, r *mixRig, tok, platform, lang, path string) (data json.RawMessage, xCache, cacheControl string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+r.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Platform", platform)
	req.Header.Set("X-Language", lang)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var env mixEnvelope
	if err := json.Unmarshal(body, &env); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s (%s): status %d: %s", platform, path, lang, resp.StatusCode, body)
	}
	return env.Data, resp.Header.Get("X-Cache"), resp.Header.Get("Cache-Control")
}

// A cached answer is shared only by callers who would get the same bytes:
// the same language (the price's display) and the same visible fields (a
// platform that hides a field never gets an answer loaded for one that
// shows it). Queries the store folds alike share one entry.
func TestCachedAnswersAreKeptApartByLanguageAndVisibleFields(t *testing.T) {
	r := newMixRig(t, map[string]string{
		// web sees less than the other platforms, in both views.
		"GATEWAY_POLICIES__WEB__FIELDS__PUBLIC": "id,username",
		"GATEWAY_POLICIES__WEB__FIELDS__SELF":   "id,username",
	})
	tok := r.token(t, r.users(t, 1)[0])

	type page struct {
		Items []struct {
			MinutePrice *struct {
				AmountMinor int64  `json:"amountMinor"`
				Currency    string `json:"currency"`
				Display     string `json:"display"`
			} `json:"minutePrice"`
		} `json:"items"`
	}
	read := func(name string, data json.RawMessage) page {
		t.Helper()
		var p page
		if err := json.Unmarshal(data, &p); err != nil || len(p.Items) == 0 {
			t.Fatalf("%s: %v, %s", name, err, data)
		}
		return p
	}

	const search = "/api/v2/users/search?query=a"
	en := read("ios, en", first(keyGet(t, r, tok, "ios", "en", search)))
	if en.Items[0].MinutePrice == nil {
		t.Fatalf("ios sees no minutePrice")
	}
	web, _, _ := keyGet(t, r, tok, "web", "en", search)
	if strings.Contains(string(web), "minutePrice") {
		t.Errorf("web got a field its policy hides, from the page loaded for ios: %s", web)
	}
	tr := read("ios, tr", first(keyGet(t, r, tok, "ios", "tr", search)))
	price := tr.Items[0].MinutePrice
	if want := string(appendMoneyDisplay(nil, price.AmountMinor, price.Currency, clientctx.LanguageTR)); price.Display != want {
		t.Errorf("Turkish page shows the price as %q, want %q (the English page's is %q)", price.Display, want, en.Items[0].MinutePrice.Display)
	}
	if _, xCache, _ := keyGet(t, r, tok, "ios", "en", "/api/v2/users/search?query=A"); xCache != "HIT" {
		t.Errorf("query A after query a: X-Cache %q, want HIT (the store folds both alike)", xCache)
	}

	me, _, _ := keyGet(t, r, tok, "ios", "en", "/api/v1/users/me")
	if !strings.Contains(string(me), `"email"`) {
		t.Fatalf("ios /me has no email: %s", me)
	}
	if webMe, _, _ := keyGet(t, r, tok, "web", "en", "/api/v1/users/me"); strings.Contains(string(webMe), `"email"`) {
		t.Errorf("web /me got a field its policy hides, from the profile loaded for ios: %s", webMe)
	}
}

func first(data json.RawMessage, _, _ string) json.RawMessage { return data }

// An empty search is a random sample, kept by the gateway for
// emptyQueryTTL (5s in config.yaml) and by a client no longer: its
// max-age is that, not the route's clientMaxAge (15s).
func TestEmptySearchIsKeptOnlyBriefly(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	if _, _, cc := keyGet(t, r, tok, "ios", "en", "/api/v2/users/search"); cc != "private, max-age=5" {
		t.Errorf("empty search: Cache-Control %q, want private, max-age=5", cc)
	}
	if _, _, cc := keyGet(t, r, tok, "ios", "en", "/api/v2/users/search?query=a"); cc != "private, max-age=15" {
		t.Errorf("search: Cache-Control %q, want private, max-age=15", cc)
	}
}

// Answers the gateway never caches tell every cache after it so: a
// username's availability changes with the next sign-up, and an admin's
// view of a user holds contact details no shared cache may keep. A check
// sent as anything but JSON is refused before the store is asked.
func TestUncachedAnswersAreNoStore(t *testing.T) {
	r := newMixRig(t)
	id := r.users(t, 1)[0]
	user := r.token(t, id)
	admin, err := r.idp.Mint(devidp.MintClaims{Subject: id, Roles: []string{"admin"}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	send := func(method, path, tok, platform, contentType, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+r.addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Platform", platform)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct {
		name   string
		resp   *http.Response
		status int
		cc     string
	}{
		{"username check", send("POST", "/api/v1/users/check-username", user, "ios", "application/json", `{"username":"someone.new"}`), 200, "no-store"},
		{"admin's view of a user", send("GET", "/api/admin/v1/users/"+id, admin, "admin", "", ""), 200, "private, no-store"},
		{"admin search", send("GET", "/api/admin/v1/users/search?query=a", admin, "admin", "", ""), 200, "private, no-store"},
		{"username check as text", send("POST", "/api/v1/users/check-username", user, "ios", "text/plain", `{"username":"someone.new"}`), 400, "no-store"},
	} {
		if c.resp.StatusCode != c.status || c.resp.Header.Get("Cache-Control") != c.cc {
			t.Errorf("%s: %d, Cache-Control %q; want %d, %q", c.name, c.resp.StatusCode, c.resp.Header.Get("Cache-Control"), c.status, c.cc)
		}
	}
}
