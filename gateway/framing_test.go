package gateway

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestAmbiguousFraming(t *testing.T) {
	for _, c := range []struct {
		raw    string
		http11 bool
		want   bool
	}{
		{"", true, false},
		{"Host: a\r\nContent-Length: 5\r\n\r\n", true, false},
		{"Host: a\r\nTransfer-Encoding: chunked\r\n\r\n", true, false},
		{"Transfer-Encoding:\tCHUNKED \r\n\r\n", true, false},
		{"X-A: caf\xc3\xa9\tb\r\n\r\n", true, false},
		{"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", true, true},
		{"Content-Length: 5\r\ncontent-length: 5\r\n\r\n", true, true},
		{"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", true, true},
		{"Transfer-Encoding: chunked, identity\r\n\r\n", true, true},
		{"Transfer-Encoding: xchunked\r\n\r\n", true, true},
		{"Transfer-Encoding: identity\r\n\r\n", true, true},
		{"Transfer-Encoding: chunked\r\n\r\n", false, true},
		{"Content-Length: 5\r\n\r\n", false, false},
		{"X-A: 1\r\n b\r\n\r\n", true, true},
		{"X-A: 1\nContent-Length: 5\r\n\r\n", true, true},
		{"X-A: 1\rb\r\n\r\n", true, true},
		{"X-A: \x00\r\n\r\n", true, true},
		{"X-A\x0b: 1\r\n\r\n", true, true},
		{"X A: 1\r\n\r\n", true, true},
		{"no colon\r\n\r\n", true, true},
		{"Host: a\r\nHost: b\r\n\r\n", true, true},
		{"Host: a\r\n\n", true, true},
	} {
		if got, _, _ := ambiguousFraming([]byte(c.raw), c.http11); got != c.want {
			t.Errorf("ambiguousFraming(%q, %v) = %v, want %v", c.raw, c.http11, got, c.want)
		}
	}
}

// The pass that looks for ambiguous framing also notes an HTTP/1.1 block
// without Host; an ambiguous block is refused for that, whatever its Host.
func TestAmbiguousFramingNotesMissingHost(t *testing.T) {
	for _, c := range []struct {
		raw    string
		http11 bool
		want   bool
	}{
		{"", true, true},
		{"\r\n", true, true},
		{"X-Host: a\r\nHosts: b\r\n\r\n", true, true},
		{"Host: a\r\n\r\n", true, false},
		{"host: a\r\n\r\n", true, false},
		{"HOST:\r\n\r\n", true, false}, // empty, but present
		{"", false, false},
		{"X-A: 1\r\n\r\n", false, false},
		{"Host: a\r\nHost: b\r\n\r\n", true, false},
		{"X-A: 1\n\r\n", true, false},
	} {
		if _, got, _ := ambiguousFraming([]byte(c.raw), c.http11); (got == hostMissing) != c.want {
			t.Errorf("ambiguousFraming(%q, %v) host = %v, want missing %v", c.raw, c.http11, got, c.want)
		}
	}
}

// The same pass notes a Host whose value is no host, in HTTP/1.0 too; a
// missing Host is noted as missing, a second one makes the block
// ambiguous.
func TestAmbiguousFramingNotesInvalidHost(t *testing.T) {
	for _, c := range []struct {
		raw    string
		http11 bool
		want   hostFault
	}{
		{"Host: a b\r\n\r\n", true, hostInvalid},
		{"Host: a b\r\n\r\n", false, hostInvalid},
		{"X-A: 1\r\nhost:\tx/y \r\nX-B: 2\r\n\r\n", true, hostInvalid},
		{"Host: \t api.example.com:443\t\r\n\r\n", true, hostFine},
		{"Host:\r\n\r\n", false, hostFine},
		{"", false, hostFine},
		{"", true, hostMissing},
		{"Host: a b\r\nHost: b\r\n\r\n", true, hostFine}, // ambiguous
	} {
		if _, got, _ := ambiguousFraming([]byte(c.raw), c.http11); got != c.want {
			t.Errorf("ambiguousFraming(%q, %v) host = %v, want %v", c.raw, c.http11, got, c.want)
		}
	}
}

