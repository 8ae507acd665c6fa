package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/upstream/contract"
	"github.com/valyala/fasthttp"
)

// Client is the typed user-store client. It is safe for concurrent use.
type Client struct {
	logger *slog.Logger
	obs    Observer
	budget *retryBudget
	bearer string // "Bearer <token>", or "" for none

	hosts []*host
	ops   [4]*operation // by opIndex

	// dialTimeout is DialTimeout capped by the shortest operation timeout:
	// fasthttp cannot interrupt a dial, so a dial must never outlast an
	// attempt by much. It follows Update.
	dialTimeout    atomic.Int64
	cfgDialTimeout time.Duration
	// connWait is the pools' wait for a free connection, fixed at start
	// (see connWaitDivisor); a reload keeps every timeout above it.
	connWait time.Duration
}

// opIndex numbers the operations for the Client's fixed array.
var opIndex = map[Op]int{OpUsernameCheck: 0, OpSearch: 1, OpUserByID: 2, OpLiveStreams: 3}

// host is one base URL with its connection pool.
type host struct {
	client *fasthttp.HostClient
	// base is scheme://host[:port][/prefix] without a trailing slash; call
	// paths are appended to it.
	base string
	// fixed holds the parsed URI of each call path that never varies,
	// copied into a request instead of parsing base+path on every call.
	// Read-only once the host is made.
	fixed map[string]*fasthttp.URI
	// tls is the TLS client configuration of an https host, nil for http.
	tls *tls.Config
	// resets counts reads that found one of the host's connections reset
	// (resetConn).
	resets atomic.Uint64
}

// fixedPaths are the call paths without an id or a query.
var fixedPaths = []string{contract.PathUsernameCheck}

// operation is one Op's live settings, breaker, bulkhead counter and
// middleware chain.
type operation struct {
	op         Op
	idempotent bool
	target     *host
	settings   atomic.Pointer[config.Operation]
	breaker    atomic.Pointer[breaker]
	inFlight   atomic.Int64
	run        exchange
}

// exchange is one call to the store as a plain function. Every resilience
// concern is a middleware that takes an exchange and returns one (see
// chain); the innermost one (Client.send) talks HTTP and checks the
// response. It returns nil when a 200 body was accepted (r.answer kept what
// it decoded) and an *Error otherwise.
type exchange func(ctx context.Context, r *request) error

// request is one call on its way through the chain.
type request struct {
	op     *operation
	call   *Call
	method string
	// path is the escaped path and query, appended to the host's base.
	path string
	body []byte
	// answer checks a 200 body against the contract and keeps what it
	// decoded.
	answer acceptor
	// traceparent overrides the Call's for this call (WithTraceparent).
	traceparent string

	// Set per attempt by withDeadline.
	deadline time.Time
	// ctxBound: the attempt's deadline is the caller's, shorter than the
	// operation timeout, so a timeout says little about the store.
	ctxBound bool
}

// acceptor checks a 200 body against the contract and keeps what it
// decoded. It must copy what it keeps: the body is fasthttp's buffer.
type acceptor interface {
	accept(body []byte) error
}

// acceptFunc is a function as an acceptor.
type acceptFunc func(body []byte) error

func (f acceptFunc) accept(body []byte) error { return f(body) }

const (
	userAgent = "edge-gateway"
	mimeJSON  = "application/json"
	// background is the ReadTimeout and WriteTimeout of a pool. They only
	// bound an exchange whose own deadline is somehow far off: every
	// attempt has one, an operation timeout away at most. fasthttp ends
	// an exchange at the earlier of the two, and a pool is built once
	// while a reload may lengthen an operation timeout up to
	// config.MaxRequestTimeout (checkSettings), so they stay above it:
	// sized by the timeouts of the file the gateway started with (10s
	// with the shipped one), they cut a lengthened attempt short there.
	background = 2 * config.MaxRequestTimeout
	// A call waits for a free pooled connection at most the dial timeout
	// (capped by the shortest operation timeout at start) divided by
	// connWaitDivisor, then fails as pool_full: a short queue, not an
	// unbounded one. The wait must stay below every operation timeout:
	// fasthttp cuts a wait longer than the attempt's time left with
	// ErrTimeout, which would read as the store's timeout (and open its
	// breaker) although nothing was sent.
	connWaitDivisor = 4
)

