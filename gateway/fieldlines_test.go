package gateway

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// partsExchange writes parts on a new connection to the rig, a pause
// between them (each is its own read at the gateway), and reads the answers
// until the connection is closed or stays quiet for wait, as rawExchange.
func partsExchange(t *testing.T, r *mixRig, parts []string, wait time.Duration) (answers []edgeAnswer, closed bool) {
	t.Helper()
	conn := sendRaw(t, r, parts[0])
	defer conn.Close()
	for _, p := range parts[1:] {
		time.Sleep(150 * time.Millisecond)
		if _, err := io.WriteString(conn, p); err != nil {
			t.Fatal(err)
		}
	}
	return readAnswers(conn, wait)
}

// A folded field line and a field line without a colon are refused at
// once (400, in English: the block did not parse; the connection closed),
// however the block arrives. fasthttp unfolds a fold in its read buffer as
// it parses, and when the block does not parse yet (cut between reads, or
// a fold of spaces only, which leaves a line without a colon behind) it
// parsed the rewritten buffer later: the fold gone, so not refused, and
// the buffer's last bytes copied after the block. A body ending in a
// request line came out as a second request the client never sent,
// answered once the read timeout had passed (request smuggling behind a
// proxy that passes folds on); a fold cut between reads was served; a
// colonless last line was a 408 after the read timeout.
func TestFoldedAndColonlessFieldLinesAreRefusedAtOnce(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	me := "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok + "\r\n"
	smuggled := "GET /api/v1/users/me/ HTTP/1.0\r\n\r\n" // 34 bytes: the copy 17 folds leave
	body := "xxxxx" + smuggled
	withBody := me + "Content-Length: " + strconv.Itoa(len(body)) + "\r\nX-A: 1\r\n" + strings.Repeat(" \r\n", len(smuggled)/2) + "\r\n" + body
	for _, c := range []struct {
		name  string
		parts []string
	}{
		{"folds of spaces, a request at the body's end", []string{withBody}},
		// A fold's space read alone, its CRLF after it, is no blank line.
		{"folds of spaces, the first one's space a read alone", []string{withBody[:strings.Index(withBody, " \r\n")], " ", withBody[strings.Index(withBody, " \r\n")+1:]}},
		{"a fold of one space, last", []string{me + "X-A: 1\r\n \r\n\r\n"}},
		{"a fold, the block cut after it", []string{me + "X-A: 1\r\n x\r\n", "X-B: 2\r\n\r\n"}},
		{"a fold of one tab, the block cut after it", []string{me + "X-A: 1\r\n\t\r\n", "\r\n"}},
		{"a field line without a colon, last", []string{me + "no colon\r\n\r\n"}},
		{"a field line without a colon, the block cut after it", []string{me + "nocolon\r\n", "\r\n"}},
		// A CR that does not end a line is no blank line: the line is one
		// without a colon.
		{"a line of a CR and a CRLF", []string{me + "X-A: 1\r\n\r\r\n\r\n"}},
		{"a line of a CR and a CRLF, the block cut before it", []string{me + "X-A: 1\r\n", "\r\r\n\r\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, closed := partsExchange(t, r, c.parts, 3*time.Second)
			if len(answers) != 1 || !closed {
				statuses := make([]int, len(answers))
				for i, a := range answers {
					statuses[i] = a.status
				}
				t.Fatalf("answers %v (closed %v), want one 400 and the connection closed", statuses, closed)
			}
			edgeFailure(t, answers[0], http.StatusBadRequest, "Validation failed")
		})
	}
}