func TestValidHost(t *testing.T) {
	for _, h := range []string{
		"", "a", "gw", "API.Example.com", "api.example.com:443", "127.0.0.1", "127.0.0.1:8080", "x:", ":80",
		"[::1]", "[::1]:8080", "[2001:DB8::1]", "[::ffff:192.0.2.1]:1", "[::]", "[1::]", "[1:2:3:4:5:6:7:8]",
		"[1:2:3:4:5:6:1.2.3.4]", "[::1.2.3.4]:80", "xn--caf-dma.example", "a_b.local",
		"a-b~c!$&'()*+,;=", "999.999.999.999", " \tgw\t ", " ",
	} {
		if !validHost([]byte(h)) {
			t.Errorf("validHost(%q) = false, want true", h)
		}
	}
	for _, h := range []string{
		"a\tb", "a b", "x/y", "x?y", "x#y", "user@x", "x\\y", "a%20b", "caf\xc3\xa9", "x:80:90", "a:b", "x:-1", "x:80a",
		"[::1", "[]", "[::1]x", "[::1]:b", "[fe80::1%25en0]", "[::g]", "[v1.x]", "::1", "x\"", "<x>", "x\x00",
		// Brackets around no IPv6 address (RFC 3986 IPv6address).
		"[1]", "[:]", "[1.2.3.4]", "[1.2.3.4]:80", "[::1.2.3]", "[::01.2.3.4]", "[1:2:3:4:5:6:7:8:9]", "[12345::]",
		"[1::2::3]", "[:::]", "[1:2:3:4:5:6:7]", "[" + strings.Repeat("0", 60) + "::]",
	} {
		if validHost([]byte(h)) {
			t.Errorf("validHost(%q) = true, want false", h)
		}
	}
}

// The byte tables hold their RFC's characters and no other byte (none of
// 0x80 and above either).
func TestCharTables(t *testing.T) {
	const alphanumeric = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for c := range 256 {
		if want := strings.IndexByte(alphanumeric+"!#$%&'*+-.^_`|~", byte(c)) >= 0; tokenChars[c] != want {
			t.Errorf("tokenChars[%#x] = %v, want %v", c, tokenChars[c], want)
		}
		if want := strings.IndexByte(alphanumeric+"-._~!$&'()*+,;=", byte(c)) >= 0; hostChars[c] != want {
			t.Errorf("hostChars[%#x] = %v, want %v", c, hostChars[c], want)
		}
	}
}

func TestTargetFault(t *testing.T) {
	for target, want := range map[string]hostFault{
		"http://gw/api/v1/users/me": hostFine, "https://gw:443?x": hostFine, "http://[::1]:8080/": hostFine, "http://gw": hostFine,
		"HTTP://GW/api": hostFine, "hTTpS://gw/api": hostFine,
		"*": hostFine, "gw:443": hostFine, "x/api/v1/users/me": hostFine, "x:/api/v1/users/me": hostFine,
		"http://x:abc/api/v1/users/me": hostInvalid, "http://user@gw/api": hostInvalid, "http://x:80:90/": hostInvalid,
		"http://[1]/api/v1/users/me": hostInvalid, "http://[1.2.3.4]:80/": hostInvalid, "http://[:]?x": hostInvalid,
		"http://[::1/": hostInvalid, "http://a%20b/": hostInvalid, "http://x#y/api": hostInvalid,
		"http:///api/v1/users/me": hostInvalid, "http://:80/api": hostInvalid, "https://?x": hostInvalid, "http://": hostInvalid,
		"x://gw/api/v1/users/me": hostScheme, "ftp://gw/api/v1/users/me": hostScheme, "FTP://gw/api": hostScheme,
		"httpx://gw/api": hostScheme, "http+s://gw/api": hostScheme, "ws://gw/api": hostScheme, "ftp://user@gw/api": hostScheme,
		"svn+ssh.x-1://gw/api": hostScheme,
	} {
		if got := targetFault([]byte(target)); got != want {
			t.Errorf("targetFault(%q) = %v, want %v", target, got, want)
		}
	}
}

