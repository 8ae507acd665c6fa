package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/gateway/readcache"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream"
	"github.com/bffgate/edge/upstream/contract"
	"github.com/gofiber/fiber/v2"
	"golang.org/x/text/unicode/norm"
)

// Response headers of cached reads.
const (
	headerCache   = "X-Cache"
	headerPartial = "X-Partial-Response" // names what is missing, e.g. "liveStream"
	partialLive   = "liveStream"
)

var (
	dataAvailable   = []byte(`{"available":true}`)
	dataUnavailable = []byte(`{"available":false}`)
)

// checkUsername: POST /api/v1/users/check-username {"username": "..."}.
// The body and the name are checked at the edge; only a valid, canonical
// name reaches the store.
func (s *Server) checkUsername(c *fiber.Ctx, rq *request) error {
	// Of two Content-Type lines fasthttp keeps the last: "text/plain"
	// then "application/json" would be read as JSON.
	if sentContentTypeTwice(c.Context()) {
		return validationError(msgContentTypeTwice)
	}
	if !isJSON(c.Request().Header.ContentType()) {
		return validationError(msgContentTypeJSON)
	}
	// The body as it came: Fiber's c.Body() would decode every
	// Content-Encoding listed, with no bound, so 1 KiB of "gzip, gzip"
	// became 256 MiB in memory before any check.
	if !identityEncoding(c.Request().Header.PeekAll(fiber.HeaderContentEncoding)) {
		return validationError(msgContentEncoding)
	}
	body := c.Request().Body()
	raw, ok := plainUsernameBody(body)
	if !ok {
		var err error
		if raw, err = strictUsernameBody(body); err != nil {
			return err
		}
	}
	u := usernameChecks.Get().(*usernameCheck)
	defer releaseUsernameCheck(u)
	name, problems := canonicalUsername(raw, &u.name)
	if len(problems) > 0 {
		return validationError(problems...)
	}
	rq.describe(&u.call)
	available, err := s.store.CheckUsername(rq.upstreamContext(), &u.call.Call, name)
	rq.addUpstreamTime(u.call.UpstreamTime())
	if err != nil {
		return err
	}
	data := dataUnavailable
	if available {
		data = dataAvailable
	}
	setCanonical(&c.Response().Header, hdrCacheControl, "no-store")
	writeDataBytes(c.Response(), fiber.StatusOK, data)
	return nil
}

// usernameCheck is what a username check holds beside the request: room
// for the canonical name when the app sent capitals, and the Call of its
// store call. The store keeps nothing of either once the call returns
// (UserStore.CheckUsername), so they are pooled, where a Call is
// otherwise made per request (a cached load keeps its Call past the
// request, for a background refresh).
type usernameCheck struct {
	name [usernameMaxLen]byte
	call ownedCall
}

var usernameChecks = sync.Pool{New: func() any { return new(usernameCheck) }}

func releaseUsernameCheck(u *usernameCheck) {
	*u = usernameCheck{}
	usernameChecks.Put(u)
}

// plainUsernameBody is the fast path of the body every app sends,
// {"username":"…"} with printable ASCII and no escapes (whitespace allowed
// where JSON allows it): it returns the name without a JSON decoder. Any
// other body, valid or not, takes usernameBody, which decides.
//
// The name is body's own bytes, not a copy: fasthttp reuses them for the
// connection's next request once the handler returns, so nothing may keep
// it past the handler (the store call does not: UserStore.CheckUsername).
func plainUsernameBody(body []byte) (string, bool) {
	const key = `"username"`
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return "", false
	}
	i = skipSpace(body, i+1)
	if !bytes.HasPrefix(body[i:], []byte(key)) {
		return "", false
	}
	i = skipSpace(body, i+len(key))
	if i >= len(body) || body[i] != ':' {
		return "", false
	}
	i = skipSpace(body, i+1)
	if i >= len(body) || body[i] != '"' {
		return "", false
	}
	start := i + 1
	for i = start; i < len(body) && body[i] != '"'; i++ {
		if b := body[i]; b < 0x20 || b > 0x7e || b == '\\' {
			return "", false
		}
	}
	if i >= len(body) {
		return "", false
	}
	end := i
	i = skipSpace(body, i+1)
	if i >= len(body) || body[i] != '}' || skipSpace(body, i+1) != len(body) {
		return "", false
	}
	return unsafe.String(&body[start], end-start), true
}

