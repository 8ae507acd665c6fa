package e2e

// Issue 6, the admin routes against the real user store: the admin
// platform with a verified admin token sees every field of a user, never
// from a cache, with larger pages. Everyone else is refused before the
// store hears of the request.

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/refstore"
)

// epAdminKeys are the fields of a user on the admin routes.
var epAdminKeys = []string{"bio", "createdAt", "email", "expertise", "firstName", "id", "lastName", "liveStream",
	"minutePrice", "phone", "photos", "profilePhotoUrl", "roles", "status", "updatedAt", "username"}

// epCheckAdminUser checks a user on the admin routes against the store's:
// every field, each as the store holds it.
func epCheckAdminUser(t testing.TB, item map[string]json.RawMessage, u contract.User, ls *contract.LiveStream, lang string) {
	t.Helper()
	if got := epSortedKeys(item); !slices.Equal(got, epAdminKeys) {
		t.Fatalf("admin user %s: keys %v, want exactly %v", u.Username, got, epAdminKeys)
	}
	for k, want := range map[string]string{
		"id": u.ID, "username": u.Username, "firstName": u.FirstName, "lastName": u.LastName,
		"email": u.Email, "phone": u.Phone, "bio": u.Bio, "status": u.Status,
		"createdAt": u.CreatedAt, "updatedAt": u.UpdatedAt,
	} {
		if got := epString(t, item[k]); got != want {
			t.Fatalf("admin user %s: %s %q, want %q", u.ID, k, got, want)
		}
	}
	for k, want := range map[string][]string{"roles": u.Roles, "expertise": u.Expertise} {
		var got []string
		if err := json.Unmarshal(item[k], &got); err != nil || got == nil || !slices.Equal(got, want) {
			t.Fatalf("admin user %s: %s %s, want %q", u.ID, k, item[k], want)
		}
	}
	epCheckMoney(t, item["minutePrice"], u.MinutePrice, lang)
	epCheckPhoto(t, "profilePhotoUrl", item["profilePhotoUrl"], u.Photos["96"])
	var photos map[string]json.RawMessage
	if err := json.Unmarshal(item["photos"], &photos); err != nil || !slices.Equal(epSortedKeys(photos), []string{"256", "48", "96"}) {
		t.Fatalf("admin user %s: photos %s, want 48, 96 and 256", u.ID, item["photos"])
	}
	for size, raw := range photos {
		epCheckPhoto(t, "photos."+size, raw, u.Photos[size])
	}
	epCheckLiveStream(t, item["liveStream"], ls)
}

