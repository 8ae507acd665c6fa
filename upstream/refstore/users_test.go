package refstore

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/contract"
)

func TestCheckUsername(t *testing.T) {
	tests := []struct {
		name      string
		available bool
	}{
		{"sukru.isik", false},
		{"SUKRU.ISIK", false},
		{"Sukru.Isik", false},
		{"şükrü.ışık", false}, // uniqueness ignores diacritics too
		{"ŞÜKRÜ.IŞIK", false},
		{"admin", false},
		{"ADMIN", false},
		{AvailableUsername, true},
		{"JohnDoe123", true},
		{"sukru.isik2", true},
		{"sukru", true},
		{"ünlü_kullanıcı", true},
	}
	for _, tt := range tests {
		got, err := shared.CheckUsername(t.Context(), tt.name)
		if err != nil || got != tt.available {
			t.Errorf("CheckUsername(%q) = %v, %v; want %v", tt.name, got, err, tt.available)
		}
	}
	// Every seeded username is taken, in any case.
	for _, u := range generate(DefaultUsers, DefaultSeed).users[:200] {
		if got, err := shared.CheckUsername(t.Context(), strings.ToUpper(u.Username)); err != nil || got {
			t.Fatalf("seeded %q reported available: %v", u.Username, err)
		}
	}
}

func TestCheckUsernameRejects(t *testing.T) {
	for _, name := range []string{
		"", strings.Repeat("a", MaxUsernameBytes+1), "a b", "a\tb", "a\x00b", "a\xffb", "a\u200bb", " admin",
	} {
		_, err := shared.CheckUsername(t.Context(), name)
		var verr *ValidationError
		if !errors.As(err, &verr) || verr.Problems["username"] == "" {
			t.Errorf("CheckUsername(%q) = %v, want a username problem", name, err)
		}
	}
	if _, err := shared.CheckUsername(t.Context(), strings.Repeat("a", MaxUsernameBytes)); err != nil {
		t.Errorf("longest username: %v", err)
	}
}

func TestUserByID(t *testing.T) {
	ctx := t.Context()
	for _, id := range []string{DemoMissingID, "", "not-a-uuid", strings.ToUpper(DemoMissingID), DemoUserID + "x", "'; DROP TABLE users; --"} {
		if u, ok, err := shared.UserByID(ctx, id); ok || err != nil || u.ID != "" {
			t.Errorf("UserByID(%q) = %+v, %v, %v", id, u, ok, err)
		}
	}
	// Ids are case-insensitive hex, answered in canonical lower case.
	u, ok, err := shared.UserByID(ctx, strings.ToUpper(DemoUserID))
	if err != nil || !ok || u.ID != DemoUserID {
		t.Fatalf("upper-case id: %+v %v %v", u, ok, err)
	}
	// A user without photos has an empty, non-nil map.
	for _, g := range generate(DefaultUsers, DefaultSeed).users {
		if len(g.Photos) == 0 {
			u, ok, err := shared.UserByID(ctx, g.ID)
			if err != nil || !ok || u.Photos == nil || len(u.Photos) != 0 {
				t.Fatalf("photo-less user: %+v %v %v", u.Photos, ok, err)
			}
			break
		}
	}
}

func TestActiveLiveStreams(t *testing.T) {
	ctx := t.Context()
	d := generate(DefaultUsers, DefaultSeed)
	live := map[string]seedStream{}
	var endedOnly string
	for _, s := range d.streams {
		if s.EndedAt == "" {
			live[s.UserID] = s
		}
	}
	for _, s := range d.streams {
		if _, isLive := live[s.UserID]; s.EndedAt != "" && !isLive {
			endedOnly = s.UserID
			break
		}
	}
	if endedOnly == "" {
		t.Fatal("seed has no user with only ended streams")
	}

	// 100 ids: live ones, idle ones, an ended-only one, unknown ones,
	// upper-case and duplicated ones.
	var request, wantOrder []string
	for _, u := range d.users {
		if len(request) == 60 {
			break
		}
		request = append(request, u.ID)
		if _, ok := live[u.ID]; ok {
			wantOrder = append(wantOrder, u.ID)
		}
	}
	var liveIDs []string
	for id := range live {
		if !slices.Contains(request, id) {
			liveIDs = append(liveIDs, id)
		}
	}
	slices.Sort(liveIDs)
	for _, id := range liveIDs[:30] {
		request = append(request, strings.ToUpper(id))
		wantOrder = append(wantOrder, id)
	}
	request = append(request, endedOnly, DemoMissingID, DemoUserID, DemoUserID)
	for len(request) < contract.MaxLiveStreamIDs {
		request = append(request, fmt.Sprintf("00000000-0000-4000-8000-%012d", len(request)))
	}
	got, err := shared.ActiveLiveStreams(ctx, request)
	if err != nil {
		t.Fatalf("100 ids: %v", err)
	}
	var gotOrder []string
	for _, s := range got {
		gotOrder = append(gotOrder, s.UserID)
		want := live[s.UserID].LiveStream
		if s != want {
			t.Errorf("stream of %s = %+v, want %+v", s.UserID, s, want)
		}
	}
	if !slices.Equal(gotOrder, wantOrder) {
		t.Fatalf("streams for\n %v\nwant %v", gotOrder, wantOrder)
	}

	if _, err := shared.ActiveLiveStreams(ctx, append(request, DemoAdminID)); !isProblem(err, "userIds") {
		t.Fatalf("101 ids: %v", err)
	}
	if _, err := shared.ActiveLiveStreams(ctx, []string{DemoUserID, "nope"}); !isProblem(err, "userIds") {
		t.Fatalf("malformed id: %v", err)
	}
	empty, err := shared.ActiveLiveStreams(ctx, nil)
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("no ids: %v %v", empty, err)
	}
	idle, err := shared.ActiveLiveStreams(ctx, []string{DemoAdminID, endedOnly})
	if err != nil || idle == nil || len(idle) != 0 {
		t.Fatalf("idle users: %v %v", idle, err)
	}
}

