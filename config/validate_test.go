package config_test

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
)

func TestValidateRules(t *testing.T) {
	const search = "upstreams.userstore.operations.search"
	tests := []struct {
		name   string
		change func(*config.Config)
		wants  []want // none: the change is valid
	}{
		// Algorithms.
		{"HS256 refused", func(c *config.Config) { c.Auth.Algorithms = []string{"RS256", "HS256"} },
			[]want{{"auth.algorithms[1]", `"HS256" is not allowed; use asymmetric algorithms only`}}},
		{"none refused", func(c *config.Config) { c.Auth.Algorithms = []string{"none"} },
			[]want{{"auth.algorithms[0]", `"none" is not allowed`}}},
		{"algorithm names are case sensitive", func(c *config.Config) { c.Auth.Algorithms = []string{"rs256"} },
			[]want{{"auth.algorithms[0]", "not allowed"}}},
		{"no algorithm", func(c *config.Config) { c.Auth.Algorithms = nil },
			[]want{{"auth.algorithms", "at least one"}}},
		{"asymmetric algorithms accepted", func(c *config.Config) { c.Auth.Algorithms = []string{"PS256", "ES512", "EdDSA"} }, nil},
		{"no audience", func(c *config.Config) { c.Auth.Audiences = nil }, []want{{"auth.audiences", "at least one"}}},
		{"an empty audience", func(c *config.Config) { c.Auth.Audiences = []string{"edge-gateway", " "} },
			[]want{{"auth.audiences[1]", "must not be empty"}}},
		{"tracing without a service name", func(c *config.Config) {
			c.Tracing.Enabled, c.Tracing.Endpoint, c.Tracing.ServiceName = true, "collector:4318", " "
		}, []want{{"tracing.serviceName", "required when tracing is enabled"}}},
		{"intervals that would spin", func(c *config.Config) {
			c.Auth.JWKS.RefreshInterval, c.Auth.JWKS.UnknownKIDInterval = time.Nanosecond, time.Microsecond
			c.Auth.JWKS.RetryInterval, c.Cache.CleanupInterval = 9*time.Millisecond, time.Nanosecond
		}, []want{
			{"auth.jwks.refreshInterval", "at least 10ms (got 1ns)"}, {"auth.jwks.unknownKIDInterval", "at least 10ms"},
			{"auth.jwks.retryInterval", "at least 10ms"}, {"cache.cleanupInterval", "at least 10ms"},
		}},
		{"the shortest interval", func(c *config.Config) {
			c.Auth.JWKS.RefreshInterval, c.Cache.CleanupInterval = 10*time.Millisecond, 10*time.Millisecond
		}, nil},
		{"leeway too long", func(c *config.Config) { c.Auth.Leeway = 10 * time.Minute }, []want{{"auth.leeway", "between 0s and 5m"}}},

		// Timeouts.
		{"operation timeout longer than the request timeout",
			func(c *config.Config) { c.Upstreams.UserStore.Operations.Search.Timeout = 4 * time.Second },
			[]want{{search + ".timeout", "4s is longer than server.requestTimeout (3s)"}}},
		{"operation timeout equal to the request timeout",
			func(c *config.Config) { c.Upstreams.UserStore.Operations.Search.Timeout = 3 * time.Second }, nil},
		{"zero operation timeout", func(c *config.Config) { c.Upstreams.UserStore.Operations.LiveStreams.Timeout = 0 },
			[]want{{"upstreams.userstore.operations.liveStreams.timeout", "positive duration"}}},
		// The store client waits at least 1ms for a pooled connection, and
		// a reload refuses a timeout no longer than that wait: a gateway
		// started with one would refuse every reload that changes anything.
		{"operation timeout of 1ms", func(c *config.Config) { c.Upstreams.UserStore.Operations.LiveStreams.Timeout = time.Millisecond },
			[]want{{"upstreams.userstore.operations.liveStreams.timeout", "must be longer than 1ms (got 1ms)"}}},
		{"operation timeout just over 1ms", func(c *config.Config) {
			c.Upstreams.UserStore.Operations.LiveStreams.Timeout = time.Millisecond + time.Microsecond
		}, nil},
		{"zero request timeout", func(c *config.Config) { c.Server.RequestTimeout = 0 },
			[]want{{"server.requestTimeout", "positive duration"}}},
		{"negative shutdown delay", func(c *config.Config) { c.Server.ShutdownDelay = -time.Second },
			[]want{{"server.shutdownDelay", "must not be negative"}}},
		{"server timeouts with a wrong unit", func(c *config.Config) {
			s := &c.Server
			s.ReadTimeout, s.WriteTimeout, s.IdleTimeout = 10*time.Minute+time.Millisecond, 10000*time.Second, 60*time.Hour
			s.RequestTimeout, s.ShutdownDelay, s.DrainTimeout = 3000*time.Second, 5*time.Hour, 15*time.Hour
		}, []want{
			{"server.readTimeout", "must be at most 10m (got 10m0.001s)"}, {"server.writeTimeout", "at most 10m (got 2h46m40s)"},
			{"server.idleTimeout", "at most 2h (got 60h0m0s)"},
			{"server.requestTimeout", "must be at most 2m (got 50m0s): an app gives up long before"},
			{"server.shutdownDelay", "at most 5m (got 5h0m0s)"}, {"server.drainTimeout", "at most 10m (got 15h0m0s)"},
		}},
		{"other timeouts with a wrong unit", func(c *config.Config) {
			c.Auth.JWKS.FetchTimeout, c.Upstreams.UserStore.Operations.Search.Breaker.OpenTimeout = 3*time.Hour, 5*time.Hour
		}, []want{
			{"auth.jwks.fetchTimeout", "at most 1m (got 3h0m0s)"}, {search + ".breaker.openTimeout", "at most 10m (got 5h0m0s)"},
		}},
		{"other timeouts at their bounds", func(c *config.Config) {
			c.Auth.JWKS.FetchTimeout, c.Upstreams.UserStore.Operations.Search.Breaker.OpenTimeout = time.Minute, 10*time.Minute
		}, nil},
		{"server timeouts at their bounds", func(c *config.Config) {
			s := &c.Server
			s.ReadTimeout, s.WriteTimeout, s.IdleTimeout = 10*time.Minute, 10*time.Minute, 2*time.Hour
			s.RequestTimeout, s.ShutdownDelay, s.DrainTimeout = 2*time.Minute, 5*time.Minute, 10*time.Minute
		}, nil},
		// config.MaxRequestTimeout is that bound, and the store client
		// sizes its pools' own timeouts by it (upstream/client.go).
		{"request timeout just past its bound", func(c *config.Config) { c.Server.RequestTimeout = 2*time.Minute + time.Millisecond },
			[]want{{"server.requestTimeout", "must be at most 2m (got 2m0.001s)"}}},

		// Breakers and retries.
		{"breaker without a trip rule", func(c *config.Config) {
			b := &c.Upstreams.UserStore.Operations.Search.Breaker
			b.ConsecutiveFailures, b.FailureRatio = 0, 0
		}, []want{{search + ".breaker", "needs a trip rule"}}},
		{"breaker with only consecutive failures", func(c *config.Config) {
			b := &c.Upstreams.UserStore.Operations.Search.Breaker
			b.FailureRatio, b.MinRequests = 0, 0
		}, nil},
		{"failure ratio above 1", func(c *config.Config) { c.Upstreams.UserStore.Operations.Search.Breaker.FailureRatio = 1.5 },
			[]want{{search + ".breaker.failureRatio", "between 0 and 1"}}},
		{"failure ratio NaN", func(c *config.Config) { c.Upstreams.UserStore.Operations.Search.Breaker.FailureRatio = math.NaN() },
			[]want{{search + ".breaker.failureRatio", "between 0 and 1"}}},
		{"failure ratio without min requests", func(c *config.Config) { c.Upstreams.UserStore.Operations.Search.Breaker.MinRequests = 0 },
			[]want{{search + ".breaker.minRequests", "at least 1"}}},
		{"no half-open trial", func(c *config.Config) { c.Upstreams.UserStore.Operations.Search.Breaker.HalfOpenRequests = 0 },
			[]want{{search + ".breaker.halfOpenRequests", "at least 1"}}},
		{"too many retries", func(c *config.Config) { c.Upstreams.UserStore.Operations.Search.Retry.Attempts = 6 },
			[]want{{search + ".retry.attempts", "between 0 and 5"}}},
		{"no retries still refuse negative backoffs", func(c *config.Config) {
			r := &c.Upstreams.UserStore.Operations.Search.Retry
			r.Attempts, r.BaseBackoff, r.MaxBackoff = 0, -time.Millisecond, -time.Second
		}, []want{{search + ".retry.baseBackoff", "must not be negative"}, {search + ".retry.maxBackoff", "must not be negative"}}},
		{"no retries need no backoffs", func(c *config.Config) {
			r := &c.Upstreams.UserStore.Operations.Search.Retry
			r.Attempts, r.BaseBackoff, r.MaxBackoff = 0, 0, 0
		}, nil},
		{"max backoff below base", func(c *config.Config) {
			c.Upstreams.UserStore.Operations.Search.Retry.MaxBackoff = time.Millisecond
		}, []want{{search + ".retry.maxBackoff", "must not be shorter"}}},
		{"retry budget NaN", func(c *config.Config) { c.Upstreams.UserStore.RetryBudget.Ratio = math.NaN() },
			[]want{{"upstreams.userstore.retryBudget.ratio", "between 0 and 1"}}},
		{"retry budget negative floor", func(c *config.Config) { c.Upstreams.UserStore.RetryBudget.MinPerSecond = -1 },
			[]want{{"upstreams.userstore.retryBudget.minPerSecond", "must not be negative"}}},

		// Ops listener.
		{"public ops listener without token", func(c *config.Config) { c.Ops.Listen = "0.0.0.0:9090" },
			[]want{{"ops.token", "required when ops.listen is not a loopback address; set GATEWAY_OPS__TOKEN"}}},
		{"all-interfaces ops listener without token", func(c *config.Config) { c.Ops.Listen = ":9090" },
			[]want{{"ops.token", "required"}}},
		{"public ops listener with token", func(c *config.Config) {
			c.Ops.Listen, c.Ops.Token = "10.0.0.5:9090", "0123456789abcdef"
		}, nil},
		{"short ops token", func(c *config.Config) { c.Ops.Token = "short" }, []want{{"ops.token", "too short"}}},
		{"short invalidation token", func(c *config.Config) { c.Cache.InvalidationToken = "fifteen-chars!!" },
			[]want{{"cache.invalidationToken", "too short"}}},
		{"invalidation token of 16", func(c *config.Config) { c.Cache.InvalidationToken = "sixteen-chars!!!" }, nil},
		// A secret is sent or compared as a header value: a control
		// character (a line break inside a multi-line secret) would end
		// the service token's header and start others on every call to
		// the store, and makes the other two match nothing.
		{"service token with a line break", func(c *config.Config) {
			c.Upstreams.UserStore.ServiceToken = "store-secret-0123\r\nX-User-Roles: admin"
		}, []want{{"upstreams.userstore.serviceToken", "control character"}}},
		{"ops token with a tab", func(c *config.Config) { c.Ops.Token = "ops-secret\t0123456789" },
			[]want{{"ops.token", "control character"}}},
		{"invalidation token with a NUL", func(c *config.Config) { c.Cache.InvalidationToken = "invalidation\x00secret-01" },
			[]want{{"cache.invalidationToken", "control character"}}},
		{"service token of any printable characters", func(c *config.Config) {
			c.Upstreams.UserStore.ServiceToken = "a.b-c_d~e+f/g=h=="
		}, nil},
		{"IPv6 loopback ops listener", func(c *config.Config) { c.Ops.Listen = "[::1]:9090" }, nil},
		{"localhost ops listener", func(c *config.Config) { c.Ops.Listen = "localhost:9090" }, nil},
		{"ops listener off", func(c *config.Config) { c.Ops.Listen = "" }, nil},
		{"ops listener not host:port", func(c *config.Config) { c.Ops.Listen = "9090" },
			[]want{{"ops.listen", "not a host:port"}, {"ops.token", "required"}}},

		// Addresses and URLs.
		{"no listen address", func(c *config.Config) { c.Server.Listen = "" }, []want{{"server.listen", "required"}}},
		{"port out of range", func(c *config.Config) { c.Server.Listen = "127.0.0.1:65536" }, []want{{"server.listen", "invalid port"}}},
		{"named port", func(c *config.Config) { c.Server.Listen = "127.0.0.1:http" }, []want{{"server.listen", "invalid port"}}},
		{"JWKS URL with another scheme", func(c *config.Config) { c.Auth.JWKSURLs = []string{"ftp://idp.example.com/jwks"} },
			[]want{{"auth.jwksURLs[0]", "absolute http(s) URL"}}},
		{"JWKS URL without host", func(c *config.Config) {
			c.Auth.JWKSURLs = []string{"https://idp.example.com/jwks", "https://"}
		}, []want{{"auth.jwksURLs[1]", "absolute http(s) URL"}}},
		{"JWKS URL with credentials", func(c *config.Config) { c.Auth.JWKSURLs = []string{"https://u:p@idp.example.com/jwks"} },
			[]want{{"auth.jwksURLs[0]", "without credentials"}}},
		{"JWKS URL with fragment", func(c *config.Config) { c.Auth.JWKSURLs = []string{"https://idp.example.com/jwks#keys"} },
			[]want{{"auth.jwksURLs[0]", "fragment"}}},
		{"relative base URL", func(c *config.Config) { c.Upstreams.UserStore.BaseURL = "/users" },
			[]want{{"upstreams.userstore.baseURL", "absolute http(s) URL"}}},
		{"live streams URL missing its colon", func(c *config.Config) { c.Upstreams.UserStore.LiveStreamsBaseURL = "http//live" },
			[]want{{"upstreams.userstore.liveStreamsBaseURL", "absolute http(s) URL"}}},
		// What the gateway refuses at start, validate refuses too.
		{"base URL with a query", func(c *config.Config) { c.Upstreams.UserStore.BaseURL = "http://127.0.0.1:8082/?region=eu" },
			[]want{{"upstreams.userstore.baseURL", "without credentials, query or fragment"}}},
		{"JWKS URL with a query", func(c *config.Config) { c.Auth.JWKSURLs = []string{"https://idp.example.com/jwks?tenant=a"} }, nil},
		// A refused reload's problems are logged: no password in them.
		{"live streams URL with a password", func(c *config.Config) {
			c.Upstreams.UserStore.LiveStreamsBaseURL = "http://svc-gateway:Pr0dStorePassw0rd@livestreams:8083"
		}, []want{{"upstreams.userstore.liveStreamsBaseURL", `"http://svc-gateway:xxxxx@livestreams:8083"`}}},
		{"live streams URL with a password, missing its colon", func(c *config.Config) {
			c.Upstreams.UserStore.LiveStreamsBaseURL = "http//svc:Pr0dStorePassw0rd@live"
		}, []want{{"upstreams.userstore.liveStreamsBaseURL", `"xxxxx@live"`}}},
		{"base URL with a password, no scheme", func(c *config.Config) {
			c.Upstreams.UserStore.BaseURL = "svc-gateway:Pr0dStorePassw0rd@users:8082"
		}, []want{{"upstreams.userstore.baseURL", `"xxxxx@users:8082"`}}},
		// Nor a key in a query, nor a fragment (configuration.md: a JWKS
		// URL's query may carry the provider's key).
		{"JWKS URL with a key in its query, mistyped scheme", func(c *config.Config) {
			c.Auth.JWKSURLs = []string{"htp://idp.example.com/jwks?tenant=a&api_key=S3cretProviderKey&S3cretBare"}
		}, []want{{"auth.jwksURLs[0]", `"htp://idp.example.com/jwks?tenant=xxxxx&api_key=xxxxx&xxxxx"`}}},
		{"base URL with a token in its query", func(c *config.Config) { c.Upstreams.UserStore.BaseURL = "http://store:8082/?token=s3cretpass" },
			[]want{{"upstreams.userstore.baseURL", `"http://store:8082/?token=xxxxx"`}}},
		{"base URL with a password, a query and a fragment", func(c *config.Config) {
			c.Upstreams.UserStore.BaseURL = "http://svc:Pr0dStorePassw0rd@store:8082/?token=s3cretpass#s3cretfrag"
		}, []want{{"upstreams.userstore.baseURL", `"http://svc:xxxxx@store:8082/?token=xxxxx#xxxxx"`}}},
		// A user name alone may be a token (https://TOKEN@host).
		{"base URL with a token as its user", func(c *config.Config) { c.Upstreams.UserStore.BaseURL = "http://S3cretStoreToken@store:8082" },
			[]want{{"upstreams.userstore.baseURL", `"http://xxxxx@store:8082"`}}},
		{"JWKS URL with a password and a query, no scheme", func(c *config.Config) {
			c.Auth.JWKSURLs = []string{"svc:Pr0dPassw0rd@idp/jwks?key=S3cretProviderKey#S3cretFrag"}
		}, []want{{"auth.jwksURLs[0]", `"xxxxx@idp/jwks?key=xxxxx#xxxxx"`}}},
		{"tracing endpoint with a scheme", func(c *config.Config) {
			c.Tracing.Enabled, c.Tracing.Endpoint = true, "http://otel-collector:4318"
		}, []want{{"tracing.endpoint", "without a scheme"}}},
		// Nor in a refused tracing endpoint: it is host:port, and a
		// collector's credentials written into it are refused, masked.
		{"tracing endpoint with a scheme and a password", func(c *config.Config) {
			c.Tracing.Enabled, c.Tracing.Endpoint = true, "http://otel:Tr4cePassw0rd@otel-collector:4318"
		}, []want{{"tracing.endpoint", `without a scheme (got "http://otel:xxxxx@otel-collector:4318")`}}},
		{"tracing endpoint with a password", func(c *config.Config) {
			c.Tracing.Enabled, c.Tracing.Endpoint = true, "otel:Tr4cePassw0rd@otel-collector:4318"
		}, []want{{"tracing.endpoint", `without credentials (got "xxxxx@otel-collector:4318")`}}},
		{"tracing endpoint with a scheme and a token as its user", func(c *config.Config) {
			c.Tracing.Enabled, c.Tracing.Endpoint = true, "http://Tr4ceToken@otel-collector:4318"
		}, []want{{"tracing.endpoint", `without a scheme (got "http://xxxxx@otel-collector:4318")`}}},
		{"tracing endpoint with a token as its user", func(c *config.Config) {
			c.Tracing.Enabled, c.Tracing.Endpoint = true, "Tr4ceToken@otel-collector:4318"
		}, []want{{"tracing.endpoint", `without credentials (got "xxxxx@otel-collector:4318")`}}},
		// A key in a query, refused for its port or its path, is masked
		// too.
		{"tracing endpoint with a key in its query", func(c *config.Config) {
			c.Tracing.Enabled, c.Tracing.Endpoint = true, "otel-collector:4318?api-key=Tr4ceKey"
		}, []want{{"tracing.endpoint", `invalid port in "otel-collector:4318?api-key=xxxxx"`}}},
		{"tracing endpoint with a path and a key in its query", func(c *config.Config) {
			c.Tracing.Enabled, c.Tracing.Endpoint = true, "otel-collector/v1/traces?api-key=Tr4ceKey"
		}, []want{{"tracing.endpoint", `must be host:port (got "otel-collector/v1/traces?api-key=xxxxx")`}}},
		{"tracing endpoint without a port", func(c *config.Config) { c.Tracing.Enabled, c.Tracing.Endpoint = true, "otel-collector" },
			[]want{{"tracing.endpoint", "must be host:port"}}},
		{"tracing endpoint with a named port", func(c *config.Config) { c.Tracing.Enabled, c.Tracing.Endpoint = true, "otel-collector:http" },
			[]want{{"tracing.endpoint", "invalid port"}}},
		{"tracing endpoint with a port out of range", func(c *config.Config) { c.Tracing.Enabled, c.Tracing.Endpoint = true, "otel-collector:99999" },
			[]want{{"tracing.endpoint", "invalid port"}}},
		{"tracing endpoint with port 0", func(c *config.Config) { c.Tracing.Enabled, c.Tracing.Endpoint = true, "otel-collector:0" },
			[]want{{"tracing.endpoint", "invalid port"}}},
		{"tracing endpoint", func(c *config.Config) { c.Tracing.Enabled, c.Tracing.Endpoint = true, "otel-collector:4318" }, nil},
		{"no JWKS URL", func(c *config.Config) { c.Auth.JWKSURLs = nil }, []want{{"auth.jwksURLs", "required"}}},
		{"no issuer", func(c *config.Config) { c.Auth.Issuer = "" }, []want{{"auth.issuer", "required"}}},
		// Blank is unset: no token carries a blank iss, and no claim has a
		// blank name (every token would fail, or every caller be roleless).
		{"a blank issuer and claims", func(c *config.Config) { c.Auth.Issuer, c.Auth.RolesClaim, c.Auth.ScopesClaim = "  ", " ", "\t" },
			[]want{{"auth.issuer", "required"}, {"auth.rolesClaim", "required"}, {"auth.scopesClaim", "required"}}},

		// Trusted proxies.
		{"CIDRs and addresses", func(c *config.Config) {
			c.Server.TrustedProxies = []string{"10.0.0.0/8", "192.168.1.1", "fd00::/8", "::1"}
		}, nil},
		{"not a CIDR", func(c *config.Config) {
			c.Server.TrustedProxies = []string{"10.0.0.0/8", "10.0.0.0/33", "proxy.internal", "10.0.0/8"}
		}, []want{
			{"server.trustedProxies[1]", `not a CIDR or IP address: "10.0.0.0/33"`},
			{"server.trustedProxies[2]", `"proxy.internal"`},
			{"server.trustedProxies[3]", `"10.0.0/8"`},
		}},
		{"what the gateway refuses at start", func(c *config.Config) {
			c.Server.TrustedProxies = []string{"fe80::1%eth0", "::ffff:10.0.0.0/8", "::ffff:10.0.0.0/104"}
		}, []want{
			{"server.trustedProxies[0]", `not a CIDR or IP address: "fe80::1%eth0"`},
			{"server.trustedProxies[1]", "spans more than the IPv4-mapped range"},
		}},

		// Policies.
		{"known policy names", func(c *config.Config) {
			c.Policies = map[string]config.Policy{}
			for _, n := range config.PolicyNames {
				c.Policies[n] = config.Policy{}
			}
		}, nil},
		{"unknown policy names", func(c *config.Config) {
			c.Policies = map[string]config.Policy{"web": {}, "ios": {}, "Web": {}}
		}, []want{{"policies.ios", "unknown platform"}, {"policies.Web", "unknown platform"}}},

		// Sizes and counts.
		{"body limit too small", func(c *config.Config) { c.Server.BodyLimit = 512 },
			[]want{{"server.bodyLimit", "between 1KiB and 64MiB (got 512)"}}},
		{"body limit too large", func(c *config.Config) { c.Server.BodyLimit = 65 << 20 },
			[]want{{"server.bodyLimit", "between 1KiB and 64MiB"}}},
		{"body limit at the bounds", func(c *config.Config) { c.Server.BodyLimit, c.Server.HeaderLimit = 64<<20, 1<<10 }, nil},
		{"header limit too large", func(c *config.Config) { c.Server.HeaderLimit = 2 << 20 },
			[]want{{"server.headerLimit", "between 1KiB and 1MiB"}}},
		{"no connections", func(c *config.Config) { c.Server.MaxConnections = 0 },
			[]want{{"server.maxConnections", "between 1 and"}}},
		{"token size too small", func(c *config.Config) { c.Auth.MaxTokenBytes = 100 },
			[]want{{"auth.maxTokenBytes", "between 256 and 64KiB"}}},
		{"key set size zero", func(c *config.Config) { c.Auth.JWKS.MaxBytes = 0 },
			[]want{{"auth.jwks.maxBytes", "between 1KiB and 16MiB"}}},
		{"response size too large", func(c *config.Config) { c.Upstreams.UserStore.MaxResponseBytes = 300 << 20 },
			[]want{{"upstreams.userstore.maxResponseBytes", "between 1KiB and 256MiB"}}},
		{"cache too small", func(c *config.Config) { c.Cache.MaxBytes = 512 << 10 },
			[]want{{"cache.maxBytes", "between 1MiB and 64GiB"}}},
		{"no cache entries", func(c *config.Config) { c.Cache.MaxEntries = 0 },
			[]want{{"cache.maxEntries", "between 1 and"}}},
		{"token cache off needs no sizes", func(c *config.Config) {
			c.Auth.TokenCache = config.TokenCache{Enabled: false}
		}, nil},
		{"token cache off still refuses negative sizes", func(c *config.Config) {
			c.Auth.TokenCache = config.TokenCache{Enabled: false, MaxEntries: -1, MaxTTL: -time.Second}
		}, []want{{"auth.tokenCache.maxEntries", "must not be negative"}, {"auth.tokenCache.maxTTL", "must not be negative"}}},
		{"token cache on needs sizes", func(c *config.Config) { c.Auth.TokenCache.MaxEntries = 0 },
			[]want{{"auth.tokenCache.maxEntries", "between 1 and"}}},
		{"bulkhead of zero", func(c *config.Config) { c.Upstreams.UserStore.Operations.UserByID.MaxInFlight = 0 },
			[]want{{"upstreams.userstore.operations.userById.maxInFlight", "between 1 and 100000"}}},
		{"negative cache ttl", func(c *config.Config) { c.Cache.Routes.Me.TTL = -time.Second },
			[]want{{"cache.routes.me.ttl", "must not be negative"}}},
		{"cache durations a day long", func(c *config.Config) {
			c.Cache.Routes.Search = config.CacheRoute{TTL: 24 * time.Hour, EmptyQueryTTL: 24 * time.Hour,
				StaleWhileRevalidate: 24 * time.Hour, StaleIfError: 7 * 24 * time.Hour, ClientMaxAge: 24 * time.Hour}
		}, nil},
		{"cache durations beyond a day", func(c *config.Config) {
			c.Cache.Routes.Search = config.CacheRoute{TTL: 30 * time.Hour, EmptyQueryTTL: 25 * time.Hour,
				StaleWhileRevalidate: 25 * time.Hour, StaleIfError: 169 * time.Hour, ClientMaxAge: 25 * time.Hour}
		}, []want{
			{"cache.routes.search.ttl", "must be at most 24h (got 30h0m0s)"},
			{"cache.routes.search.emptyQueryTTL", "must be at most 24h"},
			{"cache.routes.search.staleWhileRevalidate", "must be at most 24h"},
			{"cache.routes.search.staleIfError", "must be at most 168h"},
			{"cache.routes.search.clientMaxAge", "must be at most 24h"},
		}},

		// Logging and tracing.
		{"unknown log level", func(c *config.Config) { c.Log.Level = "verbose" },
			[]want{{"log.level", `must be one of debug, info, warn, error (got "verbose")`}}},
		{"tracing without endpoint", func(c *config.Config) { c.Tracing.Enabled = true },
			[]want{{"tracing.endpoint", "required when tracing is enabled"}}},
		{"sample ratio above 1", func(c *config.Config) { c.Tracing.SampleRatio = 1.5 },
			[]want{{"tracing.sampleRatio", "between 0 and 1"}}},
		{"sample ratio NaN", func(c *config.Config) { c.Tracing.SampleRatio = math.NaN() },
			[]want{{"tracing.sampleRatio", "between 0 and 1"}}},
		{"sample ratio infinite", func(c *config.Config) { c.Tracing.SampleRatio = math.Inf(-1) },
			[]want{{"tracing.sampleRatio", "between 0 and 1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			expectProblems(t, config.Validate(&c), tt.wants...)
		})
	}
}

func TestValidateReportsEveryProblemAtOnceInAStableOrder(t *testing.T) {
	c := valid()
	c.Auth.Algorithms = []string{"HS256"}
	c.Server.Listen = "nowhere"
	c.Cache.Routes.Search.TTL = -1
	c.Cache.Routes.Me.TTL = -1
	c.Policies = map[string]config.Policy{"zz": {}, "aa": {}, "mm": {}}

	first := config.Validate(&c)
	wantPaths := []string{
		"auth.algorithms[0]", "cache.routes.me.ttl", "cache.routes.search.ttl",
		"policies.aa", "policies.mm", "policies.zz", "server.listen",
	}
	if got := paths(first); !slices.Equal(got, wantPaths) {
		t.Fatalf("paths = %q, want %q", got, wantPaths)
	}
	for range 20 {
		if again := config.Validate(&c); !slices.Equal(again, first) {
			t.Fatalf("order changed between runs:\n%v\n%v", first, again)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9090":   true,
		"127.9.9.9:9090":   true,
		"[::1]:9090":       true,
		"localhost:9090":   true,
		"0.0.0.0:9090":     false,
		":9090":            false,
		"[::]:9090":        false,
		"10.0.0.1:9090":    false,
		"example.com:9090": false,
		"127.0.0.1":        false, // no port: not a listen address at all
	} {
		if got := config.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestParseValidatesWhatTheFileAndEnvironmentBuild(t *testing.T) {
	ps := parseProblems(t, "auth:\n  algorithms: [HS256]\nops:\n  listen: 0.0.0.0:9090\n", env(nil))
	expectProblems(t, ps,
		want{"auth.algorithms[0]", "not allowed"},
		want{"ops.token", "required"},
	)
	if !strings.Contains(ps.Error(), "2 configuration problem(s)") {
		t.Errorf("Error() = %q", ps.Error())
	}
	mustParse(t, "ops:\n  listen: 0.0.0.0:9090\n", env(map[string]string{"GATEWAY_OPS__TOKEN": "0123456789abcdef"}))
}

// TestValidateBoundsAreExact pins each bound at its edge, where a bound
// moved by a little would otherwise pass every test above: the limit itself
// is taken, one step past it is refused.
func TestValidateBoundsAreExact(t *testing.T) {
	const search = "upstreams.userstore.operations.search"
	tests := []struct {
		name   string
		change func(*config.Config)
		wants  []want
	}{
		{"leeway of 5m", func(c *config.Config) { c.Auth.Leeway = 5 * time.Minute }, nil},
		{"leeway just over 5m", func(c *config.Config) { c.Auth.Leeway = 5*time.Minute + time.Second },
			[]want{{"auth.leeway", "between 0s and 5m"}}},
		{"breaker open for just over 10m", func(c *config.Config) {
			c.Upstreams.UserStore.Operations.Search.Breaker.OpenTimeout = 10*time.Minute + time.Second
		}, []want{{search + ".breaker.openTimeout", "at most 10m"}}},
		// A fixed pause between tries is a valid retry schedule.
		{"max backoff equal to base", func(c *config.Config) {
			r := &c.Upstreams.UserStore.Operations.Search.Retry
			r.BaseBackoff, r.MaxBackoff = 50*time.Millisecond, 50*time.Millisecond
		}, nil},
		// DEL is a control character too: a header value cannot hold it.
		{"ops token with a DEL", func(c *config.Config) { c.Ops.Token = "ops-secret\x7f0123456789" },
			[]want{{"ops.token", "control character"}}},
		// The IPv4-mapped range is ::ffff:0:0/96: a wider prefix also
		// trusts IPv6 addresses outside it.
		{"the whole IPv4-mapped range", func(c *config.Config) { c.Server.TrustedProxies = []string{"::ffff:0.0.0.0/96"} }, nil},
		{"one bit wider than the IPv4-mapped range", func(c *config.Config) { c.Server.TrustedProxies = []string{"::ffff:0.0.0.0/95"} },
			[]want{{"server.trustedProxies[0]", "spans more than the IPv4-mapped range"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			expectProblems(t, config.Validate(&c), tt.wants...)
		})
	}
}
