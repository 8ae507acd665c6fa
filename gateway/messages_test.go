package gateway

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bffgate/edge/gateway/clientctx"
)

// turkishLetters are the letters Turkish has and English does not.
const turkishLetters = "çğıöşüÇĞİÖŞÜ"

// Turkish texts that are correct without any of those letters.
var plainTurkish = map[msg]bool{
	msgForbidden:    true, // "Yetersiz yetki"
	msgQueryTooLong: true, // "Arama metni en fazla 100 karakter olabilir"
}

func TestEveryMessageHasBothLanguages(t *testing.T) {
	for m := msg(0); m < msgCount; m++ {
		en, tr := m.text(clientctx.LanguageEN), m.text(clientctx.LanguageTR)
		if strings.TrimSpace(en) == "" || strings.TrimSpace(tr) == "" {
			t.Errorf("message %d: en %q, tr %q: both must be written", m, en, tr)
			continue
		}
		if en == tr {
			t.Errorf("message %d: the Turkish text is the English one: %q", m, en)
		}
		if !utf8.ValidString(en) || !utf8.ValidString(tr) || en != strings.TrimSpace(en) || tr != strings.TrimSpace(tr) {
			t.Errorf("message %d: invalid UTF-8 or stray spaces: %q / %q", m, en, tr)
		}
		// Written properly: Turkish letters, not their ASCII stand-ins.
		if !plainTurkish[m] && !strings.ContainsAny(tr, turkishLetters) {
			t.Errorf("message %d: Turkish text %q has no Turkish letter; is it written without them?", m, tr)
		}
		// The same format verbs in both, so Sprintf fills both alike.
		if strings.Count(en, "%") != strings.Count(tr, "%") || strings.Count(en, "%d") != strings.Count(tr, "%d") {
			t.Errorf("message %d: format verbs differ: %q / %q", m, en, tr)
		}
	}
}

// Known words, spelled with their Turkish letters.
func TestTurkishSpelling(t *testing.T) {
	for m, word := range map[msg]string{
		msgValidationFailed:    "Doğrulama başarısız",
		msgAuthRequired:        "Kimlik doğrulaması gerekli",
		msgNotFound:            "bulunamadı",
		msgMethodNotAllowed:    "yönteme",
		msgBodyTooLarge:        "İstek gövdesi",
		msgHeadersTooLarge:     "başlıkları",
		msgURITooLong:          "çok uzun",
		msgTooManyRequests:     "Çok fazla istek",
		msgAuthUnavailable:     "geçici olarak kullanılamıyor",
		msgVersionNotSupported: "sürümü desteklenmiyor",
		msgUsernameRequired:    "Kullanıcı adı",
		msgUsernameCharset:     "İngilizce harfler",
	} {
		if tr := m.text(clientctx.LanguageTR); !strings.Contains(tr, word) {
			t.Errorf("message %d: Turkish %q lacks %q", m, tr, word)
		}
	}
	// No ASCII-folded Turkish anywhere.
	for m := msg(0); m < msgCount; m++ {
		tr := strings.ToLower(m.text(clientctx.LanguageTR))
		for _, folded := range []string{"dogrula", "basarisiz", "bulunamadi", "kullanici", "gecici", "gonder", "govde", "baslik", "yonte", "izin verilmiyor."} {
			if strings.Contains(tr, folded) {
				t.Errorf("message %d: %q contains the ASCII-folded %q", m, tr, folded)
			}
		}
	}
}

// The seed's English messages, word for word.
func TestSeedMessages(t *testing.T) {
	for status, want := range map[int]string{
		400: "Validation failed",
		401: "Authentication required",
		403: "Insufficient permissions",
		404: "Resource not found",
		409: "Resource already exists or cannot be changed in its current state",
	} {
		if got := statusMessage(status).text(clientctx.LanguageEN); got != want {
			t.Errorf("status %d: %q, want the seed's %q", status, got, want)
		}
	}
}

func TestStatusMessage(t *testing.T) {
	for status, want := range map[int]msg{
		400: msgValidationFailed, 401: msgAuthRequired, 403: msgForbidden, 404: msgNotFound,
		405: msgMethodNotAllowed, 408: msgRequestTimeout, 409: msgConflict, 413: msgBodyTooLarge,
		414: msgURITooLong, 429: msgTooManyRequests, 431: msgHeadersTooLarge, 502: msgBadGateway, 503: msgUnavailable,
		504: msgGatewayTimeout, 500: msgInternal, 505: msgVersionNotSupported,
		// Other client errors are "malformed"; other server errors internal.
		402: msgMalformedRequest, 411: msgMalformedRequest, 415: msgMalformedRequest,
		418: msgMalformedRequest, 422: msgMalformedRequest, 499: msgMalformedRequest,
		501: msgInternal, 599: msgInternal,
		// Not errors at all: never shown, but never a panic either.
		0: msgInternal, 200: msgInternal, 302: msgInternal, 600: msgInternal, -1: msgInternal,
	} {
		if got := statusMessage(status); got != want {
			t.Errorf("statusMessage(%d) = %q, want %q", status, got.text(0), want.text(0))
		}
	}
}

func TestMessageLanguageFallsBackToEnglish(t *testing.T) {
	for _, lang := range []clientctx.Language{clientctx.LanguageEN, clientctx.Language(2), clientctx.Language(255)} {
		if got := msgNotFound.text(lang); got != "Resource not found" {
			t.Errorf("language %d: %q, want English", lang, got)
		}
	}
	if got := msgNotFound.text(clientctx.LanguageTR); got != "Kaynak bulunamadı" {
		t.Errorf("Turkish: %q", got)
	}
}