// New builds the client from cfg. Base URLs, the service token and the
// connection pool settings are fixed here (restart-only); operation
// settings and the retry budget follow Update. logger and obs may be nil.
func New(cfg config.UserStore, logger *slog.Logger, obs Observer) (*Client, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = nopObserver{}
	}
	if err := checkSettings(cfg, true); err != nil {
		return nil, err
	}
	c := &Client{
		logger:         logger,
		obs:            obs,
		budget:         newRetryBudget(cfg.RetryBudget),
		cfgDialTimeout: cfg.DialTimeout,
	}
	if cfg.ServiceToken != "" {
		c.bearer = "Bearer " + cfg.ServiceToken
	}
	c.dialTimeout.Store(int64(boundedDialTimeout(c.cfgDialTimeout, cfg.Operations)))
	c.connWait = connWaitOf(cfg)

	main, err := c.newHost(cfg, cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	c.hosts = append(c.hosts, main)
	live := main
	if cfg.LiveStreamsBaseURL != "" && cfg.LiveStreamsBaseURL != cfg.BaseURL {
		if live, err = c.newHost(cfg, cfg.LiveStreamsBaseURL); err != nil {
			return nil, err
		}
		c.hosts = append(c.hosts, live)
	}

	for _, op := range Ops {
		o := &operation{op: op, idempotent: op != OpUsernameCheck, target: main}
		if op == OpLiveStreams {
			o.target = live
		}
		s := settingsOf(cfg.Operations, op)
		o.settings.Store(&s)
		o.breaker.Store(c.newBreaker(op, s.Breaker))
		o.run = c.chain(o, c.send)
		c.ops[opIndex[op]] = o
	}
	return c, nil
}

// chain composes the layers of one operation, outermost first:
//
//	observe → bulkhead → retry → breaker → deadline → send
//
// The observer sees every call once, refused or not. The bulkhead holds one
// slot for the whole call, retries included, so retries never need a
// second slot. Retries sit outside the breaker so that every attempt is
// counted by it and a half-open breaker admits exactly HalfOpenRequests
// attempts, never a trial and its retries; a retry stops as soon as the
// breaker opens. The deadline is per attempt, inside the breaker, so a
// timeout is the attempt's failure. send is the innermost exchange
// (Client.send; a test may put another in its place).
func (c *Client) chain(o *operation, send exchange) exchange {
	x := send
	x = withDeadline(o)(x)
	x = withBreaker(o)(x)
	x = withRetry(o, c.budget, c.obs)(x)
	x = withBulkhead(o)(x)
	x = withObserver(o, c.obs)(x)
	return x
}

func (c *Client) op(op Op) *operation { return c.ops[opIndex[op]] }

func (c *Client) newHost(cfg config.UserStore, raw string) (*host, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("upstream: base URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream: base URL %q must be http(s)://host[:port][/path] with no credentials, query or fragment", raw)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	hc := &fasthttp.HostClient{
		Addr:                     addr,
		Name:                     userAgent,
		NoDefaultUserAgentHeader: true,
		IsTLS:                    u.Scheme == "https",
		MaxConns:                 cfg.MaxConnsPerHost,
		MaxIdleConnDuration:      cfg.MaxIdleConnDuration,
		// We retry ourselves, only idempotent reads and only on failures
		// where that is safe; fasthttp would re-send even the POST.
		MaxIdemponentCallAttempts: 1,
		ReadTimeout:               background,
		WriteTimeout:              background,
		MaxResponseBodySize:       int(cfg.MaxResponseBytes),
		MaxConnWaitTimeout:        c.connWait,
		// Paths are escaped by us; normalizing would decode %2F and apply
		// "..", letting an id walk to another endpoint.
		DisablePathNormalizing: true,
		SecureErrorLogMessage:  true,
	}
	base := u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/")
	h := &host{client: hc, base: base, fixed: make(map[string]*fasthttp.URI, len(fixedPaths))}
	if hc.IsTLS {
		h.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(0)}
	}
	hc.Dial = c.dial(h)
	for _, p := range fixedPaths {
		fu := new(fasthttp.URI)
		fu.DisablePathNormalizing = true
		if err := fu.Parse(nil, []byte(base+p)); err != nil {
			return nil, fmt.Errorf("upstream: base URL %q: %w", raw, err)
		}
		h.fixed[p] = fu
	}
	return h, nil
}

