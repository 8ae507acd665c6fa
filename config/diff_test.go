package config_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
)

func TestDiff(t *testing.T) {
	const secret = "the-old-secret-value"
	const newSecret = "the-new-secret-value"
	pageSize := 50
	tests := []struct {
		name   string
		before func(*config.Config)
		after  func(*config.Config)
		want   []config.Change
	}{
		{"nothing changed", nil, nil, nil},
		{"cache ttl is live",
			nil,
			func(c *config.Config) { c.Cache.Routes.Search.TTL = time.Minute },
			[]config.Change{{Path: "cache.routes.search.ttl", Old: "30s", New: "1m0s"}}},
		{"listen address needs a restart",
			nil,
			func(c *config.Config) { c.Server.Listen = "0.0.0.0:8080" },
			[]config.Change{{Path: "server.listen", Old: "127.0.0.1:8080", New: "0.0.0.0:8080", Restart: true}}},
		{"size shown with its unit",
			nil,
			func(c *config.Config) { c.Server.BodyLimit = 1 << 20 },
			[]config.Change{{Path: "server.bodyLimit", Old: "16KiB", New: "1MiB", Restart: true}}},
		{"list",
			nil,
			func(c *config.Config) { c.Auth.Audiences = []string{"edge-gateway", "mobile"} },
			[]config.Change{{Path: "auth.audiences", Old: "[edge-gateway]", New: "[edge-gateway, mobile]", Restart: true}}},
		{"a list entry holding a comma is not two entries",
			func(c *config.Config) { c.Auth.Audiences = []string{"a", "b"} },
			func(c *config.Config) { c.Auth.Audiences = []string{"a, b"} },
			[]config.Change{{Path: "auth.audiences", Old: "[a, b]", New: `["a, b"]`, Restart: true}}},
		{"JWKS URL's query value changed: a change, its values masked",
			func(c *config.Config) { c.Auth.JWKSURLs = []string{"https://idp.example/jwks?key=old-key-value"} },
			func(c *config.Config) { c.Auth.JWKSURLs = []string{"https://idp.example/jwks?key=new-key-value"} },
			[]config.Change{{Path: "auth.jwksURLs", Old: "[https://idp.example/jwks?key=xxxxx]", New: "[https://idp.example/jwks?key=xxxxx]", Restart: true}}},
		{"secret set",
			nil,
			func(c *config.Config) { c.Ops.Token = secret },
			[]config.Change{{Path: "ops.token", Old: "(not set)", New: "(set)", Restart: true}}},
		{"secret replaced",
			func(c *config.Config) { c.Cache.InvalidationToken = secret },
			func(c *config.Config) { c.Cache.InvalidationToken = newSecret },
			[]config.Change{{Path: "cache.invalidationToken", Old: "(set)", New: "(set)", Restart: true}}},
		{"secret removed",
			func(c *config.Config) { c.Upstreams.UserStore.ServiceToken = secret },
			nil,
			[]config.Change{{Path: "upstreams.userstore.serviceToken", Old: "(set)", New: "(not set)", Restart: true}}},
		{"policy added",
			nil,
			func(c *config.Config) {
				c.Policies = map[string]config.Policy{"web": {MaxPageSize: &pageSize, RequireRoles: []string{"user"}}}
			},
			[]config.Change{
				{Path: "policies.web.maxPageSize", Old: "(unset)", New: "50"},
				{Path: "policies.web.requireRoles", Old: "(unset)", New: "[user]"},
			}},
		{"policy added with one setting lists only that setting",
			nil,
			func(c *config.Config) { c.Policies = map[string]config.Policy{"mobile_ios": {MaxPageSize: &pageSize}} },
			[]config.Change{{Path: "policies.mobile_ios.maxPageSize", Old: "(unset)", New: "50"}}},
		{"policy removed",
			func(c *config.Config) { c.Policies = map[string]config.Policy{"web": {MaxPageSize: &pageSize}} },
			nil,
			[]config.Change{{Path: "policies.web.maxPageSize", Old: "50", New: "(unset)"}}},
		{"list emptied",
			nil,
			func(c *config.Config) { c.Server.TrustedProxies, c.Auth.Audiences = nil, []string{} },
			[]config.Change{{Path: "auth.audiences", Old: "[edge-gateway]", New: "[]", Restart: true}}},
		// In a policy an empty list replaces the inherited one, where an
		// absent one inherits it: the two differ, and a reload that only
		// removes "roles: []" changes who may call the route.
		{"policy's empty list removed",
			func(c *config.Config) {
				c.Policies = map[string]config.Policy{"mobile_android": {Routes: map[string]config.RouteRule{"users.search": {Roles: []string{}}}}}
			},
			func(c *config.Config) {
				c.Policies = map[string]config.Policy{"mobile_android": {Routes: map[string]config.RouteRule{"users.search": {}}}}
			},
			[]config.Change{{Path: "policies.mobile_android.routes.users.search.roles", Old: "[]", New: "(unset)"}}},
		{"policy cache ttl entry removed",
			func(c *config.Config) {
				c.Policies = map[string]config.Policy{"web": {Cache: &config.PolicyCache{TTL: map[string]time.Duration{"search": time.Second, "me": time.Second}}}}
			},
			func(c *config.Config) {
				c.Policies = map[string]config.Policy{"web": {Cache: &config.PolicyCache{TTL: map[string]time.Duration{"me": time.Second}}}}
			},
			[]config.Change{{Path: "policies.web.cache.ttl.search", Old: "1s", New: "(unset)"}}},
		{"several, sorted by path",
			nil,
			func(c *config.Config) {
				c.Server.RequestTimeout = 2 * time.Second
				c.Log.Level = "debug"
				c.Auth.Issuer = "https://other.example.com/"
			},
			[]config.Change{
				{Path: "auth.issuer", Old: "https://idp.example.com/", New: "https://other.example.com/", Restart: true},
				{Path: "log.level", Old: "info", New: "debug"},
				{Path: "server.requestTimeout", Old: "3s", New: "2s"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, new := valid(), valid()
			if tt.before != nil {
				tt.before(&old)
			}
			if tt.after != nil {
				tt.after(&new)
			}
			got := config.Diff(&old, &new)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Diff:\n got %v\nwant %v", got, tt.want)
			}
			for _, c := range got {
				if s := fmt.Sprint(c, c.Old, c.New); strings.Contains(s, secret) || strings.Contains(s, newSecret) {
					t.Errorf("a change shows a secret: %v", c)
				}
			}
		})
	}
}

