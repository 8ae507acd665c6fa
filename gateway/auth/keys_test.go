package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
)

func ecJWKS(t *testing.T, kids ...string) []byte {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, kid := range kids {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		jwk, err := jwkset.NewJWKFromKey(&k.PublicKey, jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.AlgES256, USE: jwkset.UseSig},
		})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// Key identity decides which cached verifications survive a refresh: the
// same key under the same kid is the same object; a different key under a
// reused kid is a new object, so the old one is retired.
func TestParseKeySetKeepsIdentityOfUnchangedKeys(t *testing.T) {
	allowed := []string{"ES256"}
	body := ecJWKS(t, "a", "b")
	first, err := parseKeySet(body, allowed, nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := newKeySet(first)
	if err != nil {
		t.Fatal(err)
	}
	again, err := parseKeySet(body, allowed, set)
	if err != nil {
		t.Fatal(err)
	}
	if again[0] != first[0] || again[1] != first[1] || !set.sameKeys(again) {
		t.Fatal("an unchanged key set produced new key objects")
	}

	reused, err := parseKeySet(ecJWKS(t, "a"), allowed, set)
	if err != nil {
		t.Fatal(err)
	}
	if reused[0] == first[0] || set.sameKeys(reused) {
		t.Fatal("a different key under a reused kid was taken for the old one")
	}

	// Verified through a Verifier's apply: the replaced and the dropped keys
	// are retired, nothing else.
	v := &Verifier{cfg: settings{urls: []string{"x"}}, goodAt: make([]time.Time, 1)}
	v.log = discardLogger()
	v.keys.Store(set)
	v.apply([]fetchResult{{keys: reused}}, make([][]*verifyKey, 1), set)
	if !first[0].retired.Load() || !first[1].retired.Load() || reused[0].retired.Load() {
		t.Error("retirement wrong after a kid was reused and another dropped")
	}
	if v.keys.Load().byKID["a"] != reused[0] {
		t.Error("the new key set was not published")
	}
}

func TestParseKeySetRefusesUselessSets(t *testing.T) {
	for name, body := range map[string]string{
		"empty":         `{"keys":[]}`,
		"no keys":       `{}`,
		"null":          `null`,
		"keys not list": `{"keys":{}}`,
		"only hmac":     `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`,
		"only enc":      `{"keys":[{"kty":"EC","use":"enc","kid":"e","crv":"P-256","x":"AAAA","y":"AAAA"}]}`,
	} {
		if keys, err := parseKeySet([]byte(body), []string{"RS256", "ES256"}, nil); err == nil {
			t.Errorf("%s: accepted with %d keys", name, len(keys))
		}
	}
	// An EC key is useless to a verifier that only accepts RS256.
	if _, err := parseKeySet(ecJWKS(t, "a"), []string{"RS256"}, nil); err == nil {
		t.Error("a set with no key for the accepted algorithms was accepted")
	}
}

// An EC key fits only the ES alg of its own curve, and a key set whose
// only key is on a curve no accepted alg names has no usable key.
func TestECKeyFitsOnlyItsCurve(t *testing.T) {
	algs := []string{"ES256", "ES384", "ES512"}
	for i, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		priv, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k := &verifyKey{kid: "k", public: &priv.PublicKey}
		for j, alg := range algs {
			if got := k.fits(alg); got != (i == j) {
				t.Errorf("%s key fits %s: %v", curve.Params().Name, alg, got)
			}
		}
		if k.fits("RS256") || k.fits("EdDSA") {
			t.Errorf("%s key fits a non-EC alg", curve.Params().Name)
		}
	}

	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(&priv.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: "p384", USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := parseKeySet(body, []string{"RS256", "ES256"}, nil); err == nil {
		t.Fatalf("a P-384 key without alg was usable for RS256 and ES256: %d keys", len(keys))
	}
}

// A key published for encryption, or for operations other than verify,
// never verifies a token, however sound the key itself is (RFC 7517
// sections 4.2 and 4.3).
func TestKeysForOtherUsesAreSkipped(t *testing.T) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(ecJWKS(t, "enc", "encrypt-only", "verify"), &set); err != nil {
		t.Fatal(err)
	}
	set.Keys[0].USE = jwkset.UseEnc
	set.Keys[1].KEYOPS = []jwkset.KEYOPS{jwkset.KeyOpsEncrypt}
	set.Keys[2].KEYOPS = []jwkset.KEYOPS{jwkset.KeyOpsVerify}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := parseKeySet(body, []string{"ES256"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].kid != "verify" {
		kids := make([]string, len(keys))
		for i, k := range keys {
			kids[i] = k.kid
		}
		t.Fatalf("usable keys %q, want only the verify one", kids)
	}
}

// Of two keys under one kid, the first is kept and the second skipped, so
// the set's look-up by kid and its key list agree.
func TestParseKeySetKeepsTheFirstOfADuplicateKID(t *testing.T) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(ecJWKS(t, "a", "a", "b"), &set); err != nil {
		t.Fatal(err)
	}
	first := set.Keys[0].X
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := parseKeySet(body, []string{"ES256"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].kid != "a" || keys[1].kid != "b" || keys[0].jwk.Marshal().X != first {
		t.Fatalf("got %d keys; want a (the first) and b", len(keys))
	}
}

// The same key material under the same kid with another declared alg is a
// new key: a provider that narrows an RSA key to PS256 has RS256 tokens of
// that key refused, and their cached verifications retired, at once.
func TestParseKeySetTakesAChangedAlgForANewKey(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	body := func(alg jwkset.ALG) []byte {
		jwk, err := jwkset.NewJWKFromKey(&k.PublicKey, jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: "r", ALG: alg, USE: jwkset.UseSig},
		})
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	allowed := []string{"RS256", "PS256"}
	first, err := parseKeySet(body(""), allowed, nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := newKeySet(first)
	if err != nil {
		t.Fatal(err)
	}
	narrowed, err := parseKeySet(body(jwkset.AlgPS256), allowed, set)
	if err != nil {
		t.Fatal(err)
	}
	if narrowed[0] == first[0] || set.sameKeys(narrowed) {
		t.Fatal("a key whose declared alg changed was taken for the old one")
	}
	if narrowed[0].fits("RS256") || !narrowed[0].fits("PS256") {
		t.Errorf("the narrowed key fits RS256 %v, PS256 %v; want PS256 only", narrowed[0].fits("RS256"), narrowed[0].fits("PS256"))
	}
}

// RSA keys of fewer than 2048 bits are skipped; 2048 bits is enough.
func TestRSAKeyOfFewerThan2048BitsIsSkipped(t *testing.T) {
	for _, c := range []struct {
		bits int
		ok   bool
	}{{2047, false}, {2048, true}} {
		k, err := rsa.GenerateKey(rand.Reader, c.bits)
		if err != nil {
			t.Fatal(err)
		}
		jwk, err := jwkset.NewJWKFromKey(&k.PublicKey, jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: "r", ALG: jwkset.AlgRS256, USE: jwkset.UseSig},
		})
		if err != nil {
			t.Fatal(err)
		}
		body, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseKeySet(body, []string{"RS256"}, nil); (err == nil) != c.ok {
			t.Errorf("RSA key of %d bits: error %v, want accepted %v", c.bits, err, c.ok)
		}
	}
}
