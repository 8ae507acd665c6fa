package refstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/bffgate/edge/upstream/contract"
)

const maxSearchLimit = contract.MaxSearchLimit

// Search finds users whose username, first name or last name match q (see
// the package doc for the exact rule), ordered by relevance then username.
// limit is 1..contract.MaxSearchLimit, offset 0..contract.MaxSearchOffset.
// An empty q returns a random sample of limit users, total being the number
// of users.
func (s *Store) Search(ctx context.Context, q string, limit, offset int) (contract.SearchResponse, error) {
	if err := s.checkOpen(); err != nil {
		return contract.SearchResponse{}, err
	}
	if verr := searchProblems(q, limit, offset); verr != nil {
		return contract.SearchResponse{}, verr
	}
	normalized := contract.NormalizeQuery(q)
	if normalized == "" {
		return s.sample(ctx, limit)
	}
	words, first := queryWords(normalized)
	if len(words) > contract.MaxQueryWords {
		return contract.SearchResponse{}, invalid("q", fmt.Sprintf("must have at most %d distinct words", contract.MaxQueryWords))
	}
	words = withoutPrefixes(words)
	if len(words) == 0 {
		// Only punctuation: nothing can match a word of it.
		return contract.SearchResponse{Items: []contract.User{}}, nil
	}
	args := searchArgs(words)
	rows, err := s.stmts.search[len(words)].QueryContext(ctx, append(args, first, prefixEnd(first), limit, offset)...)
	if err != nil {
		return contract.SearchResponse{}, fmt.Errorf("refstore: search: %w", err)
	}
	defer rows.Close()
	resp := contract.SearchResponse{Items: make([]contract.User, 0, limit)}
	for rows.Next() {
		u, err := scanUser(rows, &resp.Total)
		if err != nil {
			return contract.SearchResponse{}, fmt.Errorf("refstore: search: %w", err)
		}
		resp.Items = append(resp.Items, u)
	}
	if err := rows.Err(); err != nil {
		return contract.SearchResponse{}, fmt.Errorf("refstore: search: %w", err)
	}
	if len(resp.Items) == 0 && offset > 0 {
		// Paged past the end: the window count came with no row.
		err := s.stmts.count[len(words)].QueryRowContext(ctx, args...).Scan(&resp.Total)
		if err != nil {
			return contract.SearchResponse{}, fmt.Errorf("refstore: search count: %w", err)
		}
	}
	return resp, nil
}

// sample returns limit random users in random order. Seeded users have
// consecutive seq values (the store never deletes), so it draws seqs and
// reads them by primary key instead of sorting the table by random(); the
// sort is only the fallback should seqs ever have gaps.
func (s *Store) sample(ctx context.Context, limit int) (contract.SearchResponse, error) {
	var count, maxSeq int
	if err := s.stmts.sampleSize.QueryRowContext(ctx).Scan(&count, &maxSeq); err != nil {
		return contract.SearchResponse{}, fmt.Errorf("refstore: sample: %w", err)
	}
	k := min(limit, count)
	resp := contract.SearchResponse{Items: make([]contract.User, 0, k), Total: count}
	if count == 0 {
		return resp, nil
	}
	var rows *sql.Rows
	var err error
	if count == maxSeq {
		seqs, _ := json.Marshal(drawDistinct(k, count))
		rows, err = s.stmts.sampleBySeq.QueryContext(ctx, string(seqs))
	} else {
		rows, err = s.stmts.sampleSorted.QueryContext(ctx, k)
	}
	if err != nil {
		return contract.SearchResponse{}, fmt.Errorf("refstore: sample: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return contract.SearchResponse{}, fmt.Errorf("refstore: sample: %w", err)
		}
		resp.Items = append(resp.Items, u)
	}
	if err := rows.Err(); err != nil {
		return contract.SearchResponse{}, fmt.Errorf("refstore: sample: %w", err)
	}
	return resp, nil
}

