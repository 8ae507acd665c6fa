package refstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bffgate/edge/upstream/contract"
)

// Fixed demo data. These always exist, whatever the seed, so the dev stack,
// docs and tests can name them.
const (
	// DemoUserID is @sukru.isik (Şükrü Işık): roles ["user"], all three
	// photo sizes, email and phone set, and an active live stream
	// (DemoLiveStreamID).
	DemoUserID       = "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11"
	DemoUsername     = "sukru.isik"
	DemoLiveStreamID = "5f4e3d2c-1b0a-4c9d-8e7f-6a5b4c3d2e1f"
	// DemoAdminID is @admin (Ayşe Yönetici): roles ["user","admin"], no
	// live stream, photo "96" missing.
	DemoAdminID       = "a0a0a0a0-0000-4000-8000-000000000001"
	DemoAdminUsername = "admin"
	// DemoMissingID is a well-formed id that never exists: the seed never
	// produces it and Open refuses to.
	DemoMissingID = "ffffffff-0000-4000-8000-00000000dead"
	// AvailableUsername is never taken in seed data (the seed document
	// shows it as available).
	AvailableUsername = "johndoe123"
)

// seedEpoch and seedNow anchor every generated timestamp, so seed data never
// depends on the clock: created between seedEpoch and seedNow, live streams
// started shortly before seedNow.
var (
	seedEpoch = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	seedNow   = time.Date(2026, 5, 22, 16, 0, 0, 0, time.UTC)
)

var demoUsers = []contract.User{
	{
		ID:          DemoUserID,
		Username:    DemoUsername,
		FirstName:   "Şükrü",
		LastName:    "Işık",
		Email:       "sukru.isik@example.com",
		Phone:       "+905551112233",
		Bio:         "Kariyer koçu ve astroloji meraklısı. Canlı yayınlarda sorularınızı yanıtlıyorum.",
		Roles:       []string{"user"},
		Expertise:   []string{"career coaching", "astrology"},
		MinutePrice: contract.Money{AmountMinor: 1250, Currency: "TRY"},
		Photos:      photoURLs(DemoUserID, "48", "96", "256"),
		Status:      "active",
		CreatedAt:   "2025-03-01T09:00:00.000Z",
		UpdatedAt:   "2026-05-01T12:00:00.000Z",
	},
	{
		ID:          DemoAdminID,
		Username:    DemoAdminUsername,
		FirstName:   "Ayşe",
		LastName:    "Yönetici",
		Email:       "admin@example.com",
		Phone:       "+905550000001",
		Bio:         "Platform yöneticisi.",
		Roles:       []string{"user", "admin"},
		Expertise:   []string{"life coaching"},
		MinutePrice: contract.Money{AmountMinor: 2000, Currency: "TRY"},
		Photos:      photoURLs(DemoAdminID, "48", "256"),
		Status:      "active",
		CreatedAt:   "2024-11-15T08:30:00.000Z",
		UpdatedAt:   "2026-04-20T10:15:00.000Z",
	},
}

var demoStreams = []seedStream{{LiveStream: contract.LiveStream{
	ID:          DemoLiveStreamID,
	UserID:      DemoUserID,
	Title:       "Kariyer sohbetleri: soru-cevap",
	StartedAt:   "2026-05-22T15:30:00.000Z",
	ViewerCount: 128,
}}}

func photoURLs(id string, sizes ...string) map[string]string {
	m := make(map[string]string, len(sizes))
	for _, size := range sizes {
		m[size] = "https://cdn.example.com/u/" + id + "/" + size + ".jpg"
	}
	return m
}

// seedStream is a live stream with its end; EndedAt is empty while live.
type seedStream struct {
	contract.LiveStream
	EndedAt string
}

type seedData struct {
	users   []contract.User
	streams []seedStream
}

