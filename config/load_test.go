package config_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
)

func TestDefaultsValidateOnceRequiredFieldsAreSet(t *testing.T) {
	c := valid()
	if ps := config.Validate(&c); len(ps) != 0 {
		t.Fatalf("defaults plus required fields: %v", ps)
	}
}

func TestEmptyFileNamesExactlyTheRequiredFields(t *testing.T) {
	for name, file := range map[string]string{
		"empty":        "",
		"comment only": "# nothing yet\n",
		"null":         "~\n",
		"empty doc":    "---\n",
	} {
		t.Run(name, func(t *testing.T) {
			ps := parseProblems(t, file, noEnv)
			expectProblems(t, ps,
				want{"auth.jwksURLs", "required"},
				want{"auth.issuer", "required"},
				want{"upstreams.userstore.baseURL", "required"},
			)
		})
	}
}

func TestParseKeepsDefaultsForWhatTheFileLeavesOut(t *testing.T) {
	cfg := mustParse(t, "server:\n  listen: 127.0.0.1:8181\nops:\n", env(nil))
	want := valid()
	want.Server.Listen = "127.0.0.1:8181"
	if d := config.Diff(&want, cfg); len(d) != 0 {
		t.Fatalf("parsed config differs from defaults beyond server.listen: %v", d)
	}
	if cfg.Ops.Listen != "127.0.0.1:9090" {
		t.Errorf("an empty ops: section dropped the default ops.listen (got %q)", cfg.Ops.Listen)
	}
}

func TestUnknownKeysAtEveryDepthAreReportedTogether(t *testing.T) {
	file := `
sever:
  listen: 0.0.0.0:8080
server:
  lisen: 0.0.0.0:8080
  readtimeout: 5s
policies:
  web:
    rateLimits:
      perUsr: {rate: 5, burst: 10}
      perIP: {rate: 5, burst: 10, brust: 3}
    routes:
      users.search:
        alow: true
cache:
  routes:
    search:
      <<: {tll: 5s}
auth:
  jwksURLs:
    - url: https://idp.example.com/jwks
`
	ps := parseProblems(t, file, env(nil))
	expectProblems(t, ps,
		want{"sever", `unknown key (line 2); did you mean "server"?`},
		want{"server.lisen", `unknown key (line 5); did you mean "listen"?`},
		want{"server.readtimeout", `did you mean "readTimeout"?`},
		want{"policies.web.rateLimits.perUsr", `did you mean "perUser"?`},
		want{"policies.web.rateLimits.perIP.brust", `did you mean "burst"?`},
		want{"policies.web.routes.users.search.alow", `did you mean "allow"?`},
		want{"cache.routes.search.tll", `did you mean "ttl"?`},
		// config.yaml has no list of mappings: a mapping inside a list is
		// the list-item mistake there is.
		want{"auth.jwksURLs[0]", "expected a single value (line 21)"},
	)
}

func TestUnknownKeyWithoutLikelyMeaningHasNoHint(t *testing.T) {
	ps := parseProblems(t, "server:\n  frobnicate: 1\n  qq: 2\n", env(nil))
	expectProblems(t, ps,
		want{"server.frobnicate", "unknown key (line 2)"},
		want{"server.qq", "unknown key (line 3)"},
	)
	for _, p := range ps {
		if strings.Contains(p.Message, "did you mean") {
			t.Errorf("hint offered for an unrelated key: %s", p)
		}
	}
}

func TestTypeErrorsAreReportedByPath(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		wants []want
	}{
		{"string for int", "server:\n  maxConnections: \"abc\"\n",
			[]want{{"server.maxConnections", "cannot unmarshal !!str `abc` into int (line 2)"}}},
		{"bare number for duration", "server:\n  readTimeout: 5\n",
			[]want{{"server.readTimeout", `invalid duration "5": write a number with a unit`}}},
		{"quoted bare number for duration", "server:\n  readTimeout: \"5\"\n",
			[]want{{"server.readTimeout", `invalid duration "5"`}}},
		{"fraction for duration", "server:\n  readTimeout: 1.5\n",
			[]want{{"server.readTimeout", `invalid duration "1.5"`}}},
		{"duration too long", "server:\n  readTimeout: 99999999h\n",
			[]want{{"server.readTimeout", `invalid duration "99999999h": too long (a duration is at most about 292 years, 2562047h) (line 2)`}}},
		{"duration too long, in parts", "server:\n  readTimeout: 2562047h48m\n",
			[]want{{"server.readTimeout", `invalid duration "2562047h48m": too long`}}},
		{"negative duration too long", "server:\n  readTimeout: -99999999h\n",
			[]want{{"server.readTimeout", `invalid duration "-99999999h": too long`}}},
		{"bare number in a duration map", "policies:\n  web:\n    cache:\n      ttl:\n        search: 30\n",
			[]want{{"policies.web.cache.ttl.search", `invalid duration "30": write a number with a unit, such as 500ms, 5s or 1m (line 5)`}}},
		{"junk size", "server:\n  bodyLimit: 12 parsecs\n",
			[]want{{"server.bodyLimit", `invalid size "12 parsecs" (want e.g. 4096, 64KiB, 1MiB) (line 2)`}}},
		{"negative uint32", "upstreams:\n  userstore:\n    operations:\n      search:\n        breaker:\n          consecutiveFailures: -1\n",
			[]want{{"upstreams.userstore.operations.search.breaker.consecutiveFailures", "cannot unmarshal"}}},
		{"string for bool", "ops:\n  pprof: sometimes\n",
			[]want{{"ops.pprof", "cannot unmarshal !!str `sometimes` into bool"}}},
		{"string for pointer int in a policy", "policies:\n  web:\n    maxPageSize: many\n",
			[]want{{"policies.web.maxPageSize", "cannot unmarshal !!str `many` into int"}}},
		{"scalar for section", "server: 5\n",
			[]want{{"server", "expected a mapping (line 1)"}}},
		{"scalar for list", "server:\n  trustedProxies: 10.0.0.0/8\n",
			[]want{{"server.trustedProxies", "expected a list (line 2)"}}},
		{"list for scalar", "log:\n  level: [debug]\n",
			[]want{{"log.level", "expected a single value (line 2)"}}},
		{"list for policies", "policies: [web]\n",
			[]want{{"policies", "expected a mapping (line 1)"}}},
		{"every mistake at once",
			"server:\n  readTimeout: 5\n  bodyLimit: lots\n  maxConnections: abc\nlog:\n  access: maybe\n",
			[]want{
				{"server.readTimeout", `invalid duration "5"`},
				{"server.bodyLimit", `invalid size "lots"`},
				{"server.maxConnections", "cannot unmarshal"},
				{"log.access", "cannot unmarshal"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectProblems(t, parseProblems(t, tt.file, env(nil)), tt.wants...)
		})
	}
}

