package devidp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/bffgate/edge/upstream/devidp"
)

const (
	issuer   = "http://idp.test"
	audience = "edge-gateway"
)

func newProvider(t *testing.T) (*devidp.Provider, *httptest.Server) {
	t.Helper()
	p, err := devidp.New(devidp.Options{Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	return p, srv
}

// fetchJWKS reads the published set the way a verifier would.
func fetchJWKS(t *testing.T, srv *httptest.Server) (jwkset.JWKSMarshal, *http.Response) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jwkset.JWKSMarshal
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatalf("JWKS is not JSON: %v: %q", err, body)
		}
	}
	return set, resp
}

// verifyWithJWKS checks a token against the published keys.
func verifyWithJWKS(t *testing.T, srv *httptest.Server, token string) (jwt.MapClaims, error) {
	t.Helper()
	set, _ := fetchJWKS(t, srv)
	store, err := set.ToStorage()
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		jwk, err := store.KeyRead(context.Background(), tok.Header["kid"].(string))
		if err != nil {
			return nil, err
		}
		return jwk.Key(), nil
	}, jwt.WithValidMethods([]string{"RS256", "ES256"}))
	return claims, err
}

func TestNewNeedsIssuerAndAudience(t *testing.T) {
	for _, o := range []devidp.Options{{Audience: audience}, {Issuer: issuer}, {Issuer: " ", Audience: audience}} {
		if _, err := devidp.New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

func TestJWKSPublishesPublicKeysWithKidAlgUse(t *testing.T) {
	p, srv := newProvider(t)
	set, resp := fetchJWKS(t, srv)
	if ct := resp.Header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("content type %q", ct)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("want 2 keys, got %d", len(set.Keys))
	}
	algs := map[jwkset.ALG]jwkset.KTY{}
	for _, k := range set.Keys {
		if k.KID == "" || k.USE != jwkset.UseSig {
			t.Errorf("key %+v lacks kid or use=sig", k)
		}
		if k.D != "" || k.P != "" || k.Q != "" {
			t.Errorf("key %s publishes private material", k.KID)
		}
		algs[k.ALG] = k.KTY
	}
	if algs["RS256"] != jwkset.KtyRSA || algs["ES256"] != jwkset.KtyEC {
		t.Errorf("want an RSA RS256 and an EC ES256 key, got %v", algs)
	}
	keys := p.Keys()
	if len(keys) != 2 || !keys[0].Current || !keys[1].Current {
		t.Errorf("Keys() = %+v", keys)
	}
	if p.JWKSFetches() != 1 {
		t.Errorf("JWKSFetches = %d, want 1", p.JWKSFetches())
	}
}

func TestMintDefaultsAndClaims(t *testing.T) {
	p, srv := newProvider(t)
	before := time.Now().Add(-time.Second)
	for _, alg := range []string{devidp.RS256, devidp.ES256} {
		token, err := p.Mint(devidp.MintClaims{
			Subject: "user-1", Roles: []string{"user", "admin"}, Scopes: []string{"a", "b"},
			Extra: map[string]any{"tenant": "t1"},
		}, devidp.WithAlgorithm(alg))
		if err != nil {
			t.Fatal(err)
		}
		claims, err := verifyWithJWKS(t, srv, token)
		if err != nil {
			t.Fatalf("%s token does not verify with the JWKS: %v", alg, err)
		}
		if claims["iss"] != issuer || claims["aud"] != audience || claims["sub"] != "user-1" ||
			claims["scope"] != "a b" || claims["tenant"] != "t1" {
			t.Errorf("claims %v", claims)
		}
		if _, ok := claims["nbf"]; ok {
			t.Error("nbf written though not asked for")
		}
		iat, _ := claims.GetIssuedAt()
		exp, _ := claims.GetExpirationTime()
		if iat.Before(before) || exp.Sub(iat.Time) != devidp.DefaultTTL {
			t.Errorf("iat %v exp %v", iat, exp)
		}
		parsed, _, _ := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
		if parsed.Header["alg"] != alg || parsed.Header["kid"] != p.CurrentKID(alg) {
			t.Errorf("header %v", parsed.Header)
		}
	}
}

func TestMintAudienceListAndOmittedClaims(t *testing.T) {
	p, _ := newProvider(t)
	token, err := p.Mint(devidp.MintClaims{Subject: "s", Audience: []string{"x", "y"}, NotBefore: time.Unix(100, 0)},
		devidp.WithoutClaims("exp", "sub"))
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		t.Fatal(err)
	}
	aud, _ := claims.GetAudience()
	if !slices.Equal(aud, []string{"x", "y"}) || claims["nbf"] != float64(100) {
		t.Errorf("claims %v", claims)
	}
	if _, ok := claims["exp"]; ok {
		t.Error("exp not omitted")
	}
	if _, ok := claims["sub"]; ok {
		t.Error("sub not omitted")
	}
}