// generate builds the seed data: the demo users first, then n-len(demoUsers)
// generated ones. It reads only its own PCG stream, so equal (n, seed) give
// equal data on every platform (integer arithmetic only, no floats).
func generate(n int, seed int64) seedData {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed_2025_0301_0900))
	g := generator{rng: rng, taken: map[string]bool{contract.Fold(AvailableUsername): true}, ids: map[string]bool{}}
	d := seedData{users: make([]contract.User, 0, n)}
	for _, u := range demoUsers {
		g.taken[contract.Fold(u.Username)] = true
		g.ids[u.ID] = true
		d.users = append(d.users, cloneUser(u))
	}
	for len(d.users) < n {
		d.users = append(d.users, g.user())
	}

	// Live streams: about 3% of users are live, about 1.5% more have only
	// ended streams (so "active" really filters). Only active users other
	// than the demo pair stream; the demo user's stream is fixed.
	d.streams = append(d.streams, demoStreams...)
	candidates := make([]int, 0, n)
	for i, u := range d.users[len(demoUsers):] {
		if u.Status == "active" {
			candidates = append(candidates, i+len(demoUsers))
		}
	}
	rng.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	live := min(len(candidates), n*3/100)
	ended := min(len(candidates)-live, n*3/200)
	for i, idx := range candidates[:live+ended] {
		d.streams = append(d.streams, g.stream(d.users[idx], i >= live))
	}
	return d
}

type generator struct {
	rng   *rand.Rand
	taken map[string]bool // folded usernames
	ids   map[string]bool
}

func (g *generator) uuid() string {
	for {
		var b [16]byte
		hi, lo := g.rng.Uint64(), g.rng.Uint64()
		for i := range 8 {
			b[i] = byte(hi >> (56 - 8*i))
			b[8+i] = byte(lo >> (56 - 8*i))
		}
		b[6] = b[6]&0x0f | 0x40 // version 4
		b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
		id := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
		if id != DemoMissingID && !g.ids[id] {
			g.ids[id] = true
			return id
		}
	}
}

func (g *generator) pick(list []string) string { return list[g.rng.IntN(len(list))] }

// percent reports true p times in 100.
func (g *generator) percent(p int) bool { return g.rng.IntN(100) < p }

func (g *generator) user() contract.User {
	turkish := g.percent(70)
	var first, last string
	if turkish {
		first, last = g.pick(turkishFirstNames), g.pick(turkishLastNames)
	} else {
		first, last = g.pick(englishFirstNames), g.pick(englishLastNames)
	}
	id := g.uuid()
	username := g.username(first, last)

	expertise := g.expertise()
	years := 1 + g.rng.IntN(25)
	var bio string
	switch {
	case g.percent(5):
		bio = ""
	case turkish:
		bio = fmt.Sprintf(g.pick(bioTemplatesTR), expertiseTR[expertise[0]], years)
	default:
		bio = fmt.Sprintf(g.pick(bioTemplatesEN), expertise[0], years)
	}

	roles := []string{"user"}
	if g.percent(1) {
		roles = append(roles, "admin")
	}

	var price contract.Money
	switch r := g.rng.IntN(100); {
	case r < 80:
		price = contract.Money{AmountMinor: int64(500 + 250*g.rng.IntN(79)), Currency: "TRY"} // 5.00–200.00
	case r < 92:
		price = contract.Money{AmountMinor: int64(25 + 25*g.rng.IntN(20)), Currency: "USD"} // 0.25–5.00
	default:
		price = contract.Money{AmountMinor: int64(25 + 25*g.rng.IntN(20)), Currency: "EUR"}
	}

	photos := map[string]string{}
	if !g.percent(8) {
		for _, size := range []string{"48", "96", "256"} {
			if g.percent(85) {
				photos[size] = "https://cdn.example.com/u/" + id + "/" + size + ".jpg"
			}
		}
	}

	status := "active"
	if g.percent(4) {
		status = "suspended"
	}

	span := seedNow.Sub(seedEpoch).Milliseconds()
	createdMs := g.rng.Int64N(span - 1)
	updatedMs := createdMs + g.rng.Int64N(span-createdMs)

	phone := "+447" + g.digits(9)
	if turkish {
		phone = "+905" + g.digits(9)
	}

	return contract.User{
		ID:          id,
		Username:    username,
		FirstName:   first,
		LastName:    last,
		Email:       username + "@" + g.pick([]string{"example.com", "example.org", "example.net", "mail.example.com"}),
		Phone:       phone,
		Bio:         bio,
		Roles:       roles,
		Expertise:   expertise,
		MinutePrice: price,
		Photos:      photos,
		Status:      status,
		CreatedAt:   formatTime(seedEpoch.Add(time.Duration(createdMs) * time.Millisecond)),
		UpdatedAt:   formatTime(seedEpoch.Add(time.Duration(updatedMs) * time.Millisecond)),
	}
}

