package servicedesk

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/servicedesk-go/servicedesk/internal/inputerr"
)

// Defaults of the retry policy; see [WithMaxRetries] and [WithRetryWait].
const (
	DefaultMaxRetries   = 4
	DefaultRetryWaitMin = 500 * time.Millisecond
	DefaultRetryWaitMax = 30 * time.Second
)

// DefaultMaxInFlight is how many requests a Client has on the wire at once
// unless [WithMaxInFlight] says otherwise, while nothing is known of the
// endpoint's rate limit: Atlassian asks apps to keep to 5–10. Once the
// client paces an endpoint, the bound grows with the latency it observes,
// to what that pace needs (up to 64), so that a slow server does not hold
// a bulk job below the limit.
const DefaultMaxInFlight = 8

// DefaultRateLimitWait is how long a call may wait on rate limits unless
// [WithRateLimitWait] says otherwise.
const DefaultRateLimitWait = 30 * time.Second

// An Option configures a [Client] in [NewClient]. Options check their input;
// an invalid one makes NewClient fail with an error wrapping [ErrInvalidInput].
type Option interface {
	apply(*config) error
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

// config is what the options build; NewClient turns it into a Client.
type config struct {
	auth         authenticator
	authOptions  []string // names of the auth options given, to refuse more than one
	httpClient   *http.Client
	maxRetries   int
	retryWaitMin time.Duration
	retryWaitMax time.Duration
	logger       *slog.Logger
	userAgent    string
	insecureHTTP bool
	onRateLimit  func(RateLimit)
	prefetch     bool
	timeout      *time.Duration // from WithTimeout
	limiter      RateLimiter
	limiterSet   bool // WithRateLimiter was given (nil: no pacing)
	maxInFlight  int
	limitWait    *time.Duration // from WithRateLimitWait
	hooks        Hooks
}

// rateLimitWait is the longest a call waits on rate limits:
// WithRateLimitWait's, else DefaultRateLimitWait.
func (c *config) rateLimitWait() time.Duration {
	if c.limitWait != nil {
		return *c.limitWait
	}
	return DefaultRateLimitWait
}

// timeoutSource names what set attemptTimeout, for its error.
func (c *config) timeoutSource() string {
	switch {
	case c.timeout != nil:
		return "WithTimeout"
	case c.httpClient != nil && c.httpClient.Timeout > 0:
		return "the http.Client's Timeout"
	}
	return "DefaultTimeout"
}

// attemptTimeout is what bounds each attempt: WithTimeout's, else the
// Timeout of WithHTTPClient's client when it has one, else DefaultTimeout.
func (c *config) attemptTimeout() time.Duration {
	switch {
	case c.timeout != nil:
		return *c.timeout
	case c.httpClient != nil && c.httpClient.Timeout > 0:
		return c.httpClient.Timeout
	}
	return DefaultTimeout
}

func defaultConfig() config {
	return config{
		maxRetries:   DefaultMaxRetries,
		retryWaitMin: DefaultRetryWaitMin,
		retryWaitMax: DefaultRetryWaitMax,
		userAgent:    defaultUserAgent,
	}
}

// setAuth records one way to authenticate; NewClient refuses a second.
func (c *config) setAuth(option string, a authenticator) {
	c.authOptions = append(c.authOptions, option)
	c.auth = a
}

// WithBasicAuth authenticates with HTTP Basic auth: on Cloud an Atlassian
// account email and an API token, on Data Center a username and password.
func WithBasicAuth(email, apiToken string) Option {
	return optionFunc(func(c *config) error {
		if strings.TrimSpace(email) == "" {
			return invalidInput("WithBasicAuth", "email", "must not be empty")
		}
		if apiToken == "" {
			return invalidInput("WithBasicAuth", "apiToken", "must not be empty")
		}
		c.setAuth("WithBasicAuth", newBasicAuth(email, apiToken))
		return nil
	})
}

// WithBearerToken authenticates with "Authorization: Bearer <token>": a Data
// Center personal access token, or an OAuth 2.0 access token that does not
// need refreshing (use [WithTokenSource] for one that does).
func WithBearerToken(token string) Option {
	return optionFunc(func(c *config) error {
		if strings.TrimSpace(token) == "" {
			return invalidInput("WithBearerToken", "token", "must not be empty")
		}
		c.setAuth("WithBearerToken", newBearerAuth(token))
		return nil
	})
}

// WithTokenSource authenticates with OAuth 2.0 (3LO): each attempt carries
// the source's current access token, which golang.org/x/oauth2 refreshes as
// it expires. Use it with the gateway base URL, [CloudGatewayURL]; the site
// URL refuses OAuth 2.0 tokens. For a Connect app acting as a user, see
// [ConnectUserTokenSource].
func WithTokenSource(ts oauth2.TokenSource) Option {
	return optionFunc(func(c *config) error {
		if ts == nil {
			return invalidInput("WithTokenSource", "ts", "must not be nil")
		}
		c.setAuth("WithTokenSource", &tokenSourceAuth{ts: ts})
		return nil
	})
}

// WithConnectJWT authenticates as an Atlassian Connect app, with the app key
// and the shared secret from the app's installation handshake. Every attempt
// (retries and pages included) is signed with a fresh HS256 JWT whose qsh
// claim binds it to that request. Connect apps cannot remove customers:
// [CustomersService.Remove] fails before sending anything.
func WithConnectJWT(appKey, sharedSecret string) Option {
	return optionFunc(func(c *config) error {
		if strings.TrimSpace(appKey) == "" {
			return invalidInput("WithConnectJWT", "appKey", "must not be empty")
		}
		if sharedSecret == "" {
			return invalidInput("WithConnectJWT", "sharedSecret", "must not be empty")
		}
		c.setAuth("WithConnectJWT", &connectAuth{appKey: appKey, sharedSecret: sharedSecret})
		return nil
	})
}

// WithHTTPClient sets the http.Client whose Transport (or
// http.DefaultTransport when nil) carries the requests. Its Jar and
// CheckRedirect are kept; its Timeout, when set, bounds each attempt (see
// [WithTimeout]; without either, [DefaultTimeout] does).
//
// The SDK adds credentials above the Transport, per attempt and only for the
// configured origin, so the Transport sees each attempt as it is sent,
// Authorization header included: it must not log headers.
func WithHTTPClient(hc *http.Client) Option {
	return optionFunc(func(c *config) error {
		if hc == nil {
			return invalidInput("WithHTTPClient", "hc", "must not be nil")
		}
		c.httpClient = hc
		return nil
	})
}

// WithTimeout bounds each attempt, from connecting to reading the whole
// answer, redirects included; a retry gets a fresh bound. The default is
// [DefaultTimeout], or the Timeout of the client given to [WithHTTPClient].
// 0 removes the bound: then only the context bounds a call. A context
// deadline bounds the whole call, retries and waits included, in any case.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 {
			return invalidInput("WithTimeout", "d", fmt.Sprintf("must not be negative, got %v", d))
		}
		c.timeout = &d
		return nil
	})
}

