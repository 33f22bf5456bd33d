package servicedesk

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
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
	// Each nil return is followed by exactly one call to Done.
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
// left), X-RateLimit-Limit on a burst 429, and Data Center's X-RateLimit-
// FillRate and X-RateLimit-Interval-Seconds, which pace the whole client.
// A burst 429 (RateLimit-Reason jira-burst-based) pauses that endpoint until
// the wait is over, for every goroutine; other endpoints go on. A quota 429
// (jira-quota-global-based, jira-quota-tenant-based, or the gateway's 429
// with only X-RateLimit-Reset) pauses everything until the reset. A 429
// that announces no rate lowers the endpoint's rate, which then recovers.
func NewRateLimiter(cfg RateLimiterConfig) RateLimiter {
	g := &governor{
		cloud:   cfg.Cloud,
		rates:   cfg.Rates,
		buckets: map[Endpoint]*bucket{},
		global:  rate.NewLimiter(rate.Inf, 1),
	}
	return g
}

// Documented burst rates of Jira Cloud, requests a second.
const (
	cloudListCustomersRate = 5
	cloudDefaultRate       = 100
	cloudDeleteRate        = 50
)

// governor is the in-process RateLimiter.
type governor struct {
	cloud bool
	rates map[Endpoint]float64

	mu      sync.RWMutex
	buckets map[Endpoint]*bucket

	// global paces every endpoint together: Data Center's per-user bucket.
	global *rate.Limiter
	// pause, when set and not over, holds every request: a spent quota.
	pause    atomic.Pointer[pause]
	inflight atomic.Int32
}

// pause is a time before which nothing may be sent, and why.
type pause struct {
	until  time.Time
	reason string
}

// bucket is one endpoint's pacing.
type bucket struct {
	lim      *rate.Limiter
	pause    atomic.Pointer[pause]
	inflight atomic.Int32

	cut atomic.Bool // the rate was lowered after a 429 that announced none

	mu      sync.Mutex
	learned bool       // the rate came from the server's headers
	ceiling rate.Limit // what a cut rate recovers to
	lastCut time.Time
	reason  string // the policy that paces it, for messages
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
	if b = g.buckets[ep]; b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Inf, 1), ceiling: rate.Inf}
		if r, ok := g.startRate(ep); ok {
			b.lim = rate.NewLimiter(paceRate(r), paceBurst(r)) // starts full
			b.ceiling = b.lim.Limit()
		}
		g.buckets[ep] = b
	}
	return b
}

// startRate is an endpoint's rate before any answer: the configured one,
// or on Cloud the documented one.
func (g *governor) startRate(ep Endpoint) (float64, bool) {
	if r, ok := g.rates[ep]; ok && r > 0 {
		return r, true
	}
	if !g.cloud {
		return 0, false
	}
	switch {
	case ep.Method == "GET" && ep.Path == deskCustomersTemplate:
		return cloudListCustomersRate, true
	case ep.Method == "DELETE":
		return cloudDeleteRate, true
	}
	return cloudDefaultRate, true
}

// paceRate and paceBurst turn a limit of n requests a second into a bucket
// that keeps below it in any one-second window, so that the server's
// count never runs out (its "r=0;t=1" would cost a pause of up to a
// second): burst + rate < n, the rate at 85 % of n, less for small limits.
func paceRate(n float64) rate.Limit {
	b := float64(paceBurst(n))
	if n >= 10 {
		return rate.Limit(min(0.85*n, n-b-1))
	}
	return rate.Limit(max(n-b, 0.5*n))
}

func paceBurst(n float64) int {
	return max(1, int(0.15*n))
}

// Wait implements RateLimiter.
func (g *governor) Wait(ctx context.Context, ep Endpoint, maxWait time.Duration) error {
	return g.wait(ctx, g.bucket(ep), maxWait)
}

