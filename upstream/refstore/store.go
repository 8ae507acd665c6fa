package refstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Defaults of Options.
const (
	DefaultUsers = 10000
	DefaultSeed  = 1
	// MaxUsers bounds Options.Users so a typo cannot fill a disk.
	MaxUsers = 1_000_000
)

// Options configure Open. The zero value opens a fresh seeded store in a
// temporary directory.
type Options struct {
	// Path is the SQLite file. Empty means a new file in a temporary
	// directory that Close removes.
	Path string
	// Users is how many users an empty database is seeded with, demo users
	// included (default DefaultUsers, at least 2). An existing database keeps
	// what it has.
	Users int
	// Seed drives the deterministic seed data (default DefaultSeed).
	Seed int64
	// ReadConns caps concurrent read connections (default: 2 × GOMAXPROCS,
	// at least 4). Writes always go through a single connection.
	ReadConns int
	// Now is the clock for updatedAt on writes and migration records
	// (default time.Now). Seed data never reads it.
	Now func() time.Time
}

// Errors of the Go API. The HTTP handler maps them onto contract errors.
var (
	// ErrNotFound: no user with that id.
	ErrNotFound = errors.New("refstore: not found")
	// ErrConflict: the change would break a uniqueness rule (username).
	ErrConflict = errors.New("refstore: conflict")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("refstore: store is closed")
)

// Store is the user store on one SQLite database. It is safe for concurrent
// use. Reads run on a pool of query-only connections and see a consistent
// snapshot each (WAL mode); writes are serialized on one connection.
type Store struct {
	path    string
	read    *sql.DB
	write   *sql.DB
	now     func() time.Time
	tempDir string // removed by Close when Open created it
	closed  atomic.Bool

	stmts statements
}

// Open opens (creating and migrating when needed) the database at opts.Path
// and seeds it when it holds no users.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	s := &Store{now: opts.Now}
	path := opts.Path
	if path == "" {
		dir, err := os.MkdirTemp("", "refstore-*")
		if err != nil {
			return nil, fmt.Errorf("refstore: temp dir: %w", err)
		}
		s.tempDir = dir
		path = filepath.Join(dir, "users.db")
	}
	s.path = path
	if err := s.open(ctx, path, opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (o *Options) defaults() error {
	if o.Users == 0 {
		o.Users = DefaultUsers
	}
	if o.Users < len(demoUsers) || o.Users > MaxUsers {
		return fmt.Errorf("refstore: Users must be between %d and %d, got %d", len(demoUsers), MaxUsers, o.Users)
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	if o.ReadConns == 0 {
		o.ReadConns = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if o.ReadConns < 1 {
		return fmt.Errorf("refstore: ReadConns must be positive, got %d", o.ReadConns)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if strings.ContainsAny(o.Path, "?#") {
		return fmt.Errorf("refstore: Path %q must not contain '?' or '#'", o.Path)
	}
	return nil
}

func (s *Store) open(ctx context.Context, path string, opts Options) error {
	// Pragmas are per connection, so they travel in the DSN and every pooled
	// connection gets them. busy_timeout makes a reader or a second process
	// wait for a writer instead of failing with SQLITE_BUSY.
	common := url.Values{}
	common.Add("_pragma", "busy_timeout(5000)")
	common.Add("_pragma", "foreign_keys(1)")
	common.Add("_pragma", "synchronous(NORMAL)")

	w := cloneValues(common)
	// Seeding writes the whole database in one transaction: a cache that
	// holds it and in-memory statement journals keep that off the disk
	// until commit.
	w.Add("_pragma", "cache_size(-65536)")
	w.Add("_pragma", "temp_store(MEMORY)")
	w.Set("_txlock", "immediate") // take the write lock at BEGIN, never upgrade mid-transaction
	write, err := sql.Open("sqlite", path+"?"+w.Encode())
	if err != nil {
		return fmt.Errorf("refstore: open %s: %w", path, err)
	}
	s.write = write
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)

	if err := enableWAL(ctx, write); err != nil {
		return fmt.Errorf("refstore: %s: %w", path, err)
	}
	if err := migrate(ctx, write, s.now); err != nil {
		return fmt.Errorf("refstore: %s: %w", path, err)
	}
	if err := seedIfEmpty(ctx, write, opts.Users, opts.Seed); err != nil {
		return fmt.Errorf("refstore: seed %s: %w", path, err)
	}

	r := cloneValues(common)
	r.Add("_pragma", "query_only(1)")
	read, err := sql.Open("sqlite", path+"?"+r.Encode())
	if err != nil {
		return fmt.Errorf("refstore: open %s: %w", path, err)
	}
	s.read = read
	read.SetMaxOpenConns(opts.ReadConns)
	read.SetMaxIdleConns(opts.ReadConns)
	if err := s.stmts.prepare(ctx, read); err != nil {
		return fmt.Errorf("refstore: prepare: %w", err)
	}
	return nil
}

// enableWAL switches the file to write-ahead logging, which lets readers
// run while a write commits. The switch needs an exclusive lock and SQLite
// does not wait for one (busy_timeout does not apply), so when another
// process is opening the same new file it is retried here.
func enableWAL(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var mode string
		err := db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
		if err == nil && strings.EqualFold(mode, "wal") {
			return nil
		}
		if err == nil {
			return fmt.Errorf("journal_mode is %q, want wal", mode)
		}
		if !unavailable(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("enable WAL: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database and removes the temporary directory when Open
// created one. It is safe to call more than once.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	errs := []error{s.stmts.close()}
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	if s.write != nil {
		errs = append(errs, s.write.Close())
	}
	if s.tempDir != "" {
		errs = append(errs, os.RemoveAll(s.tempDir))
	}
	return errors.Join(errs...)
}

// checkOpen fails fast after Close instead of letting database/sql report
// an unexported error.
func (s *Store) checkOpen() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// timeLayout is the contract's timestamp form: UTC, milliseconds, Z.
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }
