package contract

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestFold(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"folded ascii", "sukru.isik_42", "sukru.isik_42"},
		{"ascii upper", "JohnDoe123", "johndoe123"},
		{"turkish upper", "ŞÜKRÜ IŞIK", "sukru isik"},
		{"turkish lower", "şükrü ışık", "sukru isik"},
		{"turkish mixed", "Şükrü Işık", "sukru isik"},
		{"dotted capital i", "İlkay İREM", "ilkay irem"},
		{"dotless i", "ılgaz", "ilgaz"},
		{"every turkish letter", "çÇğĞıIİiöÖşŞüÜ", "ccggiiiioossuu"},
		{"names", "Çağla Gülşen Öykü Ümit Doğan Özgür", "cagla gulsen oyku umit dogan ozgur"},
		{"french", "Éléonore Françoise", "eleonore francoise"},
		{"german", "Straße Größe", "strasse grosse"},
		{"nordic", "Søren Ærø Łódź", "soren aero lodz"},
		{"decomposed input", "S\u0327u\u0308kru\u0308 I\u0307lkay", "sukru ilkay"},
		{"ligature and fullwidth", "ﬁne ＡＢＣ", "fine abc"},
		{"typographic apostrophes", "O’Brien O‘B O‛B OʼB O´B O′B", "o'brien o'b o'b o'b o'b o'b"},
		{"typographic hyphens", "Smith‐Jones a‑b a‒b a–b a−b", "smith-jones a-b a-b a-b a-b"},
		{"fullwidth digits and punctuation", "Ｏ＇Ｂ ８１３ ａ．ｂ＿ｃ！～", "o'b 813 a.b_c!~"},
		{"mark after a folded apostrophe kept", "’́", "'́"},
		{"full-width forms past ～ kept", "｟｠｡", "｟｠｡"},
		{"greek kept lower-cased", "ΣΟΦΊΑ ς", "σοφία σ"},
		{"cyrillic kept lower-cased", "ПРИВЕТ", "привет"},
		{"cjk kept", "東京", "東京"},
		{"devanagari marks kept", "हिंदी", "हिंदी"},
		{"whitespace kept", "A\tB  C\n", "a\tb  c\n"},
		{"controls dropped", "a\x00b\x07c\x7fd", "abcd"},
		{"format chars dropped", "ab\u00adc\u200bd\ufeffe", "abcde"},
		{"invalid utf-8 dropped", "a\xffb\xc3c\xed\xa0\x80d", "abcd"},
		{"replacement char kept", "a\uFFFDb", "a\uFFFDb"},
		{"lone combining mark kept", "\u0301x", "\u0301x"},
		{"mark after punctuation kept", "-\u0301", "-\u0301"},
		{"emoji kept", "Ali 🚀", "ali 🚀"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Fold(tt.in)
			if got != tt.want {
				t.Fatalf("Fold(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("Fold(%q) = %q is not valid UTF-8", tt.in, got)
			}
			if again := Fold(got); again != got {
				t.Fatalf("Fold is not idempotent: Fold(%q) = %q", got, again)
			}
		})
	}
}

// A full-width digit or punctuation mark, and a typographic apostrophe or
// hyphen, is searched as its ASCII character in every respect, a combining
// mark after it included: the mark is dropped after a digit (as after 8)
// and kept after punctuation (as after !), so Fold stays idempotent and
// the two spellings share their tokens and cache key.
func TestFoldTypedPunctuationIsASCII(t *testing.T) {
	same := map[rune]rune{
		'‘': '\'', '’': '\'', '‛': '\'', 'ʼ': '\'', '´': '\'', '′': '\'',
		'‐': '-', '‑': '-', '‒': '-', '–': '-', '−': '-',
	}
	for r := rune(0xff01); r <= 0xff5e; r++ {
		same[r] = r - 0xff01 + '!'
	}
	for r, ascii := range same {
		for _, around := range [][2]string{{"", ""}, {"", "\u0301"}, {"a", "\u0301"}, {"Ab", "Cd"}} {
			in := around[0] + string(r) + around[1]
			got, want := Fold(in), Fold(around[0]+string(ascii)+around[1])
			if got != want {
				t.Errorf("Fold(%q) = %q, want %q as with %q", in, got, want, ascii)
			}
			if again := Fold(got); again != got {
				t.Errorf("Fold is not idempotent on %q: %q then %q", in, got, again)
			}
		}
	}
}

