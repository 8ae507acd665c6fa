package readcache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"
)

// Options bound the cache. Zero or negative values take the defaults.
type Options struct {
	// MaxEntries caps the number of entries (default 10 000).
	MaxEntries int
	// MaxBytes caps the estimated bytes of all entries (default 64 MiB).
	MaxBytes int64
	// CleanupInterval is how often expired entries are swept (default 1 min).
	CleanupInterval time.Duration
	// Partitions splits the bounds into shares (default 1, at most 256):
	// Policy.Partition says an entry's. A partition that holds more than
	// its share (MaxEntries and MaxBytes divided by Partitions) makes room
	// from its own oldest entries, so no partition can push another below
	// its share; within its share it makes room from the oldest of all.
	Partitions int
	// Clock replaces time.Now for freshness, retention and sweeps (tests).
	// Load deadlines always use the real clock.
	Clock func() time.Time
}

const (
	defaultMaxEntries      = 10_000
	defaultMaxBytes        = 64 << 20
	defaultCleanupInterval = time.Minute
)

// Reasons given to Observer.Evicted.
const (
	EvictCapacity = "capacity"
	EvictExpired  = "expired"
	EvictPurge    = "purge"
)

// Observer receives the cache's events, typically to update metrics. Its
// methods are called on the hot path and must be fast and must not call
// back into the cache.
type Observer interface {
	// Lookup is called once per Get, and by Peek when it returns a hit.
	Lookup(status Status)
	// Evicted is called after n entries left the cache for reason.
	Evicted(reason string, n int)
}

type noObserver struct{}

func (noObserver) Lookup(Status)       {}
func (noObserver) Evicted(string, int) {}

// ErrNoLoader is returned by Get on a miss when load is nil.
var ErrNoLoader = errors.New("readcache: no load function")

// Cache is the read cache. It is safe for concurrent use.
type Cache struct {
	shards        [shardCount]shard
	seed          maphash.Seed
	now           func() time.Time
	obs           Observer
	maxEntries    int
	maxBytes      int64
	maxEntryBytes int64

	flights singleflight.Group

	// mu guards the bookkeeping below and every change to store, so that
	// both always agree: every entry leaves go-cache through this package,
	// accounted in the same critical section (no OnEvicted, which go-cache
	// skips on overwrite and Flush). Readers never take it. go-cache is the
	// only key index (storedLocked): a second map of every key would cost
	// about 36 bytes per entry.
	mu sync.Mutex
	// queues holds each partition's entries in insertion order.
	queues       []queue
	shareEntries int
	shareBytes   int64
	tags         map[string]*tagLink
	entries      int
	bytes        int64
	evictions    Evictions
	purges       [purgeLogSize]purgeRecord
	// gone and goneN are the gone log (PurgeHeldTag): the last tags found
	// gone while no entry carried them, and how many were ever logged.
	gone  [goneLogSize]goneRecord
	goneN uint64
	// gen counts purges; written under mu, read without it.
	gen atomic.Uint64

	misses          atomic.Uint64
	stale           atomic.Uint64
	loads           atomic.Uint64
	refreshFailures atomic.Uint64
	waiting         atomic.Int64
	rejected        atomic.Uint64
	lastSweep       atomic.Int64

	// life admits new background goroutines until Close.
	life        sync.RWMutex
	closed      bool
	work        sync.WaitGroup
	base        context.Context
	cancel      context.CancelFunc
	stopJanitor chan struct{}
	janitorDone chan struct{}
	closeOnce   sync.Once
}

// Keys are spread over shards, each a go-cache with its own lock and hit
// counter, so that parallel hits do not all contend on one RWMutex and one
// counter. The padding keeps shards on separate cache lines.
const shardCount = 16

type shard struct {
	store *gocache.Cache
	hits  atomic.Uint64
	_     [48]byte
}

func (c *Cache) shard(key string) *shard {
	return &c.shards[maphash.String(c.seed, key)%shardCount]
}