// Several keys on one line (a flow mapping, as config.yaml writes its
// limits and retries): a mistake is named by its own key, not by the last
// key of the line.
func TestMistakesInAFlowMappingAreNamedByTheirKey(t *testing.T) {
	tests := []struct {
		name string
		file string
		want want
	}{
		{"first of two", "server: {maxConnections: abc, readTimeout: 5s}\n",
			want{"server.maxConnections", "cannot unmarshal !!str `abc` into int (line 1)"}},
		{"a limit's rate", "policies:\n  web:\n    rateLimits:\n      perUser: {rate: ten, burst: 10}\n",
			want{"policies.web.rateLimits.perUser.rate", "cannot unmarshal !!str `ten` into float64 (line 4)"}},
		{"a retry", "upstreams:\n  userstore:\n    operations:\n      search:\n        retry: {attempts: x, baseBackoff: 25ms, maxBackoff: 200ms}\n",
			want{"upstreams.userstore.operations.search.retry.attempts", "cannot unmarshal !!str `x` into int (line 5)"}},
		{"a bool", "log: {access: maybe, level: info}\n",
			want{"log.access", "cannot unmarshal !!str `maybe` into bool (line 1)"}},
		{"a duplicate", "policies:\n  web:\n    rateLimits:\n      perUser: {rate: 1, rate: 2, burst: 10}\n",
			want{"policies.web.rateLimits.perUser.rate", `mapping key "rate" already defined at line 4 (line 4)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectProblems(t, parseProblems(t, tt.file, env(nil)), tt.want)
		})
	}
}

// A fraction written for an integer setting is refused, as the
// environment refuses it: yaml.v3 alone truncates it (maxConnections: 1.5
// became 1, a burst of 2.7 became 2) without a word.
func TestIntegersAreNotTruncated(t *testing.T) {
	tests := []struct {
		name string
		file string
		want want
	}{
		{"int", "server:\n  maxConnections: 1.5\n",
			want{"server.maxConnections", `invalid integer "1.5": write a whole number without a fraction or exponent (line 2)`}},
		{"int in an operation", "upstreams:\n  userstore:\n    operations:\n      search:\n        retry:\n          attempts: 1.9\n",
			want{"upstreams.userstore.operations.search.retry.attempts", `invalid integer "1.9"`}},
		{"uint32", "upstreams:\n  userstore:\n    operations:\n      search:\n        breaker:\n          halfOpenRequests: 2.5\n",
			want{"upstreams.userstore.operations.search.breaker.halfOpenRequests", `invalid integer "2.5"`}},
		{"pointer int in a policy", "policies:\n  web:\n    maxPageSize: 10.5\n",
			want{"policies.web.maxPageSize", `invalid integer "10.5"`}},
		{"burst of a limit", "policies:\n  web:\n    rateLimits:\n      perUser:\n        rate: 5\n        burst: 2.7\n",
			want{"policies.web.rateLimits.perUser.burst", `invalid integer "2.7"`}},
		{"exponent", "cache:\n  maxEntries: 1e5\n",
			want{"cache.maxEntries", `invalid integer "1e5"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectProblems(t, parseProblems(t, tt.file, env(nil)), tt.want)
		})
	}
	// A rate is a number, not an integer: its fraction stays.
	cfg := mustParse(t, "policies:\n  web:\n    rateLimits:\n      perUser:\n        rate: 0.5\n        burst: 3\n", env(nil))
	if l := cfg.Policies["web"].RateLimits.PerUser; l.Rate != 0.5 || l.Burst != 3 {
		t.Errorf("perUser = %+v, want rate 0.5, burst 3", *l)
	}
}

