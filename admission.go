package servicedesk

// How a call's attempts are let out: the client's RateLimiter, then a free
// slot on the wire, all within the call's WithRateLimitWait allowance.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// admit waits until the call's next attempt may go out: a free slot on
// the wire, then the limiter's turn. In that order, so that the turn is
// the last thing before the request goes: a turn taken first and then
// held while every slot was busy (a slow spell) would go out with all the
// others held the same way, in a burst past the pace. What it waits counts
// against the call's allowance (WithRateLimitWait); past that it refuses.
func (cl *call) admit() error {
	start := time.Now()
	defer func() {
		d := time.Since(start)
		cl.waited += d
		cl.waitedSince += d
		cl.limitWaited += d
	}()
	c := cl.c
	left := func() time.Duration { return max(0, c.limitWait-cl.limitWaited-time.Since(start)) }
	limit := func() int { return c.slotLimit(cl.lookupBucket()) }
	if !c.slots.tryAcquire(limit()) {
		if err := c.slots.acquire(cl.ctx, limit, time.Now().Add(left())); err != nil {
			if errors.Is(err, errSlotWait) {
				return cl.slotRefusal(time.Since(start), limit())
			}
			return err
		}
	}
	if err := cl.limiterWait(left()); err != nil {
		c.slots.release()
		return err
	}
	cl.admitted = true
	return nil
}

// slotRefusal is the error of a call that found every slot on the wire
// busy for as long as its allowance lasted. It says to come back in about
// the time an answer takes, a second at the least.
func (cl *call) slotRefusal(waited time.Duration, slots int) *Error {
	c := cl.c
	msg := fmt.Sprintf("not sent: every slot on the wire (%d, WithMaxInFlight) stayed busy for %v; WithRateLimitWait allows %v a call",
		slots, waited.Round(time.Millisecond), c.limitWait)
	if spent := cl.limitWaited; spent >= time.Millisecond {
		msg += fmt.Sprintf(", of which %v went in earlier waits", spent.Round(time.Millisecond))
	}
	return &Error{StatusCode: http.StatusTooManyRequests, Message: msg, RetryAfter: max(c.conc.latency(), time.Second), RateLimit: noRateLimit()}
}

// lookupBucket is the client's own governor's bucket for the call's
// endpoint, looked up once a call; nil for another limiter.
func (cl *call) lookupBucket() *bucket {
	if g, ok := cl.c.limiter.(*governor); ok && cl.bucket == nil {
		cl.bucket = g.bucket(cl.r.endpoint)
	}
	return cl.bucket
}

// limiterWait and limiterDone are the limiter's Wait and Done.
func (cl *call) limiterWait(maxWait time.Duration) error {
	if g, ok := cl.c.limiter.(*governor); ok {
		return g.wait(cl.ctx, cl.lookupBucket(), maxWait)
	}
	return cl.c.limiter.Wait(cl.ctx, cl.r.endpoint, maxWait)
}

func (cl *call) limiterDone(o Outcome) {
	if g, ok := cl.c.limiter.(*governor); ok {
		g.done(cl.bucket, o)
		return
	}
	cl.c.limiter.Done(cl.r.endpoint, o)
}

// settle tells the limiter what came of the attempt admitted last (resp
// is nil when none came) and frees its slot, even when the limiter panics.
func (cl *call) settle(resp *http.Response, wait time.Duration) {
	if !cl.admitted {
		return
	}
	cl.admitted = false
	defer cl.c.slots.release()
	var o Outcome
	if resp != nil {
		o = Outcome{StatusCode: resp.StatusCode, RateLimit: cl.rl, Wait: wait}
	}
	// The limiter learns (a pause, say) before the slot frees: no request
	// slips out between the two.
	cl.limiterDone(o)
}

// refused is the error of a call the limiter would not let out: its
// *Error, naming the request, or the context's error. The limiter's error
// is copied, not written to: a limiter may hand the same one to many calls.
func (cl *call) refused(err error) error {
	var e *Error
	if !errors.As(err, &e) || e == nil {
		return cl.transportError(err)
	}
	cp := *e
	cp.Method, cp.URL = cl.r.method, redactedURL(cl.r.url)
	cp.Attempts = 0
	return &cp
}

// noLimiter lets everything through at once: WithRateLimiter(nil).
type noLimiter struct{}

func (noLimiter) Wait(context.Context, Endpoint, time.Duration) error { return nil }
func (noLimiter) Done(Endpoint, Outcome)                              {}

// maxAutoInFlight caps the adaptive bound on requests in flight.
const maxAutoInFlight = 64

// probeEvery is the shortest time between two steps of the probing bound.
const probeEvery = 500 * time.Millisecond

// slotLimit is how many requests the client may have on the wire for a
// call to b's endpoint: WithMaxInFlight's number, or else the adaptive
// bound (see concurrency).
func (c *Client) slotLimit(b *bucket) int {
	if c.maxInFlight > 0 {
		return c.maxInFlight
	}
	if g, ok := c.limiter.(*governor); ok && b != nil {
		if r, known := g.knownPace(b); known {
			return c.conc.forPace(r)
		}
	}
	return c.conc.probed()
}

