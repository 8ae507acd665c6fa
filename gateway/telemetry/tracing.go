package telemetry

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/bffgate/edge/config"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys of the OpenTelemetry HTTP conventions.
const (
	attrMethod = attribute.Key("http.request.method")
	attrRoute  = attribute.Key("http.route")
	attrStatus = attribute.Key("http.response.status_code")
)

// Tracing starts the gateway's spans. The zero value and a nil *Tracing are
// valid and off: every method then returns at once without allocating.
type Tracing struct {
	enabled  bool
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
}

// NewTracing sets tracing up from cfg. Off, it returns a Tracing that does
// nothing. On, spans go in batches to the OTLP/HTTP collector at
// cfg.Endpoint; new traces are sampled at cfg.SampleRatio and a client's
// traceparent decides for the traces it continues. The exporter connects
// lazily, so an unreachable collector is not an error here: export failures
// go to the OpenTelemetry error handler (see [LogTracingErrors]).
func NewTracing(ctx context.Context, cfg config.Tracing, version string) (*Tracing, error) {
	if !cfg.Enabled {
		return &Tracing{}, nil
	}
	if cfg.Endpoint == "" {
		return nil, errors.New("telemetry: tracing.endpoint is required when tracing is enabled")
	}
	if strings.Contains(cfg.Endpoint, "://") {
		return nil, fmt.Errorf("telemetry: tracing.endpoint %q must be host:port, without a scheme", cfg.Endpoint)
	}
	if _, port, err := net.SplitHostPort(cfg.Endpoint); err != nil || port == "" {
		return nil, fmt.Errorf("telemetry: tracing.endpoint %q must be host:port", cfg.Endpoint)
	}
	if !(cfg.SampleRatio >= 0 && cfg.SampleRatio <= 1) {
		return nil, fmt.Errorf("telemetry: tracing.sampleRatio %v must be within 0..1", cfg.SampleRatio)
	}
	name := cfg.ServiceName
	if name == "" {
		name = "edge-gateway"
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(cfg.Endpoint)}
	if cfg.Insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(name), semconv.ServiceVersion(version)))
	if err != nil {
		// Only a schema clash between the SDK's defaults and ours; keep
		// what identifies the service.
		res = resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name), semconv.ServiceVersion(version))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return &Tracing{
		enabled:  true,
		provider: tp,
		tracer:   tp.Tracer("github.com/bffgate/edge/gateway", trace.WithInstrumentationVersion(version)),
	}, nil
}

// LogTracingErrors sends OpenTelemetry's own errors (a collector that
// cannot be reached, a full queue) to logger at warn level, instead of
// OpenTelemetry's default of plain text on stderr. The handler is global to
// the process, so call it once, from main.
func LogTracingErrors(logger *slog.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.LogAttrs(context.Background(), slog.LevelWarn, "tracing", slog.String("error", err.Error()))
	}))
}

// Enabled tells whether spans are recorded at all.
func (t *Tracing) Enabled() bool { return t != nil && t.enabled }

// StartRequest starts the server span of one request. A valid W3C
// traceparent from the client is continued (its trace, and its sampling
// decision); a malformed one is ignored and a new trace begins. route may
// be empty when it is not known yet (see [Span.SetRoute]). The span must be
// ended. traceparent is read, not kept.
func (t *Tracing) StartRequest(traceparent []byte, route, method string) (context.Context, Span) {
	if !t.Enabled() {
		return context.Background(), Span{}
	}
	ctx := context.Background()
	if tid, sid, flags, ok := parseTraceparent(traceparent); ok {
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid,
			SpanID:  sid,
			// Only the sampled flag is continued: W3C Trace Context has
			// the others zeroed by whoever does not know them, and the
			// SDK would otherwise copy them into every traceparent sent
			// on.
			TraceFlags: trace.TraceFlags(flags) & trace.FlagsSampled,
			Remote:     true,
		}))
	}
	method, route = spanMethod(method), spanRoute(route)
	attrs := []attribute.KeyValue{attrMethod.String(method)}
	if route != "" {
		attrs = append(attrs, attrRoute.String(route))
	}
	ctx, s := t.tracer.Start(ctx, spanName(method, route),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	return ctx, Span{s}
}