// drawDistinct returns k distinct numbers from 1..n in random order.
func drawDistinct(k, n int) []int {
	if 2*k > n {
		perm := rand.Perm(n)[:k]
		for i := range perm {
			perm[i]++
		}
		return perm
	}
	out := make([]int, 0, k)
	seen := make(map[int]bool, k)
	for len(out) < k {
		if v := 1 + rand.IntN(n); !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// userTokens are the folded search tokens of u: per field, each
// space-separated piece with the punctuation at its edges trimmed, and the
// letter-and-digit runs inside it. "Sukru.Isik" gives "sukru.isik",
// "sukru", "isik".
func userTokens(u contract.User) []string {
	var tokens []string
	add := func(t string) {
		if t != "" && !slices.Contains(tokens, t) {
			tokens = append(tokens, t)
		}
	}
	for _, field := range []string{u.Username, u.FirstName, u.LastName} {
		for _, piece := range strings.Fields(contract.Fold(field)) {
			piece = strings.TrimFunc(piece, contract.SeparatesWords)
			add(piece)
			for _, w := range strings.FieldsFunc(piece, contract.SeparatesWords) {
				add(w)
			}
		}
	}
	return tokens
}

// queryWords splits a normalized query into its distinct words, sorted,
// and returns the first word as typed (it ranks usernames that start with
// it). They are what the contract counts against contract.MaxQueryWords:
// a word that begins another is one of them (withoutPrefixes drops it
// after the count).
func queryWords(normalized string) (words []string, first string) {
	for _, w := range strings.Split(normalized, " ") {
		if w = strings.TrimFunc(w, contract.SeparatesWords); w != "" {
			words = append(words, w)
		}
	}
	if len(words) == 0 {
		return nil, ""
	}
	first = words[0]
	slices.Sort(words)
	return slices.Compact(words), first
}

// withoutPrefixes drops from sorted, distinct words each that begins
// another: whatever token the longer word prefixes, the shorter one
// prefixes too. What is left must each prefix a token.
func withoutPrefixes(words []string) []string {
	// In sorted order a word's extensions directly follow it.
	out := words[:0]
	for i, w := range words {
		if i+1 < len(words) && strings.HasPrefix(words[i+1], w) {
			continue
		}
		out = append(out, w)
	}
	return out
}

// prefixEnd is the smallest string greater than every string that starts
// with w, in SQLite's binary (byte-wise) order. The last byte of non-empty
// UTF-8 text is never 0xff, so incrementing it cannot overflow.
func prefixEnd(w string) string {
	b := []byte(w)
	b[len(b)-1]++
	return string(b)
}

// searchArgs are the arguments of searchSQL and countSQL for words: per
// word, the exact token, then the bounds of its prefix range.
func searchArgs(words []string) []any {
	args := make([]any, 0, 3*len(words)+2)
	for _, w := range words {
		args = append(args, w, w, prefixEnd(w))
	}
	return args
}

// searchSQL[n] and countSQL[n] search for n words. Each word becomes a
// range scan of the user_tokens primary key, grouped per user with a flag
// for an exact token match (m0…). The users every word found (hits) are
// ranked and paged on narrow rows (page: seq, rank, username key, and the
// total from count(*) OVER ()); only the page's users are then read in
// full. Every access is by primary key or a key range.
//
// The order is the relevance rule of the package doc: more words equal to
// a whole token first, then usernames that start with the first typed
// word, then username.
var searchSQL, countSQL = buildSearchSQL(contract.MaxQueryWords)

func buildSearchSQL(maxWords int) (search, count []string) {
	search, count = make([]string, maxWords+1), make([]string, maxWords+1)
	for n := 1; n <= maxWords; n++ {
		var hits, from, rank strings.Builder
		hits.WriteString("WITH ")
		for i := range n {
			fmt.Fprintf(&hits, "m%d AS (SELECT user_seq, max(token = ?) AS exact FROM user_tokens WHERE token >= ? AND token < ? GROUP BY user_seq),\n", i)
			if i == 0 {
				from.WriteString("m0")
				rank.WriteString("m0.exact")
			} else {
				fmt.Fprintf(&from, " JOIN m%d USING (user_seq)", i)
				fmt.Fprintf(&rank, " + m%d.exact", i)
			}
		}
		fmt.Fprintf(&hits, "hits AS (SELECT m0.user_seq AS seq, %s AS rank FROM %s)\n", rank.String(), from.String())
		search[n] = hits.String() + `, page AS (
	SELECT hits.seq, hits.rank, k.username_key >= ? AND k.username_key < ? AS lead, k.username_key AS key,
		count(*) OVER () AS total
	FROM hits JOIN users k ON k.seq = hits.seq
	ORDER BY hits.rank DESC, lead DESC, key LIMIT ? OFFSET ?)
SELECT ` + userColumns + `, page.total FROM page JOIN users u ON u.seq = page.seq
ORDER BY page.rank DESC, page.lead DESC, page.key`
		count[n] = hits.String() + `SELECT count(*) FROM hits`
	}
	return search, count
}
