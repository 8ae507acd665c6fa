// Package faultproxy is a controllable HTTP fault injector for the
// gateway's fault-injection tests. A Proxy listens on a loopback port,
// forwards to a real backend (the reference user store) by default, and
// can be switched, while traffic runs, to refuse or reset connections,
// answer late or slowly, cut bodies, answer 5xx bursts, HTML or broken or
// oversized JSON, or flap between healthy and failing, for every request or
// only for some paths.
//
//	p, err := faultproxy.New(store.URL)
//	defer p.Close()
//	p.Set(faultproxy.Status(503).Times(3))          // the next 3 requests get 503
//	p.SetPath("/internal/v1/live-streams/", faultproxy.Reset())
//	p.Set(faultproxy.Refuse())                      // ECONNREFUSED until changed
//	p.Heal()                                        // forward everything again
//	p.Stats()                                       // what reached it, what it forwarded
//
// Close stops everything it started: listener, connections (hijacked ones
// too), sleeping handlers and outbound requests.
package faultproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxBackendBody bounds what the proxy reads from the backend.
const maxBackendBody = 64 << 20

// Proxy is a fault-injecting HTTP proxy. Its methods are safe for
// concurrent use, also while requests run.
type Proxy struct {
	target    *url.URL
	addr      string
	transport *http.Transport
	client    *http.Client
	srv       *http.Server
	ctx       context.Context // canceled by Close
	cancel    context.CancelFunc

	acceptClose atomic.Bool
	connections atomic.Int64
	requests    atomic.Int64
	forwarded   atomic.Int64
	closedEarly atomic.Int64

	mu       sync.Mutex
	ln       net.Listener // nil while refusing
	def      *rule
	paths    []pathRule
	conns    map[net.Conn]struct{}
	closed   bool
	record   bool
	seen     []Seen
	serving  sync.WaitGroup
	handlers sync.WaitGroup
}

// Seen is one request as it reached the proxy.
type Seen struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
}

// Stats counts what happened at the proxy since New.
type Stats struct {
	// Connections accepted (AcceptClose ones included).
	Connections int64
	// Requests that reached the proxy (whatever it then did).
	Requests int64
	// Forwarded requests: sent on to the backend.
	Forwarded int64
	// ClosedEarly connections: reset at accept by AcceptClose.
	ClosedEarly int64
}

type pathRule struct {
	prefix string
	rule   *rule
}

// rule is an installed Mode with its counters.
type rule struct {
	mode      Mode
	remaining atomic.Int64 // requests left when mode.times > 0
	count     atomic.Int64 // requests seen, for Flap
	since     time.Time
}

func newRule(m Mode) *rule {
	r := &rule{mode: m, since: time.Now()}
	r.remaining.Store(int64(m.times))
	return r
}

// take returns the concrete mode for one request, or false when the rule
// is spent (Times).
func (r *rule) take() (Mode, bool) {
	if r.mode.times > 0 && r.remaining.Add(-1) < 0 {
		return Mode{}, false
	}
	m := r.mode
	if m.kind != kindFlap {
		return m, true
	}
	var phase int64
	if m.flapN > 0 {
		phase = (r.count.Add(1) - 1) / int64(m.flapN)
	} else {
		phase = int64(time.Since(r.since) / m.flapD)
	}
	if phase%2 == 1 {
		return *m.failing, true
	}
	return Mode{}, true
}

// New starts a proxy on 127.0.0.1 (a free port) forwarding to target, an
// http:// or https:// base URL whose path, if any, prefixes every request.
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q must be an absolute http(s) URL", target)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	u.RawQuery, u.Fragment = "", ""
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	p := &Proxy{
		target:    u,
		addr:      ln.Addr().String(),
		transport: tr,
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		ctx:    ctx,
		cancel: cancel,
		def:    newRule(Forward()),
		conns:  make(map[net.Conn]struct{}),
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         p.connState,
		ErrorLog:          log.New(io.Discard, "", 0),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	p.mu.Lock()
	p.serveLocked(ln)
	p.mu.Unlock()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

// URL is the proxy's base URL (http://host:port).
func (p *Proxy) URL() string { return "http://" + p.addr }

// Set installs m as the default mode, for every request no path rule
// takes. It fails only for modes that make no sense as a default, or when
// the proxy cannot listen again after Refuse.
func (p *Proxy) Set(m Mode) error {
	if err := m.check(false); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("faultproxy: closed")
	}
	p.def = newRule(m)
	p.acceptClose.Store(m.kind == kindAcceptClose)
	switch m.kind {
	case kindRefuse:
		if p.ln != nil {
			p.ln.Close()
			p.ln = nil
		}
		p.closeConnsLocked()
	case kindAcceptClose:
		p.closeConnsLocked()
	}
	if m.kind != kindRefuse && p.ln == nil {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return fmt.Errorf("faultproxy: listen again on %s: %w", p.addr, err)
		}
		p.serveLocked(ln)
	}
	return nil
}

