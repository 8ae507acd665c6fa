package gateway

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/gateway/readcache"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream"
	"github.com/bffgate/edge/upstream/contract"
)

// caseStore answers ids in upper case and live streams in lower case, as
// the contract allows (UUIDs in either case; the gateway compares them
// ignoring case when it checks the store's answers).
type caseStore struct{ UserStore }

const upperID = "8D7C6F0E-3B0A-4C1E-9A59-3F1F1C2B7D11"

func (caseStore) user() contract.User {
	return contract.User{ID: upperID, Username: "selim", MinutePrice: contract.Money{AmountMinor: 100, Currency: "TRY"}}
}

func (s caseStore) UserByID(context.Context, *upstream.Call, string) (*contract.User, error) {
	u := s.user()
	return &u, nil
}

func (s caseStore) Search(context.Context, *upstream.Call, string, int, int) (*contract.SearchResponse, error) {
	return &contract.SearchResponse{Items: []contract.User{s.user()}, Total: 1}, nil
}

func (caseStore) ActiveLiveStreams(context.Context, *upstream.Call, []string) ([]contract.LiveStream, error) {
	return []contract.LiveStream{{ID: "ls1", UserID: strings.ToLower(upperID), Title: "live now", StartedAt: "2026-11-27T00:00:00Z", ViewerCount: 3}}, nil
}

// Invalidation purges the lower-cased id (ops.go), so the tags must be
// lower case whatever case the store answers in; and a live stream belongs
// to its user whatever case either id is written in.
func TestCacheTagsAndLiveStreamsIgnoreIDCase(t *testing.T) {
	s := &Server{store: caseStore{}}
	fields := policies.NewFieldSet(policies.FieldID, policies.FieldUsername, policies.FieldLiveStream)
	want := strings.ToLower(upperID)
	for name, load := range map[string]func() (string, []string, bool){
		"profile": func() (string, []string, bool) {
			l, err := s.profileLoader(&upstream.Call{}, upperID, fields, clientctx.LanguageEN)(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return string(l.Data), l.Tags, l.Cacheable
		},
		"search": func() (string, []string, bool) {
			l, err := s.searchLoader(&upstream.Call{}, searchParams{page: 1, limit: 20}, fields, clientctx.LanguageEN)(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return string(l.Data), l.Tags, l.Cacheable
		},
	} {
		data, tags, cacheable := load()
		if !slices.Equal(tags, []string{want}) {
			t.Errorf("%s: tags %q, want %q (what a purge of the user removes)", name, tags, want)
		}
		if !cacheable || !strings.Contains(data, "live now") {
			t.Errorf("%s: the user's live stream is missing: %s", name, data)
		}
	}
}

// streamStore answers users with lower-case ids and their live streams
// with the user id in upper case (or fails the live-stream call), and
// counts those calls.
type streamStore struct {
	caseStore
	fail  bool
	calls *int
}

func (s streamStore) user() contract.User {
	u := s.caseStore.user()
	u.ID = strings.ToLower(upperID)
	return u
}

func (s streamStore) UserByID(context.Context, *upstream.Call, string) (*contract.User, error) {
	u := s.user()
	return &u, nil
}

func (s streamStore) Search(context.Context, *upstream.Call, string, int, int) (*contract.SearchResponse, error) {
	return &contract.SearchResponse{Items: []contract.User{s.user()}, Total: 1}, nil
}

func (s streamStore) ActiveLiveStreams(context.Context, *upstream.Call, []string) ([]contract.LiveStream, error) {
	*s.calls++
	if s.fail {
		return nil, &upstream.Error{Op: upstream.OpLiveStreams, Kind: upstream.KindBadGateway}
	}
	return []contract.LiveStream{{ID: "ls1", UserID: upperID, Title: "live now", StartedAt: "2026-11-27T00:00:00Z", ViewerCount: 3}}, nil
}

// The live-stream enrichment: a stream belongs to its user whichever side
// writes the id in upper case; it is asked for only when the view shows
// it; and when it fails, the answer goes out without it but is never
// cached, so the next caller asks again.
func TestLiveStreamEnrichment(t *testing.T) {
	withLive := policies.NewFieldSet(policies.FieldID, policies.FieldUsername, policies.FieldLiveStream)
	without := policies.NewFieldSet(policies.FieldID, policies.FieldUsername)
	loaders := func(s *Server, fields policies.FieldSet) map[string]readcache.LoadFunc {
		return map[string]readcache.LoadFunc{
			"profile": s.profileLoader(&upstream.Call{}, strings.ToLower(upperID), fields, clientctx.LanguageEN),
			"search":  s.searchLoader(&upstream.Call{}, searchParams{page: 1, limit: 20}, fields, clientctx.LanguageEN),
		}
	}
	for _, c := range []struct {
		name      string
		fail      bool
		fields    policies.FieldSet
		calls     int
		live      bool
		cacheable bool
	}{
		{"stream's user id in upper case", false, withLive, 1, true, true},
		{"view without live streams", true, without, 0, false, true},
		{"live streams failing", true, withLive, 1, false, false},
	} {
		calls := 0
		s := &Server{store: streamStore{fail: c.fail, calls: &calls}}
		for name, load := range loaders(s, c.fields) {
			calls = 0
			l, err := load(context.Background())
			if err != nil {
				t.Fatalf("%s, %s: %v", c.name, name, err)
			}
			if calls != c.calls || strings.Contains(string(l.Data), "live now") != c.live || l.Cacheable != c.cacheable {
				t.Errorf("%s, %s: %d live-stream calls, cacheable %v, data %s; want %d calls, live stream shown %v, cacheable %v",
					c.name, name, calls, l.Cacheable, l.Data, c.calls, c.live, c.cacheable)
			}
		}
	}
}

// goneStore knows no user: the store's 404.
type goneStore struct{ UserStore }

func (goneStore) UserByID(context.Context, *upstream.Call, string) (*contract.User, error) {
	return nil, &upstream.Error{Op: upstream.OpUserByID, Kind: upstream.KindNotFound}
}

// A profile load that finds the user gone purges every answer carrying
// them, whose tags are the lower-cased id, whatever case the id it was
// asked for is in (a token's subject may be an upper-case UUID).
func TestGoneUserIsPurgedWhateverTheIDsCase(t *testing.T) {
	cache := readcache.New(readcache.Options{}, nil)
	t.Cleanup(cache.Close)
	s := &Server{store: goneStore{}, cache: cache}
	page := func(context.Context) (readcache.Loaded, error) {
		return readcache.Loaded{Data: []byte(`[]`), Tags: []string{strings.ToLower(upperID)}, Cacheable: true}, nil
	}
	if _, _, err := cache.Get(context.Background(), "a search page", readcache.Policy{TTL: time.Hour}, page, func(error) bool { return false }); err != nil {
		t.Fatal(err)
	}
	fields := policies.NewFieldSet(policies.FieldID, policies.FieldUsername)
	if _, err := s.profileLoader(&upstream.Call{}, upperID, fields, clientctx.LanguageEN)(context.Background()); err == nil {
		t.Fatal("the load of a user the store does not know succeeded")
	}
	if n := cache.Stats().Entries; n != 0 {
		t.Fatalf("%d entries left after the user was found gone, want the page listing them purged", n)
	}
}
