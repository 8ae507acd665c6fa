// Package auth owns authentication at the edge: it turns the Authorization
// header of a request into a verified Identity, checking the JWT's shape,
// algorithm, signature, issuer, audience and lifetime against the identity
// provider's key set (JWKS), which it fetches and refreshes itself.
//
// The rules a token must pass, in the order they are checked:
//
//   - exactly one Authorization header, "Bearer <jwt>" (scheme in any case,
//     one or more spaces) or the bare "<jwt>", no longer than MaxTokenBytes,
//     shaped as three non-empty base64url segments; nothing else is parsed;
//   - alg in the configured allow-list; "none" and every HMAC algorithm are
//     refused whatever the configuration says;
//   - no "crit" header (we understand no extensions); a "typ" header, when
//     there is one, of an access token: "JWT" or "at+jwt" (RFC 9068), in
//     any case, with or without "application/"; any other typ
//     ("logout+jwt", "secevent+jwt", "dpop+jwt", one that is not a string)
//     names another kind of JWT the identity provider signs with the same
//     keys (RFC 8725 section 3.11), refused however well its claims fit
//     (a provider that types every JWT "JWT" leaves telling them apart to
//     aud); a "kid" header naming
//     a key of the fetched JWKS (tokens without kid are refused: with key
//     rotation, trying every key would multiply the signature work an
//     attacker can cause); "jku", "jwk", "x5u" and "x5c" headers are never
//     read: keys come only from the configured JWKS URLs;
//   - claims before the key is even looked up: iss equal to the issuer, aud
//     containing one of the audiences, exp present and not past, nbf and iat
//     not in the future (all with the configured leeway), none of the
//     three past the year 9999, sub present, printable and at most 128
//     bytes, without U+FFFD (what JSON decoding makes of bytes that are not
//     UTF-8: two subjects would read as one);
//   - the key's type matching the alg (RSA for RS/PS, the alg's curve for
//     ES, Ed25519 for EdDSA) and the JWK's own "alg" when it declares one,
//     then the signature.
//
// Keys are fetched in the background and never block New; a fetch that
// fails in any way (unreachable, non-200, HTML, not a JWKS, no usable key,
// too large, too slow) is an error that keeps the keys already loaded.
// That is why the package fetches the key set itself and uses keyfunc and
// jwkset only to parse it and select keys: keyfunc's own fetcher blocks
// its constructor on the first fetch and lets an empty key set replace a
// good one.
// Successful verifications are cached by the SHA-256 of the token.
package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/bffgate/edge/config"
)

// ErrUnauthenticated is returned for every problem with the token itself:
// missing, malformed, refused algorithm, bad signature, unknown key, claims.
// The wrapped message says which, without quoting the token.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrKeysUnavailable is returned while no key set has been loaded yet; the
// gateway answers 503 rather than 401, because the token may well be good.
var ErrKeysUnavailable = errors.New("identity provider keys not loaded")

// Identity is a verified caller. It is built once per token and shared by
// every request that presents the same token (through the cache), so it
// is read-only: never modify what Roles or Scopes return.
//
// It is kept small (48 bytes) because the token cache holds one per token:
// the role and scope lists are shared between identities with equal lists,
// and exp is held in seconds (JWT's own precision).
type Identity struct {
	Subject string
	grants  *grants // nil: no roles and no scopes
	exp     int64   // Unix seconds
	// key is the key that verified the token (its kid is KeyID): the token
	// cache drops the identity when that key is retired.
	key *verifyKey
}

// grants are the role and scope lists of identities, shared (see
// Verifier.grantsFor).
type grants struct {
	roles, scopes []string
}

// Roles are the verified roles, in the token's order.
func (id *Identity) Roles() []string {
	if id == nil || id.grants == nil {
		return nil
	}
	return id.grants.roles
}

// Scopes are the verified scopes, in the token's order.
func (id *Identity) Scopes() []string {
	if id == nil || id.grants == nil {
		return nil
	}
	return id.grants.scopes
}

// ExpiresAt is the token's exp.
func (id *Identity) ExpiresAt() time.Time { return time.Unix(id.exp, 0) }

// KeyID is the kid of the key that verified the token.
func (id *Identity) KeyID() string { return id.key.kid }

// HasRole reports whether the identity holds role.
func (id *Identity) HasRole(role string) bool {
	return slices.Contains(id.Roles(), role)
}

// HasScope reports whether the identity holds scope.
func (id *Identity) HasScope(scope string) bool {
	return slices.Contains(id.Scopes(), scope)
}

