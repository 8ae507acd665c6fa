// Package devidp is a development identity provider: it holds real RSA and
// EC signing keys, publishes their public halves as a JWKS, and mints access
// tokens for them.
//
// It exists so the gateway can be run and tested against a real key set
// without an external identity provider. It is never imported by the
// gateway binary. Besides well-formed tokens it can mint every hostile token
// the verifier must refuse (alg none, HS256 keyed with the RSA public key,
// foreign keys, crit/jku/jwk/x5u headers) and make its JWKS endpoint
// misbehave on demand (empty set, garbage, HTML, error status, slow,
// oversized), so tests exercise the gateway against the failures it will
// meet in production.
package devidp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/MicahParks/jwkset"
)

// The signing algorithms the provider has keys for.
const (
	RS256 = "RS256"
	ES256 = "ES256"
)

// Options configures a Provider.
type Options struct {
	// Issuer is written into the iss claim of minted tokens.
	Issuer string
	// Audience is written into the aud claim of minted tokens.
	Audience string
}

// KeyInfo describes one signing key of the provider.
type KeyInfo struct {
	KID       string
	Algorithm string
	// Current keys sign new tokens of their algorithm.
	Current bool
}

// Provider is a development identity provider. It is safe for concurrent
// use.
type Provider struct {
	issuer   string
	audience string

	mu      sync.RWMutex
	keys    []*signingKey          // in the order they were made
	current map[string]*signingKey // algorithm → the key that signs new tokens
	mode    JWKSMode

	fetches atomic.Int64
}

// signingKey is one private key with its published public JWK.
type signingKey struct {
	kid     string
	alg     string
	private crypto.Signer
	jwk     jwkset.JWKMarshal
}

// New makes a provider with one fresh RSA-2048 (RS256) and one fresh P-256
// (ES256) key, both current.
func New(opts Options) (*Provider, error) {
	if strings.TrimSpace(opts.Issuer) == "" {
		return nil, errors.New("devidp: an issuer is required")
	}
	if strings.TrimSpace(opts.Audience) == "" {
		return nil, errors.New("devidp: an audience is required")
	}
	p := &Provider{
		issuer:   opts.Issuer,
		audience: opts.Audience,
		current:  make(map[string]*signingKey),
		mode:     JWKSNormal,
	}
	for _, alg := range []string{RS256, ES256} {
		if _, err := p.Rotate(alg); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Issuer is the iss claim of minted tokens.
func (p *Provider) Issuer() string { return p.issuer }

// Audience is the aud claim of minted tokens.
func (p *Provider) Audience() string { return p.audience }

// Rotate makes a new key for alg (RS256 or ES256), publishes it and makes it
// the one that signs new tokens of that algorithm. Older keys stay published
// until RemoveKey.
func (p *Provider) Rotate(alg string) (kid string, err error) {
	key, err := newSigningKey(alg)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, key)
	p.current[alg] = key
	return key.kid, nil
}

// RemoveKey stops publishing the key kid and stops signing with it. When it
// was the current key of its algorithm, the newest remaining key of that
// algorithm becomes current. It reports whether the key existed.
func (p *Provider) RemoveKey(kid string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.keys, func(k *signingKey) bool { return k.kid == kid })
	if i < 0 {
		return false
	}
	removed := p.keys[i]
	p.keys = slices.Delete(p.keys, i, i+1)
	if p.current[removed.alg] == removed {
		delete(p.current, removed.alg)
		for j := len(p.keys) - 1; j >= 0; j-- {
			if p.keys[j].alg == removed.alg {
				p.current[removed.alg] = p.keys[j]
				break
			}
		}
	}
	return true
}

// Keys lists the published keys, oldest first.
func (p *Provider) Keys() []KeyInfo {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]KeyInfo, 0, len(p.keys))
	for _, k := range p.keys {
		out = append(out, KeyInfo{KID: k.kid, Algorithm: k.alg, Current: p.current[k.alg] == k})
	}
	return out
}

// CurrentKID is the kid of the key that signs new tokens of alg, or "" when
// the provider has no key for it.
func (p *Provider) CurrentKID(alg string) string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if k := p.current[alg]; k != nil {
		return k.kid
	}
	return ""
}

// PublicKey returns the public key of kid, for tests that need the raw key.
func (p *Provider) PublicKey(kid string) (crypto.PublicKey, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, k := range p.keys {
		if k.kid == kid {
			return k.private.Public(), true
		}
	}
	return nil, false
}

// JWKSFetches counts the requests made to the JWKS endpoint, whatever the
// mode answered.
func (p *Provider) JWKSFetches() int64 { return p.fetches.Load() }

func (p *Provider) keyByKID(kid string) *signingKey {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, k := range p.keys {
		if k.kid == kid {
			return k
		}
	}
	return nil
}

func (p *Provider) currentKey(alg string) *signingKey {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.current[alg]
}

// publicJWKs snapshots the published keys.
func (p *Provider) publicJWKs() []jwkset.JWKMarshal {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]jwkset.JWKMarshal, 0, len(p.keys))
	for _, k := range p.keys {
		out = append(out, k.jwk)
	}
	return out
}

func newSigningKey(alg string) (*signingKey, error) {
	var private crypto.Signer
	var err error
	switch alg {
	case RS256:
		private, err = rsa.GenerateKey(rand.Reader, 2048)
	case ES256:
		private, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("devidp: unsupported algorithm %q (want %s or %s)", alg, RS256, ES256)
	}
	if err != nil {
		return nil, fmt.Errorf("devidp: generating a %s key: %w", alg, err)
	}
	kid := newKID(alg)
	jwk, err := jwkset.NewJWKFromKey(private.Public(), jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.ALG(alg), KID: kid, USE: jwkset.UseSig},
	})
	if err != nil {
		return nil, fmt.Errorf("devidp: publishing the %s key: %w", alg, err)
	}
	return &signingKey{kid: kid, alg: alg, private: private, jwk: jwk.Marshal()}, nil
}

// newKID names a key by its algorithm and 64 random bits, so a reader of a
// token header sees at once which kind of key signed it.
func newKID(alg string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return strings.ToLower(alg) + "-" + hex.EncodeToString(b[:])
}