// What the line checks must leave alone: a header block cut anywhere
// between reads, blank lines before a request line, and a body whose
// lines begin with spaces (pretty-printed JSON), also with a request
// pipelined behind it.
func TestFieldLineChecksLeaveSoundRequestsAlone(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	me := "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
	pretty := "{\r\n  \"username\":\r\n\t\"abcdef\"\r\n}\r\n"
	check := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(pretty)) + "\r\n\r\n" + pretty
	next := "GET /nosuch HTTP/1.1\r\nHost: gw\r\n\r\n"
	for _, c := range []struct {
		name  string
		parts []string
		want  []int
	}{
		{"one read", []string{me + next}, []int{200, 404}},
		{"cut in a line", []string{me[:40], me[40:] + next}, []int{200, 404}},
		{"cut after a line", []string{me[:strings.Index(me, "X-Language")], me[strings.Index(me, "X-Language"):], next}, []int{200, 404}},
		{"cut in the blank line", []string{me[:len(me)-1], me[len(me)-1:] + next}, []int{200, 404}},
		{"blank lines first", []string{"\r\n\r\n" + me, "\r\n" + next}, []int{200, 404}},
		{"a body of indented lines", []string{check + next}, []int{200, 404}},
		{"a body of indented lines, in pieces", []string{check[:len(check)-len(pretty)+3], check[len(check)-len(pretty)+3:], next}, []int{200, 404}},
		{"after a body of indented lines", []string{check + check, next}, []int{200, 200, 404}},
		{"pipelined, its block cut before its blank line", []string{check + check[:len(check)-len(pretty)-2], check[len(check)-len(pretty)-2:], next}, []int{200, 200, 404}},
		{"pipelined, its block cut in a line", []string{check + check[:len(check)-len(pretty)-8], check[len(check)-len(pretty)-8:], next}, []int{200, 200, 404}},
		// The second block was read with the first request: its body, in a
		// read of its own, is not looked at either.
		{"a body of indented lines, pipelined, in a read of its own", []string{check + check[:len(check)-len(pretty)], pretty, next}, []int{200, 200, 404}},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, closed := partsExchange(t, r, c.parts, 700*time.Millisecond)
			if closed || len(answers) != len(c.want) {
				t.Fatalf("%d answers (closed %v), want %v on a kept connection", len(answers), closed, c.want)
			}
			for i, a := range answers {
				if a.status != c.want[i] {
					t.Fatalf("answer %d: %d, want %d: %s", i, a.status, c.want[i], a.body)
				}
			}
		})
	}
}

// scanHead reads the same lines however a block is cut between reads: at
// every cut, and a byte a read, a sound block ends the look at its blank
// line, unmarked, and a fold or a colonless field line marks it.
func TestScanHeadAnyCut(t *testing.T) {
	for _, c := range []struct {
		block string
		bad   bool
	}{
		{"\r\n\nGET /a HTTP/1.1\r\nHost: x\r\nX-A:\r\nX-B: b:c\r\n\r\n", false},
		{"GET /a?x=1:2 HTTP/1.0\r\n\r\n", false},
		{"GET /a HTTP/1.1\nHost: x\n\n", false},
		{"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n \r\n\r\n", true},
		{"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tb\r\n\r\n", true},
		// A fold is marked by its first byte, a colon after it or not.
		{"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tb: c\r\n\r\n", true},
		{"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n b: c\r\nX-B: 2\r\n\r\n", true},
		{"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\r\n\r\n", true},
		{"GET /a HTTP/1.1\r\n x: 1\r\n\r\n", true},
		{"GET /a HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", true},
		{"GET /a HTTP/1.1\r\nnocolon\n\r\n", true},
	} {
		reads := [][]string{{c.block}, {}}
		for _, b := range []byte(c.block) {
			reads[1] = append(reads[1], string(b))
		}
		for i := 1; i < len(c.block); i++ {
			reads = append(reads, []string{c.block[:i], c.block[i:]})
		}
		for _, rs := range reads {
			var cc clientConn
			for _, r := range rs {
				cc.scanHead([]byte(r))
			}
			if cc.badLine != c.bad || cc.head != headDone {
				t.Fatalf("%q read as %q: marked %v, head %d; want marked %v, head %d", c.block, rs, cc.badLine, cc.head, c.bad, headDone)
			}
		}
		// What follows the block (a body) is not looked at.
		var cc clientConn
		cc.scanHead([]byte(c.block + "  indented\r\nno colon\r\n"))
		if cc.badLine != c.bad {
			t.Fatalf("%q with a body: marked %v, want %v", c.block, cc.badLine, c.bad)
		}
	}
}