func (g *governor) wait(ctx context.Context, b *bucket, maxWait time.Duration) error {
	now := time.Now()
	// The fast path: nothing paused, a token at hand, no allocation.
	if g.pausedUntil(b, now) == nil && g.global.Limit() == rate.Inf && b.lim.AllowN(now, 1) {
		b.inflight.Add(1)
		g.inflight.Add(1)
		return nil
	}
	deadline, ctxFirst := now.Add(maxWait), false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxFirst = d, true
	}
	for {
		now = time.Now()
		if p := g.pausedUntil(b, now); p != nil {
			if p.until.After(deadline) {
				return refusal(p.until.Sub(now), p.reason, "paused after a 429", maxWait, ctxFirst)
			}
			if err := sleep(ctx, p.until.Sub(now)); err != nil {
				return err
			}
			continue
		}
		rb, rg := b.lim.ReserveN(now, 1), g.global.ReserveN(now, 1)
		delay := max(rb.DelayFrom(now), rg.DelayFrom(now))
		if !rb.OK() || !rg.OK() || now.Add(delay).After(deadline) {
			rb.CancelAt(now)
			rg.CancelAt(now)
			b.mu.Lock()
			reason := b.reason
			b.mu.Unlock()
			return refusal(delay, reason, "paced", maxWait, ctxFirst)
		}
		if err := sleep(ctx, delay); err != nil {
			rb.Cancel()
			rg.Cancel()
			return err
		}
		// A pause may have begun while this request waited its turn.
		if g.pausedUntil(b, time.Now()) != nil {
			continue
		}
		b.inflight.Add(1)
		g.inflight.Add(1)
		return nil
	}
}

// pausedUntil is the pause holding ep now, the client's or the
// endpoint's, whichever ends later; nil when there is none.
func (g *governor) pausedUntil(b *bucket, now time.Time) *pause {
	var held *pause
	for _, p := range []*pause{g.pause.Load(), b.pause.Load()} {
		if p != nil && p.until.After(now) && (held == nil || p.until.After(held.until)) {
			held = p
		}
	}
	return held
}

// refusal is the error of a request the limiter will not let out in time:
// within maxWait, or before the context's deadline when that comes first.
func refusal(wait time.Duration, reason, what string, maxWait time.Duration, ctxFirst bool) *Error {
	limit := fmt.Sprintf("WithRateLimitWait allows %v", maxWait.Round(time.Millisecond))
	if ctxFirst {
		limit = "the context's deadline comes first"
	}
	msg := "not sent: requests are " + what
	if reason != "" {
		msg += " (" + reason + ")"
	}
	msg += fmt.Sprintf(" for another %v; %s", wait.Round(time.Millisecond), limit)
	rl := noRateLimit()
	rl.Reason = reason
	return &Error{StatusCode: 429, Message: msg, RetryAfter: max(wait, 0), RateLimit: rl}
}

// Done implements RateLimiter.
func (g *governor) Done(ep Endpoint, o Outcome) { g.done(g.bucket(ep), o) }

func (g *governor) done(b *bucket, o Outcome) {
	inflight := int(b.inflight.Add(-1))
	g.inflight.Add(-1)
	if o.StatusCode == 0 {
		return
	}
	now := time.Now()
	rl := o.RateLimit
	announced := g.learn(b, rl, inflight, now)
	if o.StatusCode == 429 {
		g.throttled(b, o, announced, now)
	} else if o.StatusCode < 400 {
		b.recover(now)
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
			if p.isQuota() {
				if !p.Beta && p.Remaining == 0 && p.Reset.After(now) {
					g.pauseAll(p.Reset, p.Name)
				}
				continue
			}
			if !announced && p.Quota > 0 && p.Window > 0 {
				b.setRate(float64(p.Quota)/p.Window.Seconds(), p.Name)
				announced = true
			}
			if p.Remaining >= 0 && !p.Beta {
				b.spendTo(p.Remaining-inflight, now)
				// Nothing left until a reset more than a second away: wait
				// for it. A one-second window's "t=1" is rounded up and may
				// be a millisecond away; the drained bucket paces that.
				if p.Remaining == 0 && p.Reset.Sub(now) > time.Second {
					b.pauseUntil(p.Reset, p.Name)
				}
			}
		}
	}
	switch {
	case rl.FillRate > 0 && rl.Interval > 0:
		// Data Center: one bucket for all of this user's requests.
		g.global.SetLimitAt(now, rate.Limit(float64(rl.FillRate)/rl.Interval.Seconds()))
		if rl.Limit > 0 {
			g.global.SetBurstAt(now, rl.Limit)
		}
		if rl.Remaining >= 0 {
			spendTo(g.global, rl.Remaining-int(g.inflight.Load()), now)
		}
		announced = true
	case !announced && rl.Reason == "jira-burst-based" && rl.Limit > 0:
		// On Cloud, X-RateLimit-Limit of a burst limit is per second.
		b.setRate(float64(rl.Limit), rl.Reason)
		announced = true
	}
	return announced
}