// New returns a cache and starts its expiry sweeper; Close stops it.
// A nil obs is a no-op observer.
func New(o Options, obs Observer) *Cache {
	if o.MaxEntries <= 0 {
		o.MaxEntries = defaultMaxEntries
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = defaultMaxBytes
	}
	if o.CleanupInterval <= 0 {
		o.CleanupInterval = defaultCleanupInterval
	}
	o.Partitions = min(max(o.Partitions, 1), 256) // Entry.part is a byte
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if obs == nil {
		obs = noObserver{}
	}
	c := &Cache{
		seed:          maphash.MakeSeed(),
		now:           o.Clock,
		obs:           obs,
		maxEntries:    o.MaxEntries,
		maxBytes:      o.MaxBytes,
		maxEntryBytes: o.MaxBytes / 8,
		queues:        make([]queue, o.Partitions),
		shareEntries:  max(o.MaxEntries/o.Partitions, 1),
		shareBytes:    o.MaxBytes / int64(o.Partitions),
		tags:          make(map[string]*tagLink),
		stopJanitor:   make(chan struct{}),
		janitorDone:   make(chan struct{}),
	}
	for i := range c.shards {
		// No go-cache janitor: it can only be stopped by the garbage
		// collector, and it blocks lookups while it sweeps. The sweeper
		// below is ours and stops on Close.
		c.shards[i].store = gocache.New(gocache.NoExpiration, 0)
	}
	c.base, c.cancel = context.WithCancel(context.Background())
	go c.sweepEvery(o.CleanupInterval)
	return c
}

// Close stops the sweeper, cancels every running load and refresh and waits
// for them to return (loads must honour their context). After Close, lookups
// still answer from memory and a miss calls load directly with the caller's
// context, storing nothing.
func (c *Cache) Close() {
	c.closeOnce.Do(func() {
		c.life.Lock()
		c.closed = true
		c.life.Unlock()
		c.cancel()
		close(c.stopJanitor)
		<-c.janitorDone
		c.work.Wait()
	})
}

func (c *Cache) sweepEvery(interval time.Duration) {
	defer close(c.janitorDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.sweep()
		case <-c.stopJanitor:
			return
		}
	}
}

// The sweep walks the insertion list in chunks instead of calling
// go-cache's DeleteExpired, which holds go-cache's write lock (blocking every
// lookup) while it scans and deletes: measured on 100 000 expired entries,
// 8 to 53 ms. Here readers wait for one deletion at most, and inserts for
// one chunk.
const (
	sweepChunk    = 256
	sweepRestarts = 4
)

// sweep deletes the entries whose retention has passed and returns how
// many. Between chunks it lets go of mu; if the entry it was to resume at
// was removed meanwhile it starts over from the oldest, a few times at most
// (the next sweep finishes the job).
func (c *Cache) sweep() int {
	start := time.Now()
	now := c.now()
	total := 0
	for q := range c.queues {
		total += c.sweepQueue(q, now)
	}
	c.lastSweep.Store(int64(time.Since(start)))
	if total > 0 {
		c.obs.Evicted(EvictExpired, total)
	}
	return total
}

// sweepQueue is the sweep of one partition's insertion list.
func (c *Cache) sweepQueue(q int, now time.Time) int {
	total := 0
	var next *Entry
	for restarts := 0; ; {
		c.mu.Lock()
		if next == nil || c.storedLocked(next.key) != next {
			if next != nil {
				if restarts++; restarts > sweepRestarts {
					c.mu.Unlock()
					break
				}
			}
			next = c.queues[q].oldest
		}
		n := 0
		for visited := 0; next != nil && visited < sweepChunk; visited++ {
			e := next
			next = e.newer
			if now.UnixNano() >= e.retainUntil {
				c.unlinkLocked(e)
				c.shard(e.key).store.Delete(e.key)
				n++
			}
		}
		c.evictions.Expired += uint64(n)
		c.mu.Unlock()
		total += n
		if next == nil {
			break
		}
	}
	return total
}

// Peek returns a fresh entry or nothing. It allocates nothing, takes no
// write lock and keeps nothing of key (which may be a caller's buffer).
// A hit is counted and observed; a miss is not, because the caller is
// expected to continue with Get, which counts it. Fresh is the entry's own
// freshness; PeekAt judges it by the caller's TTL too.
func (c *Cache) Peek(key string) (*Entry, bool) { return c.PeekAt(key, c.now(), 0) }

// PeekAt is Peek with the time already read (a request's arrival), where
// the cache's clock is the real one, for a lookup whose policy TTL is ttl:
// an entry stored more than ttl before now is not fresh for it, whatever
// TTL it was stored with (ttl 0 or less: the entry's own freshness only).
func (c *Cache) PeekAt(key string, now time.Time, ttl time.Duration) (*Entry, bool) {
	sh := c.shard(key)
	v, ok := sh.store.Get(key)
	if !ok {
		return nil, false
	}
	e, ok := v.(*Entry)
	if !ok || now.UnixNano() >= e.freshUntilFor(ttl) {
		return nil, false
	}
	sh.hits.Add(1)
	c.obs.Lookup(Hit)
	return e, true
}

// lookup returns the entry of key if it is still retained, fresh or not.
func (c *Cache) lookup(key string, now time.Time) *Entry {
	return c.lookupIn(c.shard(key), key, now)
}

