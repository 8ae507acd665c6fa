package e2e

// Issue 2, authentication: the real gateway binary against a real JWKS on
// loopback (RSA and EC keys from the development identity provider). Good
// tokens pass in every header form the apps use; every bad one is the same
// 401 envelope that says nothing about why, and never reaches the store;
// keys rotate, and a JWKS that is down at start or fails later is handled
// without a restart and without dropping keys.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/bffgate/edge/upstream/devidp"
	"github.com/bffgate/edge/upstream/refstore"
)

// fndMintSeq makes every minted token unique, so no verification is
// answered from the gateway's verified-token cache by accident.
var fndMintSeq atomic.Int64

func fndMint(t *testing.T, idp *devidp.Provider, c devidp.MintClaims, opts ...devidp.MintOption) string {
	t.Helper()
	if c.Subject == "" {
		c.Subject = refstore.DemoUserID
	}
	if c.Roles == nil {
		c.Roles = []string{"user"}
	}
	extra := map[string]any{"jti": fmt.Sprintf("fnd-%d", fndMintSeq.Add(1))}
	for k, v := range c.Extra {
		extra[k] = v
	}
	c.Extra = extra
	tok, err := idp.Mint(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// fndTamper changes one character in the middle of segment i of a token.
func fndTamper(t *testing.T, tok string, i int) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	seg := []byte(parts[i])
	mid := len(seg) / 2
	if seg[mid] == 'A' {
		seg[mid] = 'B'
	} else {
		seg[mid] = 'A'
	}
	parts[i] = string(seg)
	return strings.Join(parts, ".")
}

// fndResign swaps the payload of a good token for another (here: a
// different subject), keeping the original signature.
func fndResign(t *testing.T, tok, sub string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = sub
	claims["roles"] = []string{"user", "admin"}
	raw, _ = json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// The two challenges of a 401 (RFC 6750 section 3.1): a request without a
// bearer token gets the scheme and realm alone; one whose token was
// refused, for whatever reason, gets error="invalid_token" and nothing
// about why.
const (
	fndNoToken      = `Bearer realm="api"`
	fndInvalidToken = `Bearer realm="api", error="invalid_token"`
)

// fndUnauthorized checks the 401 every rejection gets, with the challenge
// it names, in English and (asked again) in Turkish.
func fndUnauthorized(t *testing.T, gw *Gateway, challenge string, opts ...ReqOpt) {
	t.Helper()
	r := gw.Do(t, http.MethodGet, "/api/v1/users/me", opts...)
	fndOnly(t, r, http.StatusUnauthorized, "Authentication required")
	if got := r.Header.Get("WWW-Authenticate"); got != challenge {
		t.Fatalf("WWW-Authenticate %q, want exactly %s (nothing about why)", got, challenge)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("a 401 with Cache-Control %q, want no-store: no cache may answer with it later", cc)
	}
	r = gw.Do(t, http.MethodGet, "/api/v1/users/me", append(opts, Lang("tr"))...)
	fndOnly(t, r, http.StatusUnauthorized, "Kimlik doğrulaması gerekli")
	if got := r.Header.Get("WWW-Authenticate"); got != challenge {
		t.Fatalf("WWW-Authenticate %q on the Turkish 401, want %s", got, challenge)
	}
}

// fndReadyz reads the ops listener's readiness.
func fndReadyz(t *testing.T, gw *Gateway) *Response {
	t.Helper()
	return gw.Ops(t, http.MethodGet, "/readyz")
}

func TestFoundationAuthValidTokens(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{"GATEWAY_CACHE__ENABLED": "false"}})

	for _, alg := range []string{devidp.RS256, devidp.ES256} {
		for _, form := range []struct {
			name string
			opt  func(string) ReqOpt
		}{
			{"Bearer x", Bearer},
			{"bare x", Bare},
			{"bearer x", func(tok string) ReqOpt { return Header("Authorization", "bearer "+tok) }},
			{"BEARER   x", func(tok string) ReqOpt { return Header("Authorization", "BEARER   "+tok) }},
		} {
			t.Run(alg+" "+form.name, func(t *testing.T) {
				tok := fndMint(t, idp.Provider, devidp.MintClaims{}, devidp.WithAlgorithm(alg))
				store.Reset(t)
				var me struct{ ID string }
				gw.Do(t, http.MethodGet, "/api/v1/users/me", form.opt(tok)).Data(t, &me)
				if me.ID != refstore.DemoUserID {
					t.Fatalf("me.id %q", me.ID)
				}
				reqs := store.Requests(t)
				if len(reqs) == 0 {
					t.Fatal("the store saw nothing")
				}
				for _, rec := range reqs {
					fndWantHeader(t, rec.Headers, "X-User-Id", refstore.DemoUserID)
					if rec.Authorization {
						t.Fatal("the client's token was forwarded to the store")
					}
				}
			})
		}
	}

	// An access token typed as RFC 9068 has it, or not typed at all.
	for _, opt := range []devidp.MintOption{devidp.WithHeader("typ", "at+jwt"), devidp.WithHeader("typ", "application/at+jwt"),
		devidp.WithoutHeader("typ")} {
		gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(fndMint(t, idp.Provider, devidp.MintClaims{}, opt))).Data(t, nil)
	}

	// Leeway: a token that expired 10 s ago still passes (auth.leeway 30s),
	// one issued 10 s "in the future" by a skewed clock too.
	now := time.Now()
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(fndMint(t, idp.Provider, devidp.MintClaims{
		IssuedAt: now.Add(-10 * time.Minute), ExpiresAt: now.Add(-10 * time.Second)}))).Data(t, nil)
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(fndMint(t, idp.Provider, devidp.MintClaims{
		IssuedAt: now.Add(10 * time.Second), NotBefore: now.Add(10 * time.Second)}))).Data(t, nil)
}

