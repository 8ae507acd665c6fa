package readcache

import "strings"

// The tag index: each tag maps to the head of an intrusive list of links,
// one link per entry carrying the tag, so adding and removing an entry is
// O(its tags) and a purge is O(entries with the tag). The map holds the
// head link itself (no list object per tag), and the link holds its tag,
// so a tag costs one map slot and one link inside its entry.

type tagLink struct {
	tag        string
	entry      *Entry
	prev, next *tagLink
}

func (c *Cache) tagAddLocked(l *tagLink, e *Entry) {
	head := c.tags[l.tag]
	l.entry, l.prev, l.next = e, nil, head
	if head != nil {
		head.prev = l
	}
	c.tags[l.tag] = l
}

// tagRemoveLocked takes l out of the index; l keeps its tag.
func (c *Cache) tagRemoveLocked(l *tagLink) {
	if l.prev != nil {
		l.prev.next = l.next
	} else if l.next != nil {
		c.tags[l.tag] = l.next
	} else {
		delete(c.tags, l.tag)
	}
	if l.next != nil {
		l.next.prev = l.prev
	}
	l.entry, l.prev, l.next = nil, nil, nil
}

// The purge log remembers the last purges so that a load that overlapped
// one can tell whether its result is affected; a load that overlapped more
// purges than the log holds is not stored.
const purgeLogSize = 1024

type purgeKind uint8

const (
	purgeAll purgeKind = iota
	purgeTag
	purgePrefix
)

type purgeRecord struct {
	kind  purgeKind
	value string
}

func (r purgeRecord) matches(e *Entry) bool {
	switch r.kind {
	case purgeTag:
		return e.hasTag(r.value)
	case purgePrefix:
		return strings.HasPrefix(e.key, r.value)
	default:
		return true
	}
}

func (c *Cache) logPurgeLocked(r purgeRecord) {
	g := c.gen.Load() + 1
	c.purges[g%purgeLogSize] = r
	c.gen.Store(g)
}

// purgedSinceLocked reports whether a purge after generation since matches
// e (or may have: the log no longer reaches back that far).
func (c *Cache) purgedSinceLocked(e *Entry, since uint64) bool {
	g := c.gen.Load()
	if g-since >= purgeLogSize {
		return g != since
	}
	for i := since + 1; i <= g; i++ {
		if c.purges[i%purgeLogSize].matches(e) {
			return true
		}
	}
	return false
}

// PurgeTag removes every entry carrying tag and returns how many. Loads
// running meanwhile whose answers carry the tag are not stored.
func (c *Cache) PurgeTag(tag string) int { return c.purgeTag(tag, false) }

// PurgeHeldTag is PurgeTag for a tag the cache may well not hold, after a
// load found that what it names is gone: when no entry carries the tag it
// purges nothing and, unlike PurgeTag, logs no purge, so the loads running
// meanwhile are stored and shared as usual. (A purge splits every key's
// loads: one logged for each unknown id a caller can make a load find
// gone would keep hot keys from being shared, or stored once the purge
// log is overrun.)
func (c *Cache) PurgeHeldTag(tag string) int { return c.purgeTag(tag, true) }

func (c *Cache) purgeTag(tag string, heldOnly bool) int {
	c.mu.Lock()
	if heldOnly && c.tags[tag] == nil {
		c.mu.Unlock()
		return 0
	}
	c.logPurgeLocked(purgeRecord{kind: purgeTag, value: strings.Clone(tag)})
	n := 0
	for head := c.tags[tag]; head != nil; head = c.tags[tag] {
		e := head.entry
		c.unlinkLocked(e)
		c.shard(e.key).store.Delete(e.key)
		n++
	}
	c.evictions.Purge += uint64(n)
	c.mu.Unlock()
	c.observePurge(n)
	return n
}

// PurgePrefix removes every entry whose key starts with prefix and returns
// how many. It scans every key. Keys built with [Key] share the prefix
// Key(p1, …, pk) exactly when their first k parts are p1, …, pk.
func (c *Cache) PurgePrefix(prefix string) int {
	if prefix == "" {
		return c.PurgeAll()
	}
	c.mu.Lock()
	c.logPurgeLocked(purgeRecord{kind: purgePrefix, value: strings.Clone(prefix)})
	n := 0
	for q := range c.queues {
		for e := c.queues[q].oldest; e != nil; {
			next := e.newer
			if strings.HasPrefix(e.key, prefix) {
				c.unlinkLocked(e)
				c.shard(e.key).store.Delete(e.key)
				n++
			}
			e = next
		}
	}
	c.evictions.Purge += uint64(n)
	c.mu.Unlock()
	c.observePurge(n)
	return n
}

// PurgeAll empties the cache and returns how many entries it held.
func (c *Cache) PurgeAll() int {
	c.mu.Lock()
	c.logPurgeLocked(purgeRecord{kind: purgeAll})
	n := c.entries
	oldest := make([]*Entry, len(c.queues))
	for q := range c.queues {
		oldest[q] = c.queues[q].oldest
	}
	// Flush drops every item at once; a sweep resuming at a dropped entry
	// finds it gone from go-cache and restarts.
	for i := range c.shards {
		c.shards[i].store.Flush()
	}
	c.tags = make(map[string]*tagLink)
	clear(c.queues)
	c.entries, c.bytes = 0, 0
	c.evictions.Purge += uint64(n)
	c.mu.Unlock()
	// The dropped entries still point at each other (insertion list, tag
	// links): one still held (by a running refresh, say) would keep all of
	// them in memory. Nothing in the cache reaches them any more, and
	// nothing follows a dropped entry's links (every path checks that an
	// entry is stored first), so they are cut here, outside the lock.
	for _, e := range oldest {
		for e != nil {
			next := e.newer
			e.older, e.newer = nil, nil
			for i := range e.links {
				l := &e.links[i]
				l.entry, l.prev, l.next = nil, nil, nil
			}
			e = next
		}
	}
	c.observePurge(n)
	return n
}

func (c *Cache) observePurge(n int) {
	if n > 0 {
		c.obs.Evicted(EvictPurge, n)
	}
}
