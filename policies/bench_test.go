package policies_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/policies"
)

// The request path must not allocate: these run once per request.
func TestHotPathsDoNotAllocate(t *testing.T) {
	set := compile(t, `web: {cors: {allowOrigins: ["https://app.example.com"]}}`)
	web := set.For(clientctx.PlatformWeb)
	l := policies.NewLimiter(1000)
	ip := netip.MustParseAddr("2001:db8::7")
	trusted := mustTrusted(t, "10.0.0.0/8")
	xff := lines("1.2.3.4, 198.51.100.20", "10.9.9.9")
	peer := netip.MustParseAddr("10.1.1.1")
	var who policies.Principal = user
	l.AllowUser(web, "alice", t0)
	l.AllowIP(web, ip, t0)
	l.RecordAuthFailure(web, ip, t0)
	discard := func(string, string) {}
	checks := map[string]func(){
		"For":                   func() { _ = set.For(clientctx.PlatformIOS) },
		"Authorize":             func() { _ = web.Authorize(config.RouteSearch, who) },
		"Authorize denied":      func() { _ = web.Authorize(config.RouteAdminUser, who) },
		"AllowUser":             func() { _ = l.AllowUser(web, "alice", t0) },
		"AllowIP":               func() { _ = l.AllowIP(web, ip, t0) },
		"AuthFailuresExhausted": func() { _ = l.AuthFailuresExhausted(web, ip, t0) },
		"ClientIP":              func() { _ = policies.ClientIP(peer, xff, trusted) },
		"Preflight": func() {
			_ = web.CORS().Preflight("https://app.example.com", "GET", "authorization, x-platform", discard)
		},
		"Actual":          func() { _ = web.CORS().Actual("https://app.example.com", discard) },
		"PreflightPolicy": func() { _ = set.PreflightPolicy("https://app.example.com") },
		"CacheTTL":        func() { _ = web.CacheTTL("search", time.Second) },
		"FieldClass":      func() { _ = web.FieldClass(policies.ViewPublic) },
	}
	for name, f := range checks {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}

func BenchmarkFor(b *testing.B) {
	set, _ := policies.Compile(nil, config.Default().Auth)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = set.For(clientctx.Platform(i % 6))
	}
}

func BenchmarkAuthorize(b *testing.B) {
	set, _ := policies.Compile(nil, config.Default().Auth)
	adm := set.For(clientctx.PlatformAdmin)
	var who policies.Principal = admin
	b.ReportAllocs()
	for b.Loop() {
		_ = adm.Authorize(config.RouteAdminSearch, who)
	}
}

func BenchmarkAllowUserHotKey(b *testing.B) {
	set, _ := policies.Compile(nil, config.Default().Auth)
	web := set.For(clientctx.PlatformWeb)
	l := policies.NewLimiter(policies.DefaultMaxKeys)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = l.AllowUser(web, "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11", now)
	}
}

func BenchmarkAllowUserHotKeyParallel(b *testing.B) {
	set, _ := policies.Compile(nil, config.Default().Auth)
	web := set.For(clientctx.PlatformWeb)
	l := policies.NewLimiter(policies.DefaultMaxKeys)
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = l.AllowUser(web, "8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11", now)
		}
	})
}

func BenchmarkAllowIP(b *testing.B) {
	set, _ := policies.Compile(nil, config.Default().Auth)
	web := set.For(clientctx.PlatformWeb)
	l := policies.NewLimiter(policies.DefaultMaxKeys)
	ip := netip.MustParseAddr("198.51.100.20")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = l.AllowIP(web, ip, now)
	}
}

func BenchmarkClientIP(b *testing.B) {
	trusted := mustTrusted(b, "10.0.0.0/8", "172.16.0.0/12")
	xff := lines("1.2.3.4, 198.51.100.20, 172.16.0.9")
	peer := netip.MustParseAddr("10.1.1.1")
	b.ReportAllocs()
	for b.Loop() {
		_ = policies.ClientIP(peer, xff, trusted)
	}
}

func BenchmarkClientIPUntrustedPeer(b *testing.B) {
	trusted := mustTrusted(b, "10.0.0.0/8")
	xff := lines("1.2.3.4")
	peer := netip.MustParseAddr("203.0.113.5")
	b.ReportAllocs()
	for b.Loop() {
		_ = policies.ClientIP(peer, xff, trusted)
	}
}
