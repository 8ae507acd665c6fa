package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/valyala/fasthttp"
)

// Store answers the user-store contract from bodies built once at start:
// a request costs a few appends into fasthttp's response buffer, no
// database, no reflection (except the rare username-check body that the
// fast path does not recognise).
//
// Its data, which every answer keeps consistent with what was asked:
//   - any well-formed id (1–64 of [0-9A-Za-z-]) is a user: GET /users/{id}
//     answers a full user with that id and the username "user_" + the id's
//     first 8 characters;
//   - a user is live when the last character of its id is an even hex
//     digit (0 2 4 6 8 a c e): the live-stream look-up answers one stream
//     for each asked user that is live, none for the others;
//   - search answers min(limit, total-offset) of SearchUsers fixed users
//     (the query only has to be valid), total SearchTotal;
//   - every valid username is available, except those starting with
//     "taken".
type Store struct {
	// userParts is the user template cut at the id and short-id markers.
	userParts []templatePart
	// searchItems are the SearchUsers users encoded and joined by commas;
	// searchEnds[i] is where the (i+1)-th item ends, so a page of n items
	// is searchItems[:searchEnds[n-1]].
	searchItems []byte
	searchEnds  []int
	// payload is what GET /bench/v1/payload serves (PUT replaces it).
	payload atomic.Pointer[[]byte]
}

// Fixed sizes of the static data.
const (
	// SearchUsers is how many distinct users a search page can hold.
	SearchUsers = contract.MaxSearchLimit
	// SearchTotal is the total every search reports.
	SearchTotal = 1000
	maxIDBytes  = 64
)

// PathPayload serves a settable byte string: the harness puts the
// gateway's /me envelope there, so that nginx's proxy_cache baseline
// serves exactly the bytes the gateway's cache hit serves.
const PathPayload = "/bench/v1/payload"

var searchTail = []byte(`],"total":` + strconv.Itoa(SearchTotal) + `}`)

// Template markers, replaced per request.
const (
	markID      = "\x00ID\x00"
	markShortID = "\x00SHORT\x00"
)

type templatePart struct {
	literal []byte
	// then: the id, its short form, or nothing (the last part).
	then string
}

// NewStore builds the bodies.
func NewStore() (*Store, error) {
	s := &Store{}
	tmpl, err := json.Marshal(userOf(markID, markShortID))
	if err != nil {
		return nil, err
	}
	s.userParts = cutTemplate(tmpl)

	var items []byte
	for i := 0; i < SearchUsers; i++ {
		id := SearchUserID(i)
		b, err := json.Marshal(userOf(id, id[len(id)-8:]))
		if err != nil {
			return nil, err
		}
		if i > 0 {
			items = append(items, ',')
		}
		items = append(items, b...)
		s.searchEnds = append(s.searchEnds, len(items))
	}
	s.searchItems = items
	initial := []byte(`{"payload":"set me with PUT"}`)
	s.payload.Store(&initial)
	return s, nil
}

// SearchUserID is the id of the i-th search user (i from 0). Half of them
// are live.
func SearchUserID(i int) string {
	return fmt.Sprintf("5ea4c000-0000-4000-8000-%012d", i)
}

// userOf is the one user shape every answer uses, with a realistic size:
// all the fields the apps show, three photo sizes, a bio.
func userOf(id, short string) contract.User {
	return contract.User{
		ID:          id,
		Username:    "user_" + short,
		FirstName:   "Bench",
		LastName:    "User " + short,
		Email:       "user_" + short + "@example.com",
		Phone:       "+905551112233",
		Bio:         "Career coach and astrology enthusiast. I answer your questions in live streams.",
		Roles:       []string{"user"},
		Expertise:   []string{"career coaching", "astrology"},
		MinutePrice: contract.Money{AmountMinor: 1250, Currency: "TRY"},
		Photos: map[string]string{
			"48":  "https://cdn.example.com/u/" + id + "/48.jpg",
			"96":  "https://cdn.example.com/u/" + id + "/96.jpg",
			"256": "https://cdn.example.com/u/" + id + "/256.jpg",
		},
		Status:    "active",
		CreatedAt: "2025-03-01T09:00:00.000Z",
		UpdatedAt: "2026-05-01T12:00:00.000Z",
	}
}

