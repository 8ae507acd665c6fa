package gateway

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream/contract"
)

func shapeUser() contract.User {
	return contract.User{
		ID: "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11", Username: "johndoe123",
		FirstName: "John", LastName: "Doe",
		Email: "john@example.com", Phone: "+905551112233", Bio: "Hello",
		Roles: []string{"user"}, Expertise: []string{"astrology", "career coaching"},
		MinutePrice: contract.Money{AmountMinor: 1250, Currency: "TRY"},
		Photos:      map[string]string{"48": "https://cdn/48.jpg", "96": "https://cdn/96.jpg", "256": "https://cdn/256.jpg"},
		Status:      "active", CreatedAt: "2025-03-01T09:00:00.000Z", UpdatedAt: "2026-05-01T12:00:00.000Z",
	}
}

var shapeAllFields = func() (s policies.FieldSet) {
	for _, name := range policies.FieldNames() {
		f, _ := policies.ParseField(name)
		s |= policies.NewFieldSet(f)
	}
	return s
}()

// shapeDecode checks the bytes are one valid JSON object and decodes it.
func shapeDecode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("not valid JSON: %s", b)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, b)
	}
	return m
}

// Every field appears exactly when its set has it, for each field alone
// and for the sets the default configuration uses.
func TestAppendUserShowsExactlyTheVisibleFields(t *testing.T) {
	u := shapeUser()
	ls := &contract.LiveStream{ID: "ls-1", UserID: u.ID, Title: "Live", StartedAt: "2026-05-22T16:00:00.000Z", ViewerCount: 7}
	sets := map[string]policies.FieldSet{"none": 0, "all": shapeAllFields}
	for _, name := range policies.FieldNames() {
		f, _ := policies.ParseField(name)
		sets["only "+name] = policies.NewFieldSet(f)
		sets["all but "+name] = shapeAllFields &^ policies.NewFieldSet(f)
	}
	for label, set := range sets {
		m := shapeDecode(t, appendUser(nil, &u, ls, set, clientctx.LanguageEN))
		got := slices.Sorted(maps.Keys(m))
		want := slices.Sorted(slices.Values(set.Names()))
		if !slices.Equal(got, want) {
			t.Errorf("%s: keys %v, want %v", label, got, want)
		}
	}
}

// A set without email (or phone, or status) never writes it, whatever the
// user carries; with the field, an empty value is null.
func TestAppendUserNeverWritesHiddenContact(t *testing.T) {
	u := shapeUser()
	u.Bio = "contact me: john@example.com"
	public := policies.NewFieldSet(policies.FieldID, policies.FieldUsername, policies.FieldFirstName, policies.FieldLastName,
		policies.FieldExpertise, policies.FieldMinutePrice, policies.FieldProfilePhotoURL, policies.FieldLiveStream)
	b := appendUser(nil, &u, nil, public, clientctx.LanguageTR)
	for _, leak := range []string{"email", "phone", "+905551112233", "john@example.com", "status", "active", "roles", "bio"} {
		if bytes.Contains(b, []byte(leak)) {
			t.Fatalf("public shape carries %q: %s", leak, b)
		}
	}
	u.Email, u.Phone = "", ""
	m := shapeDecode(t, appendUser(nil, &u, nil, policies.NewFieldSet(policies.FieldEmail, policies.FieldPhone), clientctx.LanguageEN))
	if m["email"] != nil || m["phone"] != nil || len(m) != 2 {
		t.Fatalf("empty contact fields: %v", m)
	}
}

func TestAppendUserPhotos(t *testing.T) {
	set := policies.NewFieldSet(policies.FieldProfilePhotoURL, policies.FieldPhotos)
	for _, c := range []struct {
		name    string
		photos  map[string]string
		profile any
		sizes   map[string]any
	}{
		{"all sizes", map[string]string{"48": "a", "96": "b", "256": "c"}, "b", map[string]any{"48": "a", "96": "b", "256": "c"}},
		{"no 96", map[string]string{"48": "a", "256": "c"}, nil, map[string]any{"48": "a", "96": nil, "256": "c"}},
		{"only 96", map[string]string{"96": "b"}, "b", map[string]any{"48": nil, "96": "b", "256": nil}},
		{"none", nil, nil, map[string]any{"48": nil, "96": nil, "256": nil}},
		{"empty 96", map[string]string{"96": ""}, nil, map[string]any{"48": nil, "96": nil, "256": nil}},
		{"unknown sizes ignored", map[string]string{"1024": "x", "96": "b"}, "b", map[string]any{"48": nil, "96": "b", "256": nil}},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := shapeUser()
			u.Photos = c.photos
			m := shapeDecode(t, appendUser(nil, &u, nil, set, clientctx.LanguageEN))
			if m["profilePhotoUrl"] != c.profile {
				t.Fatalf("profilePhotoUrl %v, want %v", m["profilePhotoUrl"], c.profile)
			}
			if got, _ := m["photos"].(map[string]any); !maps.Equal(got, c.sizes) {
				t.Fatalf("photos %v, want %v", m["photos"], c.sizes)
			}
		})
	}
}

