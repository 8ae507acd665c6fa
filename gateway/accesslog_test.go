package gateway

import (
	"bytes"
	"encoding/json"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/upstream/contract"
	"github.com/valyala/fasthttp"
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
			if !contract.IsUUID(want) {
				t.Fatalf("made id %q for %q", want, c.sent)
			}
		}
		if got["request_id"] != want {
			t.Errorf("sent %q: request_id %v, want %q", c.sent, got["request_id"], want)
		}
		releaseRequest(rq)
	}
}

// exactMillis is d's whole microseconds in milliseconds as the shortest
// exact decimal, by math/big: what the access line's numbers must say.
func exactMillis(d time.Duration) string {
	s := new(big.Rat).SetFrac64(d.Microseconds(), 1000).FloatString(3)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// FuzzAppendMillis: the integer formatting of milliseconds is the exact
// decimal of the whole microseconds, and where a float64 holds that
// exactly (below 10^15 µs, 31 years) also strconv.AppendFloat's digits,
// the format the line had before.
func FuzzAppendMillis(f *testing.F) {
	for _, d := range []int64{0, 999, 1000, 1500, 180_000, 1_200_000, 12_000_000_000, -1000, -2_500_000, -999,
		1 << 62, -1 << 63, 1<<63 - 1, 999_999_999_999_999_000, 1e18 + 1000} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		d := time.Duration(n)
		got := string(appendMillis(nil, d))
		if want := exactMillis(d); got != want {
			t.Fatalf("appendMillis(%d ns) = %s, want %s", n, got, want)
		}
		if us := d.Microseconds(); us > -1e15 && us < 1e15 {
			if want := strconv.FormatFloat(float64(us)/1000, 'f', -1, 64); got != want {
				t.Fatalf("appendMillis(%d ns) = %s, strconv %s", n, got, want)
			}
		}
	})
}

// FuzzAccessLine: whatever a client sent as its request id, app version
// or method (the line's client-chosen strings), the access line is one
// line of valid JSON whose strings decode to what encoding/json makes of
// the same values (or "[REDACTED]") and whose numbers are the status and
// the exact milliseconds.
func FuzzAccessLine(f *testing.F) {
	f.Add("client-id-42", "1.2.3", "GET", 200, int64(1200*time.Microsecond), int64(1500*time.Microsecond))
	f.Add("", "", "POST", 503, int64(0), int64(0))
	f.Add("a\"b\\c\n\x00</script>", "\xff\xfe", "\u2028", 599, int64(-5), int64(1<<62))
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "+905551234567", "other", 400, int64(time.Hour), int64(999))
	f.Add("\xed\xa0\x80", "1.2.3+45", "G\"ET", 100, int64(-1<<63), int64(1<<63-1))
	f.Fuzz(func(t *testing.T, id, appVersion, method string, status int, d, upstream int64) {
		rq := acquireRequest()
		defer releaseRequest(rq)
		rq.start = time.Date(2026, 11, 27, 7, 59, 59, 999_600_000, time.UTC)
		rq.id, rq.idMade = id, false
		rq.client.AppVersion = appVersion
		rq.cacheStatus, rq.breakerOpen = "MISS", "userById"
		rq.upstreamTime.Store(upstream)
		line := appendAccessLine(nil, rq, method, "me", status, time.Duration(d))
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("not one line: %q", line)
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var got map[string]any
		if err := dec.Decode(&got); err != nil || !json.Valid(line) {
			t.Fatalf("%q: %v", line, err)
		}
		roundTrip := func(s string) string {
			b, _ := json.Marshal(s)
			var v string
			_ = json.Unmarshal(b, &v)
			return v
		}
		for _, c := range []struct{ key, sent string }{{"request_id", id}, {"app_version", appVersion}, {"method", method}} {
			want := roundTrip(c.sent)
			if c.key != "method" && mayHoldSecret(c.sent) {
				want = "[REDACTED]"
			}
			if got[c.key] != want {
				t.Fatalf("%s %q logged as %q, want %q in %q", c.key, c.sent, got[c.key], want, line)
			}
		}
		for _, c := range []struct {
			key  string
			want string
		}{
			{"status", strconv.Itoa(status)},
			{"latency_ms", exactMillis(time.Duration(d))},
			{"upstream_ms", exactMillis(time.Duration(upstream))},
			{"time", rq.start.Add(time.Duration(d)).UTC().Format("2006-01-02T15:04:05.000Z07:00")},
		} {
			if v := got[c.key]; v != json.Number(c.want) && v != c.want {
				t.Fatalf("%s logged as %v, want %s in %q", c.key, v, c.want, line)
			}
		}
	})
}

// heldWriter is an output whose first write waits until released: an
// output slower than the traffic.
type heldWriter struct {
	entered, release chan struct{}
	once             sync.Once
	mu               sync.Mutex
	out              bytes.Buffer
}

