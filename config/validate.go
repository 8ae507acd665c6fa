package config

import (
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Asymmetric algorithms the gateway can verify. "none" and the HMAC family
// are refused: a gateway that holds only public keys must never accept a
// token signed with a shared secret.
var allowedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Validate checks a decoded configuration and returns every problem found.
// Policy semantics (inheritance, route rules, visible fields) are checked by
// the policies package on top of this.
func Validate(c *Config) Problems {
	var ps Problems
	validateServer(&c.Server, &ps)
	validateOps(&c.Ops, &ps)
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		ps.add("log.level", "must be one of debug, info, warn, error (got %q)", c.Log.Level)
	}
	if c.Tracing.Enabled {
		switch e := c.Tracing.Endpoint; {
		case e == "":
			ps.add("tracing.endpoint", "required when tracing is enabled (host:port of an OTLP/HTTP collector)")
		case strings.Contains(e, "://"):
			ps.add("tracing.endpoint", "must be host:port, without a scheme (got %q)", RedactRefusedURL(e))
		case strings.Contains(e, "@"):
			ps.add("tracing.endpoint", "must be host:port, without credentials (got %q)", RedactRefusedURL(e))
		default:
			if _, port, err := net.SplitHostPort(e); err != nil || port == "" {
				ps.add("tracing.endpoint", "must be host:port (got %q)", RedactRefusedURL(e))
			} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				// The exporter would take it and fail every export.
				ps.add("tracing.endpoint", "invalid port in %q (want 1 to 65535)", RedactRefusedURL(e))
			}
		}
		if strings.TrimSpace(c.Tracing.ServiceName) == "" {
			ps.add("tracing.serviceName", "required when tracing is enabled (the service.name traces are found by)")
		}
	}
	ratio(&ps, "tracing.sampleRatio", c.Tracing.SampleRatio)
	validateAuth(&c.Auth, &ps)
	validateUserStore(&c.Upstreams.UserStore, c.Server.RequestTimeout, &ps)
	validateCache(&c.Cache, &ps)
	// Sorted, so the same file always reports in the same order.
	for _, name := range slices.Sorted(maps.Keys(c.Policies)) {
		if !slices.Contains(PolicyNames, name) {
			ps.add("policies."+name, "unknown platform; policies are named %v", PolicyNames)
		}
	}
	return ps
}

// MaxRequestTimeout is the longest server.requestTimeout, and so the
// longest operation timeout (none may exceed it): the user-store client
// sizes its connection pools' own timeouts, fixed at start, above it.
const MaxRequestTimeout = 2 * time.Minute

func validateServer(s *Server, ps *Problems) {
	checkAddr("server.listen", s.Listen, false, ps)
	positive(ps, "server.readTimeout", s.ReadTimeout)
	positive(ps, "server.writeTimeout", s.WriteTimeout)
	positive(ps, "server.idleTimeout", s.IdleTimeout)
	positive(ps, "server.requestTimeout", s.RequestTimeout)
	nonNegative(ps, "server.shutdownDelay", s.ShutdownDelay)
	positive(ps, "server.drainTimeout", s.DrainTimeout)
	const holds = "a slow or silent client would hold a connection that long"
	atMost(ps, "server.readTimeout", s.ReadTimeout, 10*time.Minute, "10m", holds)
	atMost(ps, "server.writeTimeout", s.WriteTimeout, 10*time.Minute, "10m", holds)
	atMost(ps, "server.idleTimeout", s.IdleTimeout, 2*time.Hour, "2h", holds)
	atMost(ps, "server.requestTimeout", s.RequestTimeout, MaxRequestTimeout, "2m",
		"an app gives up long before; the request would hold its store calls and bulkhead slots")
	atMost(ps, "server.shutdownDelay", s.ShutdownDelay, 5*time.Minute, "5m",
		"the pod would refuse traffic that long before it even starts to drain")
	atMost(ps, "server.drainTimeout", s.DrainTimeout, 10*time.Minute, "10m",
		"a shutdown would wait that long for requests whose own deadline is server.requestTimeout")
	between(ps, "server.bodyLimit", int64(s.BodyLimit), 1<<10, 64<<20, "1KiB", "64MiB")
	between(ps, "server.headerLimit", int64(s.HeaderLimit), 1<<10, 1<<20, "1KiB", "1MiB")
	between(ps, "server.maxConnections", int64(s.MaxConnections), 1, 1<<22, "1", "4194304")
	between(ps, "server.maxConnectionsPerIP", int64(s.MaxConnectionsPerIP), 0, 1<<22, "0", "4194304")
	// As policies.ParseTrusted reads them at start and on reload.
	for i, p := range s.TrustedProxies {
		path := "server.trustedProxies[" + strconv.Itoa(i) + "]"
		prefix, err := netip.ParsePrefix(strings.TrimSpace(p))
		if err != nil {
			a, err := netip.ParseAddr(strings.TrimSpace(p))
			if err != nil || a.Zone() != "" {
				ps.add(path, "not a CIDR or IP address: %q", p)
				continue
			}
			prefix = netip.PrefixFrom(a, a.BitLen())
		}
		if prefix.Addr().Is4In6() && prefix.Bits() < 96 {
			ps.add(path, "%q spans more than the IPv4-mapped range", p)
		}
	}
}

