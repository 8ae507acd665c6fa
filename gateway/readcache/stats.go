package readcache

import "time"

// Stats is a snapshot of the cache.
type Stats struct {
	// Entries and Bytes are what the cache holds now, expired entries not
	// yet swept included (they still use memory).
	Entries    int
	Bytes      int64
	MaxEntries int
	MaxBytes   int64
	// FillRatio is the larger of Entries/MaxEntries and Bytes/MaxBytes.
	FillRatio float64
	// Hits, Misses and StaleServes count lookups by their Status.
	Hits        uint64
	Misses      uint64
	StaleServes uint64
	// Loads counts loads actually run (a shared load counts once).
	Loads uint64
	// Waiting is the number of callers waiting for a load right now.
	Waiting int
	// RefreshFailures counts background refreshes that failed.
	RefreshFailures uint64
	// Rejected counts answers too large to be admitted (over MaxBytes/8).
	Rejected  uint64
	Evictions Evictions
	// LastSweep is how long the last expiry sweep took (lookups are never
	// blocked by more than one of its deletions).
	LastSweep time.Duration
}

// Evictions counts entries that left the cache, by reason. Overwrites are
// not evictions.
type Evictions struct {
	Capacity uint64
	Expired  uint64
	Purge    uint64
}

// Stats returns the current counts.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	s := Stats{
		Entries:    c.entries,
		Bytes:      c.bytes,
		MaxEntries: c.maxEntries,
		MaxBytes:   c.maxBytes,
		Evictions:  c.evictions,
	}
	c.mu.Unlock()
	s.FillRatio = max(float64(s.Entries)/float64(s.MaxEntries), float64(s.Bytes)/float64(s.MaxBytes))
	for i := range c.shards {
		s.Hits += c.shards[i].hits.Load()
	}
	s.Misses = c.misses.Load()
	s.StaleServes = c.stale.Load()
	s.Loads = c.loads.Load()
	s.Waiting = int(c.waiting.Load())
	s.RefreshFailures = c.refreshFailures.Load()
	s.Rejected = c.rejected.Load()
	s.LastSweep = time.Duration(c.lastSweep.Load())
	return s
}
