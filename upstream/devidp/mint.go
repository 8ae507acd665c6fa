package devidp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultTTL is the lifetime of a minted token whose ExpiresAt is zero.
const DefaultTTL = 15 * time.Minute

// MintClaims are the claims of a token to mint. Zero values take the
// provider's defaults.
type MintClaims struct {
	Subject string
	// Roles is written as the "roles" array claim (omitted when empty).
	Roles []string
	// Scopes is written as the space-separated "scope" claim (omitted when
	// empty).
	Scopes []string
	// Issuer overrides the provider's issuer.
	Issuer string
	// Audience overrides the provider's audience. One value is written as a
	// string, several as an array.
	Audience []string
	// IssuedAt defaults to now.
	IssuedAt time.Time
	// ExpiresAt defaults to IssuedAt + DefaultTTL.
	ExpiresAt time.Time
	// NotBefore is omitted when zero.
	NotBefore time.Time
	// Extra claims are written last and replace any claim of the same name.
	Extra map[string]any
}

// MintOption changes how a token is signed or what its header carries.
type MintOption func(*mintSettings)

type mintSettings struct {
	alg               string
	kid               *string // nil: the signing key's kid
	omitKID           bool
	headers           map[string]any
	foreign           crypto.Signer
	providerID        string
	none              bool
	hmacWithRSAPublic bool
	omitClaims        []string
	omitHeaders       []string
}

// WithAlgorithm picks the algorithm (RS256 or ES256; default RS256). With
// WithSigningKey it also names the algorithm used with the foreign key.
func WithAlgorithm(alg string) MintOption {
	return func(s *mintSettings) { s.alg = alg }
}

// WithKeyID writes kid into the header instead of the signing key's own.
func WithKeyID(kid string) MintOption {
	return func(s *mintSettings) { s.kid = &kid }
}

// WithoutKeyID leaves kid out of the header.
func WithoutKeyID() MintOption {
	return func(s *mintSettings) { s.omitKID = true }
}

// WithHeader adds or replaces a header field (crit, jku, jwk, x5u, typ…).
// It is applied after alg and kid, so it can also overwrite those.
func WithHeader(name string, value any) MintOption {
	return func(s *mintSettings) {
		if s.headers == nil {
			s.headers = make(map[string]any)
		}
		s.headers[name] = value
	}
}

// WithProviderKey signs with the provider's key kid (for example a key that
// is no longer current) instead of the current key of the algorithm.
func WithProviderKey(kid string) MintOption {
	return func(s *mintSettings) { s.providerID = kid }
}

// WithSigningKey signs with a key the provider does not publish: an
// *rsa.PrivateKey (RS256 unless WithAlgorithm says otherwise) or an
// *ecdsa.PrivateKey (ES256). The header still carries the current kid of
// that algorithm unless WithKeyID or WithoutKeyID says otherwise, so the
// token looks like one of the provider's.
func WithSigningKey(key crypto.Signer) MintOption {
	return func(s *mintSettings) { s.foreign = key }
}

// WithAlgNone produces an unsigned token: alg "none" and an empty signature.
func WithAlgNone() MintOption {
	return func(s *mintSettings) { s.none = true }
}

// WithHS256PublicKey produces the classic key-confusion token: alg HS256,
// HMAC-keyed with the PEM encoding of the current RSA public key, which
// anybody can download from the JWKS.
func WithHS256PublicKey() MintOption {
	return func(s *mintSettings) { s.hmacWithRSAPublic = true }
}

// WithoutClaims removes the named claims (for example "exp" or "sub") after
// defaults and Extra are applied.
func WithoutClaims(names ...string) MintOption {
	return func(s *mintSettings) { s.omitClaims = append(s.omitClaims, names...) }
}

// WithoutHeader removes the named header fields (for example "typ", which
// golang-jwt writes as "JWT") after WithHeader is applied.
func WithoutHeader(names ...string) MintOption {
	return func(s *mintSettings) { s.omitHeaders = append(s.omitHeaders, names...) }
}

