package gateway

import (
	"context"

	"github.com/bffgate/edge/gateway/telemetry"
	"github.com/bffgate/edge/upstream"
	"github.com/bffgate/edge/upstream/contract"
	"go.opentelemetry.io/otel/attribute"
)

// tracedStore gives every user-store call its own client span, and sends
// that span's traceparent with the call. Used only when tracing is on.
type tracedStore struct {
	inner   UserStore
	tracing *telemetry.Tracing
}

func (t tracedStore) start(ctx context.Context, op upstream.Op) (context.Context, telemetry.Span) {
	ctx, span := t.tracing.StartClientSpan(ctx, "userstore "+string(op), attribute.String("upstream.op", string(op)))
	return upstream.WithTraceparent(ctx, telemetry.Traceparent(ctx)), span
}

func (t tracedStore) CheckUsername(ctx context.Context, call *upstream.Call, username string) (bool, error) {
	ctx, span := t.start(ctx, upstream.OpUsernameCheck)
	defer span.End()
	ok, err := t.inner.CheckUsername(ctx, call, username)
	span.Fail(err)
	return ok, err
}

func (t tracedStore) Search(ctx context.Context, call *upstream.Call, q string, limit, offset int) (*contract.SearchResponse, error) {
	ctx, span := t.start(ctx, upstream.OpSearch)
	defer span.End()
	res, err := t.inner.Search(ctx, call, q, limit, offset)
	span.Fail(err)
	return res, err
}

func (t tracedStore) UserByID(ctx context.Context, call *upstream.Call, id string) (*contract.User, error) {
	ctx, span := t.start(ctx, upstream.OpUserByID)
	defer span.End()
	u, err := t.inner.UserByID(ctx, call, id)
	span.Fail(err)
	return u, err
}

func (t tracedStore) ActiveLiveStreams(ctx context.Context, call *upstream.Call, ids []string) ([]contract.LiveStream, error) {
	ctx, span := t.start(ctx, upstream.OpLiveStreams)
	defer span.End()
	items, err := t.inner.ActiveLiveStreams(ctx, call, ids)
	span.Fail(err)
	return items, err
}
