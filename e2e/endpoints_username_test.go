package e2e

// Issue 3, the username check: POST /api/v1/users/check-username through
// the real gateway and the real user store. A valid name is asked of the
// store once, in its canonical lower-case form; every invalid name or body
// is refused at the edge, in the caller's language, and the store never
// hears of it.

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/refstore"
)

// epTR is the Turkish text of every English message these tests expect.
var epTR = map[string]string{
	"Validation failed":        "Doğrulama başarısız oldu",
	"Authentication required":  "Kimlik doğrulaması gerekli",
	"Insufficient permissions": "Yetersiz yetki",
	"Resource not found":       "Kaynak bulunamadı",
	"Resource already exists or cannot be changed in its current state": "Kaynak zaten mevcut veya mevcut durumunda değiştirilemez",
	"Request body too large":                                                        "İstek gövdesi çok büyük",
	"The service returned an invalid response":                                      "Hizmetten geçersiz bir yanıt alındı",
	"The service did not respond in time":                                           "Hizmet zamanında yanıt vermedi",
	"Content-Type must be application/json":                                         "Content-Type application/json olmalıdır",
	"Content-Encoding is not supported: send the body uncompressed":                 "Content-Encoding desteklenmiyor: gövdeyi sıkıştırmadan gönderin",
	"Request body is not valid JSON":                                                "İstek gövdesi geçerli bir JSON değil",
	"Request body contains an unknown field":                                        "İstek gövdesinde bilinmeyen bir alan var",
	"username is required":                                                          "Kullanıcı adı zorunludur",
	"username must be a string":                                                     "Kullanıcı adı metin olmalıdır",
	"username must be given once":                                                   "Kullanıcı adı yalnızca bir kez verilmelidir",
	"the Content-Type header must be given once":                                    "Content-Type başlığı yalnızca bir kez verilmelidir",
	"username must be between 3 and 30 characters long":                             "Kullanıcı adı 3 ile 30 karakter arasında olmalıdır",
	"username may contain only English letters (a-z), digits, dots and underscores": "Kullanıcı adı yalnızca İngilizce harfler (a-z), rakamlar, nokta ve alt çizgi içerebilir",
	"username must start with a letter":                                             "Kullanıcı adı bir harfle başlamalıdır",
	"username must not end with a dot or an underscore":                             "Kullanıcı adı nokta veya alt çizgiyle bitemez",
	"username must not contain two dots or underscores in a row":                    "Kullanıcı adında art arda iki nokta veya alt çizgi bulunamaz",
	"page must be a whole number of at least 1":                                     "page en az 1 olan bir tam sayı olmalıdır",
	"limit must be a whole number between 1 and 50":                                 "limit 1 ile 50 arasında bir tam sayı olmalıdır",
	"limit must be a whole number between 1 and 100":                                "limit 1 ile 100 arasında bir tam sayı olmalıdır",
	"page is too far: at most the first 10000 results can be fetched":               "Sayfa çok ileride: en fazla ilk 10000 sonuç getirilebilir",
	"query contains invalid characters":                                             "Arama metni geçersiz karakterler içeriyor",
	"query must be at most 100 characters long":                                     "Arama metni en fazla 100 karakter olabilir",
	"query must be given once":                                                      "Arama metni yalnızca bir kez verilmelidir",
	"page must be given once":                                                       "page yalnızca bir kez verilmelidir",
	"limit must be given once":                                                      "limit yalnızca bir kez verilmelidir",
	"query must have at most 8 words":                                               "Arama metni en fazla 8 kelime içerebilir",
	"user id is not valid":                                                          "Kullanıcı kimliği geçerli değil",
}

