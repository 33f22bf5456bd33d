package servicedesk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// apiRoot is where the servicedeskapi lives below the base URL.
const apiRoot = "/rest/servicedeskapi/"

// Client talks to one JSM site (or the OAuth 2.0 gateway for one site).
// Create it with [NewClient]. It is safe for concurrent use.
type Client struct {
	// Customers creates customers and manages who is a customer of a desk.
	Customers *CustomersService

	base        *url.URL // scheme and host of the site; Path without trailing "/"
	retry       *retryablehttp.Client
	userAgent   string
	logger      *slog.Logger
	auth        authenticator // for redaction; requests get credentials in transport
	connect     bool          // authenticates as a Connect app
	onRateLimit func(RateLimit)
	prefetch    bool // All and Pages fetch the next page ahead

	maxRetries   int
	retryWaitMin time.Duration
	retryWaitMax time.Duration
	timeout      time.Duration        // per attempt; 0: none
	timedOut     *attemptTimeoutError // the cause of an attempt's context that ran out of time

	limiter     RateLimiter
	slots       inFlight      // bounds the requests on the wire
	maxInFlight int           // WithMaxInFlight's bound; 0: adaptive (conc)
	conc        concurrency   // the adaptive bound
	limitWait   time.Duration // the longest wait for the limiter or a Retry-After

	hooks Hooks

	lifecycle lifecycle // FindByEmail's user-search form, Ensure's calls in flight

	common service
}

// CloudGatewayURL returns the base URL used with OAuth 2.0 (3LO) and scoped tokens:
// "https://api.atlassian.com/ex/jira/" + cloudID. [NewClient] refuses the
// URL of an empty cloudID, which would make every call 404.
func CloudGatewayURL(cloudID string) string {
	return "https://api.atlassian.com/ex/jira/" + url.PathEscape(cloudID)
}

// NewClient returns a client for the JSM instance at baseURL: a Cloud site
// ("https://your-domain.atlassian.net"), the OAuth 2.0 gateway
// ([CloudGatewayURL]), or a Data Center base URL with its context path
// ("https://jira.example.com/jira"). API paths are appended to the base
// URL's path. NewClient does no network I/O; it fails, wrapping
// [ErrInvalidInput], on a base URL without scheme or host, with credentials,
// a query or a fragment in it, with an API path in it ("/rest/..."), on the
// OAuth gateway without a cloud id, on an invalid option, or on more than
// one authentication option.
func NewClient(baseURL string, opts ...Option) (*Client, error) {
	base, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	cfg := defaultConfig()
	for _, opt := range opts {
		if opt == nil {
			return nil, invalidInput("NewClient", "opts", "must not contain nil")
		}
		if err := opt.apply(&cfg); err != nil {
			return nil, err
		}
	}
	if len(cfg.authOptions) > 1 {
		return nil, invalidInput("NewClient", "opts",
			"may hold one way to authenticate, got "+strings.Join(cfg.authOptions, " and "))
	}
	return newClient("NewClient", "baseURL", base, cfg)
}

// newClient builds a Client for base from cfg. The OAuth helpers build
// theirs here too, for the token and accessible-resources endpoints, so
// that every request the SDK makes goes through the same pipeline.
func newClient(where, field string, base *url.URL, cfg config) (*Client, error) {
	if base.Scheme == "http" && cfg.auth != nil && !cfg.insecureHTTP && !isLoopback(base.Hostname()) {
		return nil, invalidInput(where, field,
			"is plain http:// to a host that is not loopback: credentials would travel in clear text; use https:// (or WithInsecurePlainHTTP)")
	}
	ca, isConnect := cfg.auth.(*connectAuth)
	if isConnect {
		ca.basePath = base.EscapedPath()
	}
	c := &Client{
		connect:      isConnect,
		base:         base,
		userAgent:    cfg.userAgent,
		logger:       cfg.logger,
		auth:         cfg.auth,
		onRateLimit:  cfg.onRateLimit,
		prefetch:     cfg.prefetch,
		maxRetries:   cfg.maxRetries,
		retryWaitMin: cfg.retryWaitMin,
		retryWaitMax: cfg.retryWaitMax,
		timeout:      cfg.attemptTimeout(),
		limiter:      cfg.limiter,
		maxInFlight:  cfg.maxInFlight,
		limitWait:    cfg.rateLimitWait(),
		hooks:        cfg.hooks,
	}
	switch {
	case !cfg.limiterSet:
		c.limiter = NewRateLimiter(RateLimiterConfig{Cloud: isCloud(base.Hostname())})
	case cfg.limiter == nil:
		c.limiter = noLimiter{}
	}
	c.timedOut = &attemptTimeoutError{after: c.timeout, by: cfg.timeoutSource()}
	c.retry = newRetryClient(newHTTPClient(cfg.httpClient, cfg.auth, base), c.maxRetries)
	c.common.client = c
	c.Customers = (*CustomersService)(&c.common)
	return c, nil
}

