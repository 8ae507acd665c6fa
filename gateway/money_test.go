package gateway

import (
	"encoding/json"
	"math"
	"testing"

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