// strictUsernameBody is the path of every body plainUsernameBody leaves:
// the keys read one by one (usernameBody), then the value decoded as a
// string. Its error is the validation error to answer.
func strictUsernameBody(body []byte) (string, error) {
	value, err := usernameBody(body)
	if err != nil {
		return "", err
	}
	if len(value) == 0 || string(value) == "null" {
		return "", validationError(msgUsernameRequired)
	}
	var raw string
	if err := json.Unmarshal(value, &raw); err != nil {
		return "", validationError(msgUsernameType)
	}
	return raw, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// usernameBody reads the body {"username": ...} and returns the raw value
// (nil when absent). The keys are read one by one because encoding/json
// alone matches them case-insensitively and lets a repeated key win:
// {"username":"sukru.isik","USERNAME":"johndoe123"} would be checked as
// "johndoe123". Only "username", spelled exactly and given once, is taken.
//
// A body that is not UTF-8 is no JSON text (RFC 8259 section 8.1), though
// encoding/json reads each byte that is none as U+FFFD: "ab\xffcd" was
// checked as a name with a character outside a-z, and such a key as an
// unknown field. The fast path takes printable ASCII only, so an app's
// body never meets this scan.
func usernameBody(body []byte) (json.RawMessage, error) {
	if !utf8.Valid(body) {
		return nil, validationError(msgMalformedJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, validationError(msgMalformedJSON)
	}
	var value json.RawMessage
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, validationError(msgMalformedJSON)
		}
		// The value is read first, so broken JSON is reported as such
		// whatever its keys.
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, validationError(msgMalformedJSON)
		}
		if key != "username" {
			return nil, validationError(msgUnknownField)
		}
		if value != nil {
			return nil, validationError(msgUsernameTwice)
		}
		value = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, validationError(msgMalformedJSON)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, validationError(msgMalformedJSON)
	}
	return value, nil
}

// identityEncoding reports whether the Content-Encoding headers say the
// body is not encoded: none, or only "identity" (any case, in lists too).
func identityEncoding(values [][]byte) bool {
	for _, v := range values {
		for len(v) > 0 {
			var coding []byte
			coding, v, _ = bytes.Cut(v, []byte{','})
			if c := bytes.TrimSpace(coding); len(c) > 0 && !bytes.EqualFold(c, []byte("identity")) {
				return false
			}
		}
	}
	return true
}

// isJSON accepts application/json with optional parameters, of which a
// charset must be UTF-8: the body is read as UTF-8, and JSON exchanged
// between systems is UTF-8 (RFC 8259 section 8.1).
func isJSON(ct []byte) bool {
	mediaType, params, _ := bytes.Cut(ct, []byte{';'})
	// A media type and its parameters' names are case-insensitive in
	// ASCII only (RFC 9110 section 8.3.1), as is the charset's value (RFC
	// 2978 section 2.3): bytes.EqualFold would take "application/jſon",
	// whose ſ (U+017F) folds to s, for JSON, where a proxy in front sees
	// none, and "charſet" for the charset parameter.
	if !clientctx.EqualFoldASCII(bytes.TrimSpace(mediaType), "application/json") {
		return false
	}
	for len(params) > 0 {
		var param []byte
		param, params, _ = bytes.Cut(params, []byte{';'})
		name, value, _ := bytes.Cut(param, []byte{'='})
		if clientctx.EqualFoldASCII(bytes.TrimSpace(name), "charset") &&
			!clientctx.EqualFoldASCII(bytes.Trim(bytes.TrimSpace(value), `"`), "utf-8") {
			return false
		}
	}
	return true
}

// searchParams are the validated parameters of a search.
type searchParams struct {
	query  string // trimmed, spaces collapsed, as the user wrote it
	folded string // folded like the store folds it: the cache key part
	page   int
	limit  int
}

// The gateway's bounds on a search's query. The contract's bounds
// (contract.MaxQueryBytes, contract.MaxQueryWords, and the deepest result,
// contract.MaxSearchOffset) are checked here too: the store answers a bare
// 400 beyond them, and here the caller can be told why. 100 characters of
// English or Turkish never reach 200 bytes; only three- and four-byte
// characters (CJK, emoji) can.
const (
	maxQueryRunes    = 100
	maxQueryRawBytes = 1024
)

