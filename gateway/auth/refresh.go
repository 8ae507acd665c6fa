package auth

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bffgate/edge/config"
)

// One goroutine owns fetching: it runs a fetch round (every JWKS URL once)
// at start, then every RefreshInterval (every RetryInterval while no key is
// loaded), and whenever an unknown kid asks for one. Rounds never overlap,
// so an old response can never overwrite a newer one, and the keys a round
// publishes are visible before the round is announced as done.

type fetchResult struct {
	keys []*verifyKey
	err  error
}

func (v *Verifier) refreshLoop() {
	defer close(v.done)
	sources := make([][]*verifyKey, len(v.cfg.urls)) // last good keys per URL
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-v.ctx.Done():
			return
		case <-timer.C:
		case <-v.kick:
		}
		v.runRound(sources)
		wait := v.cfg.refreshInterval
		if v.keys.Load() == nil {
			wait = v.cfg.retryInterval
		}
		timer.Reset(wait)
	}
}

func (v *Verifier) runRound(sources [][]*verifyKey) {
	v.mu.Lock()
	done := v.nextRound
	v.nextRound = make(chan struct{})
	v.mu.Unlock()
	defer func() {
		close(done)
		v.mu.Lock()
		if v.kidRound == done {
			v.kidRound = nil
		}
		v.mu.Unlock()
	}()

	current := v.keys.Load()
	results := make([]fetchResult, len(v.cfg.urls))
	if len(results) == 1 {
		results[0] = v.fetchOne(0, current)
	} else {
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() { results[i] = v.fetchOne(i, current) })
		}
		wg.Wait()
	}
	v.apply(results, sources, current)
}

// fetchOne fetches and parses URL i and reports the attempt.
func (v *Verifier) fetchOne(i int, current *keySet) fetchResult {
	rawURL := v.cfg.urls[i]
	body, err := v.fetcher.fetch(v.ctx, rawURL)
	var keys []*verifyKey
	if err == nil {
		keys, err = parseKeySet(body, v.cfg.algorithms, current)
	}
	v.obs.JWKSFetch(err, len(keys))
	if v.ctx.Err() != nil {
		return fetchResult{err: err} // closing: not worth a log line
	}
	h := &v.health[i]
	if err != nil {
		msg := config.RedactURL(rawURL) + ": " + err.Error()
		v.lastErr.Store(&msg)
		h.failures++
		now := time.Now()
		if key := sameFailureKey(err); h.failures == 1 || key != h.lastErr || now.Sub(h.loggedAt) >= failureLogEvery {
			v.log.Warn("JWKS fetch failed; keeping the keys already loaded",
				"url", config.RedactURL(rawURL), "error", err.Error(), "failures", h.failures, "keys_loaded", current != nil)
			h.lastErr, h.loggedAt = key, now
		}
		return fetchResult{err: err}
	}
	if h.failures > 0 {
		v.log.Info("JWKS fetch recovered", "url", config.RedactURL(rawURL), "after_failures", h.failures)
		*h = urlHealth{}
	}
	return fetchResult{keys: keys}
}

// sameFailureKey is err's text without the local address of the
// connection it names ("read tcp 10.0.0.2:41234->10.0.0.1:443: ... reset"):
// each attempt has a new ephemeral port, and a failure that lasts must read
// as the same error, or it is logged at every retry.
func sameFailureKey(err error) string {
	text := err.Error()
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Source != nil {
		text = strings.Replace(text, oe.Source.String()+"->", "", 1)
	}
	return text
}

// failureLogEvery spaces out the log lines of a URL that keeps failing with
// the same error (while no keys are loaded, it is retried every
// RetryInterval).
const failureLogEvery = time.Minute

// urlHealth is one JWKS URL's run of failures, for quiet logging.
type urlHealth struct {
	failures int
	lastErr  string
	loggedAt time.Time
}

