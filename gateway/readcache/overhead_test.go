package readcache

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// heapPerEntry measures the heap growth per stored entry, minus the bytes
// the size estimate counts separately (data, key, tag text).
func heapPerEntry(t *testing.T, n, tagsPerEntry int) float64 {
	t.Helper()
	c := New(Options{MaxEntries: n + 1, MaxBytes: 1 << 40}, nil)
	defer c.Close()
	keys := make([]string, n)
	tags := make([][]string, n)
	var variable int64
	for i := range n {
		keys[i] = Key("search", strconv.Itoa(i))
		for j := range tagsPerEntry {
			tags[i] = append(tags[i], "user:"+strconv.Itoa(i*tagsPerEntry+j))
		}
	}
	p := Policy{TTL: time.Hour}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		l := Loaded{Data: []byte("{}"), Tags: tags[i], Cacheable: true}
		e := c.admit(keys[i], l, p, c.gen.Load(), 0)
		variable += int64(len(e.data) + len(e.key))
		for _, tg := range e.Tags() {
			variable += int64(len(tg))
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := c.Stats().Entries; got != n {
		t.Fatalf("stored %d entries, want %d", got, n)
	}
	runtime.KeepAlive(keys)
	runtime.KeepAlive(tags)
	return (float64(after.HeapAlloc-before.HeapAlloc) - float64(variable)) / float64(n)
}

func TestOverheadEstimate(t *testing.T) {
	for _, n := range []int{1000, 70_000} {
		bare := heapPerEntry(t, n, 0)
		tagged := heapPerEntry(t, n, 4)
		perTag := (tagged - bare) / 4
		t.Logf("n=%d measured: %.0f bytes per entry, %.0f bytes per distinct tag", n, bare, perTag)
		if bare > EntryOverhead {
			t.Errorf("an entry costs %.0f bytes beyond its data, key and tags; EntryOverhead is %d", bare, EntryOverhead)
		}
		if perTag > TagOverhead {
			t.Errorf("a tag costs %.0f bytes beyond its text; TagOverhead is %d", perTag, TagOverhead)
		}
	}
}