func TestAmbiguousFramingHearsContinue(t *testing.T) {
	for raw, want := range map[string]bool{
		"Expect: 100-continue\r\n\r\n": true, "expect:100-Continue\r\n\r\n": true, "Expect: 100-CONTINUE \t\r\n\r\n": true,
		"Expect: 100-continue, x\r\n\r\n": true, "Expect: x,100-Continue\r\n\r\n": true,
		"Expect: 100-Continue\r\nExpect: x\r\n\r\n": true, "Expect: x\r\nExpect: 100-continue\r\n\r\n": true, "Expect: x\r\n\r\n": false,
		"Expect: 200-continue\r\n\r\n": false, "Expects: 100-continue\r\n\r\n": false, "": false,
	} {
		if _, _, facts := ambiguousFraming([]byte(raw), true); facts.expectsContinue != want {
			t.Errorf("ambiguousFraming(%q) expectsContinue = %v, want %v", raw, facts.expectsContinue, want)
		}
	}
}

// Content-Type lines are counted by name in any case, and only they: two
// are refused on the username check, one (or one beside a look-alike) is
// fine.
func TestAmbiguousFramingCountsContentTypes(t *testing.T) {
	for raw, want := range map[string]bool{
		"Content-Type: application/json\r\n\r\n": false, "": false,
		"Content-Type: text/plain\r\ncontent-type: application/json\r\n\r\n":                                         true,
		"CONTENT-TYPE: application/json\r\nX-A: 1\r\nContent-Type: application/json\r\n\r\n":                         true,
		"Content-Type:\r\nContent-Type: application/json\r\n\r\n":                                                    true,
		"Content-Type: application/json\r\nContent-Typo: text/plain\r\nX-Content-Type: x\r\nX-Request-Id: 1\r\n\r\n": false,
	} {
		if _, _, facts := ambiguousFraming([]byte(raw), true); facts.contentTypeTwice != want {
			t.Errorf("ambiguousFraming(%q) contentTypeTwice = %v, want %v", raw, facts.contentTypeTwice, want)
		}
	}
}

func TestLists(t *testing.T) {
	for v, want := range map[string]bool{
		"close": true, "Close": true, "CLOSE": true, "keep-alive, close": true, "TE,close": true,
		" close ": true, "close,": true, "\tclose\t, x": true,
		"": false, "keep-alive": false, "closed": false, "x-close": false, "clo se": false, ",,": false,
	} {
		if got := lists([]byte(v), "close"); got != want {
			t.Errorf("lists(%q, close) = %v, want %v", v, got, want)
		}
	}
}

// An app's header block: a JWT of ~800 bytes and the client context.
var appHeaderBlock = []byte("Host: api.example.com\r\nAuthorization: Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0." +
	strings.Repeat("eyJzdWIiOiIxMjM0NTY3ODkwIiwicm9sZXMiOlsidXNlciJdfQ", 10) + ".c2lnbmF0dXJl" + strings.Repeat("QUJD", 60) +
	"\r\nX-Language: tr\r\nX-Platform: ios\r\nX-App-Version: 4.2.0\r\nX-Device-Id: 8c1f3e0a-5b7d-4c2e-9f1a-2b3c4d5e6f70\r\n" +
	"X-Timezone: Europe/Istanbul\r\nAccept: application/json\r\nUser-Agent: App/4.2.0 (iPhone; iOS 18.1)\r\n\r\n")

func BenchmarkAmbiguousFraming(b *testing.B) {
	b.SetBytes(int64(len(appHeaderBlock)))
	for b.Loop() {
		if ambiguous, host, facts := ambiguousFraming(appHeaderBlock, true); ambiguous || host != hostFine || facts != (framingFacts{}) {
			b.Fatal("refused an app's header block")
		}
	}
}

