package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

const okEnvelope = `{"isSuccess":true,"statusCode":200,"data":{"available":true},"errors":[],"timestamp":"2026-01-01T00:00:00.000Z"}`

func TestCheck(t *testing.T) {
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	with := func(k, v string) http.Header {
		h := jsonHeader.Clone()
		h.Set(k, v)
		return h
	}
	envelope := &scenario{envelope: true}
	username := &scenario{envelope: true, exactData: `{"available":true}`}
	bypass := &scenario{envelope: true, wantCache: "BYPASS"}
	exact := &scenario{exact: []byte("abc")}
	cached := &scenario{envelope: true, CacheHit: true, cacheHeader: "X-Cache"}
	for _, tc := range []struct {
		name      string
		sc        *scenario
		status    int
		h         http.Header
		body      string
		fromCache bool
		bad       string // part of the error, "" for none
	}{
		{"envelope", envelope, 200, jsonHeader, okEnvelope, false, ""},
		{"no answer", envelope, 0, nil, "", false, "no answer"},
		{"status", envelope, 503, jsonHeader, okEnvelope, false, "status 503"},
		{"content type", envelope, 200, http.Header{"Content-Type": {"text/plain"}}, okEnvelope, false, "content type"},
		{"failure shape", envelope, 200, jsonHeader, `{"isSuccess":false,"statusCode":200,"data":null,"errors":["x"],"timestamp":"t"}`, false, "not a success envelope"},
		{"null data", envelope, 200, jsonHeader, `{"isSuccess":true,"statusCode":200,"data":null,"errors":[],"timestamp":"t"}`, false, "not a success envelope"},
		{"truncated", envelope, 200, jsonHeader, okEnvelope[:50], false, "not a success envelope"},
		{"partial", envelope, 200, with("X-Partial-Response", "liveStream"), okEnvelope, false, "partial"},
		{"username", username, 200, jsonHeader, okEnvelope, false, ""},
		{"username taken", username, 200, jsonHeader, strings.Replace(okEnvelope, "true}", "false}", 1), false, "data is not"},
		{"bypass", bypass, 200, with("X-Cache", "BYPASS"), okEnvelope, false, ""},
		{"bypass missing", bypass, 200, with("X-Cache", "HIT"), okEnvelope, false, "X-Cache"},
		{"exact", exact, 200, nil, "abc", false, ""},
		{"exact differs", exact, 200, nil, "abd", false, "differs"},
		{"hit", cached, 200, with("X-Cache", "HIT"), okEnvelope, true, ""},
		{"stale", cached, 200, with("X-Cache", "STALE"), okEnvelope, true, ""},
		{"miss", cached, 200, with("X-Cache", "MISS"), okEnvelope, false, ""},
	} {
		fromCache, err := tc.sc.check(tc.status, tc.h, []byte(tc.body), "dial tcp: refused")
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%s: error %v, want one about %q", tc.name, err, tc.bad)
		case fromCache != tc.fromCache:
			t.Errorf("%s: fromCache %v", tc.name, fromCache)
		}
	}
}

// rawServer answers every request on a connection with the given bytes,
// the Nth answer of each connection with X-Cache: HIT from then on.
func rawServer(t *testing.T, answer func(n int) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for n := 1; ; n++ {
					req, err := http.ReadRequest(r)
					if err != nil {
						return
					}
					req.Body.Close()
					if _, err := c.Write([]byte(answer(n))); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func rawAnswer(cache string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Cache: %s\r\nContent-Length: %d\r\n\r\n%s",
		cache, len(okEnvelope), okEnvelope)
}

// The probe records the exact size of an answer on the wire, and of a
// cache answer, not of the first miss.
func TestProbeMeasuresTheWire(t *testing.T) {
	url := rawServer(t, func(n int) string {
		if n == 1 {
			return rawAnswer("MISS-AND-LONGER")
		}
		return rawAnswer("HIT")
	})
	sc := &scenario{Method: http.MethodGet, URL: url + "/me", envelope: true, CacheHit: true, cacheHeader: "X-Cache"}
	if err := sc.probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := len(rawAnswer("HIT")); sc.ResponseBytes != want {
		t.Errorf("ResponseBytes = %d, want %d", sc.ResponseBytes, want)
	}

	never := rawServer(t, func(int) string { return rawAnswer("MISS") })
	sc = &scenario{Method: http.MethodGet, URL: never + "/me", envelope: true, CacheHit: true, cacheHeader: "X-Cache"}
	if err := sc.probe(context.Background()); err == nil || !strings.Contains(err.Error(), "never answered from the cache") {
		t.Errorf("probe of a cache that never hits: %v", err)
	}

	bad := rawServer(t, func(int) string { return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" })
	sc = &scenario{Method: http.MethodGet, URL: bad + "/x"}
	if err := sc.probe(context.Background()); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Errorf("probe of a 404: %v", err)
	}
}

// A static scenario's first checked body becomes the expected one.
func TestProbeLearnsStaticBytes(t *testing.T) {
	url := rawServer(t, func(int) string { return "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc" })
	sc := &scenario{Method: http.MethodGet, URL: url + "/u"}
	if err := sc.probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	if string(sc.exact) != "abc" || sc.ResponseBytes != len("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc") {
		t.Errorf("exact %q, size %d", sc.exact, sc.ResponseBytes)
	}
}