// epFails checks a failure envelope in English and in Turkish: call sends
// the request with the given X-Language, en lists every message expected
// in English, in order, and the Turkish answer must hold their
// translations in the same order.
func epFails(t testing.TB, call func(lang string) *Response, status int, en ...string) {
	t.Helper()
	for _, lang := range []string{"en", "tr"} {
		want := en
		if lang == "tr" {
			want = make([]string, len(en))
			for i, m := range en {
				tr, ok := epTR[m]
				if !ok {
					t.Fatalf("no Turkish text known for %q", m)
				}
				want[i] = tr
			}
		}
		r := call(lang)
		got := r.Failure(t, status, want[0])
		if !slices.Equal(got, want) {
			t.Fatalf("%s errors %q, want %q", lang, got, want)
		}
	}
}

// epNoStoreCall checks that the store received nothing since its last Reset.
func epNoStoreCall(t testing.TB, store *Store, what string) {
	t.Helper()
	if n := store.Total(t); n != 0 {
		t.Fatalf("%s: the store received %d calls (%v), want none", what, n, store.Counts(t))
	}
}

// epBodyTap is a recording reverse proxy in front of a user store: the
// store's recorder counts calls and keeps headers, the tap also keeps the
// bodies of the username checks, so a test can see the name the store was
// asked about.
type epBodyTap struct {
	URL    string
	mu     sync.Mutex
	bodies []string
}

func epStartBodyTap(t testing.TB, store *Store) *epBodyTap {
	t.Helper()
	target, err := url.Parse(store.URL)
	if err != nil {
		t.Fatal(err)
	}
	tap := &epBodyTap{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == contract.PathUsernameCheck {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "tap: reading the body", http.StatusBadGateway)
				return
			}
			tap.mu.Lock()
			tap.bodies = append(tap.bodies, string(body))
			tap.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tap.URL = srv.URL
	return tap
}

// take returns the usernames the store was asked about since the last take.
func (tap *epBodyTap) take(t testing.TB) []string {
	t.Helper()
	tap.mu.Lock()
	defer tap.mu.Unlock()
	var names []string
	for _, b := range tap.bodies {
		var req struct {
			Username *string `json:"username"`
		}
		dec := json.NewDecoder(strings.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.Username == nil {
			t.Fatalf("the store received a username check body %q that is not {\"username\": \"...\"}", b)
		}
		names = append(names, *req.Username)
	}
	tap.bodies = nil
	return names
}

// epUsernameRig is a user store of the test's own, the tap in front of it
// and a gateway pointed at the tap.
type epUsernameRig struct {
	store *Store
	tap   *epBodyTap
	gw    *Gateway
	tok   string
}

func epStartUsernameRig(t *testing.T) *epUsernameRig {
	t.Helper()
	store := StartStore(t, nil)
	tap := epStartBodyTap(t, store)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{StoreURL: tap.URL, IdP: idp})
	return &epUsernameRig{store: store, tap: tap, gw: gw, tok: idp.UserToken(t)}
}

// check sends a username check with a JSON body.
func (r *epUsernameRig) check(t testing.TB, body string, opts ...ReqOpt) *Response {
	t.Helper()
	return r.gw.Do(t, http.MethodPost, "/api/v1/users/check-username", append([]ReqOpt{Bearer(r.tok), JSONBody(body)}, opts...)...)
}

// epUsernameBody is the JSON body of a check for name.
func epUsernameBody(name string) string {
	b, _ := json.Marshal(map[string]string{"username": name})
	return string(b)
}

