package gateway

import (
	"strconv"

	"github.com/bffgate/edge/gateway/clientctx"
)

// Money is shown to the apps as minor units and currency (for arithmetic)
// plus a display string formatted for the caller's language: English
// "₺1,234.50", Turkish "1.234,50 ₺". Amounts stay integers end to end.

type currencyInfo struct {
	symbol string
	digits int // minor-unit digits
}

var currencies = map[string]currencyInfo{
	"TRY": {"₺", 2}, "USD": {"$", 2}, "EUR": {"€", 2}, "GBP": {"£", 2},
	"JPY": {"¥", 0}, "KWD": {"KWD ", 3},
}

// isoMinorDigits are the ISO 4217 minor units other than two (List One,
// funds and metals left out); any other code has two.
var isoMinorDigits = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
	"RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"CLF": 4, "UYW": 4,
}

// appendMoneyDisplay appends the display string of an amount.
func appendMoneyDisplay(dst []byte, amountMinor int64, currency string, lang clientctx.Language) []byte {
	info, ok := currencies[currency]
	if !ok {
		// The display is written into JSON unescaped (shape.go): an unknown
		// currency shows its code only when it is shaped like one (ISO
		// 4217, three capital letters), otherwise the generic sign.
		info = currencyInfo{symbol: "¤", digits: 2}
		if isCurrencyCode(currency) {
			info.symbol = currency + " "
			// Its ISO 4217 minor unit, the one amountMinor is written
			// in: 1250 KRW is 1,250, not 12.50. Not CLDR's display
			// digits (x/text/currency), which drop minor units that
			// exist (IDR, COP, RSD: 0) and IQD's third.
			if d, ok := isoMinorDigits[currency]; ok {
				info.digits = d
			}
		}
	}
	neg := amountMinor < 0
	u := uint64(amountMinor)
	if neg {
		u = uint64(-amountMinor)
	}
	pow := uint64(1)
	for i := 0; i < info.digits; i++ {
		pow *= 10
	}
	whole, frac := u/pow, u%pow

	thousands, decimal := byte(','), byte('.')
	if lang == clientctx.LanguageTR {
		thousands, decimal = '.', ','
	}
	if neg {
		dst = append(dst, '-')
	}
	if lang != clientctx.LanguageTR {
		dst = append(dst, info.symbol...)
	}
	var digits [20]byte
	w := strconv.AppendUint(digits[:0], whole, 10)
	for i, d := range w {
		if i > 0 && (len(w)-i)%3 == 0 {
			dst = append(dst, thousands)
		}
		dst = append(dst, d)
	}
	if info.digits > 0 {
		dst = append(dst, decimal)
		f := strconv.AppendUint(digits[:0], frac, 10)
		for i := len(f); i < info.digits; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, f...)
	}
	if lang == clientctx.LanguageTR {
		dst = append(dst, ' ')
		dst = append(dst, trimSpace(info.symbol)...)
	}
	return dst
}

func trimSpace(s string) string {
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}

func isCurrencyCode(s string) bool {
	return len(s) == 3 && 'A' <= s[0] && s[0] <= 'Z' && 'A' <= s[1] && s[1] <= 'Z' && 'A' <= s[2] && s[2] <= 'Z'
}
