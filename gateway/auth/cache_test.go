package auth

import (
	"crypto/sha256"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/devidp"
)

func TestTokenCacheHit(t *testing.T) {
	p := startIDP(t)
	rec := &recorder{}
	v := readyVerifier(t, testConfig(p.jwksURL()), rec)
	for _, alg := range []string{devidp.RS256, devidp.ES256} {
		token := mint(t, p, devidp.MintClaims{Roles: []string{"user"}}, devidp.WithAlgorithm(alg))
		hits, lookups := rec.cacheHit.Load(), v.keyLookups.Load()
		first := mustAuthenticate(t, v, token)
		second, err := v.Authenticate(t.Context(), header(token)) // the other header form, same token
		if err != nil {
			t.Fatal(err)
		}
		if second != first {
			t.Errorf("%s: the hit returned another identity", alg)
		}
		if rec.cacheHit.Load() != hits+1 || v.keyLookups.Load() != lookups+1 {
			t.Errorf("%s: want one miss then one hit without key look-up (hits %d→%d, look-ups %d→%d)",
				alg, hits, rec.cacheHit.Load(), lookups, v.keyLookups.Load())
		}
	}
	if v.cache.len() != 2 {
		t.Errorf("cache holds %d entries, want 2", v.cache.len())
	}
}

// A cached entry never outlives its token: at exp it is gone and the token
// is refused (leeway 0 here, so exp is the end).
func TestTokenCacheEntryEndsAtExp(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.Leeway = 0
	rec := &recorder{}
	v := readyVerifier(t, cfg, rec)
	now := time.Now()
	exp := now.Truncate(time.Second).Add(2 * time.Second)
	token := mint(t, p, devidp.MintClaims{IssuedAt: now, ExpiresAt: exp})
	mustAuthenticate(t, v, token)
	mustAuthenticate(t, v, token)
	if rec.cacheHit.Load() != 1 {
		t.Fatalf("no cache hit before exp")
	}
	time.Sleep(time.Until(exp) + 20*time.Millisecond)
	mustRefuse(t, v, token, errExpired)
	if rec.cacheHit.Load() != 1 {
		t.Error("the cache answered for an expired token")
	}
}

func TestTokenCacheEntryEndsAtMaxTTL(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	// Wide enough for two verifications under the race detector on a
	// busy machine.
	cfg.TokenCache.MaxTTL = 300 * time.Millisecond
	rec := &recorder{}
	v := readyVerifier(t, cfg, rec)
	token := mint(t, p, devidp.MintClaims{})
	mustAuthenticate(t, v, token)
	mustAuthenticate(t, v, token)
	time.Sleep(400 * time.Millisecond)
	mustAuthenticate(t, v, token)
	if hits, misses := rec.cacheHit.Load(), rec.cacheMis.Load(); hits != 1 || misses != 2 {
		t.Errorf("hits %d misses %d, want 1 and 2 (the entry should have aged out)", hits, misses)
	}
}

// Removing a key from the JWKS drops, at the next refresh, every cached
// verification that key made.
func TestTokenCacheDropsTokensOfRemovedKey(t *testing.T) {
	p := startIDP(t)
	rec := &recorder{}
	v := readyVerifier(t, testConfig(p.jwksURL()), rec)
	oldKID := p.CurrentKID(devidp.RS256)
	oldToken := mint(t, p, devidp.MintClaims{})
	esToken := mint(t, p, devidp.MintClaims{}, devidp.WithAlgorithm(devidp.ES256))
	mustAuthenticate(t, v, oldToken)
	mustAuthenticate(t, v, esToken)
	mustAuthenticate(t, v, oldToken)
	if rec.cacheHit.Load() != 1 {
		t.Fatal("old token not cached")
	}

	if _, err := p.Rotate(devidp.RS256); err != nil {
		t.Fatal(err)
	}
	p.RemoveKey(oldKID)
	mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{})) // kid miss: the refresh sees oldKID gone

	hits := rec.cacheHit.Load()
	mustRefuse(t, v, oldToken, errUnknownKID)
	if rec.cacheHit.Load() != hits {
		t.Error("the cache answered for a token of a removed key")
	}
	mustAuthenticate(t, v, esToken) // the EC key stayed: its entries stay
	if rec.cacheHit.Load() != hits+1 {
		t.Error("an entry of a key that stayed was dropped")
	}
}

