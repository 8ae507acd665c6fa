package readcache

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func benchCache(b *testing.B, o Options) *Cache {
	b.Helper()
	if o.CleanupInterval == 0 {
		o.CleanupInterval = time.Hour
	}
	c := New(o, nil)
	b.Cleanup(c.Close)
	return c
}

var benchData = []byte(`{"items":[{"id":"u1","username":"ada","displayName":"Ada"}],"page":1,"limit":20}`)

func benchLoad(context.Context) (Loaded, error) {
	return Loaded{Data: benchData, Tags: []string{"user:u1", "route:search"}, Cacheable: true}, nil
}

func BenchmarkPeekHit(b *testing.B) {
	c := benchCache(b, Options{})
	key := Key("search", "sub-1", "ada", "1", "20", "en", "public")
	c.Get(context.Background(), key, Policy{TTL: time.Hour}, benchLoad, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Peek(key); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := benchCache(b, Options{})
	key := Key("search", "sub-1", "ada", "1", "20", "en", "public")
	p := Policy{TTL: time.Hour}
	ctx := context.Background()
	c.Get(ctx, key, p, benchLoad, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, st, _ := c.Get(ctx, key, p, benchLoad, nil); st != Hit {
			b.Fatal(st)
		}
	}
}

// BenchmarkGetMissStore loads and stores a new key every time, in a full
// cache, so every insert also evicts the oldest entry.
func BenchmarkGetMissStore(b *testing.B) {
	c := benchCache(b, Options{MaxEntries: 10_000})
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = Key("search", "sub-1", strconv.Itoa(i))
	}
	p := Policy{TTL: time.Hour, StaleIfError: time.Minute}
	ctx := context.Background()
	for i := range 10_000 {
		c.Get(ctx, keys[i], p, benchLoad, nil)
	}
	i := 10_000
	b.ReportAllocs()
	for b.Loop() {
		if _, st, _ := c.Get(ctx, keys[i%len(keys)], p, benchLoad, nil); st != Miss {
			b.Fatal(st)
		}
		i++
	}
}

func BenchmarkPeekHitParallel(b *testing.B) {
	c := benchCache(b, Options{})
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = Key("me", strconv.Itoa(i))
		c.Get(context.Background(), keys[i], Policy{TTL: time.Hour}, benchLoad, nil)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Peek(keys[i&63]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

// BenchmarkSweep measures a sweep over 100 000 entries. Lookups are blocked
// by one deletion at a time at most, never by the whole sweep.
func BenchmarkSweep(b *testing.B) {
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = Key("search", strconv.Itoa(i))
	}
	setup := func(b *testing.B) (*Cache, *fakeClock) {
		clock := newClock()
		c := benchCache(b, Options{MaxEntries: n, MaxBytes: 1 << 30, Clock: clock.Now})
		return c, clock
	}
	fill := func(c *Cache) {
		for _, k := range keys {
			c.admit(k, Loaded{Data: benchData, Tags: []string{"user:" + k}, Cacheable: true}, Policy{TTL: time.Minute}, c.gen.Load(), 0)
		}
	}
	b.Run("100k-none-expired", func(b *testing.B) {
		c, _ := setup(b)
		fill(c)
		for b.Loop() {
			c.sweep()
		}
		if c.Stats().Entries != n {
			b.Fatal("entries lost")
		}
	})
	b.Run("100k-all-expired", func(b *testing.B) {
		c, clock := setup(b)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			fill(c)
			clock.Advance(time.Hour)
			b.StartTimer()
			if c.sweep() != n {
				b.Fatal("not all expired")
			}
		}
	})
}