// The lines are looked at in every header block of a connection, not only
// its first: after a sound request, a fold or a colonless line is refused
// at once too (not a 408 after the read timeout, nor, for folds of spaces,
// a request taken from the body).
func TestFieldLineChecksCoverEveryRequestOfAConnection(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	me := "GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + tok + "\r\n"
	smuggled := "GET /api/v1/users/me/ HTTP/1.0\r\n\r\n"
	body := "xxxxx" + smuggled
	withBody := me + "Content-Length: " + strconv.Itoa(len(body)) + "\r\nX-A: 1\r\n" + strings.Repeat(" \r\n", len(smuggled)/2) + "\r\n" + body
	for _, c := range []struct {
		name  string
		parts []string
	}{
		{"folds of spaces, a request at the body's end", []string{me + "\r\n", withBody}},
		{"a field line without a colon, last", []string{me + "\r\n", me + "no colon\r\n\r\n"}},
		{"after a request with a body", []string{me + "Content-Length: 2\r\n\r\n{}", me + "nocolon\r\n", "\r\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, closed := partsExchange(t, r, c.parts, 3*time.Second)
			if len(answers) != 2 || !closed || answers[0].status != http.StatusOK {
				statuses := make([]int, len(answers))
				for i, a := range answers {
					statuses[i] = a.status
				}
				t.Fatalf("answers %v (closed %v), want a 200, a 400 and the connection closed", statuses, closed)
			}
			edgeFailure(t, answers[1], http.StatusBadRequest, "Validation failed")
		})
	}
}

// A chunked body's trailer section that holds a line without a colon or
// begins with a fold is refused at once (400, in the caller's language:
// the header block was read and held), however it arrives. fasthttp waits
// for more on such a section, as on a header block, until the read
// timeout: the request, received whole, was a 408 ten seconds later. So
// was a chunk-size line fasthttp reads as the last chunk ("0x19": a size
// of 0 and an extension), whose data and last chunk then came as the
// trailer section.
func TestMalformedTrailerSectionsAreRefusedAtOnce(t *testing.T) {
	r := newMixRig(t)
	tok := r.token(t, r.users(t, 1)[0])
	head := "POST /api/v1/users/check-username HTTP/1.1\r\nHost: gw\r\nX-Language: tr\r\nAuthorization: Bearer " + tok +
		"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-Request-Id: trailer-1\r\n\r\n"
	body := `{"username":"abcdef"}`
	chunk := strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n"
	for _, c := range []struct {
		name  string
		parts []string
	}{
		{"a line without a colon", []string{head + chunk + "0\r\nnocolon\r\n\r\n"}},
		{"a line without a colon after a field", []string{head + chunk + "0\r\nX-A: 1\r\nno colon\r\n\r\n"}},
		{"a fold first", []string{head + chunk + "0\r\n folded\r\n\r\n"}},
		{"a line without a colon, in a read of its own", []string{head + chunk + "0\r\n", "nocolon\r\n\r\n"}},
		{"a line without a colon, the body in reads of its own", []string{head, chunk[:5], chunk[5:] + "0\r", "\nnocolon\r\n", "\r\n"}},
		{"the data read as the trailer section", []string{head + "0x" + chunk + "0\r\n\r\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, closed := partsExchange(t, r, c.parts, 3*time.Second)
			if len(answers) != 1 || !closed {
				t.Fatalf("%d answers (closed %v), want one 400 and the connection closed", len(answers), closed)
			}
			edgeFailure(t, answers[0], http.StatusBadRequest, "Doğrulama başarısız oldu")
			if id := answers[0].header.Get("X-Request-Id"); id != "trailer-1" {
				t.Fatalf("X-Request-Id %q, want the client's", id)
			}
		})
	}
}