// StartSpan starts a span inside the request: authentication, a cache
// look-up. It is a child of the span in ctx, if any. Off, it returns ctx
// and a no-op Span. The span keeps name and attrs until it is exported,
// long after the request: copy any string taken from fiber or fasthttp.
func (t *Tracing) StartSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, Span) {
	return t.start(ctx, name, trace.SpanKindInternal, attrs)
}

// StartClientSpan starts the span of an outgoing call, such as one to the
// user store; [Traceparent] of the returned context is the header to send.
func (t *Tracing) StartClientSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, Span) {
	return t.start(ctx, name, trace.SpanKindClient, attrs)
}

func (t *Tracing) start(ctx context.Context, name string, kind trace.SpanKind, attrs []attribute.KeyValue) (context.Context, Span) {
	if !t.Enabled() {
		return ctx, Span{}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	// The copy keeps the caller's slice from escaping, so a call with
	// attributes allocates nothing when tracing is off.
	ctx, s := t.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(slices.Clone(attrs)...))
	return ctx, Span{s}
}

// Shutdown ends tracing: it exports the spans still queued, within ctx's
// deadline. Spans started afterwards are dropped.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// ContextWithSpan returns parent carrying span, so that spans started from
// it are span's children. A no-op Span returns parent itself.
func ContextWithSpan(parent context.Context, span Span) context.Context {
	if span.s == nil {
		return parent
	}
	return trace.ContextWithSpan(parent, span.s)
}

// Span is one operation of a trace. The zero Span does nothing.
type Span struct{ s trace.Span }

// End finishes the span.
func (s Span) End() {
	if s.s != nil {
		s.s.End()
	}
}

// IsRecording tells whether the span's data will be exported (it is
// sampled and not ended).
func (s Span) IsRecording() bool { return s.s != nil && s.s.IsRecording() }

// SetRoute names the request span once the route is known.
func (s Span) SetRoute(method, route string) {
	if s.s == nil || !s.s.IsRecording() {
		return
	}
	method, route = spanMethod(method), spanRoute(route)
	s.s.SetName(spanName(method, route))
	if route != "" {
		s.s.SetAttributes(attrRoute.String(route))
	}
}

// SetHTTPStatus records the response status; a 5xx marks the span failed.
func (s Span) SetHTTPStatus(status int) {
	if s.s == nil || !s.s.IsRecording() {
		return
	}
	s.s.SetAttributes(attrStatus.Int(status))
	if status >= 500 {
		s.s.SetStatus(codes.Error, strconv.Itoa(status))
	}
}

// SetAttributes adds attributes to the span.
func (s Span) SetAttributes(attrs ...attribute.KeyValue) {
	if s.s == nil || !s.s.IsRecording() {
		return
	}
	s.s.SetAttributes(slices.Clone(attrs)...)
}

// Fail records err on the span and marks it failed: an exception event,
// as RecordError writes it, and the status. Spans are exported as they
// are, past the logger's redaction, and an error's text may quote what a
// broken store wrote (upstream.Error's code), so the text is masked as the
// logger masks it.
func (s Span) Fail(err error) {
	if s.s == nil || err == nil || !s.s.IsRecording() {
		return
	}
	msg, _ := mask(err.Error())
	s.s.AddEvent(semconv.ExceptionEventName, trace.WithAttributes(
		semconv.ExceptionType(errorType(err)), semconv.ExceptionMessage(msg)))
	s.s.SetStatus(codes.Error, msg)
}

// errorType is the exception.type of err, as the SDK's RecordError names
// it: the package path and name, or the type as written for an unnamed one
// such as a pointer (*upstream.Error).
func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}

// Spans outlive the request and fiber's strings alias buffers it reuses,
// so the method and route a span keeps are always one of the constant
// label strings (which also bounds span names). An unknown method is
// "_OTHER", as the OpenTelemetry HTTP conventions write it.
func spanMethod(method string) string {
	if i := methodIndex(method); i < len(methodLabels)-1 {
		return methodLabels[i]
	}
	return "_OTHER"
}