func (w *heldWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered); <-w.release })
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(p)
}

// A request never waits for a slow output: past 4 MiB of pending lines,
// lines are dropped, and a WARN line with the next batch says how many.
// Lines pending when the log closes are written.
func TestAccessLogDropsLinesWhenTheOutputIsSlow(t *testing.T) {
	w := &heldWriter{entered: make(chan struct{}), release: make(chan struct{})}
	a := newAccessLog(w)
	line := append(bytes.Repeat([]byte("x"), 1023), '\n')
	batch := accessLogBatch / len(line)
	for range batch { // a full batch wakes the writer, which then waits in the output
		a.write(line)
	}
	select {
	case <-w.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("a full batch did not reach the output")
	}
	kept := accessLogMaxPending / len(line)
	for range kept + 10 {
		a.write(line)
	}
	close(w.release)
	a.Close()
	lines := strings.Split(strings.TrimSuffix(w.out.String(), "\n"), "\n")
	if want := batch + kept + 1; len(lines) != want {
		t.Fatalf("%d lines written, want %d (%d of the request lines and the warning)", len(lines), want, batch+kept)
	}
	var warn struct {
		Level, Msg string
		Dropped    int
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &warn); err != nil || warn.Level != "WARN" || warn.Dropped != 10 {
		t.Fatalf("last line %q (%v), want a WARN line with dropped 10", lines[len(lines)-1], err)
	}

	// Closing writes what is pending.
	var out bytes.Buffer
	a = newAccessLog(&out)
	a.write([]byte("{\"msg\":\"request\"}\n"))
	a.Close()
	if out.String() != "{\"msg\":\"request\"}\n" {
		t.Fatalf("after Close the output holds %q, want the pending line", out.String())
	}
}

// A second Close waits for the lines as the first does: the binary's exit
// on a second signal closes the queues while the run may be closing them
// already, and exits once Close returns (Server.CloseAccessLog).
func TestAccessLogSecondCloseWaitsForTheLines(t *testing.T) {
	w := &heldWriter{entered: make(chan struct{}), release: make(chan struct{})}
	a := newAccessLog(w)
	a.write([]byte("{\"msg\":\"request\"}\n"))
	go a.Close() // the run's
	select {
	case <-w.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first Close did not write the pending line")
	}
	second := make(chan struct{})
	start := time.Now()
	go func() {
		a.Close()
		close(second)
	}()
	select {
	case <-second:
		t.Fatal("the second Close returned while the pending line was still being written")
	case <-time.After(100 * time.Millisecond):
	}
	close(w.release)
	select {
	case <-second:
	case <-time.After(10 * time.Second):
		t.Fatal("the second Close did not return once the line was written")
	}
	// Unless the wait timed out (a second, on a stalled machine), the line
	// was written when the second Close returned.
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.out.String() != "{\"msg\":\"request\"}\n" && time.Since(start) < accessLogCloseWait {
		t.Fatalf("when the second Close returned the output held %q, want the line", w.out.String())
	}
}

// A client value that looks like a JWT (starts of base64url JSON, with
// dots) or holds a phone number ('+' and a digit at the start or after a
// separator) is written as "[REDACTED]"; semver build metadata and other
// values are written as sent.
func TestAppendClientStringRedactsWhatLooksLikeASecret(t *testing.T) {
	for s, redacted := range map[string]bool{
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln": true,
		"x-eyJhbGciOiJIUzI1NiJ9.e30":                true,
		"+905551234567":                             true,
		"tel:+905551234567":                         true,
		"4.0.0_+4917612345678":                      true,
		"eyJ-without-dots":                          false,
		"1.2.3+45":                                  false,
		"4.0.0-beta.1+build.7":                      false,
		"v+1":                                       false,
		"+":                                         false,
		"client-id-42":                              false,
	} {
		want := strconv.Quote(s)
		if redacted {
			want = `"[REDACTED]"`
		}
		if got := string(appendClientString(nil, s)); got != want {
			t.Errorf("appendClientString(%q) = %s, want %s", s, got, want)
		}
	}
}