// cutTemplate splits the encoded template at its markers. The markers
// survive encoding/json as \u0000 escapes.
func cutTemplate(tmpl []byte) []templatePart {
	id := []byte(`\u0000ID\u0000`)
	short := []byte(`\u0000SHORT\u0000`)
	var parts []templatePart
	for len(tmpl) > 0 {
		i, j := bytes.Index(tmpl, id), bytes.Index(tmpl, short)
		switch {
		case i < 0 && j < 0:
			parts = append(parts, templatePart{literal: tmpl})
			tmpl = nil
		case j < 0 || (i >= 0 && i < j):
			parts = append(parts, templatePart{literal: tmpl[:i], then: markID})
			tmpl = tmpl[i+len(id):]
		default:
			parts = append(parts, templatePart{literal: tmpl[:j], then: markShortID})
			tmpl = tmpl[j+len(short):]
		}
	}
	return parts
}

// Handle is the fasthttp handler of the whole contract.
func (s *Store) Handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch {
	case bytes.HasPrefix(path, []byte(contract.PathUserPrefix)) && ctx.IsGet():
		rest := path[len(contract.PathUserPrefix):]
		if string(rest) == "search" {
			s.search(ctx)
			return
		}
		s.user(ctx, rest)
	case string(path) == contract.PathUsernameCheck && ctx.IsPost():
		s.usernameCheck(ctx)
	case string(path) == contract.PathLiveStreams && ctx.IsGet():
		s.liveStreams(ctx)
	case string(path) == PathPayload && ctx.IsGet():
		ctx.SetContentType("application/json")
		ctx.Response.SetBodyRaw(*s.payload.Load())
	case string(path) == PathPayload && ctx.IsPut():
		b := bytes.Clone(ctx.PostBody())
		s.payload.Store(&b)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	case string(path) == "/healthz" && ctx.IsGet():
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
	default:
		fail(ctx, fasthttp.StatusNotFound, contract.CodeNotFound, "no such call")
	}
}

func (s *Store) user(ctx *fasthttp.RequestCtx, id []byte) {
	if !validID(id) {
		fail(ctx, fasthttp.StatusNotFound, contract.CodeNotFound, "no such user")
		return
	}
	ctx.SetContentType("application/json")
	body := ctx.Response.BodyWriter()
	for _, p := range s.userParts {
		_, _ = body.Write(p.literal)
		switch p.then {
		case markID:
			_, _ = body.Write(id)
		case markShortID:
			_, _ = body.Write(shortID(id))
		}
	}
}

func (s *Store) search(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	limit, err := strconv.Atoi(string(args.Peek("limit")))
	if err != nil || limit < 1 || limit > contract.MaxSearchLimit {
		fail(ctx, fasthttp.StatusBadRequest, contract.CodeValidationFailed, "limit must be 1 to 100")
		return
	}
	offset := 0
	if v := args.Peek("offset"); len(v) > 0 {
		if offset, err = strconv.Atoi(string(v)); err != nil || offset < 0 {
			fail(ctx, fasthttp.StatusBadRequest, contract.CodeValidationFailed, "offset must be 0 or more")
			return
		}
	}
	n := min(limit, SearchUsers, max(SearchTotal-offset, 0))
	ctx.SetContentType("application/json")
	body := ctx.Response.BodyWriter()
	_, _ = body.Write([]byte(`{"items":[`))
	if n > 0 {
		_, _ = body.Write(s.searchItems[:s.searchEnds[n-1]])
	}
	_, _ = body.Write(searchTail)
}

func (s *Store) usernameCheck(ctx *fasthttp.RequestCtx) {
	name, ok := fastUsername(ctx.PostBody())
	if !ok {
		var in contract.UsernameCheckRequest
		if err := json.Unmarshal(ctx.PostBody(), &in); err != nil || in.Username == "" || len(in.Username) > 64 {
			fail(ctx, fasthttp.StatusBadRequest, contract.CodeValidationFailed, "body must be {\"username\": \"...\"}")
			return
		}
		out, _ := json.Marshal(contract.UsernameCheckResponse{
			Username: in.Username, Available: !bytes.HasPrefix([]byte(in.Username), []byte("taken")),
		})
		ctx.SetContentType("application/json")
		ctx.SetBody(out)
		return
	}
	ctx.SetContentType("application/json")
	body := ctx.Response.BodyWriter()
	_, _ = body.Write([]byte(`{"username":"`))
	_, _ = body.Write(name)
	if bytes.HasPrefix(name, []byte("taken")) {
		_, _ = body.Write([]byte(`","available":false}`))
	} else {
		_, _ = body.Write([]byte(`","available":true}`))
	}
}