// Mint signs a token with the given claims.
func (p *Provider) Mint(c MintClaims, opts ...MintOption) (string, error) {
	var s mintSettings
	for _, o := range opts {
		o(&s)
	}
	claims := p.claimSet(c)
	for _, name := range s.omitClaims {
		delete(claims, name)
	}

	method, key, kid, err := p.signer(&s)
	if err != nil {
		return "", err
	}
	token := jwt.NewWithClaims(method, claims)
	token.Header["kid"] = kid
	if s.kid != nil {
		token.Header["kid"] = *s.kid
	}
	if s.omitKID {
		delete(token.Header, "kid")
	}
	maps.Copy(token.Header, s.headers)
	for _, name := range s.omitHeaders {
		delete(token.Header, name)
	}
	signed, err := token.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("devidp: signing: %w", err)
	}
	return signed, nil
}

// claimSet builds the claims with the provider's defaults filled in.
func (p *Provider) claimSet(c MintClaims) jwt.MapClaims {
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	exp := c.ExpiresAt
	if exp.IsZero() {
		exp = iat.Add(DefaultTTL)
	}
	claims := jwt.MapClaims{
		"iss": p.issuer,
		"aud": p.audience,
		"iat": iat.Unix(),
		"exp": exp.Unix(),
	}
	if c.Subject != "" {
		claims["sub"] = c.Subject
	}
	if c.Issuer != "" {
		claims["iss"] = c.Issuer
	}
	switch len(c.Audience) {
	case 0:
	case 1:
		claims["aud"] = c.Audience[0]
	default:
		claims["aud"] = c.Audience
	}
	if !c.NotBefore.IsZero() {
		claims["nbf"] = c.NotBefore.Unix()
	}
	if len(c.Roles) > 0 {
		claims["roles"] = c.Roles
	}
	if len(c.Scopes) > 0 {
		claims["scope"] = strings.Join(c.Scopes, " ")
	}
	maps.Copy(claims, c.Extra)
	return claims
}

// signer picks the signing method, the key and the kid the settings ask for.
func (p *Provider) signer(s *mintSettings) (jwt.SigningMethod, any, string, error) {
	alg := s.alg
	switch {
	case s.none:
		return jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, p.CurrentKID(RS256), nil

	case s.hmacWithRSAPublic:
		k := p.currentKey(RS256)
		if k == nil {
			return nil, nil, "", errors.New("devidp: no RSA key to confuse")
		}
		der, err := x509.MarshalPKIXPublicKey(k.private.Public())
		if err != nil {
			return nil, nil, "", fmt.Errorf("devidp: encoding the RSA public key: %w", err)
		}
		secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		return jwt.SigningMethodHS256, secret, k.kid, nil

	case s.foreign != nil:
		if alg == "" {
			switch s.foreign.(type) {
			case *rsa.PrivateKey:
				alg = RS256
			case *ecdsa.PrivateKey:
				alg = ES256
			default:
				return nil, nil, "", fmt.Errorf("devidp: unsupported foreign key type %T", s.foreign)
			}
		}
		method := jwt.GetSigningMethod(alg)
		if method == nil {
			return nil, nil, "", fmt.Errorf("devidp: unknown algorithm %q", alg)
		}
		kid := p.CurrentKID(alg)
		if kid == "" {
			kid = "foreign"
		}
		return method, s.foreign, kid, nil

	case s.providerID != "":
		k := p.keyByKID(s.providerID)
		if k == nil {
			return nil, nil, "", fmt.Errorf("devidp: no key %q", s.providerID)
		}
		if alg == "" {
			alg = k.alg
		}
		method := jwt.GetSigningMethod(alg)
		if method == nil {
			return nil, nil, "", fmt.Errorf("devidp: unknown algorithm %q", alg)
		}
		return method, k.private, k.kid, nil

	default:
		if alg == "" {
			alg = RS256
		}
		k := p.currentKey(alg)
		if k == nil {
			return nil, nil, "", fmt.Errorf("devidp: no current %s key", alg)
		}
		return jwt.GetSigningMethod(alg), k.private, k.kid, nil
	}
}