// A key set refresh that keeps a key keeps its entries (the key object, and
// so the entries pointing at it, survive).
func TestTokenCacheSurvivesUnchangedRefreshes(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.JWKS.RefreshInterval = 5 * time.Millisecond
	rec := &recorder{}
	v := readyVerifier(t, cfg, rec)
	token := mint(t, p, devidp.MintClaims{})
	mustAuthenticate(t, v, token)
	fetches := p.JWKSFetches()
	eventually(t, "refreshes", func() bool { return p.JWKSFetches() >= fetches+3 })
	mustAuthenticate(t, v, token)
	if rec.cacheHit.Load() != 1 {
		t.Error("an unchanged refresh dropped cached entries")
	}
}

func TestTokenCacheBoundHolds(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.TokenCache.MaxEntries = 100
	rec := &recorder{}
	v := readyVerifier(t, cfg, rec)
	tokens := make([]string, 600)
	for i := range tokens {
		tokens[i] = mint(t, p, devidp.MintClaims{Subject: "user-" + strconv.Itoa(i)}, devidp.WithAlgorithm(devidp.ES256))
		mustAuthenticate(t, v, tokens[i])
		if n := v.cache.len(); n > cfg.TokenCache.MaxEntries {
			t.Fatalf("cache grew to %d entries, bound %d", n, cfg.TokenCache.MaxEntries)
		}
	}
	if n := v.cache.len(); n != cfg.TokenCache.MaxEntries {
		t.Errorf("cache holds %d entries, want it full at %d", n, cfg.TokenCache.MaxEntries)
	}
	// FIFO: the newest token is still cached, the first one was evicted.
	hits := rec.cacheHit.Load()
	mustAuthenticate(t, v, tokens[len(tokens)-1])
	mustAuthenticate(t, v, tokens[0])
	if rec.cacheHit.Load() != hits+1 {
		t.Errorf("want a hit for the newest token and a miss for the oldest")
	}
}

func TestTokenCacheKeepsNoFailuresAndCanBeOff(t *testing.T) {
	p := startIDP(t)
	rec := &recorder{}
	v := readyVerifier(t, testConfig(p.jwksURL()), rec)
	expired := mint(t, p, devidp.MintClaims{IssuedAt: time.Now().Add(-time.Hour), ExpiresAt: time.Now().Add(-time.Minute)})
	for range 3 {
		mustRefuse(t, v, expired, errExpired)
	}
	if v.cache.len() != 0 || rec.cacheHit.Load() != 0 {
		t.Error("a failure was cached")
	}

	cfg := testConfig(p.jwksURL())
	cfg.TokenCache.Enabled = false
	off := &recorder{}
	v2 := readyVerifier(t, cfg, off)
	token := mint(t, p, devidp.MintClaims{})
	mustAuthenticate(t, v2, token)
	mustAuthenticate(t, v2, token)
	if v2.cache != nil || off.cacheHit.Load()+off.cacheMis.Load() != 0 || v2.keyLookups.Load() != 2 {
		t.Error("a disabled cache was used")
	}

	// A token accepted within the leeway after its exp is good for this
	// request only: it takes no cache slot, which could push out a live
	// entry.
	cfg = testConfig(p.jwksURL())
	cfg.Leeway = 10 * time.Second
	v3 := readyVerifier(t, cfg, nil)
	late := mint(t, p, devidp.MintClaims{IssuedAt: time.Now().Add(-time.Hour), ExpiresAt: time.Now().Add(-3 * time.Second)})
	mustAuthenticate(t, v3, late)
	if n := v3.cache.len(); n != 0 {
		t.Errorf("a token past its exp was cached (%d entries)", n)
	}
}

