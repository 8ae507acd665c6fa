package gateway

import (
	"strings"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"
)

// Username rules, checked at the edge before any upstream call:
//
//   - surrounding whitespace is ignored and ASCII letters are folded to
//     lower case: the canonical form is what the store checks;
//   - 3 to 30 characters;
//   - only a-z, 0-9, '.' and '_' (ASCII only: usernames end up in URLs and
//     @mentions, and Turkish dotted/dotless i make case-insensitive
//     uniqueness of non-ASCII names depend on the locale);
//   - starts with a letter; does not end with '.' or '_';
//   - no two separators ('.' or '_') in a row.
const (
	usernameMinLen = 3
	usernameMaxLen = 30
)

// canonicalUsername returns the canonical form of a username and the
// rules it breaks (nil when valid). A name with capitals is folded into
// buf when it fits, as every valid name does: the name returned is then
// buf's bytes, good only while buf is not written again.
func canonicalUsername(raw string, buf *[usernameMaxLen]byte) (string, []msg) {
	// ASCII folding only: strings.ToLower would turn the Turkish İ into
	// "i" and the Kelvin sign into "k", so non-ASCII names would pass as
	// their look-alikes instead of being refused.
	name := lowerASCII(strings.TrimSpace(raw), buf[:])
	if name == "" {
		return "", []msg{msgUsernameRequired}
	}
	// A name with a letter sent as its base and a combining mark (s and
	// U+0327 for ş) is judged composed, as search counts a query: the
	// same rules broken as by the name typed, not a length counted in
	// marks nor a first letter that is its ASCII base. Such a name is
	// never valid, so the store is never sent the composed copy.
	if !isASCII(name) && !norm.NFC.IsNormalString(name) {
		name = norm.NFC.String(name)
	}
	var problems []msg
	// Counted in characters, so that a name refused for its characters is
	// not also told it is too long because they take two bytes each.
	if n := utf8.RuneCountInString(name); n < usernameMinLen || n > usernameMaxLen {
		problems = append(problems, msgUsernameLength)
	}
	charsetOK, separatorsOK := true, true
	for i := 0; i < len(name); i++ {
		ch := name[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9':
		case ch == '.' || ch == '_':
			if i > 0 && (name[i-1] == '.' || name[i-1] == '_') {
				separatorsOK = false
			}
		default:
			charsetOK = false
		}
	}
	if !charsetOK {
		problems = append(problems, msgUsernameCharset)
	}
	if c := name[0]; c < 'a' || c > 'z' {
		problems = append(problems, msgUsernameStart)
	}
	if c := name[len(name)-1]; c == '.' || c == '_' {
		problems = append(problems, msgUsernameEnd)
	}
	if !separatorsOK {
		problems = append(problems, msgUsernameSeparators)
	}
	return name, problems
}

// lowerASCII folds A-Z to a-z and leaves every other byte as it is. A
// string without capitals is returned as it is; one with capitals is
// folded into buf when it fits (the result is then buf's bytes), into a
// new string otherwise.
func lowerASCII(s string, buf []byte) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			var b []byte
			if len(s) <= len(buf) {
				b = buf[:len(s)]
				copy(b, s)
			} else {
				b = []byte(s)
			}
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return unsafe.String(unsafe.SliceData(b), len(b))
		}
	}
	return s
}
