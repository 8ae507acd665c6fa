package policies_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/policies"
)

// headers records what a helper sets.
type headers map[string]string

func (h headers) set(k, v string) {
	if _, dup := h[k]; dup {
		panic("header set twice: " + k)
	}
	h[k] = v
}

func TestCORSPreflight(t *testing.T) {
	set := compile(t, `
web:
  cors:
    allowOrigins: ["https://app.example.com", "http://localhost:3000"]
    allowCredentials: true
    maxAge: 90s
`)
	cors := set.For(clientctx.PlatformWeb).CORS()
	tests := []struct {
		name, origin, method, reqHeaders string
		ok                               bool
	}{
		{"allowed", "https://app.example.com", "GET", "authorization, x-platform, X-Timezone", true},
		{"allowed with port", "http://localhost:3000", "POST", "Content-Type", true},
		{"no headers asked", "https://app.example.com", "GET", "", true},
		{"origin not listed", "https://evil.example.com", "GET", "authorization", false},
		{"origin differs in port", "http://localhost:3001", "GET", "", false},
		{"origin suffix attack", "https://app.example.com.evil.net", "GET", "", false},
		{"origin in other case", "https://APP.example.com", "GET", "", false},
		{"null origin", "null", "GET", "", false},
		{"no origin", "", "GET", "", false},
		{"method not listed", "https://app.example.com", "DELETE", "", false},
		{"no method", "https://app.example.com", "", "", false},
		{"header not listed", "https://app.example.com", "GET", "authorization, x-evil", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := headers{}
			ok := cors.Preflight(tt.origin, tt.method, tt.reqHeaders, h.set)
			if ok != tt.ok {
				t.Fatalf("ok = %v", ok)
			}
			if h["Vary"] != "Origin, Access-Control-Request-Method, Access-Control-Request-Headers" {
				t.Fatalf("Vary = %q", h["Vary"])
			}
			if !ok {
				if len(h) != 1 {
					t.Fatalf("a refused preflight got CORS headers: %v", h)
				}
				return
			}
			want := headers{
				"Vary":                             h["Vary"],
				"Access-Control-Allow-Origin":      tt.origin,
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods":     "GET, POST",
				"Access-Control-Allow-Headers":     "Authorization, Content-Type, Accept-Language, X-Language, X-Timezone, X-Platform, X-App-Version, X-Device-Id, X-Request-Id, If-None-Match, Traceparent",
				"Access-Control-Max-Age":           "90",
			}
			if len(h) != len(want) {
				t.Fatalf("got %v", h)
			}
			for k, v := range want {
				if h[k] != v {
					t.Errorf("%s = %q, want %q", k, h[k], v)
				}
			}
		})
	}
}

