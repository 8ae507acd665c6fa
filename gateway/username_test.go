package gateway

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

func TestCanonicalUsername(t *testing.T) {
	for _, c := range []struct {
		name, raw string
		canonical string // checked when valid
		problems  []msg
	}{
		// Valid, and their canonical forms.
		{"plain", "johndoe123", "johndoe123", nil},
		{"upper case folds", "JohnDoe123", "johndoe123", nil},
		{"surrounding spaces", "  johndoe123\t\n", "johndoe123", nil},
		{"shortest", "abc", "abc", nil},
		{"longest", "a" + strings.Repeat("b", 29), "a" + strings.Repeat("b", 29), nil},
		{"separators", "john.doe_42", "john.doe_42", nil},
		{"separator then digit", "a_1.b", "a_1.b", nil},
		{"one letter and digits", "a12", "a12", nil},

		// Each rule alone.
		{"empty", "", "", []msg{msgUsernameRequired}},
		{"only spaces", "   \t ", "", []msg{msgUsernameRequired}},
		{"too short", "ab", "", []msg{msgUsernameLength}},
		{"too long", "a" + strings.Repeat("b", 30), "", []msg{msgUsernameLength}},
		{"too short after trimming", "  ab  ", "", []msg{msgUsernameLength}},
		{"hyphen", "john-doe", "", []msg{msgUsernameCharset}},
		{"inner space", "john doe", "", []msg{msgUsernameCharset}},
		{"at sign", "john@doe", "", []msg{msgUsernameCharset}},
		{"starts with a digit", "1john", "", []msg{msgUsernameStart}},
		{"starts with a dot", ".john", "", []msg{msgUsernameStart}},
		{"ends with a dot", "john.", "", []msg{msgUsernameEnd}},
		{"ends with an underscore", "john_", "", []msg{msgUsernameEnd}},
		{"two dots", "john..doe", "", []msg{msgUsernameSeparators}},
		{"dot underscore", "john._doe", "", []msg{msgUsernameSeparators}},
		{"two underscores", "john__doe", "", []msg{msgUsernameSeparators}},

		// Several at once, in the documented order.
		{"short and bad start", "1a", "", []msg{msgUsernameLength, msgUsernameStart}},
		{"everything", "_..", "", []msg{msgUsernameStart, msgUsernameEnd, msgUsernameSeparators}},
		{"long, bad characters, bad end", "1" + strings.Repeat("-", 30) + "_", "", []msg{msgUsernameLength, msgUsernameCharset, msgUsernameStart, msgUsernameEnd}},

		// Turkish and other non-ASCII letters are refused, never folded
		// into an ASCII look-alike.
		{"Turkish letters", "şükrü", "", []msg{msgUsernameCharset, msgUsernameStart}},
		{"Turkish letters inside", "sukru.öztürk", "", []msg{msgUsernameCharset}},
		{"dotless i", "ılgın", "", []msg{msgUsernameCharset, msgUsernameStart}},
		{"dotted capital I", "İsmail", "", []msg{msgUsernameCharset, msgUsernameStart}},
		{"Kelvin sign", "\u212Aelvin", "", []msg{msgUsernameCharset, msgUsernameStart}},
		{"fullwidth letters", "ｊｏｈｎ", "", []msg{msgUsernameCharset, msgUsernameStart}},
		{"Cyrillic look-alike", "jоhn", "", []msg{msgUsernameCharset}}, // о is Cyrillic
		{"zero-width space", "jo\u200bhn", "", []msg{msgUsernameCharset}},
		{"invalid UTF-8", "jo\xffhn", "", []msg{msgUsernameCharset}},
		{"NUL", "jo\x00hn", "", []msg{msgUsernameCharset}},
		// Length counts characters: 16 Turkish letters are within 3..30
		// characters even though they are 32 bytes.
		{"16 Turkish letters", strings.Repeat("ğ", 16), "", []msg{msgUsernameCharset, msgUsernameStart}},
		{"31 Turkish letters", strings.Repeat("ş", 31), "", []msg{msgUsernameLength, msgUsernameCharset, msgUsernameStart}},
		// A name sent decomposed (a letter and its combining mark, as text
		// pasted from macOS can be) is judged as its composed form: the
		// same rules broken, the same messages, as the name typed.
		{"16 decomposed Turkish letters", strings.Repeat("g\u0306", 16), "", []msg{msgUsernameCharset, msgUsernameStart}},
		{"two decomposed Turkish letters", "s\u0327u\u0308", "", []msg{msgUsernameLength, msgUsernameCharset, msgUsernameStart}},
		{"decomposed letter inside", "sukru.o\u0308zturk", "", []msg{msgUsernameCharset}},
		// Composed canonically, not by compatibility: the full-width
		// letters stay what they are, as in "fullwidth letters".
		{"fullwidth letters and a decomposed one", "ｊｏｈｎs\u0327", "", []msg{msgUsernameCharset, msgUsernameStart}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf [usernameMaxLen]byte
			got, problems := canonicalUsername(c.raw, &buf)
			if !slices.Equal(problems, c.problems) {
				t.Fatalf("canonicalUsername(%q) problems %v, want %v", c.raw, msgNames(problems), msgNames(c.problems))
			}
			if len(c.problems) == 0 && got != c.canonical {
				t.Fatalf("canonicalUsername(%q) = %q, want %q", c.raw, got, c.canonical)
			}
		})
	}
}

