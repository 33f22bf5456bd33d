package servicedesk

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Hooks observe the client's calls and their attempts: what a metrics or
// tracing bridge (OpenTelemetry, Prometheus) or an audit log needs, without
// a dependency in this module. Each field may be nil. See [WithHooks].
//
// Hooks run on the goroutine making the request (for [WithPrefetch], one
// the iterator runs), possibly for several calls at once: they must be
// quick and safe for concurrent use. They never see credentials, request
// bodies or queries.
//
// A hook that panics panics the call: the panic reaches the caller of the
// operation (with WithPrefetch, the goroutine walking the pages, where
// it can be recovered), after the client has given back what the call
// held: its slot on the wire, its turn with the rate limiter, the
// answer's body. The client goes on working. The same holds for
// [WithRateLimitHook] and a [RateLimiter]'s Done.
type Hooks struct {
	// CallStart runs when a call begins, before the rate limiter is asked.
	// The context it returns (ctx, or one derived from it) is the call's
	// from then on: the request of every attempt carries it, so a tracer
	// can start a span here that a transport's spans (otelhttp) become
	// children of.
	CallStart func(ctx context.Context, call CallInfo) context.Context
	// Attempt runs after each attempt that was sent.
	Attempt func(ctx context.Context, a AttemptInfo)
	// CallEnd runs when the call returns, with what it returns.
	CallEnd func(ctx context.Context, r CallResult)
}

// CallInfo names a call. Its fields have few values, fit for metric
// labels and span names.
type CallInfo struct {
	// Operation is what was called: "CustomersService.Create",
	// "CustomersService.List", "CustomersService.All", "Do",
	// "AccessibleResources", ...
	Operation string
	Method    string
	// Path is the path template, ids in braces and no query:
	// "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer". For Do,
	// segments that look like ids (digits, upper case, punctuation)
	// become "{id}".
	Path string
}

// AttemptInfo is one attempt of a call, as it ended.
type AttemptInfo struct {
	CallInfo
	Attempt    int           // 1 for the first
	StatusCode int           // 0 when no answer came
	Duration   time.Duration // from sending to the answer's headers, or to the error
	// Waited is how long the call waited before this attempt: for the rate
	// limiter, a free slot on the wire, and the backoff after the last.
	Waited    time.Duration
	RequestID string    // X-AREQUESTID
	RateLimit RateLimit // the answer's rate-limit headers
	// Err is the transport's error, when no answer came: redacted, and
	// without the URL's query.
	Err   error
	Class ErrorClass // what the attempt ended in
	// Retry says another attempt follows: the hook runs once that is
	// certain (after the wait, with the rate limiter's turn taken), so it
	// is false when the limiter or the context ended the call instead.
	Retry bool
}

// CallResult is how a call ended.
type CallResult struct {
	CallInfo
	Attempts   int           // requests sent; 0 when the rate limiter refused the call (bad input ends a call before hooks run)
	StatusCode int           // of the last answer; 0 when none came
	Duration   time.Duration // the whole call: attempts, waits and reading the answer
	// Waited is how long the call waited, in all: for the rate limiter
	// and free slots (the time it was paced or paused), and between
	// attempts (backoff, a 429's Retry-After).
	Waited    time.Duration
	RequestID string // of the last answer
	// Err is what the call returns; an *Error without its URL's query
	// and without the answer's Body, which hooks never see.
	Err   error
	Class ErrorClass
}

// ErrorClass sorts how a call or attempt ended, for metric labels: a few
// fixed values, never a message.
type ErrorClass string

// The classes of [ClassOf].
const (
	ClassOK              ErrorClass = "ok"
	ClassInvalidInput    ErrorClass = "invalid_input"    // refused before sending
	ClassBadRequest      ErrorClass = "bad_request"      // 400
	ClassUnauthorized    ErrorClass = "unauthorized"     // 401
	ClassForbidden       ErrorClass = "forbidden"        // 403
	ClassNotFound        ErrorClass = "not_found"        // 404
	ClassConflict        ErrorClass = "conflict"         // 409
	ClassClientError     ErrorClass = "client_error"     // another 4xx
	ClassRateLimited     ErrorClass = "rate_limited"     // 429, or refused unsent by the rate limiter
	ClassServerError     ErrorClass = "server_error"     // 5xx
	ClassInvalidResponse ErrorClass = "invalid_response" // a 2xx that was not the expected answer
	ClassTimeout         ErrorClass = "timeout"          // a deadline passed
	ClassCanceled        ErrorClass = "canceled"         // the context was cancelled
	ClassTransport       ErrorClass = "transport"        // no answer: the network, TLS, a refused redirect
)

