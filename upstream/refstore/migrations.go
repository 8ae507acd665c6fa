package refstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migration is one step of the schema. Steps are applied in version order,
// each in its own transaction together with its schema_migrations row, so a
// crash leaves the database at a whole version. Never edit a released step;
// add a new one.
type migration struct {
	version int
	name    string
	sql     string
}

var migrations = []migration{
	{1, "users and search tokens", `
CREATE TABLE users (
	seq            INTEGER PRIMARY KEY,
	id             TEXT    NOT NULL UNIQUE,
	username       TEXT    NOT NULL,
	username_key   TEXT    NOT NULL UNIQUE, -- contract.Fold(username): uniqueness ignores case and diacritics
	first_name     TEXT    NOT NULL,
	last_name      TEXT    NOT NULL,
	email          TEXT    NOT NULL,
	phone          TEXT    NOT NULL,
	bio            TEXT    NOT NULL,
	roles          TEXT    NOT NULL, -- JSON array of strings
	expertise      TEXT    NOT NULL, -- JSON array of strings
	price_minor    INTEGER NOT NULL CHECK (price_minor >= 0),
	price_currency TEXT    NOT NULL CHECK (length(price_currency) = 3),
	photo_48       TEXT, -- NULL: that size is missing
	photo_96       TEXT,
	photo_256      TEXT,
	status         TEXT    NOT NULL CHECK (status IN ('active', 'suspended')),
	created_at     TEXT    NOT NULL,
	updated_at     TEXT    NOT NULL
) STRICT;

-- One row per (folded token, user). The primary key is the search index: a
-- query word is a prefix, that is a range token >= w AND token < next(w).
CREATE TABLE user_tokens (
	token    TEXT    NOT NULL,
	user_seq INTEGER NOT NULL REFERENCES users (seq) ON DELETE CASCADE,
	PRIMARY KEY (token, user_seq)
) STRICT, WITHOUT ROWID;

-- Re-indexing one user (UpdateUser) and cascading deletes look tokens up by user.
CREATE INDEX user_tokens_by_user ON user_tokens (user_seq);
`},
	{2, "live streams", `
CREATE TABLE live_streams (
	id           TEXT    PRIMARY KEY,
	user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	title        TEXT    NOT NULL,
	started_at   TEXT    NOT NULL,
	ended_at     TEXT, -- NULL while the stream is live
	viewer_count INTEGER NOT NULL CHECK (viewer_count >= 0)
) STRICT;

-- A user has at most one active stream; the batch look-up reads this index.
CREATE UNIQUE INDEX live_streams_active_by_user ON live_streams (user_id) WHERE ended_at IS NULL;
`},
}

// migrate brings the schema up to the newest version. It is idempotent: on
// an up-to-date database it only reads schema_migrations.
func migrate(ctx context.Context, db *sql.DB, now func() time.Time) error {
	if err := createMigrationsTable(ctx, db); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	newest := migrations[len(migrations)-1].version
	for _, m := range migrations {
		applied, err := applyMigration(ctx, db, m, now)
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		if applied < 0 {
			return fmt.Errorf("database schema is at version %d, newer than this binary knows (%d)", -applied, newest)
		}
	}
	return nil
}

// createMigrationsTable runs in a write transaction (BEGIN IMMEDIATE on the
// write pool) rather than autocommit: an autocommit statement that starts
// as a reader and then needs to write fails at once with SQLITE_BUSY when
// another process is migrating the same new file, while BEGIN IMMEDIATE
// waits for busy_timeout.
func createMigrationsTable(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	) STRICT`); err != nil {
		return err
	}
	return tx.Commit()
}

// applyMigration applies m unless the database already has it. It returns
// the negated current version when the database is ahead of the binary.
func applyMigration(ctx context.Context, db *sql.DB, m migration, now func() time.Time) (int, error) {
	tx, err := db.BeginTx(ctx, nil) // the write pool begins IMMEDIATE: one migrator at a time
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, err
	}
	if current > migrations[len(migrations)-1].version {
		return -current, nil
	}
	if current >= m.version {
		return current, nil
	}
	if current != m.version-1 {
		return 0, fmt.Errorf("database is at version %d, cannot apply %d", current, m.version)
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, formatTime(now())); err != nil {
		return 0, err
	}
	return m.version, tx.Commit()
}
