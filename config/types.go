// Package config owns the gateway's configuration: the typed structs that
// config.yaml decodes into, their defaults, environment overrides, and the
// validation that reports every problem at once with its path.
//
// Packages that act on the configuration (gateway, upstream, policies) read
// these structs; none of them parses YAML or environment variables itself.
package config

import "time"

// Config is the whole of config.yaml.
type Config struct {
	Server    Server            `yaml:"server"`
	Ops       Ops               `yaml:"ops"`
	Log       Log               `yaml:"log"`
	Tracing   Tracing           `yaml:"tracing"`
	Auth      Auth              `yaml:"auth"`
	Upstreams Upstreams         `yaml:"upstreams"`
	Cache     Cache             `yaml:"cache"`
	Policies  map[string]Policy `yaml:"policies"`
}

// Server configures the public listener and the per-request limits.
type Server struct {
	// Listen is the public address. It cannot change on reload.
	Listen string `yaml:"listen"`
	// ReadTimeout bounds reading one request (headers and body).
	ReadTimeout time.Duration `yaml:"readTimeout"`
	// WriteTimeout bounds writing one response.
	WriteTimeout time.Duration `yaml:"writeTimeout"`
	// IdleTimeout closes keep-alive connections idle this long. It should
	// be longer than the idle timeout of the load balancer in front.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
	// RequestTimeout is the overall deadline of one incoming request, across
	// every upstream call and retry it makes.
	RequestTimeout time.Duration `yaml:"requestTimeout"`
	// ShutdownDelay is how long readiness reports false before the listener
	// stops accepting, so load balancers stop sending new traffic first.
	ShutdownDelay time.Duration `yaml:"shutdownDelay"`
	// DrainTimeout bounds how long in-flight requests may take to finish on
	// shutdown.
	DrainTimeout time.Duration `yaml:"drainTimeout"`
	// BodyLimit is the largest request body accepted (413 above it).
	BodyLimit ByteSize `yaml:"bodyLimit"`
	// HeaderLimit is the largest request header block accepted, request
	// line included (431 above it, 414 when the request line alone is).
	HeaderLimit ByteSize `yaml:"headerLimit"`
	// MaxConnections caps concurrent client connections.
	MaxConnections int `yaml:"maxConnections"`
	// MaxConnectionsPerIP caps the connections of one client address (IPv6
	// by its /64), so one client cannot take every MaxConnections slot;
	// trusted proxies are not capped. 0 turns it off.
	MaxConnectionsPerIP int `yaml:"maxConnectionsPerIP"`
	// TrustedProxies lists the CIDRs of proxies whose X-Forwarded-For is
	// believed. Empty means the TCP peer is always the client.
	TrustedProxies []string `yaml:"trustedProxies"`
}

// Ops configures the operations listener (health, metrics, ops endpoints).
type Ops struct {
	// Listen is the ops address; empty disables the ops listener. It cannot
	// change on reload.
	Listen string `yaml:"listen"`
	// Token is the ops credential (Authorization: Bearer <token>). Required
	// when Listen is not a loopback address. Environment only.
	Token string `yaml:"token" secret:"true"`
	// Pprof exposes /debug/pprof on the ops listener.
	Pprof bool `yaml:"pprof"`
}

// Log configures structured logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Access turns the one-line-per-request access log on or off.
	Access bool `yaml:"access"`
}

// Tracing configures OpenTelemetry tracing (off by default).
type Tracing struct {
	Enabled bool `yaml:"enabled"`
	// Endpoint is the OTLP/HTTP collector, host:port.
	Endpoint string `yaml:"endpoint"`
	// Insecure sends spans over plain HTTP.
	Insecure bool `yaml:"insecure"`
	// SampleRatio is the share of new traces sampled (0..1); a sampled
	// parent from traceparent is always followed.
	SampleRatio float64 `yaml:"sampleRatio"`
	// ServiceName is the service.name resource attribute.
	ServiceName string `yaml:"serviceName"`
}

// Auth configures JWT verification against the identity provider's JWKS.
type Auth struct {
	// JWKSURLs are the identity provider's key set URLs.
	JWKSURLs []string `yaml:"jwksURLs" redact:"url"`
	// Issuer is the required iss claim.
	Issuer string `yaml:"issuer"`
	// Audiences: the token's aud must contain at least one of them.
	Audiences []string `yaml:"audiences"`
	// Algorithms is the allow-list of signing algorithms (asymmetric only).
	Algorithms []string `yaml:"algorithms"`
	// Leeway tolerates clock skew on exp, nbf and iat.
	Leeway time.Duration `yaml:"leeway"`
	// MaxTokenBytes rejects longer Authorization values before parsing.
	MaxTokenBytes ByteSize `yaml:"maxTokenBytes"`
	// RolesClaim names the claim holding the roles (array or space/comma
	// separated string).
	RolesClaim string `yaml:"rolesClaim"`
	// ScopesClaim names the claim holding the scopes.
	ScopesClaim string `yaml:"scopesClaim"`
	// AdminRole is the role that admin routes require.
	AdminRole  string     `yaml:"adminRole"`
	JWKS       JWKS       `yaml:"jwks"`
	TokenCache TokenCache `yaml:"tokenCache"`
}

