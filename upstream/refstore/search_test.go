package refstore

import (
	"cmp"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bffgate/edge/upstream/contract"
)

// oracle answers searches over the seed data by brute force, straight from
// the rules in the package doc, so the SQL is checked against an
// independent implementation.
type oracle struct {
	users  []contract.User
	keys   []string // folded usernames
	tokens [][]string
}

var (
	oracleOnce sync.Once
	theOracle  *oracle
)

func sharedOracle() *oracle {
	oracleOnce.Do(func() {
		d := generate(DefaultUsers, DefaultSeed)
		o := &oracle{users: d.users}
		for _, u := range d.users {
			o.keys = append(o.keys, contract.Fold(u.Username))
			o.tokens = append(o.tokens, userTokens(u))
		}
		theOracle = o
	})
	return theOracle
}

func (o *oracle) search(q string) []contract.User {
	words, first := queryWords(contract.NormalizeQuery(q))
	words = withoutPrefixes(words)
	type hit struct {
		u     contract.User
		key   string
		exact int
		lead  bool
	}
	var hits []hit
	for i, u := range o.users {
		h := hit{u: u, key: o.keys[i]}
		matched := true
		for _, w := range words {
			found := false
			for _, tok := range o.tokens[i] {
				if strings.HasPrefix(tok, w) {
					found = true
				}
				if tok == w {
					h.exact++
					break
				}
			}
			if !found {
				matched = false
				break
			}
		}
		if matched && len(words) > 0 {
			h.lead = strings.HasPrefix(h.key, first)
			hits = append(hits, h)
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		lead := func(h hit) int {
			if h.lead {
				return 0
			}
			return 1
		}
		return cmp.Or(cmp.Compare(b.exact, a.exact), cmp.Compare(lead(a), lead(b)), strings.Compare(a.key, b.key))
	})
	out := make([]contract.User, len(hits))
	for i, h := range hits {
		out[i] = h.u
	}
	return out
}

func ids(users []contract.User) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return out
}

func TestSearchMatchesOracle(t *testing.T) {
	o := sharedOracle()
	queries := []string{
		"a", "ali", "Ali", "ali kaya", "kaya ali", "sukru", "ŞÜKRÜ IŞIK", "şükrü", "isik", "IŞIK", "ışık",
		"o'brien", "brien", "smith-jones", "jones", "zoe", "Zoë", "renee", "chloe", "ilgaz", "ılgaz",
		"mehmet ali", "mary jane", "ça", "ayse nur", "ayşe", "sukru.is", "sukru.isik", "@sukru", "ı", "İ",
		"e", "s", "j", "x", "q", "zzzz", "nonexistentname", "a b c", "ali ali", "ali al", "admin", "yonetici",
		"5", "12", "john", "johndoe", "gül", "gul", "öz", "oz", "ümit", "UMIT",
	}
	for _, q := range queries {
		t.Run(q, func(t *testing.T) {
			want := o.search(q)
			for _, page := range []struct{ limit, offset int }{{20, 0}, {13, 37}, {7, len(want) - 3}} {
				if page.offset < 0 {
					continue
				}
				got, err := shared.Search(t.Context(), q, page.limit, page.offset)
				if err != nil {
					t.Fatalf("Search(%q): %v", q, err)
				}
				if got.Total != len(want) {
					t.Fatalf("Search(%q) total = %d, oracle says %d", q, got.Total, len(want))
				}
				end := min(page.offset+page.limit, len(want))
				wantPage := want[min(page.offset, len(want)):end]
				if !slices.Equal(ids(got.Items), ids(wantPage)) {
					t.Fatalf("Search(%q, limit %d, offset %d):\n got %v\nwant %v", q, page.limit, page.offset,
						usernames(got.Items), usernames(wantPage))
				}
			}
		})
	}
}

func usernames(users []contract.User) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.Username
	}
	return out
}

