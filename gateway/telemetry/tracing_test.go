package telemetry

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/bffgate/edge/config"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

const (
	clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientParent = "00f067aa0ba902b7"
)

// collector is an OTLP/HTTP trace receiver on loopback.
type collector struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []*coltracepb.ExportTraceServiceRequest
	problems []string
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			c.problems = append(c.problems, r.Method+" "+r.URL.Path)
			http.NotFound(w, r)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			c.problems = append(c.problems, "content type "+ct)
		}
		body, err := io.ReadAll(r.Body)
		if err != nil || len(body) == 0 {
			c.problems = append(c.problems, "empty or unreadable body")
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			c.problems = append(c.problems, "undecodable body: "+err.Error())
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		c.requests = append(c.requests, &req)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) endpoint() string { return strings.TrimPrefix(c.srv.URL, "http://") }

// spans returns every span received, with its resource's attributes.
func (c *collector) spans(t *testing.T) ([]*tracepb.Span, map[string]string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.problems {
		t.Errorf("collector: %s", p)
	}
	var spans []*tracepb.Span
	res := map[string]string{}
	for _, req := range c.requests {
		for _, rs := range req.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				res[kv.GetKey()] = kv.GetValue().GetStringValue()
			}
			for _, ss := range rs.GetScopeSpans() {
				spans = append(spans, ss.GetSpans()...)
			}
		}
	}
	return spans, res
}

func spanNamed(t *testing.T, spans []*tracepb.Span, name string) *tracepb.Span {
	t.Helper()
	for _, s := range spans {
		if s.GetName() == name {
			return s
		}
	}
	t.Fatalf("no span %q among %d", name, len(spans))
	return nil
}

// attrOf is a span attribute's value as text ("" when absent).
func attrOf(s *tracepb.Span, key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() != key {
			continue
		}
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			return v.StringValue
		case *commonpb.AnyValue_IntValue:
			return strconv.FormatInt(v.IntValue, 10)
		case *commonpb.AnyValue_BoolValue:
			return strconv.FormatBool(v.BoolValue)
		}
		return kv.GetValue().String()
	}
	return ""
}

func newEnabled(t *testing.T, c *collector, ratio float64) *Tracing {
	t.Helper()
	tr, err := NewTracing(context.Background(), config.Tracing{
		Enabled: true, Endpoint: c.endpoint(), Insecure: true, SampleRatio: ratio, ServiceName: "edge-test",
	}, "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() {
		t.Fatal("tracing is not enabled")
	}
	return tr
}

