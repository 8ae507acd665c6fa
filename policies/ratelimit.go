package policies

import (
	"hash/maphash"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Rate-limit response headers. We send the three separate fields of the
// IETF httpapi draft (draft-ietf-httpapi-ratelimit-headers up to -07):
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset, all plain
// integers. Mobile and web clients and most client libraries already read
// this form, and it is trivial to parse; the newer structured RateLimit /
// RateLimit-Policy fields (-08 on) are still changing shape between drafts.
// Retry-After (RFC 9110) comes with every refusal.
const (
	headerLimit      = "RateLimit-Limit"
	headerRemaining  = "RateLimit-Remaining"
	headerReset      = "RateLimit-Reset"
	headerRetryAfter = "Retry-After"
)

// limitKind says which bucket family a key belongs to.
type limitKind uint8

const (
	kindPerIP limitKind = iota
	kindAuthFailures
	kindPerUser
	kindPerDevice
)

// Kind names, as config.yaml writes them under rateLimits:.
var kindNames = [...]string{
	kindPerIP:        "perIP",
	kindAuthFailures: "authFailures",
	kindPerUser:      "perUser",
	kindPerDevice:    "perDevice",
}

// Verdict is the outcome of one rate-limit check.
type Verdict struct {
	Allowed bool
	// Limit is the bucket's burst: the most requests allowed at once. 0
	// means no limit applied (it is off, or there was nothing to key on).
	Limit int
	// Remaining is the whole tokens left after this request.
	Remaining int
	// Reset is how long until the bucket is full again.
	Reset time.Duration
	// RetryAfter is how long until one request is allowed again; set only
	// when refused.
	RetryAfter time.Duration
	// Kind is the limit: perIP, authFailures, perUser or perDevice.
	Kind string
}

// Headers sets the rate-limit headers: RateLimit-Limit, RateLimit-Remaining
// and RateLimit-Reset (whole seconds, rounded up), and Retry-After (whole
// seconds, at least 1) when refused. A verdict without a limit sets
// nothing.
func (v Verdict) Headers(set func(key, value string)) {
	if v.Limit <= 0 {
		return
	}
	set(headerLimit, strconv.Itoa(v.Limit))
	set(headerRemaining, strconv.Itoa(v.Remaining))
	set(headerReset, strconv.FormatInt(ceilSeconds(v.Reset, 0), 10))
	if !v.Allowed {
		set(headerRetryAfter, strconv.FormatInt(ceilSeconds(v.RetryAfter, 1), 10))
	}
}

// ceilSeconds rounds d up to whole seconds, at least floor. It divides
// before rounding: adding a second first would overflow the longest
// duration (a very slow rate saturates at it) into a negative one.
func ceilSeconds(d time.Duration, floor int64) int64 {
	s := int64(d / time.Second)
	if d%time.Second > 0 {
		s++
	}
	return max(s, floor)
}

// Stricter picks the verdict to report when a request passed several
// limits: a refusal over an allowance (the longer wait when both refuse),
// otherwise the one with fewer requests left.
func Stricter(a, b Verdict) Verdict {
	switch {
	case a.Limit <= 0:
		return b
	case b.Limit <= 0:
		return a
	case a.Allowed != b.Allowed:
		if !a.Allowed {
			return a
		}
		return b
	case !a.Allowed:
		if b.RetryAfter > a.RetryAfter {
			return b
		}
		return a
	case b.Remaining < a.Remaining:
		return b
	}
	return a
}

// DefaultMaxKeys is the bucket bound NewLimiter uses when given none.
const DefaultMaxKeys = 100000

// Limiter holds the token buckets of every policy, keyed by limit kind and
// key: per-IP buckets (perIP, authFailures) by client IP, per-user buckets by
// subject, per-device buckets by device id. No key includes the platform:
// X-Platform is a client claim, and a client rotating it must not get a
// fresh budget per platform. The limit applied is the current policy's.
//
// Memory is bounded: at most maxKeys buckets live at once, spread over
// shards that each have their own lock and their own share of the bound.
// Buckets are keyed by a 64-bit keyed hash (maphash, with a seed drawn
// per process) of the kind and the key, not by the key itself: a bucket is
// then 40 bytes plus a 12-byte map slot, with no string to copy or keep,
// about 7 MiB for 100 000 keys instead of about 20 MiB with the keys
// stored. Two keys share a bucket only if their hashes collide, which for
// 100 000 live keys happens with odds of about 1 in 3·10⁹, cannot be
// aimed at without the secret seed, and would at worst make two clients
// share one budget.
//
// Eviction: when a shard is full, the new key takes the slot of a bucket
// from the least recently used end of the shard. Among the 8 least
// recently used, the first that has refilled completely is taken, since a
// full bucket carries no information (a new one would start full too);
// when none has, the one that will have refilled soonest goes, the least
// recently used of those that tie. A flood of distinct keys therefore
// pushes out idle and long-unused buckets first, while the buckets of
// clients that are active (and so recently used) stay, and so do the
// empty buckets of idle clients refused by a limit, unless the flood
// empties its own buckets for longer (a burst of requests per new key).
//
// Limits are read from the Policy on every call, so a reloaded policy
// changes them at once: an existing bucket refills at the new rate and is
// capped at the new burst.
type Limiter struct {
	seed      maphash.Seed
	epoch     time.Time
	shards    []limiterShard
	mask      uint64
	maxKeys   int
	evictions atomic.Uint64
}

// bucketKey identifies one bucket: the keyed hash of its kind and key
// (see Limiter).
type bucketKey uint64

type bucket struct {
	key    bucketKey
	tokens float64
	// last is when tokens was computed, fullAt when the bucket will have
	// refilled completely (nanoseconds since the limiter's epoch).
	last, fullAt int64
	// prev and next link the shard's recency list; -1 ends it.
	prev, next int32
}

// limiterShard is one lock's worth of buckets, kept in a slice so the
// recency list needs no pointers.
type limiterShard struct {
	mu      sync.Mutex
	index   map[bucketKey]int32
	buckets []bucket
	// head is the most recently used bucket, tail the least.
	head, tail int32
	capacity   int
	_          [40]byte // keeps neighbouring shards' locks off one cache line
}

// evictScan is how many of the least recently used buckets eviction looks
// at for one that has refilled.
const evictScan = 8

// NewLimiter makes a limiter that keeps at most maxKeys buckets; a value
// below 1 means DefaultMaxKeys.
func NewLimiter(maxKeys int) *Limiter {
	if maxKeys < 1 {
		maxKeys = DefaultMaxKeys
	}
	// Enough shards to keep contention low, but never so many that a shard
	// holds fewer than 64 keys and evicts by accident of the hash.
	n := 32
	for n > 1 && maxKeys/n < 64 {
		n /= 2
	}
	l := &Limiter{
		seed:    maphash.MakeSeed(),
		epoch:   time.Now(),
		shards:  make([]limiterShard, n),
		mask:    uint64(n - 1),
		maxKeys: maxKeys,
	}
	for i := range l.shards {
		c := maxKeys / n
		if i < maxKeys%n {
			c++
		}
		l.shards[i] = limiterShard{index: make(map[bucketKey]int32), head: -1, tail: -1, capacity: c}
	}
	return l
}

// LimiterStats describes the limiter for metrics.
type LimiterStats struct {
	// Keys is the number of buckets in use.
	Keys int
	// MaxKeys is the bound on Keys.
	MaxKeys int
	// Evictions counts buckets dropped to make room since start.
	Evictions uint64
}

// Stats reports the limiter's size and evictions.
func (l *Limiter) Stats() LimiterStats {
	s := LimiterStats{MaxKeys: l.maxKeys, Evictions: l.evictions.Load()}
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		s.Keys += len(sh.index)
		sh.mu.Unlock()
	}
	return s
}

