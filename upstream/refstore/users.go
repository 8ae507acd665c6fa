package refstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bffgate/edge/upstream/contract"
)

// userColumns are read by scanUser, in order, from users aliased u.
const userColumns = `u.id, u.username, u.first_name, u.last_name, u.email, u.phone, u.bio, u.roles, u.expertise,
	u.price_minor, u.price_currency, u.photo_48, u.photo_96, u.photo_256, u.status, u.created_at, u.updated_at`

type scanner interface{ Scan(dest ...any) error }

// scanUser reads userColumns and then extra destinations.
func scanUser(row scanner, extra ...any) (contract.User, error) {
	var (
		u                contract.User
		roles, expertise string
		p48, p96, p256   sql.NullString
	)
	dest := []any{&u.ID, &u.Username, &u.FirstName, &u.LastName, &u.Email, &u.Phone, &u.Bio, &roles, &expertise,
		&u.MinutePrice.AmountMinor, &u.MinutePrice.Currency, &p48, &p96, &p256, &u.Status, &u.CreatedAt, &u.UpdatedAt}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return contract.User{}, err
	}
	if err := json.Unmarshal([]byte(roles), &u.Roles); err != nil {
		return contract.User{}, fmt.Errorf("user %s roles: %w", u.ID, err)
	}
	if err := json.Unmarshal([]byte(expertise), &u.Expertise); err != nil {
		return contract.User{}, fmt.Errorf("user %s expertise: %w", u.ID, err)
	}
	u.Roles, u.Expertise = nonNil(u.Roles), nonNil(u.Expertise)
	u.Photos = make(map[string]string, 3)
	for size, p := range map[string]sql.NullString{"48": p48, "96": p96, "256": p256} {
		if p.Valid {
			u.Photos[size] = p.String
		}
	}
	return u, nil
}