// TestSearchFindsDemoUser is the brief's folding list: every spelling finds
// Şükrü Işık, at the position the ranking rule gives it.
func TestSearchFindsDemoUser(t *testing.T) {
	o := sharedOracle()
	for _, q := range []string{
		"sukru", "ŞÜKRÜ", "şükrü", "Sukru", "SUKRU", "isik", "IŞIK", "ışık", "Işık", "ISIK", "suk", "şü", "ış",
		"sukru isik", "  ŞÜKRÜ \t  IŞIK ", "isik sukru", "sukru.isik", "SUKRU.ISIK", "sukru.is", "@sukru", "sukru,",
	} {
		pos := slices.Index(ids(o.search(q)), DemoUserID)
		if pos < 0 {
			t.Errorf("by the rules, %q should find the demo user", q)
			continue
		}
		got, err := shared.Search(t.Context(), q, 1, pos)
		if err != nil {
			t.Fatalf("Search(%q): %v", q, err)
		}
		if len(got.Items) != 1 || got.Items[0].ID != DemoUserID {
			t.Errorf("%q: the demo user is not at %d: %v", q, pos, usernames(got.Items))
		}
	}
	for _, q := range []string{"ukru", "sik", "sukrux", "sukru yilmaz", "isik.sukru"} {
		if slices.Contains(ids(o.search(q)), DemoUserID) {
			t.Errorf("%q finds the demo user; matching is by word prefix", q)
		}
	}
	// Relevance: the demo user's username starts with "sukru", so it leads
	// the users whose first name is Şükrü but whose username does not.
	got, err := shared.Search(t.Context(), "sukru isik", 5, 0)
	if err != nil || len(got.Items) == 0 {
		t.Fatalf("search: %v", err)
	}
	if got.Items[0].ID != DemoUserID {
		t.Errorf("\"sukru isik\" ranks %v first", usernames(got.Items))
	}
}

func TestSearchPagesAreConsistent(t *testing.T) {
	ctx := t.Context()
	const q = "ay" // a few pages
	first, err := shared.Search(ctx, q, 50, 0)
	if err != nil {
		t.Fatal(err)
	}
	if first.Total <= 100 || first.Total > 500 {
		t.Fatalf("want a query with a few pages, got total %d", first.Total)
	}
	seen := map[string]bool{}
	for offset := 0; offset < first.Total; offset += 50 {
		page, err := shared.Search(ctx, q, 50, offset)
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != first.Total {
			t.Fatalf("total changed between pages: %d then %d", first.Total, page.Total)
		}
		if want := min(50, first.Total-offset); len(page.Items) != want {
			t.Fatalf("page at %d has %d items, want %d", offset, len(page.Items), want)
		}
		for _, u := range page.Items {
			if seen[u.ID] {
				t.Fatalf("%s appears on two pages", u.Username)
			}
			seen[u.ID] = true
		}
	}
	if len(seen) != first.Total {
		t.Fatalf("pages hold %d users, total says %d", len(seen), first.Total)
	}
	past, err := shared.Search(ctx, q, 10, first.Total+5)
	if err != nil {
		t.Fatal(err)
	}
	if past.Total != first.Total || past.Items == nil || len(past.Items) != 0 {
		t.Fatalf("page past the end: total %d, items %v (nil %v)", past.Total, len(past.Items), past.Items == nil)
	}
	none, err := shared.Search(ctx, "zzzzqqq", 10, 0)
	if err != nil || none.Total != 0 || none.Items == nil || len(none.Items) != 0 {
		t.Fatalf("no match: %+v, %v", none, err)
	}
	none, err = shared.Search(ctx, "!!! ...", 10, 0)
	if err != nil || none.Total != 0 || none.Items == nil {
		t.Fatalf("punctuation only: %+v, %v", none, err)
	}
}