// ipKey keys an address. IPv4-mapped IPv6 counts as IPv4, and IPv6 is
// keyed by its /64: one subscriber usually holds a whole /64 and could
// otherwise rotate addresses to get fresh buckets (and flood the table).
func ipKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.WithZone("").Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// ipBucket keys the per-IP buckets by address alone, not by platform: the
// platform is a client claim, and a client rotating X-Platform must not get
// a fresh budget per platform. The limit applied is still the policy's.
func (l *Limiter) ipBucket(kind limitKind, ip netip.Addr) bucketKey {
	return mixKind(maphash.Comparable(l.seed, ipKey(ip)), kind)
}

// idBucket keys the per-user and per-device buckets by the id alone.
func (l *Limiter) idBucket(kind limitKind, id string) bucketKey {
	return mixKind(maphash.String(l.seed, id), kind)
}

// mixKind folds the kind into a key hash, so that equal text under two
// kinds (a user id that is also a device id) keys two buckets.
func mixKind(h uint64, kind limitKind) bucketKey {
	h ^= uint64(kind+1) * 0x9e3779b97f4a7c15
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return bucketKey(h)
}

// AllowIP takes one token from the client IP's bucket (limit perIP).
func (l *Limiter) AllowIP(p *Policy, ip netip.Addr, now time.Time) Verdict {
	if p == nil {
		return Verdict{Allowed: true}
	}
	return l.take(l.ipBucket(kindPerIP, ip), kindPerIP, p.limits.PerIP, now)
}