// yaml.v3 reads an integer written with a leading zero in octal, as YAML
// 1.1 did (maxConnectionsPerIP: 0100 became 64, a burst of 010 became 8),
// where the environment and every size read it in decimal. It is refused:
// either reading surprises someone.
func TestLeadingZeroesAreRefused(t *testing.T) {
	tests := []struct {
		name string
		file string
		want want
	}{
		{"int", "server:\n  maxConnectionsPerIP: 0100\n",
			want{"server.maxConnectionsPerIP", `invalid integer "0100": YAML reads a leading 0 as octal (64); write it without (line 2)`}},
		{"uint32", "upstreams:\n  userstore:\n    operations:\n      search:\n        breaker:\n          minRequests: 020\n",
			want{"upstreams.userstore.operations.search.breaker.minRequests", `invalid integer "020"`}},
		{"negative", "upstreams:\n  userstore:\n    retryBudget:\n      minPerSecond: -010\n",
			want{"upstreams.userstore.retryBudget.minPerSecond", `invalid integer "-010"`}},
		// Refused once: not a second time as a negative number for an
		// unsigned field.
		{"negative, unsigned", "upstreams:\n  userstore:\n    operations:\n      search:\n        breaker:\n          minRequests: -020\n",
			want{"upstreams.userstore.operations.search.breaker.minRequests", `invalid integer "-020": YAML reads a leading 0 as octal (-16)`}},
		{"pointer int in a policy", "policies:\n  web:\n    maxPageSize: 010\n",
			want{"policies.web.maxPageSize", `invalid integer "010"`}},
		{"a rate, a number", "policies:\n  web:\n    rateLimits:\n      perUser:\n        rate: 010\n        burst: 10\n",
			want{"policies.web.rateLimits.perUser.rate", `invalid number "010"`}},
		// Quoted, it is a string, read in no base: refused as one.
		{"quoted", "server:\n  maxConnectionsPerIP: \"0100\"\n",
			want{"server.maxConnectionsPerIP", "cannot unmarshal !!str `0100` into int (line 2)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectProblems(t, parseProblems(t, tt.file, env(nil)), tt.want)
		})
	}
	// A zero is a zero, a fraction with a leading zero a decimal, and a
	// prefix says what it means.
	cfg := mustParse(t, "server:\n  maxConnectionsPerIP: 0\n  maxConnections: 0o20\ntracing:\n  sampleRatio: 0.05\n"+
		"policies:\n  web:\n    rateLimits:\n      perUser: {rate: 00.5, burst: 3}\n", env(nil))
	if cfg.Server.MaxConnectionsPerIP != 0 || cfg.Server.MaxConnections != 16 || cfg.Tracing.SampleRatio != 0.05 ||
		cfg.Policies["web"].RateLimits.PerUser.Rate != 0.5 {
		t.Errorf("got maxConnectionsPerIP %d, maxConnections %d, sampleRatio %v, rate %v", cfg.Server.MaxConnectionsPerIP,
			cfg.Server.MaxConnections, cfg.Tracing.SampleRatio, cfg.Policies["web"].RateLimits.PerUser.Rate)
	}
}