// Every valid name is its own canonical form, and the canonical form of
// any input is itself canonical (idempotent).
func TestCanonicalUsernameIsIdempotent(t *testing.T) {
	for _, raw := range []string{"JohnDoe", " A.B_C ", "x1y2z3", "MiXeD.CaSe_99"} {
		var buf1, buf2 [usernameMaxLen]byte
		once, p1 := canonicalUsername(raw, &buf1)
		twice, p2 := canonicalUsername(once, &buf2)
		if len(p1) != 0 || len(p2) != 0 || once != twice {
			t.Fatalf("%q → %q %v → %q %v", raw, once, p1, twice, p2)
		}
	}
}

func msgNames(ms []msg) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.text(0)
	}
	return out
}

// The fast path of the username body agrees with the decoder on every
// body it accepts, and leaves every other body to it.
func TestPlainUsernameBodyAgreesWithTheDecoder(t *testing.T) {
	for _, body := range []string{
		`{"username":"johndoe123"}`, ` { "username" : "JohnDoe" } `, "{\n\t\"username\": \"a.b_c\"\r\n}\n",
		`{"username":""}`, `{"username":"has space"}`, `{"username":"ümlaut"}`, `{"username":"a\"b"}`,
		`{"username":"a\\u0041"}`, `{"username":"x"} trailing`, `{"username":"x",}`, `{"username":"x","other":1}`,
		`{"USERNAME":"x"}`, `{"username":null}`, `{"username":5}`, `["username"]`, `{"username":"x"`, ``, `{}`,
		`{"username":"x"}{}`, `{"username":"tab` + "\t" + `"}`,
	} {
		name, ok := plainUsernameBody([]byte(body))
		if !ok {
			continue
		}
		value, err := usernameBody([]byte(body))
		var want string
		if err == nil {
			err = json.Unmarshal(value, &want)
		}
		if err != nil || want != name {
			t.Errorf("%q: fast path %q, decoder %q (%v)", body, name, want, err)
		}
	}
	if _, ok := plainUsernameBody([]byte(`{"username":"johndoe123"}`)); !ok {
		t.Error("the plain body did not take the fast path")
	}
}

// FuzzPlainUsernameBody: for any body, the fast path either declines or
// returns exactly the name the strict path (usernameBody, then
// encoding/json) returns, so that what follows (canonicalUsername, the
// store call) cannot tell which path read it. Nothing the strict path
// refuses may be accepted.
func FuzzPlainUsernameBody(f *testing.F) {
	for _, body := range []string{
		`{"username":"johndoe123"}`, ` { "username" : "JohnDoe" } `, "{\n\t\"username\": \"a.b_c\"\r\n}\n",
		`{"username":""}`, `{"username":"has space"}`, `{"username":"ümlaut"}`, `{"username":"a\"b"}`,
		`{"username":"a\u0041"}`, `{"username":"x"} trailing`, `{"username":"x",}`, `{"username":"x","other":1}`,
		`{"USERNAME":"x"}`, `{"Username":"x"}`, `{"username":null}`, `{"username":5}`, `["username"]`, `{"username":"x"`,
		``, `{}`, `{"username":"x"}{}`, `{"username":"tab` + "\t" + `"}`, `{"username":"x","username":"y"}`,
		`{"user\u006eame":"x"}`, "\ufeff{\"username\":\"x\"}", `{"username":"x"}` + "\x00", `{"username":"x"}` + "\f",
		`{"username":"x"}` + "\u00a0", `{"username":"del` + "\x7f" + `"}`, `{"username":"bad` + "\xff" + `"}`,
		`{"username":"\ud800"}`, `{"username":"a"}}`, `{{"username":"a"}`, `{"username":"a"]`, `{"username""a"}`,
		`{"username":'a'}`, `{"username":"a"} ` + "\n\r\t", `{"username":"` + strings.Repeat("a", 1024) + `"}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := plainUsernameBody(body)
		if !ok {
			return
		}
		strict, err := strictUsernameBody(body)
		if err != nil {
			t.Fatalf("%q: the fast path read %q, the strict path refuses it: %v", body, fast, err)
		}
		if fast != strict {
			t.Fatalf("%q: the fast path read %q, the strict path %q", body, fast, strict)
		}
	})
}

// A name sent with capitals is folded into the buffer given, without an
// allocation (~0.25 µs each under load: docs/performance.md, #24); one
// longer than any valid name is folded into a string of its own, and
// judged the same.
func TestCanonicalUsernameFoldsIntoTheBuffer(t *testing.T) {
	var buf [usernameMaxLen]byte
	var name string
	var problems []msg
	if n := testing.AllocsPerRun(100, func() { name, problems = canonicalUsername(" JohnDoe123 ", &buf) }); n != 0 {
		t.Errorf("folding a valid name allocated %v times", n)
	}
	if name != "johndoe123" || problems != nil || unsafe.StringData(name) != &buf[0] {
		t.Errorf("got %q %v, not folded into the buffer", name, msgNames(problems))
	}
	longest := strings.Repeat("Ab", usernameMaxLen/2)
	if name, problems = canonicalUsername(longest, &buf); name != strings.ToLower(longest) || problems != nil || unsafe.StringData(name) != &buf[0] {
		t.Errorf("the longest valid name: %q %v", name, msgNames(problems))
	}
	tooLong := longest + "C"
	if name, problems = canonicalUsername(tooLong, &buf); name != strings.ToLower(tooLong) ||
		!slices.Equal(problems, []msg{msgUsernameLength}) || buf != [usernameMaxLen]byte([]byte(strings.ToLower(longest))) {
		t.Errorf("a name too long: %q %v, buffer %q", name, msgNames(problems), buf[:])
	}
}
