package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/upstream/devidp"
)

func TestAuthenticateAcceptsBothHeaderFormsAndAlgorithms(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.TokenCache.Enabled = false // every call verifies the signature
	v := readyVerifier(t, cfg, nil)

	for _, alg := range []string{devidp.RS256, devidp.ES256} {
		token := mint(t, p, devidp.MintClaims{Roles: []string{"user", "admin"}, Scopes: []string{"users:read", "users:write"}},
			devidp.WithAlgorithm(alg))
		for _, h := range []string{
			"Bearer " + token,
			"bearer " + token,
			"BEARER    " + token,
			"  Bearer " + token + "  ",
			token,
			"\t" + token,
		} {
			id, err := v.Authenticate(context.Background(), header(h))
			if err != nil {
				t.Fatalf("%s, header %.20q…: %v", alg, h, err)
			}
			if id.Subject != demoSubject || id.KeyID() != p.CurrentKID(alg) ||
				!slices.Equal(id.Roles(), []string{"user", "admin"}) || !slices.Equal(id.Scopes(), []string{"users:read", "users:write"}) {
				t.Fatalf("%s identity %+v", alg, id)
			}
			if !id.HasRole("admin") || id.HasRole("root") || !id.HasScope("users:write") || id.HasScope("users") {
				t.Fatal("HasRole/HasScope wrong")
			}
			if d := time.Until(id.ExpiresAt()); d < 14*time.Minute || d > 15*time.Minute {
				t.Fatalf("ExpiresAt %v", id.ExpiresAt())
			}
		}
	}
	var none *Identity
	if none.HasRole("user") || none.HasScope("x") {
		t.Error("nil identity has a role")
	}
}

// Every header problem is refused before any decoding or key look-up.
func TestAuthenticateRefusesBadHeadersBeforeCrypto(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.MaxTokenBytes = 2048
	v := readyVerifier(t, cfg, nil)
	token := mint(t, p, devidp.MintClaims{})
	parts := strings.Split(token, ".")

	cases := []struct {
		name string
		h    [][]byte
		want error
	}{
		{"no header", nil, errNoToken},
		{"two headers", header("Bearer "+token, "Bearer "+token), errManyHeaders},
		{"two empty headers", header("", ""), errManyHeaders},
		{"empty value", header(""), errNoToken},
		{"only spaces", header("   "), errNoToken},
		{"scheme only", header("Bearer"), errNoToken},
		{"scheme only, lower case", header("bearer"), errNoToken},
		{"scheme and spaces", header("Bearer    "), errNoToken},
		{"basic scheme", header("Basic dXNlcjpwYXNz"), errScheme},
		{"token scheme", header("Token " + token), errScheme},
		{"bearer lookalike", header("Bearer: " + token), errScheme},
		{"too long", header("Bearer " + token + strings.Repeat("A", 2048)), errTooLong},
		{"one byte too long", header(padTo("Bearer "+token, 2049)), errTooLong},
		{"scheme with another first letter", header("Xearer " + token), errScheme},
		{"space inside token", header("Bearer " + parts[0] + "." + parts[1] + " ." + parts[2]), errShape},
		{"bare token with a space", header(parts[0] + "." + parts[1] + " ." + parts[2]), errScheme},
		{"tab inside token", header("Bearer " + parts[0] + "\t." + parts[1] + "." + parts[2]), errShape},
		{"newline inside token", header("Bearer " + parts[0] + "\n." + parts[1] + "." + parts[2]), errShape},
		{"two tokens", header("Bearer " + token + " " + token), errShape},
		{"one part", header("Bearer " + parts[0]), errShape},
		{"two parts", header("Bearer " + parts[0] + "." + parts[1]), errShape},
		{"four parts", header("Bearer " + token + ".AAAA"), errShape},
		{"empty first part", header("Bearer ." + parts[1] + "." + parts[2]), errShape},
		{"empty middle part", header("Bearer " + parts[0] + ".." + parts[2]), errShape},
		{"empty signature", header("Bearer " + parts[0] + "." + parts[1] + "."), errShape},
		{"padded base64", header("Bearer " + parts[0] + "=." + parts[1] + "." + parts[2]), errShape},
		{"standard base64 chars", header("Bearer " + parts[0] + "." + parts[1] + "+/." + parts[2]), errShape},
		{"json instead", header(`{"alg":"none"}`), errShape},
		{"non-ascii", header("Bearer é." + parts[1] + "." + parts[2]), errShape},
		{"NUL byte", header("Bearer " + parts[0] + "\x00." + parts[1] + "." + parts[2]), errShape},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Authenticate(context.Background(), c.h)
			if !errors.Is(err, ErrUnauthenticated) || !errors.Is(err, c.want) {
				t.Fatalf("want %v, got %v", c.want, err)
			}
			// The absence of a bearer token is no refused token, nor is a
			// malformed request.
			if want := c.want != errNoToken && c.want != errScheme && c.want != errManyHeaders; TokenRefused(err) != want {
				t.Fatalf("TokenRefused(%v) = %v, want %v", err, !want, want)
			}
			if want := c.want == errManyHeaders; RequestMalformed(err) != want {
				t.Fatalf("RequestMalformed(%v) = %v, want %v", err, !want, want)
			}
		})
	}
	if n := v.keyLookups.Load(); n != 0 {
		t.Errorf("%d malformed headers reached the key look-up", n)
	}

	// Shaped like a JWS but not decodable: refused by the parser, still
	// before any key look-up.
	for _, bad := range []string{"AAAA.BBBB.CCCC", "e30.e30.AAAA", parts[0] + ".!!!!." + parts[2]} {
		if _, err := v.Authenticate(context.Background(), header(bad)); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if n := v.keyLookups.Load(); n != 0 {
		t.Errorf("%d undecodable tokens reached the key look-up", n)
	}
}

