package gateway

import "github.com/bffgate/edge/gateway/clientctx"

// msg names one client-facing message. Every text the gateway sends to a
// client is here, in English (the seed's wording) and Turkish, so no path
// can answer in another language or leak an internal error's text.
type msg uint8

const (
	msgValidationFailed msg = iota
	msgAuthRequired
	msgForbidden
	msgNotFound
	msgConflict
	msgMethodNotAllowed
	msgBodyTooLarge
	msgHeadersTooLarge
	msgMalformedRequest
	msgTooManyRequests
	msgInternal
	msgBadGateway
	msgUnavailable
	msgGatewayTimeout
	msgRequestTimeout
	msgAuthUnavailable
	msgVersionNotSupported
	msgURITooLong

	// Validation details.
	msgContentTypeJSON
	msgContentEncoding
	msgMalformedJSON
	msgUnknownField
	msgUsernameRequired
	msgUsernameType
	msgUsernameLength
	msgUsernameCharset
	msgUsernameStart
	msgUsernameEnd
	msgUsernameSeparators
	msgPageInvalid
	msgLimitInvalid
	msgQueryTooLong
	msgPageTooFar
	msgQueryInvalid
	msgQueryTwice
	msgUserIDInvalid
	msgUsernameTwice
	msgQueryTooManyWords
	msgHostRequired
	msgPageTwice
	msgLimitTwice
	msgAuthorizationTwice
	msgHostInvalid
	msgSchemeUnsupported
	msgContentTypeTwice

	msgCount
)