// What the token says reaches the store as it is, or the token is refused:
// a subject with a space at either end would reach it trimmed (HTTP trims
// header values), as another user, so it is refused before any call; a
// role that holds the X-User-Roles separator is dropped, not sent broken
// nor made to fail every call of its user.
func TestFoundationAuthClaimsReachTheStoreUnchanged(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{"GATEWAY_CACHE__ENABLED": "false"}})

	for _, sub := range []string{" " + refstore.DemoUserID, refstore.DemoUserID + " "} {
		store.Reset(t)
		r := gw.Do(t, http.MethodPost, "/api/v1/users/check-username",
			Bearer(idp.Token(t, sub, "user")), JSONBody(`{"username":"padded_subject"}`))
		r.Failure(t, http.StatusUnauthorized, "Authentication required")
		if reqs := store.Requests(t); len(reqs) != 0 {
			t.Errorf("subject %q: the store was called as %q", sub, reqs[0].Headers["X-User-Id"])
		}
	}

	tok := idp.Token(t, refstore.DemoUserID, "user", "beta,tester")
	for _, path := range []string{"/api/v1/users/me", "/api/v2/users/search?query=ali"} {
		store.Reset(t)
		gw.Do(t, http.MethodGet, path, Bearer(tok)).Data(t, nil)
		for _, rec := range store.Requests(t) {
			fndWantHeader(t, rec.Headers, "X-User-Roles", "user")
		}
	}
}

// fndWithoutToken names the cases of TestFoundationAuthRejections that
// carry no bearer token: no header, an empty one, the scheme alone, or
// another scheme (RFC 6750: no error code for them).
var fndWithoutToken = []string{"no Authorization header", "empty Authorization header",
	"Bearer with nothing", "Bearer alone", "Basic scheme", "Basic scheme with a JWT"}

