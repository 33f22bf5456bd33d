package servicedesk

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

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

// beforeAttempt starts an attempt: its clock, its context with the
// attempt's deadline, and a fresh reader over the body (the last
// attempt's may still be read by the transport that sent it).
func beforeAttempt(_ retryablehttp.Logger, req *http.Request, attempt int) {
	cl := callOf(req.Context())
	cl.attemptWaited, cl.waitedSince = cl.waitedSince, 0
	if cl.r.body != nil {
		req.Body = newBodyReader(cl.r.body)
	}
	if attempt > 0 { // the first attempt's context came with the request
		cl.startAttempt(req)
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
	cl.resp = resp // release closes it should a hook panic
	now := time.Now()
	err, _ = cl.attemptTimedOut(err)
	cl.rl = noRateLimit() // the last answer's, or none for no answer
	var serverWait time.Duration
	var announced bool
	if resp != nil {
		cl.c.conc.observe(now.Sub(cl.attemptStart), resp.StatusCode, cl.c.slots.starved())
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			bufferBody(resp)
			serverWait, _ = retryAfter(resp.Header, now)
		}
		if cl.rl, announced = rateLimitOf(resp.Header, now); announced {
			cl.rl = redactRateLimit(cl.c.auth, cl.rl)
		}
	}
	// The limiter learns (a pause, say) and the slot frees before any
	// user code runs.
	cl.settle(resp, serverWait)
	if announced {
		cl.reportRateLimit(cl.rl)
	}
	reason, wait := cl.retryWait(resp, err, now)
	retry, retryErr := false, error(nil)
	if reason != "" {
		cl.betweenAttempts()
		retry, retryErr = cl.waitToRetry(resp, wait)
	}
	// Reported once it is known whether another attempt follows.
	cl.attemptEnded(resp, err, now, retry)
	if !retry {
		return false, retryErr // the last answer's body is read under this attempt's bound
	}
	cl.logRetry(reason, wait)
	cl.resp = nil // buffered: retryablehttp drains and drops it
	return true, nil
}

// waitToRetry waits before the next attempt, wait and then the limiter's
// turn; false when the context ended or the limiter refused to let the
// retry out in time (the caller then gets the last answer).
func (cl *call) waitToRetry(resp *http.Response, wait time.Duration) (bool, error) {
	if err := sleep(cl.ctx, wait); err != nil {
		return false, err
	}
	cl.waited += wait
	cl.waitedSince += wait
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.Header.Get(hRetryAfter) != "") {
		cl.limitWaited += wait // waited out a rate limit
	}
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
	if cl.ctx.Err() != nil || cl.n > cl.c.maxRetries {
		return "", 0
	}
	if reason = cl.retryReason(resp, err); reason == "" {
		return "", 0
	}
	wait = backoff(cl.c.retryWaitMin, cl.c.retryWaitMax, cl.n-1)
	if resp != nil {
		floor, asked := retryAfter(resp.Header, now)
		wait = max(wait, floor)
		// No silent long waits: a wait on a rate limit (a 429, or an
		// answer that says how long to wait), backoff included, fits in
		// what is left of the call's allowance, or the answer is handed
		// to the caller.
		if resp.StatusCode == http.StatusTooManyRequests || asked {
			if left := cl.c.limitWait - cl.limitWaited; wait > left {
				cl.tooLong = wait
				return "", 0
			}
		}
	}
	// Sleeping into the deadline would turn the server's answer into a bare
	// "deadline exceeded": give up now and hand the caller that answer.
	if deadline, ok := cl.ctx.Deadline(); ok && now.Add(wait).After(deadline) {
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
