package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// signingAlgorithms are the only algorithms a token may ever use: public-key
// signatures. "none" and the HMAC family are absent on purpose: with a JWKS,
// an HMAC "key" could only be public material.
var signingAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

// Bounds on what a key set may hold.
const (
	maxKeysPerSet = 100
	maxKIDBytes   = 256
	minRSABits    = 2048
	maxRSABits    = 8192
)

// verifyKey is one usable public key of the identity provider.
type verifyKey struct {
	kid    string
	alg    string // the JWK's declared alg; "" when it declares none
	public crypto.PublicKey
	jwk    jwkset.JWK

	// retired is set once a fetched key set no longer carries this key (or
	// carries a different key under its kid). Cached verifications made with
	// it are dropped on their next hit.
	retired atomic.Bool
}

// fits reports whether the key may verify a token signed with alg: the key
// type must be the alg's (RSA for RS/PS, the alg's own curve for ES, Ed25519
// for EdDSA) and, when the JWK declares an alg, it must be this one.
func (k *verifyKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.public.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// sameAs reports whether other is the same key under the same name, so the
// object (and the cached verifications pointing at it) can be kept.
func (k *verifyKey) sameAs(other *verifyKey) bool {
	if k.kid != other.kid || k.alg != other.alg {
		return false
	}
	pub, ok := k.public.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(other.public)
}

// keySet is one immutable snapshot of the usable keys, replaced whole after
// a fetch that changes it.
type keySet struct {
	byKID map[string]*verifyKey
	kids  []string // sorted, for logs and comparison
	// lookup is keyfunc's key look-up over the same keys: it resolves the
	// token's kid and refuses a JWK whose declared alg differs from the
	// token's.
	lookup keyfunc.Keyfunc
}

func newKeySet(keys []*verifyKey) (*keySet, error) {
	store := jwkset.NewMemoryStorage()
	s := &keySet{byKID: make(map[string]*verifyKey, len(keys))}
	for _, k := range keys {
		if err := store.KeyWrite(context.Background(), k.jwk); err != nil {
			return nil, fmt.Errorf("storing key %q: %w", k.kid, err)
		}
		s.byKID[k.kid] = k
		s.kids = append(s.kids, k.kid)
	}
	slices.Sort(s.kids)
	lookup, err := keyfunc.New(keyfunc.Options{Storage: store})
	if err != nil {
		return nil, err
	}
	s.lookup = lookup
	return s, nil
}

// errKIDNotInSet is internal: the caller may refresh and try again.
var errKIDNotInSet = errors.New("kid not in key set")

// find returns the key for the token's kid and the public key to verify with.
func (s *keySet) find(ctx context.Context, t *jwt.Token, kid string) (*verifyKey, any, error) {
	pub, err := s.lookup.KeyfuncCtx(ctx)(t)
	switch {
	case errors.Is(err, jwkset.ErrKeyNotFound):
		return nil, nil, errKIDNotInSet
	case err != nil:
		return nil, nil, errKeyMismatch
	}
	k := s.byKID[kid]
	if k == nil {
		return nil, nil, errKIDNotInSet
	}
	return k, pub, nil
}

// sameKeys reports whether keys are exactly the keys of s (same objects).
func (s *keySet) sameKeys(keys []*verifyKey) bool {
	if s == nil || len(s.byKID) != len(keys) {
		return false
	}
	for _, k := range keys {
		if s.byKID[k.kid] != k {
			return false
		}
	}
	return true
}

// parseKeySet reads a JWKS body and keeps the keys this verifier can use.
// Keys it cannot use (encryption keys, symmetric keys, keys without kid,
// weak RSA keys, algorithms outside allowed) are skipped; a set left with
// none is an error, so an empty or useless response never replaces a good
// set. Keys equal to ones in known are returned as those same objects.
func parseKeySet(body []byte, allowed []string, known *keySet) ([]*verifyKey, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("response is not a JWK set: %w", err)
	}
	var keys []*verifyKey
	var skipped []string
	for i, m := range set.Keys {
		if i == maxKeysPerSet {
			skipped = append(skipped, fmt.Sprintf("%d keys past the first %d", len(set.Keys)-maxKeysPerSet, maxKeysPerSet))
			break
		}
		k, err := usableKey(m, allowed)
		if err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		if slices.ContainsFunc(keys, func(o *verifyKey) bool { return o.kid == k.kid }) {
			skipped = append(skipped, fmt.Sprintf("kid %q: duplicate, first kept", k.kid))
			continue
		}
		if known != nil {
			if old := known.byKID[k.kid]; old != nil && old.sameAs(k) {
				k = old
			}
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		if len(skipped) > 3 {
			skipped = append(skipped[:3], "…")
		}
		return nil, fmt.Errorf("key set has no usable signing key (%d keys; %s)", len(set.Keys), strings.Join(skipped, "; "))
	}
	return keys, nil
}

// usableKey turns one JWK into a verifyKey, or says why it cannot be used.
func usableKey(m jwkset.JWKMarshal, allowed []string) (*verifyKey, error) {
	kid := m.KID
	switch {
	case kid == "":
		return nil, errors.New("key without kid")
	case len(kid) > maxKIDBytes:
		return nil, errors.New("kid too long")
	case m.USE != "" && m.USE != jwkset.UseSig:
		return nil, fmt.Errorf("kid %q: use %q is not sig", kid, m.USE)
	case len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify):
		return nil, fmt.Errorf("kid %q: key_ops lacks verify", kid)
	case m.KTY == jwkset.KtyOct:
		return nil, fmt.Errorf("kid %q: symmetric keys are never accepted", kid)
	}
	// Private members, if a careless provider publishes them, are ignored:
	// only the public key is read.
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kid %q: %v", kid, err)
	}
	k := &verifyKey{kid: kid, alg: string(m.ALG), public: jwk.Key(), jwk: jwk}
	switch pub := k.public.(type) {
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("kid %q: RSA key of %d bits (want %d to %d)", kid, bits, minRSABits, maxRSABits)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("kid %q: unsupported key type %T", kid, pub)
	}
	if k.alg != "" {
		if !slices.Contains(allowed, k.alg) || !k.fits(k.alg) {
			return nil, fmt.Errorf("kid %q: alg %q not accepted for this key", kid, k.alg)
		}
		return k, nil
	}
	if !slices.ContainsFunc(allowed, k.fits) {
		return nil, fmt.Errorf("kid %q: key fits none of the accepted algorithms", kid)
	}
	return k, nil
}