// DefaultTimeout bounds each attempt (connecting, sending, redirects and
// reading the whole answer) unless [WithTimeout] says otherwise, so a server
// that stops answering cannot hang a call that has no context deadline.
const DefaultTimeout = 60 * time.Second

// request is one API call as the pipeline carries it.
type request struct {
	op       string // what the caller called: "CustomersService.List"
	method   string
	url      *url.URL
	endpoint Endpoint // method and path template, for the rate limiter
	body     []byte
	// contentType is the body's; JSON unless said otherwise.
	contentType string
	// expect is how a 2xx body that is decoded must open: '{' for an
	// object (every answer of the servicedeskapi), '[' for an array, 0 for
	// any JSON value.
	expect byte
	// userTypes marks the caller's own types (Do): encoded and decoded as
	// encoding/json would, and a 2xx without a body decodes to nothing.
	userTypes bool

	// experimental marks an endpoint that wants "X-ExperimentalApi: opt-in"
	// (the server answers 412 without it).
	experimental bool
	// idempotent allows retries after the server may have acted on the
	// request (5xx, a connection that broke after sending).
	idempotent bool
	// needs is what the operation requires, told on a 401 or 403.
	needs needs
	// unsure is said when a request that is not idempotent may have
	// reached the server and failed: what the caller should check.
	unsure string
}

// newRequest builds a call to path below /rest/servicedeskapi/ (path is
// already escaped; template is the same with ids as {name}). body, when
// not nil, is sent as JSON.
func (c *Client) newRequest(op, method, path, template string, n needs, query url.Values, body any) (*request, error) {
	r := &request{
		op:         op,
		needs:      n,
		method:     method,
		url:        c.apiURL(path, query),
		endpoint:   Endpoint{Method: method, Path: template},
		expect:     '{',
		idempotent: method != http.MethodPost,
	}
	var err error
	if r.body, err = encodeBody(op, body); err != nil {
		return nil, err
	}
	return r, nil
}

// apiURL resolves an escaped path of the service desk API onto the base
// URL (see siteURL).
func (c *Client) apiURL(escapedPath string, query url.Values) *url.URL {
	return c.siteURL(apiRoot+escapedPath, query)
}

// siteURL resolves an escaped path (that the caller made or checked) onto
// the base URL, keeping the base URL's own path (gateway prefix, Data
// Center context path).
func (c *Client) siteURL(escapedPath string, query url.Values) *url.URL {
	u := *c.base
	setEscapedPath(&u, u.EscapedPath()+escapedPath)
	u.RawQuery = query.Encode()
	return &u
}

// setEscapedPath sets u's path from an escaped one (which the caller made
// or checked). Without an escape in it, Path says it all; keeping RawPath
// empty then spares net/http unescaping it again to check it, on every
// request.
func setEscapedPath(u *url.URL, raw string) {
	if !strings.Contains(raw, "%") {
		u.Path, u.RawPath = raw, ""
		return
	}
	u.Path, _ = url.PathUnescape(raw)
	u.RawPath = raw
}