func TestDurationsAndSizesThatParse(t *testing.T) {
	cfg := mustParse(t, `
server:
  readTimeout: 5s
  writeTimeout: "1m30s"
  shutdownDelay: 0
  bodyLimit: 64KiB
  headerLimit: 4096
cache:
  maxBytes: 512mb
  routes:
    me:
      ttl: 0
`, env(nil))
	checks := []struct {
		name      string
		got, want any
	}{
		{"server.readTimeout", cfg.Server.ReadTimeout, 5 * time.Second},
		{"server.writeTimeout", cfg.Server.WriteTimeout, 90 * time.Second},
		{"server.shutdownDelay (bare 0)", cfg.Server.ShutdownDelay, time.Duration(0)},
		{"server.bodyLimit", cfg.Server.BodyLimit, config.ByteSize(64 << 10)},
		{"server.headerLimit", cfg.Server.HeaderLimit, config.ByteSize(4096)},
		{"cache.maxBytes", cfg.Cache.MaxBytes, config.ByteSize(512 << 20)},
		{"cache.routes.me.ttl (bare 0)", cfg.Cache.Routes.Me.TTL, time.Duration(0)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestSecretsAreRefusedInTheFileButTakenFromTheEnvironment(t *testing.T) {
	const secret = "s3cr3t-value-0123456789"
	tests := []struct {
		path, file, envVar string
		got                func(*config.Config) string
	}{
		{"ops.token", "ops:\n  token: " + secret + "\n", "GATEWAY_OPS__TOKEN",
			func(c *config.Config) string { return c.Ops.Token }},
		{"upstreams.userstore.serviceToken", "upstreams:\n  userstore:\n    serviceToken: " + secret + "\n",
			"GATEWAY_UPSTREAMS__USERSTORE__SERVICETOKEN",
			func(c *config.Config) string { return c.Upstreams.UserStore.ServiceToken }},
		{"cache.invalidationToken", "cache:\n  invalidationToken: " + secret + "\n", "GATEWAY_CACHE__INVALIDATIONTOKEN",
			func(c *config.Config) string { return c.Cache.InvalidationToken }},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			ps := parseProblems(t, tt.file, env(nil))
			expectProblems(t, ps, want{tt.path, "secrets must not be written in the file; set " + tt.envVar + " instead"})
			if strings.Contains(ps.Error(), secret) {
				t.Errorf("the refusal repeats the secret: %v", ps)
			}

			cfg := mustParse(t, "", env(map[string]string{tt.envVar: secret}))
			if got := tt.got(cfg); got != secret {
				t.Errorf("from %s: got %q, want the secret", tt.envVar, got)
			}
		})
	}
}

func TestSecretsCannotBeSmuggledIntoTheFile(t *testing.T) {
	tests := map[string]string{
		"through an alias": "log:\n  level: &t hunter2hunter2hunter2\nops:\n  token: *t\n",
		"as a mapping":     "ops:\n  token: {value: hunter2hunter2hunter2}\n",
		"quoted":           "ops:\n  token: \"hunter2hunter2hunter2\"\n",
		"through a merge":  "ops:\n  <<: {token: hunter2hunter2hunter2}\n",
	}
	for name, file := range tests {
		t.Run(name, func(t *testing.T) {
			ps := parseProblems(t, file, env(nil))
			found := false
			for _, p := range ps {
				found = found || p.Path == "ops.token" && strings.Contains(p.Message, "secrets must not be written")
			}
			if !found {
				t.Errorf("secret accepted from the file: %v", ps)
			}
		})
	}
}

func TestEmptySecretInTheFileIsNotASecret(t *testing.T) {
	cfg := mustParse(t, "ops:\n  token: \"\"\ncache:\n  invalidationToken: ~\n", env(map[string]string{
		"GATEWAY_CACHE__INVALIDATIONTOKEN": "from-the-environment",
	}))
	if cfg.Ops.Token != "" || cfg.Cache.InvalidationToken != "from-the-environment" {
		t.Errorf("got ops.token %q, cache.invalidationToken %q", cfg.Ops.Token, cfg.Cache.InvalidationToken)
	}
}

func TestEnvironmentOverridesEveryKind(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		vars  map[string]string
		check func(*config.Config) (got, want any)
	}{
		{"string", "", map[string]string{"GATEWAY_SERVER__LISTEN": "0.0.0.0:8081"},
			func(c *config.Config) (any, any) { return c.Server.Listen, "0.0.0.0:8081" }},
		{"string over the file", "server:\n  listen: 127.0.0.1:1111\n", map[string]string{"GATEWAY_SERVER__LISTEN": "127.0.0.1:2222"},
			func(c *config.Config) (any, any) { return c.Server.Listen, "127.0.0.1:2222" }},
		{"bool", "", map[string]string{"GATEWAY_LOG__ACCESS": "false"},
			func(c *config.Config) (any, any) { return c.Log.Access, false }},
		{"int", "", map[string]string{"GATEWAY_SERVER__MAXCONNECTIONS": "1000"},
			func(c *config.Config) (any, any) { return c.Server.MaxConnections, 1000 }},
		{"uint32", "", map[string]string{"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__SEARCH__BREAKER__CONSECUTIVEFAILURES": "7"},
			func(c *config.Config) (any, any) {
				return c.Upstreams.UserStore.Operations.Search.Breaker.ConsecutiveFailures, uint32(7)
			}},
		{"float64", "", map[string]string{"GATEWAY_TRACING__SAMPLERATIO": "0.25"},
			func(c *config.Config) (any, any) { return c.Tracing.SampleRatio, 0.25 }},
		{"duration", "", map[string]string{"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__SEARCH__TIMEOUT": "1500ms"},
			func(c *config.Config) (any, any) {
				return c.Upstreams.UserStore.Operations.Search.Timeout, 1500 * time.Millisecond
			}},
		{"duration zero", "", map[string]string{"GATEWAY_SERVER__SHUTDOWNDELAY": "0"},
			func(c *config.Config) (any, any) { return c.Server.ShutdownDelay, time.Duration(0) }},
		{"ByteSize", "", map[string]string{"GATEWAY_SERVER__BODYLIMIT": "1MiB"},
			func(c *config.Config) (any, any) { return c.Server.BodyLimit, config.ByteSize(1 << 20) }},
		{"list", "", map[string]string{"GATEWAY_AUTH__AUDIENCES": " app-a, app-b,,app-c "},
			func(c *config.Config) (any, any) { return strings.Join(c.Auth.Audiences, "|"), "app-a|app-b|app-c" }},
		{"list replaces the file's", "server:\n  trustedProxies: [10.0.0.0/8, 10.1.0.0/16]\n",
			map[string]string{"GATEWAY_SERVER__TRUSTEDPROXIES": "192.168.0.0/16"},
			func(c *config.Config) (any, any) { return strings.Join(c.Server.TrustedProxies, "|"), "192.168.0.0/16" }},
		{"pointer in a policy absent from the file", "", map[string]string{"GATEWAY_POLICIES__MOBILE_IOS__MAXPAGESIZE": "25"},
			func(c *config.Config) (any, any) {
				p, ok := c.Policies["mobile_ios"]
				if !ok || p.MaxPageSize == nil {
					return "no policies.mobile_ios.maxPageSize", 25
				}
				return *p.MaxPageSize, 25
			}},
		{"nested pointers", "", map[string]string{"GATEWAY_POLICIES__WEB__RATELIMITS__PERUSER__RATE": "2.5"},
			func(c *config.Config) (any, any) {
				rl := c.Policies["web"].RateLimits
				if rl == nil || rl.PerUser == nil {
					return "no policies.web.rateLimits.perUser", 2.5
				}
				return rl.PerUser.Rate, 2.5
			}},
		{"route rule", "", map[string]string{"GATEWAY_POLICIES__MOBILE_IOS__ROUTES__USERS_SEARCH__ALLOW": "false"},
			func(c *config.Config) (any, any) {
				r, ok := c.Policies["mobile_ios"].Routes[config.RouteSearch]
				if !ok || r.Allow == nil {
					return "no policies.mobile_ios.routes.users.search.allow", false
				}
				return *r.Allow, false
			}},
		{"cache ttl map entry", "", map[string]string{"GATEWAY_POLICIES__WEB__CACHE__TTL__SEARCH": "45s"},
			func(c *config.Config) (any, any) {
				if c.Policies["web"].Cache == nil {
					return "no policies.web.cache", 45 * time.Second
				}
				return c.Policies["web"].Cache.TTL["search"], 45 * time.Second
			}},
		{"merges into a policy from the file",
			"policies:\n  web:\n    maxPageSize: 10\n    routes:\n      users.me:\n        roles: [user]\n",
			map[string]string{"GATEWAY_POLICIES__WEB__ROUTES__USERS_ME__SCOPES": "profile"},
			func(c *config.Config) (any, any) {
				p := c.Policies["web"]
				r := p.Routes[config.RouteMe]
				got := fmt.Sprintf("maxPageSize %v, roles %v, scopes %v", ptrValue(p.MaxPageSize), r.Roles, r.Scopes)
				return got, "maxPageSize 10, roles [user], scopes [profile]"
			}},
		{"empty variable is unset", "server:\n  listen: 127.0.0.1:1111\n", map[string]string{"GATEWAY_SERVER__LISTEN": ""},
			func(c *config.Config) (any, any) { return c.Server.Listen, "127.0.0.1:1111" }},
		{"blank variable is unset", "", map[string]string{"GATEWAY_OPS__LISTEN": "  "},
			func(c *config.Config) (any, any) { return c.Ops.Listen, "127.0.0.1:9090" }},
		{"unknown variable is ignored", "", map[string]string{"GATEWAY_POLICIES__IOS__MAXPAGESIZE": "nonsense"},
			func(c *config.Config) (any, any) { return len(c.Policies), 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, tt.file, env(tt.vars))
			if got, want := tt.check(cfg); got != want {
				t.Errorf("got %v (%T), want %v (%T)", got, got, want, want)
			}
		})
	}
}