// Observer receives events for metrics. Its methods are called on the
// request path and from the refresh goroutine, so they must be cheap and
// safe for concurrent use.
type Observer interface {
	// JWKSFetch reports every fetch attempt of one JWKS URL (periodic,
	// unknown-kid or retry): err is nil on success, keys the number of usable
	// keys the response carried.
	JWKSFetch(err error, keys int)
	// TokenCache reports each look-up of the verified-token cache.
	TokenCache(hit bool)
}

type nopObserver struct{}

func (nopObserver) JWKSFetch(error, int) {}
func (nopObserver) TokenCache(bool)      {}

// Defaults for settings left at zero in config.Auth (the same values as
// config.Default, so a hand-built config behaves like a loaded one). The
// unknown-kid wait has none: zero is a setting of its own there ("do not
// wait", as documented for auth.jwks.unknownKIDWait).
const (
	defaultRefreshInterval    = 10 * time.Minute
	defaultFetchTimeout       = 3 * time.Second
	defaultUnknownKIDInterval = 30 * time.Second
	defaultRetryInterval      = 2 * time.Second
	defaultJWKSMaxBytes       = 256 << 10
	defaultMaxTokenBytes      = 8 << 10
	defaultRolesClaim         = "roles"
	defaultScopesClaim        = "scope"
	defaultCacheEntries       = 100000
	defaultCacheMaxTTL        = 5 * time.Minute
)

// settings is config.Auth with defaults applied.
type settings struct {
	urls               []string
	issuer             string
	audiences          []string
	algorithms         []string
	leeway             time.Duration
	maxTokenBytes      int
	rolesClaim         string
	scopesClaim        string
	refreshInterval    time.Duration
	fetchTimeout       time.Duration
	unknownKIDInterval time.Duration
	unknownKIDWait     time.Duration
	retryInterval      time.Duration
	jwksMaxBytes       int64
	cacheEnabled       bool
	cacheEntries       int
	cacheMaxTTL        time.Duration
}

