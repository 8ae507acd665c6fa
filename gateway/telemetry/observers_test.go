package telemetry_test

import (
	"time"

	"github.com/bffgate/edge/gateway/auth"
	"github.com/bffgate/edge/gateway/readcache"
	"github.com/bffgate/edge/gateway/telemetry"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream"
)

// gatewayObserver is gateway.Observer, restated: the gateway is the
// package that wires telemetry in, and its tests are its own.
type gatewayObserver interface {
	RequestStarted()
	RequestDone(route, method string, status int, platform string, d time.Duration)
	RateLimited(policy, kind string)
	CacheResult(route, status string)
	ConnectionRefused()
}

// Metrics is every component's observer, and the components are its
// sources.
var (
	_ gatewayObserver     = (*telemetry.Metrics)(nil)
	_ auth.Observer       = (*telemetry.Metrics)(nil)
	_ upstream.Observer   = (*telemetry.Metrics)(nil)
	_ readcache.Observer  = (*telemetry.Metrics)(nil)
	_ telemetry.KeySource = (*auth.Verifier)(nil)

	_ telemetry.BreakerSource = (*upstream.Client)(nil)
	_ telemetry.CacheSource   = (*readcache.Cache)(nil)
	_ telemetry.LimiterSource = (*policies.Limiter)(nil)
)
