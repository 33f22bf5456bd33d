package servicedesk

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servicedesk-go/servicedesk/internal/limits"
)

// A RateLimiter decides when the requests of a [Client] may go out, so that
// every goroutine using the client (and every client sharing the limiter,
// see [WithRateLimiter]) acts on one view of Jira's rate limits: pacing
// each endpoint, and pausing it, or everything, when Jira says to.
//
// Each Client has one by default, from [NewRateLimiter]. Implement it to
// share limits between processes (one Connect app scaled out draws on one
// quota): Wait and Done are all the client needs.
type RateLimiter interface {
	// Wait blocks until a request to ep may be sent. It must not wait longer
	// than maxWait, nor past ctx's deadline: when the request cannot go out
	// within that, it returns at once, without waiting, an *Error with
	// StatusCode 429, RetryAfter (how long it would have had to wait) and
	// RateLimit.Reason; it returns ctx's error if ctx ends while waiting.
	// Each nil return is followed by exactly one call to Done. The client
	// copies an *Error it returns before adding the request's method and
	// URL, so one value may be returned to many calls.
	Wait(ctx context.Context, ep Endpoint, maxWait time.Duration) error
	// Done reports what came back for a request Wait let through.
	Done(ep Endpoint, o Outcome)
}

// Endpoint is what Jira's burst limits are counted per: an HTTP method and
// a path template, with ids in braces and no query
// ("/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer").
type Endpoint struct {
	Method string
	Path   string
}

// Outcome is what came back for one request.
type Outcome struct {
	StatusCode int       // 0 when no answer came (a transport error)
	RateLimit  RateLimit // what the answer's headers said
	// Wait is how long the answer asked to wait: the longer of Retry-After
	// and X-RateLimit-Reset; 0 when it did not say.
	Wait time.Duration
}

// RateLimiterConfig configures [NewRateLimiter].
type RateLimiterConfig struct {
	// Cloud starts pacing at Atlassian's documented burst rates for Jira
	// Cloud (5 requests a second for listing a desk's customers, about 100
	// for other reads and writes, 50 for deletes). Without it, nothing is
	// paced until an answer announces a limit, as suits Data Center, whose
	// limits are whatever its administrator set. NewClient sets it for
	// *.atlassian.net and the OAuth gateway.
	Cloud bool
	// Rates sets the starting rate of endpoints, in requests a second,
	// for limits you know; answers still adjust them.
	Rates map[Endpoint]float64
}

// NewRateLimiter returns the in-process RateLimiter that every Client has
// by default. Give one to several Clients of the same site with
// [WithRateLimiter] (clients for several users of one site, say) and they
// share what Jira says about its limits. It is safe for concurrent use.
//
// It keeps a token bucket for each endpoint (method and path template),
// starting from cfg and learning from every answer: the RateLimit-Policy
// and RateLimit headers (Beta- or not; r caps what it spends to what is
// left, and r=0 holds the endpoint until t), X-RateLimit-Limit on a burst
// 429, and Data Center's X-RateLimit-FillRate and X-RateLimit-Interval-
// Seconds, which pace the whole client. A burst 429 (RateLimit-Reason
// jira-burst-based) pauses that endpoint until the wait is over, for every
// goroutine; other endpoints go on. A quota 429 (jira-quota-global-based,
// jira-quota-tenant-based, or the gateway's 429 with only
// X-RateLimit-Reset) pauses everything until the reset. A 429 that
// announces no rate lowers the endpoint's rate to what was served in the
// second before it, which then recovers slowly. When the pace changes or a
// pause begins, requests already waiting their turn are paced again at the
// new rate, in their order.
//
// Whatever a server says is bounded: no wait or pause longer than 24
// hours, no pace slower than one request a minute.
func NewRateLimiter(cfg RateLimiterConfig) RateLimiter {
	g := &governor{
		cloud:   cfg.Cloud,
		rates:   cfg.Rates,
		buckets: map[Endpoint]*bucket{},
		global:  newPacer(math.Inf(1), 1, time.Now()),
		changed: make(chan struct{}),
	}
	return g
}