func TestTracingContinuesTheClientTraceAndNestsSpans(t *testing.T) {
	c := newCollector(t)
	// A ratio of 0 samples no new trace, so whatever arrives was sampled
	// because the client's traceparent said so.
	tr := newEnabled(t, c, 0)

	ctx, req := tr.StartRequest([]byte("00-"+clientTrace+"-"+clientParent+"-01"), "", "GET")
	if !req.IsRecording() {
		t.Fatal("a sampled client trace is not recorded")
	}
	req.SetRoute("GET", config.RouteMe)
	_, auth := tr.StartSpan(ctx, "authenticate", attribute.Bool("auth.cached", false))
	auth.End()
	callCtx, call := tr.StartClientSpan(ctx, "userstore userById")
	header := Traceparent(callCtx)
	call.Fail(errors.New("store answered 503"))
	call.End()
	req.SetHTTPStatus(502)
	req.End()

	// Not sampled (ratio 0, no parent): nothing is exported, yet calls
	// still get a valid header of a new trace.
	ctx2, lone := tr.StartRequest([]byte("00-"+strings.ToUpper(clientTrace)+"-"+clientParent+"-01"), config.RouteSearch, "GET")
	if lone.IsRecording() {
		t.Error("a malformed traceparent started a sampled trace at ratio 0")
	}
	h2 := Traceparent(ctx2)
	lone.End()
	if _, _, _, ok := parseTraceparent([]byte(h2)); !ok || strings.Contains(h2, clientTrace) || !strings.HasSuffix(h2, "-00") {
		t.Errorf("header after a malformed traceparent = %q, want a new unsampled trace", h2)
	}

	// A parent that says "not sampled" is followed too.
	ctx3, unsampled := tr.StartRequest([]byte("00-"+clientTrace+"-"+clientParent+"-00"), config.RouteSearch, "GET")
	if unsampled.IsRecording() {
		t.Error("an unsampled client trace is recorded")
	}
	if h3 := Traceparent(ctx3); !strings.HasPrefix(h3, "00-"+clientTrace+"-") || !strings.HasSuffix(h3, "-00") {
		t.Errorf("header in an unsampled client trace = %q", h3)
	}
	unsampled.End()

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(shutdownCtx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	spans, res := c.spans(t)
	if len(spans) != 3 {
		t.Fatalf("got %d spans, want 3 (request, authenticate, userstore)", len(spans))
	}
	if res["service.name"] != "edge-test" || res["service.version"] != "1.2.3" {
		t.Errorf("resource = %v, want service.name edge-test and service.version 1.2.3", res)
	}
	root := spanNamed(t, spans, "GET users.me")
	authSpan := spanNamed(t, spans, "authenticate")
	callSpan := spanNamed(t, spans, "userstore userById")
	for _, s := range spans {
		if got := hex.EncodeToString(s.GetTraceId()); got != clientTrace {
			t.Errorf("span %s is in trace %s, want the client's %s", s.GetName(), got, clientTrace)
		}
	}
	if got := hex.EncodeToString(root.GetParentSpanId()); got != clientParent {
		t.Errorf("request span's parent = %s, want the client's %s", got, clientParent)
	}
	if !bytes.Equal(authSpan.GetParentSpanId(), root.GetSpanId()) || !bytes.Equal(callSpan.GetParentSpanId(), root.GetSpanId()) {
		t.Error("child spans are not children of the request span")
	}
	if root.GetKind() != tracepb.Span_SPAN_KIND_SERVER || callSpan.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || authSpan.GetKind() != tracepb.Span_SPAN_KIND_INTERNAL {
		t.Errorf("kinds: request %v, call %v, auth %v", root.GetKind(), callSpan.GetKind(), authSpan.GetKind())
	}
	if want := "00-" + clientTrace + "-" + hex.EncodeToString(callSpan.GetSpanId()) + "-01"; header != want {
		t.Errorf("Traceparent = %q, want %q", header, want)
	}
	if got := attrOf(root, "http.route"); got != config.RouteMe {
		t.Errorf("http.route = %q", got)
	}
	if got := attrOf(root, "http.request.method"); got != "GET" {
		t.Errorf("http.request.method = %q", got)
	}
	if got := attrOf(root, "http.response.status_code"); got != "502" {
		t.Errorf("http.response.status_code = %q", got)
	}
	if root.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || callSpan.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Error("a 502 request and a failed call are not marked as errors")
	}
	if len(callSpan.GetEvents()) == 0 {
		t.Error("the call's error was not recorded")
	}
	if got := attrOf(authSpan, "auth.cached"); got != "false" {
		t.Errorf("auth.cached = %q", got)
	}
}

