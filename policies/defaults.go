package policies

import (
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/upstream/contract"
)

// Built-in values, and the bounds Compile holds configured values to.
const (
	// maxPageSizeCap: the user store never returns a larger page, so no
	// policy may promise one.
	maxPageSizeCap    = contract.MaxSearchLimit
	defaultPageSize   = 20
	appMaxPageSize    = 50
	adminMaxPageSize  = 100
	defaultCORSMaxAge = 10 * time.Minute
	maxCORSMaxAge     = 24 * time.Hour
	maxCacheTTL       = 24 * time.Hour
	// maxRate and maxBurst catch typos (an extra zero or three); no client
	// of this gateway is meant to go near them.
	maxRate  = 100000
	maxBurst = 1000000
)

// Default request and response headers for CORS, used once a policy lists
// origins. They are the headers the gateway reads and the ones it writes
// that a browser script may want to see.
var (
	defaultCORSMethods = []string{"GET", "POST"}
	defaultCORSHeaders = []string{
		"Authorization", "Content-Type", "Accept-Language",
		clientctx.HeaderLanguage, clientctx.HeaderTimezone, clientctx.HeaderPlatform,
		clientctx.HeaderAppVersion, clientctx.HeaderDeviceID, "X-Request-Id",
		// A web app's own conditional requests (the answer's ETag), and
		// the trace context of a browser's tracing instrumentation.
		"If-None-Match", "Traceparent",
	}
	// Every header the gateway writes that carries meaning, since a
	// browser shows a cross-origin script only the CORS-safelisted ones
	// (Cache-Control, Content-Type, ...) and those listed here.
	// X-Partial-Response is how a client tells "not live" from "not
	// known" (a failed live-stream look-up); WWW-Authenticate tells a
	// token to renew (error="invalid_token") from none sent; Allow names
	// a 405's methods; X-Cache tells a cached answer from a fresh one,
	// and Age how much of max-age a cached one has left (an app that
	// keeps answers by hand counts it off).
	defaultCORSExpose = []string{
		"X-Request-Id", headerLimit, headerRemaining, headerReset, headerRetryAfter,
		"X-Partial-Response", "ETag", "X-Cache", "Age", "WWW-Authenticate", "Allow",
	}
)

// Default visible fields per view.
var (
	defaultPublicFields = []string{
		"id", "username", "firstName", "lastName", "expertise", "minutePrice",
		"profilePhotoUrl", "liveStream",
	}
	defaultSelfFields = append(append([]string(nil), defaultPublicFields...),
		"email", "phone", "bio", "photos", "createdAt")
)

// builtin returns the built-in policy of a platform: the layer below "all"
// and the platform's own policy. Every field is set, so resolution always
// ends with a value.
func builtin(p clientctx.Platform, adminRole string) config.Policy {
	yes, no := true, false
	anyUser := config.RouteRule{Allow: &yes, Roles: []string{}, Scopes: []string{}}
	denied := config.RouteRule{Allow: &no, Roles: []string{}, Scopes: []string{}}
	limit := func(rate float64, burst int) *config.Limit { return &config.Limit{Rate: rate, Burst: burst} }
	cors := &config.CORS{
		AllowOrigins:     []string{},
		AllowMethods:     defaultCORSMethods,
		AllowHeaders:     defaultCORSHeaders,
		ExposeHeaders:    defaultCORSExpose,
		AllowCredentials: &no,
		MaxAge:           defaultCORSMaxAge,
	}
	fields := &config.Fields{
		Public: defaultPublicFields,
		Self:   defaultSelfFields,
		Admin:  allFields.Names(),
	}

	if p == clientctx.PlatformAdmin {
		maxPage := adminMaxPageSize
		return config.Policy{
			Routes: map[string]config.RouteRule{
				config.RouteCheckUsername: denied,
				config.RouteSearch:        denied,
				config.RouteMe:            anyUser,
				config.RouteAdminSearch:   anyUser,
				config.RouteAdminUser:     anyUser,
			},
			// The platform-wide requirement is what makes every admin
			// route (and /me) admin-only.
			RequireRoles: []string{adminRole},
			RateLimits: &config.RateLimits{
				PerIP:        limit(20, 40),
				AuthFailures: limit(0.1, 5),
				PerUser:      limit(5, 20),
				PerDevice:    limit(5, 20),
			},
			Cache:       &config.PolicyCache{Bypass: &yes},
			MaxPageSize: &maxPage,
			Fields:      fields,
			CORS:        cors,
		}
	}

	maxPage := appMaxPageSize
	return config.Policy{
		Routes: map[string]config.RouteRule{
			config.RouteCheckUsername: anyUser,
			config.RouteSearch:        anyUser,
			config.RouteMe:            anyUser,
			config.RouteAdminSearch:   denied,
			config.RouteAdminUser:     denied,
		},
		RequireRoles: []string{},
		RateLimits: &config.RateLimits{
			PerIP:        limit(50, 100),
			AuthFailures: limit(0.5, 20),
			PerUser:      limit(10, 30),
			PerDevice:    limit(10, 30),
		},
		Cache:       &config.PolicyCache{Bypass: &no},
		MaxPageSize: &maxPage,
		Fields:      fields,
		CORS:        cors,
	}
}