// throttled reacts to a 429: it pauses the endpoint, or everything, until
// the wait is over.
func (g *governor) throttled(b *bucket, o Outcome, announced bool, now time.Time) {
	rl := o.RateLimit
	if quota429(rl, o.Wait) {
		reason := rl.Reason
		if reason == "" {
			reason = "quota"
		}
		g.pauseAll(now.Add(o.Wait), reason)
		return
	}
	wait := o.Wait
	if wait <= 0 {
		wait = time.Second // burst limits are per second
	}
	reason := rl.Reason
	if reason == "" {
		reason = "429"
	}
	b.pauseUntil(now.Add(wait), reason)
	if !announced {
		b.cutRate(now)
	}
}

// shortWait is the longest wait an unknown 429 reason may ask for and
// still be taken for a burst limit, not a quota.
const shortWait = 5 * time.Second

// quota429 reports whether a 429 is about a quota that holds every
// endpoint: Jira's hourly quotas, an unknown reason with a long wait, or
// the gateway's 429 that names nothing but X-RateLimit-Reset.
func quota429(rl RateLimit, wait time.Duration) bool {
	switch r := rl.Reason; {
	case strings.Contains(r, "quota"), r == "jira-cost-based":
		return true
	case r == "jira-burst-based", r == "jira-per-issue-on-write":
		return false
	case r == "":
		return rl.RetryAfter < 0 && !rl.Reset.IsZero()
	}
	return wait > shortWait
}

func (g *governor) pauseAll(until time.Time, reason string) {
	setPause(&g.pause, until, reason)
}

func (b *bucket) pauseUntil(until time.Time, reason string) {
	setPause(&b.pause, until, reason)
}

// setPause extends a pause to until; a shorter one never cuts it short.
func setPause(ptr *atomic.Pointer[pause], until time.Time, reason string) {
	next := &pause{until: until, reason: reason}
	for {
		cur := ptr.Load()
		if cur != nil && !until.After(cur.until) {
			return
		}
		if ptr.CompareAndSwap(cur, next) {
			return
		}
	}
}

// setRate paces the bucket for a limit of n requests a second.
func (b *bucket) setRate(n float64, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := paceRate(n)
	if b.learned && b.lim.Limit() == r && !b.cut.Load() {
		return
	}
	// Limit first: coming from no limit, the bucket starts with one token,
	// not full: what was sent before the limit was known counts already.
	b.lim.SetLimit(r)
	b.lim.SetBurst(paceBurst(n))
	b.learned, b.ceiling, b.reason = true, r, reason
	b.cut.Store(false)
}

// spendTo drops tokens the server says are not there: at most left remain.
func (b *bucket) spendTo(left int, now time.Time) { spendTo(b.lim, left, now) }

func spendTo(lim *rate.Limiter, left int, now time.Time) {
	if lim.Limit() == rate.Inf {
		return
	}
	if excess := lim.TokensAt(now) - float64(max(left, 0)); excess >= 1 {
		lim.ReserveN(now, int(math.Floor(excess)))
	}
}

// cutRate lowers the rate after a 429 that announced none: to 70 % of what
// it was, or of what was sent in the last second when nothing paced it.
func (b *bucket) cutRate(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.lim.Limit()
	if cur == rate.Inf {
		cur = rate.Limit(cloudDefaultRate)
	}
	if now.Sub(b.lastCut) < time.Second {
		return // one cut per burst of 429s
	}
	next := max(cur*0.7, 1)
	if !b.cut.Load() {
		b.ceiling = b.lim.Limit()
	}
	b.lim.SetLimitAt(now, next)
	b.lim.SetBurstAt(now, max(1, int(float64(next)*0.15)))
	b.lastCut = now
	b.cut.Store(true)
}

// recover raises a cut rate by a tenth every 5 seconds without a 429, up
// to what it was.
func (b *bucket) recover(now time.Time) {
	if !b.cut.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.cut.Load() || now.Sub(b.lastCut) < 5*time.Second {
		return
	}
	next := b.lim.Limit() * 1.1
	if next >= b.ceiling {
		next = b.ceiling
		b.cut.Store(false)
	}
	b.lim.SetLimitAt(now, next)
	if next != rate.Inf {
		b.lim.SetBurstAt(now, max(1, int(float64(next)*0.15)))
	}
	b.lastCut = now
}