// dial opens a connection to h within the current dial timeout. For an
// https host it completes the TLS handshake too, within the same timeout:
// left to fasthttp, the handshake would be bounded by the pool's
// WriteTimeout (twice config.MaxRequestTimeout), far past any attempt's
// deadline, and its timeout would read as a bad answer.
func (c *Client) dial(h *host) func(addr string) (net.Conn, error) {
	return func(addr string) (net.Conn, error) {
		deadline := time.Now().Add(time.Duration(c.dialTimeout.Load()))
		d := net.Dialer{Deadline: deadline}
		raw, err := d.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		marks := new(connMarks)
		var counted net.Conn = resetConn{Conn: raw, resets: &h.resets, marks: marks,
			local: markedAddr{Addr: raw.LocalAddr(), marks: marks}}
		if h.tls == nil {
			return &answerConn{Conn: counted, marks: marks}, nil
		}
		conn := tls.Client(counted, h.tls)
		err = conn.SetDeadline(deadline)
		if err == nil {
			err = conn.Handshake()
		}
		if err == nil {
			err = conn.SetDeadline(time.Time{})
		}
		if err != nil {
			_ = raw.Close()
			// A connection that could not be set up: the connect outcome.
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: raw.RemoteAddr(), Err: err}
		}
		return &answerConn{Conn: conn, marks: marks}, nil
	}
}

// connMarks is what the client notes about one connection while fasthttp
// uses it; a response reads them back through its LocalAddr (marksOf).
type connMarks struct {
	reset atomic.Bool // the connection was found reset
	// refused is the status of an answer answerConn refused on the
	// connection, 0 if none; head is that answer's header block when it
	// was a 204 or 304, nil for a 1xx. head is set before refused.
	refused atomic.Int32
	head    []byte
}

// resetConn counts on its host the reads that find the connection reset.
// fasthttp takes a reset where a chunked body's next chunk should be for
// the body's end, and pools the dead connection; when the body read so
// far still decodes, only this count shows it (see send). It sits under
// TLS, where the reset shows.
type resetConn struct {
	net.Conn
	resets *atomic.Uint64
	marks  *connMarks
	// local is the connection's markedAddr, made into a net.Addr once:
	// fasthttp asks for it on every response.
	local net.Addr
}

func (c resetConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, syscall.ECONNRESET) {
		c.marks.reset.Store(true)
		c.resets.Add(1)
	}
	return n, err
}

// LocalAddr carries the connection's marks, so that a response
// (fasthttp.Response.LocalAddr) tells what was noted about its own
// connection (connReset, refusal).
func (c resetConn) LocalAddr() net.Addr { return c.local }

// markedAddr is the local address of a connection the client dialed.
type markedAddr struct {
	net.Addr
	marks *connMarks
}

// marksOf returns the marks of the connection resp was read from, nil
// when none was (no connection could be had).
func marksOf(resp *fasthttp.Response) *connMarks {
	if a, ok := resp.LocalAddr().(markedAddr); ok {
		return a.marks
	}
	return nil
}

// connReset reports whether the connection resp was read from was found
// reset.
func connReset(resp *fasthttp.Response) bool {
	m := marksOf(resp)
	return m != nil && m.reset.Load()
}

