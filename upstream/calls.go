package upstream

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/bffgate/edge/upstream/contract"
)

// maxIDBytes bounds an id the client puts in a URL; the store's ids are
// UUIDs, so anything longer cannot exist.
const maxIDBytes = 256

// CheckUsername asks whether username is free. It is a POST and is never
// retried, by fasthttp or by the client. Nothing of username or call is
// kept after it returns: the gateway passes the bytes of the app's request
// and a pooled Call.
func (c *Client) CheckUsername(ctx context.Context, call *Call, username string) (bool, error) {
	u := usernameChecks.Get().(*usernameCheck)
	available, err := c.checkUsername(ctx, u, call, username)
	*u = usernameCheck{}
	usernameChecks.Put(u)
	return available, err
}

func (c *Client) checkUsername(ctx context.Context, u *usernameCheck, call *Call, username string) (bool, error) {
	o := c.op(OpUsernameCheck)
	u.username = username
	body, err := appendUsernameCheckBody(u.body[:0], username)
	if err != nil {
		return false, c.refuse(o, invalidInput(o.op, "username: %v", err))
	}
	u.request = request{op: o, call: call, method: http.MethodPost, path: contract.PathUsernameCheck, body: body, answer: u}
	if err := c.do(ctx, o, &u.request); err != nil {
		return false, err
	}
	return u.available, nil
}

// usernameChecks holds username checks between calls. Nothing holds a
// check once its call returns: the chain runs in the caller's goroutine,
// and send releases fasthttp's request, which points at the check's body,
// before it returns.
var usernameChecks = sync.Pool{New: func() any { return new(usernameCheck) }}

// usernameCheck is one username check: its request, the name asked, the
// answer, and room for the body of any valid name (at most 30
// characters), so that one pooled object holds them all. It is its
// request's acceptor itself, where a closure would be an allocation of its
// own.
type usernameCheck struct {
	request
	username  string
	available bool
	body      [48]byte
}

func (u *usernameCheck) accept(body []byte) (err error) {
	u.available, err = decodeUsernameCheck(body, u.username)
	return err
}

// appendUsernameCheckBody appends the JSON body of the username check. A
// name of printable ASCII without a quote or backslash, as every valid
// name is, needs no escaping and is written as it is; any other goes
// through encoding/json.
func appendUsernameCheckBody(dst []byte, username string) ([]byte, error) {
	const head, tail = `{"username":"`, `"}`
	for i := 0; i < len(username); i++ {
		if c := username[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b, err := json.Marshal(contract.UsernameCheckRequest{Username: username})
			return append(dst, b...), err
		}
	}
	dst = slices.Grow(dst, len(head)+len(username)+len(tail))
	dst = append(dst, head...)
	dst = append(dst, username...)
	return append(dst, tail...), nil
}

// Search finds users matching q (empty: a random sample), limit from 1 to
// contract.MaxSearchLimit, offset from 0.
func (c *Client) Search(ctx context.Context, call *Call, q string, limit, offset int) (*contract.SearchResponse, error) {
	o := c.op(OpSearch)
	if limit < 1 || limit > contract.MaxSearchLimit || offset < 0 {
		return nil, c.refuse(o, invalidInput(o.op, "search: limit %d or offset %d out of range", limit, offset))
	}
	var b strings.Builder
	b.Grow(len(contract.PathSearch) + 3*len(q) + 32)
	b.WriteString(contract.PathSearch)
	b.WriteString("?q=")
	b.WriteString(queryValue(q))
	b.WriteString("&limit=")
	b.WriteString(strconv.Itoa(limit))
	b.WriteString("&offset=")
	b.WriteString(strconv.Itoa(offset))
	var out *contract.SearchResponse
	r := &request{op: o, call: call, method: http.MethodGet, path: b.String(),
		answer: acceptFunc(func(body []byte) (err error) {
			out, err = decodeSearch(body, limit)
			return err
		})}
	if err := c.do(ctx, o, r); err != nil {
		return nil, err
	}
	return out, nil
}