// maxBuckets bounds how many endpoints the governor keeps apart; past it,
// new endpoints of a method share one bucket (Client.Do can name any path).
const maxBuckets = 256

// governor is the in-process RateLimiter.
type governor struct {
	cloud bool
	rates map[Endpoint]float64

	mu      sync.RWMutex
	buckets map[Endpoint]*bucket

	// global paces every endpoint together: Data Center's per-user bucket.
	global *pacer
	// pause, when set and not over, holds every request: a spent quota.
	pause    atomic.Pointer[limits.Pause]
	inflight atomic.Int32

	// Requests waiting their turn, in the order they took it; a change of
	// pace or a new pause moves their turns (see repace).
	wmu     sync.Mutex
	waiting []*waiter
	changed chan struct{} // closed, and replaced, by repace
}

// bucket is one endpoint's pacing.
type bucket struct {
	lim      *pacer
	pause    atomic.Pointer[limits.Pause]
	inflight atomic.Int32
	queued   atomic.Int32 // requests waiting for their turn

	cut   atomic.Bool // the rate was lowered after a 429 that announced none
	known atomic.Bool // the pace comes from what the server said

	mu      sync.Mutex
	learned bool       // the rate came from the server's headers
	ceiling float64    // what a cut rate recovers to
	lastCut time.Time  // the last cut after an unannounced 429
	lastUp  time.Time  // the last step of recovery
	policy  string     // the policy that paces it, for messages
	served  [10]served // 2xx answers in the last second, by tenth
}

// served counts answers in one tenth of a second.
type served struct {
	tenth int64
	n     int
}

// waiter is a request waiting for its turn: its reservations on the
// endpoint's bucket and the global one.
type waiter struct {
	b       *bucket
	tb, tg  turn          // its turns on the endpoint's pacer and the global one
	at      time.Time     // when it may go
	changed chan struct{} // closed when repace moves its turn
}

func (g *governor) bucket(ep Endpoint) *bucket {
	g.mu.RLock()
	b := g.buckets[ep]
	g.mu.RUnlock()
	if b != nil {
		return b
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if b = g.buckets[ep]; b != nil {
		return b
	}
	if len(g.buckets) >= maxBuckets && !isOperationTemplate(ep.Path) {
		ep = Endpoint{Method: ep.Method, Path: "{other}"}
		if b = g.buckets[ep]; b != nil {
			return b
		}
	}
	now := time.Now()
	b = &bucket{lim: newPacer(math.Inf(1), 1, now), ceiling: math.Inf(1)}
	if r, ok := g.startRate(ep); ok {
		b.lim = newPacer(limits.PaceRate(r), limits.PaceBurst(r), now) // starts full
		b.ceiling = limits.PaceRate(r)
	}
	g.buckets[ep] = b
	return b
}

// startRate is an endpoint's rate before any answer: the configured one,
// or on Cloud the documented one.
func (g *governor) startRate(ep Endpoint) (float64, bool) {
	if r, ok := g.rates[ep]; ok && r > 0 {
		return limits.BoundRate(r), true
	}
	if !g.cloud {
		return 0, false
	}
	return limits.CloudRate(ep.Method, ep.Path), true
}

// Wait implements RateLimiter.
func (g *governor) Wait(ctx context.Context, ep Endpoint, maxWait time.Duration) error {
	return g.wait(ctx, g.bucket(ep), maxWait)
}

func (g *governor) wait(ctx context.Context, b *bucket, maxWait time.Duration) error {
	now := time.Now()
	// The fast path: nothing paused, a token at hand, no allocation.
	if g.pausedUntil(b, now) == nil && !g.global.isPaced() && b.lim.allow(now) {
		g.admitted(b)
		return nil
	}
	start := now
	deadline, ctxFirst := now.Add(maxWait), false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxFirst = d, true
	}
	refuse := func(now, at time.Time) error {
		r := limits.Refusal{Wait: at.Sub(now), MaxWait: maxWait, Waited: now.Sub(start), CtxFirst: ctxFirst}
		if p := g.pausedUntil(b, now); p != nil {
			r.Paused, r.Cause, r.Reason, r.Policy = true, p.Cause, p.Reason, p.Policy
		} else {
			b.mu.Lock()
			r.Policy = b.policy
			b.mu.Unlock()
			r.Rate, r.Queued = b.lim.limit(), int(b.queued.Load())
		}
		return refusal(r)
	}
	for {
		now = time.Now()
		if p := g.pausedUntil(b, now); p != nil {
			if p.Until.After(deadline) {
				return refuse(now, p.Until)
			}
			if err := sleep(ctx, p.Until.Sub(now)); err != nil {
				return err
			}
			continue
		}
		w, at := g.reserve(b, now, deadline)
		if w == nil {
			return refuse(now, at)
		}
		if err := g.awaitTurn(ctx, w, deadline); err != nil {
			if err == errPastDeadline {
				return refuse(time.Now(), w.at)
			}
			return err
		}
		// A pause may have begun as this turn came: wait it out and take
		// another.
		if g.pausedUntil(b, time.Now()) != nil {
			continue
		}
		g.admitted(b)
		return nil
	}
}

