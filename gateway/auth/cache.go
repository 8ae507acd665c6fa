package auth

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// tokenCache remembers successful verifications so a token presented again
// costs a SHA-256 and a map look-up instead of a signature check.
//
// Entries are keyed by the first 128 bits of the token's SHA-256, never by
// the token: memory per entry is fixed and no bearer secret sits in the
// map. 128 bits keep the map slot and the queue record small; reaching a
// cached identity with another token would take a second preimage of those
// 128 bits (about 2^128 hashes), and two valid tokens colliding by chance
// among 100,000 has odds of about 1 in 10^28. An entry lives until
// the earlier of the token's exp and admission + MaxTTL, and is also dead as
// soon as the key that verified it is retired from the key set. Expiry and
// retirement are checked on every hit, so no sweeper is needed; the fetch
// that retires a key also removes its entries at once (dropRetired).
//
// Bound: MaxEntries in total, counted across shards. Each shard keeps its
// admissions in order (a FIFO queue); when the cache is full, a new token
// pushes out the oldest entry of its own shard. The bound is global rather
// than a fixed share per shard, so uneven hashing never evicts while the
// cache as a whole has room (100,000 tokens fit in MaxEntries 100,000).
// Eviction is O(1) and never scans; an attacker flooding distinct valid
// tokens can only push out older entries, and each of those had to pass a
// signature check first. Failures are never cached.
type tokenCache struct {
	shards []cacheShard
	mask   uint64
	maxTTL time.Duration
	limit  int64
	size   atomic.Int64 // entries held, over all shards
}

type cacheShard struct {
	mu      sync.RWMutex
	entries map[tokenKey]cacheEntry
	queue   []queued // admission order, oldest at head
	head    int
	seq     uint64
	_       [64]byte // keep neighbouring shards' locks off one cache line
}

// queued is one admission; seq tells whether the entry still belongs to it
// (a token admitted again, or deleted and readmitted, has a newer seq).
type queued struct {
	sum tokenKey
	seq uint64
}

// tokenKey is the cache key of a token: the first half of its SHA-256.
type tokenKey [16]byte

func keyOf(sum *[sha256.Size]byte) tokenKey { return tokenKey(sum[:16]) }

type cacheEntry struct {
	id      *Identity // with the key that verified it
	expires int64     // unix nanoseconds; never after the token's exp
	seq     uint64
}

func newTokenCache(maxEntries int, maxTTL time.Duration) *tokenCache {
	n := 16
	if maxEntries < 16*4 {
		n = 1 // too small to split usefully
	}
	c := &tokenCache{shards: make([]cacheShard, n), mask: uint64(n - 1), maxTTL: maxTTL, limit: int64(maxEntries)}
	for i := range c.shards {
		c.shards[i].entries = make(map[tokenKey]cacheEntry)
	}
	return c
}

func (c *tokenCache) shard(sum *[sha256.Size]byte) *cacheShard {
	return &c.shards[binary.LittleEndian.Uint64(sum[:8])&c.mask]
}

// get returns the cached identity for the token hash and the end of its
// entry (Unix nanoseconds), or nil.
func (c *tokenCache) get(sum *[sha256.Size]byte, now int64) (*Identity, int64) {
	k := keyOf(sum)
	s := c.shard(sum)
	s.mu.RLock()
	e, ok := s.entries[k]
	s.mu.RUnlock()
	if !ok {
		return nil, 0
	}
	if now < e.expires && !e.id.key.retired.Load() {
		return e.id, e.expires
	}
	s.mu.Lock()
	if cur, ok := s.entries[k]; ok && cur.id == e.id {
		delete(s.entries, k)
		c.size.Add(-1)
	}
	s.mu.Unlock()
	return nil, 0
}