// Every rejection: the same 401, WWW-Authenticate, and no call reaching
// the store.
func TestFoundationAuthRejections(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{
		"GATEWAY_AUTH__MAXTOKENBYTES":            "2KiB",
		"GATEWAY_AUTH__JWKS__UNKNOWNKIDINTERVAL": "50ms",
		"GATEWAY_AUTH__JWKS__UNKNOWNKIDWAIT":     "500ms",
		"GATEWAY_CACHE__ENABLED":                 "false",
	}})
	mint := func(c devidp.MintClaims, opts ...devidp.MintOption) string {
		return fndMint(t, idp.Provider, c, opts...)
	}
	now := time.Now()
	good := mint(devidp.MintClaims{})

	// An attacker's own provider, serving its own JWKS: tokens that point
	// the gateway at it (jku, x5u) or carry its key inline (jwk).
	attacker, err := devidp.New(devidp.Options{Issuer: idp.URL, Audience: "edge-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	attackerSrv := httptest.NewServer(attacker.Handler())
	t.Cleanup(attackerSrv.Close)
	attackerJWKS := attackerSrv.URL + "/.well-known/jwks.json"
	foreignRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	foreignEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	foreignJWK, err := jwkset.NewJWKFromKey(foreignRSA.Public(), jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.ALG(devidp.RS256), KID: "attacker-inline"}})
	if err != nil {
		t.Fatal(err)
	}
	attackerMint := func(opts ...devidp.MintOption) string { return fndMint(t, attacker, devidp.MintClaims{}, opts...) }

	cases := []struct {
		name string
		opts []ReqOpt
	}{
		{"no Authorization header", nil},
		{"empty Authorization header", []ReqOpt{Header("Authorization", "")}},
		{"Bearer with nothing", []ReqOpt{Header("Authorization", "Bearer ")}},
		{"Bearer alone", []ReqOpt{Header("Authorization", "Bearer")}},
		{"Basic scheme", []ReqOpt{Header("Authorization", "Basic abc")}},
		{"Basic scheme with a JWT", []ReqOpt{Header("Authorization", "Basic "+good)}},
		{"token and junk", []ReqOpt{Header("Authorization", "Bearer "+good+" extra")}},
		{"token over auth.maxTokenBytes", []ReqOpt{Bearer(mint(devidp.MintClaims{Extra: map[string]any{"pad": strings.Repeat("p", 2<<10)}}))}},
		{"expired", []ReqOpt{Bearer(mint(devidp.MintClaims{IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}))}},
		{"expired beyond the leeway", []ReqOpt{Bearer(mint(devidp.MintClaims{IssuedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute)}))}},
		{"not yet valid (nbf)", []ReqOpt{Bearer(mint(devidp.MintClaims{NotBefore: now.Add(time.Hour)}))}},
		{"issued in the future (iat)", []ReqOpt{Bearer(mint(devidp.MintClaims{IssuedAt: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour)}))}},
		{"wrong issuer", []ReqOpt{Bearer(mint(devidp.MintClaims{Issuer: "http://evil.example"}))}},
		{"wrong audience", []ReqOpt{Bearer(mint(devidp.MintClaims{Audience: []string{"another-api"}}))}},
		{"missing exp", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithoutClaims("exp")))}},
		{"missing iss", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithoutClaims("iss")))}},
		{"missing aud", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithoutClaims("aud")))}},
		{"missing sub", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithoutClaims("sub")))}},
		{"unknown kid", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithKeyID("rs256-0000000000000000")))}},
		{"no kid", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithoutKeyID()))}},
		{"tampered signature", []ReqOpt{Bearer(fndTamper(t, good, 2))}},
		{"tampered ES256 signature", []ReqOpt{Bearer(fndTamper(t, mint(devidp.MintClaims{}, devidp.WithAlgorithm(devidp.ES256)), 2))}},
		{"payload swapped under a good signature", []ReqOpt{Bearer(fndResign(t, good, refstore.DemoAdminID))}},
		{"alg none", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithAlgNone()))}},
		{"alg none, bare", []ReqOpt{Bare(mint(devidp.MintClaims{}, devidp.WithAlgNone()))}},
		{"HS256 keyed with the RSA public key", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithHS256PublicKey()))}},
		{"RS256 by a foreign key under our kid", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithSigningKey(foreignRSA)))}},
		{"ES256 by a foreign key under our kid", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithSigningKey(foreignEC)))}},
		{"ES256 naming the RSA key's kid", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithAlgorithm(devidp.ES256), devidp.WithKeyID(idp.CurrentKID(devidp.RS256))))}},
		{"own jwk header, foreign key", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithSigningKey(foreignRSA),
			devidp.WithKeyID("attacker-inline"), devidp.WithHeader("jwk", foreignJWK.Marshal())))}},
		{"own jwk header, our kid", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithSigningKey(foreignRSA),
			devidp.WithHeader("jwk", foreignJWK.Marshal())))}},
		{"jku to the attacker's JWKS", []ReqOpt{Bearer(attackerMint(devidp.WithHeader("jku", attackerJWKS)))}},
		{"x5u to the attacker", []ReqOpt{Bearer(attackerMint(devidp.WithHeader("x5u", attackerSrv.URL+"/cert.pem")))}},
		{"crit header", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithHeader("crit", []string{"exp"})))}},
		{"crit header with unknown extension", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithHeader("crit", []string{"b64"}), devidp.WithHeader("b64", false)))}},
		// Other JWTs the identity provider signs with the same keys, whose
		// iss, aud and sub fit: not access tokens (RFC 8725 section 3.11).
		{"logout token (typ logout+jwt)", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithHeader("typ", "logout+jwt")))}},
		{"typ dpop+jwt", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithHeader("typ", "dpop+jwt")))}},
		{"security event token (typ application/secevent+jwt)", []ReqOpt{Bearer(mint(devidp.MintClaims{}, devidp.WithHeader("typ", "application/secevent+jwt")))}},
		{"one part", []ReqOpt{Bearer("eyJhbGciOiJSUzI1NiJ9")}},
		{"two parts", []ReqOpt{Bearer(strings.Join(strings.Split(good, ".")[:2], "."))}},
		{"four parts", []ReqOpt{Bearer(good + ".AAAA")}},
		{"empty payload", []ReqOpt{Bearer(strings.Split(good, ".")[0] + "..sig")}},
		{"bad base64", []ReqOpt{Bearer("!!!.@@@.###")}},
		{"padded base64", []ReqOpt{Bearer(strings.Split(good, ".")[0] + "=." + strings.Split(good, ".")[1] + "." + strings.Split(good, ".")[2])}},
		{"base64 of junk JSON", []ReqOpt{Bearer("e30.bm90IGpzb24.c2ln")}},
		{"JSON array header", []ReqOpt{Bearer(base64.RawURLEncoding.EncodeToString([]byte(`["RS256"]`)) + "." + strings.Split(good, ".")[1] + "." + strings.Split(good, ".")[2])}},
		{"the ID of the user instead of a token", []ReqOpt{Bare(refstore.DemoUserID)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			challenge := fndInvalidToken
			if slices.Contains(fndWithoutToken, c.name) {
				challenge = fndNoToken
			}
			fndUnauthorized(t, gw, challenge, c.opts...)
			if n := store.Total(t); n != 0 {
				t.Fatalf("a rejected token reached the store (%d calls)", n)
			}
		})
	}
	if n := attacker.JWKSFetches(); n != 0 {
		t.Fatalf("the gateway fetched the attacker's JWKS %d times", n)
	}

	// Two Authorization headers, even both good: Authorization is no list
	// field, so the request is malformed (RFC 9110 section 5.3), a 400 with
	// error="invalid_request" (RFC 6750 section 3.1), in the caller's
	// language; neither token is used.
	for lang, want := range map[string][]string{
		"en": {"Validation failed", "the Authorization header must be given once"},
		"tr": {"Doğrulama başarısız oldu", "Authorization başlığı yalnızca bir kez verilmelidir"},
	} {
		r := gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(good), Bearer(good), Lang(lang))
		fndOnly(t, r, http.StatusBadRequest, want...)
		if got := r.Header.Get("WWW-Authenticate"); got != `Bearer realm="api", error="invalid_request"` {
			t.Fatalf("two Authorization headers: WWW-Authenticate %q", got)
		}
	}
	if n := store.Total(t); n != 0 {
		t.Fatalf("a request with two Authorization headers reached the store (%d calls)", n)
	}

	// The control: the same gateway takes good tokens, so the 401s above
	// were about the tokens, not the set-up; and a token just under the
	// size bound is fine.
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(good)).Data(t, nil)
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(mint(devidp.MintClaims{Extra: map[string]any{"pad": strings.Repeat("p", 400)}}))).Data(t, nil)
}