func TestChangeString(t *testing.T) {
	for _, tt := range []struct {
		c    config.Change
		want string
	}{
		{config.Change{Path: "log.level", Old: "info", New: "debug"}, "log.level: info -> debug"},
		{config.Change{Path: "server.listen", Old: "a:1", New: "b:2", Restart: true}, "server.listen: a:1 -> b:2  (needs a restart)"},
	} {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestRestartRequired(t *testing.T) {
	for path, want := range map[string]bool{
		"server.listen":                true,
		"server.listenX":               false,
		"server.listener":              false,
		"server.requestTimeout":        false,
		"server.readTimeout":           true,
		"server.trustedProxies":        false,
		"ops.listen":                   true,
		"ops.token":                    true,
		"opsX.listen":                  false,
		"tracing.enabled":              true,
		"auth.jwksURLs":                true,
		"auth.jwksURLs[0]":             true,
		"auth.jwksURLsX":               true, // all of auth needs a restart
		"authX.issuer":                 false,
		"auth.jwks.refreshInterval":    true,
		"auth.issuer":                  true,
		"auth.tokenCache.maxTTL":       true,
		"upstreams.userstore.baseURL":  true,
		"upstreams.userstore.baseURLs": false,
		"upstreams.userstore.operations.search.timeout": false,
		"cache.enabled":            true,
		"cache.enabledX":           false,
		"cache.routes.search.ttl":  false,
		"policies.web.maxPageSize": false,
		"":                         false,
	} {
		if got := config.RestartRequired(path); got != want {
			t.Errorf("RestartRequired(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestRedactedLeavesTheOriginalUntouched(t *testing.T) {
	c := valid()
	c.Ops.Token = "ops-secret-0123456789"
	c.Upstreams.UserStore.ServiceToken = "service-secret"
	c.Policies = map[string]config.Policy{"web": {RequireRoles: []string{"user"}}}

	r := config.Redacted(&c)

	if r.Ops.Token != "<redacted>" || r.Upstreams.UserStore.ServiceToken != "<redacted>" {
		t.Errorf("secrets not masked: %q, %q", r.Ops.Token, r.Upstreams.UserStore.ServiceToken)
	}
	if r.Cache.InvalidationToken != "" {
		t.Errorf("an unset secret became %q; it should stay empty", r.Cache.InvalidationToken)
	}
	if s := fmt.Sprintf("%+v", r); strings.Contains(s, "ops-secret") || strings.Contains(s, "service-secret") {
		t.Errorf("redacted copy still prints a secret: %s", s)
	}
	if c.Ops.Token != "ops-secret-0123456789" || c.Upstreams.UserStore.ServiceToken != "service-secret" {
		t.Errorf("Redacted changed the original: %q, %q", c.Ops.Token, c.Upstreams.UserStore.ServiceToken)
	}
	if r.Server.Listen != c.Server.Listen || r.Policies["web"].RequireRoles[0] != "user" {
		t.Errorf("Redacted changed settings that are not secret")
	}
}

// Every setting RestartRequired names is kept by KeepRestartOnly, and
// nothing else: after it, a diff against the running config has no
// restart-only change, and every live change survives.
func TestKeepRestartOnlyKeepsExactlyTheRestartSettings(t *testing.T) {
	running := config.Default()
	next := config.Default()
	mutateEverything(reflect.ValueOf(&next).Elem())
	kept := config.KeepRestartOnly(&running, &next)
	all := config.Diff(&running, &next)
	left := config.Diff(&running, kept)
	for _, c := range left {
		if c.Restart {
			t.Errorf("restart-only %s was not kept from the running config", c.Path)
		}
	}
	live := 0
	for _, c := range all {
		if !c.Restart {
			live++
		}
	}
	if len(left) != live {
		t.Errorf("%d live changes survived of %d", len(left), live)
	}
	if live == 0 {
		t.Fatal("mutateEverything changed nothing live")
	}
}

// mutateEverything changes every plain leaf of a config value.
func mutateEverything(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			mutateEverything(v.Field(i))
		}
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 7)
	case reflect.Uint32:
		v.SetUint(v.Uint() + 7)
	case reflect.Float64:
		v.SetFloat(v.Float() + 0.25)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String {
			v.Set(reflect.Append(v, reflect.ValueOf("x")))
		}
	}
}

// The ops API's copy of the configuration shows the JWKS URLs with their
// query values (an API key at some providers) masked, names kept, and
// leaves the original alone.
func TestRedactedMasksJWKSQueryValues(t *testing.T) {
	c := valid()
	c.Auth.JWKSURLs = []string{"https://idp.example/jwks?tenant=acme&key=secret-value", "https://idp2.example/jwks"}
	r := config.Redacted(&c)
	want := []string{"https://idp.example/jwks?tenant=xxxxx&key=xxxxx", "https://idp2.example/jwks"}
	if !slices.Equal(r.Auth.JWKSURLs, want) {
		t.Errorf("redacted JWKS URLs %q, want %q", r.Auth.JWKSURLs, want)
	}
	if c.Auth.JWKSURLs[0] != "https://idp.example/jwks?tenant=acme&key=secret-value" {
		t.Errorf("Redacted changed the original: %q", c.Auth.JWKSURLs[0])
	}
}

func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://idp.example/jwks":                    "https://idp.example/jwks",
		"https://idp.example/jwks?a=1&flag&b=":        "https://idp.example/jwks?a=xxxxx&xxxxx&b=xxxxx",
		"https://user:pass@idp.example/jwks?k=v":      "https://user:xxxxx@idp.example/jwks?k=xxxxx",
		"https://idp.example/jwks?sig=a%26b#fragment": "https://idp.example/jwks?sig=xxxxx#fragment",
		"http://[::1:bad/jwks":                        "(unparsable URL)",
	} {
		if got := config.RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}