func validateOps(o *Ops, ps *Problems) {
	if o.Listen == "" {
		return
	}
	checkAddr("ops.listen", o.Listen, false, ps)
	if !IsLoopback(o.Listen) && o.Token == "" {
		ps.add("ops.token", "required when ops.listen is not a loopback address; set %s", EnvPrefix+"OPS__TOKEN")
	}
	minSecretLength(ps, "ops.token", o.Token)
}

// minSecretLength refuses a credential the gateway checks itself that is
// set but short enough to guess; unset is judged by the caller.
func minSecretLength(ps *Problems, path, secret string) {
	if secret != "" && len(secret) < 16 {
		ps.add(path, "too short: use at least 16 characters")
	}
	secretChars(ps, path, secret)
}

// secretChars refuses a secret with a control character (most often the
// line break of a secret file copied whole). Every secret is a header
// value: the service token's would end its Authorization header and start
// others on every call to the store, and the other two could never match
// what a client sends. The secret itself is never quoted.
func secretChars(ps *Problems, path, secret string) {
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; c < 0x20 || c == 0x7f {
			ps.add(path, "contains a control character (a line break, a tab?): a secret is one line of printable characters")
			return
		}
	}
}

func validateAuth(a *Auth, ps *Problems) {
	if len(a.JWKSURLs) == 0 {
		ps.add("auth.jwksURLs", "at least one JWKS URL is required")
	}
	for i, u := range a.JWKSURLs {
		checkURL("auth.jwksURLs["+strconv.Itoa(i)+"]", u, ps)
	}
	if strings.TrimSpace(a.Issuer) == "" {
		ps.add("auth.issuer", "required: the iss every token must carry")
	}
	if len(a.Audiences) == 0 {
		ps.add("auth.audiences", "at least one audience is required")
	}
	for i, aud := range a.Audiences {
		if strings.TrimSpace(aud) == "" {
			ps.add("auth.audiences["+strconv.Itoa(i)+"]", "must not be empty")
		}
	}
	if len(a.Algorithms) == 0 {
		ps.add("auth.algorithms", "at least one algorithm is required")
	}
	for i, alg := range a.Algorithms {
		if !slices.Contains(allowedAlgorithms, alg) {
			ps.add("auth.algorithms["+strconv.Itoa(i)+"]", "%q is not allowed; use asymmetric algorithms only: %v", alg, allowedAlgorithms)
		}
	}
	if a.Leeway < 0 || a.Leeway > 5*time.Minute {
		ps.add("auth.leeway", "must be between 0s and 5m")
	}
	between(ps, "auth.maxTokenBytes", int64(a.MaxTokenBytes), 256, 64<<10, "256", "64KiB")
	if strings.TrimSpace(a.RolesClaim) == "" {
		ps.add("auth.rolesClaim", "required")
	}
	if strings.TrimSpace(a.ScopesClaim) == "" {
		ps.add("auth.scopesClaim", "required")
	}
	if a.AdminRole == "" {
		ps.add("auth.adminRole", "required")
	}
	j := &a.JWKS
	atLeastInterval(ps, "auth.jwks.refreshInterval", j.RefreshInterval)
	positive(ps, "auth.jwks.fetchTimeout", j.FetchTimeout)
	atMost(ps, "auth.jwks.fetchTimeout", j.FetchTimeout, time.Minute, "1m",
		"a fetch hung on a silent identity provider would put off the next try, and a starting pod's readiness, that long")
	atLeastInterval(ps, "auth.jwks.unknownKIDInterval", j.UnknownKIDInterval)
	nonNegative(ps, "auth.jwks.unknownKIDWait", j.UnknownKIDWait)
	atLeastInterval(ps, "auth.jwks.retryInterval", j.RetryInterval)
	between(ps, "auth.jwks.maxBytes", int64(j.MaxBytes), 1<<10, 16<<20, "1KiB", "16MiB")
	if a.TokenCache.Enabled {
		between(ps, "auth.tokenCache.maxEntries", int64(a.TokenCache.MaxEntries), 1, 10_000_000, "1", "10000000")
		positive(ps, "auth.tokenCache.maxTTL", a.TokenCache.MaxTTL)
	} else {
		// Unused while the cache is off, but never meaningful: refused
		// now rather than on the reload that turns the cache on.
		if a.TokenCache.MaxEntries < 0 {
			ps.add("auth.tokenCache.maxEntries", "must not be negative")
		}
		nonNegative(ps, "auth.tokenCache.maxTTL", a.TokenCache.MaxTTL)
	}
}