// JWKS configures key set fetching.
type JWKS struct {
	// RefreshInterval is the periodic refresh.
	RefreshInterval time.Duration `yaml:"refreshInterval"`
	// FetchTimeout bounds one fetch of a key set.
	FetchTimeout time.Duration `yaml:"fetchTimeout"`
	// UnknownKIDInterval is the minimum time between refreshes triggered by
	// a token whose kid is not in the set.
	UnknownKIDInterval time.Duration `yaml:"unknownKIDInterval"`
	// UnknownKIDWait is the longest a request waits for such a refresh (0:
	// it does not wait; the refresh still runs for the requests after it).
	UnknownKIDWait time.Duration `yaml:"unknownKIDWait"`
	// RetryInterval is how often fetching is retried while no keys are loaded.
	RetryInterval time.Duration `yaml:"retryInterval"`
	// MaxBytes caps the size of a key set response.
	MaxBytes ByteSize `yaml:"maxBytes"`
}

// TokenCache configures the cache of successful token verifications.
type TokenCache struct {
	Enabled    bool          `yaml:"enabled"`
	MaxEntries int           `yaml:"maxEntries"`
	MaxTTL     time.Duration `yaml:"maxTTL"`
}

// Upstreams lists the backends.
type Upstreams struct {
	UserStore UserStore `yaml:"userstore"`
}

// UserStore configures the user-store client.
type UserStore struct {
	BaseURL string `yaml:"baseURL"`
	// LiveStreamsBaseURL serves live-stream look-ups; empty means BaseURL.
	LiveStreamsBaseURL string `yaml:"liveStreamsBaseURL"`
	// ServiceToken is sent as Authorization: Bearer on every call when set.
	// Environment only.
	ServiceToken string `yaml:"serviceToken" secret:"true"`
	// MaxConnsPerHost caps open connections to one upstream host.
	MaxConnsPerHost int `yaml:"maxConnsPerHost"`
	// MaxIdleConnDuration closes idle keep-alive connections.
	MaxIdleConnDuration time.Duration `yaml:"maxIdleConnDuration"`
	// DialTimeout bounds connection set-up.
	DialTimeout time.Duration `yaml:"dialTimeout"`
	// MaxResponseBytes caps an upstream response body.
	MaxResponseBytes ByteSize    `yaml:"maxResponseBytes"`
	RetryBudget      RetryBudget `yaml:"retryBudget"`
	Operations       Operations  `yaml:"operations"`
}

// Operations holds one setting block per upstream operation.
type Operations struct {
	UsernameCheck Operation `yaml:"usernameCheck"`
	Search        Operation `yaml:"search"`
	UserByID      Operation `yaml:"userById"`
	LiveStreams   Operation `yaml:"liveStreams"`
}

// Operation configures one upstream operation's timeout, bulkhead, retries
// and circuit breaker.
type Operation struct {
	// Timeout bounds one attempt.
	Timeout time.Duration `yaml:"timeout"`
	// MaxInFlight caps concurrent calls; over it a call fails fast (503).
	MaxInFlight int     `yaml:"maxInFlight"`
	Retry       Retry   `yaml:"retry"`
	Breaker     Breaker `yaml:"breaker"`
}

// Retry configures retries of idempotent operations.
type Retry struct {
	// Attempts is the number of retries after the first try (0: none).
	// Ignored for operations that are not idempotent.
	Attempts int `yaml:"attempts"`
	// BaseBackoff and MaxBackoff bound the jittered exponential backoff.
	BaseBackoff time.Duration `yaml:"baseBackoff"`
	MaxBackoff  time.Duration `yaml:"maxBackoff"`
}

// RetryBudget caps retries as a share of calls, so retries cannot multiply
// load during an outage.
type RetryBudget struct {
	// Ratio is the retries allowed per call over a sliding window.
	Ratio float64 `yaml:"ratio"`
	// MinPerSecond retries are always allowed.
	MinPerSecond int `yaml:"minPerSecond"`
}

// Breaker configures one circuit breaker.
type Breaker struct {
	// ConsecutiveFailures trips the breaker after this many failures in a
	// row (0 disables this rule).
	ConsecutiveFailures uint32 `yaml:"consecutiveFailures"`
	// FailureRatio trips the breaker when the share of failures within
	// Interval reaches it, once MinRequests calls were made (0 disables).
	FailureRatio float64 `yaml:"failureRatio"`
	MinRequests  uint32  `yaml:"minRequests"`
	// Interval is the window over which counts are kept while closed.
	Interval time.Duration `yaml:"interval"`
	// OpenTimeout is how long the breaker stays open before trial calls.
	OpenTimeout time.Duration `yaml:"openTimeout"`
	// HalfOpenRequests is the number of trial calls allowed half-open.
	HalfOpenRequests uint32 `yaml:"halfOpenRequests"`
}