func (g *governor) admitted(b *bucket) {
	b.inflight.Add(1)
	g.inflight.Add(1)
}

// reserve takes a turn on b's pacer and on the global one, both at the
// later of their next turns (a request held back by one must not spend the
// other's turn early), and registers it so that repace can move it. When
// the turn would come after deadline it takes none and returns a nil
// waiter and the turn's time; a turn due now is never refused.
func (g *governor) reserve(b *bucket, now, deadline time.Time) (*waiter, time.Time) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	w := &waiter{b: b}
	if !g.book(w, now, deadline) {
		return nil, w.at
	}
	g.waiting = append(g.waiting, w)
	return w, w.at
}

// book books w's turns, the next from now on, unless they would come after
// deadline (the zero time: no deadline). Callers hold g.wmu.
func (g *governor) book(w *waiter, now, deadline time.Time) bool {
	b := w.b
	b.lim.mu.Lock()
	defer b.lim.mu.Unlock()
	g.global.mu.Lock()
	defer g.global.mu.Unlock()
	w.at = maxTime(b.lim.nextLocked(now), g.global.nextLocked(now))
	if !deadline.IsZero() && w.at.After(now) && w.at.After(deadline) {
		return false
	}
	w.tb, w.tg = b.lim.bookLocked(w.at), g.global.bookLocked(w.at)
	w.changed = g.changed
	return true
}

// errPastDeadline ends a wait whose turn repace moved past its deadline.
var errPastDeadline = errors.New("turn moved past the deadline")

// awaitTurn sleeps until w's turn, following it when repace moves it. It
// returns ctx's error when ctx ends, and errPastDeadline when a move takes
// the turn past deadline; either way the turn is given back.
func (g *governor) awaitTurn(ctx context.Context, w *waiter, deadline time.Time) error {
	w.b.queued.Add(1)
	defer w.b.queued.Add(-1)
	for {
		g.wmu.Lock()
		now := time.Now()
		at, changed := w.at, w.changed
		switch {
		case !now.Before(at):
			g.unregister(w)
			g.wmu.Unlock()
			return nil
		case at.After(deadline):
			g.giveBackLocked(w)
			g.wmu.Unlock()
			return errPastDeadline
		}
		g.wmu.Unlock()
		t := time.NewTimer(at.Sub(now))
		select {
		case <-t.C:
		case <-changed:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			g.wmu.Lock()
			g.giveBackLocked(w)
			g.wmu.Unlock()
			return ctx.Err()
		}
	}
}

