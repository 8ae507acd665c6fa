package gateway

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	"golang.org/x/text/unicode/norm"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream/contract"
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