// ClassOf sorts an error returned by this package; nil is ClassOK.
func ClassOf(err error) ErrorClass {
	if err == nil {
		return ClassOK
	}
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return classOfStatus(apiErr.StatusCode)
	}
	var netErr net.Error
	switch {
	case errors.Is(err, ErrInvalidInput):
		return ClassInvalidInput
	case errors.Is(err, ErrInvalidResponse):
		return ClassInvalidResponse
	case errors.Is(err, ErrForbidden):
		return ClassForbidden // a Connect app calling Remove: refused before sending
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ClassTimeout
	}
	return ClassTransport
}

func classOfStatus(status int) ErrorClass {
	switch {
	case status >= 200 && status <= 299:
		return ClassOK
	case status == 400:
		return ClassBadRequest
	case status == 401:
		return ClassUnauthorized
	case status == 403:
		return ClassForbidden
	case status == 404:
		return ClassNotFound
	case status == 409:
		return ClassConflict
	case status == 429:
		return ClassRateLimited
	case status >= 500:
		return ClassServerError
	}
	return ClassClientError
}

// info names the call for hooks.
func (cl *call) info() CallInfo {
	return CallInfo{Operation: cl.r.op, Method: cl.r.method, Path: cl.r.endpoint.Path}
}

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
		return
	}
	a := AttemptInfo{
		CallInfo:  cl.info(),
		Attempt:   cl.n,
		Duration:  now.Sub(cl.attemptStart),
		Waited:    cl.attemptWaited,
		RateLimit: cl.rl,
		Retry:     retry,
	}
	if resp != nil {
		a.StatusCode, a.RequestID, a.Class = resp.StatusCode, redact(cl.c.auth, requestID(resp.Header)), classOfStatus(resp.StatusCode)
	} else {
		// Without the *url.Error, whose text and URL hold the query.
		inner := stripURLError(err)
		a.Err, a.Class = &redactedError{msg: cl.c.errorText(inner), err: inner}, ClassOf(err)
	}
	if hook != nil {
		hook(cl.ctx, a)
	}
	if l == nil || !l.Enabled(cl.ctx, slog.LevelDebug) {
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
	l.LogAttrs(cl.ctx, slog.LevelDebug, "servicedesk: attempt", attrs...)
}

// logRetry logs a retry at Warn level: something went wrong, and the
// client is dealing with it.
func (cl *call) logRetry(reason string, wait time.Duration) {
	if l := cl.c.logger; l != nil {
		l.LogAttrs(cl.ctx, slog.LevelWarn, "servicedesk: retrying",
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
		l.LogAttrs(cl.ctx, slog.LevelError, "servicedesk: gave up", attrs...)
	}
	if hook := cl.c.hooks.CallEnd; hook != nil {
		hook(cl.ctx, CallResult{
			CallInfo:   cl.info(),
			Attempts:   cl.n,
			StatusCode: cl.status,
			Duration:   time.Since(cl.start),
			Waited:     cl.waited,
			RequestID:  cl.requestID,
			Err:        forHooks(err),
			Class:      class,
		})
	}
}

// forHooks is the error a call returns, as hooks see it: an *Error without
// its URL's query (a customer's email, say) and without the body the
// server sent. errors.Is and errors.As see the same sentinels and type.
func forHooks(err error) error {
	e, ok := err.(*Error)
	if !ok || e == nil {
		return err
	}
	cp := *e
	if u, perr := url.Parse(cp.URL); perr == nil {
		u.RawQuery, u.ForceQuery = "", false
		cp.URL = u.String()
	}
	cp.Body = nil
	return &cp
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
