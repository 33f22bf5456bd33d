package servicedesk

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// call is one API call on its way through the pipeline: the request and
// what its attempts have seen. It is a context, the caller's with the call
// in it: that is how retryablehttp's hooks, shared by all calls of a
// Client, find it.
type call struct {
	context.Context // the caller's (or the CallStart hook's)

	c     *Client
	r     *request
	start time.Time

	n            int            // attempts made so far
	attemptStart time.Time      // when the current attempt started
	rl           RateLimit      // what the last answer said about rate limits
	sink         *rateLimitSink // set when the rate-limit hook must run on another goroutine

	admitted    bool          // the limiter let the current attempt out; Done is owed
	bucket      *bucket       // the governor's for the endpoint, once looked up
	waited      time.Duration // time spent waiting for the limiter and free slots
	waitedSince time.Duration // waits since the last attempt, backoff included
	refusal     *Error        // the limiter would not let a retry out in time
	status      int           // of the last answer
	requestID   string        // of the last answer

	// The per-attempt timeout. The call is the context of every attempt's
	// request; while an attempt is on its way its Done closes at the
	// attempt's deadline (or when the caller's context ends). A retry gets
	// a fresh Done.
	mu         sync.Mutex
	done       chan struct{}
	doneErr    error     // why done is closed
	deadline   time.Time // the attempt's; zero between attempts
	afters     []func()  // AfterFunc registrations of the current attempt
	stopAfters func() bool
	timer      *attemptTimer
	stopParent func() bool

	req retryablehttp.Request // the request the attempts send
}

type callKey struct{}

// Value finds the call itself under callKey, and anything else in the
// caller's context.
func (cl *call) Value(key any) any {
	if key == (callKey{}) {
		return cl
	}
	return cl.Context.Value(key)
}

// callOf returns the call a request's context belongs to, or nil.
func callOf(ctx context.Context) *call {
	cl, _ := ctx.Value(callKey{}).(*call)
	return cl
}

// attemptTimeoutError ends an attempt that ran out of time. It is a
// timeout (net.Error) and matches context.DeadlineExceeded.
type attemptTimeoutError struct{ after time.Duration }

func (e *attemptTimeoutError) Error() string {
	return "attempt timed out after " + e.after.String() + " (WithTimeout): context deadline exceeded"
}
func (*attemptTimeoutError) Timeout() bool        { return true }
func (*attemptTimeoutError) Temporary() bool      { return true }
func (*attemptTimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Deadline is the caller's, or the attempt's when that comes sooner.
func (cl *call) Deadline() (time.Time, bool) {
	deadline, ok := cl.Context.Deadline()
	if cl.c.timeout > 0 {
		cl.mu.Lock()
		if d := cl.deadline; !d.IsZero() && (!ok || d.Before(deadline)) {
			deadline, ok = d, true
		}
		cl.mu.Unlock()
	}
	return deadline, ok
}

// Done closes when the attempt runs out of time or the caller's context
// ends.
func (cl *call) Done() <-chan struct{} {
	if cl.c.timeout <= 0 {
		return cl.Context.Done()
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.done == nil {
		cl.done = make(chan struct{})
		if cl.doneErr != nil {
			close(cl.done)
		}
	}
	return cl.done
}

// Err says why Done closed.
func (cl *call) Err() error {
	if cl.c.timeout <= 0 {
		return cl.Context.Err()
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.doneErr
}

// AfterFunc is context.AfterFunc's fast path: net/http makes a context per
// request below the call's, and this lets it follow the call without a
// goroutine or a map entry. f runs (on the goroutine that closes Done) when
// the attempt ends early; the stop function drops the current attempt's
// registrations, which is when net/http calls it: its request is done.
func (cl *call) AfterFunc(f func()) (stop func() bool) {
	if cl.c.timeout <= 0 {
		return context.AfterFunc(cl.Context, f)
	}
	cl.mu.Lock()
	if cl.doneErr != nil {
		cl.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	cl.afters = append(cl.afters, f)
	if cl.stopAfters == nil {
		cl.stopAfters = func() bool {
			cl.mu.Lock()
			defer cl.mu.Unlock()
			had := len(cl.afters) > 0
			clear(cl.afters)
			cl.afters = cl.afters[:0]
			return had
		}
	}
	stop = cl.stopAfters
	cl.mu.Unlock()
	return stop
}

// end closes Done with err, once per attempt, and runs what AfterFunc
// registered.
func (cl *call) end(err error) {
	cl.mu.Lock()
	if cl.doneErr != nil {
		cl.mu.Unlock()
		return
	}
	cl.doneErr = err
	if cl.done != nil {
		close(cl.done)
	}
	fs := slices.Clone(cl.afters)
	clear(cl.afters)
	cl.afters = cl.afters[:0]
	cl.mu.Unlock()
	for _, f := range fs {
		if f != nil {
			f()
		}
	}
}

// armAttempt starts the attempt's clock.
func (cl *call) armAttempt(now time.Time) {
	if cl.c.timeout <= 0 {
		return
	}
	cl.mu.Lock()
	cl.deadline = now.Add(cl.c.timeout)
	first := cl.timer == nil
	if first {
		cl.timer = timerPool.Get().(*attemptTimer)
		cl.timer.cl.Store(cl)
	}
	cl.mu.Unlock()
	if first && cl.Context.Done() != nil {
		cl.stopParent = context.AfterFunc(cl.Context, func() { cl.end(cl.Context.Err()) })
	}
	cl.timer.t.Reset(cl.c.timeout)
}

// expire ends an attempt that ran out of time (and not one that ended,
// whose timer fired late).
func (cl *call) expire() {
	cl.mu.Lock()
	late := !cl.deadline.IsZero() && !time.Now().Before(cl.deadline)
	cl.mu.Unlock()
	if late {
		cl.end(&attemptTimeoutError{after: cl.c.timeout})
	}
}

// nextAttempt readies Done for a retry: open again if the last attempt ran
// out of time (retryablehttp waits on it before retrying), closed still if
// the caller's context ended.
func (cl *call) nextAttempt() {
	if cl.c.timeout <= 0 {
		return
	}
	cl.timer.t.Stop()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.deadline = time.Time{}
	if cl.doneErr != nil && cl.Context.Err() == nil {
		cl.done, cl.doneErr = nil, nil
	}
}

// disarm ends the call's timing: the timer goes back to the pool.
func (cl *call) disarm() {
	if cl.c.timeout <= 0 || cl.timer == nil {
		return
	}
	cl.timer.t.Stop()
	cl.timer.cl.Store(nil)
	timerPool.Put(cl.timer)
	cl.mu.Lock()
	cl.timer, cl.deadline = nil, time.Time{}
	cl.mu.Unlock()
	if cl.stopParent != nil {
		cl.stopParent()
	}
}

// attemptTimer is a timer that calls expire on the call holding it. Timers
// are pooled: making one costs more than the rest of a call's timing.
type attemptTimer struct {
	t  *time.Timer
	cl atomic.Pointer[call]
}

var timerPool = sync.Pool{New: func() any {
	at := new(attemptTimer)
	at.t = time.AfterFunc(time.Hour, func() {
		if cl := at.cl.Load(); cl != nil {
			cl.expire()
		}
	})
	at.t.Stop()
	return at
}}