// Unit tests of the queue: the bound is global and exact (uneven hashing
// never evicts while there is room), FIFO eviction, stale records.
func TestTokenCacheRing(t *testing.T) {
	for _, n := range []int{1, 7, 63, 64, 100, 1001, 20000} {
		c := newTokenCache(n, time.Minute)
		now := time.Now()
		id := &Identity{exp: now.Add(time.Hour).Unix(), key: &verifyKey{kid: "k"}}
		for i := range n {
			s := sha256.Sum256([]byte(strconv.Itoa(i)))
			c.put(&s, id, now)
		}
		if c.len() != n {
			t.Errorf("MaxEntries %d: %d of %d distinct tokens kept", n, c.len(), n)
		}
		for i := n; i < 2*n; i++ {
			s := sha256.Sum256([]byte(strconv.Itoa(i)))
			c.put(&s, id, now)
		}
		if c.len() != n || int(c.size.Load()) != n {
			t.Errorf("MaxEntries %d: %d held (counted %d) after twice as many", n, c.len(), c.size.Load())
		}
	}

	c := newTokenCache(3, time.Minute)
	key := &verifyKey{kid: "k"}
	now := time.Now()
	id := &Identity{exp: now.Add(time.Hour).Unix(), key: key}
	sum := func(i int) *[sha256.Size]byte { s := sha256.Sum256([]byte{byte(i)}); return &s }
	for i := range 3 {
		c.put(sum(i), id, now)
	}
	c.put(sum(3), id, now) // evicts 0, the oldest
	if got(c.get(sum(0), now.UnixNano())) != nil || got(c.get(sum(3), now.UnixNano())) == nil || c.len() != 3 {
		t.Fatalf("FIFO eviction wrong: len %d", c.len())
	}
	c.put(sum(1), id, now) // already present: keeps its slot
	c.put(sum(4), id, now) // evicts 1
	if got(c.get(sum(1), now.UnixNano())) != nil || got(c.get(sum(2), now.UnixNano())) == nil || c.len() != 3 {
		t.Fatalf("re-put or second eviction wrong: len %d", c.len())
	}

	// Expired and retired entries are dropped on the hit that finds them.
	later := now.Add(2 * time.Hour).UnixNano()
	if got(c.get(sum(2), later)) != nil || c.len() != 2 {
		t.Error("expired entry served or kept")
	}
	key.retired.Store(true)
	if got(c.get(sum(3), now.UnixNano())) != nil || c.len() != 1 {
		t.Error("entry of a retired key served or kept")
	}

	// A token already past exp (within leeway) is not admitted.
	c.put(sum(9), &Identity{exp: now.Add(-time.Second).Unix(), key: &verifyKey{}}, now)
	if got(c.get(sum(9), now.UnixNano())) != nil {
		t.Error("an expired identity was admitted")
	}

	// An exp centuries away is bounded by MaxTTL, not overflowed.
	far := &Identity{exp: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), key: &verifyKey{}}
	c.put(sum(10), far, now)
	if got(c.get(sum(10), now.Add(59*time.Second).UnixNano())) != far || got(c.get(sum(10), now.Add(61*time.Second).UnixNano())) != nil {
		t.Error("a far-future exp was not bounded by MaxTTL")
	}
}

func TestErrorsWrapSentinels(t *testing.T) {
	for _, e := range append(ownErrors, errNoToken, errManyHeaders, errTooLong, errScheme, errShape, errSignature, errMalformed) {
		if !errors.Is(e, ErrUnauthenticated) || errors.Is(e, ErrKeysUnavailable) {
			t.Errorf("%v does not wrap ErrUnauthenticated alone", e)
		}
	}
}

// Equal role and scope lists are shared between identities, and the
// shared set is bounded.
func TestGrantsAreShared(t *testing.T) {
	v := &Verifier{}
	a := v.grantsFor([]string{"user", "admin"}, []string{"read"})
	b := v.grantsFor([]string{"user", "admin"}, []string{"read"})
	if a != b {
		t.Error("equal grants were not shared")
	}
	if c := v.grantsFor([]string{"admin", "user"}, []string{"read"}); c == a {
		t.Error("roles in another order were shared")
	}
	if c := v.grantsFor([]string{"user"}, []string{"admin", "read"}); c == a {
		t.Error("a role moved to the scopes was shared")
	}
	// A role must never be shared with a scope of the same name, nor the
	// other way round: a token scoped "admin" does not hold the admin role.
	role := v.grantsFor([]string{"admin"}, nil)
	scope := v.grantsFor(nil, []string{"admin"})
	if role == scope || len(scope.roles) != 0 || len(role.scopes) != 0 {
		t.Errorf("role admin and scope admin shared: roles %q scopes %q", scope.roles, role.scopes)
	}
	if v.grantsFor(nil, nil) != nil {
		t.Error("no roles and no scopes became non-nil")
	}
	for i := range 2 * maxInterned {
		if g := v.grantsFor([]string{strconv.Itoa(i)}, nil); len(g.roles) != 1 || g.roles[0] != strconv.Itoa(i) {
			t.Fatalf("grants %d: %+v", i, g)
		}
	}
	if len(v.interned) > maxInterned {
		t.Errorf("%d grants interned, bound %d", len(v.interned), maxInterned)
	}
}

// got is the identity of a token-cache look-up.
func got(id *Identity, _ int64) *Identity { return id }

