package telemetry

import (
	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/readcache"
	"github.com/bffgate/edge/upstream"
)

// Every label takes its value from a fixed list, and each list ends in the
// value that anything unexpected becomes. The hot-path observers turn a
// label into its index with a switch (no hashing, no allocation); the
// tables below turn indexes back into strings at scrape time. A test checks
// that each switch agrees with its list and with the packages it mirrors.

const otherLabel = "other"

var routeLabels = [...]string{
	config.RouteCheckUsername,
	config.RouteSearch,
	config.RouteMe,
	config.RouteAdminSearch,
	config.RouteAdminUser,
	"unmatched",
}

func routeIndex(route string) int {
	switch route {
	case config.RouteCheckUsername:
		return 0
	case config.RouteSearch:
		return 1
	case config.RouteMe:
		return 2
	case config.RouteAdminSearch:
		return 3
	case config.RouteAdminUser:
		return 4
	}
	return 5
}

var methodLabels = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", otherLabel}

func methodIndex(method string) int {
	switch method {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "DELETE":
		return 4
	case "OPTIONS":
		return 5
	case "PATCH":
		return 6
	}
	return 7
}

// A status outside 200–599 cannot come from the gateway's own handlers
// (fasthttp defaults to 200); it is counted, not trusted.
var classLabels = [...]string{"2xx", "3xx", "4xx", "5xx", otherLabel}

func classIndex(status int) int {
	if status < 200 || status > 599 {
		return 4
	}
	return status/100 - 2
}

var platformLabels = [...]string{"web", "mobile_ios", "mobile_android", "admin", "api", "unknown"}

func platformIndex(platform string) int {
	switch platform {
	case "web":
		return 0
	case "mobile_ios":
		return 1
	case "mobile_android":
		return 2
	case "admin":
		return 3
	case "api":
		return 4
	}
	return 5
}

// cacheLabels are the read cache's answers (X-Cache), lower-cased; BYPASS
// is what the gateway writes when caching is off for a request.
var cacheLabels = [...]string{"hit", "miss", "stale", "bypass", otherLabel}

func cacheIndex(status string) int {
	switch status {
	case "HIT", "hit":
		return 0
	case "MISS", "miss":
		return 1
	case "STALE", "stale":
		return 2
	case "BYPASS", "bypass":
		return 3
	}
	return 4
}

var opLabels = [...]string{
	string(upstream.OpUsernameCheck),
	string(upstream.OpSearch),
	string(upstream.OpUserByID),
	string(upstream.OpLiveStreams),
	otherLabel,
}

func opIndex(op upstream.Op) int {
	switch op {
	case upstream.OpUsernameCheck:
		return 0
	case upstream.OpSearch:
		return 1
	case upstream.OpUserByID:
		return 2
	case upstream.OpLiveStreams:
		return 3
	}
	return 4
}

var outcomeLabels = [...]string{
	upstream.OutcomeOK,
	upstream.OutcomeBadRequest,
	upstream.OutcomeNotFound,
	upstream.OutcomeConflict,
	upstream.OutcomeError5xx,
	upstream.OutcomeRedirect,
	upstream.OutcomeBadStatus,
	upstream.OutcomeBadResponse,
	upstream.OutcomeTooLarge,
	upstream.OutcomeTimeout,
	upstream.OutcomeConnect,
	upstream.OutcomeReset,
	upstream.OutcomeCanceled,
	upstream.OutcomeBreakerOpen,
	upstream.OutcomeBulkheadFull,
	upstream.OutcomeBudget,
	upstream.OutcomePoolFull,
	upstream.OutcomeInvalidInput,
	otherLabel,
}

func outcomeIndex(outcome string) int {
	switch outcome {
	case upstream.OutcomeOK:
		return 0
	case upstream.OutcomeBadRequest:
		return 1
	case upstream.OutcomeNotFound:
		return 2
	case upstream.OutcomeConflict:
		return 3
	case upstream.OutcomeError5xx:
		return 4
	case upstream.OutcomeRedirect:
		return 5
	case upstream.OutcomeBadStatus:
		return 6
	case upstream.OutcomeBadResponse:
		return 7
	case upstream.OutcomeTooLarge:
		return 8
	case upstream.OutcomeTimeout:
		return 9
	case upstream.OutcomeConnect:
		return 10
	case upstream.OutcomeReset:
		return 11
	case upstream.OutcomeCanceled:
		return 12
	case upstream.OutcomeBreakerOpen:
		return 13
	case upstream.OutcomeBulkheadFull:
		return 14
	case upstream.OutcomeBudget:
		return 15
	case upstream.OutcomePoolFull:
		return 16
	case upstream.OutcomeInvalidInput:
		return 17
	}
	return 18
}

// breakerLabels are gobreaker's state names; the index is also the value
// of gateway_breaker_state (0 closed, 1 half-open, 2 open).
var breakerLabels = [...]string{"closed", "half-open", "open", otherLabel}

func breakerIndex(state string) int {
	switch state {
	case "closed":
		return 0
	case "half-open":
		return 1
	case "open":
		return 2
	}
	return 3
}

// policyLabels are config.PolicyNames; a test keeps them in step.
var policyLabels = [...]string{"all", "web", "mobile_ios", "mobile_android", "admin", "api", "unknown", otherLabel}

func policyIndex(policy string) int {
	switch policy {
	case "all":
		return 0
	case "web":
		return 1
	case "mobile_ios":
		return 2
	case "mobile_android":
		return 3
	case "admin":
		return 4
	case "api":
		return 5
	case "unknown":
		return 6
	}
	return 7
}

// limitKindLabels are the rate-limit kinds as config.yaml names them under
// rateLimits: (policies.Verdict.Kind).
var limitKindLabels = [...]string{"perIP", "authFailures", "perUser", "perDevice", otherLabel}

func limitKindIndex(kind string) int {
	switch kind {
	case "perIP":
		return 0
	case "authFailures":
		return 1
	case "perUser":
		return 2
	case "perDevice":
		return 3
	}
	return 4
}

var evictionLabels = [...]string{readcache.EvictCapacity, readcache.EvictExpired, readcache.EvictPurge, otherLabel}

func evictionIndex(reason string) int {
	switch reason {
	case readcache.EvictCapacity:
		return 0
	case readcache.EvictExpired:
		return 1
	case readcache.EvictPurge:
		return 2
	}
	return 3
}

var (
	hitLabels    = [...]string{"hit", "miss"}
	resultLabels = [...]string{"ok", "error"}
)

func hitIndex(hit bool) int {
	if hit {
		return 0
	}
	return 1
}

func resultIndex(err error) int {
	if err == nil {
		return 0
	}
	return 1
}
