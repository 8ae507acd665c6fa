package readcache

import "strconv"

// Key joins parts into a cache key that no other list of parts can produce:
// each part is written as its length in decimal, a colon, then the part
// ("a|b","c" → "3:a|b1:c"; "a","b|c" → "1:a3:b|c"). Because the encoding is
// self-delimiting, Key(p1, …, pk) is a prefix of Key(p1, …, pn) for n ≥ k,
// and of no key whose first k parts differ, which makes it the argument for
// PurgePrefix.
func Key(parts ...string) string {
	n := 0
	for _, p := range parts {
		n += len(p) + 4
	}
	return string(AppendKey(make([]byte, 0, n), parts...))
}

// AppendKey appends Key(parts...) to dst, for building keys in a reused
// buffer.
func AppendKey(dst []byte, parts ...string) []byte {
	for _, p := range parts {
		dst = strconv.AppendInt(dst, int64(len(p)), 10)
		dst = append(dst, ':')
		dst = append(dst, p...)
	}
	return dst
}