// scanChunks follows a chunked body as fasthttp reads it however it is cut
// between reads: data lines without colons, indented ones and chunk-size
// lines fasthttp reads leniently are no trailer section, and a trailer
// section's fold or colonless line marks it.
func TestScanChunksAnyCut(t *testing.T) {
	pretty := "{\r\n  \"username\":\r\n\t\"abcdef\"\r\nno colon\r\n}"
	sized := func(s string) string { return strconv.FormatInt(int64(len(s)), 16) + "\r\n" + s + "\r\n" }
	for _, c := range []struct {
		body string
		bad  bool
	}{
		{sized(pretty) + "0\r\n\r\n", false},
		{sized(pretty[:9]) + sized(pretty[9:]) + "0\r\n\r\n", false},
		{strings.ToUpper(sized(pretty+strings.Repeat("x", 200))) + "000\r\n\r\n", false},
		{strings.Replace(sized(pretty), "\r\n", ";a=b\r\n", 1) + "0;c\r\n\r\n", false},
		{strings.Replace(sized(pretty), "\r\n", "zz\r\n", 1) + "0\r\n\r\n", false},
		{strings.Replace(sized(pretty), "\r\n", ";\nx\r\n", 1) + "0\r\n\r\n", false},
		{sized(pretty) + "0\r\nX-A: 1\r\n b\r\n\r\n", true},
		{sized(pretty) + "0\r\nX-A: 1\r\n\r\n", false},
		{sized(pretty) + "0\r\n0\r\n\r\n", false}, // fasthttp skips the second "0\r\n"
		{sized(pretty) + "0\r\nnocolon\r\n\r\n", true},
		{sized(pretty) + "0\r\nX-A: 1\r\nno colon\r\n\r\n", true},
		{sized(pretty) + "0\r\n\tx\r\n\r\n", true},
		{"0x" + sized(pretty) + "0\r\n\r\n", true},
		// After the skipped "0\r\n", the section itself.
		{sized(pretty) + "0\r\n0\r\nnocolon\r\n\r\n", true},
		// Sizes with letters, in either case, and a chunk's size of
		// fifteen digits after a chunk's of one: the data is followed to
		// the trailer section.
		{strings.ToUpper(sized(pretty+strings.Repeat("x", 200))) + "0\r\nnocolon\r\n\r\n", true},
		{sized(strings.Repeat("y", 26)) + "0\r\nnocolon\r\n\r\n", true},
		{sized("x") + "00000000000001a\r\n" + strings.Repeat("y", 26) + "\r\n0\r\nnocolon\r\n\r\n", true},
	} {
		reads := [][]string{{c.body}, {}}
		for _, b := range []byte(c.body) {
			reads[1] = append(reads[1], string(b))
		}
		for i := 1; i < len(c.body); i++ {
			reads = append(reads, []string{c.body[:i], c.body[i:]})
		}
		for _, rs := range reads {
			cc := clientConn{head: headDone}
			cc.lookAtChunks()
			for _, r := range rs {
				if cc.head != headDone {
					cc.scanHead([]byte(r))
				} else {
					cc.scanChunks([]byte(r))
				}
			}
			if cc.badLine != c.bad || cc.head != headDone || cc.chunks != chunkOff {
				t.Fatalf("%q read as %q: marked %v, head %d, chunks %d; want marked %v, head %d, chunks %d",
					c.body, rs, cc.badLine, cc.head, cc.chunks, c.bad, headDone, chunkOff)
			}
		}
	}
}

// scanChunks stops where fasthttp refuses a chunked body at once (a size
// that is no hex number or longer than 15 digits, a CR not followed by an
// LF): what follows is no trailer section, and is not looked at. A look
// that went on would take the refused body's bytes for one and could mark
// the connection for them. Fifteen digits are still a size.
func TestScanChunksStopsWhereFasthttpRefusesTheBody(t *testing.T) {
	const after = "\r\n0\r\nnocolon\r\n\r\n" // marks the connection if looked at as chunks
	for _, c := range []struct {
		body string
		bad  bool
	}{
		{"x" + after, false},                                    // no digit
		{";" + after, false},                                    // an extension without a size
		{strings.Repeat("0", 16) + after, false},                // a digit past maxHexIntChars
		{strings.Repeat("0", 15) + "\r\nnocolon\r\n\r\n", true}, // the last chunk, then a bad trailer line
		{"0\rxnocolon\r\n\r\n", false},                          // no LF after the CR
		{"5\rx\r\n", false},
	} {
		for i := 0; i <= len(c.body); i++ {
			cc := clientConn{head: headDone}
			cc.lookAtChunks()
			for _, r := range []string{c.body[:i], c.body[i:]} {
				if r == "" {
					continue
				}
				if cc.head != headDone {
					cc.scanHead([]byte(r))
				} else {
					cc.scanChunks([]byte(r))
				}
			}
			if cc.badLine != c.bad || cc.head != headDone || cc.chunks != chunkOff {
				t.Fatalf("%q cut at %d: marked %v, head %d, chunks %d; want marked %v, head %d, chunks %d",
					c.body, i, cc.badLine, cc.head, cc.chunks, c.bad, headDone, chunkOff)
			}
		}
	}
}