func (c *Cache) lookupIn(sh *shard, key string, now time.Time) *Entry {
	v, ok := sh.store.Get(key)
	if !ok {
		return nil
	}
	e, ok := v.(*Entry)
	if !ok || now.UnixNano() >= e.retainUntil {
		return nil
	}
	return e
}

// Get returns the answer for key: fresh from memory (Hit), loaded (Miss), or
// expired but served (Stale) while revalidating or because the load failed
// with an error for which isFault is true. See the package doc for the
// rules. A fresh hit allocates nothing here; a load closure that captures
// request state is allocated by the caller on every call, so the hot path
// should try Peek first.
func (c *Cache) Get(ctx context.Context, key string, p Policy, load LoadFunc, isFault func(error) bool) (*Entry, Status, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	now := c.now()
	sh := c.shard(key)
	if e := c.lookupIn(sh, key, now); e != nil {
		fu := e.freshUntilFor(p.TTL)
		if now.UnixNano() < fu {
			sh.hits.Add(1)
			c.obs.Lookup(Hit)
			return e, Hit, nil
		}
		if now.UnixNano() < fu+int64(p.StaleWhileRevalidate) {
			c.revalidate(ctx, key, e, p, load, isFault)
			return c.answer(e, Stale, nil)
		}
	}
	if load == nil {
		return c.answer(nil, Miss, ErrNoLoader)
	}
	e, err, abandoned := c.fill(ctx, key, p, load)
	if err == nil {
		return c.answer(e, Miss, nil)
	}
	// A caller whose deadline ran out before the load answered waited on a
	// store too slow for it: a timeout, for which stale data stands in as
	// for any other fault. (The load itself, cut at the same deadline,
	// fails a moment later.) A caller that canceled is gone.
	timedOut := abandoned && errors.Is(err, context.DeadlineExceeded)
	if (!abandoned || timedOut) && isFault != nil {
		fault := timedOut || isFault(err)
		now = c.now()
		if s := c.lookupIn(sh, key, now); s != nil {
			fu := s.freshUntilFor(p.TTL)
			fresh := now.UnixNano() < fu
			switch {
			case fault && fresh:
				// Stored meanwhile by a load that started after ours.
				return c.answer(s, Hit, nil)
			case fault && now.UnixNano() < fu+int64(p.StaleIfError):
				return c.answer(s, Stale, nil)
			case !fault && !fresh && !errors.Is(err, errPanicked) && c.base.Err() == nil:
				// The store answered instead of failing (not found: the
				// user was deleted): the expired data no longer stands,
				// not even for a later failure's stale-if-error. (Not a
				// load that Close canceled: that says nothing of the data.)
				c.drop(s)
			}
		}
	}
	return c.answer(nil, Miss, err)
}

func (c *Cache) answer(e *Entry, s Status, err error) (*Entry, Status, error) {
	switch s {
	case Hit:
		c.shard(e.key).hits.Add(1)
	case Stale:
		c.stale.Add(1)
	default:
		c.misses.Add(1)
	}
	c.obs.Lookup(s)
	return e, s, err
}

// deadlineGrace bounds how long after its deadline a caller waits for the
// answer of its own load, which its deadline ends too (fill).
const deadlineGrace = 250 * time.Millisecond

// errClosed is the result of a flight that would have started after Close.
var errClosed = errors.New("readcache: closed")

// fill loads key through the shared flight and waits for it or for ctx.
// abandoned reports that ctx ended first (err is then ctx's error).
func (c *Cache) fill(ctx context.Context, key string, p Policy, load LoadFunc) (e *Entry, err error, abandoned bool) {
	if err := ctx.Err(); err != nil {
		return nil, err, true
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(p.refreshTimeout())
	}
	fk := flightKey(key, c.gen.Load())
	// ours reports that the flight running is this caller's: its load has
	// this caller's deadline. It is set only once the flight runs, and
	// rightly so: a flight that starts past the deadline runs its load on
	// an ended context, which has no partial answer to give (the upstream
	// client makes no call past a deadline), so a wait would only delay
	// the same error on a machine already behind.
	var ours atomic.Bool
	run := c.flight(ctx, key, p, load, deadline)
	// DoChan joins the flight before returning, so Stats.Waiting counts only
	// callers that share it.
	ch := c.flights.DoChan(fk, func() (any, error) {
		ours.Store(true)
		return run()
	})
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	result := func(r singleflight.Result) (*Entry, error, bool) {
		if r.Err == errClosed {
			l, err := safeLoad(ctx, load)
			if err != nil {
				return nil, err, false
			}
			return newEntry(l, c.now()), nil, false
		}
		e, _ := r.Val.(*Entry)
		return e, r.Err, false
	}
	select {
	case r := <-ch:
		return result(r)
	case <-ctx.Done():
		if ours.Load() && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The load runs to this very deadline and ends now too, with
			// what it made of it: a load that answers anyway (a page whose
			// enrichment was cut short, served partial) is this caller's
			// answer, as it is without the cache. A load that fails is the
			// deadline's error, as before.
			// Only for a moment, though: a load that does not end with
			// its context must not hold its caller past the deadline.
			grace := time.NewTimer(deadlineGrace)
			defer grace.Stop()
			select {
			case r := <-ch:
				if e, err, _ := result(r); err == nil {
					return e, nil, false
				}
			case <-grace.C:
			}
		}
		return nil, ctx.Err(), true
	}
}