func parseSearchParams(c *fiber.Ctx, p *policies.Policy) (searchParams, error) {
	args := c.Context().QueryArgs()
	var sp searchParams
	queries := append(args.PeekMulti("query"), args.PeekMulti("q")...)
	if len(queries) > 1 {
		return sp, validationError(msgQueryTwice)
	}
	if len(queries) == 1 {
		raw := queries[0]
		if len(raw) > maxQueryRawBytes {
			return sp, validationError(msgQueryTooLong)
		}
		if !utf8.Valid(raw) || bytes.ContainsFunc(raw, isControl) {
			return sp, validationError(msgQueryInvalid)
		}
		sp.query = strings.Join(strings.Fields(string(raw)), " ")
		// Composed (NFC), as a keyboard writes it: "ş" sent as s and a
		// combining cedilla is one character to count, and the search
		// folds both spellings alike.
		if !isASCII(sp.query) && !norm.NFC.IsNormalString(sp.query) {
			sp.query = norm.NFC.String(sp.query)
		}
		if utf8.RuneCountInString(sp.query) > maxQueryRunes || len(sp.query) > contract.MaxQueryBytes {
			return sp, validationError(msgQueryTooLong)
		}
		sp.folded = contract.NormalizeQuery(sp.query)
		if tooManyWords(sp.folded) {
			return sp, (&apiError{status: fiber.StatusBadRequest, msgs: []msg{msgValidationFailed}}).with(msgQueryTooManyWords, contract.MaxQueryWords)
		}
	}
	// page and limit, like query, are taken only when given once: of two
	// values, a cache or proxy in front may read another than the gateway.
	var (
		page, limit   []byte
		pages, limits int
	)
	args.VisitAll(func(k, v []byte) {
		switch string(k) {
		case "page":
			if pages++; pages == 1 {
				page = v
			}
		case "limit":
			if limits++; limits == 1 {
				limit = v
			}
		}
	})
	if pages > 1 {
		return sp, validationError(msgPageTwice)
	}
	if limits > 1 {
		return sp, validationError(msgLimitTwice)
	}
	sp.page = 1
	if v := page; pages == 1 {
		n, err := strconv.Atoi(string(v))
		if errors.Is(err, strconv.ErrRange) && n > 0 {
			// A whole number too large for an int (Atoi gives MaxInt) is
			// a page that starts far beyond the last result reachable,
			// refused as too far below, not as "not a whole number".
			err = nil
		}
		if err != nil || n < 1 {
			return sp, validationError(msgPageInvalid)
		}
		sp.page = n
	}
	sp.limit = p.DefaultPageSize()
	max := p.MaxPageSize()
	if v := limit; limits == 1 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > max {
			return sp, (&apiError{status: fiber.StatusBadRequest, msgs: []msg{msgValidationFailed}}).with(msgLimitInvalid, max)
		}
		sp.limit = n
	}
	if (sp.page-1) > contract.MaxSearchOffset/sp.limit || (sp.page-1)*sp.limit >= contract.MaxSearchOffset {
		return sp, (&apiError{status: fiber.StatusBadRequest, msgs: []msg{msgValidationFailed}}).with(msgPageTooFar, contract.MaxSearchOffset)
	}
	return sp, nil
}

