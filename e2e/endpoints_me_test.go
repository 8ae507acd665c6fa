package e2e

// Issue 3, the signed-in user's own profile: GET /api/v1/users/me through
// the real gateway and the real user store. The user comes from the
// verified token's subject; the profile and its live stream are two store
// calls made together; the answer is private.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/refstore"
)

// epMe reads /me and decodes its data.
func epMe(t testing.TB, gw *Gateway, opts ...ReqOpt) (*Response, map[string]json.RawMessage) {
	t.Helper()
	r := gw.Do(t, http.MethodGet, "/api/v1/users/me", opts...)
	var data map[string]json.RawMessage
	r.Data(t, &data)
	return r, data
}

// epDemoProfile is the demo user's own profile as the apps must see it.
func epDemoProfile(display string) map[string]any {
	photo := func(size string) string {
		return "https://cdn.example.com/u/" + refstore.DemoUserID + "/" + size + ".jpg"
	}
	return map[string]any{
		"id": refstore.DemoUserID, "username": "sukru.isik", "firstName": "Şükrü", "lastName": "Işık",
		"email": "sukru.isik@example.com", "phone": "+905551112233",
		"bio":             "Kariyer koçu ve astroloji meraklısı. Canlı yayınlarda sorularınızı yanıtlıyorum.",
		"expertise":       []any{"career coaching", "astrology"},
		"minutePrice":     map[string]any{"amountMinor": 1250, "currency": "TRY", "display": display},
		"profilePhotoUrl": photo("96"),
		"photos":          map[string]any{"48": photo("48"), "96": photo("96"), "256": photo("256")},
		"liveStream": map[string]any{"id": refstore.DemoLiveStreamID, "title": "Kariyer sohbetleri: soru-cevap",
			"startedAt": "2026-05-22T15:30:00.000Z", "viewerCount": 128},
		"createdAt": "2025-03-01T09:00:00.000Z",
	}
}

// The demo user opens their profile: everything about themselves (email,
// phone, bio, every photo size, the live stream they are running), none of
// the store's bookkeeping (roles, status, updatedAt). The store is asked
// for exactly that user and that user's stream, once each; the answer is
// never stored by a client or a shared cache.
func TestEndpointsMeOwnProfile(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)

	store.Reset(t)
	r, data := epMe(t, gw, Bearer(tok))
	epEqualJSON(t, "the demo user's profile", data, epDemoProfile("₺12.50"))
	if cc := r.Header.Get("Cache-Control"); cc != "private, no-store" {
		t.Fatalf("Cache-Control %q, want private, no-store", cc)
	}
	if x := r.Header.Get("X-Cache"); x != "MISS" {
		t.Fatalf("X-Cache %q on the first read, want MISS", x)
	}
	if p := r.Header.Get("X-Partial-Response"); p != "" {
		t.Fatalf("X-Partial-Response %q on a complete profile", p)
	}
	epWantCalls(t, store, map[string]int64{refstore.OpUser: 1, refstore.OpLiveStreams: 1})
	for _, rec := range store.Requests(t) {
		switch rec.Operation {
		case refstore.OpUser:
			if rec.Path != contract.PathUserPrefix+refstore.DemoUserID {
				t.Fatalf("user fetched at %s, want the token's subject", rec.Path)
			}
		case refstore.OpLiveStreams:
			if v, _ := url.ParseQuery(rec.Query); v.Get("userIds") != refstore.DemoUserID {
				t.Fatalf("live streams asked for %q, want only the demo user", rec.Query)
			}
		}
		if rec.Headers["X-User-Id"] != refstore.DemoUserID || rec.Headers["X-User-Roles"] != "user" {
			t.Fatalf("%s carried identity %q %q", rec.Operation, rec.Headers["X-User-Id"], rec.Headers["X-User-Roles"])
		}
	}

	// Read again at once: the gateway's own cache answers, and the answer
	// is still private and unstored at the client.
	store.Reset(t)
	r, data = epMe(t, gw, Bare(tok))
	epEqualJSON(t, "the cached profile", data, epDemoProfile("₺12.50"))
	if x, cc := r.Header.Get("X-Cache"), r.Header.Get("Cache-Control"); x != "HIT" || cc != "private, no-store" {
		t.Fatalf("second read: X-Cache %q, Cache-Control %q; want HIT, private, no-store", x, cc)
	}
	epNoStoreCall(t, store, "a cached profile")

	// In Turkish the price reads the Turkish way; nothing else changes.
	store.Reset(t)
	_, data = epMe(t, gw, Bearer(tok), Lang("tr"))
	epEqualJSON(t, "the profile in Turkish", data, epDemoProfile("12,50 ₺"))
	epWantCalls(t, store, map[string]int64{refstore.OpUser: 1, refstore.OpLiveStreams: 1})

	// Without a token there is no "me".
	store.Reset(t)
	epFails(t, func(lang string) *Response {
		return gw.Do(t, http.MethodGet, "/api/v1/users/me", Lang(lang))
	}, http.StatusUnauthorized, "Authentication required")
	epNoStoreCall(t, store, "no token")
}

// The admin demo user has no 96 px photo and no live stream: the photo is
// null in both places and the stream is null.
func TestEndpointsMeMissingPhotoAndNoStream(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	photo := func(size string) string {
		return "https://cdn.example.com/u/" + refstore.DemoAdminID + "/" + size + ".jpg"
	}
	_, data := epMe(t, gw, Bearer(idp.AdminToken(t)))
	epEqualJSON(t, "the admin's own profile", data, map[string]any{
		"id": refstore.DemoAdminID, "username": "admin", "firstName": "Ayşe", "lastName": "Yönetici",
		"email": "admin@example.com", "phone": "+905550000001", "bio": "Platform yöneticisi.",
		"expertise":       []any{"life coaching"},
		"minutePrice":     map[string]any{"amountMinor": 2000, "currency": "TRY", "display": "₺20.00"},
		"profilePhotoUrl": nil,
		"photos":          map[string]any{"48": photo("48"), "96": nil, "256": photo("256")},
		"liveStream":      nil,
		"createdAt":       "2024-11-15T08:30:00.000Z",
	})
}

// A valid token whose subject the store does not know: 404 in the
// caller's language, and nothing about it is kept: every try asks the
// store again.
func TestEndpointsMeUnknownSubject(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.Token(t, refstore.DemoMissingID, "user")
	for i := range 2 {
		store.Reset(t)
		epFails(t, func(lang string) *Response {
			r := gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(tok), Lang(lang))
			for _, h := range []string{"ETag", "X-Partial-Response"} {
				if v := r.Header.Get(h); v != "" {
					t.Fatalf("a 404 carries %s: %q", h, v)
				}
			}
			// Heuristically cacheable otherwise (RFC 9111 section 4.2.2).
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Fatalf("a 404 with Cache-Control %q, want no-store", cc)
			}
			return r
		}, http.StatusNotFound, "Resource not found")
		// Once per language, both times: a 404 is never cached.
		if got := store.Counts(t)[refstore.OpUser]; got != 2 {
			t.Fatalf("round %d: %d user calls for two requests, want 2", i, got)
		}
		for _, rec := range store.Requests(t) {
			if rec.Operation == refstore.OpUser && rec.Path != contract.PathUserPrefix+refstore.DemoMissingID {
				t.Fatalf("user fetched at %s", rec.Path)
			}
		}
	}
}
