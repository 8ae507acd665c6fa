package clientctx

import "bytes"

// Language is a language the gateway answers in.
type Language uint8

// The supported languages. The zero value is the default, en.
const (
	LanguageEN Language = iota
	LanguageTR
)

// String gives the seed's value: "en" or "tr".
func (l Language) String() string {
	if l == LanguageTR {
		return "tr"
	}
	return "en"
}

// Bounds on the work spent on one language header; see the package doc.
const (
	maxLanguageBytes   = 1024
	maxLanguageEntries = 32
	// maxSubtagBytes is RFC 5646's longest subtag.
	maxSubtagBytes = 8
)

// ParseLanguage picks the response language from the X-Language and
// Accept-Language values (either may be nil): a usable X-Language wins, then
// Accept-Language, then en.
func ParseLanguage(xLanguage, acceptLanguage []byte) Language {
	l, _ := parseLanguage(xLanguage, acceptLanguage)
	return l
}

// parseLanguage is ParseLanguage that also reports whether a non-empty
// X-Language was rejected.
func parseLanguage(xLanguage, acceptLanguage []byte) (l Language, xRejected bool) {
	l, ok := parseLanguageList(xLanguage, false)
	if ok {
		return l, false
	}
	xRejected = sent(xLanguage)
	if l, ok = parseLanguageList(acceptLanguage, true); ok {
		return l, xRejected
	}
	return LanguageEN, xRejected
}

// weight is the best weight a list gave one language, and where.
type weight struct {
	q, pos int
	set    bool
}

func (w *weight) offer(q, pos int) {
	if !w.set || q > w.q {
		*w = weight{q: q, pos: pos, set: true}
	}
}

// parseLanguageList picks the best supported language of a language list;
// ok is false when no supported language is acceptable. With wildcards
// false, "*" entries are skipped: X-Language's choice must be a language
// the list names (an app's "tr;q=0.5, *" is tr, not the wildcard's en).
func parseLanguageList(v []byte, wildcards bool) (l Language, ok bool) {
	if len(v) > maxLanguageBytes {
		v = v[:maxLanguageBytes]
		i := bytes.LastIndexByte(v, ',')
		if i < 0 {
			return LanguageEN, false
		}
		v = v[:i]
	}
	var en, tr, wildcard weight
	for pos := 0; len(v) > 0 && pos < maxLanguageEntries; pos++ {
		entry := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			entry, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		tag, q, valid := parseLanguageEntry(entry)
		if !valid {
			continue
		}
		switch tag {
		case tagEN:
			en.offer(q, pos)
		case tagTR:
			tr.offer(q, pos)
		case tagAny:
			if wildcards {
				wildcard.offer(q, pos)
			}
		}
	}

	if !en.set {
		en = wildcard
	}
	if !tr.set {
		tr = wildcard
	}
	enOK, trOK := en.set && en.q > 0, tr.set && tr.q > 0
	switch {
	case enOK && (!trOK || en.q > tr.q || en.q == tr.q && en.pos <= tr.pos):
		return LanguageEN, true
	case trOK:
		return LanguageTR, true
	}
	return LanguageEN, false
}

type languageTag uint8

const (
	tagOther languageTag = iota
	tagEN
	tagTR
	tagAny
)

// parseLanguageEntry reads one "tag[;q=w]" entry; q is in thousandths.
// valid is false for a malformed tag or weight.
func parseLanguageEntry(entry []byte) (tag languageTag, q int, valid bool) {
	var params []byte
	if i := bytes.IndexByte(entry, ';'); i >= 0 {
		entry, params = entry[:i], entry[i+1:]
	}
	entry = TrimOWS(entry)
	if tag, valid = classifyLanguageTag(entry); !valid {
		return tagOther, 0, false
	}

	q = 1000
	for len(params) > 0 {
		p := params
		if i := bytes.IndexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			params = nil
		}
		p = TrimOWS(p)
		if len(p) < 2 || toLowerASCII(p[0]) != 'q' || p[1] != '=' {
			continue // Accept-Language defines no other parameter; ignore it
		}
		if q, valid = parseQValue(p[2:]); !valid {
			return tagOther, 0, false
		}
	}
	return tag, q, true
}

// classifyLanguageTag checks a tag's shape (subtags of 1 to 8 ASCII letters
// or digits joined by "-" or "_", the first all letters) and tells which
// supported language its primary subtag names.
func classifyLanguageTag(t []byte) (languageTag, bool) {
	if len(t) == 1 && t[0] == '*' {
		return tagAny, true
	}
	primaryEnd := -1
	subtagLen := 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '-' || c == '_':
			if subtagLen == 0 {
				return tagOther, false
			}
			if primaryEnd < 0 {
				primaryEnd = i
			}
			subtagLen = 0
			continue
		case isLetter(c):
		case isDigit(c) && primaryEnd >= 0:
		default:
			return tagOther, false
		}
		if subtagLen++; subtagLen > maxSubtagBytes {
			return tagOther, false
		}
	}
	if subtagLen == 0 {
		return tagOther, false // empty tag or a trailing separator
	}
	if primaryEnd < 0 {
		primaryEnd = len(t)
	}
	switch primary := t[:primaryEnd]; {
	case EqualFoldASCII(primary, "en"):
		return tagEN, true
	case EqualFoldASCII(primary, "tr"):
		return tagTR, true
	}
	return tagOther, true
}

// parseQValue reads an RFC 9110 qvalue ("0", "0.5", "1.000") in thousandths.
func parseQValue(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	q := int(v[0]-'0') * 1000
	if len(v) == 1 {
		return q, true
	}
	if v[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, c := range v[2:] {
		if !isDigit(c) {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}