// tooManyWords reports whether a folded query has more distinct words
// than the store takes. A word is what the store searches for: a
// space-separated piece with the punctuation at its edges dropped ("ali,"
// is "ali"; a lone "-" is no word).
func tooManyWords(folded string) bool {
	var seen [contract.MaxQueryWords]string
	n := 0
next:
	for w := range strings.SplitSeq(folded, " ") {
		if w = strings.TrimFunc(w, contract.SeparatesWords); w == "" {
			continue
		}
		for _, s := range seen[:n] {
			if s == w {
				continue next
			}
		}
		if n == contract.MaxQueryWords {
			return true
		}
		seen[n] = w
		n++
	}
	return false
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// searchUsers: GET /api/v2/users/search?query=&page=&limit= (q is accepted
// for query). One search call, then one batched live-stream call for the
// page; cached per normalized query, page, limit, language and the
// caller's visibility class.
func (s *Server) searchUsers(c *fiber.Ctx, rq *request) error {
	sp, err := parseSearchParams(c, rq.policy)
	if err != nil {
		return err
	}
	p := rq.policy
	fields := p.Fields(viewSearch)
	lang := rq.client.Language
	call := rq.call()
	load := s.searchLoader(call, sp, fields, lang)

	route := rq.rt.cfg.Cache.Routes.Search
	ttl := p.CacheTTL("search", route.TTL)
	if sp.folded == "" {
		// A random sample: cached briefly so a burst of empty searches
		// costs one call, yet users keep seeing fresh faces.
		ttl = min(ttl, route.EmptyQueryTTL)
	}
	key := readcache.Key("search", lang.String(), p.FieldClass(viewSearch),
		strconv.Itoa(sp.page), strconv.Itoa(sp.limit), sp.folded)
	// Clients may keep an answer no longer than the gateway does: a random
	// sample (5 s) must not sit in the app's HTTP cache for the route's
	// max-age (15 s), nor may a platform's shorter TTL be undone by it.
	// Both count from the load: a hit carries Age (clientFreshness).
	clientMaxAge := min(route.ClientMaxAge, ttl)
	return s.serveCached(c, rq, "search", key, ttl, route.StaleWhileRevalidate, route.StaleIfError,
		clientMaxAge, call, load)
}

// searchLoader returns the load of one search page. It captures only
// values, never the pooled request: it may run after the request ended (a
// background refresh).
func (s *Server) searchLoader(call *upstream.Call, sp searchParams, fields policies.FieldSet, lang clientctx.Language) readcache.LoadFunc {
	return func(ctx context.Context) (readcache.Loaded, error) {
		res, err := s.store.Search(ctx, call, sp.query, sp.limit, (sp.page-1)*sp.limit)
		if err != nil {
			return readcache.Loaded{}, err
		}
		var streams map[string]*contract.LiveStream
		partial := false
		if fields.Has(policies.FieldLiveStream) && len(res.Items) > 0 {
			ids := make([]string, len(res.Items))
			for i := range res.Items {
				ids[i] = res.Items[i].ID
			}
			streams, partial = s.liveStreams(ctx, call, ids)
		}
		tags := make([]string, 0, len(res.Items)+1)
		for i := range res.Items {
			tags = append(tags, strings.ToLower(res.Items[i].ID))
		}
		data := appendUserPage(make([]byte, 0, 512*len(res.Items)+64), res.Items, streams, fields, lang, sp.page, sp.limit, res.Total)
		return readcache.Loaded{Data: data, Tags: tags, Cacheable: !partial}, nil
	}
}

// Cache tags are user ids in lower case (the contract allows either case;
// the ops endpoints purge the lower-cased id): PurgeTag(id) removes every
// answer that carries the user (their /me, every search page listing them).

// streamOf is the live stream of the user with id, if any.
func streamOf(streams map[string]*contract.LiveStream, id string) *contract.LiveStream {
	if streams == nil {
		return nil
	}
	return streams[strings.ToLower(id)]
}

// liveStreams is the enrichment of a page or a profile: when it fails, the
// answer goes out without live streams (liveStream: null) and is marked
// partial, never an error.
func (s *Server) liveStreams(ctx context.Context, call *upstream.Call, ids []string) (map[string]*contract.LiveStream, bool) {
	items, err := s.store.ActiveLiveStreams(ctx, call, ids)
	if err != nil {
		return nil, true
	}
	// Keyed by the lower-cased user id, and looked up so (streamOf): the
	// store may write an id in another case than the user's record.
	m := make(map[string]*contract.LiveStream, len(items))
	for i := range items {
		m[strings.ToLower(items[i].UserID)] = &items[i]
	}
	return m, false
}

// me: GET /api/v1/users/me — the caller's own profile by the verified
// subject, with its live stream fetched in parallel.
func (s *Server) me(c *fiber.Ctx, rq *request) error {
	p := rq.policy
	lang := rq.client.Language
	sub := rq.identity.Subject
	route := rq.rt.cfg.Cache.Routes.Me
	rq.keyBuf = readcache.AppendKey(rq.keyBuf[:0], "me", lang.String(), p.FieldClass(viewMe), sub)
	ttl := p.CacheTTL("me", route.TTL)
	// As search's: a client keeps the profile no longer than the gateway
	// does (clientMaxAge is 0s, no-store, unless ops give one).
	clientMaxAge := min(route.ClientMaxAge, ttl)
	// Authentication has already run: an expired or revoked token never
	// reaches this cache. Peek keeps nothing of the key, so a hit looks
	// it up in the request's buffer; only a miss makes the key a string
	// of its own, for the cache to keep.
	if e, ok := s.peek(unsafe.String(unsafe.SliceData(rq.keyBuf), len(rq.keyBuf)), ttl, p, rq.start); ok {
		s.traceHit(rq)
		return s.writeEntry(c, rq, "me", e, readcache.Hit, clientMaxAge)
	}
	key := string(rq.keyBuf)
	call := rq.call()
	load := s.profileLoader(call, sub, p.Fields(viewMe), lang)
	return s.serveCached(c, rq, "me", key, ttl, route.StaleWhileRevalidate, route.StaleIfError,
		clientMaxAge, call, load)
}

// profileLoader loads one user and their live stream in parallel.
func (s *Server) profileLoader(call *upstream.Call, id string, fields policies.FieldSet, lang clientctx.Language) readcache.LoadFunc {
	return func(ctx context.Context) (readcache.Loaded, error) {
		var (
			wg      sync.WaitGroup
			streams map[string]*contract.LiveStream
			partial bool
		)
		if fields.Has(policies.FieldLiveStream) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				streams, partial = s.liveStreams(ctx, call, []string{id})
			}()
		}
		u, err := s.store.UserByID(ctx, call, id)
		wg.Wait()
		if err != nil {
			if s.cache != nil && isNotFound(err) {
				// The store no longer knows the user: every answer that
				// shows them goes (their profile in the other languages
				// and classes, the search pages listing them), not only
				// this key's, so no later failure serves one stale.
				s.cache.PurgeHeldTag(strings.ToLower(id))
			}
			return readcache.Loaded{}, err
		}
		data := appendUser(make([]byte, 0, 1024), u, streamOf(streams, u.ID), fields, lang)
		tag := strings.ToLower(u.ID)
		if tag == id {
			tag = id // the verified subject's string: no copy per cached profile
		}
		return readcache.Loaded{Data: data, Tags: []string{tag}, Cacheable: !partial}, nil
	}
}