// The app asks about names while the user types one. Free and taken names
// come back as exactly {"available": true|false}; whatever case or
// surrounding spaces the user typed, the store is asked once, about the
// canonical lower-case name.
func TestEndpointsUsernameAvailability(t *testing.T) {
	rig := epStartUsernameRig(t)
	for _, c := range []struct {
		typed, asked string
		available    bool
	}{
		{refstore.AvailableUsername, "johndoe123", true},
		{"sukru.isik", "sukru.isik", false},
		{"SUKRU.ISIK", "sukru.isik", false},
		{"  Sukru.Isik\t", "sukru.isik", false},
		{"JohnDoe123", "johndoe123", true},
		{"admin", "admin", false},
		// The boundaries of the length rule are valid names.
		{"abc", "abc", true},
		{"a" + strings.Repeat("b", 29), "a" + strings.Repeat("b", 29), true},
		{"a1_b.c", "a1_b.c", true},
	} {
		rig.store.Reset(t)
		r := rig.check(t, epUsernameBody(c.typed))
		if r.Status != http.StatusOK {
			t.Fatalf("%q: status %d: %s", c.typed, r.Status, r.Body)
		}
		e := r.Envelope(t)
		want := `{"available":false}`
		if c.available {
			want = `{"available":true}`
		}
		if string(e.Data) != want {
			t.Fatalf("%q: data %s, want exactly %s", c.typed, e.Data, want)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("%q: Cache-Control %q, want no-store: an answer about availability must not be kept", c.typed, cc)
		}
		if got := rig.store.Counts(t); got[refstore.OpUsernameCheck] != 1 || rig.store.Total(t) != 1 {
			t.Fatalf("%q: store calls %v, want exactly one username check", c.typed, got)
		}
		if names := rig.tap.take(t); !slices.Equal(names, []string{c.asked}) {
			t.Fatalf("%q: the store was asked about %q, want exactly [%q]", c.typed, names, c.asked)
		}
	}

	// The bare token the seed's docs describe works as well as Bearer, and
	// a charset parameter on the content type is fine.
	rig.store.Reset(t)
	var out struct{ Available *bool }
	rig.gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bare(rig.tok),
		RawBody("application/json; charset=utf-8", []byte(`{"username":"johndoe123"}`))).Data(t, &out)
	if out.Available == nil || !*out.Available {
		t.Fatalf("bare token with charset: available %v, want true", out.Available)
	}
	if names := rig.tap.take(t); !slices.Equal(names, []string{"johndoe123"}) {
		t.Fatalf("the store was asked about %q", names)
	}
}

// Every rule of the documented username rules, alone and together, in
// English and Turkish. Nothing invalid ever reaches the store.
func TestEndpointsUsernameRules(t *testing.T) {
	rig := epStartUsernameRig(t)
	const (
		required  = "username is required"
		notString = "username must be a string"
		length    = "username must be between 3 and 30 characters long"
		charset   = "username may contain only English letters (a-z), digits, dots and underscores"
		start     = "username must start with a letter"
		end       = "username must not end with a dot or an underscore"
		twoSeps   = "username must not contain two dots or underscores in a row"
	)
	for _, c := range []struct {
		name string
		body string
		want []string
	}{
		{"missing", `{}`, []string{required}},
		{"null", `{"username":null}`, []string{required}},
		{"number", `{"username":123}`, []string{notString}},
		{"boolean", `{"username":true}`, []string{notString}},
		{"object", `{"username":{"name":"john"}}`, []string{notString}},
		{"array", `{"username":["john"]}`, []string{notString}},
		{"empty", epUsernameBody(""), []string{required}},
		{"only spaces", epUsernameBody(" \t "), []string{required}},
		{"two characters", epUsernameBody("ab"), []string{length}},
		{"one character", epUsernameBody("a"), []string{length}},
		{"31 characters", epUsernameBody("a" + strings.Repeat("b", 30)), []string{length}},
		{"a space inside", epUsernameBody("john doe"), []string{charset}},
		{"a hyphen", epUsernameBody("john-doe"), []string{charset}},
		{"an at sign", epUsernameBody("john@doe"), []string{charset}},
		{"Turkish letters inside", epUsernameBody("ali.şen"), []string{charset}},
		{"dotless i inside", epUsernameBody("kılıç"), []string{charset}},
		// Only a-z counts as a letter for the start rule.
		{"Turkish first letter", epUsernameBody("şükrü"), []string{charset, start}},
		{"dotted capital I", epUsernameBody("İsmail"), []string{charset, start}},
		{"starts with a digit", epUsernameBody("1john"), []string{start}},
		{"starts with a dot", epUsernameBody(".john"), []string{start}},
		{"starts with an underscore", epUsernameBody("_john"), []string{start}},
		{"ends with a dot", epUsernameBody("john."), []string{end}},
		{"ends with an underscore", epUsernameBody("john_"), []string{end}},
		{"two dots", epUsernameBody("jo..hn"), []string{twoSeps}},
		{"two underscores", epUsernameBody("jo__hn"), []string{twoSeps}},
		{"dot underscore", epUsernameBody("jo._hn"), []string{twoSeps}},
		{"underscore dot", epUsernameBody("jo_.hn"), []string{twoSeps}},
		// Several problems at once: all of them, in the rules' order.
		{"short, bad start", epUsernameBody("1a"), []string{length, start}},
		{"bad start, end, separators", epUsernameBody("_a..b_"), []string{start, end, twoSeps}},
		{"everything", epUsernameBody("1" + strings.Repeat("-", 30) + "_"), []string{length, charset, start, end}},
		{"long Turkish name", epUsernameBody(strings.Repeat("ş", 31)), []string{length, charset, start}},
		{"spaces and separators", epUsernameBody(" .a b__ "), []string{charset, start, end, twoSeps}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rig.store.Reset(t)
			epFails(t, func(lang string) *Response { return rig.check(t, c.body, Lang(lang)) },
				http.StatusBadRequest, append([]string{"Validation failed"}, c.want...)...)
			epNoStoreCall(t, rig.store, c.name)
		})
	}
	if names := rig.tap.take(t); len(names) != 0 {
		t.Fatalf("invalid names reached the store: %q", names)
	}
}

