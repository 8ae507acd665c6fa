package gateway

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/valyala/fasthttp"
)

// Refusing a header block whose framing another parser could read
// differently.
//
// The gateway sits behind an ingress that keeps connections to it open and
// sends many clients' requests down each. If the ingress and fasthttp
// disagree on where a request's body ends, the rest of one client's body
// is read here as the next request (request smuggling). fasthttp v1.51 is
// lenient where RFC 9112 asks for a refusal: it takes the last of two
// different Content-Lengths, reads any Transfer-Encoding but "identity" as
// chunked (also "xchunked", "gzip", "chunked, identity"), lets
// Transfer-Encoding override Content-Length and keeps the connection,
// accepts Transfer-Encoding from HTTP/1.0, unfolds obs-fold, and takes a
// bare LF as the end of a header line, a bare CR or NUL as part of a value.
// A parser in front that reads any of these the other way could frame the
// request differently. So such a request is answered 400 (in English, with
// a new request id: its headers are not trusted) and its connection is
// closed, so that nothing after it on the connection is read.
//
// The check reads the header block as fasthttp parsed it (RawHeaders),
// before fasthttp reads the body. That is the block as received unless
// fasthttp unfolded a fold in its buffer at an earlier pass that failed;
// the connection looks at the lines as they arrive for that
// (clientConn.scanHead), and holdHeaders adds what it saw. Not covered here: the request line (checked
// as the request is handled, requestLineStatus), and the chunk-size lines
// of a chunked body, which fasthttp reads itself, and leniently (it skips
// whatever follows the size up to a CR, a bare LF included). So a chunked
// request is served, but its connection closed after the answer
// (holdHeaders): wherever a parser in front ends its body, nothing after
// it is read as a request. Apps and browsers send their JSON bodies with
// a Content-Length; a chunked one costs its client a new connection.

// ambiguousFraming reports whether a request's header block (raw: its
// header lines as received, with the blank line that ends them; empty when
// there were none) breaks one of the rules above. http11 is whether the
// request is HTTP/1.1. The same pass reports, for a block that is not
// ambiguous, what is wrong with its Host field (host): an HTTP/1.1 request
// without one, or a value that is no host (validHost), which RFC 9112
// section 3.2 tells a server to answer 400: a request with a sound
// framing, so it is refused in the caller's language and its connection
// kept (hostRefused). An empty Host counts as present, and valid: the RFC
// allows one. And it reports what fasthttp reads of the block more
// narrowly than the RFC does (framingFacts).
func ambiguousFraming(raw []byte, http11 bool) (ambiguous bool, host hostFault, facts framingFacts) {
	var contentLengths, transferEncodings, hosts, contentTypes int
	badHost := false
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 1 || raw[i-1] != '\r' {
			return true, hostFine, facts // a bare LF (or a block that does not end)
		}
		line := raw[:i-1]
		raw = raw[i+1:]
		if len(line) == 0 {
			break // the blank line
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || !isToken(name) {
			return true, hostFine, facts // also obs-fold: a line starting with SP or HTAB
		}
		if hasControl(value) {
			return true, hostFine, facts // CR, NUL, other controls
		}
		switch len(name) {
		case len(fasthttp.HeaderContentLength):
			if bytes.EqualFold(name, []byte(fasthttp.HeaderContentLength)) {
				contentLengths++
			}
		case len(fasthttp.HeaderTransferEncoding):
			if bytes.EqualFold(name, []byte(fasthttp.HeaderTransferEncoding)) {
				transferEncodings++
				if !clientctx.EqualFoldASCII(bytes.Trim(value, " \t"), "chunked") {
					return true, hostFine, facts // another coding, a list, or empty
				}
			}
		case len(fasthttp.HeaderHost):
			if bytes.EqualFold(name, []byte(fasthttp.HeaderHost)) {
				hosts++
				badHost = !validHost(value)
			}
		case len(fasthttp.HeaderContentType):
			if bytes.EqualFold(name, []byte(fasthttp.HeaderContentType)) {
				contentTypes++
			}
		case len(fasthttp.HeaderConnection):
			if !facts.closeAsked && bytes.EqualFold(name, []byte(fasthttp.HeaderConnection)) {
				facts.closeAsked = lists(value, "close")
			}
		case len(fasthttp.HeaderExpect):
			if bytes.EqualFold(name, []byte(fasthttp.HeaderExpect)) {
				facts.expects = true
				facts.expectsContinue = facts.expectsContinue || lists(value, "100-continue")
			}
		}
	}
	ambiguous = contentLengths > 1 || transferEncodings > 1 ||
		contentLengths > 0 && transferEncodings > 0 ||
		transferEncodings > 0 && !http11 ||
		hosts > 1
	facts.contentTypeTwice = contentTypes > 1
	switch {
	case ambiguous:
	case badHost:
		host = hostInvalid
	case http11 && hosts == 0:
		host = hostMissing
	}
	return ambiguous, host, facts
}