// The access line has every field operations.md lists, each with the
// request's value: the line is written by hand, so a field left out or
// given another's value would go unseen by a JSON parser.
func TestAccessLineFields(t *testing.T) {
	rq := acquireRequest()
	defer releaseRequest(rq)
	rq.start = time.Date(2026, 11, 27, 1, 53, 37, 262_000_000, time.UTC)
	rq.setID([]byte("client-id-42"))
	rq.client.Platform, rq.client.AppVersion = clientctx.PlatformIOS, "5.2.0"
	rq.cacheStatus, rq.breakerOpen, rq.partial = "STALE", "usernameCheck", true
	rq.upstreamTime.Store(int64(3466 * time.Microsecond))
	line := appendAccessLine(nil, rq, "POST", "users.checkUsername", 503, 2934*time.Microsecond)
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	want := map[string]any{
		"time": "2026-11-27T01:53:37.264Z", "level": "INFO", "msg": "request", "request_id": "client-id-42",
		"method": "POST", "route": "users.checkUsername", "status": 503.0, "latency_ms": 2.934,
		"platform": "mobile_ios", "app_version": "5.2.0", "cache": "STALE", "upstream_ms": 3.466,
		"breaker_open": "usernameCheck", "partial": true,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d fields, want %d: %s", len(got), len(want), line)
	}
}

// A request answered before the edge is logged with its client context
// and method only when its header block was read and trusted
// (headersRead): one refused for its framing or request line still has
// its header fields, which name no platform or app version on its line.
func TestFinishUnroutedTrustsOnlyReadHeaders(t *testing.T) {
	s, _ := edgeServer(t)
	for _, headersRead := range []bool{false, true} {
		var out bytes.Buffer
		s.access = newAccessLog(&out)
		s.accessLog.Store(true)
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.Header.Set("X-Platform", "ios")
		ctx.Request.Header.Set("X-App-Version", "5.2.0")
		ctx.Response.SetStatusCode(fasthttp.StatusBadRequest)
		s.finishUnrouted(&ctx, time.Now(), headersRead)
		s.access.Close()
		var got map[string]any
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%q: %v", out.String(), err)
		}
		method, platform, appVersion := "other", "web", ""
		if headersRead {
			method, platform, appVersion = "POST", "mobile_ios", "5.2.0"
		}
		if got["method"] != method || got["platform"] != platform || got["app_version"] != appVersion || got["route"] != "unmatched" {
			t.Errorf("headers read %v: method %v, platform %v, app_version %v, route %v; want %s, %s, %q, unmatched",
				headersRead, got["method"], got["platform"], got["app_version"], got["route"], method, platform, appVersion)
		}
	}
	s.access = nil
}

// The event lines' output (LogOutput) never blocks its caller: past 4 MiB
// waiting for an output that takes nothing, lines are dropped, and the
// count names them log lines, not access log lines; Close stops waiting
// for such an output after a second.
func TestLogOutputDropsWhatAStuckOutputCannotTake(t *testing.T) {
	w := &heldWriter{entered: make(chan struct{}), release: make(chan struct{})}
	l := NewLogOutput(w)
	l.Write([]byte("{\"msg\":\"listening\"}\n")) // a line alone wakes the writer
	select {
	case <-w.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("a line did not reach the output")
	}
	line := append(bytes.Repeat([]byte("x"), 1023), '\n')
	for range accessLogMaxPending/len(line) + 3 {
		if n, err := l.Write(line); n != len(line) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	close(w.release)
	l.Close()
	lines := strings.Split(strings.TrimSuffix(w.out.String(), "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, `"msg":"log lines dropped: output too slow","dropped":3}`) {
		t.Fatalf("last line %q, want the count of the 3 lines dropped", last)
	}

	stuck := &heldWriter{entered: make(chan struct{}), release: make(chan struct{})}
	defer close(stuck.release)
	l = NewLogOutput(stuck)
	l.Write([]byte("{\"msg\":\"stopped\"}\n"))
	<-stuck.entered
	start := time.Now()
	l.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close waited %v for an output that takes nothing", d)
	}
}

// The event lines' output writes each line as soon as the output takes it,
// not with the next batch: a line that must not wait for a request's
// batch (shutting down, a failure) reaches the log at once. Lines written
// one after the other, each waited for, take a few milliseconds each (the
// median is judged, so a stalled machine's odd slow one does not count);
// by the batch's interval they would take up to 100 ms each.
func TestLogOutputWritesEachLineAtOnce(t *testing.T) {
	w := &signalWriter{wrote: make(chan struct{}, 1)}
	l := NewLogOutput(w)
	defer l.Close()
	took := make([]time.Duration, 21)
	for i := range took {
		start := time.Now()
		l.Write([]byte("{\"msg\":\"line " + strconv.Itoa(i) + "\"}\n"))
		select {
		case <-w.wrote:
		case <-time.After(10 * time.Second):
			t.Fatalf("line %d did not reach the output", i)
		}
		took[i] = time.Since(start)
	}
	slices.Sort(took)
	if median := took[len(took)/2]; median >= accessLogInterval/2 {
		t.Fatalf("a line took %v (median) to reach the output: not written at once, but with the batch (%v)", median, accessLogInterval)
	}
}

// signalWriter signals each write.
type signalWriter struct{ wrote chan struct{} }

func (w *signalWriter) Write(p []byte) (int, error) {
	w.wrote <- struct{}{}
	return len(p), nil
}
