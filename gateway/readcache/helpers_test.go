package readcache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is the cache's clock in tests: time moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 5, 22, 16, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// newTestCache returns a cache on a fake clock, closed when the test ends.
// Its sweeper never runs on its own: tests call c.sweep.
func newTestCache(t testing.TB, o Options) (*Cache, *fakeClock) {
	t.Helper()
	clock := newClock()
	o.Clock = clock.Now
	if o.CleanupInterval == 0 {
		o.CleanupInterval = time.Hour
	}
	c := New(o, nil)
	t.Cleanup(c.Close)
	return c, clock
}

// loader is a load function that counts its calls, can be held at a gate,
// and records the context it ran with.
type loader struct {
	mu        sync.Mutex
	data      string
	tags      []string
	uncached  bool
	err       error
	gate      chan struct{}
	calls     atomic.Int64
	lastCtx   context.Context
	ctxErrEnd error // ctx.Err() when the load returned
}

func (l *loader) load(ctx context.Context) (Loaded, error) {
	l.calls.Add(1)
	l.mu.Lock()
	l.lastCtx = ctx
	gate := l.gate
	l.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ctxErrEnd = ctx.Err()
	if l.err != nil {
		return Loaded{}, l.err
	}
	if err := ctx.Err(); err != nil {
		return Loaded{}, err
	}
	return Loaded{Data: []byte(l.data), Tags: l.tags, Cacheable: !l.uncached}, nil
}

func (l *loader) set(data string, err error) {
	l.mu.Lock()
	l.data, l.err = data, err
	l.mu.Unlock()
}

func (l *loader) hold() chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gate = make(chan struct{})
	return l.gate
}

func (l *loader) context() (context.Context, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastCtx, l.ctxErrEnd
}

// errUpstream is a fault (upstream down); errNotFound is not.
var (
	errUpstream = errors.New("upstream unavailable")
	errNotFound = errors.New("not found")
)

func isFault(err error) bool { return errors.Is(err, errUpstream) }

// storedData is the data of the fresh entry under key, or "nothing".
func storedData(c *Cache, key string) string {
	if e, ok := c.Peek(key); ok {
		return e.Data()
	}
	return "nothing"
}

// eventually waits for cond, failing the test if it never holds. It guards
// against hangs; it asserts nothing about speed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkConsistent verifies that the bookkeeping and go-cache agree exactly:
// counts, bytes, the insertion list, go-cache's items and the tag index. Call
// it when no sweep is pending.
func checkConsistent(t testing.TB, c *Cache) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	items := 0
	for i := range c.shards {
		items += c.shards[i].store.ItemCount()
	}
	if got := items; got != c.entries {
		t.Errorf("go-cache holds %d items, accounting says %d", got, c.entries)
	}
	var n int
	var bytes int64
	var links int
	for qi := range c.queues {
		q := &c.queues[qi]
		var prev *Entry
		var qn int
		var qbytes int64
		for e := q.oldest; e != nil; e = e.newer {
			if e.older != prev {
				t.Fatalf("insertion list broken at %q", e.key)
			}
			if int(e.part) != qi {
				t.Errorf("entry %q of partition %d is listed in %d", e.key, e.part, qi)
			}
			prev = e
			qn++
			qbytes += e.size
			links += len(e.links)
			if c.storedLocked(e.key) != e {
				t.Errorf("listed entry %q is not the indexed one", e.key)
			}
			if v, ok := c.shard(e.key).store.Get(e.key); !ok || v.(*Entry) != e {
				t.Errorf("go-cache holds another entry for %q", e.key)
			}
		}
		if prev != q.newest {
			t.Errorf("newest is not the end of partition %d's insertion list", qi)
		}
		if qn != q.entries || qbytes != q.bytes {
			t.Errorf("partition %d lists %d entries / %d bytes, accounting says %d / %d", qi, qn, qbytes, q.entries, q.bytes)
		}
		n += qn
		bytes += qbytes
	}
	if n != c.entries || bytes != c.bytes {
		t.Errorf("insertion list has %d entries / %d bytes, accounting says %d / %d", n, bytes, c.entries, c.bytes)
	}
	var sum int64
	for i := range c.shards {
		for k, it := range c.shards[i].store.Items() {
			e := it.Object.(*Entry)
			if c.storedLocked(k) != e || c.shard(k) != &c.shards[i] {
				t.Errorf("go-cache item %q is not the indexed entry", k)
			}
			sum += e.size
		}
	}
	if sum != c.bytes {
		t.Errorf("go-cache items weigh %d bytes, accounting says %d", sum, c.bytes)
	}
	indexed := 0
	for name, head := range c.tags {
		if head == nil {
			t.Errorf("empty tag list %q kept", name)
			continue
		}
		if head.prev != nil {
			t.Errorf("tag %q: the indexed link is not its list's head", name)
		}
		for l := head; l != nil; l = l.next {
			indexed++
			if !l.entry.hasTag(name) || c.storedLocked(l.entry.key) != l.entry {
				t.Errorf("tag %q links a wrong or dead entry", name)
			}
			if l.next != nil && l.next.prev != l {
				t.Errorf("tag %q: broken back link", name)
			}
		}
	}
	if indexed != links {
		t.Errorf("tag index has %d links, entries carry %d tags", indexed, links)
	}
}
