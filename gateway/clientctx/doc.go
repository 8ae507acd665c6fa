// Package clientctx owns the client context of a request: the language, time
// zone, platform, app version and device id that the apps send as headers.
// Normalize turns the raw header bytes into one typed, canonical Context;
// handlers and later middleware read that value and never the raw headers, so
// every request is judged by the same rules and the user store receives the
// same canonical spellings.
//
// # Headers
//
// The names are the same inbound and towards the user store: X-Language,
// X-Timezone, X-Platform, X-App-Version and X-Device-Id. Accept-Language is
// read when X-Language is absent or unusable. When a header is repeated, the
// first occurrence counts (fasthttp's Peek), except Accept-Language, whose
// lines are one list (RFC 9110 section 5.3; the gateway joins them before
// Normalize sees the value). Surrounding spaces and tabs are
// trimmed from every value; nothing else is ever repaired. Matching is
// ASCII-only: look-alikes such as "İstanbul", "UTC+３" or the Kelvin sign never
// fold into an accepted value.
//
// # Language
//
// Both X-Language and Accept-Language are read as language lists in the
// Accept-Language syntax (RFC 9110): "tag[;q=w], ...". A tag is subtags of 1
// to 8 ASCII letters or digits, the first of letters only, joined by "-" or
// "_" ("tr", "TR", "tr-TR", "tr_TR", "en-GB", "en-419"); only the primary
// subtag matters, case-insensitively, so every "en-*" is en and every "tr-*"
// is tr ("tur" and "trk" are neither). Weights run from 0 to 1 with up
// to three decimals; q=0 means "not acceptable"; an entry with a malformed tag
// or weight is skipped, other entries still count. The supported language
// with the highest weight wins, ties going to the one listed first; a language
// named twice keeps its highest weight. "*" lends its weight to each supported
// language the list does not name (so "en;q=0, *" is tr), and when "*" alone
// decides, en wins.
//
// X-Language is the app's own choice, so it wins whenever it names en or tr
// with a weight above zero, and then the language it names decides: its "*"
// entries lend no weight ("tr;q=0.5, *" is tr). A value naming neither
// (a lone "*", an unsupported language such as "de", a malformed value) is
// ignored and reported in Context.Rejected; then Accept-Language decides,
// and when it cannot, the language is en.
//
// Each header is read up to 1024 bytes and 32 entries: a longer header is cut
// at its last comma within the limit, so no entry is ever read half-way.
//
// # Time zone
//
// The canonical spelling is the seed's "UTC±HH:MM": "UTC+00:00" for UTC,
// "UTC+03:00", "UTC-09:30", "UTC+05:45", and also the offsets the seed's list
// skips but the world uses, such as "UTC-08:00". Accepted spellings, letters
// case-insensitive:
//
//   - "UTC", "GMT", "Z";
//   - an optional "UTC" or "GMT" prefix, then a sign and H, HH, HHMM, H:MM or
//     HH:MM: "UTC+3", "UTC+03", "UTC+0300", "UTC+03:00", "+03:00", "+0300",
//     "+03", "GMT+3", "GMT-03:30" ("GMT+3" means three hours east, as apps
//     mean it, not the inverted POSIX sign);
//   - an IANA zone name ("Europe/Istanbul", "America/Los_Angeles",
//     "Asia/Kolkata"), resolved to its offset at the request's time, so
//     daylight saving time is honoured. "Etc/GMT+3" is an IANA name and keeps
//     its POSIX meaning, UTC-03:00.
//
// An offset must lie between -12:00 and +14:00 with minutes 00, 15, 30 or 45;
// anything else ("UTC+15", "UTC-13", "UTC+03:07", "UTC+3:60", "3", "UTC +3")
// is invalid. An IANA name whose offset at that time is not such a value
// (only historical dates have them) is invalid too.
//
// IANA names are checked in three steps, and a raw header never reaches
// time.LoadLocation: first their shape (at most 64 bytes of ASCII letters,
// digits, "_", "+" and "-", in two or three non-empty segments joined by "/",
// which rules out "..", a leading "/", backslashes and NUL), then membership
// in the fixed list of zone names shipped with the Go toolchain (zones.go,
// matched case-insensitively; go generate refreshes it, and a test fails when
// it lags the toolchain), and only then a load of the listed name. Loaded
// locations are kept for the life of the process; the list bounds that cache
// (about 550 names, each loaded at most once), so invalid names are never
// remembered and cost only a map look-up. Single-segment legacy names such as
// "EST" or "Japan" are not accepted. The toolchain's tz database is embedded
// (time/tzdata), so names resolve in a container without zoneinfo files; a
// host's newer zoneinfo files are preferred when present.
//
// An absent or invalid time zone is "UTC+00:00", the seed's default.
//
// # Platform
//
// The seed's values web, mobile_ios, mobile_android, admin, api and unknown,
// case-insensitive, with "-" read as "_". Aliases: ios, iphone, ipad and
// ipados are mobile_ios; android is mobile_android; browser is web. An absent
// or empty header is web (the seed's default); anything else is unknown,
// including "all", which names every platform in a policy and is never a
// client. The platform is what the client claims, not a credential: policies
// must not grant anything on its word alone.
//
// # App version and device id
//
// Both are optional and passed on only when valid. An app version is 1 to 32
// bytes of ASCII letters, digits and ". _ + -" ("1.2.3",
// "4.0.0-beta.1+build.7"); a device id is 1 to 128 bytes of ASCII letters,
// digits and ". _ : -" (UUIDs, Android ids, IDFVs). Case is kept. An invalid
// value is dropped (""), never cut down to a valid prefix.
//
// # Cost
//
// Normalize runs on every request. It keeps no reference to the header bytes,
// and it allocates only the copies of a valid app version and device id:
// languages and platforms are small integers and every canonical time zone is
// a string built once at start-up. Through a connection's Memo (NormalizeOn)
// it copies them only when they differ from what the connection sent last.
package clientctx