// hostFault is what makes a sound header block's Host field, or the
// origin its target names instead, refused.
type hostFault uint8

const (
	hostFine    hostFault = iota
	hostMissing           // an HTTP/1.1 block without Host
	hostInvalid           // a Host whose value is no host (validHost)
	hostScheme            // an absolute-form target of a scheme not served (targetFault)
)

// validHost reports whether a Host value (with the whitespace around it,
// which is not part of it) is empty or uri-host [":" port] (RFC 9110
// section 7.2, RFC 3986 section 3.2.2): a name or IPv4 address of
// unreserved and sub-delims characters, or an IPv6 address in brackets
// (ipv6Literal), and a port of digits. fasthttp builds the request's URI
// from Host and target, and a value it cannot parse ("a b", "x/y",
// "[::1", "x:-1") left the URI without its path: a request for a route
// answered 404. One it reads leniently ("user@x", "x:80:90", non-ASCII
// bytes, brackets around no IPv6 address: "[1]", "[:]", "[1.2.3.4]") was
// served. Percent-encoding, which RFC 3986 allows in a name, is refused
// too: fasthttp refuses most of it, and no client needs it (names are
// sent in ASCII, IDNs as punycode). So are two things RFC 3986 and RFC
// 6874 allow in brackets besides an IPv6 address: a zone identifier
// ("[fe80::1%25en0]"), which names an interface of the client's own host
// and which RFC 6874 section 4 has a client remove before it sends a URI;
// and IPvFuture ("[v1.x]"), a format no version of which has been
// defined, which RFC 3986 section 3.2.2 has an application that does not
// know the version refuse.
func validHost(v []byte) bool {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	i := 0
	for i < len(v) && hostChars[v[i]] {
		i++
	}
	if i == 0 && len(v) > 0 && v[0] == '[' { // not among hostChars
		end := bytes.IndexByte(v, ']')
		if end < 0 || !ipv6Literal(v[1:end]) {
			return false
		}
		i = end + 1
	}
	if i == len(v) {
		return true
	}
	if v[i] != ':' {
		return false
	}
	for _, c := range v[i+1:] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// targetFault is what refuses a target that does not start with "/" for
// the origin it names, hostFine when nothing does. An absolute URI's
// scheme and authority (what follows the scheme's "://", up to a "/" or
// "?", as fasthttp reads it) name the origin RFC 9112 section 3.2.2 has a
// server go by, instead of Host:
//
//   - A scheme other than http or https (in any case, RFC 3986 section
//     3.1) names an origin the gateway does not serve:
//     "x://y/api/v1/users/me" is not a request for its profile, though
//     fasthttp read it as the path /api/v1/users/me on the host y
//     (hostScheme).
//   - The authority is held to what Host is held to (validHost), and must
//     not be empty. fasthttp built the URI from it, and read no path out
//     of one it could not parse (a route answered 404), or dropped what
//     it read leniently ("user@") (hostInvalid).
//
// Other targets name no origin, or are refused as a broken request line
// (requestLineStatus).
func targetFault(target []byte) hostFault {
	scheme, rest, absolute := bytes.Cut(target, []byte("://"))
	if !absolute {
		return hostFine
	}
	if !clientctx.EqualFoldASCII(scheme, "http") && !clientctx.EqualFoldASCII(scheme, "https") {
		return hostScheme
	}
	if end := bytes.IndexAny(rest, "/?"); end >= 0 {
		rest = rest[:end]
	}
	// An empty host ("http:///...", "http://:80/") makes an http URI
	// invalid (RFC 9110 section 4.2.1), where an empty Host is allowed.
	if len(rest) == 0 || rest[0] == ':' || !validHost(rest) {
		return hostInvalid
	}
	return hostFine
}

// ipv6Literal reports whether b, what a Host holds in brackets, is an
// IPv6 address as RFC 3986 section 3.2.2 writes one (IPv6address): eight
// groups of up to four hex digits, or fewer around one "::", the last
// two of them perhaps an IPv4 address in dotted decimal. Its length and
// characters are checked first, so that netip is given (as a string, a
// copy) only what can be an address; a bracketed Host is rare (an app
// sends a name).
func ipv6Literal(b []byte) bool {
	if len(b) < 2 || len(b) > len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255") {
		return false
	}
	for _, c := range b {
		if !isHex(c) && c != ':' && c != '.' {
			return false // also a zone identifier ("%25"), or IPvFuture ("v1.x")
		}
	}
	a, err := netip.ParseAddr(string(b))
	return err == nil && a.Is6() // netip reads an IPv4 address too
}

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// hostChars are the characters of a host name (RFC 3986 reg-name without
// percent-encoding: unreserved and sub-delims), which an IPv4 address's
// digits and dots are among.
var hostChars = alphanumericAnd("-._~!$&'()*+,;=")