// WithMaxRetries sets how many times a failed request is retried after the
// first attempt (default [DefaultMaxRetries]); 0 disables retries.
func WithMaxRetries(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 0 {
			return invalidInput("WithMaxRetries", "n", fmt.Sprintf("must not be negative, got %d", n))
		}
		c.maxRetries = n
		return nil
	})
}

// WithRetryWait sets the bounds of the exponential backoff between attempts
// (defaults [DefaultRetryWaitMin] and [DefaultRetryWaitMax]). A server's
// Retry-After is honoured even when it is longer than max: how long a call
// may wait on rate limits is [WithRateLimitWait]'s to say, not this.
func WithRetryWait(min, max time.Duration) Option {
	return optionFunc(func(c *config) error {
		if min < 0 {
			return invalidInput("WithRetryWait", "min", fmt.Sprintf("must not be negative, got %v", min))
		}
		if max < min {
			return invalidInput("WithRetryWait", "max", fmt.Sprintf("%v is less than min %v", max, min))
		}
		c.retryWaitMin, c.retryWaitMax = min, max
		return nil
	})
}

// WithLogger logs each attempt at Debug level and each retry at Warn level.
// Headers and credentials are never logged. Without it, or with nil, the SDK
// logs nothing.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) error {
		c.logger = l
		return nil
	})
}

// WithHooks calls h's functions as calls start, as each attempt ends and
// as calls end, for metrics, tracing or audit logs (see [Hooks];
// examples/otel bridges them to OpenTelemetry). A Client has one set of
// hooks; a second WithHooks replaces the first.
func WithHooks(h Hooks) Option {
	return optionFunc(func(c *config) error {
		c.hooks = h
		return nil
	})
}