func TestAuthenticateRefusesBadClaims(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.Leeway = 5 * time.Second
	v := readyVerifier(t, cfg, nil)
	now := time.Now()

	cases := []struct {
		name   string
		claims devidp.MintClaims
		opts   []devidp.MintOption
		want   error
	}{
		{"expired", devidp.MintClaims{IssuedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute)}, nil, errExpired},
		{"expired beyond leeway", devidp.MintClaims{IssuedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-7 * time.Second)}, nil, errExpired},
		{"not yet valid", devidp.MintClaims{NotBefore: now.Add(time.Minute)}, nil, errNotYetValid},
		{"issued in the future", devidp.MintClaims{IssuedAt: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)}, nil, errFutureIAT},
		{"wrong issuer", devidp.MintClaims{Issuer: "http://evil.test"}, nil, errIssuer},
		{"issuer differs in case", devidp.MintClaims{Issuer: strings.ToUpper(testIssuer)}, nil, errIssuer},
		{"missing issuer", devidp.MintClaims{}, []devidp.MintOption{devidp.WithoutClaims("iss")}, errMissing},
		{"wrong audience", devidp.MintClaims{Audience: []string{"other-api"}}, nil, errAudience},
		{"wrong audiences", devidp.MintClaims{Audience: []string{"a", "b"}}, nil, errAudience},
		{"missing audience", devidp.MintClaims{}, []devidp.MintOption{devidp.WithoutClaims("aud")}, errMissing},
		{"missing exp", devidp.MintClaims{}, []devidp.MintOption{devidp.WithoutClaims("exp")}, errMissing},
		{"exp zero", devidp.MintClaims{Extra: map[string]any{"exp": 0}}, nil, errMissing},
		{"exp as string", devidp.MintClaims{Extra: map[string]any{"exp": "tomorrow"}}, nil, errClaims},
		// Beyond int64 seconds golang-jwt's conversion and time.Unix
		// overflow: these read as long past.
		{"nbf beyond any date", devidp.MintClaims{Extra: map[string]any{"nbf": 1e300}}, nil, errClaims},
		{"iat beyond any date", devidp.MintClaims{Extra: map[string]any{"iat": 1e19}}, nil, errClaims},
		{"exp beyond any date", devidp.MintClaims{Extra: map[string]any{"exp": 1e300}}, nil, errClaims},
		{"exp after year 9999", devidp.MintClaims{Extra: map[string]any{"exp": 253402300800}}, nil, errClaims},
		{"missing sub", devidp.MintClaims{}, []devidp.MintOption{devidp.WithoutClaims("sub")}, errSubject},
		{"empty sub", devidp.MintClaims{Extra: map[string]any{"sub": ""}}, nil, errSubject},
		{"numeric sub", devidp.MintClaims{Extra: map[string]any{"sub": 42}}, nil, nil},
		{"long sub", devidp.MintClaims{Subject: strings.Repeat("s", 129)}, nil, errSubject},
		{"sub with newline", devidp.MintClaims{Subject: "user\nadmin"}, nil, errSubject},
		{"sub with escape", devidp.MintClaims{Subject: "user\x1b[31m"}, nil, errSubject},
		// X-User-Id's value is trimmed by HTTP: the store would see "user".
		{"sub with a leading space", devidp.MintClaims{Subject: " user"}, nil, errSubject},
		{"sub with a trailing space", devidp.MintClaims{Subject: "user "}, nil, errSubject},
		{"sub with a C1 control", devidp.MintClaims{Subject: "user\u0085admin"}, nil, errSubject},
		{"sub with a line separator", devidp.MintClaims{Subject: "user\u2028admin"}, nil, errSubject},
		{"sub with a zero-width space", devidp.MintClaims{Subject: "user\u200badmin"}, nil, errSubject},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustRefuse(t, v, mint(t, p, c.claims, c.opts...), c.want)
		})
	}
	if n := v.keyLookups.Load(); n != 0 {
		t.Errorf("%d tokens with bad claims reached the key look-up (and could trigger refreshes)", n)
	}

	// Inside the leeway, and every audience form that holds ours.
	for name, c := range map[string]devidp.MintClaims{
		"expired within leeway":       {IssuedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-2 * time.Second)},
		"nbf within leeway":           {NotBefore: now.Add(2 * time.Second)},
		"iat within leeway":           {IssuedAt: now.Add(2 * time.Second), ExpiresAt: now.Add(time.Hour)},
		"audience in a list":          {Audience: []string{"other", testAudience}},
		"subject at max length":       {Subject: strings.Repeat("s", 128)},
		"subject with unicode":        {Subject: "kullanıcı-ğüşiöç"},
		"subject with a space inside": {Subject: "user one"},
		"nbf in the past":             {NotBefore: now.Add(-time.Minute)},
		"exp at the end of year 9999": {Extra: map[string]any{"exp": 253402300799}},
		"second configured audience":  {Audience: []string{"admin-api"}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := cfg
			cfg.Audiences = []string{testAudience, "admin-api"}
			v := v
			if name == "second configured audience" {
				v = readyVerifier(t, cfg, nil)
			}
			mustAuthenticate(t, v, mint(t, p, c))
		})
	}
}