// do sends r, retrying as the policy allows, and decodes a 2xx body into v
// (when v is not nil). Any other status becomes an *Error.
func (c *Client) do(ctx context.Context, r *request, v any) error {
	if ctx == nil {
		return invalidInput(r.op, "ctx", "must not be nil")
	}
	if c.connect && r.needs.connect == connectInaccessible {
		return fmt.Errorf("%w: %s %s: Atlassian Connect apps cannot %s (the operation's Connect scope is %s); use a user's credentials",
			ErrForbidden, r.method, r.url.EscapedPath(), r.needs.action, connectInaccessible)
	}
	cl := &call{c: c, r: r, start: time.Now()}
	if c.onRateLimit != nil && c.prefetch {
		cl.sink, _ = ctx.Value(rateLimitSinkKey{}).(*rateLimitSink)
	}
	if h := c.hooks.CallStart; h != nil {
		if hctx := h(ctx, cl.info()); hctx != nil {
			ctx = hctx
		}
	}
	cl.ctx = context.WithValue(ctx, callKey{}, cl)
	err := cl.run(v)
	cl.finish(err)
	return err
}

// run makes the call: its attempts, then the answer. Whatever way it
// leaves, a hook's panic included, the call's slot, limiter turn and
// answer are given back.
func (cl *call) run(v any) error {
	if err := cl.ctx.Err(); err != nil {
		return cl.transportError(err)
	}
	defer cl.release()
	if err := cl.admit(); err != nil {
		return cl.refused(err)
	}
	resp, err := cl.c.retry.Do(cl.newHTTPRequest())
	cl.settle(nil, 0) // when retryablehttp stopped before an attempt it was admitted to
	if err != nil {
		if resp != nil && resp != cl.resp {
			closeBody(resp.Body)
		}
		return cl.transportError(err)
	}
	cl.resp = resp // closed by release

	r := cl.r
	cl.status, cl.requestID = resp.StatusCode, redact(cl.c.auth, requestID(resp.Header))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return cl.apiError(resp)
	}
	if v == nil {
		return nil
	}
	opts := decodeOptions
	if r.userTypes {
		if resp.StatusCode == http.StatusNoContent || resp.ContentLength == 0 || r.method == http.MethodHead {
			return nil // nothing to decode; v is left as it is
		}
		opts = userTypeOptions
	}
	if err := decodeJSON(resp, v, r.expect, opts); err != nil {
		if ctxErr := cl.ctx.Err(); ctxErr != nil {
			return fmt.Errorf("servicedesk: %s %s: reading the answer: %w", r.method, r.url.EscapedPath(), ctxErr)
		}
		if terr, ok := cl.attemptTimedOut(err); ok {
			return fmt.Errorf("servicedesk: %s %s: reading the answer: %w", r.method, r.url.EscapedPath(), terr)
		}
		return fmt.Errorf("%w: %s %s: %d answer: %w", ErrInvalidResponse, r.method, r.url.EscapedPath(), resp.StatusCode, err)
	}
	return nil
}

// apiError is the *Error of the call's last answer.
func (cl *call) apiError(resp *http.Response) *Error {
	r := cl.r
	e := newError(resp, r.method, r.url, time.Now(), cl.c.auth)
	e.Attempts = cl.n
	var hints []string
	switch {
	case e.StatusCode == http.StatusUnauthorized:
		hint, scoped := unauthorizedHint(cl.c.auth, isCloud(cl.c.base.Hostname()))
		hints = append(hints, hint)
		if scoped && r.needs.action != "" {
			e.Needs = r.needs.forAuth(cl.c.auth, isCloud(cl.c.base.Hostname()))
		}
	case e.StatusCode == http.StatusForbidden && r.needs.action != "":
		e.Needs = r.needs.forAuth(cl.c.auth, isCloud(cl.c.base.Hostname()))
	case e.StatusCode >= 500 && !r.idempotent:
		hints = append(hints, r.unsure)
	}
	switch {
	case cl.refusal != nil:
		// The limiter would not let a retry out in time: its wait is the
		// one that counts, and its reason is said apart from the server's
		// message.
		e.RetryAfter = max(e.RetryAfter, cl.refusal.RetryAfter)
		hints = append(hints, "not retried: "+strings.TrimPrefix(cl.refusal.Message, "not sent: "))
	case cl.tooLong > 0:
		hint := fmt.Sprintf("not retried: WithRateLimitWait allows %v a call", cl.c.limitWait)
		if cl.limitWaited >= time.Millisecond {
			hint += fmt.Sprintf(", %v of it left", max(0, cl.c.limitWait-cl.limitWaited).Round(time.Millisecond))
		}
		hints = append(hints, hint)
	}
	e.Hint = joinNonEmpty("; ", hints...)
	return e
}