// Flags other than "sampled" are not the gateway's to pass on: W3C Trace
// Context has a participant that does not know a flag send it as zero.
// The trace and the sampling decision are continued all the same.
func TestTracingContinuesOnlyTheSampledFlag(t *testing.T) {
	tr := newEnabled(t, newCollector(t), 0)
	for flags, want := range map[string]string{"ff": "01", "fe": "00", "03": "01", "01": "01", "00": "00"} {
		ctx, req := tr.StartRequest([]byte("00-"+clientTrace+"-"+clientParent+"-"+flags), config.RouteMe, "GET")
		callCtx, call := tr.StartClientSpan(ctx, "userstore userById")
		got := Traceparent(callCtx)
		call.End()
		req.End()
		if !strings.HasPrefix(got, "00-"+clientTrace+"-") || !strings.HasSuffix(got, "-"+want) {
			t.Errorf("client flags %s: the store would get %q, want the client's trace with flags %s", flags, got, want)
		}
	}
	// A later version's trace is continued too, read as version 00.
	ctx, req := tr.StartRequest([]byte("01-"+clientTrace+"-"+clientParent+"-01-more"), config.RouteMe, "GET")
	callCtx, call := tr.StartClientSpan(ctx, "userstore userById")
	got := Traceparent(callCtx)
	call.End()
	req.End()
	if !strings.HasPrefix(got, "00-"+clientTrace+"-") || !strings.HasSuffix(got, "-01") {
		t.Errorf("a version-01 traceparent: the store would get %q, want the client's trace, sampled", got)
	}
}

func TestTracingSamplesNewTracesByRatio(t *testing.T) {
	c := newCollector(t)
	tr := newEnabled(t, c, 1)
	ctx, span := tr.StartRequest(nil, config.RouteSearch, "GET")
	if !span.IsRecording() {
		t.Fatal("ratio 1 did not sample a new trace")
	}
	h := Traceparent(ctx)
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, _ := c.spans(t)
	if len(spans) != 1 {
		t.Fatalf("got %d spans, want 1", len(spans))
	}
	s := spans[0]
	if len(s.GetParentSpanId()) != 0 {
		t.Errorf("a new trace's root has parent %x", s.GetParentSpanId())
	}
	if want := "00-" + hex.EncodeToString(s.GetTraceId()) + "-" + hex.EncodeToString(s.GetSpanId()) + "-01"; h != want {
		t.Errorf("Traceparent = %q, want %q", h, want)
	}
	if s.GetName() != "GET users.search" {
		t.Errorf("name = %q", s.GetName())
	}
	if len(spans) == 1 && attrOf(spans[0], "http.request.method") != "GET" {
		t.Errorf("method attribute = %q", attrOf(spans[0], "http.request.method"))
	}
	// After shutdown, spans are dropped, not exported or panicking.
	_, late := tr.StartRequest(nil, config.RouteSearch, "GET")
	late.End()
}

func TestTracingOffDoesNothing(t *testing.T) {
	for name, tr := range map[string]*Tracing{"disabled": mustTracing(t, config.Tracing{Endpoint: "ignored:1"}), "nil": nil, "zero": {}} {
		if tr.Enabled() {
			t.Errorf("%s: enabled", name)
		}
		ctx, span := tr.StartRequest([]byte("00-"+clientTrace+"-"+clientParent+"-01"), config.RouteMe, "GET")
		if span.IsRecording() {
			t.Errorf("%s: span recording", name)
		}
		if h := Traceparent(ctx); h != "" {
			t.Errorf("%s: Traceparent = %q, want empty (use AppendPropagatedTraceparent)", name, h)
		}
		parent := context.WithValue(context.Background(), struct{}{}, 1)
		if got, _ := tr.StartSpan(parent, "authenticate"); got != parent {
			t.Errorf("%s: StartSpan replaced the context", name)
		}
		if ContextWithSpan(parent, span) != parent {
			t.Errorf("%s: ContextWithSpan of a no-op span changed the context", name)
		}
		span.SetRoute("GET", "x")
		span.SetHTTPStatus(500)
		span.Fail(errors.New("x"))
		span.End()
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Errorf("%s: shutdown: %v", name, err)
		}
	}
	// Allocation-free when off is checked in TestHotPathAllocatesNothing.
}

// storeError stands for upstream.Error, whose text quotes the error code
// the store wrote: a broken store may put anything there.
type storeError struct{ code string }

func (e *storeError) Error() string {
	return "upstream search: bad gateway (error_5xx, status 500, code " + e.code + ")"
}