// hasControl looks at eight bytes at a time: it must find every control
// byte at every position, and pass every other byte, as a byte loop does.
func TestHasControlMatchesByteLoop(t *testing.T) {
	byteLoop := func(b []byte) bool {
		for _, c := range b {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return true
			}
		}
		return false
	}
	for n := 0; n <= 70; n++ {
		for _, fill := range []byte{'a', ' ', '\t', 0x80, 0xff, 0x7e} {
			b := bytes.Repeat([]byte{fill}, n)
			if got, want := hasControl(b), byteLoop(b); got != want {
				t.Fatalf("hasControl(%d × %#x) = %v, want %v", n, fill, got, want)
			}
			for i := 0; i < n; i++ {
				for c := 0; c < 256; c++ {
					b[i] = byte(c)
					if got, want := hasControl(b), byteLoop(b); got != want {
						t.Fatalf("hasControl with %#x at %d of %d × %#x = %v, want %v", c, i, n, fill, got, want)
					}
				}
				b[i] = fill
			}
		}
	}
}

// The request-line check runs on every request: an app's search, the
// longest target the apps send.
func BenchmarkRequestLineStatus(b *testing.B) {
	var h fasthttp.RequestHeader
	if err := h.Read(bufio.NewReader(strings.NewReader("GET /api/v2/users/search?query=sukru&page=1&limit=20 HTTP/1.1\r\nHost: gateway\r\n\r\n"))); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if requestLineStatus(&h) != 0 {
			b.Fatal("refused an app's request line")
		}
	}
}

// FuzzHasControl: the eight-bytes-at-a-time scan finds a control byte
// (but HTAB) exactly when a byte loop does, for any header value.
func FuzzHasControl(f *testing.F) {
	for _, s := range []string{"", "plain value", "tab\there", "nul\x00", "del\x7f", "cr\r", "lf\n", "\x80\xff\xfe obs-text",
		strings.Repeat("a", 31) + "\x1f", strings.Repeat("\x7e", 40) + "\x7f", strings.Repeat("\x20\x80", 33), strings.Repeat("\t", 64) + "\x00",
		"\x9f\xa0\xff\x7e\x1f\x20\x21\x60", "seven b\x7f", strings.Repeat("x", 20) + "\x7f" + strings.Repeat("\x80", 11), strings.Repeat("\xe0", 8) + "\x01" + strings.Repeat("\xff", 23)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := false
		for _, c := range b {
			if c < 0x20 && c != '\t' || c == 0x7f {
				want = true
				break
			}
		}
		if got := hasControl(b); got != want {
			t.Fatalf("hasControl(%q) = %v, want %v", b, got, want)
		}
	})
}