func validateUserStore(u *UserStore, requestTimeout time.Duration, ps *Problems) {
	const p = "upstreams.userstore"
	if u.BaseURL == "" {
		ps.add(p+".baseURL", "required")
	} else {
		checkBaseURL(p+".baseURL", u.BaseURL, ps)
	}
	if u.LiveStreamsBaseURL != "" {
		checkBaseURL(p+".liveStreamsBaseURL", u.LiveStreamsBaseURL, ps)
	}
	secretChars(ps, p+".serviceToken", u.ServiceToken)
	between(ps, p+".maxConnsPerHost", int64(u.MaxConnsPerHost), 1, 65536, "1", "65536")
	positive(ps, p+".maxIdleConnDuration", u.MaxIdleConnDuration)
	positive(ps, p+".dialTimeout", u.DialTimeout)
	between(ps, p+".maxResponseBytes", int64(u.MaxResponseBytes), 1<<10, 256<<20, "1KiB", "256MiB")
	ratio(ps, p+".retryBudget.ratio", u.RetryBudget.Ratio)
	if u.RetryBudget.MinPerSecond < 0 {
		ps.add(p+".retryBudget.minPerSecond", "must not be negative")
	}
	for _, op := range []struct {
		name string
		o    *Operation
	}{
		{"usernameCheck", &u.Operations.UsernameCheck},
		{"search", &u.Operations.Search},
		{"userById", &u.Operations.UserByID},
		{"liveStreams", &u.Operations.LiveStreams},
	} {
		validateOperation(p+".operations."+op.name, op.o, requestTimeout, ps)
	}
}

