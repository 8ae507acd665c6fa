package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/devidp"
)

func authenticateOn(v *Verifier, memo *Memo, token string) (*Identity, error) {
	return v.AuthenticateOn(context.Background(), bearer(token), memo, time.Now())
}

// A connection's memo answers its token again without the token cache's
// hash and look-up, and with the same identity.
func TestMemoAnswersTheSameTokenAgain(t *testing.T) {
	p := startIDP(t)
	rec := &recorder{}
	v := readyVerifier(t, testConfig(p.jwksURL()), rec)
	token := mint(t, p, devidp.MintClaims{Roles: []string{"user"}})
	var memo Memo
	first, err := authenticateOn(v, &memo, token)
	if err != nil {
		t.Fatal(err)
	}
	if memo.id != first || string(memo.token) != token {
		t.Fatal("a verified token was not remembered")
	}
	// Take the entry out of the token cache: only the memo can answer now.
	v.cache = newTokenCache(10, time.Hour)
	for i := 0; i < 3; i++ {
		id, err := authenticateOn(v, &memo, token)
		if err != nil || id != first {
			t.Fatalf("memo answer %d: %v, %v", i, id, err)
		}
	}
	if v.cache.len() != 0 || rec.cacheHit.Load() != 3 {
		t.Fatalf("token cache holds %d, hits counted %d: want the memo alone, its hits counted", v.cache.len(), rec.cacheHit.Load())
	}

	// Another token on the same connection (a proxy's connection carrying
	// several users): never the memo's identity, and it takes the memo.
	other := mint(t, p, devidp.MintClaims{Subject: "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11"})
	id, err := authenticateOn(v, &memo, other)
	if err != nil || id == first || id.Subject != "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11" {
		t.Fatalf("another token got %+v, %v", id, err)
	}
	if string(memo.token) != other {
		t.Fatal("the memo kept the first token")
	}
	// A forgery differing from the remembered token in its last byte, or
	// only a prefix of it, is verified, not recalled.
	forged := other[:len(other)-1] + string(other[len(other)-1]^1)
	if _, err := authenticateOn(v, &memo, forged); err == nil {
		t.Fatal("a forged token was accepted")
	}
	if _, err := authenticateOn(v, &memo, other[:len(other)-10]); err == nil {
		t.Fatal("a truncated token was accepted")
	}
	if id, err := authenticateOn(v, &memo, other); err != nil || id.Subject != "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11" {
		t.Fatalf("the remembered token after refusals: %+v, %v", id, err)
	}
}

// The memo never outlives the token-cache entry it stands for: not the
// token's exp, not MaxTTL, not its key's retirement.
func TestMemoEndsWithItsEntry(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.Leeway = 0
	cfg.TokenCache.MaxTTL = 300 * time.Millisecond
	v := readyVerifier(t, cfg, &recorder{})

	// MaxTTL: the memo ends with the entry, and the token is verified again.
	var memo Memo
	token := mint(t, p, devidp.MintClaims{})
	if _, err := authenticateOn(v, &memo, token); err != nil {
		t.Fatal(err)
	}
	ttlEnd := memo.expires
	if d := time.Until(time.Unix(0, ttlEnd)); d <= 0 || d > 300*time.Millisecond {
		t.Fatalf("memo ends in %v, want within MaxTTL", d)
	}
	time.Sleep(time.Until(time.Unix(0, ttlEnd)) + 20*time.Millisecond)
	lookups := v.keyLookups.Load()
	if _, err := authenticateOn(v, &memo, token); err != nil {
		t.Fatal(err)
	}
	if v.keyLookups.Load() != lookups+1 || memo.expires <= ttlEnd {
		t.Fatal("the memo answered past its entry's MaxTTL")
	}

	// exp, well before MaxTTL: an expiring token is refused once exp passes.
	cfg.TokenCache.MaxTTL = time.Hour
	long := readyVerifier(t, cfg, &recorder{})
	now := time.Now()
	exp := now.Truncate(time.Second).Add(time.Second)
	short := mint(t, p, devidp.MintClaims{IssuedAt: now, ExpiresAt: exp})
	var m2 Memo
	if _, err := authenticateOn(long, &m2, short); err != nil {
		t.Fatal(err)
	}
	if m2.expires != exp.UnixNano() {
		t.Fatalf("memo ends at %v, want the token's exp %v", time.Unix(0, m2.expires), exp)
	}
	if _, err := authenticateOn(long, &m2, short); err != nil {
		t.Fatalf("before exp: %v", err)
	}
	time.Sleep(time.Until(exp) + 20*time.Millisecond)
	if _, err := authenticateOn(long, &m2, short); err == nil {
		t.Fatal("the memo answered for an expired token")
	}

	// Retirement: the key leaves the key set, the memo stops answering.
	var m3 Memo
	old := mint(t, p, devidp.MintClaims{})
	oldKID := p.CurrentKID(devidp.RS256)
	if _, err := authenticateOn(v, &m3, old); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Rotate(devidp.RS256); err != nil {
		t.Fatal(err)
	}
	p.RemoveKey(oldKID)
	mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{})) // kid miss: the refresh sees oldKID gone
	if _, err := authenticateOn(v, &m3, old); err == nil {
		t.Fatal("the memo answered for a token of a removed key")
	}
}