// revalidate starts the one background refresh of a stale entry. A refresh
// that fails with a fault leaves the entry (a later stale hit tries again);
// one that the store answers with a real answer instead of data (not
// found: the user was deleted) removes it, so the next lookup loads and
// gets that answer rather than the old data for the rest of the window.
func (c *Cache) revalidate(ctx context.Context, key string, e *Entry, p Policy, load LoadFunc, isFault func(error) bool) {
	if load == nil || !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	fk := flightKey(key, c.gen.Load())
	run := c.flight(ctx, key, p, load, time.Now().Add(p.refreshTimeout()))
	started := c.spawn(func() {
		v, err, _ := c.flights.Do(fk, run)
		if err != nil && err != errClosed {
			c.refreshFailures.Add(1)
			if isFault != nil && !isFault(err) && !errors.Is(err, errPanicked) && c.base.Err() == nil {
				c.drop(e)
			}
		}
		if fresh, _ := v.(*Entry); err != nil || fresh == nil || c.lookup(key, c.now()) != fresh {
			// Not replaced: let a later stale hit try again.
			e.refreshing.Store(false)
		}
	})
	if !started {
		e.refreshing.Store(false)
	}
}

// drop removes e if it is still the entry stored under its key (counted as
// a purge: the store said its data no longer stands).
func (c *Cache) drop(e *Entry) {
	c.mu.Lock()
	dropped := c.storedLocked(e.key) == e
	if dropped {
		c.unlinkLocked(e)
		c.shard(e.key).store.Delete(e.key)
		c.evictions.Purge++
	}
	c.mu.Unlock()
	if dropped {
		c.observePurge(1)
	}
}

// enter registers work that Close waits for; false once closed. The caller
// calls c.work.Done when the work ends.
func (c *Cache) enter() bool {
	c.life.RLock()
	defer c.life.RUnlock()
	if c.closed {
		return false
	}
	c.work.Add(1)
	return true
}

// spawn runs f on a goroutine that Close waits for; false once closed.
func (c *Cache) spawn(f func()) bool {
	if !c.enter() {
		return false
	}
	go func() {
		defer c.work.Done()
		f()
	}()
	return true
}

// flight returns the shared load of key: it runs detached from the callers'
// cancellation (but with parent's values) until deadline or Close, and
// stores its result unless a purge that matches it happened meanwhile.
func (c *Cache) flight(parent context.Context, key string, p Policy, load LoadFunc, deadline time.Time) func() (any, error) {
	return func() (any, error) {
		if !c.enter() {
			return nil, errClosed
		}
		defer c.work.Done()
		startGen := c.gen.Load()
		ctx, cancel := context.WithDeadline(context.WithoutCancel(parent), deadline)
		defer cancel()
		stop := context.AfterFunc(c.base, cancel)
		defer stop()
		seq := c.loads.Add(1)
		l, err := safeLoad(ctx, load)
		if err != nil {
			return nil, err
		}
		return c.admit(key, l, p, startGen, seq), nil
	}
}

// errPanicked wraps the panic of a load.
var errPanicked = errors.New("readcache: load panicked")

// safeLoad turns a panicking load into an error.
func safeLoad(ctx context.Context, load LoadFunc) (l Loaded, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errPanicked, r)
		}
	}()
	return load(ctx)
}

// flightKey separates the loads of key before and after a purge, so that a
// lookup that starts after a purge never joins a load that started before.
// The generation after the last NUL is digits only, so keys cannot collide.
func flightKey(key string, gen uint64) string {
	b := make([]byte, 0, len(key)+21)
	b = append(b, key...)
	b = append(b, 0)
	b = strconv.AppendUint(b, gen, 10)
	return string(b)
}