func TestFoldMatchesTurkishExpectations(t *testing.T) {
	same := [][]string{
		{"Şükrü", "sukru", "ŞÜKRÜ", "şükrü", "SUKRU", "ṡüķrü"},
		{"Işık", "isik", "IŞIK", "ışık", "ISIK", "işik"},
		{"İrem", "irem", "IREM", "ırem"},
	}
	for _, group := range same {
		want := Fold(group[0])
		for _, s := range group[1:] {
			if got := Fold(s); got != want {
				t.Errorf("Fold(%q) = %q, want %q like Fold(%q)", s, got, want, group[0])
			}
		}
	}
}

func TestNormalizeQuery(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"only spaces", " \t\n\u00a0\u3000 ", ""},
		{"already normal", "sukru isik", "sukru isik"},
		{"trim and collapse", "  Şükrü \t\n  IŞIK  ", "sukru isik"},
		{"unicode spaces", "a\u00a0b\u2003c\u3000d", "a b c d"},
		{"zero width between spaces", "a \u200b b", "a b"},
		{"controls between words", "a \x00 b", "a b"},
		{"trailing format char", "a \u200b", "a"},
		{"invalid utf-8", "\xff Ali \xfe\xfe Veli \xc3", "ali veli"},
		{"tab only separator", "a\tb", "a b"},
		{"leading space ascii", " abc", "abc"},
		{"double space ascii", "a  b", "a b"},
		{"uppercase ascii", "JOHN", "john"},
		{"punctuation kept", "sukru.isik", "sukru.isik"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NormalizeQuery(tt.in)
			if got != tt.want {
				t.Fatalf("NormalizeQuery(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := NormalizeQuery(got); again != got {
				t.Fatalf("NormalizeQuery is not idempotent: %q → %q", got, again)
			}
		})
	}
}

// TestFoldHostileInput feeds every single byte, every rune of the first
// planes and long garbage through both functions: they must never panic,
// always return valid UTF-8, and be idempotent.
func TestFoldHostileInput(t *testing.T) {
	check := func(in string) {
		t.Helper()
		for _, fn := range []struct {
			name string
			f    func(string) string
		}{{"Fold", Fold}, {"NormalizeQuery", NormalizeQuery}} {
			got := fn.f(in)
			if !utf8.ValidString(got) {
				t.Fatalf("%s(%q) = %q: invalid UTF-8", fn.name, in, got)
			}
			if again := fn.f(got); again != got {
				t.Fatalf("%s not idempotent on %q: %q then %q", fn.name, in, got, again)
			}
		}
	}
	for b := range 256 {
		check(string([]byte{byte(b)}))
		check("a" + string([]byte{byte(b)}) + "Z")
	}
	for r := rune(0); r < 0x3000; r++ {
		check(string(r))
		check("I" + string(r) + "ı")
	}
	check(strings.Repeat("\xf0\x9f", 1000))
	check(strings.Repeat("İ\u0307\u0301", 1000))
	check(strings.Repeat(" \u200b\t", 1000))
}

func TestFoldDoesNotAllocateOnFoldedASCII(t *testing.T) {
	in := "sukru.isik johndoe123"
	if n := testing.AllocsPerRun(100, func() { _ = Fold(in) }); n != 0 {
		t.Fatalf("Fold allocated %v times on folded ASCII", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = NormalizeQuery(in) }); n != 0 {
		t.Fatalf("NormalizeQuery allocated %v times on normalized ASCII", n)
	}
}

