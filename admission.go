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
	"time"

	"golang.org/x/time/rate"
)

// admit waits until the call's next attempt may go out: the limiter's
// turn, then a free slot on the wire. What it waits counts against the
// call's allowance (WithRateLimitWait); past that it refuses.
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
	for {
		if err := cl.limiterWait(left()); err != nil {
			return err
		}
		limit := func() int { return c.slotLimit(cl.bucket) }
		if c.slots.tryAcquire(limit()) {
			break
		}
		if err := c.slots.acquire(cl.ctx, limit, time.Now().Add(left())); err != nil {
			cl.limiterDone(Outcome{})
			if errors.Is(err, errSlotWait) {
				return cl.slotRefusal(time.Since(start), limit())
			}
			return err
		}
		// The wait for a slot may have been long enough for a 429 to come
		// back and pause this endpoint: then give both back and wait again.
		if g, ok := c.limiter.(*governor); !ok || g.pausedUntil(cl.bucket, time.Now()) == nil {
			break
		}
		c.slots.release()
		cl.limiterDone(Outcome{})
	}
	cl.admitted = true
	return nil
}

// slotRefusal is the error of a call that found every slot on the wire
// busy for as long as its allowance lasted.
func (cl *call) slotRefusal(waited time.Duration, slots int) *Error {
	c := cl.c
	msg := fmt.Sprintf("not sent: all %d requests the client may have on the wire at once (WithMaxInFlight) stayed busy for %v; WithRateLimitWait allows %v a call",
		slots, waited.Round(time.Millisecond), c.limitWait)
	if spent := cl.limitWaited; spent > 0 {
		msg += fmt.Sprintf(", of which %v went in earlier waits", spent.Round(time.Millisecond))
	}
	return &Error{StatusCode: http.StatusTooManyRequests, Message: msg, RetryAfter: c.latency(), RateLimit: noRateLimit()}
}

// limiterWait and limiterDone are the limiter's Wait and Done; for the
// client's own governor, the endpoint's bucket is looked up once a call.
func (cl *call) limiterWait(maxWait time.Duration) error {
	if g, ok := cl.c.limiter.(*governor); ok {
		if cl.bucket == nil {
			cl.bucket = g.bucket(cl.r.endpoint)
		}
		return g.wait(cl.ctx, cl.bucket, maxWait)
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

// slotLimit is how many requests the client may have on the wire for a
// call to b's endpoint: WithMaxInFlight's number, or by default enough for
// the rate the governor paces the endpoint at, at the latency observed
// (Little's law, with half again as much headroom), never fewer than
// DefaultMaxInFlight nor more than maxAutoInFlight. An endpoint that
// nothing paces gets DefaultMaxInFlight: then the bound is what keeps a
// crowd of goroutines from bursting.
func (c *Client) slotLimit(b *bucket) int {
	if c.maxInFlight > 0 {
		return c.maxInFlight
	}
	n := DefaultMaxInFlight
	g, ok := c.limiter.(*governor)
	if !ok || b == nil {
		return n
	}
	r := min(b.pace(), float64(g.global.Limit()))
	if r >= float64(rate.Inf) || r <= 0 {
		return n // unpaced
	}
	need := math.Ceil(r*c.latency().Seconds()*1.5) + 1
	return int(min(max(float64(n), need), maxAutoInFlight))
}

// observeLatency folds an attempt's time to its answer into the client's
// moving average.
func (c *Client) observeLatency(d time.Duration) {
	for {
		old := c.latencyNS.Load()
		next := int64(d)
		if old > 0 {
			next = old + (int64(d)-old)/8
		}
		if c.latencyNS.CompareAndSwap(old, next) {
			return
		}
	}
}

func (c *Client) latency() time.Duration { return time.Duration(c.latencyNS.Load()) }

// inFlight bounds the requests a Client has on the wire at once. The bound
// is given with each acquire, since it may change as the client learns.
type inFlight struct {
	mu    sync.Mutex
	used  int
	freed chan struct{} // closed, and replaced, whenever a slot frees
}

// errSlotWait ends a wait for a slot that lasted as long as allowed.
var errSlotWait = errors.New("no slot on the wire came free in time")

func (s *inFlight) tryAcquire(limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used < limit {
		s.used++
		return true
	}
	return false
}

// acquire waits for a slot until ctx ends (its error) or the deadline
// passes (errSlotWait).
func (s *inFlight) acquire(ctx context.Context, limit func() int, deadline time.Time) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		s.mu.Lock()
		if s.used < limit() {
			s.used++
			s.mu.Unlock()
			return nil
		}
		if s.freed == nil {
			s.freed = make(chan struct{})
		}
		freed := s.freed
		s.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return errSlotWait
		}
	}
}

func (s *inFlight) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used--
	if s.freed != nil {
		close(s.freed)
		s.freed = nil
	}
}

// inUse is how many slots are taken.
func (s *inFlight) inUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}