// Bodies that are not the one documented JSON object: refused at the edge
// with what is wrong, never passed on.
func TestEndpointsUsernameBodies(t *testing.T) {
	rig := epStartUsernameRig(t)
	const (
		notJSON   = "Request body is not valid JSON"
		unknown   = "Request body contains an unknown field"
		wantJSON  = "Content-Type must be application/json"
		givenOnce = "username must be given once"
	)
	raw := func(contentType, body string) func(lang string) *Response {
		return func(lang string) *Response {
			return rig.gw.Do(t, http.MethodPost, "/api/v1/users/check-username",
				Bearer(rig.tok), Lang(lang), RawBody(contentType, []byte(body)))
		}
	}
	for _, c := range []struct {
		name        string
		contentType string
		body        string
		want        string
	}{
		{"cut short", "application/json", `{"username":"johndoe123"`, notJSON},
		{"not JSON at all", "application/json", `username=johndoe123`, notJSON},
		{"empty body", "application/json", ``, notJSON},
		{"trailing garbage", "application/json", `{"username":"johndoe123"} x`, notJSON},
		{"a second object", "application/json", `{"username":"johndoe123"}{"username":"admin"}`, notJSON},
		{"an array", "application/json", `[{"username":"johndoe123"}]`, notJSON},
		{"a bare string", "application/json", `"johndoe123"`, notJSON},
		{"null", "application/json", `null`, notJSON},
		{"a trailing comma", "application/json", `{"username":"johndoe123",}`, notJSON},
		// JSON text is UTF-8 (RFC 8259 section 8.1): a byte that is no
		// UTF-8 makes the body no JSON, wherever it is, not a name with
		// a character outside a-z.
		{"invalid UTF-8 in the name", "application/json", "{\"username\":\"ab\xffcd\"}", notJSON},
		{"a truncated UTF-8 sequence in the name", "application/json", "{\"username\":\"ali.\xc5\"}", notJSON},
		{"a UTF-8 surrogate in the name", "application/json", "{\"username\":\"ab\xed\xa0\x80cd\"}", notJSON},
		{"invalid UTF-8 in another member", "application/json", "{\"username\":\"johndoe123\",\"x\":\"\xff\"}", notJSON},
		{"invalid UTF-8 in a key", "application/json", "{\"user\xffname\":\"johndoe123\"}", notJSON},
		{"an unknown field", "application/json", `{"username":"johndoe123","admin":true}`, unknown},
		{"only an unknown field", "application/json", `{"name":"johndoe123"}`, unknown},
		// Keys are matched exactly: encoding/json alone would read these
		// as "username", and a repeated key would silently win.
		{"the key in capitals", "application/json", `{"USERNAME":"johndoe123"}`, unknown},
		{"the key capitalised", "application/json", `{"Username":"johndoe123"}`, unknown},
		{"a taken name overridden by a capitalised key", "application/json", `{"username":"sukru.isik","Username":"johndoe123"}`, unknown},
		{"the key twice", "application/json", `{"username":"sukru.isik","username":"johndoe123"}`, givenOnce},
		{"text/plain", "text/plain", `{"username":"johndoe123"}`, wantJSON},
		{"no content type", "", `{"username":"johndoe123"}`, wantJSON},
		{"a form", "application/x-www-form-urlencoded", `username=johndoe123`, wantJSON},
		{"a JSON look-alike type", "application/json-patch+json", `{"username":"johndoe123"}`, wantJSON},
		// ſ (U+017F, long s) is s in Unicode's case folding, not in a media
		// type's ASCII case-insensitivity: a proxy in front reads no JSON.
		{"a look-alike of application/json", "application/j\u017fon", `{"username":"johndoe123"}`, wantJSON},
		{"a look-alike of application/json in capitals", "APPLICATION/J\u017fON", `{"username":"johndoe123"}`, wantJSON},
	} {
		t.Run(c.name, func(t *testing.T) {
			rig.store.Reset(t)
			epFails(t, raw(c.contentType, c.body), http.StatusBadRequest, "Validation failed", c.want)
			epNoStoreCall(t, rig.store, c.name)
		})
	}

	// The body limit is 16 KiB (server.bodyLimit): a valid body of exactly
	// that size is read and answered, one byte more is a 413 envelope.
	const limit = 16 << 10
	head, tail := `{"username":"johndoe123"`, `}`
	exact := head + strings.Repeat(" ", limit-len(head)-len(tail)) + tail
	rig.store.Reset(t)
	var out struct{ Available bool }
	rig.gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(rig.tok), JSONBody(exact)).Data(t, &out)
	if !out.Available || rig.store.Counts(t)[refstore.OpUsernameCheck] != 1 {
		t.Fatalf("a 16 KiB body: available %v, store calls %v", out.Available, rig.store.Counts(t))
	}
	over := head + strings.Repeat(" ", limit-len(head)-len(tail)+1) + tail
	rig.store.Reset(t)
	epFails(t, func(lang string) *Response {
		return rig.gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(rig.tok), Lang(lang), JSONBody(over))
	}, http.StatusRequestEntityTooLarge, "Request body too large")
	epFails(t, func(lang string) *Response {
		return rig.check(t, epUsernameBody(strings.Repeat("a", 20<<10)), Lang(lang))
	}, http.StatusRequestEntityTooLarge, "Request body too large")
	epNoStoreCall(t, rig.store, "oversized bodies")
	if names := rig.tap.take(t); !slices.Equal(names, []string{"johndoe123"}) {
		t.Fatalf("the store was asked about %q, want only the one valid check", names)
	}

	// Bodies are read as they came. A compressed one is refused, not
	// decoded: Fiber's c.Body() decoded every listed coding with no bound,
	// so a small "gzip, gzip" body became megabytes in memory (and was
	// checked as a name); now nothing is inflated.
	gz := func(b []byte) []byte {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return out.Bytes()
	}
	bomb := gz(gz([]byte(`{"username":"` + strings.Repeat("a", 8<<20) + `"}`)))
	for _, c := range []struct {
		name, encoding string
		body           []byte
	}{
		{"gzip", "gzip", gz([]byte(`{"username":"johndoe123"}`))},
		{"gzip twice, 8 MiB inflated", "gzip, gzip", bomb},
		{"identity then gzip", "identity, gzip", gz([]byte(`{"username":"johndoe123"}`))},
		{"br on plain JSON", "br", []byte(`{"username":"johndoe123"}`)},
	} {
		t.Run("Content-Encoding "+c.name, func(t *testing.T) {
			rig.store.Reset(t)
			epFails(t, func(lang string) *Response {
				return rig.gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(rig.tok), Lang(lang),
					RawBody("application/json", c.body), Header("Content-Encoding", c.encoding))
			}, http.StatusBadRequest, "Validation failed", "Content-Encoding is not supported: send the body uncompressed")
			epNoStoreCall(t, rig.store, c.name)
		})
	}
	for _, enc := range []string{"identity", "Identity", " identity , IDENTITY "} {
		rig.gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(rig.tok),
			JSONBody(`{"username":"johndoe123"}`), Header("Content-Encoding", enc)).Data(t, &out)
		if !out.Available {
			t.Fatalf("Content-Encoding %q: not available", enc)
		}
	}
	rig.tap.take(t)

	// Without a token nothing is read or asked.
	rig.store.Reset(t)
	rig.gw.Do(t, http.MethodPost, "/api/v1/users/check-username", JSONBody(`{"username":"johndoe123"}`)).
		Failure(t, http.StatusUnauthorized, "Authentication required")
	epNoStoreCall(t, rig.store, "no token")
}