// WithInsecurePlainHTTP allows credentials over plain http:// to a host that
// is not loopback. Without it NewClient refuses such a base URL, since the
// credentials would cross the network in clear text. Loopback means a
// loopback IP address or "localhost"; names below ".localhost" need this
// option too, since they are resolved through DNS.
func WithInsecurePlainHTTP() Option {
	return optionFunc(func(c *config) error {
		c.insecureHTTP = true
		return nil
	})
}

// WithRateLimitHook calls fn after every answer that carries Jira's
// rate-limit headers, successful or not, to watch how close the client is
// to its limits (the client's own governor already paces and pauses; see
// [NewRateLimiter]). fn runs on the goroutine of the call, and must be
// quick: for a page that [WithPrefetch] fetched ahead, on the goroutine
// walking the pages, when it takes the page up. Calls from several
// goroutines may run it at once. If it panics, the call panics, as for
// [Hooks], having given back what it held.
func WithRateLimitHook(fn func(RateLimit)) Option {
	return optionFunc(func(c *config) error {
		if fn == nil {
			return invalidInput("WithRateLimitHook", "fn", "must not be nil")
		}
		c.onRateLimit = fn
		return nil
	})
}

// WithRateLimiter sets the [RateLimiter] that paces the client's requests,
// in place of the one each Client makes for itself with [NewRateLimiter]:
// give several Clients of one site the same limiter and they share what Jira
// says about its limits, or plug in one shared between processes. nil turns
// pacing off; the client still waits out a 429's Retry-After when it
// retries.
func WithRateLimiter(l RateLimiter) Option {
	return optionFunc(func(c *config) error {
		c.limiter, c.limiterSet = l, true
		return nil
	})
}

// WithMaxInFlight fixes how many requests the client has on the wire at
// once, across all goroutines and operations. Without it the bound adapts:
// [DefaultMaxInFlight] until the server has told an endpoint's pace, growing
// by one a round trip while calls wait for a slot (and shrinking after a
// 429), then as many as that pace needs at the latency observed, up to 64.
// A call that finds every slot busy waits for one, the wait counting
// against [WithRateLimitWait].
func WithMaxInFlight(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 1 {
			return invalidInput("WithMaxInFlight", "n", fmt.Sprintf("must be at least 1, got %d", n))
		}
		c.maxInFlight = n
		return nil
	})
}

// WithRateLimitWait sets the longest a call may wait on rate limits, all
// its waits added up: for its turn with the rate limiter (pacing, or a
// pause after a 429), for a free slot on the wire (see [WithMaxInFlight]),
// and out a 429's Retry-After before a retry. A wait that would go past it
// is not begun: the call fails at once, unsent, with an [*Error] that
// matches [ErrRateLimited] and carries RetryAfter and the reason (or, for a
// retry not made, the server's 429 with a Hint saying why): a script can
// report it, a handler can answer 503 with Retry-After. The default is
// [DefaultRateLimitWait], whatever [WithRetryWait] says; a context deadline
// that comes sooner bounds the waits too. Size it to the job: n goroutines
// sharing an endpoint paced at r a second queue for about n/r seconds.
func WithRateLimitWait(max time.Duration) Option {
	return optionFunc(func(c *config) error {
		if max < 0 {
			return invalidInput("WithRateLimitWait", "max", fmt.Sprintf("must not be negative, got %v", max))
		}
		c.limitWait = &max
		return nil
	})
}

// WithPrefetch makes All and Pages request the next page while the caller
// is still working through the current one, hiding the server's latency
// (the walk then holds two pages, not one). The price: when the loop
// breaks early, the request for the next page has already gone out; it is
// cancelled and its answer dropped.
func WithPrefetch() Option {
	return optionFunc(func(c *config) error {
		c.prefetch = true
		return nil
	})
}

// WithUserAgent replaces the User-Agent header, which names the SDK and its
// version by default.
func WithUserAgent(ua string) Option {
	return optionFunc(func(c *config) error {
		if strings.TrimSpace(ua) == "" {
			return invalidInput("WithUserAgent", "ua", "must not be empty")
		}
		if strings.ContainsAny(ua, "\r\n\x00") {
			return invalidInput("WithUserAgent", "ua", "must not contain control characters")
		}
		c.userAgent = ua
		return nil
	})
}

// invalidInput reports input rejected before any request: it wraps
// ErrInvalidInput and names where it came from and the field.
func invalidInput(where, field, reason string) error {
	return &inputerr.Error{Prefix: "servicedesk", Where: where, Field: field, Reason: reason, Kind: ErrInvalidInput}
}