// isNotFound reports whether err is the store's 404 for a user it does
// not know.
func isNotFound(err error) bool {
	var ue *upstream.Error
	return errors.As(err, &ue) && ue.Kind == upstream.KindNotFound
}

// adminSearchUsers: GET /api/admin/v1/users/search — the same search with
// the admin view (email, phone, status), never cached.
func (s *Server) adminSearchUsers(c *fiber.Ctx, rq *request) error {
	sp, err := parseSearchParams(c, rq.policy)
	if err != nil {
		return err
	}
	call := rq.call()
	l, err := s.searchLoader(call, sp, rq.policy.Fields(viewAdmin), rq.client.Language)(rq.upstreamContext())
	rq.addUpstreamTime(call.UpstreamTime())
	if err != nil {
		return err
	}
	return s.writeUncached(c, rq, l)
}

// adminUser: GET /api/admin/v1/users/:id — one user in the admin view,
// never cached.
func (s *Server) adminUser(c *fiber.Ctx, rq *request) error {
	id := c.Params("id")
	if !contract.IsUUID(id) {
		return validationError(msgUserIDInvalid)
	}
	// A copy: c.Params is the request's buffer, and ToLower returns an
	// id that is already lower-case as it is.
	id = strings.ToLower(strings.Clone(id))
	call := rq.call()
	l, err := s.profileLoader(call, id, rq.policy.Fields(viewAdmin), rq.client.Language)(rq.upstreamContext())
	rq.addUpstreamTime(call.UpstreamTime())
	if err != nil {
		return err
	}
	return s.writeUncached(c, rq, l)
}

func (s *Server) writeUncached(c *fiber.Ctx, rq *request, l readcache.Loaded) error {
	setCanonical(&c.Response().Header, hdrCacheControl, cacheControlNoStore)
	if !l.Cacheable {
		rq.partial = true
		c.Set(headerPartial, partialLive)
	}
	writeDataBytes(c.Response(), fiber.StatusOK, l.Data)
	return nil
}

// isASCII reports whether s is ASCII alone, which is in every
// normalization form already.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