// SetPath installs m for requests whose path starts with prefix (the
// longest matching prefix wins). Refuse and AcceptClose act before a path
// is known and are refused here.
func (p *Proxy) SetPath(prefix string, m Mode) error {
	if err := m.check(true); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.paths {
		if p.paths[i].prefix == prefix {
			p.paths[i].rule = newRule(m)
			return nil
		}
	}
	p.paths = append(p.paths, pathRule{prefix: prefix, rule: newRule(m)})
	return nil
}

// Heal removes every path rule and forwards everything again.
func (p *Proxy) Heal() error {
	p.mu.Lock()
	p.paths = nil
	p.mu.Unlock()
	return p.Set(Forward())
}

// Record turns recording of the requests' headers on or off (off at
// start). Turning it on clears what was recorded.
func (p *Proxy) Record(on bool) {
	p.mu.Lock()
	p.record = on
	p.seen = nil
	p.mu.Unlock()
}

// Seen returns the requests recorded so far.
func (p *Proxy) Seen() []Seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Seen, len(p.seen))
	for i, s := range p.seen {
		s.Header = s.Header.Clone()
		out[i] = s
	}
	return out
}

// Stats reports the counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Connections: p.connections.Load(),
		Requests:    p.requests.Load(),
		Forwarded:   p.forwarded.Load(),
		ClosedEarly: p.closedEarly.Load(),
	}
}

// Close stops the proxy and waits for everything it started.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	p.closeConnsLocked()
	p.mu.Unlock()

	p.cancel()
	err := p.srv.Close()
	// The server may still track the listener closed above (until its
	// Serve returns) and report closing it again.
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	p.serving.Wait()
	p.handlers.Wait()
	p.transport.CloseIdleConnections()
	return err
}

// serveLocked serves ln in the background. Callers hold mu.
func (p *Proxy) serveLocked(ln net.Listener) {
	p.ln = ln
	p.serving.Add(1)
	go func() {
		defer p.serving.Done()
		p.srv.Serve(&listener{Listener: ln, p: p})
	}()
}

// closeConnsLocked closes every open connection. Callers hold mu.
func (p *Proxy) closeConnsLocked() {
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *Proxy) connState(c net.Conn, s http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case http.StateNew:
		if p.closed {
			c.Close()
			return
		}
		p.conns[c] = struct{}{}
	case http.StateClosed:
		delete(p.conns, c)
	}
	// Hijacked connections stay tracked until the handler closes them
	// (forget), so Refuse and Close reach them too.
}

func (p *Proxy) forget(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// listener counts connections and applies AcceptClose.
type listener struct {
	net.Listener
	p *Proxy
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.p.connections.Add(1)
		if !l.p.acceptClose.Load() {
			return c, nil
		}
		l.p.closedEarly.Add(1)
		resetConn(c)
	}
}

// resetConn closes c with an RST instead of a FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// enter registers a running handler, unless the proxy is closed.
func (p *Proxy) enter(r *http.Request) (Mode, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Mode{}, false
	}
	p.handlers.Add(1)
	if p.record {
		p.seen = append(p.seen, Seen{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone()})
	}
	var best *pathRule
	for i := range p.paths {
		pr := &p.paths[i]
		if strings.HasPrefix(r.URL.Path, pr.prefix) && (best == nil || len(pr.prefix) > len(best.prefix)) {
			best = pr
		}
	}
	if best != nil {
		if m, ok := best.rule.take(); ok {
			return m, true
		}
	}
	m, ok := p.def.take()
	if !ok {
		return Forward(), true
	}
	return m, true
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	m, ok := p.enter(r)
	if !ok {
		hangUp(w)
		return
	}
	defer p.handlers.Done()
	// Read the request body first, so closing the connection later sends a
	// FIN rather than an RST for unread data (and so it can be forwarded).
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBackendBody))
	if err != nil {
		return
	}

	switch m.kind {
	case kindRefuse, kindAcceptClose, kindHangUp:
		p.hijack(w, func(c net.Conn, _ *bufio.ReadWriter) { c.Close() })
	case kindReset:
		p.hijack(w, func(c net.Conn, _ *bufio.ReadWriter) { resetConn(c) })
	case kindRespond:
		writeResponse(w, m.status, m.contentType, m.body)
	case kindOversize:
		writeResponse(w, http.StatusOK, "application/json", oversized(m.size))
	case kindDelay:
		if !p.wait(r.Context(), m.delay) {
			return
		}
		p.forwardAndWrite(w, r, body)
	default:
		resp, err := p.forward(r, body)
		if err != nil {
			writeResponse(w, http.StatusBadGateway, "application/json",
				[]byte(`{"code":"internal","message":"faultproxy: backend unreachable","details":{}}`))
			return
		}
		switch m.kind {
		case kindDrip:
			p.drip(w, r, resp, m)
		case kindResetMidBody:
			p.hijack(w, func(c net.Conn, bw *bufio.ReadWriter) {
				writeRaw(bw.Writer, resp, resp.body[:min(m.after, len(resp.body))])
				bw.Flush()
				resetConn(c)
			})
		case kindTruncate:
			resp.body = resp.body[:len(resp.body)/2]
			resp.write(w)
		default:
			resp.write(w)
		}
	}
}