func (g *generator) digits(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + g.rng.IntN(10)))
	}
	return b.String()
}

func (g *generator) expertise() []string {
	n := 1 + g.rng.IntN(3)
	perm := g.rng.Perm(len(expertiseAreas))
	out := make([]string, n)
	for i := range n {
		out[i] = expertiseAreas[perm[i]]
	}
	return out
}

// username derives a unique, lower-case ASCII username ([a-z0-9._], 3–30
// characters) from a name, the way people pick them.
func (g *generator) username(first, last string) string {
	f, l := asciiName(first), asciiName(last)
	f, l = f[:min(len(f), 14)], l[:min(len(l), 12)]
	var base string
	switch g.rng.IntN(6) {
	case 0:
		base = f + "." + l
	case 1:
		base = f + l + strconv.Itoa(10+g.rng.IntN(990))
	case 2:
		base = f[:1] + l
	case 3:
		base = f + "_" + l
	case 4:
		base = l + "." + f
	default:
		base = f + strconv.Itoa(1000+g.rng.IntN(9000))
	}
	name := base
	for attempt := 0; g.taken[name] || len(name) < 3; attempt++ {
		suffix := strconv.Itoa(g.rng.IntN(100 * (attempt + 1)))
		name = base[:min(len(base), 30-len(suffix))] + suffix
	}
	g.taken[name] = true
	return name
}

// asciiName folds a name and keeps only [a-z0-9].
func asciiName(s string) string {
	folded := contract.Fold(s)
	var b strings.Builder
	for i := 0; i < len(folded); i++ {
		if c := folded[i]; ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "user"
	}
	return b.String()
}

func (g *generator) stream(u contract.User, ended bool) seedStream {
	area := u.Expertise[0]
	var title string
	if strings.HasPrefix(u.Phone, "+90") { // generated Turkish users have Turkish numbers
		title = fmt.Sprintf(g.pick(streamTitlesTR), expertiseTR[area])
	} else {
		title = fmt.Sprintf(g.pick(streamTitlesEN), area)
	}
	started := seedNow.Add(-time.Duration(1+g.rng.IntN(240*60)) * time.Second)
	viewers := g.rng.IntN(1 + g.rng.IntN(5000)) // mostly small, a few large audiences
	s := seedStream{LiveStream: contract.LiveStream{
		ID:          g.uuid(),
		UserID:      u.ID,
		Title:       title,
		StartedAt:   formatTime(started),
		ViewerCount: viewers,
	}}
	if ended {
		s.StartedAt = formatTime(started.Add(-48 * time.Hour))
		s.EndedAt = formatTime(started.Add(-47 * time.Hour))
	}
	return s
}

func cloneUser(u contract.User) contract.User {
	u.Roles = append([]string{}, u.Roles...)
	u.Expertise = append([]string{}, u.Expertise...)
	photos := make(map[string]string, len(u.Photos))
	for k, v := range u.Photos {
		photos[k] = v
	}
	u.Photos = photos
	return u
}

