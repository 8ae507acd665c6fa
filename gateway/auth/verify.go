package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// The reasons a well-formed token is refused. Each wraps ErrUnauthenticated.
var (
	errAlgorithm   = reject("signing algorithm not accepted")
	errCrit        = reject("token has critical header extensions")
	errType        = reject("token type (typ) is not an access token's")
	errNoKID       = reject("token header has no usable kid")
	errUnknownKID  = reject("token signed by a key not in the key set")
	errKeyMismatch = reject("key does not fit the token's algorithm")
	errSignature   = reject("signature invalid")
	errMalformed   = reject("token malformed")
	errExpired     = reject("token expired")
	errNotYetValid = reject("token not valid yet")
	errFutureIAT   = reject("token issued in the future")
	errIssuer      = reject("wrong issuer")
	errAudience    = reject("wrong audience")
	errMissing     = reject("required claim (exp, iss or aud) missing")
	errSubject     = reject("sub claim missing or invalid")
	errClaims      = reject("claims invalid")
)

// ownErrors are returned from inside the key look-up; golang-jwt wraps them.
var ownErrors = []error{errAlgorithm, errCrit, errType, errNoKID, errUnknownKID, errKeyMismatch,
	errExpired, errNotYetValid, errFutureIAT, errIssuer, errAudience, errMissing, errSubject, errClaims}

// Bounds on the identity read from the claims.
const (
	maxSubjectBytes    = 128
	maxClaimValues     = 64  // roles or scopes kept; more are ignored
	maxClaimValueBytes = 128 // longer role or scope names are ignored
)

// verify checks a token that passed the shape check: golang-jwt decodes it
// and checks the alg allow-list, then keyFor checks the header and the
// claims before any key is looked up, then golang-jwt checks the signature
// and the claims once more.
func (v *Verifier) verify(ctx context.Context, raw string) (*Identity, error) {
	claims := jwt.MapClaims{}
	var used *verifyKey
	token, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		k, pub, err := v.keyFor(ctx, t, claims)
		used = k
		return pub, err
	})
	if err != nil {
		return nil, v.classify(token, err)
	}
	if used == nil { // cannot happen: the parser succeeded only through keyFor
		return nil, errUnknownKID
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, errMissing
	}
	sub, _ := claims["sub"].(string)
	return &Identity{
		Subject: sub,
		grants:  v.grantsFor(claimValues(claims[v.cfg.rolesClaim], " ,"), claimValues(v.scopeClaim(claims), " ")),
		exp:     exp.Unix(),
		key:     used,
	}, nil
}

// keyFor is the jwt.Keyfunc: it refuses what the header or claims already
// condemn, so an expired or foreign token costs neither a key refresh nor a
// signature check, then finds the key.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token, claims jwt.MapClaims) (*verifyKey, any, error) {
	alg := t.Method.Alg()
	if !slices.Contains(v.cfg.algorithms, alg) { // the parser checked; this guards a change there
		return nil, nil, errAlgorithm
	}
	// RFC 7515 §4.1.11: a crit header names extensions the recipient must
	// understand; we understand none. golang-jwt ignores crit, so we refuse.
	if _, ok := t.Header["crit"]; ok {
		return nil, nil, errCrit
	}
	if !accessTokenType(t.Header) {
		return nil, nil, errType
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" || len(kid) > maxKIDBytes {
		return nil, nil, errNoKID
	}
	if err := v.checkClaims(claims); err != nil {
		return nil, nil, err
	}

	v.keyLookups.Add(1)
	set := v.keys.Load()
	if set == nil {
		return nil, nil, ErrKeysUnavailable
	}
	k, pub, err := set.find(ctx, t, kid)
	if err == errKIDNotInSet && v.awaitKeyRefresh(ctx, kid) {
		k, pub, err = v.keys.Load().find(ctx, t, kid)
	}
	if err == errKIDNotInSet {
		return nil, nil, errUnknownKID
	}
	if err != nil {
		return nil, nil, err
	}
	if !k.fits(alg) {
		return nil, nil, errKeyMismatch
	}
	return k, pub, nil
}

// accessTokenType reports whether the header's typ lets the token be an
// access token. The identity provider signs other JWTs with the same keys
// (logout tokens "logout+jwt", security events "secevent+jwt",
// introspection answers "token-introspection+jwt", ...), whose iss, aud
// and sub may well fit; RFC 8725 section 3.11 has such
// kinds told apart by typ, and RFC 9068 types access tokens "at+jwt".
// So typ may be absent (most providers' access tokens carry none or the
// generic "JWT") or name application/jwt or application/at+jwt, in any
// case and with or without "application/" (RFC 7515 section 4.1.9: a typ
// without a slash is read with that prefix); anything else, a typ that is
// not a string included, is another kind of token.
func accessTokenType(header map[string]any) bool {
	raw, ok := header["typ"]
	if !ok {
		return true
	}
	typ, ok := raw.(string)
	if !ok {
		return false
	}
	if len(typ) > len("application/") && strings.EqualFold(typ[:len("application/")], "application/") {
		typ = typ[len("application/"):]
	}
	return strings.EqualFold(typ, "jwt") || strings.EqualFold(typ, "at+jwt")
}