// backendResponse is the backend's answer, read in full.
type backendResponse struct {
	status int
	header http.Header
	body   []byte
}

func (p *Proxy) forward(r *http.Request, body []byte) (*backendResponse, error) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out, err := http.NewRequestWithContext(ctx, r.Method, p.target.String()+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		if !hopByHop(k) {
			out.Header[k] = append([]string(nil), vs...)
		}
	}
	p.forwarded.Add(1)
	resp, err := p.client.Do(out)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBackendBody))
	if err != nil {
		return nil, err
	}
	h := resp.Header.Clone()
	for k := range h {
		if hopByHop(k) || k == "Content-Length" {
			delete(h, k)
		}
	}
	return &backendResponse{status: resp.StatusCode, header: h, body: b}, nil
}

func (p *Proxy) forwardAndWrite(w http.ResponseWriter, r *http.Request, body []byte) {
	resp, err := p.forward(r, body)
	if err != nil {
		writeResponse(w, http.StatusBadGateway, "application/json",
			[]byte(`{"code":"internal","message":"faultproxy: backend unreachable","details":{}}`))
		return
	}
	resp.write(w)
}

func (b *backendResponse) write(w http.ResponseWriter) {
	h := w.Header()
	for k, vs := range b.header {
		h[k] = vs
	}
	h.Set("Content-Length", strconv.Itoa(len(b.body)))
	w.WriteHeader(b.status)
	w.Write(b.body)
}

// drip writes the headers at once and the body slowly.
func (p *Proxy) drip(w http.ResponseWriter, r *http.Request, b *backendResponse, m Mode) {
	h := w.Header()
	for k, vs := range b.header {
		h[k] = vs
	}
	h.Set("Content-Length", strconv.Itoa(len(b.body)))
	w.WriteHeader(b.status)
	rc := http.NewResponseController(w)
	rc.Flush()
	for rest := b.body; len(rest) > 0; {
		if !p.wait(r.Context(), m.delay) {
			return
		}
		n := min(m.chunk, len(rest))
		if _, err := w.Write(rest[:n]); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		rest = rest[n:]
	}
}

// wait sleeps d unless the request or the proxy ends first.
func (p *Proxy) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-p.ctx.Done():
		return false
	}
}

// hijack takes the raw connection and hands it to do; the connection is
// closed afterwards in any case.
func (p *Proxy) hijack(w http.ResponseWriter, do func(net.Conn, *bufio.ReadWriter)) {
	c, bw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer p.forget(c)
	defer c.Close()
	do(c, bw)
}

// hangUp closes the connection of w without answering.
func hangUp(w http.ResponseWriter) {
	if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
		c.Close()
	}
}

// writeRaw writes a response head with the full Content-Length of b and
// then only body.
func writeRaw(w *bufio.Writer, b *backendResponse, body []byte) {
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\n", b.status, http.StatusText(b.status))
	b.header.Write(w)
	fmt.Fprintf(w, "Content-Length: %d\r\n\r\n", len(b.body))
	w.Write(body)
}

func writeResponse(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// oversized is a valid JSON object of more than size bytes.
func oversized(size int) []byte {
	const head, tail = `{"items":[],"total":0,"padding":"`, `"}`
	b := make([]byte, 0, len(head)+size+len(tail)+1)
	b = append(b, head...)
	for i := 0; i <= size; i++ {
		b = append(b, 'x')
	}
	return append(b, tail...)
}

func hopByHop(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}