// giveBackLocked gives w's turns back, as far as the pacers allow, and
// forgets it. Callers hold g.wmu.
func (g *governor) giveBackLocked(w *waiter) {
	w.b.lim.giveBack(w.tb)
	g.global.giveBack(w.tg)
	g.unregister(w)
}

func (g *governor) unregister(w *waiter) {
	for i, o := range g.waiting {
		if o == w {
			g.waiting = append(g.waiting[:i], g.waiting[i+1:]...)
			return
		}
	}
}

// repace applies change (a new pace, a pause) so that it holds for the
// requests already waiting too: their turns ahead, the tail of each
// pacer's schedule, are given back, the last first; change is applied;
// and they are booked again, in the order they queued, under the new pace
// (after the pause, when one holds them), and woken to follow their new
// turns. Turns already due are left: those requests are on their way.
func (g *governor) repace(change func()) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	now := time.Now()
	var ahead []*waiter
	for i := len(g.waiting) - 1; i >= 0; i-- {
		w := g.waiting[i]
		if w.at.After(now) {
			w.b.lim.giveBack(w.tb)
			g.global.giveBack(w.tg)
			ahead = append(ahead, w)
		}
	}
	change()
	woken := g.changed
	g.changed = make(chan struct{})
	for i := len(ahead) - 1; i >= 0; i-- { // in the order they queued
		w := ahead[i]
		from := now
		if p := g.pausedUntil(w.b, now); p != nil {
			from = p.Until
		}
		g.book(w, from, time.Time{}) // each waiter checks its own deadline
	}
	close(woken)
}

// pausedUntil is the pause holding ep now, the client's or the
// endpoint's, whichever ends later; nil when there is none.
func (g *governor) pausedUntil(b *bucket, now time.Time) *limits.Pause {
	return limits.Holding(now, g.pause.Load(), b.pause.Load())
}

// refusal is the error of a request the limiter will not let out in time:
// within maxWait, or before the context's deadline when that comes first.
// Its text (limits.Refusal's) says why, what bounded the wait and, for a
// queue, how deep it is and what allowance would have served it; how long
// it would have had to wait is its RetryAfter (Error() says it with the
// reason of the 429 behind a pause).
func refusal(r limits.Refusal) *Error {
	rl := noRateLimit()
	rl.Policy = r.Policy
	if r.Paused {
		rl.Reason = r.Reason
	}
	return &Error{StatusCode: 429, Message: r.Message(), RetryAfter: max(r.Wait, 0), RateLimit: rl}
}

// joinNonEmpty joins the strings that are not empty.
func joinNonEmpty(sep string, ss ...string) string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, sep)
}

// Done implements RateLimiter.
func (g *governor) Done(ep Endpoint, o Outcome) { g.done(g.bucket(ep), o) }

func (g *governor) done(b *bucket, o Outcome) {
	// A Done without its Wait (a caller of a shared limiter's own making)
	// must not push the counts below zero: r minus a negative count would
	// keep tokens the server says are gone.
	inflight := int(decrement(&b.inflight))
	decrement(&g.inflight)
	if o.StatusCode == 0 {
		return
	}
	now := time.Now()
	rl := o.RateLimit
	announced := g.learn(b, rl, inflight, now)
	switch {
	case o.StatusCode == 429:
		g.throttled(b, o, announced, now)
	case o.StatusCode < 400:
		b.count(now)
		b.recover(g, now)
	}
}

// decrement lowers n by one, not below zero, and returns the new value.
func decrement(n *atomic.Int32) int32 {
	for {
		v := n.Load()
		if v <= 0 {
			return 0
		}
		if n.CompareAndSwap(v, v-1) {
			return v - 1
		}
	}
}