// maxNumericDate is 9999-12-31T23:59:59Z, the last second a date can
// name. golang-jwt makes a time of exp, nbf and iat through a conversion
// to int64 seconds whose result is implementation-dependent far beyond it,
// and time.Unix overflows near the int64 limit: an nbf of 1e300 read as
// long past, so a token not valid before the end of time passed as valid.
const maxNumericDate = 253402300799

// checkClaims runs the registered-claim rules and the sub rule.
func (v *Verifier) checkClaims(claims jwt.MapClaims) error {
	for _, name := range [...]string{"exp", "nbf", "iat"} {
		if d, ok := claims[name].(float64); ok && (d > maxNumericDate || d < -maxNumericDate) {
			return errClaims
		}
	}
	if err := v.validator.Validate(claims); err != nil {
		return claimsError(err)
	}
	sub, ok := claims["sub"].(string)
	if !ok || !validSubject(sub) {
		return errSubject
	}
	return nil
}

// classify maps a golang-jwt error to one of our reasons.
func (v *Verifier) classify(token *jwt.Token, err error) error {
	if errors.Is(err, ErrKeysUnavailable) {
		return ErrKeysUnavailable
	}
	for _, own := range ownErrors {
		if errors.Is(err, own) {
			return own
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errMalformed
	case token != nil && token.Method != nil && !slices.Contains(v.cfg.algorithms, token.Method.Alg()):
		return errAlgorithm
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errAlgorithm // alg missing or unknown to golang-jwt
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errSignature
	}
	return claimsError(err)
}

func claimsError(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return errExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errFutureIAT
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errAudience
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errMissing
	}
	return errClaims
}

// validSubject: present, bounded and printable, because the subject keys
// rate limits and appears in logs; without a space at either end,
// because it goes to the store as X-User-Id, whose value HTTP trims: " u1"
// would reach the store as another user, "u1"; and without U+FFFD, which
// is what encoding/json makes of a byte that is not UTF-8 and of an
// escaped half of a surrogate pair: "u\xff1" and "u\ud8001" would both be
// read as the one user "u\ufffd1".
func validSubject(sub string) bool {
	if sub == "" || len(sub) > maxSubjectBytes || !utf8.ValidString(sub) ||
		sub[0] == ' ' || sub[len(sub)-1] == ' ' {
		return false
	}
	for _, r := range sub {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// scopeClaim reads the configured scopes claim, falling back between the
// two usual spellings: "scope" (a space-separated string, RFC 8693) and
// "scp" (an array, as some providers send).
func (v *Verifier) scopeClaim(claims jwt.MapClaims) any {
	if s, ok := claims[v.cfg.scopesClaim]; ok {
		return s
	}
	switch v.cfg.scopesClaim {
	case "scope":
		return claims["scp"]
	case "scp":
		return claims["scope"]
	}
	return nil
}

// claimValues reads a roles or scopes claim: an array of strings, or one
// string split on any of seps. Values that are empty, too long or not
// printable are ignored, and so is an array element holding a separator
// ("beta,tester"): the store's X-User-Roles is a comma-separated list, so
// such a role could not be sent, and every store call of the user would
// fail. Duplicates are dropped, and at most maxClaimValues are kept.
func claimValues(raw any, seps string) []string {
	var out []string
	add := func(s string) {
		if len(out) >= maxClaimValues || s == "" || len(s) > maxClaimValueBytes ||
			!validValue(s) || strings.ContainsAny(s, seps) || slices.Contains(out, s) {
			return
		}
		out = append(out, s)
	}
	switch x := raw.(type) {
	case string:
		if len(x) > maxClaimValues*(maxClaimValueBytes+1)*4 {
			return nil // absurd: ignored whole rather than split
		}
		for _, f := range strings.FieldsFunc(x, func(r rune) bool { return strings.ContainsRune(seps, r) }) {
			add(f)
		}
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				add(s)
			}
		}
	}
	return out
}

// maxInterned bounds the shared grants; beyond it each token has its own.
const maxInterned = 256

// grantsFor returns shared grants equal to roles and scopes (nil for
// none). Most tokens carry one of a few role and scope sets, so a cached
// identity then holds a pointer instead of two lists of its own (about
// 10 MB less for 100,000 cached tokens). Identities are immutable, so
// sharing is safe.
func (v *Verifier) grantsFor(roles, scopes []string) *grants {
	if len(roles) == 0 && len(scopes) == 0 {
		return nil
	}
	// Values are printable and space-free (validValue), so the separators
	// cannot occur inside them.
	key := strings.Join(roles, "\x00") + "\x01" + strings.Join(scopes, "\x00")
	v.internMu.RLock()
	shared, ok := v.interned[key]
	v.internMu.RUnlock()
	if ok {
		return shared
	}
	g := &grants{roles: roles, scopes: scopes}
	v.internMu.Lock()
	defer v.internMu.Unlock()
	if shared, ok := v.interned[key]; ok {
		return shared
	}
	if v.interned == nil {
		v.interned = make(map[string]*grants)
	}
	if len(v.interned) < maxInterned {
		v.interned[key] = g
	}
	return g
}

func validValue(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}
