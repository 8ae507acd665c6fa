package clientctx

import (
	"strings"
	"testing"
)

func TestParseLanguage(t *testing.T) {
	long := strings.Repeat("de-DE,", 200) + "tr"
	tests := []struct {
		name           string
		xLanguage      string
		acceptLanguage string
		want           Language
		xRejected      bool
	}{
		{name: "nothing sent", want: LanguageEN},
		{name: "x en", xLanguage: "en", want: LanguageEN},
		{name: "x tr", xLanguage: "tr", want: LanguageTR},
		{name: "x region", xLanguage: "tr-TR", want: LanguageTR},
		{name: "x upper", xLanguage: "TR", want: LanguageTR},
		{name: "x underscore", xLanguage: "tr_TR", want: LanguageTR},
		{name: "x spaces", xLanguage: "  tr\t", want: LanguageTR},
		{name: "x script and region", xLanguage: "tr-Latn-TR", want: LanguageTR},
		{name: "x wins over accept", xLanguage: "en", acceptLanguage: "tr", want: LanguageEN},
		{name: "x tr wins over accept en", xLanguage: "tr", acceptLanguage: "en", want: LanguageTR},
		{name: "x list", xLanguage: "tr;q=0.9,en;q=0.8", want: LanguageTR},
		{name: "x unsupported falls to accept", xLanguage: "de", acceptLanguage: "tr", want: LanguageTR, xRejected: true},
		{name: "x unsupported and no accept", xLanguage: "de", want: LanguageEN, xRejected: true},
		{name: "x wildcard defers to accept", xLanguage: "*", acceptLanguage: "tr", want: LanguageTR, xRejected: true},
		{name: "x named language beats its wildcard", xLanguage: "tr;q=0.5, *", acceptLanguage: "en", want: LanguageTR},
		{name: "x named en beats a heavier wildcard", xLanguage: "en;q=0.5, *;q=0.9", acceptLanguage: "tr", want: LanguageEN},
		{name: "x wildcard lends no weight", xLanguage: "en;q=0, *", acceptLanguage: "en", want: LanguageEN, xRejected: true},
		{name: "x q zero defers", xLanguage: "tr;q=0", acceptLanguage: "tr", want: LanguageTR, xRejected: true},
		{name: "x empty is not sent", xLanguage: "   ", acceptLanguage: "tr", want: LanguageTR},
		{name: "x garbage", xLanguage: "türkçe", acceptLanguage: "tr", want: LanguageTR, xRejected: true},

		{name: "accept region", acceptLanguage: "tr-TR", want: LanguageTR},
		{name: "accept q list", acceptLanguage: "tr;q=0.9,en;q=0.8", want: LanguageTR},
		{name: "accept en first", acceptLanguage: "en-GB,tr;q=0.5", want: LanguageEN},
		{name: "accept unsupported first", acceptLanguage: "de-DE,tr;q=0.7", want: LanguageTR},
		{name: "accept q beats order", acceptLanguage: "en;q=0.4, tr;q=0.6", want: LanguageTR},
		{name: "accept tie by order", acceptLanguage: "tr;q=0.5, en;q=0.5", want: LanguageTR},
		{name: "accept tie by order en", acceptLanguage: "en;q=0.5, tr;q=0.5", want: LanguageEN},
		{name: "accept q zero not acceptable", acceptLanguage: "tr;q=0, en;q=0.1", want: LanguageEN},
		{name: "accept only q zero", acceptLanguage: "tr;q=0", want: LanguageEN},
		{name: "accept highest q of a language", acceptLanguage: "en;q=0.5, tr;q=0.1, tr-TR;q=0.9", want: LanguageTR},
		{name: "accept wildcard", acceptLanguage: "*", want: LanguageEN},
		{name: "accept wildcard excludes named", acceptLanguage: "en;q=0, *", want: LanguageTR},
		{name: "accept wildcard below named", acceptLanguage: "de, *;q=0.2, tr;q=0.3", want: LanguageTR},
		{name: "accept wildcard above named", acceptLanguage: "de, *;q=0.5, tr;q=0.3", want: LanguageEN},
		{name: "accept chrome style", acceptLanguage: "tr-TR,tr;q=0.9,en-US;q=0.8,en;q=0.7", want: LanguageTR},
		{name: "accept spaces around params", acceptLanguage: "de ; q=1 , tr ; q=0.8", want: LanguageTR},
		{name: "accept upper Q", acceptLanguage: "de,tr;Q=0.5", want: LanguageTR},
		{name: "accept q 1.000", acceptLanguage: "tr;q=1.000", want: LanguageTR},
		{name: "accept unsupported only", acceptLanguage: "de-DE,fr;q=0.9", want: LanguageEN},
		{name: "accept bad q skips entry", acceptLanguage: "tr;q=2, de", want: LanguageEN},
		{name: "accept bad q others count", acceptLanguage: "en;q=abc, tr;q=0.1", want: LanguageTR},
		{name: "accept q four decimals", acceptLanguage: "tr;q=0.1234", want: LanguageEN},
		{name: "accept q 1.5", acceptLanguage: "tr;q=1.5", want: LanguageEN},
		{name: "accept unknown param ignored", acceptLanguage: "tr;level=1", want: LanguageTR},
		{name: "accept q after another param", acceptLanguage: "tr;level=1;q=0.2, en;q=0.3", want: LanguageEN},
		{name: "accept digit region", acceptLanguage: "de, en-419;q=0.5", want: LanguageEN},
		{name: "accept empty entries", acceptLanguage: ",,, ,tr,,", want: LanguageTR},
		{name: "accept long subtag", acceptLanguage: "tr-abcdefghij", want: LanguageEN},
		{name: "accept digit primary", acceptLanguage: "t1", want: LanguageEN},
		{name: "accept trailing dash", acceptLanguage: "tr-", want: LanguageEN},
		{name: "accept double dash", acceptLanguage: "tr--TR", want: LanguageEN},
		{name: "accept three-letter code", acceptLanguage: "tur", want: LanguageEN},
		{name: "accept prefix is not a match", acceptLanguage: "trk", want: LanguageEN},

		// Hostile values.
		{name: "path traversal", xLanguage: "../../etc/passwd", acceptLanguage: "../tr", want: LanguageEN, xRejected: true},
		{name: "NUL", xLanguage: "tr\x00", acceptLanguage: "tr\x00en", want: LanguageEN, xRejected: true},
		{name: "CRLF", xLanguage: "en\r\nX-Evil: 1", acceptLanguage: "tr", want: LanguageTR, xRejected: true},
		{name: "invalid UTF-8", xLanguage: "\xff\xfe", acceptLanguage: "tr\xc3", want: LanguageEN, xRejected: true},
		{name: "dotted capital I look-alike", xLanguage: "TR\u0130", acceptLanguage: "\u0074\u0072\u0307", want: LanguageEN, xRejected: true},
		{name: "fullwidth letters", xLanguage: "ｔｒ", want: LanguageEN, xRejected: true},
		{name: "very long x", xLanguage: strings.Repeat("t", 1<<16), acceptLanguage: "tr", want: LanguageTR, xRejected: true},
		{name: "beyond byte limit is not read", acceptLanguage: long, want: LanguageEN},
		{name: "within byte limit", acceptLanguage: strings.Repeat("de,", 20) + "tr", want: LanguageTR},
		{name: "beyond entry limit is not read", acceptLanguage: strings.Repeat("de,", maxLanguageEntries) + "tr", want: LanguageEN},
		{name: "last entry within entry limit", acceptLanguage: strings.Repeat("de,", maxLanguageEntries-1) + "tr", want: LanguageTR},
		{name: "no comma within byte limit", acceptLanguage: "tr;q=0.5" + strings.Repeat(" ", maxLanguageBytes), want: LanguageEN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseLanguage(bytesOrNil(tt.xLanguage), bytesOrNil(tt.acceptLanguage)); got != tt.want {
				t.Errorf("ParseLanguage(%q, %q) = %v, want %v", tt.xLanguage, tt.acceptLanguage, got, tt.want)
			}
			if _, rejected := parseLanguage(bytesOrNil(tt.xLanguage), bytesOrNil(tt.acceptLanguage)); rejected != tt.xRejected {
				t.Errorf("X-Language %q rejected = %v, want %v", tt.xLanguage, rejected, tt.xRejected)
			}
		})
	}
}

func TestLanguageStringRoundTrips(t *testing.T) {
	for _, l := range []Language{LanguageEN, LanguageTR} {
		if got := ParseLanguage([]byte(l.String()), nil); got != l {
			t.Errorf("%q read back as %v", l.String(), got)
		}
	}
	if LanguageEN.String() != "en" || LanguageTR.String() != "tr" {
		t.Errorf("names: %q %q", LanguageEN, LanguageTR)
	}
	if Language(0) != LanguageEN {
		t.Error("the zero Language must be the default, en")
	}
}

func TestParseQValue(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"0", 0, true}, {"1", 1000, true}, {"0.", 0, true}, {"1.", 1000, true},
		{"0.5", 500, true}, {"0.05", 50, true}, {"0.005", 5, true}, {"0.999", 999, true},
		{"1.0", 1000, true}, {"1.000", 1000, true},
		{"", 0, false}, {"1.001", 0, false}, {"2", 0, false}, {".5", 0, false},
		{"0.1234", 0, false}, {"0,5", 0, false}, {"-0", 0, false}, {"0.5 ", 0, false}, {"01", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseQValue([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseQValue(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// bytesOrNil gives nil for "", as fasthttp's Peek does for an absent header.
func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
