package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/upstream/contract"
)

func newTestRequest(start time.Time, timeout time.Duration) *request {
	cfg := &config.Config{}
	cfg.Server.RequestTimeout = timeout
	rq := acquireRequest()
	rq.start, rq.rt = start, &runtime{cfg: cfg}
	return rq
}

// A request asked only for Err answers from the clock and makes no timer;
// once something waits on Done, Err is the timer's, and both agree.
func TestRequestContextErrWithoutTimer(t *testing.T) {
	rq := newTestRequest(time.Now(), time.Hour)
	defer releaseRequest(rq)
	if err := rq.Err(); err != nil {
		t.Fatalf("Err before the deadline: %v", err)
	}
	if rq.ctx != nil {
		t.Fatal("Err made the deadline timer")
	}
	select {
	case <-rq.Done():
		t.Fatal("Done closed before the deadline")
	default:
	}
	if rq.ctx == nil || rq.Err() != nil {
		t.Fatalf("after Done: ctx %v, Err %v", rq.ctx, rq.Err())
	}

	late := newTestRequest(time.Now().Add(-time.Second), time.Millisecond)
	defer releaseRequest(late)
	if err := late.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err past the deadline: %v", err)
	}
	select {
	case <-late.Done():
	case <-time.After(time.Second):
		t.Fatal("Done made past the deadline is not closed")
	}
	if err := late.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after Done past the deadline: %v", err)
	}
}

// The request's id lives in the pooled request; a store call, which may
// outlive the request (a background refresh), keeps its own copy: the id
// it sends stays the request's after the request is released and reused.
func TestCallKeepsTheRequestIDPastTheRequest(t *testing.T) {
	for _, sent := range []string{"client-id-42", "", "not sane!"} {
		rq := acquireRequest()
		rq.setID([]byte(sent))
		id := strings.Clone(rq.id)
		if sent == "client-id-42" && id != sent {
			t.Fatalf("sane client id %q became %q", sent, id)
		}
		if sent != "client-id-42" && !contract.IsUUID(id) {
			t.Fatalf("id %q made for %q, want a UUID", id, sent)
		}
		call := rq.call()
		releaseRequest(rq)
		next := acquireRequest()
		next.setID([]byte("the-next-request"))
		if call.RequestID != id {
			t.Fatalf("the call's request id became %q after the request ended, want %q", call.RequestID, id)
		}
		releaseRequest(next)
	}
}

// The call's traceparent is kept past the request too, next to the
// longest id a client may send: the client's header bytes are fasthttp's,
// reused by the next request on the connection.
func TestCallKeepsTheTraceparentPastTheRequest(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	longID := strings.Repeat("a", maxRequestIDLen)
	header := []byte(tp)
	rq := acquireRequest()
	rq.setID([]byte(longID))
	rq.traceparent = header
	call := rq.call()
	releaseRequest(rq)
	copy(header, strings.Repeat("0", len(header)))
	next := acquireRequest()
	next.setID([]byte(strings.Repeat("b", maxRequestIDLen)))
	if call.RequestID != longID || call.Traceparent != tp {
		t.Fatalf("after the request ended the call sends id %q and traceparent %q, want %q and %q", call.RequestID, call.Traceparent, longID, tp)
	}
	releaseRequest(next)
}