// tokenChars are the characters of an RFC 9110 token (tchar).
var tokenChars = alphanumericAnd("!#$%&'*+-.^_`|~")

// alphanumericAnd is the byte table of the ASCII letters and digits and
// the characters of more.
func alphanumericAnd(more string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range more {
		t[c] = true
	}
	return t
}

// framingFacts are what a header block asks that fasthttp does not hear.
type framingFacts struct {
	// closeAsked: a Connection line lists the close option. fasthttp
	// closes only for a line that is exactly "close", the last of them,
	// while RFC 9112 section 9.6 has a server close after answering any
	// request that lists it ("Close", "keep-alive, close").
	closeAsked bool
	// expectsContinue: an Expect line lists 100-continue in any spelling.
	// fasthttp takes only a first line that is exactly "100-continue"
	// (not "100-Continue", nor one with trailing whitespace, nor a list),
	// while Expect is a list, over one line or several, whose
	// expectations compare case-insensitively (RFC 9110 section 10.1.1),
	// and a client left without its 100 waits before it sends the body.
	// The hook writes the first line as fasthttp reads it.
	expectsContinue bool
	// expects: the block has an Expect line (settleExpect).
	expects bool
	// contentTypeTwice: the block has more than one Content-Type line.
	// fasthttp keeps the last and says nothing, while Content-Type is no
	// list field (RFC 9110 sections 5.3 and 8.3): a proxy in front that
	// reads the first, or a server that refuses two, disagrees about what
	// the body is (sentContentTypeTwice).
	contentTypeTwice bool
}

// lists reports whether a list field's value (Connection, Expect) lists
// option (any case, with optional whitespace around the commas).
func lists(value []byte, option string) bool {
	for len(value) > 0 {
		var opt []byte
		opt, value, _ = bytes.Cut(value, []byte{','})
		if clientctx.EqualFoldASCII(bytes.Trim(opt, " \t"), option) {
			return true
		}
	}
	return false
}

// isToken reports whether b is a non-empty RFC 9110 token (a field name).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// hasControl reports whether b holds a byte of controlChars. It is on the
// path of every request, so it looks at eight bytes at a time: a word none
// of whose bytes is below 0x20 or equal to 0x7f is skipped whole (bytes of
// 0x80 and above, obs-text, pass), and only a word with one of them, an
// HTAB included, is looked at byte by byte.
func hasControl(b []byte) bool {
	for len(b) >= 32 {
		if suspectWord(binary.LittleEndian.Uint64(b))|suspectWord(binary.LittleEndian.Uint64(b[8:]))|
			suspectWord(binary.LittleEndian.Uint64(b[16:]))|suspectWord(binary.LittleEndian.Uint64(b[24:])) != 0 {
			for _, c := range b[:32] {
				if controlChars[c] {
					return true
				}
			}
		}
		b = b[32:]
	}
	for len(b) >= 8 {
		if suspectWord(binary.LittleEndian.Uint64(b)) != 0 {
			for _, c := range b[:8] {
				if controlChars[c] {
					return true
				}
			}
		}
		b = b[8:]
	}
	for _, c := range b {
		if controlChars[c] {
			return true
		}
	}
	return false
}

// suspectWord is non-zero when one of the eight bytes of x is below 0x20
// or is 0x7f (exact, as a whole: no word with such a byte is zero).
func suspectWord(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := (x - 0x20*ones) &^ x & highs
	del := x ^ 0x7f*ones
	return below | (del-ones)&^del&highs
}

// controlChars are the bytes a field value may not hold: the controls
// but HTAB.
var controlChars = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = c != '\t'
	}
	t[0x7f] = true
	return t
}()

// refusedFraming reports whether the request being handled had a header
// block holdHeaders found ambiguous (see ambiguousFraming).
func refusedFraming(ctx *fasthttp.RequestCtx) bool {
	hs := handledHook(ctx)
	return hs != nil && hs.ambiguous
}