// Cache configures the read cache.
type Cache struct {
	Enabled bool `yaml:"enabled"`
	// MaxEntries and MaxBytes bound the cache; the oldest entries are evicted
	// first when either is reached.
	MaxEntries int      `yaml:"maxEntries"`
	MaxBytes   ByteSize `yaml:"maxBytes"`
	// CleanupInterval is how often expired entries are swept.
	CleanupInterval time.Duration `yaml:"cleanupInterval"`
	// InvalidationToken authenticates the user store's "user changed" calls.
	// Environment only.
	InvalidationToken string      `yaml:"invalidationToken" secret:"true"`
	Routes            CacheRoutes `yaml:"routes"`
}

// CacheRoutes holds the per-route cache settings.
type CacheRoutes struct {
	Search CacheRoute `yaml:"search"`
	Me     CacheRoute `yaml:"me"`
}

// CacheRoute configures caching of one route.
type CacheRoute struct {
	// TTL is how long an entry is fresh; 0 disables caching of the route.
	TTL time.Duration `yaml:"ttl"`
	// EmptyQueryTTL is the TTL of random samples (search with no query).
	EmptyQueryTTL time.Duration `yaml:"emptyQueryTTL"`
	// StaleWhileRevalidate serves an expired entry this long after expiry
	// while one background refresh runs.
	StaleWhileRevalidate time.Duration `yaml:"staleWhileRevalidate"`
	// StaleIfError serves an expired entry up to this age after expiry when
	// the upstream fails or its breaker is open.
	StaleIfError time.Duration `yaml:"staleIfError"`
	// ClientMaxAge is the max-age sent to clients in Cache-Control
	// (private), counted from when the gateway loaded the data (hits carry
	// Age); 0 sends no-store.
	ClientMaxAge time.Duration `yaml:"clientMaxAge"`
}

// Policy is one platform's rules as written in config.yaml. Every field is
// optional: a platform policy inherits each unset field from the "all"
// policy, and "all" inherits from the built-in defaults. The policies
// package resolves and checks them.
type Policy struct {
	// Routes maps a route id to its access rule; rules merge per route.
	Routes map[string]RouteRule `yaml:"routes"`
	// RequireRoles: every route of this platform needs one of these roles.
	RequireRoles []string     `yaml:"requireRoles"`
	RateLimits   *RateLimits  `yaml:"rateLimits"`
	Cache        *PolicyCache `yaml:"cache"`
	// MaxPageSize caps the limit parameter of searches.
	MaxPageSize *int `yaml:"maxPageSize"`
	// Fields lists the user fields visible per view.
	Fields *Fields `yaml:"fields"`
	CORS   *CORS   `yaml:"cors"`
}

// RouteRule is the access rule of one route for one platform.
type RouteRule struct {
	// Allow says whether the platform may call the route at all.
	Allow *bool `yaml:"allow"`
	// Roles: the caller needs at least one of them (empty: any user).
	Roles []string `yaml:"roles"`
	// Scopes: the caller needs all of them.
	Scopes []string `yaml:"scopes"`
}

// RateLimits configures the token buckets of a policy. A nil limit inherits;
// a limit with rate 0 is off.
type RateLimits struct {
	// PerIP applies to every request by client IP, before authentication.
	PerIP *Limit `yaml:"perIP"`
	// AuthFailures counts failed authentications per client IP; once spent,
	// requests from that IP are refused before any signature check.
	AuthFailures *Limit `yaml:"authFailures"`
	// PerUser applies by verified subject.
	PerUser *Limit `yaml:"perUser"`
	// PerDevice applies by normalized device id, when one is sent.
	PerDevice *Limit `yaml:"perDevice"`
}

// Limit is a token bucket: Rate tokens per second, up to Burst.
type Limit struct {
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

// PolicyCache is a policy's cache behaviour.
type PolicyCache struct {
	// Bypass turns the read cache off for the platform.
	Bypass *bool `yaml:"bypass"`
	// TTL overrides the route TTLs (route name: search, me).
	TTL map[string]time.Duration `yaml:"ttl"`
}

// Fields lists the visible user fields per view.
type Fields struct {
	// Public is what others see of a user (search results).
	Public []string `yaml:"public"`
	// Self is what a user sees of themselves (/me).
	Self []string `yaml:"self"`
	// Admin is what admin routes show.
	Admin []string `yaml:"admin"`
}

// CORS configures cross-origin access for browsers.
type CORS struct {
	AllowOrigins     []string      `yaml:"allowOrigins"`
	AllowMethods     []string      `yaml:"allowMethods"`
	AllowHeaders     []string      `yaml:"allowHeaders"`
	ExposeHeaders    []string      `yaml:"exposeHeaders"`
	AllowCredentials *bool         `yaml:"allowCredentials"`
	MaxAge           time.Duration `yaml:"maxAge"`
}