// Verifier authenticates requests. It is safe for concurrent use.
type Verifier struct {
	cfg       settings
	log       *slog.Logger
	obs       Observer
	parser    *jwt.Parser
	validator *jwt.Validator
	cache     *tokenCache // nil when disabled
	fetcher   *fetcher

	keys        atomic.Pointer[keySet] // nil until the first good fetch; never nil again
	lastSuccess atomic.Int64           // unix nanoseconds of the last good fetch
	lastErr     atomic.Pointer[string] // the latest fetch error, for Ready's reason

	// Unknown-kid refreshes: at most one per interval, waited for by every
	// request that misses while it runs.
	mu         sync.Mutex
	nextRound  chan struct{} // closed when the next fetch round ends
	kidRound   chan struct{} // the round an unknown kid asked for, until it ends
	kidLimiter *rate.Limiter
	kick       chan struct{}
	// retiredKIDs holds the kids of keys a fetch removed from the set
	// (at most maxRetiredKIDs): the provider withdrew them, so a token
	// naming one does not spend the unknown-kid budget, which a token of
	// a key just published may need. A kid published again leaves it.
	retiredKIDs map[string]struct{}

	health []urlHealth // per JWKS URL; each entry touched only by that URL's fetch
	// goodAt is per JWKS URL its last good fetch, or when the Verifier was
	// made if it has had none; touched only by the refresh loop's apply.
	goodAt []time.Time

	keyLookups atomic.Int64 // how many tokens reached the key look-up (tests)

	// Shared role and scope lists (see grantsFor).
	internMu sync.RWMutex
	interned map[string]*grants

	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// New checks cfg, starts fetching the key set in the background and returns
// at once: it never waits for the identity provider. Until the first fetch
// succeeds, Authenticate returns ErrKeysUnavailable and Ready reports false;
// fetching is retried every RetryInterval until then. A nil logger discards
// logs; a nil observer is a no-op.
func New(cfg config.Auth, logger *slog.Logger, obs Observer) (*Verifier, error) {
	s, err := settle(cfg)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = nopObserver{}
	}
	parserOpts := []jwt.ParserOption{
		jwt.WithValidMethods(s.algorithms),
		jwt.WithIssuer(s.issuer),
		jwt.WithAudience(s.audiences...),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(s.leeway),
		jwt.WithStrictDecoding(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	v := &Verifier{
		cfg:        s,
		log:        logger.With("component", "auth"),
		obs:        obs,
		parser:     jwt.NewParser(parserOpts...),
		validator:  jwt.NewValidator(parserOpts...),
		fetcher:    newFetcher(s),
		nextRound:  make(chan struct{}),
		kidLimiter: rate.NewLimiter(rate.Every(s.unknownKIDInterval), 1),
		kick:       make(chan struct{}, 1),
		ctx:        ctx,
		cancel:     cancel,
		done:       make(chan struct{}),
		health:     make([]urlHealth, len(s.urls)),
		goodAt:     make([]time.Time, len(s.urls)),
	}
	for i := range v.goodAt {
		v.goodAt[i] = time.Now()
	}
	if s.cacheEnabled {
		v.cache = newTokenCache(s.cacheEntries, s.cacheMaxTTL)
	}
	go v.refreshLoop()
	return v, nil
}

// settle validates cfg and fills in defaults.
func settle(cfg config.Auth) (settings, error) {
	var problems []error
	s := settings{
		issuer:             cfg.Issuer,
		audiences:          slices.Clone(cfg.Audiences),
		leeway:             max(cfg.Leeway, 0),
		maxTokenBytes:      int(cfg.MaxTokenBytes),
		rolesClaim:         cfg.RolesClaim,
		scopesClaim:        cfg.ScopesClaim,
		refreshInterval:    cfg.JWKS.RefreshInterval,
		fetchTimeout:       cfg.JWKS.FetchTimeout,
		unknownKIDInterval: cfg.JWKS.UnknownKIDInterval,
		unknownKIDWait:     max(cfg.JWKS.UnknownKIDWait, 0),
		retryInterval:      cfg.JWKS.RetryInterval,
		jwksMaxBytes:       int64(cfg.JWKS.MaxBytes),
		cacheEnabled:       cfg.TokenCache.Enabled,
		cacheEntries:       cfg.TokenCache.MaxEntries,
		cacheMaxTTL:        cfg.TokenCache.MaxTTL,
	}
	if len(cfg.JWKSURLs) == 0 {
		problems = append(problems, errors.New("auth: at least one JWKS URL is required"))
	}
	for _, raw := range cfg.JWKSURLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, fmt.Errorf("auth: JWKS URL %q must be an absolute http or https URL", raw))
			continue
		}
		s.urls = append(s.urls, raw)
	}
	if s.issuer == "" {
		problems = append(problems, errors.New("auth: an issuer is required"))
	}
	s.audiences = slices.DeleteFunc(s.audiences, func(a string) bool { return a == "" })
	if len(s.audiences) == 0 {
		problems = append(problems, errors.New("auth: at least one audience is required"))
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = []string{"RS256", "ES256"}
	}
	for _, alg := range algs {
		if !signingAlgorithms[alg] {
			problems = append(problems, fmt.Errorf("auth: algorithm %q is not accepted (asymmetric only: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA)", alg))
			continue
		}
		if !slices.Contains(s.algorithms, alg) {
			s.algorithms = append(s.algorithms, alg)
		}
	}
	if len(problems) > 0 {
		return settings{}, errors.Join(problems...)
	}

	if s.maxTokenBytes <= 0 {
		s.maxTokenBytes = defaultMaxTokenBytes
	}
	if s.rolesClaim == "" {
		s.rolesClaim = defaultRolesClaim
	}
	if s.scopesClaim == "" {
		s.scopesClaim = defaultScopesClaim
	}
	orDefault(&s.refreshInterval, defaultRefreshInterval)
	orDefault(&s.fetchTimeout, defaultFetchTimeout)
	orDefault(&s.unknownKIDInterval, defaultUnknownKIDInterval)
	orDefault(&s.retryInterval, defaultRetryInterval)
	if s.jwksMaxBytes <= 0 {
		s.jwksMaxBytes = defaultJWKSMaxBytes
	}
	if s.cacheEntries <= 0 {
		s.cacheEntries = defaultCacheEntries
	}
	orDefault(&s.cacheMaxTTL, defaultCacheMaxTTL)
	return s, nil
}

func orDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Authenticate verifies the request's Authorization header values (every
// value the request carried, as fasthttp's PeekAll returns them). The bytes
// are only read during the call. Errors wrap ErrUnauthenticated or are
// ErrKeysUnavailable. The only wait is for an unknown-kid key refresh, which
// never outlasts UnknownKIDWait nor ctx.
func (v *Verifier) Authenticate(ctx context.Context, authorization [][]byte) (*Identity, error) {
	return v.AuthenticateOn(ctx, authorization, nil, time.Now())
}

