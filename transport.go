package servicedesk

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// newHTTPClient builds the http.Client the retry loop sends each attempt
// with: the user's Transport and Jar (or http.DefaultTransport), beneath
// the SDK's transport, which adds credentials only for the configured
// origin, and the SDK's redirect policy around the user's CheckRedirect.
// It has no Timeout: each attempt's request carries a context of its own
// with the attempt's deadline (see beforeAttempt). (http.Client.Timeout
// would cost a goroutine and a timer channel per attempt: net/http falls
// back to them for a Transport it does not know, such as this one.)
func newHTTPClient(user *http.Client, auth authenticator, base *url.URL) *http.Client {
	var rt http.RoundTripper = http.DefaultTransport
	var userRedirect func(*http.Request, []*http.Request) error
	hc := &http.Client{}
	if user != nil {
		hc.Jar = user.Jar
		userRedirect = user.CheckRedirect
		if user.Transport != nil {
			rt = user.Transport
		}
	}
	t := &transport{base: rt, auth: auth,
		scheme: base.Scheme, host: base.Host, origin: origin(base.Scheme, base.Host)}
	hc.Transport = t
	hc.CheckRedirect = t.redirectPolicy(userRedirect)
	return hc
}

// transport carries every attempt, redirect hops included. It attaches
// credentials to requests for the configured origin only: a hop to another
// scheme, host or port goes out without them.
//
// It does not implement CloseIdleConnections on purpose: retryablehttp calls
// it after failures, and it must not close the idle connections of a
// Transport the whole program may share.
type transport struct {
	base         http.RoundTripper
	auth         authenticator
	scheme, host string // as configured, for the fast comparison
	origin       string // scheme://host:port, lower case
}

func (t *transport) sameOrigin(u *url.URL) bool {
	if u.Scheme == t.scheme && u.Host == t.host {
		return true
	}
	return origin(u.Scheme, u.Host) == t.origin
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.auth == nil || !t.sameOrigin(req.URL) {
		return t.base.RoundTrip(req)
	}
	// A RoundTripper must not modify the caller's request: work on a copy
	// whose header map is new (the value slices are only read).
	r := *req
	r.Header = make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		r.Header[k] = v
	}
	if err := t.auth.authenticate(&r); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := t.base.RoundTrip(&r)
	if resp != nil {
		// Hand back the caller's request, not the copy with credentials.
		resp.Request = req
	}
	return resp, err
}

// maxRedirects is as many hops as net/http follows by default.
const maxRedirects = 10

// redirectPolicy follows redirects as net/http does, within these limits:
// a request with a body (which may hold a secret, such as a token grant's
// assertion, or a customer's email) is not sent to another origin, nor
// turned into a GET without it (a 301, 302 or 303 after a POST or DELETE),
// and the user's CheckRedirect has its say. Every refusal is a redirectError, which
// the retry policy never retries: the same answer would come again.
func (t *transport) redirectPolicy(user func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return &redirectError{fmt.Errorf("stopped after %d redirects", maxRedirects)}
		}
		// A 301, 302 or 303 turns a POST or DELETE into a GET without its
		// body: following it would report an Add or a Remove done that
		// never was.
		if first := via[0]; req.Method != first.Method {
			return &redirectError{fmt.Errorf("refused a redirect that would turn %s into %s and drop the request's body", first.Method, req.Method)}
		}
		if (req.GetBody != nil || req.Body != nil && req.Body != http.NoBody) && !t.sameOrigin(req.URL) {
			return &redirectError{fmt.Errorf("refused a redirect to %s: the request's body goes only to %s", origin(req.URL.Scheme, req.URL.Host), t.origin)}
		}
		if user != nil {
			if err := user(req, via); err != nil {
				if errors.Is(err, http.ErrUseLastResponse) {
					return err
				}
				return &redirectError{err}
			}
		}
		return nil
	}
}

// redirectError is a redirect the policy, or the user's CheckRedirect,
// refused.
type redirectError struct{ err error }

func (e *redirectError) Error() string { return "redirect: " + e.err.Error() }
func (e *redirectError) Unwrap() error { return e.err }

// origin canonicalises scheme and host so "https://X.example.com" and
// "https://x.example.com:443" compare equal.
func origin(scheme, host string) string {
	scheme = strings.ToLower(scheme)
	host = strings.ToLower(host)
	if !hasPort(host) {
		switch scheme {
		case "https":
			host += ":443"
		case "http":
			host += ":80"
		}
	}
	return scheme + "://" + host
}

// hasPort reports whether host (as in URL.Host) ends in a port, minding
// IPv6 literals such as "[::1]".
func hasPort(host string) bool {
	i := strings.LastIndexByte(host, ':')
	return i >= 0 && i > strings.LastIndexByte(host, ']')
}
