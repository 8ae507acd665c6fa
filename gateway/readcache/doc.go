// Package readcache is the gateway's read cache: it keeps already-encoded
// answers of search and profile reads in memory so that apps are answered
// in microseconds and the user store is shielded from spikes.
//
// The package is the mechanism only. The gateway decides what goes into a
// key (see [Key]), which tags an answer carries and how long it lives (a
// [Policy] per lookup, taken from the route's configuration, which may change
// on reload). Correctness comes before hit rate: a key must capture
// everything that makes one caller's answer differ from another's, and an
// answer that may be wrong is not stored.
//
// # Lookups
//
// [Cache.Peek] is the hot path: a fresh entry or nothing, with no allocation
// and no write lock; so is [Cache.Get] on a fresh hit (provided the caller's
// load function is not a closure built per call). Keys are spread over 16
// go-cache shards, so a lookup takes one shard's read lock and bumps that
// shard's atomic hit counter; none of the bookkeeping below is touched by
// readers.
//
// [Cache.Get] adds the slow paths:
//
//   - Fresh entry: served as [Hit], no load.
//   - Miss: load. Concurrent misses of one key share a single load
//     (singleflight) and all receive its result, including a result that is
//     not cacheable, so Loaded.Data must not carry anything specific to one
//     request (request ids belong in the envelope's meta). The load runs on a context detached from every caller:
//     it keeps the first caller's values (trace ids) but not its
//     cancellation, and its deadline is the first caller's deadline, or
//     Policy.RefreshTimeout from now when that caller has none (10 s when
//     that is unset too). A caller whose own context ends stops waiting and
//     gets its context's error; the load goes on for the others and is still
//     stored; but the caller whose deadline the load has waits for it, as
//     the load ends at that deadline too, and when it still answers (an
//     enrichment cut short: a partial answer) that answer is the caller's;
//     it waits at most 250 ms past its deadline (a load that ignores its
//     context does not hold it longer).
//     [Cache.Close] cancels every load.
//   - Stale-while-revalidate: an entry past its freshness but within
//     Policy.StaleWhileRevalidate after it is served at once as [Stale], and
//     one background refresh (deadline Policy.RefreshTimeout) replaces it on
//     success; on a failure for which isFault is true the stale entry stays
//     and a later stale hit tries again, on another error (not found: the
//     data is gone) the entry is dropped, so that the next lookup loads and
//     returns it. At most one refresh per entry runs at a time.
//   - Stale-if-error: when the load fails with an error for which isFault is
//     true (the upstream failed or its breaker is open) and an entry exists
//     within Policy.StaleIfError after its freshness, that entry is served as
//     [Stale] instead of the error. Other errors (not found, bad request) are
//     returned as they are: stale data never masks a client-meaningful answer.
//   - Errors, and results whose Loaded.Cacheable is false, are returned to the
//     callers of that load and never stored.
//
// An entry's own freshness is fixed when it is stored (StoredAt + TTL), and
// each lookup judges it by its own Policy.TTL too: fresh until the sooner of
// FreshUntil and StoredAt + its TTL, so a lookup with a shorter TTL (another
// platform's, or after a reload shortened it) never reads an entry as fresh
// for longer than its TTL. The stale windows are read from the Policy of each
// lookup, counted from that freshness, but can never reach past what the
// entry was stored for: an entry is kept until FreshUntil +
// max(StaleWhileRevalidate, StaleIfError) of the policy it was stored with,
// then it expires.
//
// # Entries are immutable
//
// go-cache stores values by reference, so every reader receives the same
// *[Entry]. Its fields are unexported and its data is a string, which Go does
// not let anyone modify; [Entry.Tags] returns a copy. The loader's byte
// slice is copied when an entry is built, so the loader may reuse its buffer.
// Write the data with fasthttp's AppendBodyString or append(buf, s...), which
// copy without converting.
//
// # Bounded memory and eviction
//
// go-cache has no bound. This package holds at most Options.MaxEntries
// entries and Options.MaxBytes estimated bytes. An entry's size is
// len(data) + len(key) + Σ len(tag) + [EntryOverhead] + [TagOverhead] per
// tag; the two constants were measured (heap growth per entry, including
// go-cache's map slot, this package's index, the ETag and the tag index) and
// rounded up. An entry larger than MaxBytes/8 is not admitted.
//
// When an insert would exceed either bound, the oldest entries by insertion
// are evicted first (FIFO). With Options.Partitions, each partition has a
// share of both bounds: one holding more than its share evicts its own
// oldest entries, so a flood of one partition's keys cannot push another
// below its share; one within its share evicts the oldest of all. Readers never write: an LRU would need a write
// (and a write lock) on every hit, which is exactly what the hot path must
// not do. Entries live seconds to minutes, so insertion order is close to
// expiry order, and an entry that stays popular is re-inserted by its
// refresh and so becomes young again. The queue is an intrusive doubly
// linked list: insert, evict and remove are O(1), with no scans and no dead
// slots.
//
// Accounting is exact by construction: every entry enters and leaves
// go-cache through this package, under one mutex that also updates the
// counts, the insertion list and the tag index. go-cache's
// OnEvicted is not used (it is skipped on overwrite and Flush); an overwrite
// is accounted for before go-cache silently replaces the value.
//
// # Invalidation
//
// [Cache.PurgeTag] removes every entry carrying a tag (for example
// a user id, as the gateway tags: that user's /me and every search page
// that shows them) in
// O(entries with the tag), through a tag index kept with the entries.
// [Cache.PurgeHeldTag] is the same for a tag found gone by a load (the
// store's 404 for a user), but when no entry carries the tag it logs no
// purge: it only keeps the loads running then whose answers carry the tag
// from being stored (the last 1024 such tags are remembered for this).
// [Cache.PurgePrefix] scans every key (O(entries)); [Cache.PurgeAll] holds
// the lock for O(1) (it unlinks the dropped entries afterwards).
// A load that was running when a purge matching its result happened is not
// stored (the data it read may predate the change; the last 1024 purges are
// remembered for this, and a load that overlapped more is not stored), and a
// lookup that starts after a purge never joins a load that started before it.
// So after any purge, even one of other keys, two loads of one key can run
// at once: the answer of the load that started later is kept, whichever of
// them ends last.
//
// # Expiry
//
// Entries are stored in go-cache without a go-cache expiration. Every lookup
// compares the entry's own times with the cache's clock (a second clock read
// inside go-cache would double the cost of a hit), and this package's sweeper
// deletes entries whose retention has passed every CleanupInterval.
//
// go-cache's own sweep, DeleteExpired, holds go-cache's write lock for its
// whole scan, blocking every lookup: measured with 100 000 expired entries on
// the development machine (2 vCPUs), 8 to 9 ms without an OnEvicted hook and
// 17 to 53 ms with one, and a concurrent reader saw its lookup stall for the
// whole of it. The sweeper here instead walks the insertion list in chunks of
// 256 entries under this package's mutex and deletes entry by entry, so a
// lookup waits for one deletion at most and an insert for one chunk. A full
// sweep of 100 000 entries takes about 3.5 ms when none has expired and about
// 90 ms when all have (BenchmarkSweep), all of it off the read path.
// Stats.LastSweep reports the duration of the last sweep. FIFO eviction
// reclaims expired entries as well when the cache is full.
package readcache