// newHTTPRequest builds the request every attempt sends, in the first
// attempt's context (see startAttempt), where retryablehttp's hooks find
// the call. Each request gets header values of its own: a transport may
// write into them.
func (cl *call) newHTTPRequest() *retryablehttp.Request {
	r := cl.r
	h := make(http.Header, 5)
	h["Accept"] = []string{"application/json"}
	h["User-Agent"] = []string{cl.c.userAgent}
	if r.experimental {
		h["X-Experimentalapi"] = []string{"opt-in"}
	}
	// The URL is already built: hand it over rather than render and parse
	// it again, as http.NewRequest would.
	hr := &http.Request{
		Method:     r.method,
		URL:        r.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       r.url.Host,
	}
	if r.body != nil {
		h["Content-Type"] = []string{"application/json"}
		if r.contentType != "" {
			h["Content-Type"] = []string{r.contentType}
		}
		// beforeAttempt gives every attempt a fresh reader over the body.
		hr.ContentLength = int64(len(r.body))
		hr.GetBody = cl.getBody
		hr.Body = http.NoBody
	}
	cl.startAttempt(hr)
	return &cl.req
}

// transportError reports a call that got no response. Once the context is
// done, its error is the one that counts.
func (cl *call) transportError(err error) error {
	var unsure error
	if cl.n > 0 && !cl.r.idempotent && cl.r.unsure != "" && mayHaveArrived(err) {
		unsure = &mayHaveRunError{hint: cl.r.unsure}
	}
	if ctxErr := cl.ctx.Err(); ctxErr != nil {
		err = ctxErr
	} else if terr, ok := cl.attemptTimedOut(err); ok {
		err = terr
	}
	gaveUp := ""
	if cl.n > 1 {
		gaveUp = fmt.Sprintf("; gave up after %d attempts", cl.n)
	}
	if unsure != nil {
		err = fmt.Errorf("servicedesk: %s %s: %w; %w%s", cl.r.method, cl.r.url.EscapedPath(), stripURLError(err), unsure, gaveUp)
	} else {
		err = fmt.Errorf("servicedesk: %s %s: %w%s", cl.r.method, cl.r.url.EscapedPath(), stripURLError(err), gaveUp)
	}
	if msg := redact(cl.c.auth, err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

// mayHaveRunError is in the chain of a transport error when the request
// was sent, is not idempotent, and may have been carried out though no
// answer said so; its text is the request's hint. CustomersService.Ensure
// looks for it.
type mayHaveRunError struct{ hint string }

func (e *mayHaveRunError) Error() string { return e.hint }

// mayHaveArrived reports whether a request that failed with err may have
// reached the server: unless it surely never left (no connection, no
// credentials, a refused redirect or certificate), it may have.
func mayHaveArrived(err error) bool {
	return !neverSent(err) && !unknownHost(err) && retryableTransportError(err)
}

// errorText is an error as logs may show it: without the request's URL,
// whose query may hold a customer's email, and without credentials.
func (c *Client) errorText(err error) string {
	return redact(c.auth, stripURLError(err).Error())
}

// stripURLError drops the *url.Error wrapper, which repeats the method and
// the whole URL; our errors say method and path once.
func stripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactedURL renders u without user info; the SDK never puts credentials
// in URLs, but a URL from elsewhere (a redirect) might carry some.
func redactedURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	if u.User == nil {
		return u.String()
	}
	cp := *u
	cp.User = nil
	return cp.String()
}