// Rotation at the identity provider: a token signed by the new key names
// a kid the gateway has not seen; the kid miss triggers a refresh and the
// token is accepted, without a restart. Tokens of the old key keep working
// while it is published; once it is withdrawn (and the gateway refreshed)
// they are refused, cached verifications included.
func TestFoundationAuthKeyRotation(t *testing.T) {
	// auth.jwks.unknownKIDInterval is 50ms here: one kid-miss refresh per
	// 50ms, by design, so each step starts after the interval.
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{
		"GATEWAY_AUTH__JWKS__UNKNOWNKIDINTERVAL": "50ms",
		"GATEWAY_AUTH__JWKS__UNKNOWNKIDWAIT":     "2s",
		"GATEWAY_CACHE__ENABLED":                 "false",
	}})

	for _, alg := range []string{devidp.RS256, devidp.ES256} {
		t.Run(alg, func(t *testing.T) {
			oldKID := idp.CurrentKID(alg)
			old := fndMint(t, idp.Provider, devidp.MintClaims{}, devidp.WithAlgorithm(alg))
			gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(old)).Data(t, nil)

			newKID, err := idp.Rotate(alg)
			if err != nil {
				t.Fatal(err)
			}
			fndAfterKIDInterval()
			before := idp.JWKSFetches()
			fresh := fndMint(t, idp.Provider, devidp.MintClaims{}, devidp.WithAlgorithm(alg))
			if !strings.Contains(fresh, ".") || newKID == oldKID {
				t.Fatal("rotation made no new key")
			}
			// The first request with the new kid waits for the refresh and passes.
			gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(fresh)).Data(t, nil)
			if idp.JWKSFetches() <= before {
				t.Fatal("the new key was accepted without a JWKS fetch")
			}
			// The old key is still published: its tokens still pass.
			gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(old)).Data(t, nil)

			// Withdraw the old key; the next kid miss refreshes the set.
			idp.RemoveKey(oldKID)
			if _, err := idp.Rotate(alg); err != nil {
				t.Fatal(err)
			}
			fndAfterKIDInterval()
			gw.Do(t, http.MethodGet, "/api/v1/users/me",
				Bearer(fndMint(t, idp.Provider, devidp.MintClaims{}, devidp.WithAlgorithm(alg)))).Data(t, nil)
			fndUnauthorized(t, gw, fndInvalidToken, Bearer(old))
			fndUnauthorized(t, gw, fndInvalidToken, Bearer(fndMint(t, idp.Provider, devidp.MintClaims{}, devidp.WithProviderKey(newKID), devidp.WithKeyID(oldKID))))
			gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(fresh)).Data(t, nil)
		})
	}
}