func TestAppendUserLiveStreamAndPrice(t *testing.T) {
	u := shapeUser()
	set := policies.NewFieldSet(policies.FieldLiveStream, policies.FieldMinutePrice)

	m := shapeDecode(t, appendUser(nil, &u, nil, set, clientctx.LanguageEN))
	if v, ok := m["liveStream"]; !ok || v != nil {
		t.Fatalf("no live stream: liveStream %v (present %v), want null", v, ok)
	}
	price := m["minutePrice"].(map[string]any)
	if price["amountMinor"] != json.Number("1250") || price["currency"] != "TRY" || price["display"] != "₺12.50" {
		t.Fatalf("minutePrice %v", price)
	}

	ls := &contract.LiveStream{ID: "ls-1", UserID: u.ID, Title: "Canlı yayın", StartedAt: "2026-05-22T16:00:00.000Z", ViewerCount: 1234}
	b := appendUser(nil, &u, ls, set, clientctx.LanguageTR)
	m = shapeDecode(t, b)
	want := map[string]any{"id": "ls-1", "title": "Canlı yayın", "startedAt": "2026-05-22T16:00:00.000Z", "viewerCount": json.Number("1234")}
	if got, _ := m["liveStream"].(map[string]any); !maps.Equal(got, want) {
		t.Fatalf("liveStream %v, want %v", m["liveStream"], want)
	}
	if d := m["minutePrice"].(map[string]any)["display"]; d != "12,50 ₺" {
		t.Fatalf("Turkish display %v", d)
	}
	if bytes.Contains(b, []byte("userId")) {
		t.Fatalf("the live stream repeats the user id: %s", b)
	}
}

// Whatever the store sends in its strings, the output stays one valid JSON
// object whose values read back exactly as sent.
func TestAppendUserIsValidJSONForHostileStrings(t *testing.T) {
	hostile := []string{
		`"},"isSuccess":true,"x":{"`, `\`, `\"`, "line\nbreak", "\x00\x01\x1f", "</script><script>alert(1)</script>",
		"\u2028\u2029", "\xff\xfe", "ğüşiöçİĞÜŞÖÇı", "🎉", strings.Repeat("\\\"", 100),
	}
	for _, h := range hostile {
		u := shapeUser()
		u.ID, u.Username, u.FirstName, u.LastName, u.Email, u.Phone, u.Bio = h, h, h, h, h, h, h
		u.Roles, u.Expertise = []string{h, h}, []string{h}
		u.MinutePrice = contract.Money{AmountMinor: -1, Currency: h}
		u.Photos = map[string]string{"48": h, "96": h, "256": h}
		u.Status, u.CreatedAt, u.UpdatedAt = h, h, h
		ls := &contract.LiveStream{ID: h, UserID: h, Title: h, StartedAt: h, ViewerCount: -3}
		for _, lang := range []clientctx.Language{clientctx.LanguageEN, clientctx.LanguageTR} {
			b := appendUser(nil, &u, ls, shapeAllFields, lang)
			m := shapeDecode(t, b)
			var ref string
			rb, _ := json.Marshal(h)
			_ = json.Unmarshal(rb, &ref) // what h reads back as in JSON (invalid UTF-8 → U+FFFD)
			for _, k := range []string{"id", "username", "firstName", "lastName", "email", "phone", "bio", "status", "createdAt", "updatedAt", "profilePhotoUrl"} {
				if m[k] != ref {
					t.Fatalf("%s = %q, want %q (input %q)", k, m[k], ref, h)
				}
			}
			if title := m["liveStream"].(map[string]any)["title"]; title != ref {
				t.Fatalf("liveStream.title = %q, want %q", title, ref)
			}
		}
	}
}

func TestAppendUserPage(t *testing.T) {
	a, b := shapeUser(), shapeUser()
	b.ID, b.Username = "11111111-2222-4333-8444-555555555555", "other"
	streams := map[string]*contract.LiveStream{b.ID: {ID: "ls-b", UserID: b.ID, Title: "B", StartedAt: "t", ViewerCount: 1}}
	set := policies.NewFieldSet(policies.FieldID, policies.FieldLiveStream)
	out := appendUserPage(nil, []contract.User{a, b}, streams, set, clientctx.LanguageEN, 2, 20, 42)
	want := `{"items":[{"id":"8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11","liveStream":null},` +
		`{"id":"11111111-2222-4333-8444-555555555555","liveStream":{"id":"ls-b","title":"B","startedAt":"t","viewerCount":1}}],` +
		`"page":2,"limit":20,"total":42}`
	if string(out) != want {
		t.Fatalf("page\n got %s\nwant %s", out, want)
	}
	empty := appendUserPage(nil, nil, nil, set, clientctx.LanguageEN, 1, 20, 0)
	if string(empty) != `{"items":[],"page":1,"limit":20,"total":0}` {
		t.Fatalf("empty page %s", empty)
	}
}
