package refstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/bffgate/edge/upstream/contract"
)

// shared is one store seeded with the default 10,000 users, opened once per
// test binary: seeding per test would make the suite slow. Tests that write
// open their own small store.
var shared *Store

func TestMain(m *testing.M) {
	var err error
	shared, err = Open(context.Background(), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open shared store:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close shared store:", err)
		code = 1
	}
	os.Exit(code)
}

// openSmall opens a private store of n users in t's temp dir.
func openSmall(t *testing.T, n int, seed int64) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.db")
	s, err := Open(t.Context(), Options{Path: path, Users: n, Seed: seed})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// dump hashes every row of the data tables in a fixed order.
func dump(t *testing.T, db *sql.DB) string {
	t.Helper()
	h := sha256.New()
	for _, q := range []string{
		`SELECT seq, id, username, username_key, first_name, last_name, email, phone, bio, roles, expertise,
			price_minor, price_currency, coalesce(photo_48, '-'), coalesce(photo_96, '-'), coalesce(photo_256, '-'),
			status, created_at, updated_at FROM users ORDER BY seq`,
		`SELECT token, user_seq FROM user_tokens ORDER BY token, user_seq`,
		`SELECT id, user_id, title, started_at, coalesce(ended_at, '-'), viewer_count FROM live_streams ORDER BY id`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("dump: %v", err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("dump scan: %v", err)
			}
			fmt.Fprintf(h, "%q\n", vals)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("dump rows: %v", err)
		}
		rows.Close()
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestSeedIsDeterministic(t *testing.T) {
	a, _ := openSmall(t, 600, 7)
	b, _ := openSmall(t, 600, 7)
	c, _ := openSmall(t, 600, 8)
	if da, db := dump(t, a.read), dump(t, b.read); da != db {
		t.Fatalf("same seed gave different data: %s vs %s", da, db)
	}
	if da, dc := dump(t, a.read), dump(t, c.read); da == dc {
		t.Fatal("different seeds gave identical data")
	}
	// Same answers through the API, including a generated user.
	ctx := t.Context()
	ra, err := a.Search(ctx, "ayse", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.Search(ctx, "ayse", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ra, rb) || ra.Total == 0 {
		t.Fatalf("same seed, different search results:\n%+v\n%+v", ra, rb)
	}
	generated := ra.Items[len(ra.Items)-1]
	ua, _, _ := a.UserByID(ctx, generated.ID)
	ub, okb, _ := b.UserByID(ctx, generated.ID)
	if !okb || !reflect.DeepEqual(ua, ub) {
		t.Fatalf("same seed, user %s differs:\n%+v\n%+v", generated.ID, ua, ub)
	}
}

func TestGenerateIsDeterministicAtDefaultSize(t *testing.T) {
	a, b := generate(DefaultUsers, DefaultSeed), generate(DefaultUsers, DefaultSeed)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("generate is not deterministic")
	}
}

var (
	usernamePattern = regexp.MustCompile(`^[a-z0-9._]{3,30}$`)
	uuidV4Pattern   = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	phonePattern    = regexp.MustCompile(`^\+(905|447)[0-9]{9}$`)
	timePattern     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)
)