// len counts the entries the shards' maps hold, live or not yet noticed
// dead: tests check the bound by it, not by the counter the cache keeps.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.entries)
		s.mu.RUnlock()
	}
	return n
}

// A token dropped on a hit (expired, here) and admitted again is the
// newest entry: its old queue record must not evict it before the tokens
// admitted after its first admission.
func TestTokenCacheReadmittedTokenIsNewest(t *testing.T) {
	c := newTokenCache(3, time.Minute)
	now := time.Now()
	key := &verifyKey{kid: "k"}
	short := &Identity{exp: now.Add(2 * time.Second).Unix(), key: key}
	long := &Identity{exp: now.Add(time.Hour).Unix(), key: key}
	sum := func(i int) *[sha256.Size]byte { s := sha256.Sum256([]byte{byte(i)}); return &s }
	c.put(sum(0), short, now)
	c.put(sum(1), long, now)
	c.put(sum(2), long, now)
	if got(c.get(sum(0), now.Add(3*time.Second).UnixNano())) != nil || c.len() != 2 {
		t.Fatalf("the expired entry was served or kept: len %d", c.len())
	}
	c.put(sum(0), long, now) // admitted again: the newest
	c.put(sum(3), long, now) // full: evicts 1, the oldest live admission
	if got(c.get(sum(0), now.UnixNano())) == nil {
		t.Error("the readmitted token was evicted by its old queue record")
	}
	if got(c.get(sum(1), now.UnixNano())) != nil {
		t.Error("the oldest live token was kept past the bound")
	}
	if c.len() != 3 || c.size.Load() != 3 {
		t.Errorf("len %d, counted %d; want 3", c.len(), c.size.Load())
	}
}

// A key set that only shrinks (a key withdrawn, none added) is a change:
// the withdrawn key's cached verifications are dropped, the others stay.
func TestTokenCacheDropsTokensOfAKeyWithdrawnAlone(t *testing.T) {
	p := startIDP(t)
	rec := &recorder{}
	v := readyVerifier(t, testConfig(p.jwksURL()), rec)
	esToken := mint(t, p, devidp.MintClaims{}, devidp.WithAlgorithm(devidp.ES256))
	rsToken := mint(t, p, devidp.MintClaims{})
	mustAuthenticate(t, v, esToken)
	mustAuthenticate(t, v, rsToken)

	if !p.RemoveKey(p.CurrentKID(devidp.ES256)) {
		t.Fatal("the provider has no ES256 key")
	}
	before := p.JWKSFetches()
	mustRefuse(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithKeyID(randomKID())), errUnknownKID) // its round fetches the smaller set
	if p.JWKSFetches() == before {
		t.Fatal("the unknown kid fetched nothing")
	}

	hits := rec.cacheHit.Load()
	mustRefuse(t, v, esToken, errUnknownKID)
	if rec.cacheHit.Load() != hits {
		t.Error("the cache answered for a token of the withdrawn key")
	}
	mustAuthenticate(t, v, rsToken)
	if rec.cacheHit.Load() != hits+1 {
		t.Error("an entry of the key that stayed was dropped")
	}
	if n := v.KeyCount(); n != 1 {
		t.Errorf("%d keys loaded, want 1", n)
	}
}

// An entry ends at its end exactly: a token is expired at its exp (with no
// leeway), not a nanosecond after, and so is its entry.
func TestTokenCacheEntryIsDeadAtItsEnd(t *testing.T) {
	c := newTokenCache(10, time.Minute)
	now := time.Now()
	exp := now.Truncate(time.Second).Add(10 * time.Second)
	id := &Identity{exp: exp.Unix(), key: &verifyKey{kid: "k"}}
	s := sha256.Sum256([]byte("token"))
	end, ok := c.put(&s, id, now)
	if !ok || end != exp.UnixNano() {
		t.Fatalf("put = %v, %v; want admitted until exp %v", time.Unix(0, end), ok, exp)
	}
	if got(c.get(&s, end-1)) != id {
		t.Fatal("the entry was not served a nanosecond before its end")
	}
	if got(c.get(&s, end)) != nil {
		t.Error("the entry was served at its end")
	}
}