// UserByID returns the user with that id. A malformed id finds no user,
// like an unknown one.
func (s *Store) UserByID(ctx context.Context, id string) (contract.User, bool, error) {
	if err := s.checkOpen(); err != nil {
		return contract.User{}, false, err
	}
	if !contract.IsUUID(id) {
		return contract.User{}, false, nil
	}
	u, err := scanUser(s.stmts.userByID.QueryRowContext(ctx, strings.ToLower(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return contract.User{}, false, nil
	}
	if err != nil {
		return contract.User{}, false, fmt.Errorf("refstore: user %s: %w", id, err)
	}
	return u, true, nil
}

// CheckUsername reports whether name is free. Usernames are unique ignoring
// case and diacritics (contract.Fold), so "SUKRU.ISIK" and "şükrü.ışık" are
// both taken by @sukru.isik. The store does not apply the gateway's
// username rules; it only refuses input no username can be (empty, over
// MaxUsernameBytes, invalid UTF-8, whitespace or control characters).
func (s *Store) CheckUsername(ctx context.Context, name string) (bool, error) {
	if err := s.checkOpen(); err != nil {
		return false, err
	}
	if p := usernameProblem(name); p != "" {
		return false, invalid("username", p)
	}
	var taken bool
	err := s.stmts.usernameTaken.QueryRowContext(ctx, contract.Fold(name)).Scan(&taken)
	if err != nil {
		return false, fmt.Errorf("refstore: check username: %w", err)
	}
	return !taken, nil
}

// ActiveLiveStreams returns the active live stream of each listed user that
// has one, in the order the ids were given; users without one (or unknown)
// are simply absent. At most contract.MaxLiveStreamIDs ids, each a UUID;
// duplicates are allowed and answered once.
func (s *Store) ActiveLiveStreams(ctx context.Context, userIDs []string) ([]contract.LiveStream, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if len(userIDs) > contract.MaxLiveStreamIDs {
		return nil, invalid("userIds", fmt.Sprintf("must list at most %d ids, got %d", contract.MaxLiveStreamIDs, len(userIDs)))
	}
	ids := make([]string, 0, len(userIDs))
	seen := make(map[string]bool, len(userIDs))
	for _, id := range userIDs {
		if !contract.IsUUID(id) {
			return nil, invalid("userIds", fmt.Sprintf("%q is not a UUID", truncate(id, 64)))
		}
		if id = strings.ToLower(id); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	items := []contract.LiveStream{}
	if len(ids) == 0 {
		return items, nil
	}
	list, _ := json.Marshal(ids)
	rows, err := s.stmts.liveStreams.QueryContext(ctx, string(list))
	if err != nil {
		return nil, fmt.Errorf("refstore: live streams: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ls contract.LiveStream
		if err := rows.Scan(&ls.ID, &ls.UserID, &ls.Title, &ls.StartedAt, &ls.ViewerCount); err != nil {
			return nil, fmt.Errorf("refstore: live streams: %w", err)
		}
		items = append(items, ls)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("refstore: live streams: %w", err)
	}
	return items, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// UpdateUser changes one user in a transaction: it loads the user, lets
// change edit a copy, validates the result, stores it and rebuilds its
// search tokens. updatedAt is set by the store, always later than before,
// so a cache keyed on it sees every change. It returns the stored user,
// ErrNotFound, ErrConflict (username taken) or a *ValidationError.
func (s *Store) UpdateUser(ctx context.Context, id string, change func(*contract.User)) (contract.User, error) {
	if err := s.checkOpen(); err != nil {
		return contract.User{}, err
	}
	if !contract.IsUUID(id) {
		return contract.User{}, ErrNotFound
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return contract.User{}, fmt.Errorf("refstore: update: %w", err)
	}
	defer tx.Rollback()
	var seq int64
	before, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+`, u.seq FROM users u WHERE u.id = ?`, strings.ToLower(id)), &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return contract.User{}, ErrNotFound
	}
	if err != nil {
		return contract.User{}, fmt.Errorf("refstore: update %s: %w", id, err)
	}
	after := cloneUser(before)
	change(&after)
	if verr := userProblems(before, after); verr != nil {
		return contract.User{}, verr
	}
	after.UpdatedAt = s.nextUpdatedAt(before.UpdatedAt)

	var clash bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE username_key = ? AND seq <> ?)`,
		contract.Fold(after.Username), seq).Scan(&clash); err != nil {
		return contract.User{}, fmt.Errorf("refstore: update %s: %w", id, err)
	}
	if clash {
		return contract.User{}, fmt.Errorf("%w: username %q is taken", ErrConflict, after.Username)
	}
	args, err := userArgs(after)
	if err != nil {
		return contract.User{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE users SET (`+userColumnNames+`) = (`+placeholders(len(args))+`) WHERE seq = ?`,
		append(args, seq)...); err != nil {
		return contract.User{}, fmt.Errorf("refstore: update %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM user_tokens WHERE user_seq = ?`, seq); err != nil {
		return contract.User{}, fmt.Errorf("refstore: update %s tokens: %w", id, err)
	}
	for _, tok := range userTokens(after) {
		if _, err := tx.ExecContext(ctx, insertTokenSQL, tok, seq); err != nil {
			return contract.User{}, fmt.Errorf("refstore: update %s tokens: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return contract.User{}, fmt.Errorf("refstore: update %s: %w", id, err)
	}
	return after, nil
}

// Rename sets a user's first name (a convenience for cache-invalidation
// tests).
func (s *Store) Rename(ctx context.Context, id, firstName string) (contract.User, error) {
	return s.UpdateUser(ctx, id, func(u *contract.User) { u.FirstName = firstName })
}

// nextUpdatedAt is now, or one millisecond after prev when the clock has not
// moved past it (same millisecond, or a clock set back).
func (s *Store) nextUpdatedAt(prev string) string {
	now := s.now().UTC().Truncate(time.Millisecond)
	if p, err := time.Parse(timeLayout, prev); err == nil && !now.After(p) {
		now = p.Add(time.Millisecond)
	}
	return formatTime(now)
}

// userProblems validates an edited user against the rules seed data
// follows.
func userProblems(before, after contract.User) *ValidationError {
	p := map[string]string{}
	if after.ID != before.ID {
		p["id"] = "cannot change"
	}
	if after.CreatedAt != before.CreatedAt {
		p["createdAt"] = "cannot change"
	}
	if msg := usernameProblem(after.Username); msg != "" {
		p["username"] = msg
	}
	for field, v := range map[string]string{"firstName": after.FirstName, "lastName": after.LastName} {
		switch {
		case strings.TrimSpace(v) == "":
			p[field] = "is required"
		case len(v) > maxNameBytes || !utf8.ValidString(v):
			p[field] = fmt.Sprintf("must be valid UTF-8 of at most %d bytes", maxNameBytes)
		}
	}
	if after.Status != "active" && after.Status != "suspended" {
		p["status"] = `must be "active" or "suspended"`
	}
	if after.MinutePrice.AmountMinor < 0 {
		p["minutePrice.amountMinor"] = "must not be negative"
	}
	if c := after.MinutePrice.Currency; len(c) != 3 || strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		p["minutePrice.currency"] = "must be a 3-letter upper-case ISO 4217 code"
	}
	for size := range after.Photos {
		if size != "48" && size != "96" && size != "256" {
			p["photos"] = `sizes must be "48", "96" or "256"`
		}
	}
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}
