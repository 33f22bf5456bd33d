package servicedesk

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// call is one API call on its way through the pipeline: the request and
// what its attempts have seen. Its context carries it (under callKey):
// that is how retryablehttp's hooks, shared by all calls of a Client,
// find it.
type call struct {
	ctx context.Context // the caller's (or the CallStart hook's), with the call in it

	c     *Client
	r     *request
	start time.Time

	n            int            // attempts made so far
	attemptStart time.Time      // when the current attempt started
	rl           RateLimit      // what the last answer said about rate limits
	sink         *rateLimitSink // set when the rate-limit hook must run on another goroutine

	admitted      bool           // the limiter let the current attempt out; Done is owed and a slot is held
	bucket        *bucket        // the governor's for the endpoint, once looked up
	waited        time.Duration  // time spent waiting in all: limiter, slots, backoff, Retry-After
	waitedSince   time.Duration  // waits since the last attempt
	attemptWaited time.Duration  // waits before the current attempt
	tooLong       time.Duration  // a Retry-After that WithRateLimitWait did not allow
	limitWaited   time.Duration  // time spent waiting on rate limits, against WithRateLimitWait
	refusal       *Error         // the limiter would not let a retry out in time
	status        int            // of the last answer
	requestID     string         // of the last answer, redacted
	resp          *http.Response // the last answer, until it is read or handed on

	// The current attempt's context: the call's, with the attempt's
	// deadline (WithTimeout). It ends when the attempt's answer has been
	// read, or when the call gives up on it.
	attemptCtx    context.Context
	cancelAttempt context.CancelFunc

	req retryablehttp.Request // the request the attempts send
}

type callKey struct{}

// callOf returns the call a request's context belongs to, or nil.
func callOf(ctx context.Context) *call {
	cl, _ := ctx.Value(callKey{}).(*call)
	return cl
}

// release gives back what the call holds, on every path out of it, a
// panicking hook or limiter included: the limiter's turn and the slot on
// the wire of an attempt it was let out for, and the body of an answer it
// did not hand on.
func (cl *call) release() {
	if cl.resp != nil {
		closeBody(cl.resp.Body)
		cl.resp = nil
	}
	cl.endAttempt()
	cl.settle(nil, 0)
}

// startAttempt gives the attempt about to be sent a context of its own,
// bounded by WithTimeout, from connecting to reading the whole answer,
// redirects included. retryablehttp sends the request it holds once its
// hook (beforeAttempt, the caller) returns, so the request is replaced,
// not modified: the last attempt's may still be in the transport's hands.
func (cl *call) startAttempt(req *http.Request) {
	cl.attemptStart = time.Now()
	ctx := cl.ctx
	if cl.c.timeout > 0 {
		ctx, cl.cancelAttempt = context.WithTimeoutCause(cl.ctx, cl.c.timeout, cl.c.timedOut)
	}
	cl.attemptCtx = ctx
	cl.req.Request = req.WithContext(ctx)
}

// endAttempt ends the attempt's context: its answer has been read, or
// will not be.
func (cl *call) endAttempt() {
	if cl.cancelAttempt != nil {
		cl.cancelAttempt()
		cl.cancelAttempt = nil
	}
}

// betweenAttempts puts the request back in the call's context while the
// call waits to retry: retryablehttp gives up if the request's context is
// done, and the last attempt's is.
func (cl *call) betweenAttempts() {
	cl.endAttempt()
	cl.req.Request = cl.req.Request.WithContext(cl.ctx)
}

// attemptTimeoutError ends an attempt that ran out of time. It is a
// timeout (net.Error) and matches context.DeadlineExceeded.
type attemptTimeoutError struct {
	after time.Duration
	by    string // what set the bound: "WithTimeout", "the http.Client's Timeout" or "DefaultTimeout"
	err   error  // what net/http said
}

func (e *attemptTimeoutError) Error() string {
	return "attempt timed out after " + e.after.String() + " (" + e.by + "): context deadline exceeded"
}
func (*attemptTimeoutError) Timeout() bool        { return true }
func (*attemptTimeoutError) Temporary() bool      { return true }
func (*attemptTimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }
func (e *attemptTimeoutError) Unwrap() error      { return e.err }

// attemptTimedOut says whether err ended the current attempt because its
// WithTimeout bound passed, rather than the caller's context or the
// network, and if so returns the error to report.
func (cl *call) attemptTimedOut(err error) (error, bool) {
	if err == nil || cl.attemptCtx == nil || cl.ctx.Err() != nil {
		return err, false
	}
	var te *attemptTimeoutError
	if errors.As(err, &te) {
		return te, true // net/http hands on the context's cause
	}
	if !errors.As(context.Cause(cl.attemptCtx), &te) {
		return err, false
	}
	return &attemptTimeoutError{after: te.after, by: te.by, err: err}, true
}