// The bound holds under concurrent admissions too: shards that admit at
// once, each seeing one free slot, must not all take it.
func TestTokenCacheBoundHoldsUnderConcurrentAdmissions(t *testing.T) {
	const limit, workers, each = 64, 16, 8 // 16 shards, twice the bound in tokens
	now := time.Now()
	id := &Identity{exp: now.Add(time.Hour).Unix(), key: &verifyKey{kid: "k"}}
	for round := range 200 {
		c := newTokenCache(limit, time.Minute)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				<-start
				for i := range each {
					s := sha256.Sum256([]byte(strconv.Itoa(round*1000 + w*each + i)))
					c.put(&s, id, now)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := c.len(); n > limit || int(c.size.Load()) != n {
			t.Fatalf("round %d: %d entries held (counted %d), bound %d", round, n, c.size.Load(), limit)
		}
	}
}

// The count the bound is taken by stays the number of entries held while
// entries leave every way at once: evicted by admissions into a full
// cache, dropped on a hit as expired or as verified by a key retired (and
// brought back), admitted again after, and admitted twice concurrently.
func TestTokenCacheCountHoldsUnderChurn(t *testing.T) {
	const limit, workers, each, tokens = 64, 8, 2000, 150 // 16 shards, more tokens than the bound
	now := time.Now()
	for round := range 10 {
		c := newTokenCache(limit, time.Minute)
		keys := [2]*verifyKey{{kid: "a"}, {kid: "b"}}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				<-start
				for i := range each {
					s := sha256.Sum256([]byte(strconv.Itoa(round*1000 + (w*7+i)%tokens)))
					key := keys[i%2]
					switch i % 4 {
					case 0: // to live an hour
						c.put(&s, &Identity{exp: now.Add(time.Hour).Unix(), key: key}, now)
					case 1: // to die within two seconds
						c.put(&s, &Identity{exp: now.Add(2 * time.Second).Unix(), key: key}, now)
					case 2: // looked up later: the short-lived ones are dead
						c.get(&s, now.Add(3*time.Second).UnixNano())
					case 3:
						if i%97 == 3 {
							key.retired.Store(!key.retired.Load())
						}
						c.get(&s, now.UnixNano())
					}
				}
			})
		}
		close(start)
		wg.Wait()
		if n := c.len(); n > limit || int(c.size.Load()) != n {
			t.Fatalf("round %d: %d entries held, counted %d, bound %d", round, n, c.size.Load(), limit)
		}
	}
}

// The fetch that retires a key takes the tokens it verified out of the
// cache, as caching.md has it: they are refused at once, and neither
// counted in gateway_token_cache_entries nor held (with the retired key)
// until a hit on each or an eviction. A soak saw the gauge keep every
// token of the keys an identity provider's restart replaced.
func TestRetiredKeysTokensLeaveTheCache(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	v := readyVerifier(t, cfg, nil)
	oldKID := p.CurrentKID(devidp.RS256)
	var old []string
	for i := range 20 {
		token := mint(t, p, devidp.MintClaims{Subject: "old-" + strconv.Itoa(i)})
		mustAuthenticate(t, v, token)
		old = append(old, token)
	}
	for i := range 5 { // of the EC key, which stays
		mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{Subject: "ec-" + strconv.Itoa(i)}, devidp.WithAlgorithm(devidp.ES256)))
	}
	if n, _ := v.TokenCacheSize(); n != 25 {
		t.Fatalf("%d tokens cached, want 25", n)
	}

	if _, err := p.Rotate(devidp.RS256); err != nil {
		t.Fatal(err)
	}
	if !p.RemoveKey(oldKID) {
		t.Fatalf("the provider has no key %s", oldKID)
	}
	time.Sleep(cfg.JWKS.UnknownKIDInterval)
	mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{Subject: "new"})) // its kid miss fetches the set without oldKID
	if n, _ := v.TokenCacheSize(); n != 6 {
		t.Errorf("%d tokens cached after the rotation, want 6: the EC key's five and the new one", n)
	}
	for _, token := range old {
		mustRefuse(t, v, token, errUnknownKID)
	}
	if n, _ := v.TokenCacheSize(); n != 6 {
		t.Errorf("%d tokens cached after the old ones were refused, want 6", n)
	}
}

// A token verified just before its key was retired, admitted after the
// fetch's sweep, would be held as the swept ones were: it is not admitted.
func TestTokenOfARetiredKeyIsNotAdmitted(t *testing.T) {
	c := newTokenCache(64, time.Minute)
	key := &verifyKey{kid: "a"}
	key.retired.Store(true)
	s := sha256.Sum256([]byte("t"))
	now := time.Now()
	if _, ok := c.put(&s, &Identity{exp: now.Add(time.Hour).Unix(), key: key}, now); ok || c.size.Load() != 0 {
		t.Fatalf("admitted %v, %d held; want a token of a retired key left out", ok, c.size.Load())
	}
}