// The gateway starts while the JWKS is unreachable: not ready (naming
// auth), protected routes answer 503 with Retry-After, requests without a
// token are still 401, and once the JWKS comes up the gateway recovers by
// itself.
func TestFoundationAuthJWKSDownAtStart(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		store := StartStore(t, nil)
		idp := StartIdP(t)
		// A port that refuses connections until the test listens on it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, NoReadyWait: true,
			JWKSURL: "http://" + addr + "/.well-known/jwks.json",
			Env:     map[string]string{"GATEWAY_AUTH__JWKS__RETRYINTERVAL": "100ms"}})
		fndUnavailableUntilJWKS(t, gw, store, idp, func() {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("the reserved port %s was taken meanwhile (rerun): %v", addr, err)
			}
			srv := httptest.NewUnstartedServer(idp.Handler())
			srv.Listener.Close()
			srv.Listener = ln
			srv.Start()
			t.Cleanup(srv.Close)
		})
	})
	t.Run("503", func(t *testing.T) {
		store := StartStore(t, nil)
		idp := StartIdP(t)
		idp.SetJWKSMode(devidp.JWKSStatus(http.StatusServiceUnavailable))
		gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, NoReadyWait: true,
			Env: map[string]string{"GATEWAY_AUTH__JWKS__RETRYINTERVAL": "100ms"}})
		fndUnavailableUntilJWKS(t, gw, store, idp, func() { idp.SetJWKSMode(devidp.JWKSNormal) })
	})
	t.Run("hanging", func(t *testing.T) {
		// Accepts the connection, never answers: the gateway must not wait
		// for it to start, and each fetch gives up at fetchTimeout.
		store := StartStore(t, nil)
		idp := StartIdP(t)
		idp.SetJWKSMode(devidp.JWKSSlow(time.Minute))
		gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, NoReadyWait: true,
			Env: map[string]string{"GATEWAY_AUTH__JWKS__RETRYINTERVAL": "100ms", "GATEWAY_AUTH__JWKS__FETCHTIMEOUT": "200ms"}})
		fndUnavailableUntilJWKS(t, gw, store, idp, func() { idp.SetJWKSMode(devidp.JWKSNormal) })
	})
	t.Run("empty key set", func(t *testing.T) {
		store := StartStore(t, nil)
		idp := StartIdP(t)
		idp.SetJWKSMode(devidp.JWKSEmpty)
		gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, NoReadyWait: true,
			Env: map[string]string{"GATEWAY_AUTH__JWKS__RETRYINTERVAL": "100ms"}})
		fndUnavailableUntilJWKS(t, gw, store, idp, func() { idp.SetJWKSMode(devidp.JWKSNormal) })
	})
}