// spanRoute is the http.route of a span: one of the API's route ids, or
// "" when no route matched (OpenTelemetry's HTTP conventions: no
// http.route then, and the span is named by its method alone), where the
// metrics say "unmatched".
func spanRoute(route string) string {
	if route == "" {
		return ""
	}
	if i := routeIndex(route); i < len(routeLabels)-1 {
		return routeLabels[i]
	}
	return ""
}

func spanName(method, route string) string {
	if route == "" {
		return method
	}
	return method + " " + route
}

// Traceparent is the W3C traceparent header for a call made from the span
// in ctx, or "" when ctx holds no valid span (tracing off: use
// [AppendPropagatedTraceparent]).
func Traceparent(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return formatTraceparent(sc.TraceID(), sc.SpanID(), byte(sc.TraceFlags()))
}

// AppendPropagatedTraceparent appends the traceparent to send the user
// store when the gateway records no spans itself: the client's own header
// when it is a valid W3C version-00 traceparent, so the store's spans join
// the client's trace; the same trace in version 00 when it is of a later
// version (only its sampled flag kept, since a flag of that version means
// nothing in 00, and nothing after its fourth field); else a new random
// one (not sampled). It appends TraceparentLen bytes.
func AppendPropagatedTraceparent(dst, in []byte) []byte {
	if tid, sid, flags, ok := parseTraceparent(in); ok {
		if in[0] == '0' && in[1] == '0' {
			return append(dst, in...)
		}
		return appendTraceparent(dst, tid, sid, flags&byte(trace.FlagsSampled))
	}
	var tid [16]byte
	var sid [8]byte
	for tid == [16]byte{} {
		putUint64(tid[:8], rand.Uint64())
		putUint64(tid[8:], rand.Uint64())
	}
	for sid == [8]byte{} {
		putUint64(sid[:], rand.Uint64())
	}
	return appendTraceparent(dst, tid, sid, 0)
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// TraceparentLen is the length of a version-00 traceparent:
// "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex.
const TraceparentLen = 55

// parseTraceparent reads a W3C traceparent strictly: lower-case hex, a
// trace id and a parent id that are not all zero. Version 00 has exactly
// its four fields; a later version (any but ff, which is invalid) is read
// as W3C Trace Context asks, by the fields of version 00, which must be
// followed by nothing or by a '-' (what comes after is that version's).
func parseTraceparent(in []byte) (tid [16]byte, sid [8]byte, flags byte, ok bool) {
	if len(in) < TraceparentLen || in[2] != '-' || in[35] != '-' || in[52] != '-' {
		return tid, sid, 0, false
	}
	var version [1]byte
	if !decodeHex(version[:], in[:2]) || version[0] == 0xff {
		return tid, sid, 0, false
	}
	if len(in) > TraceparentLen && (version[0] == 0 || in[TraceparentLen] != '-') {
		return tid, sid, 0, false
	}
	if !decodeHex(tid[:], in[3:35]) || !decodeHex(sid[:], in[36:52]) {
		return tid, sid, 0, false
	}
	var f [1]byte
	if !decodeHex(f[:], in[53:55]) {
		return tid, sid, 0, false
	}
	if tid == [16]byte{} || sid == [8]byte{} {
		return tid, sid, 0, false
	}
	return tid, sid, f[0], true
}

// decodeHex decodes lower-case hex only, as W3C Trace Context requires.
func decodeHex(dst, src []byte) bool {
	for i := range dst {
		hi, ok1 := hexNibble(src[2*i])
		lo, ok2 := hexNibble(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func hexNibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func formatTraceparent(tid [16]byte, sid [8]byte, flags byte) string {
	var b [TraceparentLen]byte
	return string(appendTraceparent(b[:0], tid, sid, flags))
}

func appendTraceparent(dst []byte, tid [16]byte, sid [8]byte, flags byte) []byte {
	dst = append(dst, "00-"...)
	dst = hex.AppendEncode(dst, tid[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, sid[:])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, []byte{flags})
}