// AllowUser takes one token from the verified subject's bucket (limit
// perUser), one bucket per subject whatever X-Platform says. An empty
// subject is not limited here.
func (l *Limiter) AllowUser(p *Policy, subject string, now time.Time) Verdict {
	if p == nil || subject == "" {
		return Verdict{Allowed: true}
	}
	return l.take(l.idBucket(kindPerUser, subject), kindPerUser, p.limits.PerUser, now)
}

// AllowDevice takes one token from the device id's bucket (limit
// perDevice; the id as the client context gives it, case kept), one bucket
// per device whatever X-Platform says. An empty device id is not limited
// here.
func (l *Limiter) AllowDevice(p *Policy, deviceID string, now time.Time) Verdict {
	if p == nil || deviceID == "" {
		return Verdict{Allowed: true}
	}
	return l.take(l.idBucket(kindPerDevice, deviceID), kindPerDevice, p.limits.PerDevice, now)
}

// AuthFailuresExhausted reports, without taking a token, whether the client
// IP has spent its failed-authentication budget (limit authFailures):
// Allowed is false when it has, and the gateway then refuses the request
// before verifying any signature. It is one map look-up under a shard lock
// and never creates a bucket. An existing bucket counts as used: an IP
// refused here records no more failures, and its empty bucket must not
// drift to the evicted end while the IP keeps trying.
func (l *Limiter) AuthFailuresExhausted(p *Policy, ip netip.Addr, now time.Time) Verdict {
	if p == nil || !p.limits.AuthFailures.Enabled() {
		return Verdict{Allowed: true}
	}
	lim := p.limits.AuthFailures
	key := l.ipBucket(kindAuthFailures, ip)
	sh := l.shard(key)
	t := l.since(now)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.index[key]
	if !ok {
		return Verdict{Allowed: true, Limit: lim.Burst, Remaining: lim.Burst, Kind: kindNames[kindAuthFailures]}
	}
	sh.touch(i)
	b := &sh.buckets[i]
	refill(b, lim, t)
	v := verdictOf(b, lim, kindAuthFailures)
	v.Allowed = b.tokens >= 1
	if !v.Allowed {
		v.RetryAfter = secondsToDuration((1 - b.tokens) / lim.Rate)
	}
	return v
}

// RecordAuthFailure spends one token of the client IP's failed-
// authentication budget, and reports what is left. Unlike a request, a
// failure has already happened, so it is charged even when no whole token
// is left: requests that passed AuthFailuresExhausted together (say many
// unknown kids waiting for one key refresh) each cost a token, and the
// bucket owes what they overspent. Otherwise an IP could fail at its
// concurrency times the configured rate. The debt stops at one burst:
// many users share an address behind a carrier's NAT, and one burst of
// failures from any of them must not lock the address out for longer
// than two bursts take to refill. Allowed says whether the failure was
// within the budget.
func (l *Limiter) RecordAuthFailure(p *Policy, ip netip.Addr, now time.Time) Verdict {
	if p == nil {
		return Verdict{Allowed: true}
	}
	return l.spend(l.ipBucket(kindAuthFailures, ip), kindAuthFailures, p.limits.AuthFailures, now, true)
}

func (l *Limiter) since(now time.Time) int64 {
	return int64(now.Sub(l.epoch))
}

// shard picks the shard by the key's high bits; the map inside hashes the
// whole key again.
func (l *Limiter) shard(k bucketKey) *limiterShard {
	return &l.shards[(uint64(k)>>40)&l.mask]
}

// take spends one token of key's bucket, if it has one, creating the
// bucket (full) when it is new. It allocates only when a shard's bucket
// slice grows.
func (l *Limiter) take(key bucketKey, kind limitKind, lim Limit, now time.Time) Verdict {
	return l.spend(key, kind, lim, now, false)
}