// FuzzAmbiguousFraming compares ambiguousFraming with a plain reading of
// RFC 9112 written here, line by line: every header line ends in CRLF
// (RFC 9112 section 2.2: no bare LF), is field-name ":" field-value with
// the name a token and the value free of controls but HTAB (section 5,
// RFC 9110 section 5.5; obs-fold is a line that does not start with a
// token), and the block ends at the first empty line. On the lines so
// read, the rules the file's comment gives: one Content-Length at most,
// one Transfer-Encoding at most and only "chunked", not both, no
// Transfer-Encoding in HTTP/1.0, one Host at most; a sound block's Host
// whose value is not uri-host [":" port] (RFC 3986 section 3.2.2, as a
// regular expression, without percent-encoding or IPvFuture) is noted, as
// is a sound HTTP/1.1 block without Host; Connection lists close, Expect
// (the last one) is 100-continue.
func FuzzAmbiguousFraming(f *testing.F) {
	for _, s := range []string{
		"", "\r\n", "Host: a\r\n\r\n", "Host: a\r\nContent-Length: 5\r\n\r\n",
		"Host: a\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding:\tCHUNKED \r\n\r\n",
		"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "Content-Length: 5\r\ncontent-length: 5\r\n\r\n",
		"Transfer-Encoding: chunked, identity\r\n\r\n", "X-A: 1\r\n b\r\n\r\n", "X-A: 1\nContent-Length: 5\r\n\r\n",
		"X-A: 1\rb\r\n\r\n", "X-A: \x00\r\n\r\n", "X A: 1\r\n\r\n", "no colon\r\n\r\n", "Host: a\r\nHost: b\r\n\r\n",
		"Host: a\r\n\n", "Host: a\r\n", "Connection: keep-alive, Close\r\nExpect: 100-Continue\r\n\r\n",
		"Expect: 100-continue\r\nExpect: x\r\n\r\n", "Host: a\r\n\r\nTransfer-Encoding: x\n", "X-A: caf\xc3\xa9\x7f\r\n\r\n",
		"Host: a b\r\n\r\n", "Host: [::1]:80\r\n\r\n", "Host: [::1\r\n\r\n", "Host: [1]\r\n\r\n", "Host: [::ffff:1.2.3.4]\r\n\r\n", "host: \tx:\t\r\n\r\n", "Host: u@x:1:2\r\n\r\n",
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, raw []byte, http11 bool) {
		in := string(raw)
		ambiguous, host, facts := ambiguousFraming(raw, http11)
		if in != string(raw) {
			t.Fatalf("ambiguousFraming changed its input")
		}
		want, wantHost, wantFacts := rfc9112Framing(in, http11)
		if ambiguous != want {
			t.Fatalf("ambiguousFraming(%q, %v) = %v, RFC 9112 reading says %v", in, http11, ambiguous, want)
		}
		if want {
			if host != hostFine {
				t.Fatalf("ambiguousFraming(%q, %v): an ambiguous block's Host noted as %v", in, http11, host)
			}
			return
		}
		if host != wantHost || facts != wantFacts {
			t.Fatalf("ambiguousFraming(%q, %v) host %v facts %+v, RFC 9112 reading says %v %+v", in, http11, host, facts, wantHost, wantFacts)
		}
	})
}

// asciiLower lowers A to Z only: field names and the tokens of
// Transfer-Encoding, Connection and Expect compare case-insensitively in
// ASCII (RFC 9110 section 5.1, 7.6.1, 10.1.1, RFC 9112 section 7).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// rfc9112Framing is the oracle of FuzzAmbiguousFraming.
func rfc9112Framing(raw string, http11 bool) (ambiguous bool, host hostFault, facts framingFacts) {
	const tchar = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	counts := map[string]int{}
	badHost := false
	for raw != "" {
		line, rest, found := strings.Cut(raw, "\n")
		if !found || !strings.HasSuffix(line, "\r") {
			return true, hostFine, framingFacts{} // no CRLF at the end of the line
		}
		line, raw = strings.TrimSuffix(line, "\r"), rest
		if line == "" {
			break
		}
		name, value, found := strings.Cut(line, ":")
		if !found || name == "" || strings.Trim(name, tchar) != "" {
			return true, hostFine, framingFacts{}
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; c != '\t' && (c < ' ' || c == 0x7f) {
				return true, hostFine, framingFacts{}
			}
		}
		name, value = asciiLower(name), asciiLower(strings.Trim(value, " \t"))
		counts[name]++
		switch name {
		case "transfer-encoding":
			if value != "chunked" {
				return true, hostFine, framingFacts{}
			}
		case "connection":
			for _, opt := range strings.Split(value, ",") {
				if strings.Trim(opt, " \t") == "close" {
					facts.closeAsked = true
				}
			}
		case "expect":
			facts.expects = true
			for _, e := range strings.Split(value, ",") {
				if strings.Trim(e, " \t") == "100-continue" {
					facts.expectsContinue = true
				}
			}
		case "host":
			badHost = !rfc3986Host.MatchString(value)
		}
	}
	cl, te, hosts := counts["content-length"], counts["transfer-encoding"], counts["host"]
	if cl > 1 || te > 1 || cl == 1 && te == 1 || te == 1 && !http11 || hosts > 1 {
		return true, hostFine, framingFacts{}
	}
	switch {
	case badHost:
		return false, hostInvalid, facts
	case http11 && hosts == 0:
		return false, hostMissing, facts
	}
	return false, hostFine, facts
}