// readRefusedFraming reports whether the request whose read failed (in
// fasthttp's error handler, before the request is counted) had a header
// block holdHeaders found ambiguous: its body failed because it was not
// waited for. An ambiguous block closes its connection, so the hook's
// state cannot be an earlier request's.
func readRefusedFraming(ctx *fasthttp.RequestCtx) bool {
	cc, ok := ctx.Conn().(*clientConn)
	return ok && cc.hook.seen && cc.hook.ambiguous && cc.hook.after == ctx.ConnRequestNum()
}

// sentContentTypeTwice reports whether the request being handled had more
// than one Content-Type line (framingFacts.contentTypeTwice). Counted in
// the pass over the header block the hook makes anyway, it costs a route
// that reads a body one look at the hook's state, not a scan of the block.
func sentContentTypeTwice(ctx *fasthttp.RequestCtx) bool {
	hs := handledHook(ctx)
	return hs != nil && hs.contentTypeTwice
}

// longPast is a deadline that has passed: a read under it fails at once.
var longPast = time.Unix(1, 0)

// hostRefused is the detail of the 400 that refuses the request being
// handled for its Host field (see ambiguousFraming), and whether there is
// one: an HTTP/1.1 request without Host, or a Host, or an absolute-form
// target's authority, that is no host, or an absolute-form target of
// another scheme than http and https (targetFault).
func hostRefused(ctx *fasthttp.RequestCtx) (msg, bool) {
	hs := handledHook(ctx)
	if hs == nil {
		return 0, false
	}
	switch hs.host {
	case hostMissing:
		return msgHostRequired, true
	case hostInvalid:
		return msgHostInvalid, true
	case hostScheme:
		return msgSchemeUnsupported, true
	}
	return 0, false
}

// requestLineStatus is the status that refuses a request line fasthttp
// read leniently, 0 when it is sound. fasthttp takes whatever follows the
// request-target's last space for the version and serves anything but
// "HTTP/1.1" as HTTP/1.0 ("HTTP/2.0", "HTTP/0.9", "FOO/1.1", "HTTP/1.1
// junk" alike), and keeps spaces and controls inside the target ("GET /a
// b HTTP/1.1"), and takes whatever comes before the first space for the
// method ("GE\tT", "G(T", "GET\x00"), which the gateway then answered as
// an unknown method (404, or 405 on a route's path). A well-formed version
// of another major number is a 505 (RFC 9112 section 2.3); a malformed
// version or target, or a method that is not a token (RFC 9110 section
// 9.1), is a broken request line, a 400 (RFC 9112 section 3; a parser
// that splits the line on any whitespace, as RFC 9112 lets one do, reads
// "GE\tT /x" as the method GE and the target T). Other minor versions of
// HTTP/1 are served, as fasthttp serves them.
//
// fasthttp also reads a host out of a target that holds "//" after
// anything but a "/" ("foo//x/api/v1/users/me", "a:b//x/...") when the
// request names no host or "://" is anywhere in the target: the host x
// and the path /api/v1/users/me, which a proxy in front matching on paths
// never saw. Such a target is neither a path (origin-form, which
// settleHost keeps a path) nor an absolute URI (scheme "://"): a 400.
func requestLineStatus(h *fasthttp.RequestHeader) int {
	for _, c := range h.Method() { // never empty: fasthttp refuses a line that starts with a space
		if !tokenChars[c] {
			return fasthttp.StatusBadRequest
		}
	}
	uri := h.RequestURI()
	if len(uri) > 0 && uri[0] != '/' && !otherTargetSound(uri) {
		return fasthttp.StatusBadRequest
	}
	for _, c := range uri {
		if c <= ' ' || c == 0x7f {
			return fasthttp.StatusBadRequest
		}
	}
	p := h.Protocol()
	if len(p) != len("HTTP/1.1") || string(p[:5]) != "HTTP/" || !isDigit(p[5]) || p[6] != '.' || !isDigit(p[7]) {
		return fasthttp.StatusBadRequest
	}
	if p[5] != '1' {
		return fasthttp.StatusHTTPVersionNotSupported
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// otherTargetSound reports whether a target that does not start with "/" is
// one fasthttp reads no host out of, or an absolute URI: it holds no "//",
// or it starts with a scheme and "://" (RFC 3986 section 3.1: a letter,
// then letters, digits, "+", "-", ".").
func otherTargetSound(target []byte) bool {
	if !bytes.Contains(target, []byte("//")) {
		return true
	}
	scheme, _, ok := bytes.Cut(target, []byte("://"))
	if !ok || len(scheme) == 0 || !isLetter(scheme[0]) {
		return false
	}
	for _, c := range scheme[1:] {
		if !isLetter(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