// concurrency is the adaptive bound on requests in flight, for a client
// without WithMaxInFlight.
//
// Once the server has told the endpoint's pace (announced it, named its
// limit in a 429, or a 429 showed what it serves), pacing is what keeps
// requests from bursting, and the bound is as many as that pace needs at
// the latency observed: Little's law, with half again as much headroom.
//
// Until then the bound probes, as TCP's congestion window does: it starts
// at DefaultMaxInFlight (Atlassian asks for 5–10), grows by one a round
// trip (at most two a second) while calls wait for a slot and answers come
// back 2xx, and falls by a quarter on a 429. A crowd of goroutines cannot burst, and a slow
// server does not hold a bulk job below its limit for good: at 250 ms a
// request, 8 in flight are 32 a second.
//
// Either way it stays between DefaultMaxInFlight and maxAutoInFlight.
type concurrency struct {
	latencyNS atomic.Int64 // moving average of the time to an answer
	probe     atomic.Int32 // the probing bound (DefaultMaxInFlight when 0)
	grown     atomic.Int64 // when the probe last changed, Unix nanoseconds
}

func (cc *concurrency) forPace(r float64) int {
	need := math.Ceil(r*cc.latency().Seconds()*1.5) + 1
	return int(min(max(float64(DefaultMaxInFlight), need), maxAutoInFlight))
}

func (cc *concurrency) probed() int {
	return int(max(cc.probe.Load(), DefaultMaxInFlight))
}

// observe folds an answer into the bound: its latency, and for the probe,
// a 2xx or a 429; starved says calls are waiting for a slot.
func (cc *concurrency) observe(d time.Duration, status int, starved bool) {
	for {
		old := cc.latencyNS.Load()
		next := int64(d)
		if old > 0 {
			next = old + (int64(d)-old)/8
		}
		if cc.latencyNS.CompareAndSwap(old, next) {
			break
		}
	}
	stored := cc.probe.Load()
	n := max(stored, DefaultMaxInFlight)
	now := time.Now().UnixNano()
	switch {
	case status == 429:
		if cc.probe.CompareAndSwap(stored, max(DefaultMaxInFlight, n-n/4)) {
			cc.grown.Store(now)
		}
	case status >= 200 && status < 300 && n < maxAutoInFlight && starved:
		// One more a round trip while calls wait for slots, and no more
		// than two a second: Jira counts its burst limits by the second,
		// and the requests in flight when one is crossed all come back
		// 429, so the bound must not run far ahead of the server's word.
		if last := cc.grown.Load(); now-last >= max(cc.latencyNS.Load(), int64(probeEvery)) && cc.grown.CompareAndSwap(last, now) {
			cc.probe.CompareAndSwap(stored, n+1)
		}
	}
}

func (cc *concurrency) latency() time.Duration { return time.Duration(cc.latencyNS.Load()) }

// inFlight bounds the requests a Client has on the wire at once. The bound
// is given with each acquire, since it may change as the client learns.
// Calls that wait for a slot get one in the order they came: a slot that
// frees goes to the first in line, so none waits for many rounds while
// others overtake it.
type inFlight struct {
	mu    sync.Mutex
	used  int
	queue []*slotWaiter // first come, first served
}

// slotWaiter is a call waiting for a slot.
type slotWaiter struct {
	ready   chan struct{} // closed when the slot is granted
	limit   func() int
	granted bool
}

// errSlotWait ends a wait for a slot that lasted as long as allowed.
var errSlotWait = errors.New("no slot on the wire came free in time")

// tryAcquire takes a slot if one is free and no call is waiting for one.
func (s *inFlight) tryAcquire(limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 && s.used < limit {
		s.used++
		return true
	}
	return false
}

// acquire waits for a slot, in line, until ctx ends (its error) or the
// deadline passes (errSlotWait).
func (s *inFlight) acquire(ctx context.Context, limit func() int, deadline time.Time) error {
	s.mu.Lock()
	if len(s.queue) == 0 && s.used < limit() {
		s.used++
		s.mu.Unlock()
		return nil
	}
	w := &slotWaiter{ready: make(chan struct{}), limit: limit}
	s.queue = append(s.queue, w)
	s.mu.Unlock()

	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var err error
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = errSlotWait
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.granted { // granted as it gave up: give the slot on
		s.used--
		s.grantLocked()
		return err
	}
	for i, o := range s.queue {
		if o == w {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			break
		}
	}
	s.grantLocked() // the call behind it may fit under its own bound
	return err
}

func (s *inFlight) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used--
	s.grantLocked()
}

// grantLocked hands free slots to the calls in line, first come first.
func (s *inFlight) grantLocked() {
	for len(s.queue) > 0 && s.used < s.queue[0].limit() {
		w := s.queue[0]
		s.queue = s.queue[1:]
		s.used++
		w.granted = true
		close(w.ready)
	}
}

// starved reports calls waiting for a slot.
func (s *inFlight) starved() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0
}
