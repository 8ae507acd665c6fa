package auth

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/bffgate/edge/upstream/devidp"
)

// benchVerifier returns a ready verifier and a header holding a valid token
// signed with alg.
func benchVerifier(b *testing.B, alg string, cache bool) (*Verifier, [][]byte) {
	b.Helper()
	p := startIDP(b)
	cfg := testConfig(p.jwksURL())
	cfg.TokenCache.Enabled = cache
	v := readyVerifier(b, cfg, nil)
	token := mint(b, p, devidp.MintClaims{Roles: []string{"user"}, Scopes: []string{"users:read"},
		ExpiresAt: time.Now().Add(time.Hour)}, devidp.WithAlgorithm(alg))
	h := bearer(token)
	if _, err := v.Authenticate(context.Background(), h); err != nil {
		b.Fatal(err)
	}
	return v, h
}

func benchAuthenticate(b *testing.B, cache bool) {
	for _, alg := range []string{devidp.RS256, devidp.ES256} {
		b.Run(alg, func(b *testing.B) {
			v, h := benchVerifier(b, alg, cache)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Authenticate(ctx, h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAuthenticateCached is the hit path: header check, SHA-256 of the
// token, one map look-up. Target: 0 allocs/op.
func BenchmarkAuthenticateCached(b *testing.B) { benchAuthenticate(b, true) }

// BenchmarkAuthenticateRemembered is a request on a connection whose memo
// holds its token (the RS256 one, as the load benchmark's): header check
// and one byte comparison, at the request's arrival time.
func BenchmarkAuthenticateRemembered(b *testing.B) {
	v, h := benchVerifier(b, devidp.RS256, true)
	ctx := context.Background()
	var memo Memo
	if _, err := v.AuthenticateOn(ctx, h, &memo, time.Now()); err != nil || !memo.Remembers() {
		b.Fatalf("not remembered: %v", err)
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.AuthenticateOn(ctx, h, &memo, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateUncached is a full verification every time.
func BenchmarkAuthenticateUncached(b *testing.B) { benchAuthenticate(b, false) }

// BenchmarkTokenCacheGet isolates the cache look-up from the hashing.
func BenchmarkTokenCacheGet(b *testing.B) {
	c := newTokenCache(100000, time.Minute)
	now := time.Now()
	id := &Identity{exp: now.Add(time.Hour).Unix(), key: &verifyKey{}}
	sum := sha256.Sum256([]byte("token"))
	c.put(&sum, id, now)
	b.ReportAllocs()
	for b.Loop() {
		if got(c.get(&sum, time.Now().UnixNano())) == nil {
			b.Fatal("miss")
		}
	}
}

// BenchmarkTokenSHA256 is the hashing share of a hit, for comparison.
func BenchmarkTokenSHA256(b *testing.B) {
	_, h := benchVerifier(b, devidp.RS256, true)
	token := h[0][len("Bearer "):]
	b.ReportAllocs()
	for b.Loop() {
		_ = sha256.Sum256(token)
	}
}