func TestMintHostileHeaders(t *testing.T) {
	p, _ := newProvider(t)
	header := func(token string) map[string]any {
		t.Helper()
		parsed, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		return parsed.Header
	}
	tok, _ := p.Mint(devidp.MintClaims{Subject: "s"}, devidp.WithKeyID("other"), devidp.WithHeader("crit", []string{"exp"}),
		devidp.WithHeader("jku", "https://evil.test/jwks.json"))
	h := header(tok)
	if h["kid"] != "other" || h["jku"] != "https://evil.test/jwks.json" || h["crit"] == nil {
		t.Errorf("header %v", h)
	}
	tok, _ = p.Mint(devidp.MintClaims{Subject: "s"}, devidp.WithoutKeyID())
	if _, ok := header(tok)["kid"]; ok {
		t.Error("kid not omitted")
	}
	tok, _ = p.Mint(devidp.MintClaims{Subject: "s"}, devidp.WithHeader("typ", "dpop+jwt"), devidp.WithoutHeader("typ"))
	if _, ok := header(tok)["typ"]; ok {
		t.Error("typ not omitted")
	}

	tok, err := p.Mint(devidp.MintClaims{Subject: "s"}, devidp.WithAlgNone())
	if err != nil {
		t.Fatal(err)
	}
	if header(tok)["alg"] != "none" || !strings.HasSuffix(tok, ".") {
		t.Errorf("alg none token %q", tok)
	}

	tok, err = p.Mint(devidp.MintClaims{Subject: "s"}, devidp.WithHS256PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := p.PublicKey(p.CurrentKID(devidp.RS256))
	der, _ := x509.MarshalPKIXPublicKey(pub)
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return secret, nil }); err != nil {
		t.Errorf("HS256 confusion token is not HMAC'd with the public key PEM: %v", err)
	}

	foreign, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok, err = p.Mint(devidp.MintClaims{Subject: "s"}, devidp.WithSigningKey(foreign))
	if err != nil {
		t.Fatal(err)
	}
	if h := header(tok); h["alg"] != "ES256" || h["kid"] != p.CurrentKID(devidp.ES256) {
		t.Errorf("foreign-key header %v", h)
	}
	if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return &foreign.PublicKey, nil }); err != nil {
		t.Errorf("foreign-key token not signed by the foreign key: %v", err)
	}
}