func ptrValue[T any](p *T) any {
	if p == nil {
		return "nil"
	}
	return *p
}

func TestRequiredFieldsFromTheEnvironmentAlone(t *testing.T) {
	cfg := mustParse(t, "", env(map[string]string{
		"GATEWAY_AUTH__JWKSURLS": "https://a.example.com/jwks, https://b.example.com/jwks",
	}))
	if !slices.Equal(cfg.Auth.JWKSURLs, []string{"https://a.example.com/jwks", "https://b.example.com/jwks"}) {
		t.Errorf("auth.jwksURLs = %q", cfg.Auth.JWKSURLs)
	}
}

func TestBadEnvironmentValuesAreReportedByVariable(t *testing.T) {
	tests := []struct{ name, value, yamlPath string }{
		{"GATEWAY_SERVER__MAXCONNECTIONS", "lots", "server.maxConnections"},
		{"GATEWAY_SERVER__MAXCONNECTIONS", "99999999999999999999", "server.maxConnections"},
		{"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__SEARCH__BREAKER__CONSECUTIVEFAILURES", "-1",
			"upstreams.userstore.operations.search.breaker.consecutiveFailures"},
		{"GATEWAY_UPSTREAMS__USERSTORE__OPERATIONS__SEARCH__BREAKER__CONSECUTIVEFAILURES", "4294967296",
			"upstreams.userstore.operations.search.breaker.consecutiveFailures"},
		{"GATEWAY_OPS__PPROF", "yes please", "ops.pprof"},
		{"GATEWAY_SERVER__READTIMEOUT", "5", "server.readTimeout"},
		{"GATEWAY_SERVER__BODYLIMIT", "-1KiB", "server.bodyLimit"},
		{"GATEWAY_TRACING__SAMPLERATIO", "NaN", "tracing.sampleRatio"},
		{"GATEWAY_TRACING__SAMPLERATIO", "+Inf", "tracing.sampleRatio"},
		{"GATEWAY_TRACING__SAMPLERATIO", "a quarter", "tracing.sampleRatio"},
		{"GATEWAY_POLICIES__MOBILE_IOS__MAXPAGESIZE", "ten", "policies.mobile_ios.maxPageSize"},
		{"GATEWAY_POLICIES__MOBILE_IOS__ROUTES__USERS_SEARCH__ALLOW", "nope", "policies.mobile_ios.routes.users.search.allow"},
		{"GATEWAY_POLICIES__WEB__CACHE__TTL__SEARCH", "soon", "policies.web.cache.ttl.search"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			ps := parseProblems(t, "", env(map[string]string{tt.name: tt.value}))
			expectProblems(t, ps, want{tt.name, "(overrides " + tt.yamlPath + ")"})
		})
	}
	for value, hint := range map[string]string{"5": "write a number with a unit", "99999999h": "too long"} {
		t.Run("GATEWAY_SERVER__READTIMEOUT="+value+" says why", func(t *testing.T) {
			ps := parseProblems(t, "", env(map[string]string{"GATEWAY_SERVER__READTIMEOUT": value}))
			expectProblems(t, ps, want{"GATEWAY_SERVER__READTIMEOUT", fmt.Sprintf("invalid duration %q: %s", value, hint)})
		})
	}

	t.Run("all at once, with the file's problems", func(t *testing.T) {
		ps := parseProblems(t, "server:\n  lisen: x\n", env(map[string]string{
			"GATEWAY_SERVER__MAXCONNECTIONS": "lots",
			"GATEWAY_OPS__PPROF":             "perhaps",
		}))
		expectProblems(t, ps,
			want{"server.lisen", "unknown key"},
			want{"GATEWAY_SERVER__MAXCONNECTIONS", `invalid integer "lots"`},
			want{"GATEWAY_OPS__PPROF", `invalid boolean "perhaps"`},
		)
	})
}

// A variable whose value parses but is out of range is named beside the
// setting's path: the file, where one looks first, may have another value
// or none.
func TestValuesOutOfRangeNameTheirVariable(t *testing.T) {
	ps := parseProblems(t, "server:\n  readTimeout: 11m\n", env(map[string]string{
		"GATEWAY_SERVER__BODYLIMIT":      "100",
		"GATEWAY_SERVER__TRUSTEDPROXIES": "10.0.0.0/8, foo",
		"GATEWAY_LOG__LEVEL":             "verbose",
		"GATEWAY_SERVER__IDLETIMEOUT":    "1m",
	}))
	expectProblems(t, ps,
		want{"server.bodyLimit", "must be between 1KiB and 64MiB (got 100) (set by GATEWAY_SERVER__BODYLIMIT)"},
		want{"server.trustedProxies[1]", `not a CIDR or IP address: "foo" (set by GATEWAY_SERVER__TRUSTEDPROXIES)`},
		want{"log.level", `(got "verbose") (set by GATEWAY_LOG__LEVEL)`},
		want{"server.readTimeout", "must be at most 10m (got 11m0s)"},
	)
	for _, p := range ps {
		if p.Path == "server.readTimeout" && strings.Contains(p.Message, "set by") {
			t.Errorf("the file's own value is said to come from the environment: %s", p)
		}
	}
	// The policies' problems, found once the values pass, are named so too.
	ps = config.NameOverrides(config.Problems{
		{Path: "policies.web.maxPageSize", Message: "must be between 1 and 100"},
		{Path: "policies.api.maxPageSize", Message: "must be between 1 and 100"},
	}, env(map[string]string{"GATEWAY_POLICIES__WEB__MAXPAGESIZE": "0"}))
	expectProblems(t, ps,
		want{"policies.web.maxPageSize", "must be between 1 and 100 (set by GATEWAY_POLICIES__WEB__MAXPAGESIZE)"},
		want{"policies.api.maxPageSize", "must be between 1 and 100"},
	)
	if strings.Contains(ps[1].Message, "set by") {
		t.Errorf("a setting no variable set is said to come from one: %s", ps[1])
	}
}