// AuthenticateOn is Authenticate for a request that arrived at now on a
// client connection with its Memo (nil: none). A remembered or cached
// verification is judged alive or not at now (the request's arrival, a
// few microseconds back).
func (v *Verifier) AuthenticateOn(ctx context.Context, authorization [][]byte, memo *Memo, now time.Time) (*Identity, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	token, err := v.bearerToken(authorization)
	if err != nil {
		return nil, err
	}
	// A memo is only ever filled from the token cache's paths below: with
	// the cache off, every token is verified, as configured.
	if id := memo.recall(token, now.UnixNano()); id != nil {
		v.obs.TokenCache(true)
		return id, nil
	}
	if err := tokenShape(token); err != nil {
		return nil, err
	}
	var sum [sha256.Size]byte
	if v.cache != nil {
		sum = sha256.Sum256(token)
		if id, expires := v.cache.get(&sum, now.UnixNano()); id != nil {
			v.obs.TokenCache(true)
			memo.remember(token, id, expires)
			return id, nil
		}
		v.obs.TokenCache(false)
	}
	if !compactJWS(token) {
		return nil, errShape
	}
	if v.keys.Load() == nil {
		return nil, ErrKeysUnavailable
	}
	id, err := v.verify(ctx, string(token))
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		if expires, ok := v.cache.put(&sum, id, now); ok {
			memo.remember(token, id, expires)
		}
	}
	return id, nil
}

// Memo remembers the token last verified on one client connection, with
// its identity and the end of its token-cache entry. A request on the same
// connection presenting the same bytes (apps keep a connection and a token
// for many requests) gets the identity after a byte comparison instead of
// hashing the token for the token cache; the entry's end and its key's
// retirement are checked as on a token-cache hit, and nothing is
// remembered when the token cache is off or would not admit the token.
// A Memo belongs to one connection, whose requests use it one at a time;
// it holds one token of at most memoMaxTokenBytes (longer tokens are not
// remembered), freed with the connection. The zero Memo is empty.
type Memo struct {
	token   []byte
	id      *Identity
	expires int64 // Unix nanoseconds
}

// memoMaxTokenBytes bounds what a connection keeps: typical access tokens
// are 0.5-1.5 KB.
const memoMaxTokenBytes = 2048

// Remembers reports whether the memo holds a verified token.
func (m *Memo) Remembers() bool { return m != nil && m.id != nil }

func (m *Memo) recall(token []byte, now int64) *Identity {
	if m == nil || m.id == nil || !bytes.Equal(m.token, token) {
		return nil
	}
	if now < m.expires && !m.id.key.retired.Load() {
		return m.id
	}
	m.id = nil
	return nil
}

func (m *Memo) remember(token []byte, id *Identity, expires int64) {
	if m == nil {
		return
	}
	if len(token) > memoMaxTokenBytes {
		m.id = nil
		return
	}
	m.token = append(m.token[:0], token...)
	m.id, m.expires = id, expires
}

// Ready reports whether a key set is loaded, and why not when it is not.
func (v *Verifier) Ready() (ok bool, reason string) {
	if v.keys.Load() != nil {
		return true, ""
	}
	if v.ctx.Err() != nil {
		return false, "verifier closed before any key set loaded"
	}
	if last := v.lastErr.Load(); last != nil {
		return false, "no identity provider keys loaded yet: " + *last
	}
	return false, "no identity provider keys loaded yet: first fetch in progress"
}

// KeyCount is the number of keys tokens are verified with now: the union
// of every JWKS URL's last good set (0 before any loaded).
func (v *Verifier) KeyCount() int {
	if ks := v.keys.Load(); ks != nil {
		return len(ks.byKID)
	}
	return 0
}

// TokenCacheSize is the number of verifications the token cache holds
// (expired ones too, until a hit or an eviction removes them) and its
// bound; 0, 0 when the cache is off.
func (v *Verifier) TokenCacheSize() (entries, maxEntries int) {
	if v.cache == nil {
		return 0, 0
	}
	return int(v.cache.size.Load()), int(v.cache.limit)
}

// KeysAge is the age of the stalest key source: the time since the URL
// whose last good fetch is the oldest fetched well (0 until a fetch
// succeeds). With several JWKS URLs, one that keeps failing (or never
// fetched) ages it while the others succeed: its keys may be out of date,
// and an alert on this age must see that.
func (v *Verifier) KeysAge() time.Duration {
	last := v.lastSuccess.Load()
	if last == 0 {
		return 0
	}
	return time.Since(time.Unix(0, last))
}

// Close stops background fetching and waits for it to end. Keys already
// loaded stay usable; no further refresh happens. Close is idempotent.
func (v *Verifier) Close() {
	v.closeOnce.Do(func() {
		v.cancel()
		<-v.done
		v.fetcher.close()
	})
}

// reject builds an ErrUnauthenticated with a fixed reason. The reasons never
// carry token content, so they are safe to log.
func reject(reason string) error {
	return fmt.Errorf("%w: %s", ErrUnauthenticated, reason)
}