// seedIfEmpty seeds the database in one transaction unless it already holds
// users. The count is read inside the write transaction, so two processes
// opening the same new file cannot both seed it.
func seedIfEmpty(ctx context.Context, db *sql.DB, n int, seed int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var count int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&count); err != nil {
		return err
	}
	if count > 0 {
		return nil
	}
	d := generate(n, seed)

	// Multi-row INSERTs: per-statement overhead, not SQLite, dominates
	// row-at-a-time seeding.
	users := newBatch(tx, `INSERT INTO users (seq, `+userColumnNames+`) VALUES `, 19, 50)
	var tokens []userToken
	for i, u := range d.users {
		args, err := userArgs(u)
		if err != nil {
			return err
		}
		seq := int64(i + 1)
		if err := users.add(ctx, append([]any{seq}, args...)...); err != nil {
			return fmt.Errorf("user %s: %w", u.Username, err)
		}
		for _, tok := range userTokens(u) {
			tokens = append(tokens, userToken{tok, seq})
		}
	}
	if err := users.flush(ctx); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	// In key order, every token insert appends to the primary-key B-tree.
	slices.SortFunc(tokens, func(a, b userToken) int {
		return cmp.Or(strings.Compare(a.token, b.token), cmp.Compare(a.seq, b.seq))
	})
	toks := newBatch(tx, `INSERT INTO user_tokens (token, user_seq) VALUES `, 2, 400)
	for _, t := range tokens {
		if err := toks.add(ctx, t.token, t.seq); err != nil {
			return fmt.Errorf("tokens: %w", err)
		}
	}
	if err := toks.flush(ctx); err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	streams := newBatch(tx, `INSERT INTO live_streams (id, user_id, title, started_at, ended_at, viewer_count) VALUES `, 6, 100)
	for _, s := range d.streams {
		var ended any
		if s.EndedAt != "" {
			ended = s.EndedAt
		}
		if err := streams.add(ctx, s.ID, s.UserID, s.Title, s.StartedAt, ended, s.ViewerCount); err != nil {
			return fmt.Errorf("live streams: %w", err)
		}
	}
	if err := streams.flush(ctx); err != nil {
		return fmt.Errorf("live streams: %w", err)
	}
	return tx.Commit()
}

type userToken struct {
	token string
	seq   int64
}

// batch collects rows and inserts them size at a time with one statement.
type batch struct {
	tx     *sql.Tx
	prefix string
	cols   int
	size   int
	full   *sql.Stmt
	args   []any
}

func newBatch(tx *sql.Tx, prefix string, cols, size int) *batch {
	return &batch{tx: tx, prefix: prefix, cols: cols, size: size, args: make([]any, 0, cols*size)}
}

func (b *batch) sql(rows int) string {
	row := "(" + placeholders(b.cols) + ")"
	return b.prefix + strings.TrimSuffix(strings.Repeat(row+",", rows), ",")
}

func (b *batch) add(ctx context.Context, vals ...any) error {
	b.args = append(b.args, vals...)
	if len(b.args) < b.cols*b.size {
		return nil
	}
	if b.full == nil {
		stmt, err := b.tx.PrepareContext(ctx, b.sql(b.size))
		if err != nil {
			return err
		}
		b.full = stmt
	}
	_, err := b.full.ExecContext(ctx, b.args...)
	b.args = b.args[:0]
	return err
}

func (b *batch) flush(ctx context.Context) error {
	if b.full != nil {
		defer b.full.Close()
	}
	if len(b.args) == 0 {
		return nil
	}
	_, err := b.tx.ExecContext(ctx, b.sql(len(b.args)/b.cols), b.args...)
	b.args = b.args[:0]
	return err
}

// userColumnNames are the columns of userArgs, in order.
const userColumnNames = `id, username, username_key, first_name, last_name, email, phone, bio,
	roles, expertise, price_minor, price_currency, photo_48, photo_96, photo_256, status, created_at, updated_at`

const insertTokenSQL = `INSERT OR IGNORE INTO user_tokens (token, user_seq) VALUES (?, ?)`

// userArgs are the values of userColumnNames, in order.
func userArgs(u contract.User) ([]any, error) {
	roles, err := json.Marshal(nonNil(u.Roles))
	if err != nil {
		return nil, err
	}
	expertise, err := json.Marshal(nonNil(u.Expertise))
	if err != nil {
		return nil, err
	}
	photo := func(size string) any {
		if p, ok := u.Photos[size]; ok {
			return p
		}
		return nil
	}
	return []any{u.ID, u.Username, contract.Fold(u.Username), u.FirstName, u.LastName, u.Email, u.Phone, u.Bio,
		string(roles), string(expertise), u.MinutePrice.AmountMinor, u.MinutePrice.Currency,
		photo("48"), photo("96"), photo("256"), u.Status, u.CreatedAt, u.UpdatedAt}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