// answerConn looks at the start of every answer before fasthttp reads it,
// for the answers fasthttp reads no body after (RFC 9112, 6.3): a 1xx, a
// 204 and a 304. fasthttp pools the connection after any of them, and a
// call waiting for a connection (the pool at MaxConns) is handed it at
// once, before the call that read the answer can drop it: whatever came
// after that answer is read as the waiting call's own.
//
// After an interim answer (1xx) the final one is still to come. fasthttp
// skips one 100 Continue itself but takes any other 1xx, or a second 100,
// for the whole response. A client must take a 1xx it did not ask for,
// and may ignore it (RFC 9110, 15.2): a 103 Early Hints from a proxy in
// front of the store, or a 100 some servers send to every POST (we never
// send Expect: 100-continue). So answerConn drops it, and fasthttp reads
// the answer after it. What cannot be skipped is refused: a 101 (we never
// ask to switch protocols: what follows is not HTTP), more than
// maxInterim interim answers before one final answer, or one whose header
// block outgrows fasthttp's read buffer.
//
// A 204 or 304 is refused too: no call expects one (checkResponse fails
// both), and a broken store may send a body after it, which would be left
// on the connection. Its header block is kept on the marks, so that send
// checks it as any other answer and reports what it always has.
//
// fasthttp skips blank lines before a status line, as many as its read
// buffer holds (a broken store may leave one after a body), so answerConn
// looks past them, before an answer and between interim answers. An
// answer it passes on keeps them; blank lines that fill the read buffer
// are passed on too, and fasthttp fails on them.
//
// The status is found as fasthttp finds it (statusOf), on the first line
// that is not blank: the digits after its first space, whatever word
// comes before it ("HTTP/2 103", "http/1.1 204"), leading zeros and all
// ("HTTP/1.1 0204" is a 204), ended by a space or the line's end
// ("HTTP/1.1 2040" is a 2040, which fasthttp reads a body after). So
// what answerConn takes for bodiless is what fasthttp would, and what it
// passes on fasthttp reads as it would have anyway; a line fasthttp fails
// on is passed on for it to fail.
//
// Refused, the read fails and fasthttp closes the connection; the status
// is noted on its marks for send to report (refusal). It is the outermost
// layer, over TLS, where the answer's bytes are plain.
type answerConn struct {
	net.Conn
	marks *connMarks
	// sent: a request was written since the last read, so the next read
	// is the start of its answer. fasthttp uses a connection from one
	// goroutine at a time.
	sent bool
}

var (
	errInterim  = errors.New("interim answer (1xx) that cannot be skipped: the connection is closed")
	errBodiless = errors.New("204 or 304 answer, which a body may follow unread: the connection is closed")
)

func (c *answerConn) Write(p []byte) (int, error) {
	c.sent = true
	return c.Conn.Write(p)
}

func (c *answerConn) Read(p []byte) (int, error) {
	if !c.sent {
		return c.Conn.Read(p)
	}
	c.sent = false
	n, skipped := 0, 0
	for {
		// The answer's status, past any blank lines before it: a short
		// read would pass it to fasthttp unseen. Blank lines or a status
		// line that fill p are passed on: fasthttp fails on them too.
		start, status := 0, -1
		if n > 0 { // what followed an interim answer
			start = blankLines(p[:n])
			status = statusOf(p[start:n])
		}
		for status < 0 && n < len(p) {
			m, err := c.Conn.Read(p[n:])
			n += m
			if err != nil {
				return n, err
			}
			start = blankLines(p[:n])
			status = statusOf(p[start:n])
		}
		if !bodilessStatus(status) {
			return n, nil
		}
		if status < http.StatusOK {
			skipped++
			if status == http.StatusSwitchingProtocols || skipped > maxInterim {
				return c.refuse(status, nil)
			}
		}
		// Read to the end of the header block.
		end := headEnd(p[start:n])
		for end == 0 {
			if n == len(p) {
				if status >= http.StatusOK {
					// fasthttp refuses it as well (small read buffer)
					// and closes the connection.
					return n, nil
				}
				return c.refuse(status, nil)
			}
			m, err := c.Conn.Read(p[n:])
			n += m
			if err != nil {
				if status >= http.StatusOK {
					return n, err // as fasthttp would have read it
				}
				return 0, err
			}
			end = headEnd(p[start:n])
		}
		end += start
		if status >= http.StatusOK {
			return c.refuse(status, bytes.Clone(p[start:end]))
		}
		// An interim answer: start again after it.
		n = copy(p, p[end:n])
	}
}

// refuse notes the answer refused on the connection (connMarks) and fails
// the read.
func (c *answerConn) refuse(status int, head []byte) (int, error) {
	c.marks.head = head
	c.marks.refused.Store(int32(status))
	if head != nil {
		return 0, errBodiless
	}
	return 0, errInterim
}

// maxInterim bounds the interim answers skipped before one final answer:
// a store sending them without end would hold the call to its timeout.
const maxInterim = 8

// Handshake does nothing: dial has done any TLS handshake. fasthttp takes
// a connection with this method for one that needs no TLS of its own.
func (c *answerConn) Handshake() error { return nil }

