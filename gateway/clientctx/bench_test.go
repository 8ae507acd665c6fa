package clientctx_test

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/bffgate/edge/gateway/clientctx"
)

// Run with: go test -run XXX -bench . -benchmem ./gateway/clientctx

var sink clientctx.Context

func benchmarkNormalize(b *testing.B, raw string) {
	var h fasthttp.RequestHeader
	readHeader(b, &h, raw)
	now := time.Now()
	sink = clientctx.Normalize(&h, now) // warm the zone cache
	b.ReportAllocs()
	for b.Loop() {
		sink = clientctx.Normalize(&h, now)
	}
}

// A mobile app with an offset, no app version or device id: 0 allocs.
func BenchmarkNormalizeOffset(b *testing.B) {
	benchmarkNormalize(b, "GET /api/v1/users/me HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer x\r\n"+
		"X-Language: tr\r\nX-Timezone: UTC+03:00\r\nX-Platform: mobile_ios\r\n\r\n")
}

// A browser: Accept-Language list, IANA zone after warm-up: 0 allocs.
func BenchmarkNormalizeBrowserIANA(b *testing.B) {
	benchmarkNormalize(b, "GET /api/v2/users/search?q=jo HTTP/1.1\r\nHost: edge\r\n"+
		"Accept-Language: tr-TR,tr;q=0.9,en-US;q=0.8,en;q=0.7\r\nX-Timezone: Europe/Istanbul\r\n\r\n")
}

// No client headers at all: 0 allocs.
func BenchmarkNormalizeBare(b *testing.B) {
	benchmarkNormalize(b, "GET / HTTP/1.1\r\nHost: edge\r\n\r\n")
}

// Everything sent: the app version and device id copies are the 2 allocs.
func BenchmarkNormalizeFull(b *testing.B) {
	benchmarkNormalize(b, "GET /api/v1/users/me HTTP/1.1\r\nHost: edge\r\n"+
		"X-Language: tr\r\nX-Timezone: America/New_York\r\nX-Platform: android\r\n"+
		"X-App-Version: 4.0.0-beta.1+build.7\r\nX-Device-Id: 8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11\r\n\r\n")
}

// Hostile values take the rejecting paths: 0 allocs.
func BenchmarkNormalizeHostile(b *testing.B) {
	benchmarkNormalize(b, "GET / HTTP/1.1\r\nHost: edge\r\n"+
		"X-Language: ../../etc/passwd\r\nAccept-Language: de,fr,es,it,nl,pl,pt,ru,ja,zh,ko,ar,he\r\n"+
		"X-Timezone: Europe/../../etc\r\nX-Platform: all\r\nX-Device-Id: a b\r\n\r\n")
}

func BenchmarkParseTimezoneIANA(b *testing.B) {
	v := []byte("America/Los_Angeles")
	now := time.Now()
	clientctx.ParseTimezone(v, now) // warm-up: loads the location once
	b.ReportAllocs()
	for b.Loop() {
		clientctx.ParseTimezone(v, now)
	}
}

func BenchmarkParseTimezoneUnknownName(b *testing.B) {
	v := []byte("Europe/Atlantis")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		clientctx.ParseTimezone(v, now)
	}
}

func BenchmarkParseTimezoneOffset(b *testing.B) {
	v := []byte("GMT-03:30")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		clientctx.ParseTimezone(v, now)
	}
}

func BenchmarkParseLanguageAccept(b *testing.B) {
	v := []byte("de-DE,de;q=0.9,en-GB;q=0.8,tr;q=0.85,*;q=0.1")
	b.ReportAllocs()
	for b.Loop() {
		clientctx.ParseLanguage(nil, v)
	}
}

// The hot path's promise, checked on every test run: typical requests
// allocate nothing, and a full one only the two identifier copies.
func TestNormalizeAllocations(t *testing.T) {
	tests := []struct {
		raw  string
		want float64
	}{
		{"GET / HTTP/1.1\r\nHost: edge\r\n\r\n", 0},
		{"GET / HTTP/1.1\r\nHost: edge\r\nX-Language: tr\r\nX-Timezone: +03:00\r\nX-Platform: web\r\n\r\n", 0},
		{"GET / HTTP/1.1\r\nHost: edge\r\nAccept-Language: de,tr;q=0.5\r\nX-Timezone: Asia/Kathmandu\r\n\r\n", 0},
		{"GET / HTTP/1.1\r\nHost: edge\r\nX-Language: x\r\nX-Timezone: Europe/../../etc\r\nX-Platform: all\r\nX-App-Version: a b\r\n\r\n", 0},
		{"GET / HTTP/1.1\r\nHost: edge\r\nX-App-Version: 1.2.3\r\nX-Device-Id: abc-def\r\n\r\n", 2},
	}
	now := time.Now()
	for _, tt := range tests {
		var h fasthttp.RequestHeader
		readHeader(t, &h, tt.raw)
		clientctx.Normalize(&h, now) // warm the zone cache
		if got := testing.AllocsPerRun(100, func() { sink = clientctx.Normalize(&h, now) }); got != tt.want {
			t.Errorf("%q: %v allocations, want %v", tt.raw, got, tt.want)
		}
	}
}

// Everything sent on a connection whose memo holds the app version and
// device id: 0 allocs.
func BenchmarkNormalizeFullRemembered(b *testing.B) {
	var h fasthttp.RequestHeader
	readHeader(b, &h, "GET /api/v1/users/me HTTP/1.1\r\nHost: edge\r\n"+
		"X-Language: tr\r\nX-Timezone: America/New_York\r\nX-Platform: android\r\n"+
		"X-App-Version: 4.0.0-beta.1+build.7\r\nX-Device-Id: 8d7c6f0e-3b0a-4c1e-9a59-3f1f1c2b7d11\r\n\r\n")
	now := time.Now()
	var memo clientctx.Memo
	sink = clientctx.NormalizeOn(&h, now, &memo) // warm the zone cache and the memo
	b.ReportAllocs()
	for b.Loop() {
		sink = clientctx.NormalizeOn(&h, now, &memo)
	}
}