// apply publishes the union of every URL's last good keys (first URL wins a
// kid claimed twice) when it differs from the current set, and retires the
// keys that left it.
func (v *Verifier) apply(results []fetchResult, sources [][]*verifyKey, current *keySet) {
	fresh, now := false, time.Now()
	for i, r := range results {
		if r.err == nil {
			sources[i] = r.keys
			v.goodAt[i] = now
			fresh = true
		}
	}
	if !fresh {
		return
	}
	oldest := now
	for _, at := range v.goodAt {
		if at.Before(oldest) {
			oldest = at
		}
	}
	v.lastSuccess.Store(oldest.UnixNano())

	var merged []*verifyKey
	for _, keys := range sources {
		for _, k := range keys {
			if !slices.ContainsFunc(merged, func(o *verifyKey) bool { return o.kid == k.kid }) {
				merged = append(merged, k)
			}
		}
	}
	if current.sameKeys(merged) {
		return
	}
	next, err := newKeySet(merged)
	if err != nil {
		v.log.Error("building the key set failed; keeping the keys already loaded", "error", err.Error())
		return
	}
	v.keys.Store(next)

	var removed []string
	if current != nil {
		for kid, k := range current.byKID {
			if next.byKID[kid] != k {
				k.retired.Store(true)
				removed = append(removed, kid)
			}
		}
	}
	slices.Sort(removed)
	v.retire(removed, next)
	if len(removed) > 0 && v.cache != nil {
		v.cache.dropRetired()
	}
	v.log.Info("identity provider keys loaded", "kids", next.kids, "retired", removed)
}

// maxRetiredKIDs bounds Verifier.retiredKIDs; a provider retires a key or
// two a rotation, so it is only reached by one that churns its kids, and
// then the set starts over.
const maxRetiredKIDs = 256

// retire notes the kids removed from the set, and forgets those next
// carries again.
func (v *Verifier) retire(removed []string, next *keySet) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for kid := range v.retiredKIDs {
		if _, ok := next.byKID[kid]; ok {
			delete(v.retiredKIDs, kid)
		}
	}
	if len(v.retiredKIDs)+len(removed) > maxRetiredKIDs {
		clear(v.retiredKIDs)
	}
	for _, kid := range removed {
		if v.retiredKIDs == nil {
			v.retiredKIDs = make(map[string]struct{})
		}
		v.retiredKIDs[kid] = struct{}{}
	}
}

// askRound asks the refresh loop for a round, unless one is asked for
// already (it will close nextRound).
func (v *Verifier) askRound() {
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// awaitKeyRefresh is called when a token names a kid the key set lacks. It
// asks for a fetch round, at most one per UnknownKIDInterval (a request
// arriving while that round runs, or waits to run, waits for it too; one
// arriving when the budget is spent asks for the round it allows next, if
// that comes within UnknownKIDWait), and waits for the round no longer than
// UnknownKIDWait and ctx allow (with UnknownKIDWait 0 it asks and does not
// wait). It reports whether a round ended, so the caller
// should look again. A kid the provider retired asks for nothing.
func (v *Verifier) awaitKeyRefresh(ctx context.Context, kid string) bool {
	if ctx.Err() != nil || v.ctx.Err() != nil {
		return false // nobody would wait for the round: don't spend the budget
	}
	v.mu.Lock()
	if _, ok := v.retiredKIDs[kid]; ok {
		// Withdrawn by the provider: a fetch would not bring it back.
		v.mu.Unlock()
		return false
	}
	round := v.kidRound
	if round == nil {
		// The budget spent (by another kid, maybe a forged one, just
		// before this key was published), the next round is asked for
		// when the budget allows, if this request would still be waiting.
		now := time.Now()
		r := v.kidLimiter.ReserveN(now, 1)
		delay := r.DelayFrom(now)
		if !r.OK() || delay > max(v.cfg.unknownKIDWait, 0) {
			r.CancelAt(now)
			v.mu.Unlock()
			return false
		}
		v.log.Debug("unknown kid; refreshing keys", "kid", kid, "after", delay.String())
		round = v.nextRound
		v.kidRound = round
		if delay == 0 {
			v.askRound()
		} else {
			time.AfterFunc(delay, v.askRound)
		}
	}
	v.mu.Unlock()
	if v.cfg.unknownKIDWait <= 0 {
		return false // the round runs for the requests after this one
	}

	wait := time.NewTimer(v.cfg.unknownKIDWait)
	defer wait.Stop()
	select {
	case <-round:
		return true
	case <-wait.C:
	case <-ctx.Done():
	case <-v.ctx.Done():
	}
	return false
}