// statusOf is the status of the answer whose status line starts b, found
// as fasthttp finds it (parseFirstLine, parseUintBuf): the digits after
// the line's first space, leading zeros and all ("HTTP/1.1 0204" is a
// 204), ended by a space or the line's end ("HTTP/1.1 2040" is a 2040).
// fasthttp takes any word before that space for the protocol ("HTTP/2",
// "http/1.1"). It is 0 for a line fasthttp fails on (no space, no digit
// after it, another character after the digits, too many digits), and
// -1 while b does not hold the code's end: fasthttp waits for the whole
// line, but nothing after the code's end changes the status.
func statusOf(b []byte) int {
	i := 0
	if len(b) > 8 && string(b[:9]) == "HTTP/1.1 " {
		i = 8 // the common word, looked at at once
	}
	for ; i < len(b) && b[i] != ' '; i++ {
		if b[i] == '\n' {
			return 0
		}
	}
	j, status := i+1, 0
	for ; j < len(b) && b[j]-'0' <= 9; j++ {
		next := 10*status + int(b[j]-'0')
		if next < status {
			return 0 // fasthttp's overflow check, as it makes it
		}
		status = next
	}
	switch {
	case j >= len(b) || b[j] == '\r' && j+1 == len(b):
		return -1
	case j == i+1:
		return 0
	case b[j] == ' ' || b[j] == '\n' || b[j] == '\r' && b[j+1] == '\n':
		return status
	}
	return 0
}

// bodilessStatus reports whether fasthttp reads no body after an answer
// with status (mustSkipContentLength): a 1xx, 204 or 304 (RFC 9112, 6.3).
// It reads one after a status under 100 ("HTTP/1.1 0" is even a 200).
func bodilessStatus(status int) bool {
	return 100 <= status && status < 200 || status == http.StatusNoContent || status == http.StatusNotModified
}

// blankLines is the length of the blank lines (CRLF or LF) at the start
// of b: fasthttp skips them before a status line, as many as its read
// buffer holds.
func blankLines(b []byte) int {
	i := 0
	for i < len(b) {
		switch {
		case b[i] == '\n':
			i++
		case b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n':
			i += 2
		default:
			return i
		}
	}
	return i
}

// headEnd is the length of the header block at the start of b, up to the
// empty line that ends it, or 0 while b does not hold all of it. Lines
// end with LF, after a CR or not, as fasthttp reads them; the status line
// is never empty.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		if j == 0 || j == 1 && b[i] == '\r' {
			return i + j + 1
		}
		i += j + 1
	}
}

// boundedDialTimeout is dial capped by the shortest operation timeout.
func boundedDialTimeout(dial time.Duration, ops config.Operations) time.Duration {
	for _, op := range Ops {
		dial = min(dial, settingsOf(ops, op).Timeout)
	}
	return dial
}

// connWaitOf is the wait for a pooled connection of a client started with
// cfg (see connWaitDivisor).
func connWaitOf(cfg config.UserStore) time.Duration {
	return max(boundedDialTimeout(cfg.DialTimeout, cfg.Operations)/connWaitDivisor, time.Millisecond)
}

// Update applies the live-reloadable settings of cfg: per-operation
// timeouts, in-flight caps, retries and breakers, and the retry budget. A
// breaker is rebuilt (closed, counts cleared) only when its settings
// changed. Base URLs, the service token and connection pool settings need
// a restart and are ignored here. Invalid settings are reported and change
// nothing.
func (c *Client) Update(cfg config.UserStore) error {
	if err := c.Check(cfg); err != nil {
		return err
	}
	for _, op := range Ops {
		o := c.op(op)
		s := settingsOf(cfg.Operations, op)
		old := o.settings.Load()
		o.settings.Store(&s)
		if old.Breaker != s.Breaker {
			o.breaker.Swap(c.newBreaker(op, s.Breaker)).retired.Store(true)
			c.logger.Info("upstream breaker rebuilt with new settings", slog.String("op", string(op)))
		}
	}
	c.budget.update(cfg.RetryBudget)
	c.dialTimeout.Store(int64(boundedDialTimeout(c.cfgDialTimeout, cfg.Operations)))
	return nil
}

// Check reports whether Update would take cfg's live settings, changing
// nothing: a reload asks before it applies anything. Beyond what
// validation checks, every operation timeout must exceed the wait for a
// pooled connection fixed at start (see connWaitDivisor).
func (c *Client) Check(cfg config.UserStore) error { return checkLive(cfg, c.connWait) }

// CheckReload is Check for a client started with start, without one: what
// `gateway validate -diff` asks.
func CheckReload(start, next config.UserStore) error { return checkLive(next, connWaitOf(start)) }