// learn adjusts the pacing to what an answer's headers announce, and
// reports whether they announced a rate.
func (g *governor) learn(b *bucket, rl RateLimit, inflight int, now time.Time) (announced bool) {
	// Enforced policies win over Beta ones of the same name.
	for _, beta := range []bool{false, true} {
		for _, p := range rl.Policies {
			if p.Beta != beta {
				continue
			}
			if limits.IsQuota(p.Name) {
				if !p.Beta && p.Remaining == 0 && p.Reset.After(now) {
					g.pauseAll(&limits.Pause{Until: p.Reset, Policy: p.Name, Cause: "until the quota resets: the server said none is left"})
				}
				continue
			}
			changed := false
			if !announced && p.Quota > 0 && p.Window > 0 {
				changed = g.setRate(b, float64(p.Quota)/p.Window.Seconds(), p.Name)
				announced = true
			}
			if p.Remaining >= 0 && !p.Beta {
				// r is the server's count of what is left in its window:
				// none means none until t, whatever the bucket holds; a
				// pace just learnt starts from it rather than from one.
				switch {
				case p.Remaining == 0 && p.Reset.After(now):
					g.pauseEndpoint(b, &limits.Pause{Until: p.Reset, Policy: p.Name, Cause: "until the window resets: the server said none are left"})
				default:
					if changed {
						b.lim.fillTo(p.Remaining-inflight, now)
					}
					b.lim.spendTo(p.Remaining-inflight, now)
				}
			}
		}
	}
	switch {
	case rl.FillRate > 0 && rl.Interval > 0:
		// Data Center: one bucket for all of this user's requests, of
		// Limit tokens refilled at FillRate every Interval. Paced with the
		// same margin as a burst limit, a request short of it.
		_, r, burst := limits.DataCenterPace(rl.FillRate, rl.Interval, rl.Limit)
		g.global.mu.Lock()
		same := g.global.rate == r && g.global.burst == burst
		g.global.mu.Unlock()
		if !same {
			g.repace(func() { g.global.set(r, burst, now) })
		}
		if left := rl.Remaining - int(g.inflight.Load()); rl.Remaining >= 0 {
			if !same {
				g.global.fillTo(left, now)
			}
			g.global.spendTo(left, now)
		}
		announced = true
	case !announced && rl.Reason == "jira-burst-based" && rl.Limit > 0:
		// On Cloud, X-RateLimit-Limit of a burst limit is per second.
		g.setRate(b, float64(rl.Limit), rl.Reason)
		announced = true
	}
	return announced
}

// throttled reacts to a 429: it pauses the endpoint, or everything, until
// the wait is over.
func (g *governor) throttled(b *bucket, o Outcome, announced bool, now time.Time) {
	rl := o.RateLimit
	policy := ""
	for _, p := range rl.Policies {
		if !p.Beta && p.Remaining == 0 {
			policy = p.Name
			break
		}
	}
	wait := limits.BoundWait(o.Wait)
	if limits.Quota429(rl.Reason, rl.RetryAfter >= 0, !rl.Reset.IsZero(), wait) {
		g.pauseAll(&limits.Pause{Until: now.Add(wait), Reason: rl.Reason, Policy: policy, Cause: "after a 429"})
		return
	}
	if wait <= 0 {
		wait = time.Second // burst limits are per second
	}
	g.pauseEndpoint(b, &limits.Pause{Until: now.Add(wait), Reason: rl.Reason, Policy: policy, Cause: "after a 429"})
	if !announced {
		g.cutRate(b, int(b.inflight.Load()), now)
	}
}

// pauseAll and pauseEndpoint start (or extend) a pause; requests already
// waiting their turn wait it out, then take new turns.
func (g *governor) pauseAll(p *limits.Pause) {
	p.Until = boundUntil(p.Until)
	if extends(&g.pause, p) {
		g.repace(func() { limits.Extend(&g.pause, p) })
	}
}

func (g *governor) pauseEndpoint(b *bucket, p *limits.Pause) {
	p.Until = boundUntil(p.Until)
	if extends(&b.pause, p) {
		g.repace(func() { limits.Extend(&b.pause, p) })
	}
}