// queryValue escapes s for a query string with a space as %20, not the
// + of HTML forms (url.QueryEscape): a store that reads its query as RFC
// 3986 does, where + is a plus, sees the same text as one that reads it as
// a form (the contract does not say which). A plus is sent as %2B either
// way.
func queryValue(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// UserByID fetches one user. An unknown id is KindNotFound.
func (c *Client) UserByID(ctx context.Context, call *Call, id string) (*contract.User, error) {
	o := c.op(OpUserByID)
	if id == "" || id == "." || id == ".." || len(id) > maxIDBytes {
		return nil, c.refuse(o, invalidInput(o.op, "user id is empty, a dot segment or too long"))
	}
	var out *contract.User
	r := &request{op: o, call: call, method: http.MethodGet, path: contract.PathUserPrefix + url.PathEscape(id),
		answer: acceptFunc(func(body []byte) (err error) {
			out, err = decodeUser(body, id)
			return err
		})}
	if err := c.do(ctx, o, r); err != nil {
		return nil, err
	}
	return out, nil
}

// ActiveLiveStreams returns the active live stream of each listed user that
// has one. Ids are deduplicated (ignoring case, as the store does); at most
// contract.MaxLiveStreamIDs distinct ids per call. No ids: no call, nil.
func (c *Client) ActiveLiveStreams(ctx context.Context, call *Call, userIDs []string) ([]contract.LiveStream, error) {
	o := c.op(OpLiveStreams)
	asked := make(map[string]bool, len(userIDs))
	var b strings.Builder
	b.WriteString(contract.PathLiveStreams)
	b.WriteString("?userIds=")
	for _, id := range userIDs {
		if id == "" || len(id) > maxIDBytes || strings.Contains(id, ",") {
			return nil, c.refuse(o, invalidInput(o.op, "live streams: a user id is empty, too long or has a comma"))
		}
		key := strings.ToLower(id)
		if asked[key] {
			continue
		}
		if len(asked) == contract.MaxLiveStreamIDs {
			return nil, c.refuse(o, invalidInput(o.op, "live streams: more than %d distinct user ids", contract.MaxLiveStreamIDs))
		}
		if len(asked) > 0 {
			b.WriteByte(',')
		}
		asked[key] = true
		b.WriteString(queryValue(id))
	}
	if len(asked) == 0 {
		return nil, nil
	}
	var out []contract.LiveStream
	r := &request{op: o, call: call, method: http.MethodGet, path: b.String(),
		answer: acceptFunc(func(body []byte) (err error) {
			out, err = decodeLiveStreams(body, asked)
			return err
		})}
	if err := c.do(ctx, o, r); err != nil {
		return nil, err
	}
	return out, nil
}

// do runs a request through its operation's chain, after refusing calls
// whose headers cannot be sent.
func (c *Client) do(ctx context.Context, o *operation, r *request) error {
	if name, ok := r.call.check(); !ok {
		return c.refuse(o, invalidInput(o.op, "header %s has a control character", name))
	}
	if tp, ok := ctx.Value(traceparentKey{}).(string); ok && tp != "" {
		if !headerSafe(tp) {
			return c.refuse(o, invalidInput(o.op, "header %s has a control character", contract.HeaderTraceparent))
		}
		r.traceparent = tp
	}
	return o.run(ctx, r)
}

// refuse reports a call that was never sent.
func (c *Client) refuse(o *operation, e *Error) error {
	c.obs.Call(o.op, e.Outcome, 0)
	return e
}

type traceparentKey struct{}

// WithTraceparent gives the calls made with ctx their own W3C traceparent,
// overriding the Call's: a tracing gateway passes each call's client span
// this way, while one Call serves several calls of a request in parallel.
func WithTraceparent(ctx context.Context, traceparent string) context.Context {
	return context.WithValue(ctx, traceparentKey{}, traceparent)
}