var rfc3986Host = regexp.MustCompile(`^(\[` + rfc3986IPv6 + `\]|[A-Za-z0-9._~!$&'()*+,;=-]*)(:[0-9]*)?$`)

// rfc3986IPv6 is RFC 3986's IPv6address, its nine forms as the ABNF of
// section 3.2.2 writes them.
var rfc3986IPv6 = func() string {
	const (
		h16  = `[0-9A-Fa-f]{1,4}`
		dec  = `(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])`
		ls32 = `(` + h16 + `:` + h16 + `|` + dec + `\.` + dec + `\.` + dec + `\.` + dec + `)`
	)
	upTo := func(n string) string { return `((` + h16 + `:){0,` + n + `}` + h16 + `)?::` }
	return `(` + strings.Join([]string{
		`(` + h16 + `:){6}` + ls32,
		`::(` + h16 + `:){5}` + ls32,
		`(` + h16 + `)?::(` + h16 + `:){4}` + ls32,
		upTo("1") + `(` + h16 + `:){3}` + ls32,
		upTo("2") + `(` + h16 + `:){2}` + ls32,
		upTo("3") + h16 + `:` + ls32,
		upTo("4") + ls32,
		upTo("5") + h16,
		upTo("6"),
	}, `|`) + `)`
}()

// A target that does not start with "/" is refused when fasthttp would
// read a host out of it that it does not name as an absolute URI does.
func TestRequestLineStatusHostInTarget(t *testing.T) {
	for _, c := range []struct {
		target string
		want   int
	}{
		{"foo//x/api/v1/users/me", fasthttp.StatusBadRequest},
		{"foo//x/api/v1/users/me?next=https://y", fasthttp.StatusBadRequest},
		{"a:b//x/api/v1/users/me", fasthttp.StatusBadRequest},
		{"1http://x/api/v1/users/me", fasthttp.StatusBadRequest},
		{"://x/api/v1/users/me", fasthttp.StatusBadRequest},
		{"http:/x//api", fasthttp.StatusBadRequest},
		{"http://gw/api/v1/users/me", 0},
		{"HTTP://GW/api/v1/users/me?next=https://y", 0},
		{"svn+ssh.x-1://gw/api", 0},
		{"*", 0},
		{"gw:443", 0},
		{"x/api/v1/users/me", 0},
		{"/api/v1/users/me?next=https://y", 0},
		{"//x/api/v1/users/me", 0}, // a path (settleHost)
	} {
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader("GET " + c.target + " HTTP/1.1\r\nHost: gw\r\n\r\n"))); err != nil {
			t.Fatalf("%q: %v", c.target, err)
		}
		if got := requestLineStatus(&h); got != c.want {
			t.Errorf("%q: %d, want %d", c.target, got, c.want)
		}
	}
}

// validHost runs on every request with a Host: an app's name (the common
// case, no bracket) and, for the rare bracketed one, an IPv6 address.
func BenchmarkValidHost(b *testing.B) {
	for _, host := range []string{"api.example.com", "[2001:db8::1]:8443"} {
		b.Run(host, func(b *testing.B) {
			v := []byte(host)
			b.ReportAllocs()
			for b.Loop() {
				if !validHost(v) {
					b.Fatal("refused a host")
				}
			}
		})
	}
}

