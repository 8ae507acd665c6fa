package gateway

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// appendMillis writes what strconv.AppendFloat(µs/1000, 'f', -1, 64), the
// format the access line had before, writes.
func TestAppendMillisAgreesWithAppendFloat(t *testing.T) {
	check := func(d time.Duration) {
		t.Helper()
		want := strconv.AppendFloat(nil, float64(d.Microseconds())/1000, 'f', -1, 64)
		if got := appendMillis(nil, d); string(got) != string(want) {
			t.Errorf("%v: %s, want %s", d, got, want)
		}
	}
	for us := range 20000 {
		check(time.Duration(us) * time.Microsecond)
	}
	for _, d := range []time.Duration{
		999 * time.Nanosecond, 1500 * time.Nanosecond, -2500 * time.Microsecond, -time.Second,
		time.Minute + 7*time.Microsecond, 10 * time.Hour, 1234567890 * time.Microsecond,
	} {
		check(d)
	}
}

// The line's time is the end of the request (start + duration), in the
// envelope's format, and the line is one JSON object with the latencies
// as numbers.
func TestAccessLineTimeIsTheRequestsEnd(t *testing.T) {
	rq := acquireRequest()
	defer releaseRequest(rq)
	rq.start = time.Date(2026, 11, 27, 7, 59, 59, 999_600_000, time.UTC)
	rq.id, rq.cacheStatus = "req-1", "HIT"
	rq.upstreamTime.Store(int64(1500 * time.Microsecond))
	line := appendAccessLine(nil, rq, "GET", "me", 200, 1200*time.Microsecond)
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if got["time"] != "2026-11-27T08:00:00.000Z" || got["latency_ms"] != 1.2 || got["upstream_ms"] != 1.5 {
		t.Errorf("time %v, latency_ms %v, upstream_ms %v in %s", got["time"], got["latency_ms"], got["upstream_ms"], line)
	}
}

// The request id is written as it is when the gateway made it, and through
// the client-value checks when the client sent it: a JWT-looking id is
// redacted.
func TestAccessLineRequestID(t *testing.T) {
	for _, c := range []struct {
		sent, want string // want "" means the made id
	}{
		{"", ""},
		{"not sane!", ""},
		{"client-id-42", "client-id-42"},
		{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "[REDACTED]"},
	} {
		rq := acquireRequest()
		rq.setID([]byte(c.sent))
		var got map[string]any
		line := appendAccessLine(nil, rq, "GET", "me", 200, time.Millisecond)
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		want := c.want
		if want == "" {
			want = rq.id
			if !isUUID(want) {
				t.Fatalf("made id %q for %q", want, c.sent)
			}
		}
		if got["request_id"] != want {
			t.Errorf("sent %q: request_id %v, want %q", c.sent, got["request_id"], want)
		}
		releaseRequest(rq)
	}
}
