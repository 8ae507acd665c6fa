package faultproxy

import (
	"fmt"
	"time"

	"github.com/bffgate/edge/upstream/contract"
)

type kind int

const (
	kindForward kind = iota
	kindRefuse
	kindAcceptClose
	kindHangUp
	kindReset
	kindDelay
	kindDrip
	kindResetMidBody
	kindRespond
	kindTruncate
	kindOversize
	kindFlap
)

// Mode is what the proxy does with a request (or, for Refuse and
// AcceptClose, with a connection). Build one with the functions below; the
// zero Mode forwards.
type Mode struct {
	kind        kind
	delay       time.Duration
	chunk       int
	after       int
	size        int
	status      int
	contentType string
	body        []byte
	// times > 0: the mode applies to that many requests, then the proxy
	// falls back (a path rule to the default rule, the default to Forward).
	times int
	// Flapping: every flapN requests, or every flapD, the proxy switches
	// between forwarding and failing (healthy first).
	flapN   int
	flapD   time.Duration
	failing *Mode
}

// Forward sends every request to the backend and its answer back.
func Forward() Mode { return Mode{} }

// Refuse closes the listening socket and every open connection, so new
// connections are refused by the kernel (ECONNREFUSED). Leaving the mode
// listens again on the same address. Default rule only.
func Refuse() Mode { return Mode{kind: kindRefuse} }

// AcceptClose accepts each new connection and resets it at once, before
// any byte is read. Connections already open are closed. Default rule only.
func AcceptClose() Mode { return Mode{kind: kindAcceptClose} }

// HangUp reads the request and closes the connection without answering
// (the client sees EOF before a response). Nothing is forwarded.
func HangUp() Mode { return Mode{kind: kindHangUp} }

// Reset reads the request and resets the connection (RST) without
// answering. Nothing is forwarded.
func Reset() Mode { return Mode{kind: kindReset} }

// Delay waits d before forwarding, so the response headers come late.
func Delay(d time.Duration) Mode { return Mode{kind: kindDelay, delay: d} }

// Drip forwards and writes the response body chunk bytes at a time, one
// chunk every interval, after sending the headers at once.
func Drip(chunk int, every time.Duration) Mode {
	return Mode{kind: kindDrip, chunk: max(chunk, 1), delay: every}
}

// ResetMidBody forwards, sends the headers (with the full Content-Length)
// and the first after bytes of the body, then resets the connection.
func ResetMidBody(after int) Mode { return Mode{kind: kindResetMidBody, after: max(after, 0)} }

// Status answers status with a contract error body ({"code","message"})
// whose code fits the status. Nothing is forwarded.
func Status(status int) Mode {
	body := fmt.Sprintf(`{"code":%q,"message":"injected by faultproxy","details":{}}`, codeFor(status))
	return Respond(status, "application/json", body)
}

// Respond answers status with the given content type and body. Nothing is
// forwarded.
func Respond(status int, contentType, body string) Mode {
	return Mode{kind: kindRespond, status: status, contentType: contentType, body: []byte(body)}
}

// HTML answers 200 with an HTML page, like a captive portal or a
// misconfigured proxy.
func HTML() Mode {
	return Respond(200, "text/html; charset=utf-8",
		"<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>\n")
}

// TruncatedJSON forwards and answers with the backend's status and headers
// but only the first half of its body, with a Content-Length that matches
// the cut body: a complete HTTP response carrying broken JSON.
func TruncatedJSON() Mode { return Mode{kind: kindTruncate} }

// Oversized answers 200 application/json with a valid JSON object of more
// than size bytes. Nothing is forwarded.
func Oversized(size int) Mode { return Mode{kind: kindOversize, size: max(size, 0)} }

// Flap alternates every n requests between forwarding (first) and failing.
func Flap(n int, failing Mode) Mode {
	return Mode{kind: kindFlap, flapN: max(n, 1), failing: &failing}
}

// FlapEvery alternates every d between forwarding (first) and failing.
func FlapEvery(d time.Duration, failing Mode) Mode {
	return Mode{kind: kindFlap, flapD: max(d, time.Millisecond), failing: &failing}
}

// Times limits m to the next n requests; after them the proxy falls back
// (a path rule to the default rule, the default rule to Forward). n <= 0
// means until changed.
func (m Mode) Times(n int) Mode {
	m.times = max(n, 0)
	return m
}

func (m Mode) String() string {
	switch m.kind {
	case kindForward:
		return "forward"
	case kindRefuse:
		return "refuse"
	case kindAcceptClose:
		return "accept-close"
	case kindHangUp:
		return "hang-up"
	case kindReset:
		return "reset"
	case kindDelay:
		return fmt.Sprintf("delay %s", m.delay)
	case kindDrip:
		return fmt.Sprintf("drip %dB/%s", m.chunk, m.delay)
	case kindResetMidBody:
		return fmt.Sprintf("reset after %dB", m.after)
	case kindRespond:
		return fmt.Sprintf("respond %d %s", m.status, m.contentType)
	case kindTruncate:
		return "truncated JSON"
	case kindOversize:
		return fmt.Sprintf("oversized > %dB", m.size)
	case kindFlap:
		if m.flapN > 0 {
			return fmt.Sprintf("flap every %d requests to %s", m.flapN, m.failing)
		}
		return fmt.Sprintf("flap every %s to %s", m.flapD, m.failing)
	}
	return "unknown"
}

// check reports why m cannot be installed, as a path rule or as the default.
func (m Mode) check(path bool) error {
	listener := m.kind == kindRefuse || m.kind == kindAcceptClose
	switch {
	case listener && path:
		return fmt.Errorf("faultproxy: %s acts on connections, before any path is known: use it as the default mode", m)
	case listener && m.times > 0:
		return fmt.Errorf("faultproxy: %s acts on connections and cannot be limited with Times", m)
	case m.kind == kindFlap:
		if m.failing == nil {
			return fmt.Errorf("faultproxy: flap without a failing mode")
		}
		f := *m.failing
		if f.kind == kindFlap || f.kind == kindRefuse || f.kind == kindAcceptClose || f.times > 0 {
			return fmt.Errorf("faultproxy: cannot flap to %s", f)
		}
	case m.kind == kindRespond && (m.status < 100 || m.status > 999):
		return fmt.Errorf("faultproxy: status %d is not an HTTP status", m.status)
	}
	return nil
}

// codeFor is the contract error code that fits status.
func codeFor(status int) string {
	switch status {
	case 400:
		return contract.CodeValidationFailed
	case 404:
		return contract.CodeNotFound
	case 409:
		return contract.CodeConflict
	case 503:
		return contract.CodeUnavailable
	}
	return contract.CodeInternal
}