// TestSeedData checks the shape of all generated data against the brief
// the seed must satisfy.
func TestSeedData(t *testing.T) {
	d := generate(DefaultUsers, DefaultSeed)
	if len(d.users) != DefaultUsers {
		t.Fatalf("got %d users, want %d", len(d.users), DefaultUsers)
	}
	var (
		usernames = map[string]bool{}
		ids       = map[string]bool{}
		letters   = map[rune]bool{}
		admins    int
		suspended int
		noPhotos  int
		partial   int
		currency  = map[string]int{}
		english   int
	)
	for _, u := range d.users {
		if !usernamePattern.MatchString(u.Username) {
			t.Errorf("username %q breaks [a-z0-9._]{3,30}", u.Username)
		}
		key := contract.Fold(u.Username)
		if usernames[key] {
			t.Errorf("username %q repeats ignoring case", u.Username)
		}
		usernames[key] = true
		if !uuidV4Pattern.MatchString(u.ID) || ids[u.ID] {
			t.Errorf("id %q is not a unique UUIDv4", u.ID)
		}
		ids[u.ID] = true
		for _, r := range u.FirstName + u.LastName {
			letters[r] = true
		}
		if u.Email != strings.ToLower(u.Email) || !strings.Contains(u.Email, "@") || u.Email == "" {
			t.Errorf("email %q", u.Email)
		}
		if !phonePattern.MatchString(u.Phone) {
			t.Errorf("phone %q", u.Phone)
		}
		if strings.HasPrefix(u.Phone, "+44") {
			english++
		}
		if len(u.Roles) == 0 || u.Roles[0] != "user" {
			t.Errorf("roles %v", u.Roles)
		}
		if len(u.Roles) == 2 {
			admins++
		}
		if n := len(u.Expertise); n < 1 || n > 3 {
			t.Errorf("expertise %v", u.Expertise)
		}
		for _, e := range u.Expertise {
			if !contains(expertiseAreas, e) {
				t.Errorf("unknown expertise %q", e)
			}
		}
		currency[u.MinutePrice.Currency]++
		if u.MinutePrice.AmountMinor <= 0 {
			t.Errorf("price %+v", u.MinutePrice)
		}
		switch len(u.Photos) {
		case 0:
			noPhotos++
		case 1, 2:
			partial++
		}
		for size, url := range u.Photos {
			if url != "https://cdn.example.com/u/"+u.ID+"/"+size+".jpg" {
				t.Errorf("photo %s = %q", size, url)
			}
		}
		switch u.Status {
		case "active":
		case "suspended":
			suspended++
		default:
			t.Errorf("status %q", u.Status)
		}
		if !timePattern.MatchString(u.CreatedAt) || !timePattern.MatchString(u.UpdatedAt) || u.UpdatedAt < u.CreatedAt {
			t.Errorf("times %q %q", u.CreatedAt, u.UpdatedAt)
		}
	}
	for _, r := range "çğıİöşüÇÖŞÜ" { // no Turkish word starts with ğ, so no name holds Ğ
		if !letters[r] {
			t.Errorf("no name contains %q", r)
		}
	}
	if usernames[AvailableUsername] {
		t.Errorf("%s must stay available", AvailableUsername)
	}
	if admins < 20 || suspended < 100 || noPhotos < 100 || partial < 100 || english < 1000 {
		t.Errorf("too little variety: admins %d, suspended %d, no photos %d, partial photos %d, english %d",
			admins, suspended, noPhotos, partial, english)
	}
	if currency["TRY"] < 7000 || currency["USD"] < 500 || currency["EUR"] < 300 || len(currency) != 3 {
		t.Errorf("currencies %v", currency)
	}

	byID := map[string]contract.User{}
	for _, u := range d.users {
		byID[u.ID] = u
	}
	live, perUser := 0, map[string]int{}
	for _, s := range d.streams {
		u, ok := byID[s.UserID]
		if !ok || u.Status != "active" || !uuidV4Pattern.MatchString(s.ID) || s.Title == "" || s.ViewerCount < 0 ||
			!timePattern.MatchString(s.StartedAt) {
			t.Errorf("bad stream %+v", s)
		}
		if s.EndedAt == "" {
			live++
			perUser[s.UserID]++
		}
	}
	if live < 200 || live > 400 {
		t.Errorf("%d active live streams, want 200–400", live)
	}
	if len(perUser) != live {
		t.Error("a user has two active streams")
	}
	if perUser[DemoAdminID] != 0 || perUser[DemoUserID] != 1 {
		t.Error("demo users' streams are wrong")
	}
	if ids[DemoMissingID] {
		t.Error("DemoMissingID exists")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestDemoUsers(t *testing.T) {
	ctx := t.Context()
	u, ok, err := shared.UserByID(ctx, DemoUserID)
	if err != nil || !ok {
		t.Fatalf("demo user: %v %v", ok, err)
	}
	want := demoUsers[0]
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("demo user:\n got %+v\nwant %+v", u, want)
	}
	if u.Username != "sukru.isik" || u.FirstName != "Şükrü" || u.LastName != "Işık" || len(u.Photos) != 3 ||
		u.Email == "" || u.Phone == "" || !reflect.DeepEqual(u.Roles, []string{"user"}) {
		t.Fatalf("demo user fields: %+v", u)
	}
	streams, err := shared.ActiveLiveStreams(ctx, []string{DemoUserID, DemoAdminID, DemoMissingID})
	if err != nil {
		t.Fatal(err)
	}
	if len(streams) != 1 || streams[0].ID != DemoLiveStreamID || streams[0].UserID != DemoUserID {
		t.Fatalf("demo streams: %+v", streams)
	}

	a, ok, err := shared.UserByID(ctx, DemoAdminID)
	if err != nil || !ok {
		t.Fatalf("demo admin: %v %v", ok, err)
	}
	if a.Username != "admin" || a.FirstName != "Ayşe" || a.LastName != "Yönetici" ||
		!reflect.DeepEqual(a.Roles, []string{"user", "admin"}) {
		t.Fatalf("demo admin: %+v", a)
	}
	if _, has96 := a.Photos["96"]; has96 || len(a.Photos) != 2 {
		t.Fatalf("demo admin photos: %v", a.Photos)
	}
	if _, ok, err := shared.UserByID(ctx, DemoMissingID); ok || err != nil {
		t.Fatalf("DemoMissingID: %v %v", ok, err)
	}
	if avail, err := shared.CheckUsername(ctx, AvailableUsername); err != nil || !avail {
		t.Fatalf("%s available = %v, %v", AvailableUsername, avail, err)
	}
}

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	s, path := openSmall(t, 50, 3)
	before := dump(t, s.read)
	var versions int
	if err := s.read.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != len(migrations) {
		t.Fatalf("%d migrations recorded, want %d", versions, len(migrations))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with other options: nothing is re-applied or re-seeded.
	for range 2 {
		r, err := Open(t.Context(), Options{Path: path, Users: 500, Seed: 99})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		var again int
		if err := r.read.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&again); err != nil {
			t.Fatal(err)
		}
		if again != versions {
			t.Fatalf("reopen recorded %d migrations, want %d", again, versions)
		}
		if after := dump(t, r.read); after != before {
			t.Fatal("reopen changed the data")
		}
		var mode string
		if err := r.read.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("journal_mode = %q, %v", mode, err)
		}
		var fk int
		if err := r.read.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
			t.Fatalf("foreign_keys = %d, %v", fk, err)
		}
		r.Close()
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	s, path := openSmall(t, 10, 1)
	if _, err := s.write.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', '2030-01-01T00:00:00.000Z')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(t.Context(), Options{Path: path})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestOpenOptions(t *testing.T) {
	for _, opts := range []Options{
		{Users: 1},
		{Users: -5},
		{Users: MaxUsers + 1},
		{ReadConns: -1},
		{Path: filepath.Join(t.TempDir(), "a?b.db")},
	} {
		if s, err := Open(t.Context(), opts); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded", opts)
		}
	}
	if _, err := Open(t.Context(), Options{Path: filepath.Join(t.TempDir(), "missing-dir", "x", "users.db")}); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func TestCloseRemovesTempDir(t *testing.T) {
	s, err := Open(t.Context(), Options{Users: 10})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.tempDir
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temp dir still there: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Search(t.Context(), "a", 10, 0); err != ErrClosed {
		t.Fatalf("Search after Close: %v", err)
	}
}

func TestOpenSameNewFileConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	errs := make(chan error, 2)
	stores := make(chan *Store, 2)
	for range 2 {
		go func() {
			s, err := Open(t.Context(), Options{Path: path, Users: 300})
			errs <- err
			stores <- s
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
		s := <-stores
		defer s.Close()
		var n int
		if err := s.read.QueryRow(`SELECT count(*) FROM users`).Scan(&n); err != nil || n != 300 {
			t.Fatalf("users = %d, %v (seeded twice?)", n, err)
		}
	}
}

// BenchmarkOpenSeed measures opening and seeding a new store of the
// default size (run with -benchtime=3x; each iteration seeds from scratch).
func BenchmarkOpenSeed(b *testing.B) {
	for b.Loop() {
		s, err := Open(b.Context(), Options{Path: filepath.Join(b.TempDir(), "users.db")})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