// ipv6Literal agrees with RFC 3986's IPv6address on strings built of the
// pieces an address is made of, in any order (a fixed seed: the same
// strings every run).
func TestIPv6LiteralMatchesRFC3986(t *testing.T) {
	pieces := []string{"1", "0", "ffff", "FfFf", "12345", "g", ":", "::", ":::", ".", "1.2.3.4", "255.255.255.255",
		"256.1.1.1", "01.2.3.4", "1.2.3", "%25en0", "v1"}
	ipv6 := regexp.MustCompile(`^` + rfc3986IPv6 + `$`)
	rng := rand.New(rand.NewPCG(1, 2))
	valid := 0
	for range 200_000 {
		var b strings.Builder
		for n := 1 + rng.IntN(16); n > 0; n-- {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s := b.String()
		want := ipv6.MatchString(s)
		if got := ipv6Literal([]byte(s)); got != want {
			t.Fatalf("ipv6Literal(%q) = %v, RFC 3986 says %v", s, got, want)
		}
		if want {
			valid++
		}
	}
	if valid < 1000 {
		t.Fatalf("only %d of the strings were addresses: the test looks at too few", valid)
	}
}

// A method is a token (RFC 9110 section 9.1); any other is a broken
// request line, whatever the method's name.
func TestRequestLineStatusMethod(t *testing.T) {
	for method, want := range map[string]int{
		"GET": 0, "BREW": 0, "get": 0, "M-SEARCH": 0, "X!#$%&'*+-.^_`|~9": 0,
		"GE\tT": fasthttp.StatusBadRequest, "G(T": fasthttp.StatusBadRequest, "GET\x00": fasthttp.StatusBadRequest,
		"G\xc3\x89T": fasthttp.StatusBadRequest, "GET\x7f": fasthttp.StatusBadRequest, "G,T": fasthttp.StatusBadRequest,
		"G:T": fasthttp.StatusBadRequest, "\"GET\"": fasthttp.StatusBadRequest,
	} {
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader(method + " /api/v1/users/me HTTP/1.1\r\nHost: gw\r\n\r\n"))); err != nil {
			t.Fatalf("%q: %v", method, err)
		}
		if got := requestLineStatus(&h); got != want {
			t.Errorf("%q: %d, want %d", method, got, want)
		}
	}
}

// The longest IPv6 address RFC 3986 writes (six full groups and an IPv4
// address, 45 characters) is one: the length bound that spares netip
// what cannot be an address stops at it, not before.
func TestIPv6LiteralLongestAddress(t *testing.T) {
	for _, a := range []string{
		"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
		"FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF",
	} {
		if !ipv6Literal([]byte(a)) {
			t.Errorf("ipv6Literal(%q) = false, want true", a)
		}
		if host := "[" + a + "]:8443"; !validHost([]byte(host)) {
			t.Errorf("validHost(%q) = false, want true", host)
		}
	}
	if a := "0ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"; ipv6Literal([]byte(a)) {
		t.Errorf("ipv6Literal(%q) = true, want false", a)
	}
}

// The version is "HTTP/", a digit, "." and a digit (RFC 9112 section
// 2.3); another major version is a 505, anything else a broken request
// line, whichever of its bytes is wrong.
func TestRequestLineStatusVersion(t *testing.T) {
	for version, want := range map[string]int{
		"HTTP/1.1": 0, "HTTP/1.0": 0, "HTTP/1.2": 0, "HTTP/1.9": 0,
		"HTTP/2.0": fasthttp.StatusHTTPVersionNotSupported, "HTTP/0.9": fasthttp.StatusHTTPVersionNotSupported,
		"HTTP/1.x": fasthttp.StatusBadRequest, "HTTP/x.1": fasthttp.StatusBadRequest, "HTTP/1,1": fasthttp.StatusBadRequest,
		"HTTP/1.": fasthttp.StatusBadRequest, "HTTP/1.10": fasthttp.StatusBadRequest, "HTTQ/1.1": fasthttp.StatusBadRequest,
		"http/1.1": fasthttp.StatusBadRequest,
	} {
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader("GET /api/v1/users/me " + version + "\r\nHost: gw\r\n\r\n"))); err != nil {
			t.Fatalf("%q: %v", version, err)
		}
		if got := requestLineStatus(&h); got != want {
			t.Errorf("%q: %d, want %d", version, got, want)
		}
	}
}