func checkLive(cfg config.UserStore, connWait time.Duration) error {
	if err := checkSettings(cfg, false); err != nil {
		return err
	}
	for _, op := range Ops {
		if t := settingsOf(cfg.Operations, op).Timeout; t <= connWait {
			return fmt.Errorf("upstream: operations.%s.timeout %s must exceed the wait for a pooled connection, %s, fixed at start (the dial timeout or the shortest operation timeout, over %d); a restart applies it", op, t, connWait, connWaitDivisor)
		}
	}
	return nil
}

// Close closes idle connections. Calls still running finish normally;
// fasthttp's idle-connection sweeper exits on its own within
// MaxIdleConnDuration.
func (c *Client) Close() {
	for _, h := range c.hosts {
		h.client.CloseIdleConnections()
	}
}

func settingsOf(ops config.Operations, op Op) config.Operation {
	switch op {
	case OpUsernameCheck:
		return ops.UsernameCheck
	case OpSearch:
		return ops.Search
	case OpUserByID:
		return ops.UserByID
	default:
		return ops.LiveStreams
	}
}

// checkSettings lists every problem of cfg the client cannot work with.
// atStart adds the restart-only settings.
func checkSettings(cfg config.UserStore, atStart bool) error {
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if atStart {
		if cfg.BaseURL == "" {
			bad("baseURL is required")
		}
		if cfg.MaxConnsPerHost < 1 {
			bad("maxConnsPerHost must be at least 1, got %d", cfg.MaxConnsPerHost)
		}
		if cfg.MaxIdleConnDuration <= 0 {
			bad("maxIdleConnDuration must be positive, got %s", cfg.MaxIdleConnDuration)
		}
		if cfg.DialTimeout <= 0 {
			bad("dialTimeout must be positive, got %s", cfg.DialTimeout)
		}
		if cfg.MaxResponseBytes < 1 || int64(cfg.MaxResponseBytes) > 1<<30 {
			bad("maxResponseBytes must be between 1 and 1GiB, got %d", int64(cfg.MaxResponseBytes))
		}
	}
	if cfg.RetryBudget.Ratio < 0 || cfg.RetryBudget.Ratio > 1 {
		bad("retryBudget.ratio must be between 0 and 1, got %v", cfg.RetryBudget.Ratio)
	}
	if cfg.RetryBudget.MinPerSecond < 0 {
		bad("retryBudget.minPerSecond must not be negative, got %d", cfg.RetryBudget.MinPerSecond)
	}
	for _, op := range Ops {
		s := settingsOf(cfg.Operations, op)
		p := "operations." + string(op)
		if s.Timeout <= 0 || s.Timeout > config.MaxRequestTimeout {
			bad("%s.timeout must be positive and at most %s, got %s", p, config.MaxRequestTimeout, s.Timeout)
		}
		if s.MaxInFlight < 1 {
			bad("%s.maxInFlight must be at least 1, got %d", p, s.MaxInFlight)
		}
		if s.Retry.Attempts < 0 {
			bad("%s.retry.attempts must not be negative, got %d", p, s.Retry.Attempts)
		}
		if s.Retry.Attempts > 0 && (s.Retry.BaseBackoff <= 0 || s.Retry.MaxBackoff < s.Retry.BaseBackoff) {
			bad("%s.retry needs 0 < baseBackoff <= maxBackoff, got %s and %s", p, s.Retry.BaseBackoff, s.Retry.MaxBackoff)
		}
		b := s.Breaker
		if b.ConsecutiveFailures == 0 && b.FailureRatio == 0 {
			bad("%s.breaker needs consecutiveFailures and/or failureRatio", p)
		}
		if b.FailureRatio < 0 || b.FailureRatio > 1 {
			bad("%s.breaker.failureRatio must be between 0 and 1, got %v", p, b.FailureRatio)
		}
		if b.FailureRatio > 0 && b.MinRequests == 0 {
			bad("%s.breaker.minRequests must be at least 1 when failureRatio is set", p)
		}
		if b.Interval < 0 {
			bad("%s.breaker.interval must not be negative, got %s", p, b.Interval)
		}
		if b.OpenTimeout <= 0 {
			bad("%s.breaker.openTimeout must be positive, got %s", p, b.OpenTimeout)
		}
		if b.HalfOpenRequests == 0 {
			bad("%s.breaker.halfOpenRequests must be at least 1", p)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("upstream: invalid user-store settings: %w", errors.Join(problems...))
	}
	return nil
}
