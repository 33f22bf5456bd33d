package servicedesk

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// attempts is one call's state across its attempts. retryablehttp's hooks are
// bound to it, so the policy knows the operation, counts attempts and chooses
// each wait before retryablehttp sleeps.
type attempts struct {
	rc     retryablehttp.Client
	client *Client
	req    *request
	n      int           // attempts made so far
	start  time.Time     // when the current attempt started
	wait   time.Duration // the wait checkRetry chose for the next backoff
}

// retryClient builds the retryablehttp.Client for this call: no logger (its
// default writes to stderr), the response passed through after the last
// attempt (so the caller gets the server's error, not "giving up"), and this
// API's own policy.
func (a *attempts) retryClient() *retryablehttp.Client {
	c := a.client
	a.rc = retryablehttp.Client{
		HTTPClient:     c.httpClient,
		RetryMax:       c.maxRetries,
		RetryWaitMin:   c.retryWaitMin,
		RetryWaitMax:   c.retryWaitMax,
		CheckRetry:     a.checkRetry,
		Backoff:        a.backoff,
		ErrorHandler:   retryablehttp.PassthroughErrorHandler,
		RequestLogHook: a.beforeAttempt,
	}
	return &a.rc
}

func (a *attempts) beforeAttempt(_ retryablehttp.Logger, _ *http.Request, _ int) {
	a.start = time.Now()
}

// checkRetry decides after each attempt whether to try again and, if so,
// how long to wait first.
func (a *attempts) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	a.n++
	var rl RateLimit
	var hasRL bool
	if resp != nil {
		if rl, hasRL = rateLimitOf(resp.Header); hasRL && a.client.onRateLimit != nil {
			a.client.onRateLimit(rl)
		}
	}
	a.logAttempt(ctx, resp, err, rl, hasRL)
	if ctx.Err() != nil || a.n > a.client.maxRetries {
		return false, nil
	}
	reason := a.retryReason(resp, err)
	if reason == "" {
		return false, nil
	}
	wait := backoff(a.client.retryWaitMin, a.client.retryWaitMax, a.n-1)
	if resp != nil {
		if floor, ok := retryAfter(resp.Header, time.Now()); ok {
			wait = max(wait, floor)
		}
	}
	// Sleeping into the deadline would turn the server's answer into a bare
	// "deadline exceeded": give up now and hand the caller that answer.
	if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
		return false, nil
	}
	a.wait = wait
	a.logRetry(ctx, reason, wait)
	return true, nil
}

func (a *attempts) backoff(_, _ time.Duration, _ int, _ *http.Response) time.Duration {
	return a.wait
}

// retryReason says why the attempt is worth repeating, or "" when it is not.
// An operation that is not idempotent (Create) is repeated only when the
// server cannot have acted on it: a 429, or a connection never made.
func (a *attempts) retryReason(resp *http.Response, err error) string {
	if err != nil {
		switch {
		case unknownHost(err):
			return ""
		case neverSent(err):
			return "connection failed"
		case a.req.idempotent && retryableTransportError(err):
			return "transport error"
		}
		return ""
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return "rate limited"
	case http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if a.req.idempotent {
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

var permanentTransportError = regexp.MustCompile(`stopped after \d+ redirects|unsupported protocol scheme|invalid header`)

// retryableTransportError reports a transport failure that another attempt
// may not have: not a certificate problem, a redirect loop, or our own
// credentials failing to load.
func retryableTransportError(err error) bool {
	var (
		certErr     *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidCert x509.CertificateInvalidError
		authErr     *credentialsError
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuth),
		errors.As(err, &hostErr), errors.As(err, &invalidCert),
		errors.As(err, &authErr):
		return false
	}
	return !permanentTransportError.MatchString(err.Error())
}

// credentialsError is an authenticator's failure to produce credentials
// (a token source that cannot refresh). Retrying does not help.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

func (a *attempts) logAttempt(ctx context.Context, resp *http.Response, err error, rl RateLimit, hasRL bool) {
	l := a.client.logger
	if l == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", a.req.method),
		slog.String("path", a.req.url.EscapedPath()),
		slog.Int("attempt", a.n),
		slog.Duration("duration", time.Since(a.start)),
	}
	if resp != nil {
		attrs = append(attrs, slog.Int("status", resp.StatusCode))
		if id := resp.Header.Get("X-AREQUESTID"); id != "" {
			attrs = append(attrs, slog.String("request_id", id))
		}
	}
	if hasRL && rl.Remaining >= 0 {
		attrs = append(attrs, slog.Int("ratelimit_remaining", rl.Remaining))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", redact(a.client.auth, err.Error())))
	}
	l.LogAttrs(ctx, slog.LevelDebug, "servicedesk: attempt", attrs...)
}

func (a *attempts) logRetry(ctx context.Context, reason string, wait time.Duration) {
	if l := a.client.logger; l != nil {
		l.LogAttrs(ctx, slog.LevelWarn, "servicedesk: retrying",
			slog.String("method", a.req.method),
			slog.String("path", a.req.url.EscapedPath()),
			slog.Int("attempt", a.n),
			slog.String("reason", reason),
			slog.Duration("wait", wait))
	}
}
