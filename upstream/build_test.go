package upstream

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bffgate/edge/upstream/contract"
	"github.com/valyala/fasthttp"
)

// The hand-written body decodes to the same name as encoding/json's, for
// names that take the fast path and names that do not.
func TestUsernameCheckBody(t *testing.T) {
	for _, name := range []string{"johndoe123", "", "a.b_c", `quo"te`, `back\slash`, "new\nline", "tab\t", "şükrü", "<script>", "del\x7f", "x y"} {
		b, err := appendUsernameCheckBody(nil, name)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		var got contract.UsernameCheckRequest
		if err := json.Unmarshal(b, &got); err != nil || got.Username != name {
			t.Errorf("%q: body %s decodes to %q (%v)", name, b, got.Username, err)
		}
	}
	if b, _ := appendUsernameCheckBody(nil, "johndoe123"); string(b) != `{"username":"johndoe123"}` {
		t.Errorf("plain name: %s", b)
	}
	// The longest valid name's body fits in the room a check has for it.
	u := new(usernameCheck)
	if b, _ := appendUsernameCheckBody(u.body[:0], strings.Repeat("a", 30)); &b[0] != &u.body[0] {
		t.Errorf("the body of a 30-character name (%d bytes) does not fit in usernameCheck.body", len(b))
	}
}

// wire is the request as it goes on the wire.
func wire(t testing.TB, req *fasthttp.Request) []byte {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := req.Write(w); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return buf.Bytes()
}

// A fixed path's pre-parsed URI puts the same bytes on the wire as parsing
// base+path on the call, also under a base URL with a path prefix, and
// the copy leaves the host's URI as it was.
func TestFixedURIMatchesParsed(t *testing.T) {
	for _, base := range []string{"http://127.0.0.1:8081", "http://store.internal:9000/prefix/v2"} {
		c, _ := newClient(t, testConfig(base))
		o := c.op(OpUsernameCheck)
		body, _ := appendUsernameCheckBody(nil, "johndoe123")
		r := &request{op: o, call: testCall(), method: http.MethodPost, path: contract.PathUsernameCheck, body: body}
		if o.target.fixed[r.path] == nil {
			t.Fatalf("%s: no pre-parsed URI for %s", base, r.path)
		}

		fixed := fasthttp.AcquireRequest()
		c.build(fixed, r)
		parsed := fasthttp.AcquireRequest()
		c.build(parsed, r)
		parsed.SetRequestURI(o.target.base + r.path)
		a, b := wire(t, fixed), wire(t, parsed)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: pre-parsed URI:\n%s\nparsed per call:\n%s", base, a, b)
		}
		fixed.URI().SetPath("/elsewhere")
		if got := string(o.target.fixed[r.path].Path()); got == "/elsewhere" {
			t.Errorf("%s: changing a request's URI changed the host's", base)
		}
		fasthttp.ReleaseRequest(fixed)
		fasthttp.ReleaseRequest(parsed)
	}
}

// BenchmarkBuildUsernameCheck is the client's side of building a username
// check and writing it out, without the network: the gateway's request
// (contract headers, service token) next to the one the benchmark's
// no-work reference proxy sends (bench/barefiber: URI, method, content
// type, body).
func BenchmarkBuildUsernameCheck(b *testing.B) {
	c, _ := newClient(b, testConfig("http://127.0.0.1:8081"))
	o := c.op(OpUsernameCheck)
	call := testCall()
	w := bufio.NewWriter(io.Discard)
	b.Run("gateway", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			body, _ := appendUsernameCheckBody(nil, "johndoe123")
			r := &request{op: o, call: call, method: http.MethodPost, path: contract.PathUsernameCheck, body: body}
			req := fasthttp.AcquireRequest()
			c.build(req, r)
			if err := req.Write(w); err != nil {
				b.Fatal(err)
			}
			fasthttp.ReleaseRequest(req)
		}
	})
	b.Run("reference", func(b *testing.B) {
		uri := o.target.base + contract.PathUsernameCheck
		body := []byte(`{"username":"johndoe123"}`)
		b.ReportAllocs()
		for b.Loop() {
			req := fasthttp.AcquireRequest()
			referenceRequest(req, uri, body)
			if err := req.Write(w); err != nil {
				b.Fatal(err)
			}
			fasthttp.ReleaseRequest(req)
		}
	})
}

// referenceRequest builds what bench/barefiber's proxy sends.
func referenceRequest(req *fasthttp.Request, uri string, body []byte) {
	req.SetRequestURI(uri)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType(mimeJSON)
	req.SetBody(body)
}

// BenchmarkStoreReadsUsernameCheck is the store's side: fasthttp reading
// the gateway's request (what the static upstream and any fasthttp store
// do per call) next to reading the reference proxy's.
func BenchmarkStoreReadsUsernameCheck(b *testing.B) {
	c, _ := newClient(b, testConfig("http://127.0.0.1:8081"))
	o := c.op(OpUsernameCheck)
	body, _ := appendUsernameCheckBody(nil, "johndoe123")
	gw := fasthttp.AcquireRequest()
	c.build(gw, &request{op: o, call: testCall(), method: http.MethodPost, path: contract.PathUsernameCheck, body: body})
	ref := fasthttp.AcquireRequest()
	referenceRequest(ref, o.target.base+contract.PathUsernameCheck, body)
	for _, v := range []struct {
		name string
		req  *fasthttp.Request
	}{{"gateway", gw}, {"reference", ref}} {
		raw := wire(b, v.req)
		b.Run(v.name, func(b *testing.B) {
			var in fasthttp.Request
			rd := bytes.NewReader(raw)
			br := bufio.NewReader(rd)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(raw)
				br.Reset(rd)
				in.Reset()
				if err := in.Read(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