func validateOperation(p string, o *Operation, requestTimeout time.Duration, ps *Problems) {
	positive(ps, p+".timeout", o.Timeout)
	// The store client waits at least 1ms for a pooled connection (a
	// quarter of the shortest timeout, never less), and a reload refuses a
	// timeout no longer than that wait (upstream.Client.Check): a gateway
	// started with one would refuse every later reload that changes
	// anything.
	if o.Timeout > 0 && o.Timeout <= time.Millisecond {
		ps.add(p+".timeout", "must be longer than 1ms (got %s): the wait for a pooled connection is at least 1ms", o.Timeout)
	}
	if requestTimeout > 0 && o.Timeout > requestTimeout {
		ps.add(p+".timeout", "%s is longer than server.requestTimeout (%s): the call could never use it", o.Timeout, requestTimeout)
	}
	between(ps, p+".maxInFlight", int64(o.MaxInFlight), 1, 100000, "1", "100000")
	between(ps, p+".retry.attempts", int64(o.Retry.Attempts), 0, 5, "0", "5")
	if o.Retry.Attempts > 0 {
		positive(ps, p+".retry.baseBackoff", o.Retry.BaseBackoff)
		if o.Retry.MaxBackoff < o.Retry.BaseBackoff {
			ps.add(p+".retry.maxBackoff", "must not be shorter than retry.baseBackoff")
		}
	} else {
		nonNegative(ps, p+".retry.baseBackoff", o.Retry.BaseBackoff)
		nonNegative(ps, p+".retry.maxBackoff", o.Retry.MaxBackoff)
	}
	b := &o.Breaker
	if b.ConsecutiveFailures == 0 && b.FailureRatio == 0 {
		ps.add(p+".breaker", "needs a trip rule: consecutiveFailures and/or failureRatio")
	}
	ratio(ps, p+".breaker.failureRatio", b.FailureRatio)
	if b.FailureRatio > 0 && b.MinRequests == 0 {
		ps.add(p+".breaker.minRequests", "must be at least 1 when failureRatio is set")
	}
	positive(ps, p+".breaker.interval", b.Interval)
	positive(ps, p+".breaker.openTimeout", b.OpenTimeout)
	atMost(ps, p+".breaker.openTimeout", b.OpenTimeout, 10*time.Minute, "10m",
		"every call of the operation would be refused that long after one bad spell of the store")
	if b.HalfOpenRequests == 0 {
		ps.add(p+".breaker.halfOpenRequests", "must be at least 1")
	}
}

func validateCache(c *Cache, ps *Problems) {
	between(ps, "cache.maxEntries", int64(c.MaxEntries), 1, 50_000_000, "1", "50000000")
	between(ps, "cache.maxBytes", int64(c.MaxBytes), 1<<20, 64<<30, "1MiB", "64GiB")
	atLeastInterval(ps, "cache.cleanupInterval", c.CleanupInterval)
	minSecretLength(ps, "cache.invalidationToken", c.InvalidationToken)
	for _, route := range []struct {
		name string
		r    CacheRoute
	}{{"search", c.Routes.Search}, {"me", c.Routes.Me}} {
		p, r := "cache.routes."+route.name, route.r
		nonNegative(ps, p+".ttl", r.TTL)
		nonNegative(ps, p+".emptyQueryTTL", r.EmptyQueryTTL)
		nonNegative(ps, p+".staleWhileRevalidate", r.StaleWhileRevalidate)
		nonNegative(ps, p+".staleIfError", r.StaleIfError)
		nonNegative(ps, p+".clientMaxAge", r.ClientMaxAge)
		// Bounded like a policy's cache.ttl: a unit typed wrong (30h for
		// 30s) would keep profiles for days, and the entry's deadline,
		// the sum of these in nanoseconds, must not overflow.
		const stale = "an entry would outlive what it shows by days"
		atMost(ps, p+".ttl", r.TTL, 24*time.Hour, "24h", stale)
		atMost(ps, p+".emptyQueryTTL", r.EmptyQueryTTL, 24*time.Hour, "24h", stale)
		atMost(ps, p+".staleWhileRevalidate", r.StaleWhileRevalidate, 24*time.Hour, "24h", stale)
		atMost(ps, p+".staleIfError", r.StaleIfError, 7*24*time.Hour, "168h", stale)
		atMost(ps, p+".clientMaxAge", r.ClientMaxAge, 24*time.Hour, "24h", stale)
	}
}

func positive(ps *Problems, path string, d time.Duration) {
	if d <= 0 {
		ps.add(path, "must be a positive duration such as 500ms or 2s")
	}
}

// minInterval is the shortest period of a background loop (key refresh,
// cache sweep): a typo such as 1ns or 1us would spin it, or hammer the
// identity provider.
const minInterval = 10 * time.Millisecond

func atLeastInterval(ps *Problems, path string, d time.Duration) {
	if d < minInterval {
		ps.add(path, "must be at least %s (got %s): a shorter period would spin", minInterval, d)
	}
}