// A failed span's status and exception event carry the error's text, and
// spans are exported as they are, past the logger's redaction: the text
// is masked the same way.
func TestSpanFailMasksPersonalData(t *testing.T) {
	c := newCollector(t)
	tr := newEnabled(t, c, 1)
	_, span := tr.StartClientSpan(context.Background(), "userstore search")
	span.Fail(&storeError{code: `"sukru.isik@example.com +90 555 111 22 33 eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdWtydSJ9."`})
	span.End()
	_, plain := tr.StartClientSpan(context.Background(), "userstore userById")
	plain.Fail(&storeError{code: `"internal"`})
	plain.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	spans, _ := c.spans(t)
	for name, want := range map[string]string{
		"userstore search":   `upstream search: bad gateway (error_5xx, status 500, code "[EMAIL] [PHONE] [JWT]")`,
		"userstore userById": `upstream search: bad gateway (error_5xx, status 500, code "internal")`,
	} {
		s := spanNamed(t, spans, name)
		if got := s.GetStatus().GetMessage(); got != want || s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("%s: status %v %q, want ERROR %q", name, s.GetStatus().GetCode(), got, want)
		}
		events := s.GetEvents()
		if len(events) != 1 || events[0].GetName() != "exception" {
			t.Fatalf("%s: events %v, want one exception", name, events)
		}
		got := map[string]string{}
		for _, kv := range events[0].GetAttributes() {
			got[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		if len(got) != 2 || got["exception.message"] != want || got["exception.type"] != "*telemetry.storeError" {
			t.Errorf("%s: exception %v, want type *telemetry.storeError and message %q", name, got, want)
		}
	}
}

func mustTracing(t *testing.T, cfg config.Tracing) *Tracing {
	t.Helper()
	tr, err := NewTracing(context.Background(), cfg, "v")
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestNewTracingRejectsBadSettings(t *testing.T) {
	for _, cfg := range []config.Tracing{
		{Enabled: true, SampleRatio: 0.1},
		{Enabled: true, Endpoint: "http://collector:4318", SampleRatio: 0.1},
		{Enabled: true, Endpoint: "collector", SampleRatio: 0.1},
		{Enabled: true, Endpoint: "collector:", SampleRatio: 0.1},
		{Enabled: true, Endpoint: "collector:4318", SampleRatio: 1.5},
		{Enabled: true, Endpoint: "collector:4318", SampleRatio: -0.1},
	} {
		tr, err := NewTracing(context.Background(), cfg, "v")
		if err == nil {
			t.Errorf("%+v accepted", cfg)
			tr.Shutdown(context.Background())
			continue
		}
		if !strings.HasPrefix(err.Error(), "telemetry: tracing.") {
			t.Errorf("%+v: unclear error %q", cfg, err)
		}
	}
}

// A span in another context (the gateway's request is its own context)
// parents the spans started from it.
func TestContextWithSpan(t *testing.T) {
	c := newCollector(t)
	tr := newEnabled(t, c, 1)
	_, req := tr.StartRequest(nil, config.RouteMe, "GET")
	type key struct{}
	carrier := ContextWithSpan(context.WithValue(context.Background(), key{}, "rq"), req)
	ctx, child := tr.StartSpan(carrier, "cache")
	if ctx.Value(key{}) != "rq" {
		t.Error("the child's context lost the request's values")
	}
	child.End()
	req.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, _ := c.spans(t)
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want 2", len(spans))
	}
	if !bytes.Equal(spanNamed(t, spans, "cache").GetParentSpanId(), spanNamed(t, spans, "GET users.me").GetSpanId()) {
		t.Error("the cache span is not a child of the request span")
	}
}

func TestPropagatedTraceparent(t *testing.T) {
	valid := []string{
		"00-" + clientTrace + "-" + clientParent + "-01",
		"00-" + clientTrace + "-" + clientParent + "-00",
		"00-00000000000000000000000000000001-0000000000000001-ff",
	}
	for _, v := range valid {
		if got := propagate([]byte(v)); got != v {
			t.Errorf("valid %q became %q", v, got)
		}
	}
	good := "00-" + clientTrace + "-" + clientParent + "-01"
	hostile := []string{
		"",
		"garbage",
		strings.ToUpper(good),
		"00-" + strings.ToUpper(clientTrace) + "-" + clientParent + "-01",
		"ff-" + clientTrace + "-" + clientParent + "-01",
		"0g-" + clientTrace + "-" + clientParent + "-01",
		"0A-" + clientTrace + "-" + clientParent + "-01",
		"01-" + clientTrace + "-" + clientParent + "-01x",
		"01-" + clientTrace + "-" + clientParent,
		"00-00000000000000000000000000000000-" + clientParent + "-01",
		"00-" + clientTrace + "-0000000000000000-01",
		good[:54],
		good + "0",
		good + "-extra",
		" " + good,
		good + "\r\nX-Injected: 1",
		"00-" + clientTrace + "-" + clientParent + "-0g",
		"00-" + clientTrace + "-" + clientParent + "-1",
		"00_" + clientTrace + "_" + clientParent + "_01",
		"00-" + clientTrace[:31] + "x-" + clientParent + "-01",
		"00-" + clientTrace + "-" + clientParent[:15] + "é",
		"00-" + clientTrace + clientParent + "---01",
		strings.Repeat("a", 10000),
		"\x00\x01\x02",
	}
	// A later version is read by version 00's fields and sent on as
	// version 00, with only the sampled flag and nothing of its own fields.
	for in, want := range map[string]string{
		"01-" + clientTrace + "-" + clientParent + "-01":                   "00-" + clientTrace + "-" + clientParent + "-01",
		"cc-" + clientTrace + "-" + clientParent + "-ff-what-comes-next":   "00-" + clientTrace + "-" + clientParent + "-01",
		"fe-" + clientTrace + "-" + clientParent + "-02-\r\nX-Injected: 1": "00-" + clientTrace + "-" + clientParent + "-00",
	} {
		if got := propagate([]byte(in)); got != want {
			t.Errorf("later version %q became %q, want %q", in, got, want)
		}
	}
	seen := map[string]bool{}
	for _, h := range hostile {
		got := propagate([]byte(h))
		tid, sid, flags, ok := parseTraceparent([]byte(got))
		if !ok || len(got) != 55 {
			t.Errorf("%q became invalid %q", h, got)
			continue
		}
		if flags != 0 {
			t.Errorf("%q became %q: a generated trace must not claim to be sampled", h, got)
		}
		if got == h || strings.Contains(got, clientTrace) {
			t.Errorf("%q was kept (%q)", h, got)
		}
		if seen[string(tid[:])] || seen[string(sid[:])] {
			t.Errorf("%q: generated ids repeat", got)
		}
		seen[string(tid[:])], seen[string(sid[:])] = true, true
	}
	buf, in := make([]byte, 0, TraceparentLen), []byte(good)
	if n := testing.AllocsPerRun(100, func() { buf = AppendPropagatedTraceparent(buf[:0], in) }); n > 0 {
		t.Errorf("valid: %v allocations, want none", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = AppendPropagatedTraceparent(buf[:0], nil) }); n > 0 {
		t.Errorf("generated: %v allocations, want none", n)
	}
	if got := string(AppendPropagatedTraceparent([]byte("kept"), in)); got != "kept"+good {
		t.Errorf("appended to %q: %q", "kept", got)
	}
}

// propagate is the traceparent AppendPropagatedTraceparent makes of in.
func propagate(in []byte) string { return string(AppendPropagatedTraceparent(nil, in)) }

// FuzzParseTraceparent compares parseTraceparent with W3C Trace Context's
// grammar written as a regular expression: lower-case hex fields of 2, 32,
// 16 and 2 digits, version ff invalid, version 00 with nothing after its
// four fields and a later version with nothing or '-' and its own fields,
// ids not all zero. What parses formats back to the same bytes, but for
// the version and a later version's own fields.
func FuzzParseTraceparent(f *testing.F) {
	for _, s := range []string{
		"00-" + clientTrace + "-" + clientParent + "-01", "", "00-" + clientTrace + "-" + clientParent + "-00",
		"00-" + clientTrace + "-" + clientParent + "-01-", "01-" + clientTrace + "-" + clientParent + "-01-ab",
		"01-" + clientTrace + "-" + clientParent + "-01", "01-" + clientTrace + "-" + clientParent + "-01x",
		"ff-" + clientTrace + "-" + clientParent + "-01", "0F-" + clientTrace + "-" + clientParent + "-01",
		"00-" + strings.ToUpper(clientTrace) + "-" + clientParent + "-01", "00-" + clientTrace + "-" + clientParent + "-0G",
		"00-" + strings.Repeat("0", 32) + "-" + clientParent + "-01", "00-" + clientTrace + "-" + strings.Repeat("0", 16) + "-01",
		"00_" + clientTrace + "-" + clientParent + "-01", "00-" + clientTrace + "-" + clientParent + "-1",
	} {
		f.Add([]byte(s))
	}
	grammar := regexp.MustCompile(`(?s)^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$`)
	f.Fuzz(func(t *testing.T, in []byte) {
		tid, sid, flags, ok := parseTraceparent(in)
		want := false
		if m := grammar.FindSubmatch(in); m != nil {
			version, later := string(m[1]), len(m[4]) > 0
			want = version != "ff" && !(version == "00" && later) &&
				string(m[2]) != strings.Repeat("0", 32) && string(m[3]) != strings.Repeat("0", 16)
		}
		if ok != want {
			t.Fatalf("parseTraceparent(%q) ok = %v, the grammar says %v", in, ok, want)
		}
		if !ok {
			return
		}
		if got := formatTraceparent(tid, sid, flags); got[2:] != string(in[2:TraceparentLen]) {
			t.Fatalf("%q parsed and formatted to %q", in, got)
		}
	})
}

// Export failures reach the gateway's JSON log.
func TestLogTracingErrors(t *testing.T) {
	prev := otel.GetErrorHandler()
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	var buf syncBuffer
	logger, _ := NewLogger(&buf, "info")
	LogTracingErrors(logger)

	// A collector that refuses every batch (400 is not retried).
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer refusing.Close()
	tr := mustTracing(t, config.Tracing{Enabled: true, Endpoint: strings.TrimPrefix(refusing.URL, "http://"), Insecure: true, SampleRatio: 1})
	_, span := tr.StartRequest(nil, config.RouteMe, "GET")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = tr.Shutdown(ctx) // the failed export is its error too
	out := buf.String()
	if !strings.Contains(out, `"level":"WARN","msg":"tracing"`) || !strings.Contains(out, "400") {
		t.Errorf("export failure not logged as JSON: %q", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A span keeps constant strings, never the request's own bytes: fiber
// reuses them for the next request.
func TestSpanNamesAreBoundedAndOwned(t *testing.T) {
	c := newCollector(t)
	tr := newEnabled(t, c, 1)
	buf := []byte("BREW")
	method := unsafeString(buf)
	route := []byte("/coffee/../../etc")
	_, span := tr.StartRequest(nil, unsafeString(route), method)
	copy(buf, "XXXX")
	copy(route, "YYYYYYYYYYYYYYYYY")
	span.End()
	_, known := tr.StartRequest(nil, "", "PATCH")
	known.SetRoute("PATCH", config.RouteAdminUser)
	known.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, _ := c.spans(t)
	// No route matched: named by the method alone, without http.route
	// (OpenTelemetry's HTTP conventions).
	odd := spanNamed(t, spans, "_OTHER")
	if got := attrOf(odd, "http.request.method"); got != "_OTHER" {
		t.Errorf("unknown method recorded as %q", got)
	}
	if got := attrOf(odd, "http.route"); got != "" {
		t.Errorf("unknown route recorded as %q", got)
	}
	if got := attrOf(spanNamed(t, spans, "PATCH admin.users.get"), "http.route"); got != config.RouteAdminUser {
		t.Errorf("route set later recorded as %q", got)
	}
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