func TestRotateAndRemoveKey(t *testing.T) {
	p, srv := newProvider(t)
	oldKID := p.CurrentKID(devidp.RS256)
	oldToken, _ := p.Mint(devidp.MintClaims{Subject: "s"})
	newKID, err := p.Rotate(devidp.RS256)
	if err != nil {
		t.Fatal(err)
	}
	if newKID == oldKID || p.CurrentKID(devidp.RS256) != newKID {
		t.Fatalf("rotation did not make %s current", newKID)
	}
	if set, _ := fetchJWKS(t, srv); len(set.Keys) != 3 {
		t.Fatalf("want 3 published keys after rotation, got %d", len(set.Keys))
	}
	if _, err := verifyWithJWKS(t, srv, oldToken); err != nil {
		t.Errorf("old token fails while its key is published: %v", err)
	}
	byOld, err := p.Mint(devidp.MintClaims{Subject: "s"}, devidp.WithProviderKey(oldKID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyWithJWKS(t, srv, byOld); err != nil {
		t.Errorf("token by the old key: %v", err)
	}

	if !p.RemoveKey(newKID) || p.RemoveKey(newKID) {
		t.Fatal("RemoveKey reported wrongly")
	}
	if p.CurrentKID(devidp.RS256) != oldKID {
		t.Errorf("current RS256 key after removing the newest = %q, want %q", p.CurrentKID(devidp.RS256), oldKID)
	}
	p.RemoveKey(oldKID)
	if _, err := p.Mint(devidp.MintClaims{Subject: "s"}); err == nil {
		t.Error("minting RS256 with no RSA key succeeded")
	}
	if _, err := verifyWithJWKS(t, srv, oldToken); err == nil {
		t.Error("token of a removed key still verifies")
	}
	if _, err := p.Rotate("HS256"); err == nil {
		t.Error("Rotate(HS256) succeeded")
	}
}

func TestJWKSModes(t *testing.T) {
	p, srv := newProvider(t)
	get := func() (*http.Response, []byte) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}

	p.SetJWKSMode(devidp.JWKSEmpty)
	if _, body := get(); string(body) != `{"keys":[]}` {
		t.Errorf("empty: %q", body)
	}
	p.SetJWKSMode(devidp.JWKSGarbage)
	if _, body := get(); json.Valid(body) {
		t.Errorf("garbage is valid JSON: %q", body)
	}
	p.SetJWKSMode(devidp.JWKSHTML)
	if resp, body := get(); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(body), "<html>") {
		t.Errorf("html: %d %q", resp.StatusCode, body)
	}
	p.SetJWKSMode(devidp.JWKSStatus(503))
	if resp, _ := get(); resp.StatusCode != 503 {
		t.Errorf("status mode answered %d", resp.StatusCode)
	}
	p.SetJWKSMode(devidp.JWKSOversized)
	resp, body := get()
	var set jwkset.JWKSMarshal
	if resp.StatusCode != 200 || len(body) < devidp.OversizedBytes || json.Unmarshal(body, &set) != nil || len(set.Keys) != 2 {
		t.Errorf("oversized: %d, %d bytes, %d keys", resp.StatusCode, len(body), len(set.Keys))
	}

	p.SetJWKSMode(devidp.JWKSSlow(5 * time.Second))
	client := &http.Client{Timeout: 50 * time.Millisecond}
	if _, err := client.Get(srv.URL + "/.well-known/jwks.json"); err == nil {
		t.Error("slow mode answered within 50ms")
	}
	client.CloseIdleConnections()
	p.SetJWKSMode(devidp.JWKSSlow(10 * time.Millisecond))
	if resp, body := get(); resp.StatusCode != 200 || json.Unmarshal(body, &set) != nil {
		t.Errorf("short slow mode: %d %q", resp.StatusCode, body)
	}

	p.SetJWKSMode(devidp.JWKSNormal)
	if set, _ := fetchJWKS(t, srv); len(set.Keys) != 2 {
		t.Errorf("normal after faults: %d keys", len(set.Keys))
	}
	if got := p.JWKSFetches(); got != 8 {
		t.Errorf("JWKSFetches = %d, want 8", got)
	}
}

func TestTokenEndpoint(t *testing.T) {
	_, srv := newProvider(t)
	post := func(body string) (int, map[string]any) {
		t.Helper()
		resp, err := srv.Client().Post(srv.URL+"/token", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, out := post(`{"sub":"u1","roles":["user"],"scopes":["s1","s2"],"ttl":"2m","alg":"ES256"}`)
	if status != 200 || out["token_type"] != "Bearer" || out["expires_in"] != float64(120) {
		t.Fatalf("token endpoint: %d %v", status, out)
	}
	claims, err := verifyWithJWKS(t, srv, out["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != "u1" || claims["scope"] != "s1 s2" {
		t.Errorf("claims %v", claims)
	}
	if status, out := post(`{"sub":"u1","ttl":60}`); status != 200 || out["expires_in"] != float64(60) {
		t.Errorf("ttl in seconds: %d %v", status, out)
	}
	for _, bad := range []string{`{}`, `{"sub":"u","ttl":"forever"}`, `{"sub":"u","ttl":0}`, `{"sub":"u","ttl":"48h"}`,
		`{"sub":"u","ttl":1e300}`, `{"sub":"u","alg":"HS256"}`, `{"sub":"u","admin":true}`, `not json`} {
		if status, _ := post(bad); status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, status)
		}
	}
	resp, err := srv.Client().Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, _ = srv.Client().Get(srv.URL + "/token")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /token: %d", resp.StatusCode)
	}
	resp.Body.Close()
}