func TestAnchorsAliasesAndMerges(t *testing.T) {
	cfg := mustParse(t, `
upstreams:
  userstore:
    operations:
      search: &op
        timeout: 700ms
        breaker: {consecutiveFailures: 9}
      userById: *op
      liveStreams:
        <<: *op
        timeout: 250ms
policies:
  all: &base
    maxPageSize: 20
    requireRoles: &roles [user]
  web:
    <<: *base
    fields:
      public: *roles
`, env(nil))
	ops := cfg.Upstreams.UserStore.Operations
	checks := []struct {
		name      string
		got, want any
	}{
		{"search.timeout", ops.Search.Timeout, 700 * time.Millisecond},
		{"userById.timeout (alias)", ops.UserByID.Timeout, 700 * time.Millisecond},
		{"userById.breaker (alias)", ops.UserByID.Breaker.ConsecutiveFailures, uint32(9)},
		{"userById.maxInFlight (default kept)", ops.UserByID.MaxInFlight, 256},
		{"liveStreams.timeout (merge overridden)", ops.LiveStreams.Timeout, 250 * time.Millisecond},
		{"liveStreams.breaker (merged)", ops.LiveStreams.Breaker.ConsecutiveFailures, uint32(9)},
		{"policies.web.requireRoles (merged)", strings.Join(cfg.Policies["web"].RequireRoles, ","), "user"},
		{"policies.web.fields.public (alias)", strings.Join(cfg.Policies["web"].Fields.Public, ","), "user"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if p := cfg.Policies["web"].MaxPageSize; p == nil || *p != 20 {
		t.Errorf("policies.web.maxPageSize not merged from policies.all")
	}
}

func TestDocumentMarkers(t *testing.T) {
	for _, file := range []string{
		"---\nlog:\n  level: debug\n",
		"log:\n  level: debug\n...\n",
		"log:\n  level: debug\n---\n",
		"log:\n  level: debug\n---\n# the end\n",
	} {
		if cfg := mustParse(t, file, env(nil)); cfg.Log.Level != "debug" {
			t.Errorf("%q: log.level = %q", file, cfg.Log.Level)
		}
	}
}

// An anchor may be shared by settings of different types; reading a bare 0
// as a duration must not change what the other setting reads.
func TestSharedScalarAnchor(t *testing.T) {
	cfg := mustParse(t, `
server:
  shutdownDelay: &zero 0
upstreams:
  userstore:
    retryBudget:
      minPerSecond: *zero
cache:
  routes:
    me:
      ttl: *zero
`, env(nil))
	if cfg.Server.ShutdownDelay != 0 || cfg.Upstreams.UserStore.RetryBudget.MinPerSecond != 0 || cfg.Cache.Routes.Me.TTL != 0 {
		t.Errorf("got shutdownDelay %v, minPerSecond %d, me.ttl %v",
			cfg.Server.ShutdownDelay, cfg.Upstreams.UserStore.RetryBudget.MinPerSecond, cfg.Cache.Routes.Me.TTL)
	}

	cfg = mustParse(t, "upstreams:\n  userstore:\n    retryBudget:\n      minPerSecond: &zero 0\nserver:\n  shutdownDelay: *zero\n", env(nil))
	if cfg.Server.ShutdownDelay != 0 {
		t.Errorf("shutdownDelay = %v", cfg.Server.ShutdownDelay)
	}
}

func TestAnchorMistakesAreReportedOnce(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		wants []want
	}{
		{"bad value behind two aliases",
			"policies:\n  all: &p\n    maxPageSize: many\n  web: *p\n  admin: *p\n",
			[]want{{"policies.all.maxPageSize", "cannot unmarshal !!str `many` into int (line 3)"}}},
		{"merge of a scalar", "server:\n  <<: 5\n  listen: 127.0.0.1:1\n",
			[]want{{"server", "a merge (<<) takes a mapping or a list of mappings (line 2)"}}},
		{"merge of an alias of a list", "server:\n  trustedProxies: &l [10.0.0.0/8]\n  <<: *l\n",
			[]want{{"server", "a merge (<<) takes a mapping or a list of mappings (line 3)"}}},
		{"merge of a list holding a scalar", "server:\n  <<: [{listen: 127.0.0.1:1}, 5]\n  maxConnections: abc\n",
			[]want{
				{"server", "a merge (<<) takes a mapping or a list of mappings (line 2)"},
				{"server.maxConnections", "cannot unmarshal"},
			}},
		{"merge of a list of mappings with a typo",
			"server:\n  <<: [{listen: 127.0.0.1:1}, {idleTimeOut: 1s}]\n",
			[]want{{"server.idleTimeOut", `did you mean "idleTimeout"?`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectProblems(t, parseProblems(t, tt.file, env(nil)), tt.wants...)
		})
	}
}

// Aliases are followed where they are used, so a small file can stand for
// a huge one: nested merges of nine aliases each (a "billion laughs"), or
// policies × routes × roles each written once, took the checks minutes to
// hours before yaml's own limit refused them, a start that never listened
// and a reload that pinned a core. An anchor that merges itself was
// followed until the stack overflowed, killing a running gateway on
// reload. Each is refused at once, the reload changing nothing.
func TestAliasBombsAreRefused(t *testing.T) {
	nested := func(depth int) string {
		items := []string{"&a0 {listen: 127.0.0.1:1}"}
		for d := 1; d <= depth; d++ {
			items = append(items, fmt.Sprintf("&a%d {<<: [%s]}", d, strings.Repeat(fmt.Sprintf("*a%d,", d-1), 8)+fmt.Sprintf("*a%d", d-1)))
		}
		return "server:\n  <<: [" + strings.Join(items, ", ") + "]\n"
	}
	// 300 platforms × 300 routes × 300 roles, in 12 KB.
	var cube strings.Builder
	cube.WriteString("policies:\n  p0:\n    routes: &rt\n      r0: &rr {roles: [" + strings.Repeat("x,", 299) + "x]}\n")
	for i := 1; i < 300; i++ {
		fmt.Fprintf(&cube, "      r%d: *rr\n", i)
	}
	for i := 1; i < 300; i++ {
		fmt.Fprintf(&cube, "  p%d: {routes: *rt}\n", i)
	}
	tests := []struct {
		name, file string
		want       want
	}{
		{"an anchor merging itself", "log: &a {<<: *a}\n", want{"config", `anchor "a" holds an alias of itself (line 1)`}},
		{"an anchor merging itself deeper", "server:\n  <<: &s\n    readTimeout: 5s\n    <<: [{idleTimeout: 1m}, *s]\n",
			want{"config", `anchor "s" holds an alias of itself (line 4)`}},
		{"nested merges", nested(12), want{"config", "aliases repeat more than 100000 values"}},
		// Sizes past an int's: the count must not wrap round below the limit.
		{"nested merges, deeper", nested(30), want{"config", "aliases repeat more than 100000 values"}},
		{"policies, routes and roles", cube.String(), want{"config", "aliases repeat more than 100000 values"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := config.Parse([]byte(tt.file), env(nil))
				done <- err
			}()
			select {
			case err := <-done:
				var ps config.Problems
				if !errors.As(err, &ps) {
					t.Fatalf("Parse: %v, want problems", err)
				}
				expectProblems(t, ps, tt.want)
			case <-time.After(10 * time.Second):
				t.Fatal("Parse still running after 10s")
			}
		})
	}
	// Aliases that repeat less are read as ever: 5 platforms × 2,000 roles.
	roles := "[" + strings.Repeat("r,", 1999) + "r]"
	cfg := mustParse(t, "policies:\n  all: {requireRoles: &r "+roles+"}\n  web: {requireRoles: *r}\n  api: {requireRoles: *r}\n"+
		"  unknown: {requireRoles: *r}\n  mobile_ios: {requireRoles: *r}\n", env(nil))
	if n := len(cfg.Policies["unknown"].RequireRoles); n != 2000 {
		t.Errorf("policies.unknown.requireRoles has %d roles, want 2000", n)
	}
	// The bound is on what aliases add, not on the file: 60,000 roles
	// written out, repeated once.
	roles = "[" + strings.Repeat("r,", 59999) + "r]"
	cfg = mustParse(t, "policies:\n  all: {requireRoles: &r "+roles+"}\n  web: {requireRoles: *r}\n", env(nil))
	if n := len(cfg.Policies["web"].RequireRoles); n != 60000 {
		t.Errorf("policies.web.requireRoles has %d roles, want 60000", n)
	}
	// The bound exactly: an alias of a list of 100,000 roles adds 100,000
	// values (the list's own node stands for the alias); one role more is
	// refused.
	roles = "[" + strings.Repeat("r,", 99999) + "r]"
	mustParse(t, "policies:\n  all: {requireRoles: &r "+roles+"}\n  web: {requireRoles: *r}\n", env(nil))
	expectProblems(t, parseProblems(t, "policies:\n  all: {requireRoles: &r "+roles[:len(roles)-1]+",r]}\n  web: {requireRoles: *r}\n", env(nil)),
		want{"config", "aliases repeat more than 100000 values"})
}

func TestDuplicateKeysAreAnError(t *testing.T) {
	tests := []struct {
		name, file string
		want       want
	}{
		{"in a section", "server:\n  listen: 127.0.0.1:1\n  listen: 127.0.0.1:2\n",
			want{"server.listen", `mapping key "listen" already defined at line 2`}},
		{"in the policies map", "policies:\n  web:\n    maxPageSize: 1\n  web:\n    maxPageSize: 2\n",
			want{"policies.web", `mapping key "web" already defined at line 2`}},
		{"at the top", "log:\n  level: info\nlog:\n  level: debug\n",
			want{"log", `mapping key "log" already defined at line 1`}},
		// yaml refuses it by its line only, which names the key the
		// second merge brings in.
		{"two merges", "server:\n  <<: {listen: 127.0.0.1:1}\n  <<: {readTimeout: 5s}\n",
			want{"server.<<", `mapping key "<<" already defined at line 2`}},
		{"two merges in the policies map", "policies:\n  <<: {web: {}}\n  <<: {api: {maxPageSize: 5}}\n",
			want{"policies.<<", `mapping key "<<" already defined at line 2`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectProblems(t, parseProblems(t, tt.file, env(nil)), tt.want)
		})
	}
}

// yaml drops a null entry from a list without a word: "roles: [~]", or an
// item left empty ("- " with its value commented out), would read as
// "roles: []", which opens the route to any verified user, where an empty
// name ("") is refused. A null entry is refused at its index instead.
func TestNullListEntriesAreRefused(t *testing.T) {
	tests := []struct {
		name, file string
		want       want
	}{
		{"flow", "policies:\n  web:\n    routes:\n      users.search: {roles: [~]}\n",
			want{"policies.web.routes.users.search.roles[0]", "empty list entry (line 4)"}},
		{"block item left empty", "policies:\n  web:\n    routes:\n      users.search:\n        roles:\n          - # premium\n",
			want{"policies.web.routes.users.search.roles[0]", "empty list entry (line 6)"}},
		{"beside a value", "auth:\n  audiences: [edge-gateway, null]\n",
			want{"auth.audiences[1]", "empty list entry (line 2)"}},
		{"through an alias", "log:\n  level: &nothing ~\nserver:\n  trustedProxies: [*nothing]\n",
			want{"server.trustedProxies[0]", "empty list entry"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectProblems(t, parseProblems(t, tt.file, env(nil)), tt.want)
		})
	}
	// A null key is dropped the same way: the whole entry would vanish.
	expectProblems(t, parseProblems(t, "policies:\n  ~:\n    routes: {users.search: {roles: [admin]}}\n", env(nil)),
		want{"policies", "empty key (line 2)"})
	expectProblems(t, parseProblems(t, "server:\n  trustedProxies: [10.0.0.0/8]\npolicies:\n  web: {}\n  null: {}\n", env(nil)),
		want{"policies", "empty key (line 5)"})
	// An empty list is still a list: "roles: []" is written on purpose.
	cfg := mustParse(t, "policies:\n  web:\n    routes:\n      users.search: {roles: []}\n", env(nil))
	if r := cfg.Policies["web"].Routes["users.search"].Roles; r == nil || len(r) != 0 {
		t.Errorf("roles: [] read as %#v", r)
	}
}

func TestMalformedFiles(t *testing.T) {
	tests := []struct {
		name, file string
		wants      []want
	}{
		{"not YAML", "server: [unclosed\n", []want{{"config", "not valid YAML"}}},
		{"tab indentation", "server:\n\tlisten: x\n", []want{{"config", "not valid YAML"}}},
		{"a list at the top", "- server\n", []want{{"config", "expected a mapping (line 1)"}}},
		{"two documents", "log:\n  level: info\n---\nlog:\n  level: debug\n",
			[]want{{"config", "only one YAML document is allowed (another starts at line 3)"}}},
		{"a broken second document", "log:\n  level: info\n---\nlog: [\n",
			[]want{{"config", "not valid YAML"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectProblems(t, parseProblems(t, tt.file, env(nil)), tt.wants...)
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(good, []byte("log:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(good, env(nil))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("log.level = %q", cfg.Log.Level)
	}

	if _, err := config.Load(filepath.Join(dir, "missing.yaml"), env(nil)); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want a not-exist error", err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("log:\n  level: chatty\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = config.Load(bad, env(nil))
	if cfg != nil || err == nil || !strings.Contains(err.Error(), "log.level: must be one of debug, info, warn, error") {
		t.Errorf("invalid file: got %v, %v", cfg, err)
	}
}

func TestParseWithoutEnvironment(t *testing.T) {
	cfg := mustParse(t, `
auth:
  jwksURLs: [https://idp.example.com/jwks]
  issuer: https://idp.example.com/
upstreams:
  userstore:
    baseURL: http://userstore.internal:8080
`, nil)
	if cfg.Upstreams.UserStore.BaseURL != "http://userstore.internal:8080" {
		t.Errorf("baseURL = %q", cfg.Upstreams.UserStore.BaseURL)
	}
}

func TestProblemsError(t *testing.T) {
	ps := config.Problems{{Path: "a.b", Message: "wrong"}, {Path: "GATEWAY_C", Message: "bad"}}
	const want = "2 configuration problem(s):\n  - a.b: wrong\n  - GATEWAY_C: bad"
	if got := ps.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestEnvironmentOverrideInsideAPolicyKeepsTheFile: a variable that sets one
// field of a block the file wrote (a rate limit, a policy's cache) changes
// that field alone; the block's other fields stay as the file has them. A
// rate lost here would read as 0, which turns the limit off.
func TestEnvironmentOverrideInsideAPolicyKeepsTheFile(t *testing.T) {
	cfg := mustParse(t, "policies:\n  web:\n    rateLimits:\n      perIP: {rate: 5, burst: 10}\n      perUser: {rate: 2, burst: 4}\n    cache:\n      bypass: true\n",
		env(map[string]string{
			"GATEWAY_POLICIES__WEB__RATELIMITS__PERIP__BURST": "20",
			"GATEWAY_POLICIES__WEB__CACHE__TTL__SEARCH":       "45s",
		}))
	p := cfg.Policies["web"]
	if p.RateLimits == nil || p.RateLimits.PerIP == nil || p.RateLimits.PerUser == nil {
		t.Fatalf("rate limits lost: %+v", p.RateLimits)
	}
	if got := *p.RateLimits.PerIP; got != (config.Limit{Rate: 5, Burst: 20}) {
		t.Errorf("perIP = %+v, want rate 5 from the file and burst 20 from the environment", got)
	}
	if got := *p.RateLimits.PerUser; got != (config.Limit{Rate: 2, Burst: 4}) {
		t.Errorf("perUser = %+v, want the file's rate 2, burst 4", got)
	}
	if p.Cache == nil || ptrValue(p.Cache.Bypass) != true || p.Cache.TTL["search"] != 45*time.Second {
		t.Errorf("cache = %+v, want the file's bypass and the environment's ttl", p.Cache)
	}
}
