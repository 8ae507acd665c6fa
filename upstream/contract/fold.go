package contract

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Search folding. The user store matches names with it and the gateway
// builds its cache keys with it, so both sides must call the same code: a
// query that the store treats as equal to another must also share its cache
// entry.

// Fold maps s to the base form search compares: lower case, Turkish letters
// on their ASCII base (İ I ı i → i, Ş ş → s, Ç ç → c, Ğ ğ → g, Ö ö → o,
// Ü ü → u), diacritics of other Latin letters removed (é → e, ß → ss,
// ﬁ → fi, fullwidth Ａ → a), full-width digits and punctuation and the
// typographic apostrophes and hyphens on ASCII's (８ → 8, ’ → ', ‐ → -),
// and letters of other scripts lower-cased but otherwise kept. Invalid
// UTF-8 bytes, control characters other than whitespace, and invisible
// format characters (soft hyphen, zero-width space, byte-order mark) are
// dropped; whitespace is kept as it is.
//
// Fold does not allocate when s is already folded ASCII.
func Fold(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= utf8.RuneSelf || asciiFold[c] != c {
			break
		}
		i++
	}
	if i == len(s) {
		return s
	}
	var f folder
	f.dst.Grow(len(s) + 4)
	f.dst.WriteString(s[:i])
	if i > 0 {
		// A combining mark right after the folded prefix decorates its
		// last letter, as it would after f.add.
		c := s[i-1]
		f.prevLatin = ('a' <= c && c <= 'z') || ('0' <= c && c <= '9')
	}
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			f.add(rune(c))
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError && size == 1 {
			continue // not UTF-8
		}
		f.add(r)
	}
	return f.dst.String()
}

// NormalizeQuery prepares a search query: it trims it, collapses every run
// of Unicode whitespace to one ASCII space and folds the rest with Fold.
// Invalid UTF-8 is dropped, never a reason to panic. The result is what the
// store searches for and what a cache key of a search should hold.
func NormalizeQuery(s string) string {
	if isNormalizedASCII(s) {
		return s
	}
	var f folder
	f.dst.Grow(len(s))
	pendingSpace := false
	for _, r := range runes(s) {
		if unicode.IsSpace(r) {
			pendingSpace = f.dst.Len() > 0
			f.prevLatin = false
			continue
		}
		if pendingSpace && !ignorable(r) {
			f.dst.WriteByte(' ')
			pendingSpace = false
		}
		f.add(r)
	}
	return f.dst.String()
}

// SeparatesWords reports whether r is no part of a word of a search: a word
// is a run of letters, digits and the marks that belong to letters in
// scripts Fold leaves alone. The store trims these from the edges of a
// query's space-separated pieces to find its words ("ali," is "ali", a lone
// "-" is none), which the gateway counts against MaxQueryWords.
func SeparatesWords(r rune) bool {
	return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.In(r, unicode.Mn, unicode.Mc)
}

// isNormalizedASCII reports whether NormalizeQuery would return s as it is.
func isNormalizedASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || asciiFold[c] != c {
			return false
		}
		if c == ' ' && (i == 0 || i == len(s)-1 || s[i-1] == ' ') {
			return false
		}
		if c < ' ' {
			return false // tabs and newlines become a single space
		}
	}
	return true
}

// runes yields the runes of s, skipping bytes that are not valid UTF-8 (a
// genuine U+FFFD in the input is kept).
func runes(s string) func(yield func(int, rune) bool) {
	return func(yield func(int, rune) bool) {
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				i++
				continue
			}
			if !yield(i, r) {
				return
			}
			i += size
		}
	}
}

// folder appends folded runes to dst. prevLatin remembers whether the last
// letter written was Latin, because a combining mark is dropped only when it
// decorates a Latin letter: in other scripts (Devanagari vowel signs, for
// example) the mark is part of the spelling.
type folder struct {
	dst       strings.Builder
	prevLatin bool
}

func (f *folder) add(r rune) {
	if r < utf8.RuneSelf {
		c := asciiFold[r]
		if c == dropByte {
			return
		}
		f.dst.WriteByte(c)
		f.prevLatin = ('a' <= c && c <= 'z') || ('0' <= c && c <= '9')
		return
	}
	if r < tableEnd {
		if m := &latinTable[r-utf8.RuneSelf]; m.set {
			f.dst.WriteString(m.folded)
			f.prevLatin = m.latin
			return
		}
	}
	if ignorable(r) {
		return
	}
	if unicode.Is(unicode.Mn, r) {
		if !f.prevLatin {
			f.dst.WriteRune(r)
		}
		return
	}
	var buf [4 * utf8.UTFMax]byte
	b, latin := appendFoldedRune(buf[:0], r)
	f.dst.Write(b)
	f.prevLatin = latin
}

