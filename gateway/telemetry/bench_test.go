package telemetry

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/upstream"
)

// The per-request observers must not allocate: they run on every request.
func TestHotPathAllocatesNothing(t *testing.T) {
	m := NewMetrics("v")
	tr := &Tracing{}
	for name, f := range map[string]func(){
		"RequestStarted": m.RequestStarted,
		"RequestDone":    func() { m.RequestDone(config.RouteSearch, "GET", 200, "mobile_ios", 3*time.Millisecond) },
		"RequestDone/unknown labels": func() {
			m.RequestDone("nope", "BREW", 999, "toaster", time.Hour)
		},
		"CacheResult":  func() { m.CacheResult(config.RouteMe, "HIT") },
		"TokenCache":   func() { m.TokenCache(true) },
		"Call":         func() { m.Call(upstream.OpSearch, upstream.OutcomeOK, time.Millisecond) },
		"Retry":        func() { m.Retry(upstream.OpSearch) },
		"RateLimited":  func() { m.RateLimited("web", "perIP") },
		"BreakerState": func() { m.BreakerState(upstream.OpSearch, "closed", "open") },
		"Evicted":      func() { m.Evicted("capacity", 1) },
		"tracing off": func() {
			ctx, span := tr.StartRequest([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), config.RouteMe, "GET")
			ctx2, child := tr.StartSpan(ctx, "authenticate")
			_, call := tr.StartClientSpan(ctx2, "userstore", attrRoute.String("x"))
			call.SetAttributes(attrRoute.String("y"))
			call.SetHTTPStatus(500)
			call.End()
			child.End()
			span.SetRoute("GET", config.RouteMe)
			span.End()
			_ = Traceparent(ctx2)
			_ = ContextWithSpan(ctx, span)
		},
	} {
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}

func BenchmarkRequestDone(b *testing.B) {
	m := NewMetrics("v")
	b.ReportAllocs()
	for b.Loop() {
		m.RequestDone(config.RouteSearch, "GET", 200, "mobile_ios", 3*time.Millisecond)
	}
}

func BenchmarkRequestDoneParallel(b *testing.B) {
	m := NewMetrics("v")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.RequestDone(config.RouteSearch, "GET", 200, "mobile_ios", 3*time.Millisecond)
		}
	})
}

func BenchmarkRequestStarted(b *testing.B) {
	m := NewMetrics("v")
	b.ReportAllocs()
	for b.Loop() {
		m.RequestStarted()
	}
}

func BenchmarkCall(b *testing.B) {
	m := NewMetrics("v")
	b.ReportAllocs()
	for b.Loop() {
		m.Call(upstream.OpSearch, upstream.OutcomeTimeout, 40*time.Millisecond)
	}
}

func BenchmarkCacheResult(b *testing.B) {
	m := NewMetrics("v")
	b.ReportAllocs()
	for b.Loop() {
		m.CacheResult(config.RouteMe, "HIT")
	}
}

func BenchmarkTokenCache(b *testing.B) {
	m := NewMetrics("v")
	b.ReportAllocs()
	for b.Loop() {
		m.TokenCache(true)
	}
}

// Scrapes are rare; this shows what one costs with every request series
// in use.
func BenchmarkGather(b *testing.B) {
	m := NewMetrics("v")
	for r := range routeLabels {
		for p := range platformLabels {
			m.RequestDone(routeLabels[r], "GET", 200, platformLabels[p], time.Millisecond)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTracingOff(b *testing.B) {
	tr, err := NewTracing(context.Background(), config.Tracing{}, "v")
	if err != nil {
		b.Fatal(err)
	}
	tp := []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	b.ReportAllocs()
	for b.Loop() {
		ctx, span := tr.StartRequest(tp, config.RouteMe, "GET")
		_, child := tr.StartSpan(ctx, "authenticate")
		child.End()
		span.End()
	}
}

func BenchmarkPropagatedTraceparent(b *testing.B) {
	valid := []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	buf := make([]byte, 0, TraceparentLen)
	b.Run("valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendPropagatedTraceparent(buf[:0], valid)
		}
	})
	b.Run("absent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendPropagatedTraceparent(buf[:0], nil)
		}
	})
}

// accessLine logs what the gateway's access log writes.
func accessLine(l *slog.Logger) {
	l.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("request_id", "01J9Z3X4K5M6N7P8Q9R0S1T2V3"),
		slog.String("method", "GET"),
		slog.String("route", "users.search"),
		slog.Int("status", 200),
		slog.Float64("latency_ms", 1.234),
		slog.String("platform", "mobile_ios"),
		slog.String("app_version", "5.2.0"),
		slog.String("cache", "HIT"),
		slog.Float64("upstream_ms", 0),
		slog.String("breaker_open", ""),
		slog.Bool("partial", false),
	)
}

func BenchmarkAccessLog(b *testing.B) {
	b.Run("redacting", func(b *testing.B) {
		l, _ := NewLogger(io.Discard, "info")
		b.ReportAllocs()
		for b.Loop() {
			accessLine(l)
		}
	})
	b.Run("plain slog", func(b *testing.B) {
		l := slog.New(slog.NewJSONHandler(io.Discard, nil))
		b.ReportAllocs()
		for b.Loop() {
			accessLine(l)
		}
	})
}

func BenchmarkMask(b *testing.B) {
	b.Run("ordinary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = mask("01J9Z3X4K5M6N7P8Q9R0S1T2V3")
		}
	})
	b.Run("secret-laden", func(b *testing.B) {
		s := "user ann.lee+news@example.com called +44 20 7946 0958 with eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
		b.ReportAllocs()
		for b.Loop() {
			_, _ = mask(s)
		}
	})
}
