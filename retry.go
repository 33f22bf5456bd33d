package servicedesk

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
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

	n            int       // attempts made so far
	attemptStart time.Time // when the current attempt started
	rl           RateLimit // what the last answer said about rate limits
	hasRL        bool
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

// newRetryClient builds the retryablehttp.Client a Client sends every call
// with: no logger (its default writes to stderr), the response passed
// through after the last attempt (so the caller gets the server's error,
// not "giving up"), and this API's own policy. Its hooks are functions, not
// closures: each finds its call in the request's context, so a call costs
// no hook allocations. Waits happen in checkRetry, so Backoff is zero.
func newRetryClient(hc *http.Client, maxRetries int) *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient:     hc,
		RetryMax:       maxRetries,
		CheckRetry:     checkRetry,
		Backoff:        func(_, _ time.Duration, _ int, _ *http.Response) time.Duration { return 0 },
		ErrorHandler:   retryablehttp.PassthroughErrorHandler,
		RequestLogHook: beforeAttempt,
	}
}

// beforeAttempt starts an attempt: its clock, its deadline, and a fresh
// reader over the body (the last attempt's may still be read by the
// transport that sent it).
func beforeAttempt(_ retryablehttp.Logger, req *http.Request, _ int) {
	cl := callOf(req.Context())
	cl.attemptStart = time.Now()
	cl.armAttempt(cl.attemptStart)
	if cl.r.body != nil {
		req.Body = newBodyReader(cl.r.body)
	}
}

// newBodyReader reads a request body from the start. It must be a NopCloser
// around a *bytes.Reader: net/http recognises that as in memory and writes
// headers and body at once; any other type makes it flush the headers
// first, costing a round of TCP writes (20 µs a call on loopback).
func newBodyReader(b []byte) io.ReadCloser {
	return io.NopCloser(bytes.NewReader(b))
}

// getBody gives net/http the body again, for a 307/308 redirect or a
// request replayed on a fresh connection.
func (cl *call) getBody() (io.ReadCloser, error) { return newBodyReader(cl.r.body), nil }

// checkRetry decides after each attempt whether to try again and, if so,
// waits before saying yes.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	return callOf(ctx).afterAttempt(resp, err)
}