// catalog holds [English, Turkish] for every message.
var catalog = [msgCount][2]string{
	msgValidationFailed: {"Validation failed", "Doğrulama başarısız oldu"},
	msgAuthRequired:     {"Authentication required", "Kimlik doğrulaması gerekli"},
	msgForbidden:        {"Insufficient permissions", "Yetersiz yetki"},
	msgNotFound:         {"Resource not found", "Kaynak bulunamadı"},
	msgConflict: {"Resource already exists or cannot be changed in its current state",
		"Kaynak zaten mevcut veya mevcut durumunda değiştirilemez"},
	msgMethodNotAllowed: {"Method not allowed", "Bu yönteme izin verilmiyor"},
	msgBodyTooLarge:     {"Request body too large", "İstek gövdesi çok büyük"},
	msgHeadersTooLarge:  {"Request headers too large", "İstek başlıkları çok büyük"},
	msgMalformedRequest: {"Malformed request", "İstek hatalı biçimlendirilmiş"},
	msgTooManyRequests:  {"Too many requests, please try again later", "Çok fazla istek gönderildi, lütfen daha sonra tekrar deneyin"},
	msgInternal:         {"Internal server error", "Sunucuda beklenmeyen bir hata oluştu"},
	msgBadGateway:       {"The service returned an invalid response", "Hizmetten geçersiz bir yanıt alındı"},
	msgUnavailable:      {"Service temporarily unavailable, please try again later", "Hizmet geçici olarak kullanılamıyor, lütfen daha sonra tekrar deneyin"},
	msgGatewayTimeout:   {"The service did not respond in time", "Hizmet zamanında yanıt vermedi"},
	msgRequestTimeout:   {"Request timed out", "İstek zaman aşımına uğradı"},
	msgAuthUnavailable:  {"Authentication is temporarily unavailable, please try again later", "Kimlik doğrulama geçici olarak kullanılamıyor, lütfen daha sonra tekrar deneyin"},
	msgVersionNotSupported: {"HTTP version not supported: use HTTP/1.1",
		"HTTP sürümü desteklenmiyor: HTTP/1.1 kullanın"},
	msgURITooLong: {"Request URI too long", "İstek adresi (URI) çok uzun"},

	msgContentTypeJSON: {"Content-Type must be application/json", "Content-Type application/json olmalıdır"},
	msgContentEncoding: {"Content-Encoding is not supported: send the body uncompressed", "Content-Encoding desteklenmiyor: gövdeyi sıkıştırmadan gönderin"},
	msgMalformedJSON:   {"Request body is not valid JSON", "İstek gövdesi geçerli bir JSON değil"},
	msgUnknownField:    {"Request body contains an unknown field", "İstek gövdesinde bilinmeyen bir alan var"},
	msgUsernameRequired: {"username is required",
		"Kullanıcı adı zorunludur"},
	msgUsernameType: {"username must be a string",
		"Kullanıcı adı metin olmalıdır"},
	msgUsernameLength: {"username must be between 3 and 30 characters long",
		"Kullanıcı adı 3 ile 30 karakter arasında olmalıdır"},
	msgUsernameCharset: {"username may contain only English letters (a-z), digits, dots and underscores",
		"Kullanıcı adı yalnızca İngilizce harfler (a-z), rakamlar, nokta ve alt çizgi içerebilir"},
	msgUsernameStart: {"username must start with a letter",
		"Kullanıcı adı bir harfle başlamalıdır"},
	msgUsernameEnd: {"username must not end with a dot or an underscore",
		"Kullanıcı adı nokta veya alt çizgiyle bitemez"},
	msgUsernameSeparators: {"username must not contain two dots or underscores in a row",
		"Kullanıcı adında art arda iki nokta veya alt çizgi bulunamaz"},
	msgPageInvalid: {"page must be a whole number of at least 1",
		"page en az 1 olan bir tam sayı olmalıdır"},
	msgLimitInvalid: {"limit must be a whole number between 1 and %d",
		"limit 1 ile %d arasında bir tam sayı olmalıdır"},
	msgPageTooFar: {"page is too far: at most the first %d results can be fetched",
		"Sayfa çok ileride: en fazla ilk %d sonuç getirilebilir"},
	msgQueryInvalid: {"query contains invalid characters",
		"Arama metni geçersiz karakterler içeriyor"},
	msgQueryTooLong: {"query must be at most 100 characters long",
		"Arama metni en fazla 100 karakter olabilir"},
	msgQueryTwice: {"query must be given once",
		"Arama metni yalnızca bir kez verilmelidir"},
	msgUserIDInvalid: {"user id is not valid",
		"Kullanıcı kimliği geçerli değil"},
	msgUsernameTwice: {"username must be given once",
		"Kullanıcı adı yalnızca bir kez verilmelidir"},
	msgQueryTooManyWords: {"query must have at most %d words",
		"Arama metni en fazla %d kelime içerebilir"},
	msgHostRequired: {"the Host header is required",
		"Host başlığı zorunludur"},
	msgPageTwice: {"page must be given once",
		"page yalnızca bir kez verilmelidir"},
	msgLimitTwice: {"limit must be given once",
		"limit yalnızca bir kez verilmelidir"},
	msgAuthorizationTwice: {"the Authorization header must be given once",
		"Authorization başlığı yalnızca bir kez verilmelidir"},
	msgHostInvalid: {"the Host header is not valid",
		"Host başlığı geçerli değil"},
	msgSchemeUnsupported: {"the URL scheme must be http or https",
		"URL şeması http veya https olmalıdır"},
	msgContentTypeTwice: {"the Content-Type header must be given once",
		"Content-Type başlığı yalnızca bir kez verilmelidir"},
}

// text returns the message in the caller's language.
func (m msg) text(lang clientctx.Language) string {
	if lang == clientctx.LanguageTR {
		return catalog[m][1]
	}
	return catalog[m][0]
}

// statusMessage is the generic message of an HTTP error status.
func statusMessage(status int) msg {
	switch status {
	case 400:
		return msgValidationFailed
	case 401:
		return msgAuthRequired
	case 403:
		return msgForbidden
	case 404:
		return msgNotFound
	case 405:
		return msgMethodNotAllowed
	case 408:
		return msgRequestTimeout
	case 409:
		return msgConflict
	case 413:
		return msgBodyTooLarge
	case 414:
		return msgURITooLong
	case 429:
		return msgTooManyRequests
	case 431:
		return msgHeadersTooLarge
	case 502:
		return msgBadGateway
	case 503:
		return msgUnavailable
	case 504:
		return msgGatewayTimeout
	case 505:
		return msgVersionNotSupported
	}
	if status >= 400 && status < 500 {
		return msgMalformedRequest
	}
	return msgInternal
}
