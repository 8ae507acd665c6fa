package auth

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// tokenCache remembers successful verifications so a token presented again
// costs a SHA-256 and a map look-up instead of a signature check.
//
// Entries are keyed by the token's SHA-256, never by the token: memory per
// entry is fixed and no bearer secret sits in the map. An entry lives until
// the earlier of the token's exp and admission + MaxTTL, and is also dead as
// soon as the key that verified it is retired from the key set. Expiry and
// retirement are checked on every hit, so no sweeper is needed.
//
// Bound: MaxEntries in total, split over shards. Each shard admits into a
// ring of slots in order; when the ring is full, a new token takes the
// oldest slot and evicts whatever entry still holds it (FIFO). Eviction is
// O(1) and never scans; an attacker flooding distinct valid tokens can only
// push out older entries, and each of those had to pass a signature check
// first. Failures are never cached.
type tokenCache struct {
	shards []cacheShard
	mask   uint64
	maxTTL time.Duration
}

type cacheShard struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]cacheEntry
	ring    [][sha256.Size]byte // admission order; a ring once full
	next    int                 // the ring slot the next admission takes, once full
	limit   int
	_       [64]byte // keep neighbouring shards' locks off one cache line
}

type cacheEntry struct {
	id      *Identity
	key     *verifyKey
	expires int64 // unix nanoseconds; never after the token's exp
	slot    int
}

func newTokenCache(maxEntries int, maxTTL time.Duration) *tokenCache {
	n := 16
	if maxEntries < 16*4 {
		n = 1 // too small to split usefully
	}
	c := &tokenCache{shards: make([]cacheShard, n), mask: uint64(n - 1), maxTTL: maxTTL}
	for i := range c.shards {
		s := &c.shards[i]
		s.limit = maxEntries / n
		if i < maxEntries%n {
			s.limit++
		}
		s.entries = make(map[[sha256.Size]byte]cacheEntry)
	}
	return c
}

func (c *tokenCache) shard(sum *[sha256.Size]byte) *cacheShard {
	return &c.shards[binary.LittleEndian.Uint64(sum[:8])&c.mask]
}

// get returns the cached identity for the token hash, or nil.
func (c *tokenCache) get(sum *[sha256.Size]byte, now int64) *Identity {
	s := c.shard(sum)
	s.mu.RLock()
	e, ok := s.entries[*sum]
	s.mu.RUnlock()
	if !ok {
		return nil
	}
	if now < e.expires && !e.key.retired.Load() {
		return e.id
	}
	s.mu.Lock()
	if cur, ok := s.entries[*sum]; ok && cur.id == e.id {
		delete(s.entries, *sum)
	}
	s.mu.Unlock()
	return nil
}

// put admits a verified identity. An identity whose token has already
// expired (accepted within the leeway) is not admitted.
func (c *tokenCache) put(sum *[sha256.Size]byte, id *Identity, key *verifyKey, now time.Time) {
	// Compare as times: exp may lie centuries away, beyond what UnixNano
	// can hold, and only the bounded result is turned into nanoseconds.
	end := now.Add(c.maxTTL)
	if id.ExpiresAt.Before(end) {
		end = id.ExpiresAt
	}
	if !end.After(now) {
		return
	}
	expires := end.UnixNano()
	s := c.shard(sum)
	if s.limit == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.entries[*sum]; ok { // verified twice concurrently: keep its slot
		s.entries[*sum] = cacheEntry{id: id, key: key, expires: expires, slot: cur.slot}
		return
	}
	var slot int
	if len(s.ring) < s.limit {
		slot = len(s.ring)
		s.ring = append(s.ring, *sum)
	} else {
		slot = s.next
		s.next = (slot + 1) % s.limit
		victim := s.ring[slot]
		if cur, ok := s.entries[victim]; ok && cur.slot == slot {
			delete(s.entries, victim)
		}
		s.ring[slot] = *sum
	}
	s.entries[*sum] = cacheEntry{id: id, key: key, expires: expires, slot: slot}
}

// len counts the entries held, live or not yet noticed dead.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.entries)
		s.mu.RUnlock()
	}
	return n
}