// put admits a verified identity (id.key set) and returns the end of its
// entry (Unix nanoseconds) and whether it was admitted. An identity whose
// token has already expired (accepted within the leeway) is not admitted.
func (c *tokenCache) put(sum *[sha256.Size]byte, id *Identity, now time.Time) (int64, bool) {
	// Compare as times: exp may lie centuries away, beyond what UnixNano
	// can hold, and only the bounded result is turned into nanoseconds.
	end := now.Add(c.maxTTL)
	if exp := id.ExpiresAt(); exp.Before(end) {
		end = exp
	}
	if !end.After(now) {
		return 0, false
	}
	expires := end.UnixNano()
	if c.limit <= 0 {
		return 0, false
	}
	k := keyOf(sum)
	s := c.shard(sum)
	s.mu.Lock()
	defer s.mu.Unlock()
	if id.key.retired.Load() {
		// Verified just before its key was retired: read under the
		// shard's lock, so either this is refused or dropRetired, which
		// runs once the key is marked, finds the entry.
		return 0, false
	}
	if cur, ok := s.entries[k]; ok { // verified twice concurrently: keep its place
		s.entries[k] = cacheEntry{id: id, expires: expires, seq: cur.seq}
		return expires, true
	}
	s.seq++
	// A free slot is taken by compare-and-swap: shards admitting at once,
	// each reading one slot free, would otherwise all take it and hold the
	// cache over its bound for good. A full cache replaces the shard's
	// oldest entry, whose count the new one takes over.
	if !c.takeSlot() && !s.evictOldest() {
		return 0, false // full, and this shard holds nothing to give up
	}
	s.entries[k] = cacheEntry{id: id, expires: expires, seq: s.seq}
	s.queue = append(s.queue, queued{sum: k, seq: s.seq})
	if live := len(s.entries); len(s.queue)-s.head > 2*live+1024 {
		s.prune()
	}
	return expires, true
}

// dropRetired removes the entries verified by a key now retired. The
// fetch that retires keys calls it: get would refuse those entries anyway,
// but each would stay counted, and hold its identity and the retired key,
// until a hit on it or an eviction, and after a rotation most never come
// again. It scans every entry, once per key-set change that retires a key.
func (c *tokenCache) dropRetired() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n := 0
		for k, e := range s.entries {
			if e.id.key.retired.Load() {
				delete(s.entries, k)
				n++
			}
		}
		if n > 0 {
			c.size.Add(-int64(n))
			s.prune()
		}
		s.mu.Unlock()
	}
}

// takeSlot counts one more entry if the cache is under its bound.
func (c *tokenCache) takeSlot() bool {
	for n := c.size.Load(); n < c.limit; n = c.size.Load() {
		if c.size.CompareAndSwap(n, n+1) {
			return true
		}
	}
	return false
}

// prune drops the queue records of entries that are gone (expired or
// retired ones deleted on a hit), keeping the order of the rest. It runs
// when dead records outnumber live ones, so its cost is amortised O(1).
func (s *cacheShard) prune() {
	n := 0
	for _, q := range s.queue[s.head:] {
		if cur, ok := s.entries[q.sum]; ok && cur.seq == q.seq {
			s.queue[n] = q
			n++
		}
	}
	clear(s.queue[n:])
	s.queue = s.queue[:n]
	s.head = 0
}

// evictOldest removes the shard's oldest live entry, leaving its count to
// the entry that replaces it. Queue records whose entry is gone or newer
// are skipped on the way. It reports whether an entry was removed.
func (s *cacheShard) evictOldest() bool {
	for s.head < len(s.queue) {
		q := s.queue[s.head]
		s.queue[s.head] = queued{}
		s.head++
		if cur, ok := s.entries[q.sum]; ok && cur.seq == q.seq {
			delete(s.entries, q.sum)
			s.compact()
			return true
		}
	}
	s.compact()
	return false
}

// compact drops the consumed head of the queue once it is half the slice,
// so the queue's memory stays proportional to the entries held.
func (s *cacheShard) compact() {
	if s.head > 1024 && s.head*2 >= len(s.queue) {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue = s.queue[:n]
		s.head = 0
	}
}
