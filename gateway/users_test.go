package gateway

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	"golang.org/x/text/unicode/norm"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/refstore"
)

// FuzzSearchParams drives parseSearchParams through a request's query
// string built from a query, a page and a limit (each present or not, some
// given twice), under each platform's policy of the repository's
// config.yaml, and checks the outcome against the rules as users.go and
// docs state them: query (or q), page and limit at most once each; the
// query at most 1 KiB as sent, UTF-8 without controls (C0, DEL, C1), kept
// trimmed with its whitespace runs made one space and composed (NFC), then
// at most 100 characters and 200 bytes and at most 8 distinct words once
// folded; page a whole number from 1, limit one from 1 to the policy's
// maximum (the policy's default when absent), and the page's first result
// before the 10,000th. An accepted search carries the query so cleaned and
// folded with contract.NormalizeQuery.
func FuzzSearchParams(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("..", "config.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	cfg, err := config.Parse(data, func(string) string { return "" })
	if err != nil {
		f.Fatal(err)
	}
	set, problems := policies.Compile(cfg.Policies, cfg.Auth)
	if len(problems) > 0 {
		f.Fatal(problems)
	}
	all := set.All()
	app := fiber.New()

	// present: 1 query, 2 q, 4 page, 8 limit, 16 page twice, 32 limit twice.
	f.Add("şükrü", "1", "20", uint8(1|4|8), uint8(0))
	f.Add("  Ali   Veli\t", "2", "50", uint8(2|4|8), uint8(1))
	f.Add("a", "", "", uint8(1|2), uint8(0))
	f.Add("s\u0327u\u0308kru\u0308", "+3", "007", uint8(1|4|8|16), uint8(2))
	f.Add("a b c d e f g h i", "0", "-1", uint8(1|4|8|32), uint8(0))
	f.Add("a b c d e f g h a, -", "500", "20", uint8(1|4|8), uint8(0))
	f.Add(strings.Repeat("ğ", 101), "9223372036854775807", "1", uint8(1|4|8), uint8(3))
	f.Add(strings.Repeat("字", 67), "501", "20", uint8(1|4|8), uint8(0))
	f.Add("x\u0085y", "1", "101", uint8(1|4|8), uint8(1))
	f.Add("\xff", "1", "1", uint8(2), uint8(0))
	f.Add("tab\there\u00a0", "10000", "1", uint8(1|4|8), uint8(0))
	// The page and limit bounds, with a query that passes, so that only
	// they decide: web's (platform 0) maximum of 50 and admin's (3) of
	// 100, one over each; the last page before the 10,000th result and
	// the first at it, with a limit given and with the default 20; a
	// page whose offset overflows an int.
	f.Add("a", "200", "50", uint8(1|4|8), uint8(0))
	f.Add("a", "201", "50", uint8(1|4|8), uint8(0))
	f.Add("a", "1", "51", uint8(1|4|8), uint8(0))
	f.Add("a", "100", "100", uint8(1|4|8), uint8(3))
	f.Add("a", "101", "100", uint8(1|4|8), uint8(3))
	f.Add("a", "1", "101", uint8(1|4|8), uint8(3))
	f.Add("a", "500", "", uint8(1|4), uint8(0))
	f.Add("a", "501", "", uint8(1|4), uint8(0))
	f.Add("", "200", "+50", uint8(4|8), uint8(0))
	f.Add("a", "4611686018427387905", "4", uint8(1|4|8), uint8(0)) // (page-1)*limit wraps to 0
	f.Add("a", "0", "1", uint8(1|4|8), uint8(0))
	f.Add("a", "1", "0", uint8(1|4|8), uint8(0))
	f.Fuzz(func(t *testing.T, query, page, limit string, present, platform uint8) {
		p := all[int(platform)%len(all)]
		var args []string
		add := func(k, v string) { args = append(args, url.QueryEscape(k)+"="+url.QueryEscape(v)) }
		queries, pages, limits := 0, 0, 0
		if present&1 != 0 {
			add("query", query)
			queries++
		}
		if present&2 != 0 {
			add("q", query)
			queries++
		}
		pageSent, limitSent := "", ""
		for _, n := range []struct {
			bit   uint8
			key   string
			value string
			count *int
			sent  *string
		}{{4, "page", page, &pages, &pageSent}, {16, "page", "1", &pages, &pageSent}, {8, "limit", limit, &limits, &limitSent}, {32, "limit", "1", &limits, &limitSent}} {
			if present&n.bit != 0 {
				add(n.key, n.value)
				*n.count++
				*n.sent = n.value
			}
		}
		fctx := &fasthttp.RequestCtx{}
		fctx.Request.SetRequestURI("/api/v2/users/search?" + strings.Join(args, "&"))
		c := app.AcquireCtx(fctx)
		defer app.ReleaseCtx(c)
		sp, err := parseSearchParams(c, p)

		// The rules, read one by one.
		ok := queries <= 1 && pages <= 1 && limits <= 1
		var cleaned string
		if queries == 1 {
			ok = ok && len(query) <= 1024 && utf8.ValidString(query) &&
				!strings.ContainsFunc(query, func(r rune) bool { return r < 0x20 || 0x7f <= r && r < 0xa0 })
			cleaned = norm.NFC.String(strings.Join(strings.Fields(query), " "))
			ok = ok && utf8.RuneCountInString(cleaned) <= 100 && len(cleaned) <= 200
			words := map[string]bool{}
			for _, w := range strings.Fields(contract.NormalizeQuery(cleaned)) {
				if w = strings.TrimFunc(w, func(r rune) bool {
					return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.In(r, unicode.Mn, unicode.Mc)
				}); w != "" {
					words[w] = true
				}
			}
			ok = ok && len(words) <= 8
		}
		wantPage, wantLimit := 1, p.DefaultPageSize()
		if pages == 1 {
			n, err := strconv.Atoi(pageSent)
			ok = ok && err == nil && n >= 1
			wantPage = n
		}
		if limits == 1 {
			n, err := strconv.Atoi(limitSent)
			ok = ok && err == nil && n >= 1 && n <= p.MaxPageSize()
			wantLimit = n
		}
		ok = ok && (wantPage-1) < 10000/wantLimit+1 && (wantPage-1)*wantLimit < 10000

		if !ok {
			var ae *apiError
			if err == nil || !errors.As(err, &ae) || ae.status != fiber.StatusBadRequest {
				t.Fatalf("query %q page %q limit %q (present %b): want a 400, got %+v, %v", query, page, limit, present, sp, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("query %q page %q limit %q (present %b): refused: %v", query, page, limit, present, err)
		}
		if sp.query != cleaned || sp.folded != contract.NormalizeQuery(cleaned) || sp.page != wantPage || sp.limit != wantLimit {
			t.Fatalf("query %q page %q limit %q (present %b): got %+v, want query %q page %d limit %d", query, page, limit, present, sp, cleaned, wantPage, wantLimit)
		}
	})
}

// The body of a username check names "username", spelled exactly, once:
// of two spellings or two values, another reader could take the other.
func TestUsernameBodyTakesOneExactKey(t *testing.T) {
	for body, want := range map[string]msg{
		`{"USERNAME":"johndoe123"}`:                         msgUnknownField,
		`{"userName":"johndoe123"}`:                         msgUnknownField,
		`{"username":"johndoe123","username":"sukru.isik"}`: msgUsernameTwice,
	} {
		_, err := strictUsernameBody([]byte(body))
		var ae *apiError
		if !errors.As(err, &ae) || ae.status != fiber.StatusBadRequest || !slices.Contains(ae.msgs, want) {
			t.Errorf("%s: got %v, want a 400 with message %d", body, err, want)
		}
	}
	if raw, err := strictUsernameBody([]byte(`{ "username" : "johndoe123" }`)); err != nil || raw != "johndoe123" {
		t.Errorf("plain body: %q, %v", raw, err)
	}
}

func TestIdentityEncoding(t *testing.T) {
	for _, c := range []struct {
		values []string
		want   bool
	}{
		{nil, true},
		{[]string{"identity"}, true},
		{[]string{"Identity, IDENTITY"}, true},
		{[]string{""}, true},
		{[]string{"gzip"}, false},
		{[]string{"identity, gzip"}, false},
		{[]string{"identity", "br"}, false},
	} {
		var values [][]byte
		for _, v := range c.values {
			values = append(values, []byte(v))
		}
		if got := identityEncoding(values); got != c.want {
			t.Errorf("identityEncoding(%q) = %v, want %v", c.values, got, c.want)
		}
	}
}

// parseSearchParams at its edges: a limit of the policy's maximum is
// taken and one more is not; the page whose first result is the 10,000th
// is refused and the one before it taken.
func TestSearchParamsAtTheirBounds(t *testing.T) {
	cfg, err := config.Parse(mustRead(t, filepath.Join("..", "config.yaml")), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	set, problems := policies.Compile(cfg.Policies, cfg.Auth)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	app := fiber.New()
	for _, p := range set.All() {
		max := p.MaxPageSize()
		lastPage := (10000-1)/max + 1 // (lastPage-1)*max < 10000
		for _, c := range []struct {
			query string
			ok    bool
		}{
			{"limit=" + strconv.Itoa(max), true},
			{"limit=" + strconv.Itoa(max+1), false},
			{"limit=" + strconv.Itoa(max) + "&page=" + strconv.Itoa(lastPage), true},
			{"limit=" + strconv.Itoa(max) + "&page=" + strconv.Itoa(lastPage+1), false},
			{"limit=20&page=500", true},
			{"limit=20&page=501", false},
		} {
			if max < 20 && strings.HasPrefix(c.query, "limit=20") {
				continue
			}
			fctx := &fasthttp.RequestCtx{}
			fctx.Request.SetRequestURI("/api/v2/users/search?" + c.query)
			ctx := app.AcquireCtx(fctx)
			_, err := parseSearchParams(ctx, p)
			app.ReleaseCtx(ctx)
			if (err == nil) != c.ok {
				t.Errorf("max page size %d, %s: error %v, want accepted %v", max, c.query, err, c.ok)
			}
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The gateway refuses a query for its words exactly when the store does:
// both take at most 8 distinct words (docs/userstore.openapi.yaml), and
// a word that begins another is one of them. The gateway and the store,
// each on loopback, are asked the same queries. The store used to drop
// such a word before counting, and took 9 distinct words the gateway
// refused.
func TestGatewayAndStoreCountQueryWordsAlike(t *testing.T) {
	idp, idpSrv := loopbackIDP(t, "http://idp.words")
	st := loopbackStore(t, 50)
	stSrv := httptest.NewServer(st.Handler(refstore.HandlerOptions{}))
	t.Cleanup(stSrv.Close)
	s := newRepoServer(t, map[string]string{
		"GATEWAY_AUTH__JWKSURLS":                idpSrv.URL + "/.well-known/jwks.json",
		"GATEWAY_AUTH__ISSUER":                  "http://idp.words",
		"GATEWAY_UPSTREAMS__USERSTORE__BASEURL": stSrv.URL,
		"GATEWAY_CACHE__ENABLED":                "false",
	}, nil)
	addr := serveLoopback(t, s)
	tok := demoUserToken(t, idp)
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	status := func(req *http.Request) int {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	for _, c := range []struct {
		q    string
		want int
	}{
		{"a ab c d e f g h i", http.StatusBadRequest},           // 9 distinct; "a" begins "ab"
		{"ali al a veli ve v ayse ay c", http.StatusBadRequest}, // 9 distinct, 3 whole words
		{"a ab c d e f g h", http.StatusOK},                     // 8 distinct
		{"a a ab ab c d e f g h", http.StatusOK},                // 8 distinct, 2 repeated
		{"a, a b c d e f g h -", http.StatusOK},                 // punctuation is no word
		{"a b c d e f g h i", http.StatusBadRequest},
	} {
		gw, err := http.NewRequest(http.MethodGet, "http://"+addr+"/api/v2/users/search?query="+url.QueryEscape(c.q), nil)
		if err != nil {
			t.Fatal(err)
		}
		gw.Header.Set("Authorization", "Bearer "+tok)
		store, err := http.NewRequest(http.MethodGet, stSrv.URL+contract.PathSearch+"?limit=20&offset=0&q="+url.QueryEscape(c.q), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, stored := status(gw), status(store); got != c.want || stored != c.want {
			t.Errorf("%q: the gateway answers %d, the store %d; want %d from both", c.q, got, stored, c.want)
		}
	}
}