func isProblem(err error, field string) bool {
	var verr *ValidationError
	return errors.As(err, &verr) && verr.Problems[field] != ""
}

func TestUpdateUser(t *testing.T) {
	s, _ := openSmall(t, 100, 11)
	ctx := t.Context()
	clock := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }

	before, _, _ := s.UserByID(ctx, DemoUserID)
	after, err := s.Rename(ctx, DemoUserID, "Gökçe")
	if err != nil {
		t.Fatalf("Rename: %v", err)
	}
	if after.FirstName != "Gökçe" || after.UpdatedAt != "2026-06-01T12:00:00.000Z" || after.CreatedAt != before.CreatedAt {
		t.Fatalf("after rename: %+v", after)
	}
	stored, _, _ := s.UserByID(ctx, DemoUserID)
	if stored.FirstName != "Gökçe" || stored.UpdatedAt != after.UpdatedAt {
		t.Fatalf("stored: %+v", stored)
	}
	// The search index follows the rename.
	if !searchFinds(t, s, "gokce", DemoUserID) || !searchFinds(t, s, "GÖKÇE ışık", DemoUserID) {
		t.Error("new first name not searchable")
	}
	// The clock standing still still moves updatedAt forward.
	again, err := s.Rename(ctx, DemoUserID, "Şükrü")
	if err != nil || again.UpdatedAt != "2026-06-01T12:00:00.001Z" {
		t.Fatalf("second rename: %v %v", again.UpdatedAt, err)
	}

	// Username changes keep case-insensitive uniqueness.
	if _, err := s.UpdateUser(ctx, DemoUserID, func(u *contract.User) { u.Username = "ADMIN" }); !errors.Is(err, ErrConflict) {
		t.Fatalf("taking admin's name: %v", err)
	}
	renamed, err := s.UpdateUser(ctx, DemoUserID, func(u *contract.User) { u.Username, u.LastName = "sukru.new", "Karadeniz" })
	if err != nil || renamed.Username != "sukru.new" {
		t.Fatalf("new username: %v", err)
	}
	if searchFinds(t, s, "isik", DemoUserID) || !searchFinds(t, s, "karadeniz", DemoUserID) {
		t.Error("old tokens survived an update or new ones are missing")
	}
	if avail, _ := s.CheckUsername(ctx, "sukru.isik"); !avail {
		t.Error("old username not released")
	}
	if avail, _ := s.CheckUsername(ctx, "SUKRU.NEW"); avail {
		t.Error("new username not taken")
	}

	// Invalid edits change nothing.
	snapshot, _, _ := s.UserByID(ctx, DemoUserID)
	for field, change := range map[string]func(*contract.User){
		"id":                   func(u *contract.User) { u.ID = DemoAdminID },
		"createdAt":            func(u *contract.User) { u.CreatedAt = "2020-01-01T00:00:00.000Z" },
		"username":             func(u *contract.User) { u.Username = "has space" },
		"firstName":            func(u *contract.User) { u.FirstName = "  " },
		"lastName":             func(u *contract.User) { u.LastName = strings.Repeat("x", 101) },
		"status":               func(u *contract.User) { u.Status = "deleted" },
		"minutePrice.currency": func(u *contract.User) { u.MinutePrice.Currency = "try" },
		"minutePrice.amountMinor": func(u *contract.User) {
			u.MinutePrice.AmountMinor = -1
		},
		"photos": func(u *contract.User) { u.Photos["1024"] = "https://x/1024.jpg" },
	} {
		if _, err := s.UpdateUser(ctx, DemoUserID, change); !isProblem(err, field) {
			t.Errorf("bad %s: %v", field, err)
		}
	}
	if now, _, _ := s.UserByID(ctx, DemoUserID); now.UpdatedAt != snapshot.UpdatedAt || now.Username != snapshot.Username {
		t.Error("a rejected edit changed the user")
	}

	for _, id := range []string{DemoMissingID, "nope"} {
		if _, err := s.Rename(ctx, id, "X"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Rename(%s): %v", id, err)
		}
	}
}

func searchFinds(t *testing.T, s *Store, q, id string) bool {
	t.Helper()
	got, err := s.Search(t.Context(), q, contract.MaxSearchLimit, 0)
	if err != nil {
		t.Fatalf("Search(%q): %v", q, err)
	}
	return slices.Contains(ids(got.Items), id)
}
