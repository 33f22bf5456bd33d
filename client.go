package servicedesk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	userAgent   []string // the User-Agent header's value
	logger      *slog.Logger
	auth        authenticator // for redaction; requests get credentials in transport
	connect     bool          // authenticates as a Connect app
	onRateLimit func(RateLimit)
	prefetch    bool // All and Pages fetch the next page ahead

	maxRetries   int
	retryWaitMin time.Duration
	retryWaitMax time.Duration
	timeout      time.Duration // per attempt; 0: none

	limiter   RateLimiter
	slots     inFlight      // bounds the requests on the wire
	limitWait time.Duration // the longest wait for the limiter or a Retry-After

	hooks Hooks

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
		userAgent:    []string{cfg.userAgent},
		logger:       cfg.logger,
		auth:         cfg.auth,
		onRateLimit:  cfg.onRateLimit,
		prefetch:     cfg.prefetch,
		maxRetries:   cfg.maxRetries,
		retryWaitMin: cfg.retryWaitMin,
		retryWaitMax: cfg.retryWaitMax,
		timeout:      cfg.attemptTimeout(),
		limiter:      cfg.limiter,
		slots:        make(inFlight, cfg.maxInFlight),
		limitWait:    cfg.rateLimitWait(),
		hooks:        cfg.hooks,
	}
	switch {
	case !cfg.limiterSet:
		c.limiter = NewRateLimiter(RateLimiterConfig{Cloud: isCloud(base.Hostname())})
	case cfg.limiter == nil:
		c.limiter = noLimiter{}
	}
	c.retry = newRetryClient(newHTTPClient(cfg.httpClient, cfg.auth, base), c.maxRetries)
	c.common.client = c
	c.Customers = (*CustomersService)(&c.common)
	return c, nil
}

// isCloud reports whether host is Jira Cloud: a site, or the OAuth gateway.
func isCloud(host string) bool {
	host = strings.ToLower(host)
	return strings.HasSuffix(host, ".atlassian.net") || host == "api.atlassian.com" || strings.HasSuffix(host, ".jira.com")
}

// isLoopback reports whether host names this machine: a loopback IP, or
// "localhost" (which the hosts file maps). Names below .localhost are not
// exempt: Go resolves them through DNS, which anyone on the path can answer.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		// url.Error quotes the input, which may hold a password: say less.
		return nil, invalidInput("NewClient", "baseURL", "is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, invalidInput("NewClient", "baseURL", "must start with https:// or http://")
	case u.Host == "" || u.Hostname() == "":
		return nil, invalidInput("NewClient", "baseURL", "has no host")
	case u.User != nil:
		return nil, invalidInput("NewClient", "baseURL", "must not contain credentials; use an auth option")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, invalidInput("NewClient", "baseURL", "must not contain a query")
	case u.Fragment != "":
		return nil, invalidInput("NewClient", "baseURL", "must not contain a fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	if err := checkBasePath(u); err != nil {
		return nil, err
	}
	return u, nil
}

// checkBasePath refuses base URLs that look right but make every call 404:
// one that already holds an API path, and the OAuth gateway without a
// cloud id.
func checkBasePath(u *url.URL) error {
	segments := strings.Split(u.Path, "/")
	for i, seg := range segments {
		if seg == "rest" {
			site := *u
			site.Path, site.RawPath = strings.Join(segments[:i], "/"), ""
			return invalidInput("NewClient", "baseURL",
				fmt.Sprintf("must not include the API path (%q): use %q; the SDK appends /rest/servicedeskapi/...",
					"/"+strings.Join(segments[i:], "/"), site.String()))
		}
	}
	if strings.EqualFold(u.Hostname(), "api.atlassian.com") {
		cloudID, ok := strings.CutPrefix(u.Path, "/ex/jira/")
		if !ok || cloudID == "" || strings.Contains(cloudID, "/") {
			return invalidInput("NewClient", "baseURL",
				"is the OAuth 2.0 gateway without a cloud id: use CloudGatewayURL(cloudID), with the id from AccessibleResources")
		}
	}
	return nil
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
	contentType []string
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
	if body != nil {
		b, err := encodeBody(body)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: encoding the request body: %w", ErrInvalidInput, op, err)
		}
		r.body = b
	}
	return r, nil
}

