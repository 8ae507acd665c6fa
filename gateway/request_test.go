package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
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
