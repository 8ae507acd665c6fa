package gateway

import (
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bffgate/edge/gateway/clientctx"
)

func TestMoneyDisplay(t *testing.T) {
	en, tr := clientctx.LanguageEN, clientctx.LanguageTR
	for _, c := range []struct {
		amount   int64
		currency string
		lang     clientctx.Language
		want     string
	}{
		{123450, "TRY", en, "₺1,234.50"},
		{123450, "TRY", tr, "1.234,50 ₺"},
		{1250, "TRY", en, "₺12.50"},
		{1250, "TRY", tr, "12,50 ₺"},
		{0, "TRY", en, "₺0.00"},
		{0, "TRY", tr, "0,00 ₺"},
		{5, "TRY", en, "₺0.05"},
		{50, "TRY", tr, "0,50 ₺"},
		{99999, "TRY", en, "₺999.99"},
		{100000, "TRY", en, "₺1,000.00"},
		{1234567890, "TRY", en, "₺12,345,678.90"},
		{1234567890, "TRY", tr, "12.345.678,90 ₺"},
		{-123450, "TRY", en, "-₺1,234.50"},
		{-123450, "TRY", tr, "-1.234,50 ₺"},
		{-5, "USD", en, "-$0.05"},
		{100, "USD", en, "$1.00"},
		{100, "USD", tr, "1,00 $"},
		{999, "EUR", en, "€9.99"},
		{123456, "GBP", tr, "1.234,56 £"},
		// Currencies without minor units, and with three.
		{1500, "JPY", en, "¥1,500"},
		{1500, "JPY", tr, "1.500 ¥"},
		{0, "JPY", en, "¥0"},
		{1234, "KWD", en, "KWD 1.234"},
		{1234567, "KWD", tr, "1.234,567 KWD"},
		{5, "KWD", en, "KWD 0.005"},
		// A currency without a symbol here is shown by its code, with its
		// own minor unit (ISO 4217); one nobody knows with two.
		{1250, "KRW", en, "KRW 1,250"},
		{1250, "CLP", tr, "1.250 CLP"},
		{1250, "BHD", en, "BHD 1.250"},
		{1250, "CHF", en, "CHF 12.50"},
		// ISO 4217's minor unit, which the amount is written in, not
		// CLDR's display digits (0 for IDR, COP, RSD, IQD).
		{1250, "IQD", en, "IQD 1.250"},
		{125000, "IDR", en, "IDR 1,250.00"},
		{125000, "COP", tr, "1.250,00 COP"},
		{1250, "RSD", en, "RSD 12.50"},
		{1250, "XOF", en, "XOF 1,250"},
		{250, "XYZ", en, "XYZ 2.50"},
		{250, "XYZ", tr, "2,50 XYZ"},
		// Extremes do not overflow.
		{math.MaxInt64, "TRY", en, "₺92,233,720,368,547,758.07"},
		{math.MinInt64, "TRY", en, "-₺92,233,720,368,547,758.08"},
		{math.MinInt64, "JPY", tr, "-9.223.372.036.854.775.808 ¥"},
	} {
		got := string(appendMoneyDisplay(nil, c.amount, c.currency, c.lang))
		if got != c.want {
			t.Errorf("appendMoneyDisplay(%d, %q, %v) = %q, want %q", c.amount, c.currency, c.lang, got, c.want)
		}
	}
}

// The display is written into a JSON string without escaping (shape.go),
// so whatever currency code the store sends must not be able to break out
// of it.
func TestMoneyDisplayOfAHostileCurrencyIsJSONSafe(t *testing.T) {
	for _, currency := range []string{`EV"IL`, `\`, "A\nB", "</script>", "\x00", "\xff", "tr y", "", "TOOLONGCODE", "try"} {
		for _, lang := range []clientctx.Language{clientctx.LanguageEN, clientctx.LanguageTR} {
			display := appendMoneyDisplay([]byte(`"`), 1250, currency, lang)
			display = append(display, '"')
			var s string
			if err := json.Unmarshal(display, &s); err != nil {
				t.Fatalf("currency %q (%v): display %s is not a JSON string: %v", currency, lang, display, err)
			}
		}
	}
	if got := string(appendMoneyDisplay(nil, 1250, `EV"IL`, clientctx.LanguageEN)); got != "¤12.50" {
		t.Fatalf("hostile currency shown as %q, want the generic sign ¤12.50", got)
	}
}