// fastUsername recognises the body the gateway sends,
// {"username":"<canonical name>"}, without decoding JSON: a canonical name
// needs no escaping, so it can be echoed as it is.
func fastUsername(body []byte) ([]byte, bool) {
	const head, tail = `{"username":"`, `"}`
	if !bytes.HasPrefix(body, []byte(head)) || !bytes.HasSuffix(body, []byte(tail)) {
		return nil, false
	}
	name := body[len(head) : len(body)-len(tail)]
	if len(name) == 0 || len(name) > 64 {
		return nil, false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			return nil, false
		}
	}
	return name, true
}

func (s *Store) liveStreams(ctx *fasthttp.RequestCtx) {
	raw := ctx.QueryArgs().Peek("userIds")
	if len(raw) == 0 {
		fail(ctx, fasthttp.StatusBadRequest, contract.CodeValidationFailed, "userIds is required")
		return
	}
	// Check every id before writing anything, so a bad list is a clean 400.
	count := 0
	for rest := raw; len(rest) > 0; {
		var id []byte
		id, rest, _ = bytes.Cut(rest, []byte{','})
		if !validID(id) {
			fail(ctx, fasthttp.StatusBadRequest, contract.CodeValidationFailed, "a user id is malformed")
			return
		}
		count++
	}
	if count > contract.MaxLiveStreamIDs {
		fail(ctx, fasthttp.StatusBadRequest, contract.CodeValidationFailed, "at most 100 user ids")
		return
	}
	ctx.SetContentType("application/json")
	body := ctx.Response.BodyWriter()
	_, _ = body.Write([]byte(`{"items":[`))
	first := true
	for rest, done := raw, raw[:0]; len(rest) > 0; {
		var id []byte
		id, rest, _ = bytes.Cut(rest, []byte{','})
		// One stream per user even when an id is asked twice (in any case).
		if !isLive(id) || containsID(done, id) {
			done = raw[:len(raw)-len(rest)]
			continue
		}
		done = raw[:len(raw)-len(rest)]
		if !first {
			_, _ = body.Write([]byte{','})
		}
		first = false
		_, _ = body.Write([]byte(`{"id":"ls-`))
		_, _ = body.Write(id)
		_, _ = body.Write([]byte(`","userId":"`))
		_, _ = body.Write(id)
		_, _ = body.Write([]byte(`","title":"Live Q&A with user_`))
		_, _ = body.Write(shortID(id))
		_, _ = body.Write([]byte(`","startedAt":"2026-05-22T15:40:00.000Z","viewerCount":42}`))
	}
	_, _ = body.Write([]byte(`]}`))
}

// containsID reports whether the comma-separated list (which may end in a
// comma) holds id, ignoring case.
func containsID(list, id []byte) bool {
	for len(list) > 0 {
		var x []byte
		x, list, _ = bytes.Cut(list, []byte{','})
		if bytes.EqualFold(x, id) {
			return true
		}
	}
	return false
}

// validID accepts ids that need no JSON escaping: UUIDs and the like.
func validID(id []byte) bool {
	if len(id) == 0 || len(id) > maxIDBytes {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// IsLive says whether the store reports a live stream for the user id.
func IsLive(id string) bool { return isLive([]byte(id)) }

func isLive(id []byte) bool {
	if len(id) == 0 {
		return false
	}
	switch id[len(id)-1] {
	case '0', '2', '4', '6', '8', 'a', 'c', 'e', 'A', 'C', 'E':
		return true
	}
	return false
}

func shortID(id []byte) []byte {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// fail answers a contract error body.
func fail(ctx *fasthttp.RequestCtx, status int, code, message string) {
	out, _ := json.Marshal(contract.Error{Code: code, Message: message})
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
}