// Do sends method to path below the base URL ("/rest/api/3/user/search"; a
// leading "/rest/" is required, so it cannot leave the configured host),
// with the client's credentials, retry policy, rate-limit pacing and error
// mapping (*Error and the sentinels). query may be nil. body, when not nil,
// is sent as JSON; a 2xx body is decoded into v when v is not nil. POST is
// not repeated once the server may have acted on it; other methods are
// treated as idempotent.
//
// path is an escaped path: escape ids taken from elsewhere with
// url.PathEscape. Paths that could leave the API are refused before
// anything is sent, wrapping [ErrInvalidInput]: no "/rest/" prefix, a query
// or fragment in the path (use query), "." or ".." segments, empty
// segments, escaped "/" or "\", or characters that need escaping. A
// Connect JWT is signed for the path and query sent. Under
// /rest/servicedeskapi/ the request opts in to experimental endpoints
// (X-ExperimentalApi). body and v are encoded and decoded as encoding/json
// does (use json.RawMessage for JSON you already have); v must be a
// non-nil pointer, and is left as it is when the answer has no body (204).
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, v any) error {
	r, err := c.newDoRequest(method, path, query, body, v)
	if err != nil {
		return err
	}
	return c.do(ctx, r, v)
}

// newDoRequest checks what Do was given and builds its request.
func (c *Client) newDoRequest(method, path string, query url.Values, body, v any) (*request, error) {
	const where = "Client.Do"
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return nil, invalidInput(where, "method", fmt.Sprintf("%q is not GET, HEAD, POST, PUT, PATCH or DELETE", method))
	}
	if why := unsafePath(path); why != "" {
		return nil, invalidInput(where, "path", fmt.Sprintf("%q %s", path, why))
	}
	for name, values := range query {
		if !utf8.ValidString(name) {
			return nil, invalidInput(where, "query", fmt.Sprintf("%q is not valid UTF-8", name))
		}
		for _, value := range values {
			if !utf8.ValidString(value) {
				return nil, invalidInput(where, "query", fmt.Sprintf("the value of %q is not valid UTF-8", name))
			}
		}
	}
	if v != nil {
		if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || rv.IsNil() {
			return nil, invalidInput(where, "v", fmt.Sprintf("must be nil or a non-nil pointer, got %T", v))
		}
	}
	u := *c.base
	setEscapedPath(&u, u.EscapedPath()+path) // unsafePath checked every escape
	u.RawQuery = query.Encode()
	r := &request{
		op:           "Do",
		method:       method,
		url:          &u,
		endpoint:     Endpoint{Method: method, Path: pathTemplate(path)},
		userTypes:    true,
		experimental: strings.HasPrefix(path, apiRoot),
		idempotent:   method != http.MethodPost,
		unsure:       "the server may have acted on it: check before sending it again",
	}
	if body != nil {
		b, err := encodeBody(body)
		if err != nil {
			return nil, invalidInput(where, "body", "cannot be encoded as JSON: "+err.Error())
		}
		r.body = b
	}
	return r, nil
}

// unsafePath says why a path given to Do could leave the API (or be read
// differently by a proxy than by the SDK), or "" when it cannot.
func unsafePath(path string) string {
	if !strings.HasPrefix(path, "/rest/") {
		return `must start with "/rest/": a path on the configured site, such as "/rest/api/3/user/search"`
	}
	segments := strings.Split(path[1:], "/")
	for i, seg := range segments {
		if seg == "" && i < len(segments)-1 {
			return "must not hold an empty segment (//)"
		}
		for j := 0; j < len(seg); j++ {
			if c := seg[j]; c <= ' ' || c >= 0x7f || strings.IndexByte(`"#<>?\^`+"`{|}", c) >= 0 {
				return fmt.Sprintf("holds %q, which must be escaped (url.PathEscape), or a query or fragment (use query)", c)
			}
		}
		plain, err := url.PathUnescape(seg)
		switch {
		case err != nil:
			return "holds a malformed escape"
		case plain == "." || plain == "..":
			return "must not hold . or .. segments"
		case strings.ContainsAny(plain, "/\\"):
			return `must not hold an escaped "/" or "\"`
		}
	}
	return ""
}

// pathTemplate turns a path given to Do into a template for metrics and the
// rate limiter: segments that look like ids become "{id}". Words in lower
// camel case ("user", "search", "requesttype") are kept, and so is the
// version after the API's name ("/rest/api/3").
func pathTemplate(path string) string {
	segments := strings.Split(path, "/")
	for i, seg := range segments {
		if i <= 2 || seg == "" || isWord(seg) || i == 3 && isVersion(seg) {
			continue
		}
		segments[i] = "{id}"
	}
	return strings.Join(segments, "/")
}

func isWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || i > 0 && 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func isVersion(s string) bool {
	if s == "latest" {
		return true
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// apiURL resolves an escaped API path onto the base URL, keeping the base
// URL's own path (gateway prefix, Data Center context path).
func (c *Client) apiURL(escapedPath string, query url.Values) *url.URL {
	u := *c.base
	setEscapedPath(&u, u.EscapedPath()+apiRoot+escapedPath)
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
	cl := &call{Context: ctx, c: c, r: r, start: time.Now()}
	if c.onRateLimit != nil && c.prefetch {
		cl.sink, _ = ctx.Value(rateLimitSinkKey{}).(*rateLimitSink)
	}
	if h := c.hooks.CallStart; h != nil {
		if hctx := h(ctx, cl.info()); hctx != nil {
			cl.Context = hctx
		}
	}
	err := cl.run(v)
	cl.finish(err)
	return err
}

// run makes the call: its attempts, then the answer.
func (cl *call) run(v any) error {
	if err := cl.Context.Err(); err != nil {
		return cl.transportError(err)
	}
	if err := cl.admit(); err != nil {
		return cl.refused(err)
	}
	defer cl.disarm()
	resp, err := cl.c.retry.Do(cl.newHTTPRequest())
	cl.settle(nil, 0) // when retryablehttp stopped before an attempt it was admitted to
	if err != nil {
		if resp != nil {
			closeBody(resp.Body)
		}
		return cl.transportError(err)
	}
	defer closeBody(resp.Body)

	r := cl.r
	cl.status, cl.requestID = resp.StatusCode, get(resp.Header, hRequestID)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return cl.apiError(resp)
	}
	if v == nil {
		return nil
	}
	opts := decodeOptions
	if r.userTypes {
		if resp.StatusCode == http.StatusNoContent || resp.ContentLength == 0 {
			return nil // nothing to decode; v is left as it is
		}
		opts = userTypeOptions
	}
	if err := decodeJSON(resp, v, r.expect, opts); err != nil {
		if ctxErr := cl.Context.Err(); ctxErr != nil {
			return fmt.Errorf("servicedesk: %s %s: %w", r.method, r.url.EscapedPath(), ctxErr)
		}
		return fmt.Errorf("%w: %s %s: %d answer: %w", ErrInvalidResponse, r.method, r.url.EscapedPath(), resp.StatusCode, err)
	}
	return nil
}

// apiError is the *Error of the call's last answer.
func (cl *call) apiError(resp *http.Response) *Error {
	r := cl.r
	e := newError(resp, r.method, r.url, time.Now())
	e.Attempts = cl.n
	if cl.refusal != nil {
		// The limiter would not let a retry out in time: its wait is the
		// one that counts.
		e.RetryAfter = max(e.RetryAfter, cl.refusal.RetryAfter)
	}
	switch {
	case e.StatusCode == http.StatusUnauthorized:
		var scoped bool
		e.Hint, scoped = unauthorizedHint(cl.c.auth, isCloud(cl.c.base.Hostname()))
		if scoped && r.needs.action != "" {
			e.Needs = r.needs.String()
		}
	case e.StatusCode == http.StatusForbidden && r.needs.action != "":
		e.Needs = r.needs.String()
	case e.StatusCode >= 500 && !r.idempotent:
		e.Hint = r.unsure
	}
	e.redact(cl.c.auth)
	return e
}

// Header values shared by every request. http.Header maps them by
// reference; nothing below the SDK writes into a value slice (Set and Add
// replace or grow it), so sharing saves an allocation per header.
var (
	jsonValue  = []string{"application/json"}
	optInValue = []string{"opt-in"}
)

// newHTTPRequest builds the request every attempt sends; its context is
// the call itself.
func (cl *call) newHTTPRequest() *retryablehttp.Request {
	r := cl.r
	h := make(http.Header, 5)
	h["Accept"] = jsonValue
	h["User-Agent"] = cl.c.userAgent
	if r.experimental {
		h["X-Experimentalapi"] = optInValue
	}
	// The URL is already built: hand it over rather than render and parse
	// it again, as http.NewRequest would.
	hr := new(http.Request).WithContext(cl)
	hr.Method = r.method
	hr.URL = r.url
	hr.Proto, hr.ProtoMajor, hr.ProtoMinor = "HTTP/1.1", 1, 1
	hr.Header = h
	hr.Host = r.url.Host
	if r.body != nil {
		h["Content-Type"] = jsonValue
		if r.contentType != nil {
			h["Content-Type"] = r.contentType
		}
		// beforeAttempt gives every attempt a fresh reader over the body.
		hr.ContentLength = int64(len(r.body))
		hr.GetBody = cl.getBody
		hr.Body = http.NoBody
	}
	cl.req.Request = hr
	return &cl.req
}

// transportError reports a call that got no response. Once the context is
// done, its error is the one that counts.
func (cl *call) transportError(err error) error {
	unsure := cl.n > 0 && !cl.r.idempotent && cl.r.unsure != "" && mayHaveArrived(err)
	if ctxErr := cl.Context.Err(); ctxErr != nil {
		err = ctxErr
	}
	if unsure {
		err = fmt.Errorf("servicedesk: %s %s: %w; %s", cl.r.method, cl.r.url.EscapedPath(), stripURLError(err), cl.r.unsure)
	} else {
		err = fmt.Errorf("servicedesk: %s %s: %w", cl.r.method, cl.r.url.EscapedPath(), stripURLError(err))
	}
	if msg := redact(cl.c.auth, err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

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