func fndUnavailableUntilJWKS(t *testing.T, gw *Gateway, store *Store, idp *IdP, bringUp func()) {
	t.Helper()
	// Give the first fetch time to fail, so the reason is the failure.
	eventually(t, 5*time.Second, func() error {
		r := fndReadyz(t, gw)
		if !strings.Contains(string(r.Body), "auth: no identity provider keys loaded yet: http") {
			return fmt.Errorf("readyz %d %s", r.Status, r.Body)
		}
		return nil
	})
	r := fndReadyz(t, gw)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d while no keys are loaded: %s", r.Status, r.Body)
	}
	e := r.Envelope(t)
	if !strings.Contains(strings.Join(e.Errors, "\n"), "auth: ") {
		t.Fatalf("readyz does not name auth: %s", r.Body)
	}
	if h := gw.Ops(t, http.MethodGet, "/healthz"); h.Status != http.StatusOK {
		t.Fatalf("healthz %d: the process is alive and must say so", h.Status)
	}

	tok := idp.UserToken(t)
	for _, opt := range []ReqOpt{Bearer(tok), Bare(tok)} {
		r := gw.Do(t, http.MethodGet, "/api/v1/users/me", opt)
		fndOnly(t, r, http.StatusServiceUnavailable, "Authentication is temporarily unavailable, please try again later")
		if r.Header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
		if r.Header.Get("WWW-Authenticate") != "" {
			t.Fatal("a 503 for missing keys must not ask for credentials")
		}
	}
	fndOnly(t, gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(tok), Lang("tr")), http.StatusServiceUnavailable,
		"Kimlik doğrulama geçici olarak kullanılamıyor, lütfen daha sonra tekrar deneyin")
	fndOnly(t, gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(tok), JSONBody(`{"username":"waiting"}`)),
		http.StatusServiceUnavailable, "Authentication is temporarily unavailable, please try again later")
	// Without a token (or with junk) the answer is 401 whatever the keys.
	fndUnauthorized(t, gw, fndNoToken)
	fndUnauthorized(t, gw, fndInvalidToken, Bearer("junk"))
	if n := store.Total(t); n != 0 {
		t.Fatalf("the store was called %d times without verified callers", n)
	}

	bringUp()
	gw.AwaitReady(t)
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(tok)).Data(t, nil)
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bare(fndMint(t, idp.Provider, devidp.MintClaims{}, devidp.WithAlgorithm(devidp.ES256)))).Data(t, nil)
	if r := fndReadyz(t, gw); r.Status != http.StatusOK {
		t.Fatalf("readyz %d after recovery: %s", r.Status, r.Body)
	}
}

// Keys loaded, then the JWKS misbehaves: every failure keeps the keys, so
// tokens keep working and readiness stays true.
func TestFoundationAuthJWKSFailingLaterKeepsKeys(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp, Env: map[string]string{
		"GATEWAY_AUTH__JWKS__REFRESHINTERVAL": "50ms",
		"GATEWAY_AUTH__JWKS__FETCHTIMEOUT":    "300ms",
		"GATEWAY_CACHE__ENABLED":              "false",
	}})
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(idp.UserToken(t))).Data(t, nil)

	for _, mode := range []devidp.JWKSMode{
		devidp.JWKSStatus(http.StatusServiceUnavailable),
		devidp.JWKSStatus(http.StatusNotFound),
		devidp.JWKSGarbage,
		devidp.JWKSHTML,
		devidp.JWKSEmpty,
		devidp.JWKSOversized,
		devidp.JWKSSlow(2 * time.Second),
	} {
		t.Run(mode.String(), func(t *testing.T) {
			idp.SetJWKSMode(mode)
			// Let at least two fetches start in this mode, so one has ended.
			start := idp.JWKSFetches()
			eventually(t, 10*time.Second, func() error {
				if n := idp.JWKSFetches() - start; n < 3 {
					return fmt.Errorf("%d fetches in mode %s", n, mode)
				}
				return nil
			})
			for _, alg := range []string{devidp.RS256, devidp.ES256} {
				tok := fndMint(t, idp.Provider, devidp.MintClaims{}, devidp.WithAlgorithm(alg))
				gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(tok)).Data(t, nil)
			}
			if r := fndReadyz(t, gw); r.Status != http.StatusOK {
				t.Fatalf("readyz %d with keys loaded and the JWKS failing (%s): %s", r.Status, mode, r.Body)
			}
			idp.SetJWKSMode(devidp.JWKSNormal)
		})
	}
}

// fndAfterKIDInterval waits out the unknown-kid refresh interval (50ms in
// these tests): the verifier allows one kid-miss refresh per interval by
// design, and the rotation steps must not fall inside the previous one's.
func fndAfterKIDInterval() { time.Sleep(100 * time.Millisecond) }