func TestSearchEmptyQueryIsRandomSample(t *testing.T) {
	ctx := t.Context()
	var orders [][]string
	for _, q := range []string{"", "   ", "\t\u00a0"} {
		got, err := shared.Search(ctx, q, 25, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.Total != DefaultUsers || len(got.Items) != 25 {
			t.Fatalf("Search(%q): total %d, %d items", q, got.Total, len(got.Items))
		}
		distinct := map[string]bool{}
		for _, u := range got.Items {
			if u.ID == "" || u.Username == "" {
				t.Fatalf("empty user in sample: %+v", u)
			}
			distinct[u.ID] = true
		}
		if len(distinct) != 25 {
			t.Fatalf("sample repeats users: %v", usernames(got.Items))
		}
		orders = append(orders, ids(got.Items))
	}
	if slices.Equal(orders[0], orders[1]) && slices.Equal(orders[1], orders[2]) {
		t.Fatal("three samples were identical")
	}
	// A store smaller than the page returns everyone.
	small, _ := openSmall(t, 5, 1)
	got, err := small.Search(ctx, "", 100, 0)
	if err != nil || got.Total != 5 || len(got.Items) != 5 {
		t.Fatalf("small sample: %d of %d, %v", len(got.Items), got.Total, err)
	}
}

func TestSearchValidation(t *testing.T) {
	tests := []struct {
		name          string
		q             string
		limit, offset int
		field         string
	}{
		{"limit zero", "a", 0, 0, "limit"},
		{"limit over cap", "a", contract.MaxSearchLimit + 1, 0, "limit"},
		{"negative offset", "a", 10, -1, "offset"},
		{"offset too deep", "a", 10, contract.MaxSearchOffset + 1, "offset"},
		{"long q", strings.Repeat("a", contract.MaxQueryBytes+1), 10, 0, "q"},
		{"invalid utf-8", "a\xffb", 10, 0, "q"},
		{"too many words", "a1 b2 c3 d4 e5 f6 g7 h8 i9", 10, 0, "q"},
		// A word that begins another is a distinct word all the same.
		{"too many words, one beginning another", "a ab c d e f g h i", 10, 0, "q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := shared.Search(t.Context(), tt.q, tt.limit, tt.offset)
			var verr *ValidationError
			if !errors.As(err, &verr) || verr.Problems[tt.field] == "" {
				t.Fatalf("got %v, want a problem with %s", err, tt.field)
			}
		})
	}
	// The edges themselves are fine.
	if _, err := shared.Search(t.Context(), strings.Repeat("a", contract.MaxQueryBytes), contract.MaxSearchLimit, contract.MaxSearchOffset); err != nil {
		t.Fatalf("edges: %v", err)
	}
	if _, err := shared.Search(t.Context(), "a a a a a a a a a a a ab abc", 10, 0); err != nil {
		t.Fatalf("repeated words collapse: %v", err)
	}
	if _, err := shared.Search(t.Context(), "a ab c d e f g h", 10, 0); err != nil {
		t.Fatalf("8 distinct words, one beginning another: %v", err)
	}
}

func TestQueryWords(t *testing.T) {
	tests := []struct {
		in    string
		want  []string
		first string
	}{
		{"", nil, ""},
		{"sukru isik", []string{"isik", "sukru"}, "sukru"},
		{"ali al a", []string{"a", "al", "ali"}, "ali"},
		{"ali ali", []string{"ali"}, "ali"},
		{"@sukru, (isik)", []string{"isik", "sukru"}, "sukru"},
		{"sukru.is", []string{"sukru.is"}, "sukru.is"},
		{"!!! ...", nil, ""},
		{"o'brien", []string{"o'brien"}, "o'brien"},
	}
	for _, tt := range tests {
		got, first := queryWords(tt.in)
		if !reflect.DeepEqual(got, tt.want) || first != tt.first {
			t.Errorf("queryWords(%q) = %q, %q; want %q, %q", tt.in, got, first, tt.want, tt.first)
		}
	}
}