// epNotCached checks that an admin answer says nothing of a cache.
func epNotCached(t testing.TB, r *Response) {
	t.Helper()
	if x := r.Header.Get("X-Cache"); x != "" && x != "BYPASS" {
		t.Fatalf("X-Cache %q on an admin route, want none or BYPASS", x)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "private, no-store" {
		t.Fatalf("Cache-Control %q on an admin route, want private, no-store", cc)
	}
	if e := r.Header.Get("ETag"); e != "" {
		t.Fatalf("ETag %q on an admin route", e)
	}
}

// An admin on the admin platform searches: every field of every user,
// pages of up to 100, and every call goes to the store.
func TestEndpointsAdminSearchShowsEverything(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	admin := []ReqOpt{Bearer(idp.AdminToken(t)), Platform("admin")}

	for _, lang := range []string{"en", "tr"} {
		store.Reset(t)
		r, p := epSearch(t, gw, "/api/admin/v1/users/search?query=sukru&limit=100", append(admin, Lang(lang))...)
		epNotCached(t, r)
		epWantCalls(t, store, map[string]int64{refstore.OpSearch: 1, refstore.OpLiveStreams: 1})
		want := epStoreSearch(t, store, "sukru", 100, 0)
		streams := epStoreStreams(t, store, want.Items)
		if p.Page != 1 || p.Limit != 100 || p.Total != want.Total || len(p.Items) != len(want.Items) {
			t.Fatalf("admin search: page %d limit %d total %d items %d; store total %d items %d",
				p.Page, p.Limit, p.Total, len(p.Items), want.Total, len(want.Items))
		}
		for i, u := range want.Items {
			epCheckAdminUser(t, p.Items[i], u, streams[u.ID], lang)
		}
	}

	// Never cached: the same search three times is three trips.
	store.Reset(t)
	for range 3 {
		r, _ := epSearch(t, gw, "/api/admin/v1/users/search?query=sukru&limit=100", admin...)
		epNotCached(t, r)
	}
	epWantCalls(t, store, map[string]int64{refstore.OpSearch: 3, refstore.OpLiveStreams: 3})

	// A full page of 100; the default page stays 20.
	_, p := epSearch(t, gw, "/api/admin/v1/users/search?limit=100", admin...)
	if len(p.Items) != 100 || p.Limit != 100 {
		t.Fatalf("limit=100: %d items, limit %d", len(p.Items), p.Limit)
	}
	_, p = epSearch(t, gw, "/api/admin/v1/users/search?q=ay%C5%9Fe", admin...)
	if p.Limit != 20 || p.Page != 1 {
		t.Fatalf("default paging: page %d limit %d, want 1 and 20", p.Page, p.Limit)
	}

	// Beyond 100, and the other parameter rules, are refused before the
	// store.
	store.Reset(t)
	for query, want := range map[string]string{
		"limit=101":          "limit must be a whole number between 1 and 100",
		"limit=0":            "limit must be a whole number between 1 and 100",
		"page=0":             "page must be a whole number of at least 1",
		"page=101&limit=100": "page is too far: at most the first 10000 results can be fetched",
		"query=a&q=b":        "query must be given once",
	} {
		epFails(t, func(lang string) *Response {
			return gw.Do(t, http.MethodGet, "/api/admin/v1/users/search?"+query, append(admin, Lang(lang))...)
		}, http.StatusBadRequest, "Validation failed", want)
	}
	epNoStoreCall(t, store, "invalid admin searches")
}

// An admin opens one user: every field, fresh from the store each time;
// a malformed id is a 400 before the store, an unknown one a 404.
func TestEndpointsAdminUserByID(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	admin := []ReqOpt{Bearer(idp.AdminToken(t)), Platform("admin")}
	get := func(id string, opts ...ReqOpt) (*Response, map[string]json.RawMessage) {
		r := gw.Do(t, http.MethodGet, "/api/admin/v1/users/"+id, append(admin, opts...)...)
		var data map[string]json.RawMessage
		r.Data(t, &data)
		return r, data
	}

	for _, c := range []struct{ asked, id string }{
		{refstore.DemoUserID, refstore.DemoUserID},
		{strings.ToUpper(refstore.DemoUserID), refstore.DemoUserID},
		{refstore.DemoAdminID, refstore.DemoAdminID},
	} {
		var u contract.User
		epStoreGet(t, store, contract.PathUserPrefix+c.id, &u)
		streams := epStoreStreams(t, store, []contract.User{u})
		for _, lang := range []string{"en", "tr"} {
			store.Reset(t)
			r, data := get(c.asked, Lang(lang))
			epNotCached(t, r)
			epCheckAdminUser(t, data, u, streams[u.ID], lang)
			epWantCalls(t, store, map[string]int64{refstore.OpUser: 1, refstore.OpLiveStreams: 1})
			for _, rec := range store.Requests(t) {
				if rec.Operation == refstore.OpUser && rec.Path != contract.PathUserPrefix+c.id {
					t.Fatalf("asked %s: the store was asked for %s, want %s", c.asked, rec.Path, c.id)
				}
			}
		}
	}

	// The demo user as the admin sees them, in full.
	_, data := get(refstore.DemoUserID)
	want := epDemoProfile("₺12.50")
	want["roles"], want["status"], want["updatedAt"] = []any{"user"}, "active", "2026-05-01T12:00:00.000Z"
	epEqualJSON(t, "the demo user on the admin route", data, want)

	store.Reset(t)
	for _, id := range []string{
		"not-a-uuid", "12345", refstore.DemoUserID + "0", refstore.DemoUserID[:35],
		strings.ReplaceAll(refstore.DemoUserID, "-", ""),
		"8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d1g", "8d7c6f0e_3b0a_4c1e_9a59_3f1f1c2b7d11",
		"%E2%80%8B" + refstore.DemoUserID[1:],
	} {
		epFails(t, func(lang string) *Response {
			return gw.Do(t, http.MethodGet, "/api/admin/v1/users/"+id, append(admin, Lang(lang))...)
		}, http.StatusBadRequest, "Validation failed", "user id is not valid")
	}
	epNoStoreCall(t, store, "malformed ids")

	store.Reset(t)
	epFails(t, func(lang string) *Response {
		return gw.Do(t, http.MethodGet, "/api/admin/v1/users/"+refstore.DemoMissingID, append(admin, Lang(lang))...)
	}, http.StatusNotFound, "Resource not found")
	if n := store.Counts(t)[refstore.OpUser]; n != 2 {
		t.Fatalf("unknown id: %d user calls for two requests, want 2 (never cached)", n)
	}
}

// Who may not use the admin routes, and how they learn it: a 403 with the
// generic message only, and the store never hears of them. The platform
// header grants nothing; the admin role alone is not enough either.
func TestEndpointsAdminDenialsNeverReachTheStore(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	user, admin := idp.UserToken(t), idp.AdminToken(t)
	adminPaths := []string{"/api/admin/v1/users/search?query=sukru", "/api/admin/v1/users/" + refstore.DemoUserID}
	forbidden := func(tok, path string, opts ...ReqOpt) {
		t.Helper()
		epFails(t, func(lang string) *Response {
			return gw.Do(t, http.MethodGet, path, append([]ReqOpt{Bearer(tok), Lang(lang)}, opts...)...)
		}, http.StatusForbidden, "Insufficient permissions")
	}

	store.Reset(t)
	for _, path := range adminPaths {
		// A user who claims to be on the admin platform.
		forbidden(user, path, Platform("admin"))
		forbidden(user, path, Platform("ADMIN"))
		// A genuine admin on an app platform is treated as that app.
		for _, platform := range []string{"mobile_ios", "ios", "mobile_android", "web", "api", "unknown"} {
			forbidden(admin, path, Platform(platform))
		}
		forbidden(admin, path) // no header: web
		// Identity headers of the client's own grant nothing either.
		forbidden(user, path, Platform("admin"), Header("X-User-Roles", "admin"), Header("X-User-Id", refstore.DemoAdminID))
	}
	// The admin platform is for admins even on the profile route, and it
	// does not serve the apps' search and username check.
	forbidden(user, "/api/v1/users/me", Platform("admin"))
	forbidden(admin, "/api/v2/users/search?query=sukru", Platform("admin"))
	epFails(t, func(lang string) *Response {
		return gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(admin), Platform("admin"), Lang(lang), JSONBody(`{"username":"johndoe123"}`))
	}, http.StatusForbidden, "Insufficient permissions")
	epNoStoreCall(t, store, "denied callers")

	// Without a token: 401, also on the admin platform.
	for _, path := range adminPaths {
		gw.Do(t, http.MethodGet, path, Platform("admin")).Failure(t, http.StatusUnauthorized, "Authentication required")
	}
	epNoStoreCall(t, store, "anonymous callers")

	// The same admin, on the admin platform, gets through.
	for _, path := range adminPaths {
		gw.Do(t, http.MethodGet, path, Bearer(admin), Platform("admin")).Data(t, nil)
	}
	epWantCalls(t, store, map[string]int64{refstore.OpSearch: 1, refstore.OpUser: 1, refstore.OpLiveStreams: 2})
}