// FuzzMoneyDisplay: for any amount and currency, in both languages, the
// display is the sign, the symbol where the language puts it (before the
// number in English, after it and a space in Turkish), and the amount in
// the currency's minor digits, grouped by three with the language's
// separators (English "," and ".", Turkish "." and ","); taking the sign,
// the symbol and the separators off gives the amount back. It is valid
// UTF-8 with no character that would need escaping in a JSON string.
func FuzzMoneyDisplay(f *testing.F) {
	for _, c := range []struct {
		amount   int64
		currency string
	}{
		{0, "TRY"}, {123450, "TRY"}, {-5, "USD"}, {999, "EUR"}, {123456, "GBP"}, {1500, "JPY"}, {1234567, "KWD"},
		{1250, "KRW"}, {1250, "BHD"}, {1250, "CLF"}, {250, "XYZ"}, {250, `EV"IL`}, {math.MaxInt64, "TRY"},
		{math.MinInt64, "JPY"}, {math.MinInt64, "CLF"}, {-1, ""}, {1000, "\xff"},
	} {
		f.Add(c.amount, c.currency, false)
		f.Add(c.amount, c.currency, true)
	}
	f.Fuzz(func(t *testing.T, amount int64, currency string, turkish bool) {
		lang, thousands, decimal := clientctx.LanguageEN, ",", "."
		if turkish {
			lang, thousands, decimal = clientctx.LanguageTR, ".", ","
		}
		// English writes a code with a space after it ("KWD 1.234"),
		// Turkish puts a space before every symbol ("1.234 ₺").
		symbol, digits := "¤", 2
		if c, ok := currencies[currency]; ok {
			symbol, digits = c.symbol, c.digits
		} else if isCurrencyCode(currency) {
			symbol = currency + " "
			if d, ok := isoMinorDigits[currency]; ok {
				digits = d
			}
		}
		display := string(appendMoneyDisplay(nil, amount, currency, lang))
		if !utf8.ValidString(display) || strings.ContainsAny(display, "\"\\") ||
			strings.ContainsFunc(display, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("appendMoneyDisplay(%d, %q, %v) = %q: not safe in a JSON string", amount, currency, lang, display)
		}

		rest := display
		neg := strings.HasPrefix(rest, "-")
		rest = strings.TrimPrefix(rest, "-")
		var ok bool
		if turkish {
			rest, ok = strings.CutSuffix(rest, " "+strings.TrimSuffix(symbol, " "))
		} else {
			rest, ok = strings.CutPrefix(rest, symbol)
		}
		if !ok || neg != (amount < 0) {
			t.Fatalf("appendMoneyDisplay(%d, %q, %v) = %q: want the sign and the symbol %q", amount, currency, lang, display, symbol)
		}
		whole, frac := rest, ""
		if digits > 0 {
			var found bool
			if whole, frac, found = strings.Cut(rest, decimal); !found || len(frac) != digits {
				t.Fatalf("appendMoneyDisplay(%d, %q, %v) = %q: want %d minor digits after %q", amount, currency, lang, display, digits, decimal)
			}
		}
		groups := strings.Split(whole, thousands)
		for i, g := range groups {
			if len(g) == 0 || len(g) > 3 || i > 0 && len(g) != 3 || strings.Trim(g, "0123456789") != "" ||
				i == 0 && len(g) > 1 && g[0] == '0' {
				t.Fatalf("appendMoneyDisplay(%d, %q, %v) = %q: %q is not grouped by three", amount, currency, lang, display, whole)
			}
		}
		if strings.Trim(frac, "0123456789") != "" {
			t.Fatalf("appendMoneyDisplay(%d, %q, %v) = %q: minor digits %q", amount, currency, lang, display, frac)
		}
		n, okN := new(big.Int).SetString(strings.Join(groups, "")+frac, 10)
		if want := new(big.Int).Abs(big.NewInt(amount)); !okN || n.Cmp(want) != 0 {
			t.Fatalf("appendMoneyDisplay(%d, %q, %v) = %q: reads back as %v", amount, currency, lang, display, n)
		}
	})
}

// ISO 4217's four-digit currencies (the unidades de fomento) are shown with
// four decimals: 1250 minor units of CLF are 0.1250, not 12.50.
func TestMoneyDisplayOfFourDigitCurrencies(t *testing.T) {
	for _, c := range []struct {
		amount   int64
		currency string
		lang     clientctx.Language
		want     string
	}{
		{1250, "CLF", clientctx.LanguageEN, "CLF 0.1250"},
		{123456789, "UYW", clientctx.LanguageTR, "12.345,6789 UYW"},
	} {
		if got := string(appendMoneyDisplay(nil, c.amount, c.currency, c.lang)); got != c.want {
			t.Errorf("appendMoneyDisplay(%d, %q, %v) = %q, want %q", c.amount, c.currency, c.lang, got, c.want)
		}
	}
}