func TestWithoutPrefixes(t *testing.T) {
	for _, tt := range []struct{ in, want []string }{
		{nil, []string{}},
		{[]string{"a", "al", "ali"}, []string{"ali"}},
		{[]string{"a", "ab", "b", "c", "ca"}, []string{"ab", "b", "ca"}},
		{[]string{"isik", "sukru"}, []string{"isik", "sukru"}},
		{[]string{"ali", "alim", "veli"}, []string{"alim", "veli"}},
	} {
		if got := withoutPrefixes(slices.Clone(tt.in)); !slices.Equal(got, tt.want) {
			t.Errorf("withoutPrefixes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUserTokens(t *testing.T) {
	tests := []struct {
		u    contract.User
		want []string
	}{
		{contract.User{Username: "sukru.isik", FirstName: "Şükrü", LastName: "Işık"}, []string{"sukru.isik", "sukru", "isik"}},
		{contract.User{Username: "mj_obrien", FirstName: "Mary Jane", LastName: "O'Brien"},
			[]string{"mj_obrien", "mj", "obrien", "mary", "jane", "o'brien", "o", "brien"}},
		{contract.User{Username: "zoe.smithjones", FirstName: "Zoë", LastName: "Smith-Jones"},
			[]string{"zoe.smithjones", "zoe", "smithjones", "smith-jones", "smith", "jones"}},
		// Typed on an iPhone (smart punctuation): the same tokens as O'Brien.
		{contract.User{Username: "sean.obrien", FirstName: "Seán", LastName: "O\u2019Brien"},
			[]string{"sean.obrien", "sean", "obrien", "o'brien", "o", "brien"}},
	}
	for _, tt := range tests {
		if got := userTokens(tt.u); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("userTokens(%s) = %q, want %q", tt.u.Username, got, tt.want)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, w := range []string{"a", "sukru", "ş", "日本", "z"} {
		end := prefixEnd(w)
		if !(w < end) || !(w+"\U0010FFFF" < end) || strings.HasPrefix(end, w) {
			t.Errorf("prefixEnd(%q) = %q does not bound the prefix", w, end)
		}
	}
}

// TestSearchUsesIndexes asserts the query plans: every look-up is an index
// search, never a scan of users, user_tokens or live_streams.
func TestSearchUsesIndexes(t *testing.T) {
	plans := map[string][]any{}
	for n := 1; n <= contract.MaxQueryWords; n++ {
		words := make([]string, n)
		for i := range words {
			words[i] = string(rune('a' + i))
		}
		plans[searchSQL[n]] = append(searchArgs(words), "a", "b", 20, 0)
		plans[countSQL[n]] = searchArgs(words)
	}
	plans[userByIDSQL] = []any{DemoUserID}
	plans[usernameTakenSQL] = []any{"admin"}
	plans[liveStreamsSQL] = []any{`["` + DemoUserID + `","` + DemoAdminID + `"]`}
	plans[sampleBySeqSQL] = []any{`[5,1,9]`}
	for query, args := range plans {
		rows, err := shared.read.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatalf("explain: %v\n%s", err, query)
		}
		var lines []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, detail)
		}
		rows.Close()
		plan := strings.Join(lines, "\n")
		for _, line := range lines {
			for _, table := range []string{"users", "u", "user_tokens", "live_streams"} {
				if line == "SCAN "+table || strings.HasPrefix(line, "SCAN "+table+" ") {
					t.Errorf("full scan of %s:\n%s\nquery:\n%s", table, plan, query)
				}
			}
		}
		if strings.Contains(query, "user_tokens") && !strings.Contains(plan, "SEARCH user_tokens USING PRIMARY KEY (token>? AND token<?)") {
			t.Errorf("tokens not searched by prefix range:\n%s", plan)
		}
		if query == liveStreamsSQL && !strings.Contains(plan, "USING INDEX live_streams_active_by_user") {
			t.Errorf("live streams not read through the active index:\n%s", plan)
		}
		t.Logf("%s\n", plan)
	}
}

func TestConcurrentReads(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 24 {
		wg.Go(func() {
			for j := range 3 {
				q := []string{"ilgaz", "sukru", "", "ali kaya"}[(i+j)%4]
				if _, err := shared.Search(t.Context(), q, 20, j); err != nil {
					errs <- err
					return
				}
				if _, ok, err := shared.UserByID(t.Context(), DemoUserID); err != nil || !ok {
					errs <- errors.Join(err, errors.New("demo user missing"))
					return
				}
				if ls, err := shared.ActiveLiveStreams(t.Context(), []string{DemoUserID}); err != nil || len(ls) != 1 {
					errs <- errors.Join(err, errors.New("demo stream missing"))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkSearch(b *testing.B) {
	for _, bc := range []struct{ name, q string }{
		{"exact-name", "sukru"},
		{"two-words", "ali kaya"},
		{"one-letter", "a"},
		{"folded-upper", "ŞÜKRÜ IŞIK"},
		{"no-match", "zzzzqqq"},
		{"empty-sample", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := shared.Search(b.Context(), bc.q, DefaultSearchLimit, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("parallel-mixed", func(b *testing.B) {
		qs := []string{"sukru", "ali kaya", "a", "", "zzzzqqq"}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := shared.Search(b.Context(), qs[i%len(qs)], DefaultSearchLimit, 0); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	})
}
