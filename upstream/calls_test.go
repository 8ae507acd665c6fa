package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/bffgate/edge/upstream/refstore"
)

func TestCallsDecodeTheStoreExactly(t *testing.T) {
	st, base := store(t)
	c, obs := newClient(t, testConfig(base))
	ctx := context.Background()

	free, err := c.CheckUsername(ctx, testCall(), "nobody.here.42")
	if err != nil || !free {
		t.Fatalf("free username: %v, %v", free, err)
	}
	free, err = c.CheckUsername(ctx, testCall(), "ŞÜKRÜ.IŞIK") // taken by @sukru.isik, folded
	if err != nil || free {
		t.Fatalf("taken username: %v, %v", free, err)
	}

	want, ok, err := st.UserByID(ctx, refstore.DemoUserID)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	got, err := c.UserByID(ctx, testCall(), refstore.DemoUserID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("user:\n got %+v\nwant %+v", *got, want)
	}

	page, err := c.Search(ctx, testCall(), "şükrü ışık", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantPage, err := st.Search(ctx, "şükrü ışık", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*page, wantPage) || len(page.Items) == 0 || page.Items[0].ID != refstore.DemoUserID {
		t.Fatalf("search:\n got %+v\nwant %+v", *page, wantPage)
	}
	sample, err := c.Search(ctx, testCall(), "", 5, 0)
	if err != nil || len(sample.Items) != 5 || sample.Total != 300 {
		t.Fatalf("random sample: %+v, %v", sample, err)
	}

	// Live streams for a page of users (random samples until one has
	// some), with duplicates in another case.
	var ids []string
	var wantStreams []contract.LiveStream
	for range 20 {
		all, err := st.Search(ctx, "", 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = ids[:0]
		for _, u := range all.Items {
			ids = append(ids, u.ID)
		}
		if wantStreams, err = st.ActiveLiveStreams(ctx, ids); err != nil {
			t.Fatal(err)
		}
		if len(wantStreams) > 0 {
			break
		}
	}
	if len(wantStreams) == 0 {
		t.Fatal("the seed has no live streams")
	}
	streams, err := c.ActiveLiveStreams(ctx, testCall(), append(ids, strings.ToUpper(ids[0]), ids[1]))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(streams, wantStreams) {
		t.Fatalf("live streams:\n got %+v\nwant %+v", streams, wantStreams)
	}

	if obs.outcomes(OpUsernameCheck, OutcomeOK) != 2 || obs.outcomes(OpSearch, OutcomeOK) != 2 ||
		obs.outcomes(OpUserByID, OutcomeOK) != 1 || obs.outcomes(OpLiveStreams, OutcomeOK) != 1 {
		t.Fatalf("observer saw %v", obs.calls)
	}
}

func TestStoreAnswersBecomeKinds(t *testing.T) {
	_, base := store(t)
	c, obs := newClient(t, testConfig(base))
	ctx := context.Background()

	_, err := c.UserByID(ctx, testCall(), refstore.DemoMissingID)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindNotFound || e.Status != 404 || e.Code != contract.CodeNotFound || IsUpstreamFault(err) {
		t.Fatalf("missing user: %#v", err)
	}

	_, err = c.Search(ctx, testCall(), strings.Repeat("a", contract.MaxQueryBytes+1), 10, 0)
	if !errors.As(err, &e) || e.Kind != KindBadRequest || e.Status != 400 || e.Code != contract.CodeValidationFailed || e.Details["q"] == nil {
		t.Fatalf("long query: %#v", err)
	}

	_, err = c.ActiveLiveStreams(ctx, testCall(), []string{"not-a-uuid"})
	if !errors.As(err, &e) || e.Kind != KindBadRequest || e.Details["userIds"] == nil {
		t.Fatalf("bad id: %#v", err)
	}

	_, err = c.CheckUsername(ctx, testCall(), "has space")
	if !errors.As(err, &e) || e.Kind != KindBadRequest || e.Details["username"] == nil {
		t.Fatalf("bad username: %#v", err)
	}
	// A nil Call sends empty context headers rather than failing.
	if _, err := c.UserByID(ctx, nil, refstore.DemoUserID); err != nil {
		t.Fatalf("nil call: %v", err)
	}
	if obs.outcomes(OpSearch, OutcomeBadRequest) != 1 || obs.outcomes(OpUserByID, OutcomeNotFound) != 1 {
		t.Fatalf("observer saw %v", obs.calls)
	}
}

func TestNoLiveStreamCallWithoutIDs(t *testing.T) {
	p := proxied(t)
	c, _ := newClient(t, testConfig(p.URL()))
	streams, err := c.ActiveLiveStreams(context.Background(), testCall(), nil)
	if err != nil || streams != nil || p.Stats().Requests != 0 {
		t.Fatalf("got %v, %v with %d requests", streams, err, p.Stats().Requests)
	}
}

// TestHeadersSentAndNothingElse records, at a proxy in front of the store,
// every header of every call.
func TestHeadersSentAndNothingElse(t *testing.T) {
	p := proxied(t)
	c, _ := newClient(t, testConfig(p.URL()))
	ctx := context.Background()
	full := testCall()
	bare := testCall()
	bare.Traceparent, bare.AppVersion, bare.DeviceID = "", "", ""
	bare.Roles = []string{"user"}

	for _, call := range []*Call{full, bare} {
		p.Record(true)
		if _, err := c.CheckUsername(ctx, call, "someone.new"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Search(ctx, call, "ali", 5, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := c.UserByID(ctx, call, refstore.DemoUserID); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ActiveLiveStreams(ctx, call, []string{refstore.DemoUserID}); err != nil {
			t.Fatal(err)
		}
		seen := p.Seen()
		if len(seen) != 4 {
			t.Fatalf("proxy saw %d requests", len(seen))
		}
		for _, s := range seen {
			want := http.Header{
				"User-Agent":    {"edge-gateway"},
				"Accept":        {"application/json"},
				"Authorization": {"Bearer " + testToken},
				"X-Request-Id":  {call.RequestID},
				"X-User-Id":     {call.UserID},
				"X-User-Roles":  {strings.Join(call.Roles, ",")},
				"X-Language":    {call.Language},
				"X-Timezone":    {call.Timezone},
				"X-Platform":    {call.Platform},
			}
			if call.Traceparent != "" {
				want["Traceparent"] = []string{call.Traceparent}
			}
			if call.AppVersion != "" {
				want["X-App-Version"] = []string{call.AppVersion}
			}
			if call.DeviceID != "" {
				want["X-Device-Id"] = []string{call.DeviceID}
			}
			if s.Method == http.MethodPost {
				want["Content-Type"] = []string{"application/json"}
				want["Content-Length"] = s.Header["Content-Length"]
			}
			if !reflect.DeepEqual(s.Header, want) {
				t.Errorf("%s %s headers:\n got %v\nwant %v", s.Method, s.RequestURI, s.Header, want)
			}
			if host := p.Addr(); s.Host != host {
				t.Errorf("Host %q, want %q", s.Host, host)
			}
		}
	}
}

func TestQueryAndPathEscaping(t *testing.T) {
	p := proxied(t)
	c, _ := newClient(t, testConfig(p.URL()))
	ctx := context.Background()
	p.Record(true)

	q := "Şükrü & co #1 %20+x?=/"
	if _, err := c.Search(ctx, testCall(), q, 7, 3); err != nil {
		t.Fatal(err)
	}
	// An id that would walk to another endpoint if the path were
	// normalized; the store must see one escaped segment.
	_, userErr := c.UserByID(ctx, testCall(), "../usernames/check")
	seen := p.Seen()
	if len(seen) != 2 {
		t.Fatalf("saw %d requests", len(seen))
	}
	u, err := url.ParseRequestURI(seen[0].RequestURI)
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != contract.PathSearch {
		t.Fatalf("search path %q", u.Path)
	}
	values := u.Query()
	if values.Get("q") != q || values.Get("limit") != "7" || values.Get("offset") != "3" || len(values) != 3 {
		t.Fatalf("search query %q decoded to %v", u.RawQuery, values)
	}
	// A space goes as %20, not +: a store that decodes its query as RFC
	// 3986 reads (a + is a +) must see the same text as one that follows
	// HTML forms.
	rawQ, _, _ := strings.Cut(strings.TrimPrefix(u.RawQuery, "q="), "&")
	if strings.Contains(rawQ, "+") {
		t.Fatalf("search query %q sends a space or a plus as +", u.RawQuery)
	}
	if strict, err := url.PathUnescape(rawQ); err != nil || strict != q {
		t.Fatalf("search query %q read as RFC 3986 says: %q (%v), want %q", u.RawQuery, strict, err, q)
	}
	if got, want := seen[1].RequestURI, contract.PathUserPrefix+"..%2Fusernames%2Fcheck"; got != want {
		t.Fatalf("user path %q, want %q", got, want)
	}
	var e *Error
	if !errors.As(userErr, &e) || e.Kind != KindNotFound {
		t.Fatalf("dot-dot id: %#v", userErr)
	}
}

// Live-stream ids go in the query as search text does, a space as %20 and
// a plus as %2B: a store that reads its query as RFC 3986 sees the ids a
// store that reads it as a form sees.
func TestLiveStreamIDsEscaping(t *testing.T) {
	p := proxied(t)
	c, _ := newClient(t, testConfig(p.URL()))
	p.Record(true)
	// Not the store's ids: it refuses them, and only the query counts.
	_, _ = c.ActiveLiveStreams(context.Background(), testCall(), []string{"a b", "c+d&e"})
	seen := p.Seen()
	if len(seen) == 0 {
		t.Fatal("the store was not asked")
	}
	u, err := url.ParseRequestURI(seen[0].RequestURI)
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := strings.CutPrefix(u.RawQuery, "userIds=")
	if !ok || strings.Contains(raw, "+") {
		t.Fatalf("live streams query %q sends a space or a plus as +", u.RawQuery)
	}
	if strict, err := url.PathUnescape(raw); err != nil || strict != "a b,c+d&e" {
		t.Fatalf("live streams query %q read as RFC 3986 says: %q (%v)", u.RawQuery, strict, err)
	}
}

func TestInvalidCallsAreNeverSent(t *testing.T) {
	p := proxied(t)
	c, obs := newClient(t, testConfig(p.URL()))
	ctx := context.Background()
	injected := testCall()
	injected.AppVersion = "1.0\r\nX-Admin: yes"
	many := make([]string, contract.MaxLiveStreamIDs+1)
	for i := range many {
		many[i] = strings.Repeat("a", i+1)
	}
	for name, call := range map[string]func() error{
		"header injection": func() error { _, err := c.CheckUsername(ctx, injected, "x"); return err },
		"role with comma": func() error {
			call := testCall()
			call.Roles = []string{"user,admin"}
			_, err := c.UserByID(ctx, call, refstore.DemoUserID)
			return err
		},
		"limit 0":         func() error { _, err := c.Search(ctx, testCall(), "a", 0, 0); return err },
		"limit over max":  func() error { _, err := c.Search(ctx, testCall(), "a", contract.MaxSearchLimit+1, 0); return err },
		"negative offset": func() error { _, err := c.Search(ctx, testCall(), "a", 5, -1); return err },
		"empty id":        func() error { _, err := c.UserByID(ctx, testCall(), ""); return err },
		"dot-dot id":      func() error { _, err := c.UserByID(ctx, testCall(), ".."); return err },
		"too many ids":    func() error { _, err := c.ActiveLiveStreams(ctx, testCall(), many); return err },
		"empty stream id": func() error { _, err := c.ActiveLiveStreams(ctx, testCall(), []string{"a", ""}); return err },
		"comma in an id":  func() error { _, err := c.ActiveLiveStreams(ctx, testCall(), []string{"a,b"}); return err },
		"long id":         func() error { _, err := c.UserByID(ctx, testCall(), strings.Repeat("x", maxIDBytes+1)); return err },
	} {
		var e *Error
		if err := call(); !errors.As(err, &e) || e.Kind != KindBadRequest || e.Outcome != OutcomeInvalidInput {
			t.Errorf("%s: %#v", name, err)
		}
	}
	if n := p.Stats().Requests; n != 0 {
		t.Fatalf("%d invalid calls reached the store", n)
	}
	if n := obs.outcomes(OpSearch, OutcomeInvalidInput); n != 3 {
		t.Fatalf("observer saw %d invalid searches", n)
	}
	// Exactly 100 distinct ids, duplicates aside, is fine.
	ids := slices.Repeat([]string{refstore.DemoUserID}, 3)
	if _, err := c.ActiveLiveStreams(ctx, testCall(), append(ids, many[:contract.MaxLiveStreamIDs-1]...)); err == nil {
		t.Fatal("the store accepted non-UUID ids") // the store answers 400: the call was sent
	}
	if n := p.Stats().Requests; n != 1 {
		t.Fatalf("100 distinct ids: %d requests", n)
	}
}

// A traceparent in the context (one span per call when tracing) replaces
// the Call's, so parallel calls sharing a Call each carry their own; one
// with a control character is refused, never sent.
func TestTraceparentFromContextOverridesTheCall(t *testing.T) {
	p := proxied(t)
	c, _ := newClient(t, testConfig(p.URL()))
	call := testCall()
	const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	p.Record(true)
	if _, err := c.UserByID(WithTraceparent(context.Background(), own), call, refstore.DemoUserID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UserByID(context.Background(), call, refstore.DemoUserID); err != nil {
		t.Fatal(err)
	}
	seen := p.Seen()
	if len(seen) != 2 {
		t.Fatalf("proxy saw %d requests", len(seen))
	}
	if got := seen[0].Header.Values("Traceparent"); len(got) != 1 || got[0] != own {
		t.Errorf("with a context traceparent: %q", got)
	}
	if got := seen[1].Header.Get("Traceparent"); got != call.Traceparent {
		t.Errorf("without: %q, want the Call's %q", got, call.Traceparent)
	}
	_, err := c.UserByID(WithTraceparent(context.Background(), "00-x\r\nX-Evil: 1"), call, refstore.DemoUserID)
	var ue *Error
	if !errors.As(err, &ue) || ue.Kind != KindBadRequest {
		t.Fatalf("control character in traceparent: %v", err)
	}
	if n := len(p.Seen()); n != 2 {
		t.Fatalf("a refused call reached the store (%d requests)", n)
	}
}

// The fast path of the username-check answer agrees with the decoder and
// leaves every other shape to it.
func TestPlainUsernameCheckAgreesWithTheDecoder(t *testing.T) {
	for _, body := range []string{
		`{"username":"johndoe123","available":true}`, `{"username":"x","available":false}` + "\n",
		`{"username":"x","available":true} `, `{"username":"x","available":null}`, `{"available":true,"username":"x"}`,
		`{"username":"a\"b","available":true}`, `{"username":"ş","available":true}`, `{"username":"x","available":true,"extra":1}`,
		`{"username":"x","available":truex}`, `{"username":"x"`,
	} {
		name, avail, ok := plainUsernameCheck([]byte(body))
		if !ok {
			continue
		}
		var w struct {
			Username  *string `json:"username"`
			Available *bool   `json:"available"`
		}
		if err := json.Unmarshal([]byte(body), &w); err != nil || w.Username == nil || w.Available == nil ||
			*w.Username != string(name) || *w.Available != avail {
			t.Errorf("%q: fast path (%q, %v) disagrees with the decoder (%v)", body, name, avail, err)
		}
	}
	if _, _, ok := plainUsernameCheck([]byte(`{"username":"x","available":true}`)); !ok {
		t.Error("the plain answer did not take the fast path")
	}
}

// CheckUsername keeps nothing of the name it is given (the gateway passes
// the bytes of the app's request, which fasthttp reuses once the handler
// returns, or, for a name sent with capitals, its canonical form in a
// buffer pooled for the next check), nor of its Call (pooled with it):
// whatever the store answers, the result and the error, with its cause,
// read the same after those bytes are written over, and once the next
// check has reused the client's pooled one.
func TestCheckUsernameKeepsNothingOfTheName(t *testing.T) {
	const asked, other = "sukru.isik", "z.zzzzzzzzzzzz"
	answers := []struct {
		name, contentType, body string
		status                  int
	}{
		{"free", "application/json", `{"username":"sukru.isik","available":true}`, 200},
		{"echoed in upper case", "application/json", `{"username":"SUKRU.ISIK","available":false}`, 200},
		{"echoed with diacritics", "application/json", `{"username":"şükrü.ışık","available":false}`, 200},
		{"another name", "application/json", `{"username":"someone.else","available":true}`, 200},
		{"another name, decoded", "application/json", `{"available":true,"username":"someone.else"}`, 200},
		{"not json", "application/json", `{"username":"sukru.isik"`, 200},
		{"refused", "application/json", `{"code":"validation_failed","message":"invalid","details":{"username":"sukru.isik is not allowed"}}`, 400},
		{"failing", "application/json", `{"code":"unavailable","message":"down"}`, 503},
	}
	var current atomic.Int32
	var mu sync.Mutex
	var received []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		received = append(received, string(b))
		mu.Unlock()
		a := answers[current.Load()]
		w.Header().Set("Content-Type", a.contentType)
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	c, _ := newClient(t, testConfig(srv.URL))
	for i, a := range answers {
		current.Store(int32(i))
		b := []byte(asked)
		name := unsafe.String(&b[0], len(b))
		// The Call's strings are a pooled Call's bytes too.
		id := []byte("req-1")
		call := testCall()
		call.RequestID = unsafe.String(&id[0], len(id))
		available, err := c.CheckUsername(context.Background(), call, name)
		before := describeCheck(available, err)
		copy(b, strings.Repeat("X", len(b)))
		copy(id, "XXXXX")
		if after := describeCheck(available, err); after != before || strings.Contains(after, "XXX") {
			t.Errorf("%s: the result read %s, and %s once the name's bytes were written over", a.name, before, after)
		}
		c.CheckUsername(context.Background(), testCall(), other)
		if after := describeCheck(available, err); after != before || strings.Contains(after, other) {
			t.Errorf("%s: the result read %s, and %s after the next check", a.name, before, after)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, body := range received {
		if want := []string{asked, other}[i%2]; body != `{"username":"`+want+`"}` {
			t.Errorf("%s: the store was sent %s, want %s", answers[i/2].name, body, want)
		}
	}
}

// describeCheck is everything a username check's result says, its error's
// fields and causes included.
func describeCheck(available bool, err error) string {
	s := fmt.Sprintf("available %v, error %v", available, err)
	var e *Error
	if errors.As(err, &e) {
		s += fmt.Sprintf(" %+v", *e)
	}
	for ; err != nil; err = errors.Unwrap(err) {
		s += " / " + err.Error()
	}
	return s
}

// The client's own side of a username check allocates only what is listed
// in want: a heap allocation costs ~0.25 µs under load
// (docs/performance.md, #22 and #24). The store's answer is given without
// the network: the operation's layers run over an exchange that accepts
// the plain answer, so what fasthttp allocates is not counted.
func TestCheckUsernameAllocations(t *testing.T) {
	c, err := New(testConfig("http://127.0.0.1:1"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	o := c.op(OpUsernameCheck)
	answer := []byte(`{"username":"johndoe123","available":true}`)
	o.run = c.chain(o, func(_ context.Context, r *request) error { return r.answer.accept(answer) })
	ctx, call := context.Background(), testCall()
	// The check's request, answer and body are pooled.
	const want = 0
	n := testing.AllocsPerRun(200, func() {
		if ok, err := c.CheckUsername(ctx, call, "johndoe123"); err != nil || !ok {
			t.Fatal(ok, err)
		}
	})
	if n > want {
		t.Errorf("a username check allocates %v times, want at most %d", n, want)
	}
}

// Every header the client writes is checked before anything is sent: a
// control character (DEL included) in any of them refuses the call, while
// a tab, which a header value may hold, goes out as it is.
func TestEveryHeaderIsCheckedBeforeSending(t *testing.T) {
	p := proxied(t)
	c, _ := newClient(t, testConfig(p.URL()))
	ctx := context.Background()
	for name, set := range map[string]func(*Call, string){
		"X-Request-Id":  func(c *Call, v string) { c.RequestID = v },
		"traceparent":   func(c *Call, v string) { c.Traceparent = v },
		"X-User-Id":     func(c *Call, v string) { c.UserID = v },
		"X-User-Roles":  func(c *Call, v string) { c.Roles = []string{"user", v} },
		"X-Language":    func(c *Call, v string) { c.Language = v },
		"X-Timezone":    func(c *Call, v string) { c.Timezone = v },
		"X-Platform":    func(c *Call, v string) { c.Platform = v },
		"X-App-Version": func(c *Call, v string) { c.AppVersion = v },
		"X-Device-Id":   func(c *Call, v string) { c.DeviceID = v },
	} {
		for _, bad := range []string{"a\nX-Admin: yes", "a\rb", "a\x00b", "a\x7fb"} {
			call := testCall()
			set(call, bad)
			_, err := c.UserByID(ctx, call, refstore.DemoUserID)
			var e *Error
			if !errors.As(err, &e) || e.Outcome != OutcomeInvalidInput {
				t.Errorf("%s %q: %v", name, bad, err)
			}
		}
	}
	if n := p.Stats().Requests; n != 0 {
		t.Fatalf("%d refused calls reached the store", n)
	}
	call := testCall()
	call.AppVersion = "5.2.1\tbeta"
	p.Record(true)
	if _, err := c.UserByID(ctx, call, refstore.DemoUserID); err != nil {
		t.Fatalf("a tab in a header value: %v", err)
	}
	if seen := p.Seen(); len(seen) != 1 || seen[0].Header.Get("X-App-Version") != call.AppVersion {
		t.Fatalf("seen %+v", seen)
	}
}

// The bounds of each call's arguments: at the bound the call is sent,
// past it (or a dot segment for an id) it is refused unsent.
func TestCallArgumentBounds(t *testing.T) {
	p := proxied(t)
	c, _ := newClient(t, testConfig(p.URL()))
	ctx := context.Background()
	longest := strings.Repeat("a", maxIDBytes)
	for name, tc := range map[string]struct {
		call func() error
		sent bool
	}{
		"limit at the maximum": {func() error { _, err := c.Search(ctx, testCall(), "ali", contract.MaxSearchLimit, 0); return err }, true},
		"limit 1":              {func() error { _, err := c.Search(ctx, testCall(), "ali", 1, 0); return err }, true},
		"id at the length":     {func() error { _, err := c.UserByID(ctx, testCall(), longest); return err }, true},
		"id one byte longer":   {func() error { _, err := c.UserByID(ctx, testCall(), longest+"a"); return err }, false},
		"dot id":               {func() error { _, err := c.UserByID(ctx, testCall(), "."); return err }, false},
		"stream id at the length": {func() error {
			_, err := c.ActiveLiveStreams(ctx, testCall(), []string{refstore.DemoUserID, longest})
			return err
		}, true},
		"stream id one byte longer": {func() error {
			_, err := c.ActiveLiveStreams(ctx, testCall(), []string{refstore.DemoUserID, longest + "a"})
			return err
		}, false},
	} {
		before := p.Stats().Requests
		err := tc.call()
		var e *Error
		refused := errors.As(err, &e) && e.Outcome == OutcomeInvalidInput
		if sent := p.Stats().Requests - before; refused == tc.sent || sent != map[bool]int64{true: 1, false: 0}[tc.sent] {
			t.Errorf("%s: %d requests, err %v; want sent %v", name, sent, err, tc.sent)
		}
	}
}
