package config

import "time"

// Default returns the built-in defaults that config.yaml overrides. Fields
// with no sensible default (the identity provider and user store URLs, the
// issuer) are left empty and validation insists on them.
func Default() Config {
	defaultBreaker := Breaker{
		ConsecutiveFailures: 5,
		FailureRatio:        0.5,
		MinRequests:         20,
		Interval:            10 * time.Second,
		OpenTimeout:         5 * time.Second,
		HalfOpenRequests:    3,
	}
	readRetry := Retry{Attempts: 1, BaseBackoff: 25 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	return Config{
		Server: Server{
			Listen:       "127.0.0.1:8080",
			ReadTimeout:  10 * time.Second,
			WriteTimeout: 10 * time.Second,
			// Longer than the 60 s idle timeout of the common load
			// balancers in front (AWS ALB, ingress-nginx's upstream
			// keep-alive): a backend that closes first races the
			// balancer's next request on the connection into a 502.
			IdleTimeout:    75 * time.Second,
			RequestTimeout: 3 * time.Second,
			ShutdownDelay:  0,
			DrainTimeout:   15 * time.Second,
			BodyLimit:      16 << 10,
			HeaderLimit:    8 << 10,
			// ~17 KiB each while idle between requests (docs/operations.md,
			// Sizing): 8,192 fit the Deployment's memory beside full caches.
			MaxConnections: 8192,
			// 1/32 of MaxConnections: a client needs 32 addresses to
			// take every slot, while a NAT's users, each with a few
			// connections, fit (its rate limits bind long before).
			MaxConnectionsPerIP: 256,
		},
		Ops: Ops{Listen: "127.0.0.1:9090"},
		Log: Log{Level: "info", Access: true},
		Tracing: Tracing{
			SampleRatio: 0.1,
			ServiceName: "edge-gateway",
		},
		Auth: Auth{
			Audiences:     []string{"edge-gateway"},
			Algorithms:    []string{"RS256", "ES256"},
			Leeway:        30 * time.Second,
			MaxTokenBytes: 8 << 10,
			RolesClaim:    "roles",
			ScopesClaim:   "scope",
			AdminRole:     "admin",
			JWKS: JWKS{
				RefreshInterval:    10 * time.Minute,
				FetchTimeout:       3 * time.Second,
				UnknownKIDInterval: 30 * time.Second,
				UnknownKIDWait:     time.Second,
				RetryInterval:      2 * time.Second,
				MaxBytes:           256 << 10,
			},
			TokenCache: TokenCache{Enabled: true, MaxEntries: 100000, MaxTTL: 5 * time.Minute},
		},
		Upstreams: Upstreams{UserStore: UserStore{
			MaxConnsPerHost:     512,
			MaxIdleConnDuration: 30 * time.Second,
			DialTimeout:         500 * time.Millisecond,
			MaxResponseBytes:    2 << 20,
			RetryBudget:         RetryBudget{Ratio: 0.1, MinPerSecond: 10},
			Operations: Operations{
				UsernameCheck: Operation{Timeout: 800 * time.Millisecond, MaxInFlight: 256, Breaker: defaultBreaker},
				Search:        Operation{Timeout: time.Second, MaxInFlight: 256, Retry: readRetry, Breaker: defaultBreaker},
				UserByID:      Operation{Timeout: 500 * time.Millisecond, MaxInFlight: 256, Retry: readRetry, Breaker: defaultBreaker},
				LiveStreams:   Operation{Timeout: 300 * time.Millisecond, MaxInFlight: 256, Retry: readRetry, Breaker: defaultBreaker},
			},
		}},
		Cache: Cache{
			Enabled:         true,
			MaxEntries:      100000,
			MaxBytes:        256 << 20,
			CleanupInterval: 30 * time.Second,
			Routes: CacheRoutes{
				Search: CacheRoute{
					TTL:                  30 * time.Second,
					EmptyQueryTTL:        5 * time.Second,
					StaleWhileRevalidate: 30 * time.Second,
					StaleIfError:         5 * time.Minute,
					ClientMaxAge:         15 * time.Second,
				},
				Me: CacheRoute{
					TTL:                  10 * time.Second,
					StaleWhileRevalidate: 10 * time.Second,
					StaleIfError:         2 * time.Minute,
				},
			},
		},
	}
}