// Nothing is remembered when the token cache is off (every token verified,
// as configured), nor a token longer than memoMaxTokenBytes.
func TestMemoFollowsTheTokenCache(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.TokenCache.Enabled = false
	v := readyVerifier(t, cfg, &recorder{})
	var memo Memo
	token := mint(t, p, devidp.MintClaims{})
	for i := 0; i < 2; i++ {
		lookups := v.keyLookups.Load()
		if _, err := authenticateOn(v, &memo, token); err != nil {
			t.Fatal(err)
		}
		if memo.id != nil || v.keyLookups.Load() != lookups+1 {
			t.Fatalf("request %d: remembered (%v) or not verified with the token cache off", i, memo.id != nil)
		}
	}

	on := readyVerifier(t, testConfig(p.jwksURL()), &recorder{})
	long := mint(t, p, devidp.MintClaims{Roles: []string{strings.Repeat("r", memoMaxTokenBytes)}})
	if len(long) <= memoMaxTokenBytes {
		t.Fatalf("token of %d bytes is not long enough for the test", len(long))
	}
	if _, err := authenticateOn(on, &memo, token); err != nil || memo.id == nil {
		t.Fatalf("a short token not remembered: %v", err)
	}
	if _, err := authenticateOn(on, &memo, long); err != nil {
		t.Fatal(err)
	}
	if memo.id != nil {
		t.Fatal("a token over memoMaxTokenBytes was remembered, or the previous one kept")
	}
}

// The memo keeps its own copy of the token: a connection's header buffer
// is reused by its next request, so a memo that pointed into it would
// compare the next token with itself and answer for any bytes written
// there, a forgery included.
func TestMemoKeepsItsOwnCopyOfTheToken(t *testing.T) {
	p := startIDP(t)
	v := readyVerifier(t, testConfig(p.jwksURL()), &recorder{})
	token := mint(t, p, devidp.MintClaims{})
	buf := []byte("Bearer " + token) // the connection's header buffer
	var memo Memo
	if _, err := v.AuthenticateOn(context.Background(), [][]byte{buf}, &memo, time.Now()); err != nil {
		t.Fatal(err)
	}
	// The next request on the connection: a forgery, written over the same bytes.
	buf[len(buf)-1] ^= 1
	if id, err := v.AuthenticateOn(context.Background(), [][]byte{buf}, &memo, time.Now()); err == nil {
		t.Fatalf("a forged token in the reused buffer was answered as %q", id.Subject)
	}
}

// The memo ends exactly where its token-cache entry does: at its end the
// token is verified again, not recalled.
func TestMemoIsDeadAtItsEnd(t *testing.T) {
	token := []byte("header.payload.signature")
	id := &Identity{key: &verifyKey{kid: "k"}}
	var m Memo
	end := time.Now().Add(time.Minute).UnixNano()
	m.remember(token, id, end)
	if m.recall(token, end-1) != id {
		t.Fatal("the memo did not answer a nanosecond before its end")
	}
	if m.recall(token, end) != nil {
		t.Error("the memo answered at its end")
	}
}