func TestCORSActual(t *testing.T) {
	set := compile(t, `
admin:
  cors:
    allowOrigins: ["https://admin.example.com"]
    exposeHeaders: [X-Request-Id]
`)
	cors := set.For(clientctx.PlatformAdmin).CORS()
	h := headers{}
	if !cors.Actual("https://admin.example.com", h.set) {
		t.Fatal("refused")
	}
	want := headers{"Vary": "Origin", "Access-Control-Allow-Origin": "https://admin.example.com", "Access-Control-Expose-Headers": "X-Request-Id"}
	if len(h) != len(want) {
		t.Fatalf("got %v", h)
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
	for _, origin := range []string{"https://evil.example.com", ""} {
		h = headers{}
		if cors.Actual(origin, h.set) || len(h) != 1 || h["Vary"] != "Origin" {
			t.Fatalf("origin %q: %v", origin, h)
		}
	}
	var none *policies.CORSPolicy
	h, h2 := headers{}, headers{}
	if none.Actual("https://admin.example.com", h.set) || none.Preflight("https://admin.example.com", "GET", "", h2.set) || len(h) != 1 || len(h2) != 1 {
		t.Fatalf("nil policy: %v %v", h, h2)
	}
}

func TestCORSWildcardWithoutCredentials(t *testing.T) {
	set := compile(t, `api: {cors: {allowOrigins: ["*"]}}`)
	cors := set.For(clientctx.PlatformAPI).CORS()
	h := headers{}
	if !cors.Actual("https://anyone.example", h.set) {
		t.Fatal("wildcard refused")
	}
	if h["Access-Control-Allow-Origin"] != "*" || h["Access-Control-Allow-Credentials"] != "" {
		t.Fatalf("wildcard must answer * and never credentials: %v", h)
	}
	if got := cors.Origins(); len(got) != 1 || got[0] != "*" || cors.AllowCredentials() {
		t.Fatalf("Origins %v", got)
	}
}

func TestPreflightPolicy(t *testing.T) {
	set := compile(t, `
web: {cors: {allowOrigins: ["https://app.example.com"]}}
admin: {cors: {allowOrigins: ["https://admin.example.com", "https://app.example.com"], maxAge: 1m}}
api: {cors: {allowOrigins: ["*"]}}
mobile_ios: {cors: {allowOrigins: ["https://ios-web.example.com"]}}
`)
	tests := []struct{ origin, want string }{
		{"https://app.example.com", "web"},     // web before admin
		{"https://admin.example.com", "admin"}, // exact before the api wildcard
		{"https://ios-web.example.com", "mobile_ios"},
		{"https://other.example.com", "api"}, // only the wildcard
		{"", ""},
	}
	for _, tt := range tests {
		p := set.PreflightPolicy(tt.origin)
		got := ""
		if p != nil {
			got = p.Name
		}
		if got != tt.want {
			t.Errorf("PreflightPolicy(%q) = %q, want %q", tt.origin, got, tt.want)
		}
	}
	if got := set.For(clientctx.PlatformAdmin).CORS().MaxAge(); got != time.Minute {
		t.Fatalf("maxAge %v", got)
	}

	closed := compile(t, `web: {cors: {allowOrigins: ["https://app.example.com"]}}`)
	if closed.PreflightPolicy("https://evil.example.com") != nil {
		t.Fatal("an unlisted origin found a policy")
	}
}

// A refused reload's problems are logged: an origin written with a
// password or a key in it is quoted masked.
func TestRefusedOriginIsQuotedMasked(t *testing.T) {
	for o, want := range map[string]string{
		"https://svc:S3cretPassw0rd@app.example.com": `"https://svc:xxxxx@app.example.com"`,
		"https://app.example.com/?key=S3cretKey":     `"https://app.example.com/?key=xxxxx"`,
		"https//svc:S3cretPassw0rd@app.example.com":  `"xxxxx@app.example.com"`,
		"https://S3cretToken@app.example.com":        `"https://xxxxx@app.example.com"`,
	} {
		_, ps := policies.Compile(specs(t, `web: {cors: {allowOrigins: ["`+o+`"]}}`), defaultAuth())
		if len(ps) != 1 || !strings.Contains(ps[0].Message, want) || strings.Contains(ps.Error(), "S3cret") {
			t.Errorf("%s: got %v, want it quoted as %s", o, ps, want)
		}
	}
}

func TestOriginSpelling(t *testing.T) {
	good := []string{"https://app.example.com", "http://localhost:8080", "https://[2001:db8::1]", "http://192.0.2.10:3000", "https://xn--bcher-kva.example"}
	bad := []string{"app.example.com", "https://app.example.com/", "https://app.example.com/path", "ftp://app.example.com",
		"https://App.example.com", "HTTPS://app.example.com", "http://app.example.com:80", "https://app.example.com:0443",
		"https://app.example.com:99999", "https://user@app.example.com", "https://", "https://-bad.example.com",
		"https://[2001:DB8::1]", "https://[::ffff:192.0.2.1]", "https://a..b", "null", "https://*.example.com"}
	for _, o := range good {
		doc := `web: {cors: {allowOrigins: ["` + o + `"]}}`
		if _, ps := policies.Compile(specs(t, doc), defaultAuth()); len(ps) > 0 {
			t.Errorf("%s refused: %v", o, ps)
		}
	}
	for _, o := range bad {
		doc := `web: {cors: {allowOrigins: ["` + o + `"]}}`
		if _, ps := policies.Compile(specs(t, doc), defaultAuth()); len(ps) != 1 || ps[0].Path != "policies.web.cors.allowOrigins[0]" {
			t.Errorf("%s: got %v", o, ps)
		}
	}
}
