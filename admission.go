package servicedesk

// How a call's attempts are let out: the client's RateLimiter, then a free
// slot on the wire.

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// admit waits until the call's next attempt may go out: the limiter's
// turn, then a free slot on the wire.
func (cl *call) admit() error {
	start := time.Now()
	defer func() {
		d := time.Since(start)
		cl.waited += d
		cl.waitedSince += d
	}()
	c := cl.c
	for {
		if err := cl.limiterWait(max(0, c.limitWait-time.Since(start))); err != nil {
			return err
		}
		if c.slots.tryAcquire() {
			break
		}
		if err := c.slots.acquire(cl.Context); err != nil {
			cl.limiterDone(Outcome{})
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

// limiterWait and limiterDone are the limiter's Wait and Done; for the
// client's own governor, the endpoint's bucket is looked up once a call.
func (cl *call) limiterWait(maxWait time.Duration) error {
	if g, ok := cl.c.limiter.(*governor); ok {
		if cl.bucket == nil {
			cl.bucket = g.bucket(cl.r.endpoint)
		}
		return g.wait(cl.Context, cl.bucket, maxWait)
	}
	return cl.c.limiter.Wait(cl.Context, cl.r.endpoint, maxWait)
}

func (cl *call) limiterDone(o Outcome) {
	if g, ok := cl.c.limiter.(*governor); ok {
		g.done(cl.bucket, o)
		return
	}
	cl.c.limiter.Done(cl.r.endpoint, o)
}

// settle tells the limiter what came of the attempt admitted last (resp
// is nil when none came) and frees its slot.
func (cl *call) settle(resp *http.Response, wait time.Duration) {
	if !cl.admitted {
		return
	}
	cl.admitted = false
	var o Outcome
	if resp != nil {
		o = Outcome{StatusCode: resp.StatusCode, RateLimit: cl.rl, Wait: wait}
	}
	// The limiter learns (a pause, say) before the slot frees: no request
	// slips out between the two.
	cl.limiterDone(o)
	cl.c.slots.release()
}

// refused is the error of a call the limiter would not let out: its
// *Error, naming the request, or the context's error.
func (cl *call) refused(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return cl.transportError(err)
	}
	e.Method, e.URL = cl.r.method, redactedURL(cl.r.url)
	e.Attempts = 0
	return e
}

// noLimiter lets everything through at once: WithRateLimiter(nil).
type noLimiter struct{}

func (noLimiter) Wait(context.Context, Endpoint, time.Duration) error { return nil }
func (noLimiter) Done(Endpoint, Outcome)                              {}

// inFlight bounds the requests a Client has on the wire at once.
type inFlight chan struct{}

func (s inFlight) tryAcquire() bool {
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s inFlight) acquire(ctx context.Context) error {
	select {
	case s <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s inFlight) release() { <-s }