// ignorable reports runes that carry nothing a search should see.
func ignorable(r rune) bool {
	if r < utf8.RuneSelf {
		return r < ' ' && !unicode.IsSpace(r) || r == 0x7f
	}
	return unicode.Is(unicode.Cf, r) || (unicode.Is(unicode.Cc, r) && !unicode.IsSpace(r))
}

// appendFoldedRune folds one non-ASCII rune that is not a combining mark or
// an ignorable character. It is the slow path, also used to build the table.
func appendFoldedRune(dst []byte, r rune) ([]byte, bool) {
	if s, ok := specialFolds[r]; ok {
		return append(dst, s...), true
	}
	if !unicode.Is(unicode.Latin, r) {
		if c, ok := punctuationFolds[r]; ok {
			return append(dst, c), false
		}
		if fullwidthFirst <= r && r <= fullwidthLast {
			// Full-width digits and punctuation (full-width letters are
			// Latin, decomposed below): a full-width keyboard's 813 and
			// O'Brien.
			c := byte(r - fullwidthFirst + '!')
			return append(dst, c), '0' <= c && c <= '9'
		}
		if r == 'ς' {
			r = 'σ' // final sigma searches like sigma
		}
		return utf8.AppendRune(dst, unicode.ToLower(r)), false
	}
	var buf [utf8.UTFMax]byte
	n := utf8.EncodeRune(buf[:], r)
	d := norm.NFKD.Properties(buf[:n]).Decomposition()
	if d == nil {
		return utf8.AppendRune(dst, unicode.ToLower(r)), true
	}
	for _, dr := range string(d) {
		if unicode.Is(unicode.Mn, dr) {
			continue
		}
		if s, ok := specialFolds[dr]; ok {
			dst = append(dst, s...)
			continue
		}
		if c, ok := punctuationFolds[dr]; ok {
			dst = append(dst, c) // ŉ is ʼn
			continue
		}
		dst = utf8.AppendRune(dst, unicode.ToLower(dr))
	}
	return dst, true
}

// specialFolds are Latin letters with no decomposition to a base letter.
var specialFolds = map[rune]string{
	'ı': "i", 'İ': "i", // Turkish dotless and dotted i
	'ß': "ss", 'ẞ': "ss",
	'æ': "ae", 'Æ': "ae",
	'œ': "oe", 'Œ': "oe",
	'ø': "o", 'Ø': "o",
	'ł': "l", 'Ł': "l",
	'đ': "d", 'Đ': "d",
	'ð': "d", 'Ð': "d",
	'þ': "th", 'Þ': "th",
	'ħ': "h", 'Ħ': "h",
}

// punctuationFolds are the apostrophes and hyphens keyboards and word
// processors type for ASCII's ' and -: an iPhone's smart punctuation (on
// by default) writes O’Brien, which must find O'Brien.
var punctuationFolds = map[rune]byte{
	'\u2018': '\'', '\u2019': '\'', '\u201b': '\'', // single quotation marks
	'\u02bc': '\'', '\u00b4': '\'', '\u2032': '\'', // modifier letter apostrophe, acute accent, prime
	'\u2010': '-', '\u2011': '-', '\u2012': '-', '\u2013': '-', '\u2212': '-', // hyphens, figure and en dash, minus
}

// The Halfwidth and Fullwidth Forms block's copy of ASCII's ! to ~.
const (
	fullwidthFirst = '\uff01'
	fullwidthLast  = '\uff5e'
)

// tableEnd bounds the precomputed range: Latin-1 Supplement, Latin
// Extended-A and B, which hold every Turkish letter and most European ones.
const tableEnd = 0x250

type tableEntry struct {
	folded string
	latin  bool
	set    bool
}

// dropByte marks ASCII control characters in asciiFold; it can never be the
// folded form of an ASCII byte.
const dropByte = 0xff

var (
	asciiFold  [utf8.RuneSelf]byte
	latinTable [tableEnd - utf8.RuneSelf]tableEntry
)

func init() {
	for c := range utf8.RuneSelf {
		switch {
		case 'A' <= c && c <= 'Z':
			asciiFold[c] = byte(c + 'a' - 'A')
		case ignorable(rune(c)):
			asciiFold[c] = dropByte
		default:
			asciiFold[c] = byte(c)
		}
	}
	for r := rune(utf8.RuneSelf); r < tableEnd; r++ {
		if ignorable(r) || unicode.Is(unicode.Mn, r) || unicode.IsSpace(r) {
			continue
		}
		b, latin := appendFoldedRune(nil, r)
		latinTable[r-utf8.RuneSelf] = tableEntry{folded: string(b), latin: latin, set: true}
	}
}