// atMost is the upper bound of a timeout, as minInterval is the
// lower bound of a loop's period: a unit typed wrong (3000s for 3000ms, 15h
// for 15s) is refused with why, instead of holding connections, requests or
// a shutdown for hours.
func atMost(ps *Problems, path string, d, limit time.Duration, limits, why string) {
	if d > limit {
		ps.add(path, "must be at most %s (got %s): %s", limits, d, why)
	}
}

func nonNegative(ps *Problems, path string, d time.Duration) {
	if d < 0 {
		ps.add(path, "must not be negative")
	}
}

// ratio insists on a share between 0 and 1; written this way round so that
// NaN (".nan" in YAML) fails too.
func ratio(ps *Problems, path string, v float64) {
	if !(v >= 0 && v <= 1) {
		ps.add(path, "must be between 0 and 1")
	}
}

func between(ps *Problems, path string, v, lo, hi int64, los, his string) {
	if v < lo || v > hi {
		ps.add(path, "must be between %s and %s (got %d)", los, his, v)
	}
}

func checkAddr(path, addr string, allowEmpty bool, ps *Problems) {
	if addr == "" {
		if !allowEmpty {
			ps.add(path, "required (host:port)")
		}
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		ps.add(path, "not a host:port address: %q", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		ps.add(path, "invalid port in %q", addr)
	}
}

func checkURL(path, raw string, ps *Problems) { checkHTTPURL(path, raw, false, ps) }

// checkBaseURL is checkURL for a base URL that call paths are appended to:
// no query either.
func checkBaseURL(path, raw string, ps *Problems) { checkHTTPURL(path, raw, true, ps) }

func checkHTTPURL(path, raw string, base bool, ps *Problems) {
	u, err := url.Parse(raw)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil && u.Fragment == "" &&
		(!base || u.RawQuery == "") {
		return
	}
	what := "credentials or fragment"
	if base {
		what = "credentials, query or fragment"
	}
	ps.add(path, "must be an absolute http(s) URL without %s (got %q)", what, redactURL(u, raw))
}

// redactURL is a refused URL as it may be logged (a refused reload's
// problems go to the log): a password in it masked, or a user name given
// alone (it may be a token: https://TOKEN@host), and, as RedactURL does,
// every query value, and the fragment.
func redactURL(u *url.URL, raw string) string {
	if u != nil && u.User != nil {
		c := *u
		if _, ok := c.User.Password(); !ok {
			c.User = url.User("xxxxx")
		}
		c.RawQuery = maskQuery(c.RawQuery)
		if c.Fragment != "" {
			c.Fragment, c.RawFragment = "xxxxx", ""
		}
		return c.Redacted()
	}
	// Not parsed as credentials ("http//u:p@host", no scheme): whatever
	// comes before an "@" may be a password.
	s, tail := raw, ""
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s, tail = s[:i], "#xxxxx"
	}
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s, tail = s[:i], "?"+maskQuery(s[i+1:])+tail
	}
	if i := strings.LastIndex(s, "@"); i >= 0 {
		s = "xxxxx" + s[i:]
	}
	return s + tail
}

// RedactRefusedURL is a refused setting meant as a URL, an origin or an
// address, as a problem may quote it: it is logged when a reload is
// refused, and it may not parse, so whatever could be a password or a key
// in it is masked as redactURL does.
func RedactRefusedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		u = nil
	}
	return redactURL(u, raw)
}

// RedactURL is a configured URL as logs, /readyz and the ops API show it:
// a password masked, and every query value too, since some providers take
// an API key or a signature in the query (auth.jwksURLs may have one). The
// parameter names stay, so ops can still tell which URL it is.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery = maskQuery(u.RawQuery)
	return u.Redacted()
}

// maskQuery masks the values of a raw query, keeping the names; a
// parameter without "=" may be a key itself, and is masked whole.
func maskQuery(q string) string {
	if q == "" {
		return ""
	}
	params := strings.Split(q, "&")
	for i, p := range params {
		if name, _, ok := strings.Cut(p, "="); ok {
			params[i] = name + "=xxxxx"
		} else if p != "" {
			params[i] = "xxxxx"
		}
	}
	return strings.Join(params, "&")
}

// IsLoopback reports whether a listen address only accepts local
// connections.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
