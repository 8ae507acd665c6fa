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

// The gone log remembers the last tags PurgeHeldTag was given while no
// entry carried them, each with the loads started by then. A load that was
// running then and whose answer carries the tag is not stored: it may have
// read what the load that found the tag gone no longer found (a user's
// profile in another language, a page listing them, read just before the
// user was deleted). Unlike a logged purge, it splits no key's loads, and
// the loads of other tags are stored as usual. A load that overlapped
// more of these than the log holds is not stored.
const goneLogSize = 1024

type goneRecord struct {
	tag string
	// loads is the loads counter when the tag was logged: every load whose
	// seq is at most this had started.
	loads uint64
}

func (c *Cache) logGoneLocked(tag string) {
	if c.goneN > 0 {
		if last := &c.gone[(c.goneN-1)%goneLogSize]; last.tag == tag {
			// The same tag again (a user's repeated 404s): the newer
			// record covers every load the older did.
			last.loads = c.loads.Load()
			return
		}
	}
	c.gone[c.goneN%goneLogSize] = goneRecord{tag: strings.Clone(tag), loads: c.loads.Load()}
	c.goneN++
}

// goneSinceLocked reports whether a tag of e was logged gone after e's load
// started (or may have been: the log no longer reaches back that far).
func (c *Cache) goneSinceLocked(e *Entry) bool {
	if len(e.links) == 0 {
		return false
	}
	for i := uint64(1); i <= min(c.goneN, goneLogSize); i++ {
		r := &c.gone[(c.goneN-i)%goneLogSize]
		if r.loads < e.seq {
			return false // logged before e's load started, as was every older one
		}
		if e.hasTag(r.tag) {
			return true
		}
	}
	return c.goneN > goneLogSize
}

// PurgeTag removes every entry carrying tag and returns how many. Loads
// running meanwhile whose answers carry the tag are not stored.
func (c *Cache) PurgeTag(tag string) int { return c.purgeTag(tag, false) }

// PurgeHeldTag is PurgeTag for a tag the cache may well not hold, after a
// load found that what it names is gone: when no entry carries the tag it
// purges nothing and, unlike PurgeTag, logs no purge, so the loads running
// meanwhile are shared as usual, and stored unless their answers carry
// the tag (the gone log). (A purge splits every key's loads: one logged
// for each unknown id a caller can make a load find gone would keep hot
// keys from being shared, or stored once the purge log is overrun.)
func (c *Cache) PurgeHeldTag(tag string) int { return c.purgeTag(tag, true) }

func (c *Cache) purgeTag(tag string, heldOnly bool) int {
	c.mu.Lock()
	if heldOnly && c.tags[tag] == nil {
		c.logGoneLocked(tag)
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