// spend is take, and with owe also charges a bucket without a whole token
// left, down to a debt of one burst, so that it stays empty for longer.
func (l *Limiter) spend(key bucketKey, kind limitKind, lim Limit, now time.Time, owe bool) Verdict {
	if !lim.Enabled() {
		return Verdict{Allowed: true}
	}
	sh := l.shard(key)
	t := l.since(now)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.index[key]
	if ok {
		sh.touch(i)
	} else {
		i = l.insert(sh, key, lim, t)
	}
	b := &sh.buckets[i]
	refill(b, lim, t)
	allowed := b.tokens >= 1
	if allowed || owe && b.tokens-1 >= -float64(lim.Burst) {
		b.tokens--
	}
	b.fullAt = addSaturating(b.last, secondsToDuration((float64(lim.Burst)-b.tokens)/lim.Rate))
	v := verdictOf(b, lim, kind)
	v.Allowed = allowed
	if !allowed {
		v.RetryAfter = secondsToDuration((1 - b.tokens) / lim.Rate)
	}
	return v
}

// refill adds the tokens earned since the bucket was last computed, capped
// at the current burst. Time that runs backwards (callers computing now
// before taking the lock) earns nothing.
func refill(b *bucket, lim Limit, t int64) {
	if t > b.last {
		b.tokens += float64(t-b.last) / 1e9 * lim.Rate
		b.last = t
	}
	b.tokens = min(b.tokens, float64(lim.Burst))
}

func verdictOf(b *bucket, lim Limit, kind limitKind) Verdict {
	return Verdict{
		Limit:     lim.Burst,
		Remaining: int(math.Floor(max(b.tokens, 0))),
		Reset:     secondsToDuration((float64(lim.Burst) - b.tokens) / lim.Rate),
		Kind:      kindNames[kind],
	}
}

// addSaturating is t+d for a time in nanoseconds since the epoch, held at
// the largest one rather than wrapping to the past: a bucket whose refill
// takes longer than a Duration holds must not look refilled to eviction.
func addSaturating(t int64, d time.Duration) int64 {
	if d > 0 && t > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return t + int64(d)
}

func secondsToDuration(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	if s > float64(math.MaxInt64/int64(time.Second)) {
		return math.MaxInt64
	}
	return time.Duration(math.Ceil(s * 1e9))
}

// insert adds a full bucket for key, evicting one when the shard is full,
// and makes it the most recently used.
func (l *Limiter) insert(sh *limiterShard, key bucketKey, lim Limit, t int64) int32 {
	nb := bucket{key: key, tokens: float64(lim.Burst), last: t, fullAt: t, prev: -1, next: -1}
	var i int32
	if len(sh.buckets) < sh.capacity {
		sh.buckets = append(sh.buckets, nb)
		i = int32(len(sh.buckets) - 1)
	} else {
		i = sh.victim(t)
		sh.unlink(i)
		delete(sh.index, sh.buckets[i].key)
		sh.buckets[i] = nb
		l.evictions.Add(1)
	}
	sh.index[key] = i
	sh.pushFront(i)
	return i
}

// victim picks the bucket to evict: the least recently used of those that
// have refilled, among the evictScan least recently used, else the one of
// them that will have refilled soonest (the least recently used of those
// that tie). An evicted bucket comes back full, so that one's client gains
// the least: a client refused by a limit that then pauses drifts to the
// least recently used end, and a flood of newcomers, each a token into its
// own bucket, would otherwise push its empty bucket out and lift its
// lockout.
func (sh *limiterShard) victim(t int64) int32 {
	best := sh.tail
	for i, n := sh.tail, 0; i >= 0 && n < evictScan; i, n = sh.buckets[i].prev, n+1 {
		if sh.buckets[i].fullAt <= t {
			return i
		}
		if sh.buckets[i].fullAt < sh.buckets[best].fullAt {
			best = i
		}
	}
	return best
}

func (sh *limiterShard) touch(i int32) {
	if sh.head != i {
		sh.unlink(i)
		sh.pushFront(i)
	}
}

func (sh *limiterShard) unlink(i int32) {
	b := &sh.buckets[i]
	if b.prev >= 0 {
		sh.buckets[b.prev].next = b.next
	} else {
		sh.head = b.next
	}
	if b.next >= 0 {
		sh.buckets[b.next].prev = b.prev
	} else {
		sh.tail = b.prev
	}
	b.prev, b.next = -1, -1
}

func (sh *limiterShard) pushFront(i int32) {
	b := &sh.buckets[i]
	b.prev, b.next = -1, sh.head
	if sh.head >= 0 {
		sh.buckets[sh.head].prev = i
	}
	sh.head = i
	if sh.tail < 0 {
		sh.tail = i
	}
}