// admit builds the entry of a loaded answer and stores it if it may be.
// startGen is the purge generation when the load started, seq its place
// among all loads (the loads counter it set).
func (c *Cache) admit(key string, l Loaded, p Policy, startGen, seq uint64) *Entry {
	now := c.now()
	e := newEntry(l, now)
	if !e.cacheable || p.TTL <= 0 {
		return e
	}
	e.freshUntil = now.UnixNano() + int64(p.TTL)
	e.retainUntil = e.freshUntil + int64(p.retention())
	e.key = strings.Clone(key)
	e.seq = seq
	if p.Partition > 0 && p.Partition < len(c.queues) {
		e.part = uint8(p.Partition)
	}
	e.size = e.estimateSize()
	if e.size > c.maxEntryBytes {
		c.rejected.Add(1)
		return e
	}
	if n := c.insert(e, startGen); n > 0 {
		c.obs.Evicted(EvictCapacity, n)
	}
	return e
}

// insert stores e, evicting entries to make room (victimLocked), and
// returns how many it evicted. It stores nothing if a purge that matches e happened
// since startGen, or a tag of e was found gone since its load started,
// after Close, or over an entry whose load started after
// e's: loads of one key overlap when a purge (of any key) separated their
// flights, and the one that started first may end last.
func (c *Cache) insert(e *Entry, startGen uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base.Err() != nil || c.purgedSinceLocked(e, startGen) || c.goneSinceLocked(e) {
		return 0
	}
	if old := c.storedLocked(e.key); old != nil {
		if old.seq > e.seq {
			return 0
		}
		// go-cache replaces the value silently; account for the old one.
		c.unlinkLocked(old)
	}
	evicted := 0
	for c.entries+1 > c.maxEntries || c.bytes+e.size > c.maxBytes {
		victim := c.victimLocked(e)
		if victim == nil {
			break
		}
		c.unlinkLocked(victim)
		c.shard(victim.key).store.Delete(victim.key)
		evicted++
	}
	c.evictions.Capacity += uint64(evicted)
	c.linkLocked(e)
	// No expiration in go-cache: every lookup checks retainUntil on the
	// cache's clock anyway, and go-cache would read the clock a second time
	// on the hot path. The sweep deletes what is past retainUntil.
	c.shard(e.key).store.Set(e.key, e, gocache.NoExpiration)
	return evicted
}

// victimLocked is the entry to evict to make room for e: the oldest of e's
// partition when the partition, with e, holds more than its share of
// either bound (it then takes nothing more from the others), otherwise
// the oldest of all, by the time stored. nil when the cache is empty.
func (c *Cache) victimLocked(e *Entry) *Entry {
	q := &c.queues[e.part]
	if q.oldest != nil && (q.entries+1 > c.shareEntries || q.bytes+e.size > c.shareBytes) {
		return q.oldest
	}
	var v *Entry
	for i := range c.queues {
		if o := c.queues[i].oldest; o != nil && (v == nil || o.storedAt < v.storedAt) {
			v = o
		}
	}
	return v
}

// queue is one partition's entries in insertion order (an intrusive
// doubly linked list), and their count and bytes.
type queue struct {
	oldest, newest *Entry
	entries        int
	bytes          int64
}

// storedLocked is the entry go-cache holds under key, or nil. Under mu it
// is exactly the set of linked entries.
func (c *Cache) storedLocked(key string) *Entry {
	if v, ok := c.shard(key).store.Get(key); ok {
		return v.(*Entry)
	}
	return nil
}

// linkLocked adds e to the index, the insertion order, the tag index and the
// accounting.
func (c *Cache) linkLocked(e *Entry) {
	q := &c.queues[e.part]
	e.older = q.newest
	if q.newest != nil {
		q.newest.newer = e
	} else {
		q.oldest = e
	}
	q.newest = e
	for i := range e.links {
		c.tagAddLocked(&e.links[i], e)
	}
	q.entries++
	q.bytes += e.size
	c.entries++
	c.bytes += e.size
}

// unlinkLocked is the reverse of linkLocked. The caller deletes e from
// go-cache afterwards if it is still there.
func (c *Cache) unlinkLocked(e *Entry) {
	q := &c.queues[e.part]
	if e.older != nil {
		e.older.newer = e.newer
	} else {
		q.oldest = e.newer
	}
	if e.newer != nil {
		e.newer.older = e.older
	} else {
		q.newest = e.older
	}
	e.older, e.newer = nil, nil
	for i := range e.links {
		c.tagRemoveLocked(&e.links[i])
	}
	q.entries--
	q.bytes -= e.size
	c.entries--
	c.bytes -= e.size
}
