package devidp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
)

// JWKSMode says how the JWKS endpoint answers. The zero value is JWKSNormal.
type JWKSMode struct {
	kind   jwksKind
	status int
	delay  time.Duration
}

type jwksKind int

const (
	kindNormal jwksKind = iota
	kindEmpty
	kindGarbage
	kindHTML
	kindStatus
	kindSlow
	kindOversized
)

// The JWKS endpoint's modes.
var (
	// JWKSNormal serves the public keys.
	JWKSNormal = JWKSMode{kind: kindNormal}
	// JWKSEmpty serves a well-formed set with no keys: {"keys":[]}.
	JWKSEmpty = JWKSMode{kind: kindEmpty}
	// JWKSGarbage serves 200 with bytes that are not JSON.
	JWKSGarbage = JWKSMode{kind: kindGarbage}
	// JWKSHTML serves 200 with a text/html error page, as a misconfigured
	// proxy or load balancer does.
	JWKSHTML = JWKSMode{kind: kindHTML}
	// JWKSOversized serves the real keys inside a valid-looking JSON body of
	// more than OversizedBytes, which a verifier must refuse to read whole.
	JWKSOversized = JWKSMode{kind: kindOversized}
)

// OversizedBytes is the least size of a JWKSOversized body.
const OversizedBytes = 1 << 20

// JWKSStatus answers every JWKS request with the HTTP status code and a
// small JSON error body.
func JWKSStatus(code int) JWKSMode { return JWKSMode{kind: kindStatus, status: code} }

// JWKSSlow serves the real keys after delay (or nothing, when the client
// gives up first).
func JWKSSlow(delay time.Duration) JWKSMode { return JWKSMode{kind: kindSlow, delay: delay} }

// String names the mode for test output.
func (m JWKSMode) String() string {
	switch m.kind {
	case kindEmpty:
		return "empty"
	case kindGarbage:
		return "garbage"
	case kindHTML:
		return "html"
	case kindStatus:
		return fmt.Sprintf("status-%d", m.status)
	case kindSlow:
		return "slow-" + m.delay.String()
	case kindOversized:
		return "oversized"
	default:
		return "normal"
	}
}

// SetJWKSMode changes how the JWKS endpoint answers from the next request on.
func (p *Provider) SetJWKSMode(m JWKSMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
}

func (p *Provider) jwksMode() JWKSMode {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.mode
}

// Handler serves the provider:
//
//	GET  /.well-known/jwks.json  the public keys (kid, alg, use on each)
//	GET  /healthz                {"status":"ok"}
//	POST /token                  mints a token (development only, see below)
//
// POST /token takes {"sub":"…","roles":["user"],"scopes":["…"],"ttl":"15m",
// "alg":"RS256"} (ttl may also be a number of seconds; alg is RS256 or
// ES256) and answers {"access_token":"…","token_type":"Bearer",
// "expires_in":900}. It exists only in this development tool: it hands a
// signed token to anyone who asks, which no real identity provider does.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", p.serveJWKS)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("POST /token", p.serveToken)
	return mux
}

func (p *Provider) serveJWKS(w http.ResponseWriter, r *http.Request) {
	p.fetches.Add(1)
	mode := p.jwksMode()
	switch mode.kind {
	case kindEmpty:
		writeJWKS(w, []byte(`{"keys":[]}`))
	case kindGarbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("\x00\x1f\x8b garbage \xff\xfe not a key set"))
	case kindHTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>" +
			"<body><h1>Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>"))
	case kindStatus:
		writeJSON(w, mode.status, map[string]string{"error": http.StatusText(mode.status)})
	case kindSlow:
		t := time.NewTimer(mode.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		p.writeKeys(w, 0)
	case kindOversized:
		p.writeKeys(w, OversizedBytes)
	default:
		p.writeKeys(w, 0)
	}
}

// writeKeys serves the public key set, padded with an unknown member of at
// least padding bytes (JSON readers ignore it, so only a size cap stops it).
func (p *Provider) writeKeys(w http.ResponseWriter, padding int) {
	body, err := json.Marshal(jwkset.JWKSMarshal{Keys: p.publicJWKs()})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "encoding the key set"})
		return
	}
	if padding > 0 {
		var b bytes.Buffer
		b.Grow(len(body) + padding + 32)
		b.Write(body[:len(body)-1])
		b.WriteString(`,"padding":"`)
		b.WriteString(strings.Repeat("A", padding))
		b.WriteString(`"}`)
		body = b.Bytes()
	}
	writeJWKS(w, body)
}

func writeJWKS(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(body)
}

// tokenRequest is the body of POST /token.
type tokenRequest struct {
	Subject string          `json:"sub"`
	Roles   []string        `json:"roles"`
	Scopes  []string        `json:"scopes"`
	TTL     json.RawMessage `json:"ttl"`
	Alg     string          `json:"alg"`
}

const maxTokenTTL = 24 * time.Hour

func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be JSON: " + err.Error()})
		return
	}
	if strings.TrimSpace(req.Subject) == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "sub is required"})
		return
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	alg := req.Alg
	if alg == "" {
		alg = RS256
	}
	if alg != RS256 && alg != ES256 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "alg must be RS256 or ES256"})
		return
	}
	now := time.Now()
	token, err := p.Mint(MintClaims{
		Subject:   req.Subject,
		Roles:     req.Roles,
		Scopes:    req.Scopes,
		IssuedAt:  now,
		ExpiresAt: now.Add(ttl),
	}, WithAlgorithm(alg))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"token_type":   "Bearer",
		"expires_in":   int64(ttl / time.Second),
	})
}

// parseTTL reads "15m" or a number of seconds; absent means DefaultTTL.
func parseTTL(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return DefaultTTL, nil
	}
	var ttl time.Duration
	var text string
	var seconds float64
	switch {
	case json.Unmarshal(raw, &text) == nil:
		d, err := time.ParseDuration(text)
		if err != nil {
			return 0, fmt.Errorf("ttl: %v", err)
		}
		ttl = d
	case json.Unmarshal(raw, &seconds) == nil:
		if seconds < 1 || seconds > maxTokenTTL.Seconds() {
			return 0, fmt.Errorf("ttl must be between 1s and %s", maxTokenTTL)
		}
		ttl = time.Duration(seconds * float64(time.Second))
	default:
		return 0, errors.New(`ttl must be a duration such as "15m" or a number of seconds`)
	}
	if ttl < time.Second || ttl > maxTokenTTL {
		return 0, fmt.Errorf("ttl must be between 1s and %s", maxTokenTTL)
	}
	return ttl, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