// A subject that is not text the identity provider wrote is refused:
// encoding/json reads a byte that is not UTF-8, or an escaped half of a
// surrogate pair, as U+FFFD, so "u\xff1", "u\xfe1" and "u\ud8001" would
// all be the one user "u\ufffd1" (and reach the store as X-User-Id so).
func TestSubjectOfUnreadableTextIsRefused(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: "raw", ALG: jwkset.AlgRS256, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	}))
	defer srv.Close()
	v := readyVerifier(t, testConfig(srv.URL), nil)
	// sign makes a token of the claims' JSON exactly as written.
	sign := func(sub string) string {
		claims := fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d,"sub":"%s"}`, testIssuer, testAudience, time.Now().Add(time.Hour).Unix(), sub)
		signing := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"raw","typ":"JWT"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(claims))
		sum := sha256.Sum256([]byte(signing))
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
	}

	if id := mustAuthenticate(t, v, sign(`u\u00e71`)); id.Subject != "uç1" {
		t.Fatalf("subject %q, want uç1", id.Subject)
	}
	for name, sub := range map[string]string{
		"a byte that is not UTF-8":       "u\xff1",
		"a truncated UTF-8 sequence":     "u\xc31",
		"an escaped lone high surrogate": `u\ud8001`,
		"an escaped lone low surrogate":  `u\udc001`,
		"U+FFFD itself":                  "u\uFFFD1",
		"U+FFFD escaped":                 `u\ufffd1`,
	} {
		t.Run(name, func(t *testing.T) {
			mustRefuse(t, v, sign(sub), errSubject)
		})
	}
}

func TestAuthenticateRefusesHostileTokens(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.TokenCache.Enabled = false
	v := readyVerifier(t, cfg, nil)

	// An attacker's own key server, to prove jku is never followed.
	attackerKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	attackerJWK, err := jwkset.NewJWKFromKey(&attackerKey.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: "evil", ALG: jwkset.AlgRS256, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatal(err)
	}
	var attackerFetches atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attackerFetches.Add(1)
		_ = json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{attackerJWK.Marshal()}})
	}))
	defer attacker.Close()
	ecAttacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	good := mint(t, p, devidp.MintClaims{})
	parts := strings.Split(good, ".")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	// sameBytes writes a token's signature with the unused low bit of its
	// last character set (or cleared): a lenient base64 decoder reads the
	// same signature, so one signed token would have two spellings (two
	// token-cache entries, and a second token for anything that tells
	// tokens apart by their bytes).
	sameBytes := func(token string) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		if n := len(token) - strings.LastIndexByte(token, '.') - 1; n%4 == 0 {
			t.Fatalf("a signature of %d characters has no unused bits", n)
		}
		last := strings.IndexByte(alphabet, token[len(token)-1])
		return token[:len(token)-1] + string(alphabet[last^1])
	}
	es256 := mint(t, p, devidp.MintClaims{}, devidp.WithAlgorithm(devidp.ES256))
	for _, tok := range []string{good, es256} {
		sig := func(tok string) []byte {
			b, err := base64.RawURLEncoding.DecodeString(tok[strings.LastIndexByte(tok, '.')+1:])
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		if !bytes.Equal(sig(tok), sig(sameBytes(tok))) {
			t.Fatal("the respelled signature is another signature")
		}
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(payload), `"roles"`, `"x"`, 1)
	forged = strings.Replace(forged, demoSubject, "a0a0a0a0-0000-4000-8000-000000000001", 1)

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2], len(parts[2])/2), errSignature},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2], errSignature},
		{"alg none", mint(t, p, devidp.MintClaims{}, devidp.WithAlgNone()), nil},
		{"alg none with a signature", mint(t, p, devidp.MintClaims{}, devidp.WithAlgNone()) + parts[2], errAlgorithm},
		{"HS256 keyed with the RSA public key", mint(t, p, devidp.MintClaims{}, devidp.WithHS256PublicKey()), errAlgorithm},
		{"foreign RSA key, real kid", mint(t, p, devidp.MintClaims{}, devidp.WithSigningKey(attackerKey)), errSignature},
		{"foreign EC key, real kid", mint(t, p, devidp.MintClaims{}, devidp.WithSigningKey(ecAttacker)), errSignature},
		{"embedded jwk of the signing key", mint(t, p, devidp.MintClaims{}, devidp.WithSigningKey(attackerKey),
			devidp.WithHeader("jwk", attackerJWK.Marshal())), errSignature},
		{"embedded jwk, its own kid", mint(t, p, devidp.MintClaims{}, devidp.WithSigningKey(attackerKey),
			devidp.WithKeyID("evil"), devidp.WithHeader("jwk", attackerJWK.Marshal())), errUnknownKID},
		{"jku to the attacker's keys", mint(t, p, devidp.MintClaims{}, devidp.WithSigningKey(attackerKey),
			devidp.WithKeyID("evil"), devidp.WithHeader("jku", attacker.URL)), errUnknownKID},
		{"x5u to the attacker", mint(t, p, devidp.MintClaims{}, devidp.WithSigningKey(attackerKey),
			devidp.WithHeader("x5u", attacker.URL)), errSignature},
		{"x5c of nonsense", mint(t, p, devidp.MintClaims{}, devidp.WithSigningKey(attackerKey),
			devidp.WithHeader("x5c", []string{"MIIB"})), errSignature},
		{"crit naming exp", mint(t, p, devidp.MintClaims{}, devidp.WithHeader("crit", []string{"exp"})), errCrit},
		{"crit empty", mint(t, p, devidp.MintClaims{}, devidp.WithHeader("crit", []string{})), errCrit},
		{"crit b64", mint(t, p, devidp.MintClaims{}, devidp.WithHeader("crit", []string{"b64"}), devidp.WithHeader("b64", false)), errCrit},
		{"no kid", mint(t, p, devidp.MintClaims{}, devidp.WithoutKeyID()), errNoKID},
		{"empty kid", mint(t, p, devidp.MintClaims{}, devidp.WithKeyID("")), errNoKID},
		{"numeric kid", mint(t, p, devidp.MintClaims{}, devidp.WithHeader("kid", 7)), errNoKID},
		{"huge kid", mint(t, p, devidp.MintClaims{}, devidp.WithKeyID(strings.Repeat("k", 300))), errNoKID},
		{"RS256 naming the EC key", mint(t, p, devidp.MintClaims{}, devidp.WithKeyID(p.CurrentKID(devidp.ES256))), errKeyMismatch},
		{"ES256 naming the RSA key", mint(t, p, devidp.MintClaims{}, devidp.WithAlgorithm(devidp.ES256),
			devidp.WithKeyID(p.CurrentKID(devidp.RS256))), errKeyMismatch},
		{"RS384 not allowed", mint(t, p, devidp.MintClaims{}, devidp.WithProviderKey(p.CurrentKID(devidp.RS256)),
			devidp.WithAlgorithm("RS384")), errAlgorithm},
		{"PS256 not allowed", mint(t, p, devidp.MintClaims{}, devidp.WithProviderKey(p.CurrentKID(devidp.RS256)),
			devidp.WithAlgorithm("PS256")), errAlgorithm},
		{"unknown alg", mint(t, p, devidp.MintClaims{}, devidp.WithHeader("alg", "XX999")), errAlgorithm},
		{"RS256 signature respelled in base64", sameBytes(good), errMalformed},
		{"ES256 signature respelled in base64", sameBytes(es256), errMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustRefuse(t, v, c.token, c.want)
		})
	}
	if n := attackerFetches.Load(); n != 0 {
		t.Errorf("the verifier fetched the attacker's jku/x5u %d times", n)
	}
	mustAuthenticate(t, v, good)
}

// Only an access token's typ passes: the identity provider signs other
// JWTs with the same keys, and one whose iss, aud and sub fit (a logout
// token, a security event token, ...) must not pass for an access token. Each is
// refused before its key is looked up.
func TestOnlyAnAccessTokensTypIsAccepted(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.TokenCache.Enabled = false
	v := readyVerifier(t, cfg, nil)

	for _, typ := range []string{"JWT", "jwt", "Jwt", "at+jwt", "AT+JWT", "application/at+jwt",
		"Application/AT+JWT", "application/jwt", "APPLICATION/JWT"} {
		t.Run("accepted "+typ, func(t *testing.T) {
			mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithHeader("typ", typ)))
		})
	}
	t.Run("accepted without typ", func(t *testing.T) {
		mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithoutHeader("typ")))
	})

	lookups := v.keyLookups.Load()
	for _, typ := range []any{"logout+jwt", "application/logout+jwt", "dpop+jwt", "secevent+jwt",
		"token-introspection+jwt", "oauth-authz-req+jwt", "id_token+jwt", "JOSE", "JOSE+JSON", "at+jwt; x=y",
		" at+jwt", "at+jwt ", "application/", "application/application/jwt", "text/jwt", "jwt+at", "",
		nil, 7, true, []string{"JWT"}, map[string]any{"typ": "JWT"}} {
		t.Run(fmt.Sprintf("refused %#v", typ), func(t *testing.T) {
			mustRefuse(t, v, mint(t, p, devidp.MintClaims{}, devidp.WithHeader("typ", typ)), errType)
		})
	}
	if n := v.keyLookups.Load() - lookups; n != 0 {
		t.Errorf("%d tokens of another type reached the key look-up", n)
	}
}

// HMAC and none are refused even when the configuration asks for them.
func TestNewRefusesUnsafeConfig(t *testing.T) {
	base := testConfig("http://127.0.0.1:1/jwks.json")
	cases := map[string]func(*config.Auth){
		"HS256":          func(c *config.Auth) { c.Algorithms = []string{"RS256", "HS256"} },
		"HS512":          func(c *config.Auth) { c.Algorithms = []string{"HS512"} },
		"none":           func(c *config.Auth) { c.Algorithms = []string{"none"} },
		"unknown alg":    func(c *config.Auth) { c.Algorithms = []string{"RS257"} },
		"no issuer":      func(c *config.Auth) { c.Issuer = "" },
		"no audience":    func(c *config.Auth) { c.Audiences = nil },
		"empty audience": func(c *config.Auth) { c.Audiences = []string{""} },
		"no JWKS URL":    func(c *config.Auth) { c.JWKSURLs = nil },
		"relative URL":   func(c *config.Auth) { c.JWKSURLs = []string{"/jwks.json"} },
		"file URL":       func(c *config.Auth) { c.JWKSURLs = []string{"file:///etc/jwks.json"} },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := base
			change(&cfg)
			v, err := New(cfg, nil, nil)
			if err == nil {
				v.Close()
				t.Fatal("New accepted it")
			}
		})
	}

	// Zero settings take the defaults; nil logger and observer are fine.
	v, err := New(config.Auth{JWKSURLs: base.JWKSURLs, Issuer: testIssuer, Audiences: []string{testAudience}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if !slices.Equal(v.cfg.algorithms, []string{"RS256", "ES256"}) || v.cfg.fetchTimeout != defaultFetchTimeout ||
		v.cfg.maxTokenBytes != defaultMaxTokenBytes || v.cfg.rolesClaim != "roles" || v.cache != nil {
		t.Errorf("defaults not applied: %+v", v.cfg)
	}
}

func TestRolesAndScopesClaims(t *testing.T) {
	p := startIDP(t)
	v := readyVerifier(t, testConfig(p.jwksURL()), nil)
	many := make([]string, 100)
	for i := range many {
		many[i] = "r" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	cases := []struct {
		name          string
		extra         map[string]any
		roles, scopes []string
	}{
		{"roles as space separated string", map[string]any{"roles": "user admin"}, []string{"user", "admin"}, nil},
		{"roles as comma separated string", map[string]any{"roles": "user,admin, editor"}, []string{"user", "admin", "editor"}, nil},
		{"roles array with junk", map[string]any{"roles": []any{"user", 7, "", "has space", strings.Repeat("x", 200), "bad\x00", "user", "admin"}},
			[]string{"user", "admin"}, nil},
		{"roles of the wrong type", map[string]any{"roles": map[string]any{"admin": true}}, nil, nil},
		// X-User-Roles is comma-separated: such a role could not be sent.
		{"roles array element with a comma", map[string]any{"roles": []any{"beta,tester", "user"}}, []string{"user"}, nil},
		{"absurd number of roles", map[string]any{"roles": many}, many[:maxClaimValues], nil},
		{"scope string", map[string]any{"scope": "users:read  users:write"}, nil, []string{"users:read", "users:write"}},
		{"scp array", map[string]any{"scp": []string{"users:read"}}, nil, []string{"users:read"}},
		{"scope wins over scp", map[string]any{"scope": "a", "scp": []string{"b"}}, nil, []string{"a"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := mustAuthenticate(t, v, mint(t, p, devidp.MintClaims{Extra: c.extra}))
			if !slices.Equal(id.Roles(), c.roles) || !slices.Equal(id.Scopes(), c.scopes) {
				t.Errorf("roles %q scopes %q, want %q %q", id.Roles(), id.Scopes(), c.roles, c.scopes)
			}
		})
	}

	cfg := testConfig(p.jwksURL())
	cfg.RolesClaim, cfg.ScopesClaim = "groups", "scp"
	v2 := readyVerifier(t, cfg, nil)
	id := mustAuthenticate(t, v2, mint(t, p, devidp.MintClaims{Roles: []string{"ignored"},
		Extra: map[string]any{"groups": []string{"ops"}, "scope": "fallback"}}))
	if !slices.Equal(id.Roles(), []string{"ops"}) || !slices.Equal(id.Scopes(), []string{"fallback"}) {
		t.Errorf("configured claim names: roles %q scopes %q", id.Roles(), id.Scopes())
	}
}

// The caller's header bytes are not kept: scribbling over them after the
// call changes nothing, and the cache does not answer for the scribble.
func TestAuthenticateKeepsNoCallerBytes(t *testing.T) {
	p := startIDP(t)
	v := readyVerifier(t, testConfig(p.jwksURL()), nil)
	token := mint(t, p, devidp.MintClaims{Roles: []string{"user"}})
	buf := []byte("Bearer " + token)
	id, err := v.Authenticate(context.Background(), [][]byte{buf})
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'A'
	}
	if id.Subject != demoSubject || id.Roles()[0] != "user" {
		t.Fatalf("identity changed with the caller's bytes: %+v", id)
	}
	if _, err := v.Authenticate(context.Background(), [][]byte{buf}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("scribbled header: %v", err)
	}
	if again := mustAuthenticate(t, v, token); again != id {
		t.Error("cache did not answer the real token with the same identity")
	}
}

func TestLogsNeverCarryTokens(t *testing.T) {
	p := startIDP(t)
	rec := &recorder{}
	v := readyVerifier(t, testConfig(p.jwksURL()), rec)
	tokens := []string{
		mint(t, p, devidp.MintClaims{}),
		mint(t, p, devidp.MintClaims{}, devidp.WithKeyID("unknown-kid")),
		mint(t, p, devidp.MintClaims{ExpiresAt: time.Now().Add(-time.Hour), IssuedAt: time.Now().Add(-2 * time.Hour)}),
		mint(t, p, devidp.MintClaims{}, devidp.WithAlgNone()),
	}
	for _, tok := range tokens {
		_, _ = authenticate(v, tok)
	}
	p.SetJWKSMode(devidp.JWKSGarbage)
	time.Sleep(250 * time.Millisecond) // let the unknown-kid limiter refill
	_, _ = authenticate(v, mint(t, p, devidp.MintClaims{}, devidp.WithKeyID("another-unknown")))
	logs := rec.logText()
	if !strings.Contains(logs, "JWKS fetch failed") {
		t.Fatalf("the failed refresh was not logged: %s", logs)
	}
	for _, tok := range tokens {
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 8 && strings.Contains(logs, part) {
				t.Fatalf("a token segment appears in the logs")
			}
		}
	}
}

func TestConcurrentAuthenticationDuringRotation(t *testing.T) {
	p := startIDP(t)
	cfg := testConfig(p.jwksURL())
	cfg.JWKS.RefreshInterval = 10 * time.Millisecond
	cfg.TokenCache.MaxEntries = 64
	v := readyVerifier(t, cfg, nil)
	tokens := make([]string, 32)
	for i := range tokens {
		alg := devidp.RS256
		if i%2 == 1 {
			alg = devidp.ES256
		}
		tokens[i] = mint(t, p, devidp.MintClaims{Subject: "user-" + strconv.Itoa(i)}, devidp.WithAlgorithm(alg))
	}
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if _, err := authenticate(v, tokens[(i+w)%len(tokens)]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 3 {
		if _, err := p.Rotate(devidp.ES256); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	close(stop)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("a token signed by a still-published key failed during rotation: %v", err)
		}
	}
}

// padTo lengthens s to n bytes with 'A's (a longer last segment), so a
// header sits exactly at a length bound.
func padTo(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return s + strings.Repeat("A", n-len(s))
}