// Content-Type is no list field (RFC 9110 section 8.3): a check with two
// is malformed, whichever comes last and whether or not they agree.
// fasthttp keeps only the last, so "text/plain" then "application/json"
// was checked as JSON and the reverse refused: a proxy in front that
// reads the first would disagree with the gateway about the body. The
// routes without a body read no Content-Type, and take two.
func TestEndpointsUsernameContentTypeOnce(t *testing.T) {
	rig := epStartUsernameRig(t)
	for _, c := range []struct{ name, first, second string }{
		{"text/plain then JSON", "text/plain", "application/json"},
		{"JSON then text/plain", "application/json", "text/plain"},
		{"JSON twice", "application/json", "application/json"},
		{"JSON then JSON with a charset", "application/json", "application/json; charset=utf-8"},
		{"an empty one then JSON", "", "application/json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rig.store.Reset(t)
			epFails(t, func(lang string) *Response {
				return rig.gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(rig.tok), Lang(lang),
					RawBody("", []byte(`{"username":"johndoe123"}`)),
					Header("Content-Type", c.first), Header("Content-Type", c.second))
			}, http.StatusBadRequest, "Validation failed", "the Content-Type header must be given once")
			epNoStoreCall(t, rig.store, c.name)
		})
	}

	// The refusal is the request's, not the connection's: the next
	// request on it, with one Content-Type, is answered.
	ka := rig.gw.KeepAlive(t)
	body := `{"username":"johndoe123"}`
	head := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + rig.tok +
		"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	if r := ka.Send(t, head+"Content-Type: text/plain\r\nContent-Type: application/json\r\n\r\n"+body); r.Status != http.StatusBadRequest {
		t.Fatalf("two Content-Types on a kept connection: status %d: %s", r.Status, r.Body)
	}
	if r := ka.Send(t, head+"Content-Type: application/json\r\n\r\n"+body); r.Status != http.StatusOK {
		t.Fatalf("one Content-Type after two on the same connection: status %d: %s", r.Status, r.Body)
	}
	rig.tap.take(t)

	// A route without a body ignores Content-Type, one or two.
	rig.gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(rig.tok),
		Header("Content-Type", "text/plain"), Header("Content-Type", "application/json")).Data(t, nil)
}