func BenchmarkFold(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"folded-ascii", "sukru.isik johndoe123"},
		{"upper-ascii", "SUKRU.ISIK JOHNDOE123"},
		{"turkish", "Şükrü Işık Çağla Gülşen İlkay Öykü"},
		{"mixed-scripts", "Éléonore ПРИВЕТ 東京 Straße"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				_ = Fold(bc.in)
			}
		})
	}
}

func BenchmarkNormalizeQuery(b *testing.B) {
	in := "  Şükrü \t IŞIK  "
	b.ReportAllocs()
	for b.Loop() {
		_ = NormalizeQuery(in)
	}
}

// FuzzFold checks what the doc comments of Fold and NormalizeQuery promise,
// for any input: valid UTF-8 out, both idempotent, Fold's output lower case
// (no rune that unicode.ToLower changes), free of invalid bytes, controls
// other than whitespace and format characters, with no Latin letter that
// still decomposes (a diacritic left on it) and no combining mark right
// after a Latin letter or digit; NormalizeQuery's output is Fold's with
// the whitespace trimmed and every run of it made one ASCII space.
func FuzzFold(f *testing.F) {
	for _, s := range []string{
		"", "sukru", "ŞÜKRÜ IŞIK", "İstanbul ılık", "Çağ Göç", "café", "Straße", "ﬁne", "ＡＢＣ", "Ǆ ǅ ǆ",
		"α\u0301", "ẚ\u0301", " \t a  \u3000b\u00a0\u0085 ", "soft\u00adhyphen\u200b\ufeff", "a\x00b\x7f\x1f",
		"\xff\xfe\xc3", "ŉ", "\u212a\u212b", "ᏸᏹ", "x \u00ad\u0301", "Ⅻ", "ς", "\u0345",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		folded := Fold(in)
		if !utf8.ValidString(folded) {
			t.Fatalf("Fold(%q) = %q: invalid UTF-8", in, folded)
		}
		if again := Fold(folded); again != folded {
			t.Fatalf("Fold not idempotent on %q: %q then %q", in, folded, again)
		}
		prevLatin := false
		for _, r := range folded {
			switch {
			case unicode.ToLower(r) != r:
				t.Fatalf("Fold(%q) = %q holds %q, not lower case", in, folded, r)
			case unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Cc, r) && !unicode.IsSpace(r):
				t.Fatalf("Fold(%q) = %q keeps the control or format character %U", in, folded, r)
			case unicode.Is(unicode.Latin, r) && (norm.NFKD.PropertiesString(string(r)).Decomposition() != nil || specialFolds[r] != ""):
				t.Fatalf("Fold(%q) = %q keeps the Latin letter %q whole", in, folded, r)
			case unicode.Is(unicode.Mn, r) && prevLatin:
				t.Fatalf("Fold(%q) = %q keeps the mark %U on a Latin letter", in, folded, r)
			}
			if !unicode.Is(unicode.Mn, r) {
				prevLatin = unicode.Is(unicode.Latin, r) || '0' <= r && r <= '9'
			}
		}

		q := NormalizeQuery(in)
		if !utf8.ValidString(q) {
			t.Fatalf("NormalizeQuery(%q) = %q: invalid UTF-8", in, q)
		}
		if again := NormalizeQuery(q); again != q {
			t.Fatalf("NormalizeQuery not idempotent on %q: %q then %q", in, q, again)
		}
		if strings.HasPrefix(q, " ") || strings.HasSuffix(q, " ") || strings.Contains(q, "  ") ||
			strings.ContainsFunc(q, func(r rune) bool { return r != ' ' && unicode.IsSpace(r) }) {
			t.Fatalf("NormalizeQuery(%q) = %q: spaces not collapsed", in, q)
		}
		if want := strings.Join(strings.Fields(folded), " "); q != want {
			t.Fatalf("NormalizeQuery(%q) = %q, but Fold with the spaces collapsed is %q", in, q, want)
		}
	})
}