func (cl *call) afterAttempt(resp *http.Response, err error) (bool, error) {
	cl.n++
	now := time.Now()
	cl.hasRL = false
	var serverWait time.Duration
	if resp != nil {
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			bufferBody(resp)
			serverWait, _ = retryAfter(resp.Header, now)
		}
		if cl.rl, cl.hasRL = rateLimitOf(resp.Header, now); cl.hasRL {
			cl.reportRateLimit(cl.rl)
		}
	}
	cl.settle(resp, serverWait)
	reason, wait := cl.retryWait(resp, err, now)
	cl.attemptEnded(resp, err, now, reason != "")
	if reason == "" {
		return false, nil // the last answer's body is read under this attempt's bound
	}
	cl.nextAttempt()
	cl.logRetry(reason, wait)
	if err := sleep(cl.Context, wait); err != nil {
		return false, err
	}
	cl.waitedSince += wait
	if err := cl.admit(); err != nil {
		var refusal *Error
		if errors.As(err, &refusal) {
			// Hand the caller the last answer, with the limiter's wait.
			cl.refusal = refusal
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// retryWait says why the call should try again and how long to wait first,
// or "" when it should not.
func (cl *call) retryWait(resp *http.Response, err error, now time.Time) (reason string, wait time.Duration) {
	if cl.Context.Err() != nil || cl.n > cl.c.maxRetries {
		return "", 0
	}
	if reason = cl.retryReason(resp, err); reason == "" {
		return "", 0
	}
	wait = backoff(cl.c.retryWaitMin, cl.c.retryWaitMax, cl.n-1)
	if resp != nil {
		if floor, ok := retryAfter(resp.Header, now); ok {
			// No silent long waits: a server asking for more than the
			// client may wait gets its answer handed to the caller.
			if floor > cl.c.limitWait {
				return "", 0
			}
			wait = max(wait, floor)
		}
	}
	// Sleeping into the deadline would turn the server's answer into a bare
	// "deadline exceeded": give up now and hand the caller that answer.
	if deadline, ok := cl.Context.Deadline(); ok && now.Add(wait).After(deadline) {
		return "", 0
	}
	return reason, wait
}

// bufferBody reads an error answer's body (up to maxErrorBody) and closes
// it, so its connection goes back to the pool whether or not the call
// retries (retryablehttp would drain only 4 KiB: an edge's HTML 503 page is
// larger, and each retry would pay a new TLS handshake), while the caller
// can still read the body for its *Error.
func bufferBody(resp *http.Response) {
	if resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	closeBody(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryReason says why the attempt is worth repeating, or "" when it is not.
// An operation that is not idempotent (Create) is repeated only when the
// server cannot have acted on it: a 429, or a connection never made.
func (cl *call) retryReason(resp *http.Response, err error) string {
	if err != nil {
		switch {
		case unknownHost(err):
			return ""
		case neverSent(err):
			return "connection failed"
		case cl.r.idempotent && retryableTransportError(err):
			return "transport error"
		}
		return ""
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return "rate limited"
	case http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if cl.r.idempotent {
			return strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
		}
	}
	return ""
}

// backoff is exponential backoff with full jitter: a random wait between min
// and min·2^retry, capped at max.
func backoff(min, max time.Duration, retry int) time.Duration {
	ceiling := max
	if retry < 32 && min > 0 && min<<retry > 0 && min<<retry < max {
		ceiling = min << retry
	}
	if ceiling <= min {
		return min
	}
	return min + rand.N(ceiling-min+1)
}

// neverSent reports a failure to connect: the request cannot have reached
// the server, so even a non-idempotent one may be repeated.
func neverSent(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTemporary || dnsErr.IsTimeout
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// unknownHost reports a name that does not resolve: asking again will not
// make it exist.
func unknownHost(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && (dnsErr.IsNotFound || !dnsErr.IsTemporary && !dnsErr.IsTimeout)
}

var permanentTransportError = regexp.MustCompile(`unsupported protocol scheme|invalid header`)

// retryableTransportError reports a transport failure that another attempt
// may not have: not a certificate problem, a refused redirect, or our own
// credentials failing to load.
func retryableTransportError(err error) bool {
	var (
		certErr     *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidCert x509.CertificateInvalidError
		authErr     *credentialsError
		redirErr    *redirectError
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuth),
		errors.As(err, &hostErr), errors.As(err, &invalidCert),
		errors.As(err, &authErr), errors.As(err, &redirErr):
		return false
	}
	return !permanentTransportError.MatchString(err.Error())
}

// credentialsError is an authenticator's failure to produce credentials
// (a token source that cannot refresh). Retrying does not help.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// reportRateLimit hands what an answer said about rate limits to the
// user's hook: at once on the calling goroutine, or, for a page fetched
// ahead by WithPrefetch, later on the goroutine walking the pages.
func (cl *call) reportRateLimit(rl RateLimit) {
	switch {
	case cl.c.onRateLimit == nil:
	case cl.sink != nil:
		cl.sink.add(rl)
	default:
		cl.c.onRateLimit(rl)
	}
}

// attemptEnded logs an attempt at Debug level and tells the Attempt hook.
func (cl *call) attemptEnded(resp *http.Response, err error, now time.Time, retry bool) {
	l, hook := cl.c.logger, cl.c.hooks.Attempt
	if l == nil && hook == nil {
		cl.waitedSince = 0
		return
	}
	a := AttemptInfo{
		CallInfo:  cl.info(),
		Attempt:   cl.n,
		Duration:  now.Sub(cl.attemptStart),
		Waited:    cl.waitedSince,
		RateLimit: cl.rl,
		Retry:     retry,
	}
	cl.waitedSince = 0
	if !cl.hasRL {
		a.RateLimit = RateLimit{Limit: -1, Remaining: -1, FillRate: -1, RetryAfter: -1}
	}
	if resp != nil {
		a.StatusCode, a.RequestID, a.Class = resp.StatusCode, get(resp.Header, hRequestID), classOfStatus(resp.StatusCode)
	} else {
		a.Err, a.Class = &redactedError{msg: cl.c.errorText(err), err: err}, ClassOf(err)
	}
	if hook != nil {
		hook(cl, a)
	}
	if l == nil || !l.Enabled(cl, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("op", a.Operation),
		slog.String("method", a.Method),
		slog.String("path", cl.r.url.EscapedPath()),
		slog.Int("attempt", a.Attempt),
		slog.Duration("duration", a.Duration),
	}
	if a.StatusCode != 0 {
		attrs = append(attrs, slog.Int("status", a.StatusCode))
	}
	if a.RequestID != "" {
		attrs = append(attrs, slog.String("request_id", a.RequestID))
	}
	if a.Waited > 0 {
		attrs = append(attrs, slog.Duration("waited", a.Waited))
	}
	if a.RateLimit.Remaining >= 0 {
		attrs = append(attrs, slog.Int("ratelimit_remaining", a.RateLimit.Remaining))
	}
	if a.Err != nil {
		attrs = append(attrs, slog.String("error", a.Err.Error()))
	}
	l.LogAttrs(cl, slog.LevelDebug, "servicedesk: attempt", attrs...)
}

// logRetry logs a retry at Warn level: something went wrong, and the
// client is dealing with it.
func (cl *call) logRetry(reason string, wait time.Duration) {
	if l := cl.c.logger; l != nil {
		l.LogAttrs(cl, slog.LevelWarn, "servicedesk: retrying",
			slog.String("op", cl.r.op),
			slog.String("method", cl.r.method),
			slog.String("path", cl.r.url.EscapedPath()),
			slog.Int("attempt", cl.n),
			slog.String("reason", reason),
			slog.Duration("wait", wait))
	}
}

// finish ends a call: the Error record of a call that gave up, and the
// CallEnd hook.
func (cl *call) finish(err error) {
	if err == nil && cl.c.hooks.CallEnd == nil {
		return
	}
	class := ClassOf(err)
	if l := cl.c.logger; l != nil && gaveUp(class) {
		attrs := []slog.Attr{
			slog.String("op", cl.r.op),
			slog.String("method", cl.r.method),
			slog.String("path", cl.r.url.EscapedPath()),
			slog.Int("attempts", cl.n),
			slog.String("class", string(class)),
			slog.String("error", redact(cl.c.auth, err.Error())),
		}
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
			attrs = append(attrs, slog.Duration("retry_after", apiErr.RetryAfter))
		}
		l.LogAttrs(cl, slog.LevelError, "servicedesk: gave up", attrs...)
	}
	if hook := cl.c.hooks.CallEnd; hook != nil {
		hook(cl, CallResult{
			CallInfo:   cl.info(),
			Attempts:   cl.n,
			StatusCode: cl.status,
			Duration:   time.Since(cl.start),
			Waited:     cl.waited,
			RequestID:  cl.requestID,
			Err:        err,
			Class:      class,
		})
	}
}

// gaveUp reports an ending worth an Error record: one of those the client
// retries (throttling, server errors, no answer), which it could not get
// past. An answer such as 404 or 409 is the caller's to handle.
func gaveUp(c ErrorClass) bool {
	switch c {
	case ClassRateLimited, ClassServerError, ClassTransport, ClassTimeout:
		return true
	}
	return false
}