// extends reports whether p ends later than the pause in ptr.
func extends(ptr *atomic.Pointer[limits.Pause], p *limits.Pause) bool {
	cur := ptr.Load()
	return cur == nil || p.Until.After(cur.Until)
}

// setRate paces b for a limit of n requests a second, and reports whether
// that changed its pace.
func (g *governor) setRate(b *bucket, n float64, policy string) bool {
	n = limits.BoundRate(n)
	r := limits.PaceRate(n)
	b.mu.Lock()
	same := b.learned && b.lim.limit() == r && !b.cut.Load()
	b.mu.Unlock()
	if same {
		return false
	}
	g.repace(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		// Limit first: coming from no limit, the bucket starts with one
		// token, not full: what was sent before the limit was known
		// counts already.
		b.lim.set(r, min(limits.PaceBurst(n), limits.MaxBurst), time.Now())
		b.learned, b.ceiling, b.policy = true, r, policy
		b.cut.Store(false)
		b.known.Store(true)
	})
	return true
}

// count records a 2xx answer, so that a 429 that announces no limit can be
// met with the rate the server was serving.
func (b *bucket) count(now time.Time) {
	tenth := now.UnixMilli() / 100
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &b.served[tenth%int64(len(b.served))]
	if s.tenth != tenth {
		s.tenth, s.n = tenth, 0
	}
	s.n++
}

// servedLastSecond is how many 2xx answers came in the second before now.
// Callers hold b.mu.
func (b *bucket) servedLastSecond(now time.Time) int {
	tenth, n := now.UnixMilli()/100, 0
	for _, s := range b.served {
		if tenth-s.tenth < int64(len(b.served)) {
			n += s.n
		}
	}
	return n
}

// cutRate lowers the rate after a 429 that announced no limit: to the pace
// for what the server served in the second before it (its limit, most
// likely; the requests still in flight may have been served too, and
// counting them errs high, which a further 429 corrects), and never above
// 90 % of the pace it had.
func (g *governor) cutRate(b *bucket, inflight int, now time.Time) {
	b.mu.Lock()
	if now.Sub(b.lastCut) < time.Second {
		b.mu.Unlock()
		return // one cut per burst of 429s
	}
	cur := b.lim.limit()
	if math.IsInf(cur, 1) {
		cur = limits.CloudDefaultRate
	}
	next := cur * 0.9
	if n := b.servedLastSecond(now); n > 0 {
		next = min(next, limits.PaceRate(float64(n)))
	}
	next = max(next, limits.MinRate)
	if !b.cut.Load() {
		b.ceiling = b.lim.limit()
	}
	b.lastCut = now
	b.mu.Unlock()
	g.repace(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.lim.set(next, limits.PaceBurst(next), now)
		b.cut.Store(true)
		b.known.Store(true)
	})
}

// recover raises a cut rate by a twentieth every 10 seconds without a 429,
// up to what it was: a limit may have risen, but probing it costs a 429.
func (b *bucket) recover(g *governor, now time.Time) {
	if !b.cut.Load() {
		return
	}
	b.mu.Lock()
	if !b.cut.Load() || now.Sub(maxTime(b.lastCut, b.lastUp)) < 10*time.Second {
		b.mu.Unlock()
		return
	}
	next := b.lim.limit() * 1.05
	done := next >= b.ceiling
	if done {
		next = b.ceiling
	}
	b.lastUp = now
	b.mu.Unlock()
	g.repace(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.lim.set(next, limits.PaceBurst(next), now)
		if done {
			b.cut.Store(false)
		}
	})
}

// knownPace is the pace of b, requests a second, and whether it comes from
// what the server said (an announced policy, a 429's limit or what was
// served before a 429, Data Center's fill rate) rather than from a
// documented default or nothing.
func (g *governor) knownPace(b *bucket) (float64, bool) {
	if r := g.global.limit(); !math.IsInf(r, 1) {
		return min(r, b.lim.limit()), true
	}
	return b.lim.limit(), b.known.Load()
}
