package readcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// Status is how a lookup was answered; its String is the X-Cache header.
type Status uint8

const (
	// Miss: the answer was loaded (or the load failed).
	Miss Status = iota
	// Hit: a fresh entry was served.
	Hit
	// Stale: an expired entry was served, while revalidating or because the
	// upstream failed.
	Stale
)

func (s Status) String() string {
	switch s {
	case Hit:
		return "HIT"
	case Stale:
		return "STALE"
	default:
		return "MISS"
	}
}

// Loaded is what a load returns.
type Loaded struct {
	// Data is the encoded JSON data member of the answer. It is copied, so
	// the loader may reuse the slice afterwards.
	Data []byte
	// Tags name what the answer depends on, for [Cache.PurgeTag]. The
	// entry keeps the strings, not the slice: the loader may reuse it.
	Tags []string
	// Cacheable is false for answers that are returned to the callers of
	// this load but never stored (partial results, per-caller errors).
	Cacheable bool
}

// LoadFunc loads an answer on a miss or a refresh. It must honour ctx.
type LoadFunc func(ctx context.Context) (Loaded, error)

// Policy is the caching of one lookup, from its route's configuration.
type Policy struct {
	// TTL is how long a stored entry is fresh; 0 or less stores nothing.
	TTL time.Duration
	// StaleWhileRevalidate serves an entry this long past its freshness
	// while one background refresh runs.
	StaleWhileRevalidate time.Duration
	// StaleIfError serves an entry this long past its freshness when the
	// load fails with an upstream fault.
	StaleIfError time.Duration
	// RefreshTimeout is the deadline of a background refresh, and of a load
	// whose first caller has no deadline. 0 means 10 s.
	RefreshTimeout time.Duration
	// Partition is the share of the bounds an entry stored under p counts
	// in (Options.Partitions); one out of range counts in partition 0.
	Partition int
}

const defaultRefreshTimeout = 10 * time.Second

func (p Policy) refreshTimeout() time.Duration {
	if p.RefreshTimeout > 0 {
		return p.RefreshTimeout
	}
	return defaultRefreshTimeout
}

// retention is how long past its freshness an entry stored under p is kept.
func (p Policy) retention() time.Duration {
	return max(p.StaleWhileRevalidate, p.StaleIfError, 0)
}

// Entry is one cached answer. It is immutable and shared by every reader.
type Entry struct {
	data string
	// Times in Unix nanoseconds (compared against the cache clock's), 8
	// bytes each instead of time.Time's 24: entries are many.
	storedAt    int64
	freshUntil  int64
	retainUntil int64
	size        int64
	etag        [34]byte // held inline: one allocation less per entry
	cacheable   bool
	part        uint8 // the partition (Policy.Partition), in etag's padding too
	// refreshing admits one background refresh per entry. (Placed here it
	// fills the padding after etag.)
	refreshing atomic.Bool

	// links holds the entry's tags, sorted and unique, each with its link
	// in the tag index (the pointers guarded by Cache.mu, set while the
	// entry is stored). An entry with one tag (the common case) uses link1:
	// no allocation, and the Entry stays at 192 bytes, a size class.
	links []tagLink
	link1 [1]tagLink

	// Bookkeeping, guarded by Cache.mu.
	key          string
	older, newer *Entry // insertion order
	// seq is the place of the entry's load among all loads, by start: an
	// answer never replaces one whose load started later (insert).
	seq uint64
}

// Data is the encoded JSON data member. Strings cannot be modified, so
// handing the same entry to every reader is safe.
func (e *Entry) Data() string { return e.data }

// ETag is a strong validator of Data, quoted ("…"): the first 128 bits of
// its SHA-256 in hex, identical in every process and replica.
func (e *Entry) ETag() string { return unsafe.String(&e.etag[0], len(e.etag)) }

// StoredAt is when the answer was loaded.
func (e *Entry) StoredAt() time.Time { return time.Unix(0, e.storedAt) }

// FreshUntil is when the entry stops being fresh. For an answer that was not
// cacheable it equals StoredAt.
func (e *Entry) FreshUntil() time.Time { return time.Unix(0, e.freshUntil) }

// freshUntilFor is when e stops being fresh for a lookup whose policy TTL
// is ttl: the entry's own FreshUntil, or StoredAt + ttl when that comes
// sooner. So a lookup never reads an entry as fresh for longer than its own
// TTL allows: not a platform with a shorter TTL reading an entry another
// platform stored, nor any lookup after a reload shortened the TTL. A ttl
// of 0 or less leaves the entry's own freshness.
func (e *Entry) freshUntilFor(ttl time.Duration) int64 {
	if ttl > 0 && e.storedAt+int64(ttl) < e.freshUntil {
		return e.storedAt + int64(ttl)
	}
	return e.freshUntil
}

// Cacheable reports the loader's Cacheable: false means the answer must not
// be cached by clients either.
func (e *Entry) Cacheable() bool { return e.cacheable }

// Size is the estimated memory of the entry in bytes (see the package doc).
func (e *Entry) Size() int64 { return e.size }

// Tags returns a copy of the entry's tags, sorted.
func (e *Entry) Tags() []string {
	if len(e.links) == 0 {
		return nil
	}
	tags := make([]string, len(e.links))
	for i := range e.links {
		tags[i] = e.links[i].tag
	}
	return tags
}

func (e *Entry) hasTag(tag string) bool {
	_, found := slices.BinarySearchFunc(e.links, tag, func(l tagLink, t string) int { return strings.Compare(l.tag, t) })
	return found
}

// newEntry builds an entry from a loaded answer: the data is copied and the
// ETag computed once, here.
func newEntry(l Loaded, now time.Time) *Entry {
	sum := sha256.Sum256(l.Data)
	var etag [2 + 32]byte
	etag[0] = '"'
	hex.Encode(etag[1:33], sum[:16])
	etag[33] = '"'
	e := &Entry{
		data:       string(l.Data),
		etag:       etag,
		storedAt:   now.UnixNano(),
		freshUntil: now.UnixNano(),
		cacheable:  l.Cacheable,
	}
	switch tags := normalTags(l.Tags); len(tags) {
	case 0:
	case 1:
		e.link1[0].tag = tags[0]
		e.links = e.link1[:]
	default:
		e.links = make([]tagLink, len(tags))
		for i, t := range tags {
			e.links[i].tag = t
		}
	}
	return e
}

// normalTags returns the tags sorted, without duplicates or empty tags: a
// single tag as given (the common case, no allocation), else a copy. The
// caller copies the strings out; it must not keep the result.
func normalTags(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	if len(tags) == 1 && tags[0] != "" {
		return tags[:1:1]
	}
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if t != "" {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// EntryOverhead and TagOverhead are the fixed parts of an entry's size
// estimate, measured as heap growth per entry (TestOverheadEstimate) and
// rounded up. EntryOverhead covers the Entry, its ETag, the string header
// copies and go-cache's map slot; TagOverhead
// covers one tag link and, at worst, one new tag in the tag index.
const (
	EntryOverhead = 512
	TagOverhead   = 160
)

func (e *Entry) estimateSize() int64 {
	n := int64(len(e.data) + len(e.key) + EntryOverhead + TagOverhead*len(e.links))
	for i := range e.links {
		n += int64(len(e.links[i].tag))
	}
	return n
}
