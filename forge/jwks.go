package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/servicedesk-go/servicedesk/internal/hosts"
)

// The JWKS is read, parsed and stored by jwkset (under keyfunc): each
// fetch is one jwkset.NewStorageFromHTTP, whose keys replace the last
// ones when it succeeds. What this file adds, because jwkset does not do
// it the way a Forge remote needs:
//
//   - No I/O before the first invocation: NewStorageFromHTTP fetches as
//     it is made, so it is made by the first fetch, not by NewVerifier.
//   - One fetch at a time, and callers that need the keys wait for it only
//     as long as their own context allows. The fetch itself runs to its own
//     bound (jwksFetchTimeout), so one impatient invocation does not waste
//     it for the others, and one that hangs does not block those after it.
//   - A refresh on an unknown kid, limited without making a caller wait:
//     jwkset's own (RefreshUnknownKID) blocks a reader until its limiter
//     allows, where an invocation should be refused at once and the next
//     one tried later.
//   - The error of a failed fetch, kept to say why invocations are refused;
//     the keys fetched before it stay in use.
//   - A bounded body, no credentials, and redirects only within the JWKS
//     URL's origin (see jwksClient).

// jwksFetchTimeout bounds one fetch of the JWKS.
const jwksFetchTimeout = 10 * time.Second

// maxJWKSBytes bounds the JWKS read: Atlassian's is a few kilobytes.
const maxJWKSBytes = 1 << 20

// keySet is the JWKS of one Verifier.
type keySet struct {
	url     string
	client  *http.Client
	every   time.Duration // least time between two fetches after the first
	timeout time.Duration // bounds one fetch: jwksFetchTimeout (tests shorten it)

	mu       sync.Mutex
	cached   jwkset.Storage // the keys last fetched; reading it does no I/O
	fetching chan struct{}  // closed when the fetch in flight ends
	fetches  int            // fetches started
	next     time.Time      // no fetch before this (after the first two)
	lastErr  error          // why the last fetch failed; nil once one succeeds
}

func newKeySet(u string, client *http.Client, every time.Duration) *keySet {
	return &keySet{url: u, client: client, every: every, timeout: jwksFetchTimeout}
}

// keyStore is the jwkset.Storage that keyfunc reads keys from. keyfunc
// calls KeyRead; the rest of the interface comes from an empty set, so
// KeyReadAll, which keyfunc calls for a token with no kid (refused by
// keyFor before), finds no key.
type keyStore struct {
	*jwkset.MemoryJWKSet
	keys *keySet
}

func (k *keySet) storage() jwkset.Storage {
	return keyStore{MemoryJWKSet: jwkset.NewMemoryStorage(), keys: k}
}

func (s keyStore) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	return s.keys.key(ctx, kid)
}

// keyError is why no key could be had for a token.
type keyError struct {
	reason string
	cause  error
}

func (e *keyError) Error() string { return e.reason }
func (e *keyError) Unwrap() error { return e.cause }

// key returns the key of kid: from the keys fetched, or by fetching them
// (again) when the refresh limit allows.
func (k *keySet) key(ctx context.Context, kid string) (jwkset.JWK, error) {
	if jwk, ok := k.lookup(ctx, kid); ok {
		return jwk, nil
	}
	done, err := k.startFetch(ctx)
	if err != nil {
		return jwkset.JWK{}, err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return jwkset.JWK{}, &keyError{reason: "the JWKS fetch did not end in time: " + ctx.Err().Error(), cause: ctx.Err()}
	}
	if jwk, ok := k.lookup(ctx, kid); ok {
		return jwk, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lastErr != nil {
		return jwkset.JWK{}, k.unavailable()
	}
	return jwkset.JWK{}, &keyError{reason: "the token's kid is not in the JWKS"}
}

// lookup reads kid from the keys fetched, without I/O.
func (k *keySet) lookup(ctx context.Context, kid string) (jwkset.JWK, bool) {
	k.mu.Lock()
	cached := k.cached
	k.mu.Unlock()
	if cached == nil {
		return jwkset.JWK{}, false
	}
	jwk, err := cached.KeyRead(ctx, kid)
	return jwk, err == nil
}

// unavailable says why the JWKS cannot be had. Callers hold k.mu.
func (k *keySet) unavailable() error {
	return &keyError{reason: "the JWKS could not be fetched: " + fetchErrorText(k.lastErr), cause: k.lastErr}
}

// startFetch returns the fetch in flight, or starts one when the refresh
// limit allows; else it refuses at once.
func (k *keySet) startFetch(ctx context.Context) (<-chan struct{}, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fetching != nil {
		return k.fetching, nil
	}
	now := time.Now()
	if now.Before(k.next) {
		wait := k.next.Sub(now).Round(time.Second)
		if k.lastErr != nil {
			err := k.unavailable().(*keyError)
			err.reason += fmt.Sprintf("; next try in %v", wait)
			return nil, err
		}
		return nil, &keyError{reason: fmt.Sprintf("the token's kid is not in the JWKS (fetched again no sooner than in %v)", wait)}
	}
	// The first fetch loads the keys and the second is the refresh a new
	// key is owed; after that, one per k.every.
	if k.fetches++; k.fetches >= 2 {
		k.next = now.Add(k.every)
	}
	done := make(chan struct{})
	k.fetching = done
	go k.fetch(context.WithoutCancel(ctx), done)
	return done, nil
}

// fetch fetches the JWKS; the keys it reads replace those before, which
// stay when it fails.
func (k *keySet) fetch(ctx context.Context, done chan struct{}) {
	// A fetch that hangs is given up, or it would hold k.fetching, and
	// with it every later fetch, for good.
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	var fetched jwkset.Storage
	var err error
	defer func() {
		cancel()
		// The user's RoundTripper runs here, on a goroutine of ours: a
		// panic would kill the process, not fail the invocation as it
		// would on the request's goroutine. It fails this fetch instead.
		if r := recover(); r != nil {
			err = fmt.Errorf("the HTTP client panicked: %v", r)
		}
		k.mu.Lock()
		if err == nil {
			k.cached = fetched
		}
		k.lastErr = err
		k.fetching = nil
		k.mu.Unlock()
		close(done)
	}()
	fetched, err = jwkset.NewStorageFromHTTP(k.url, jwkset.HTTPClientStorageOptions{
		Client:      k.client,
		Ctx:         ctx, // no RefreshInterval: no goroutine outlives the fetch
		HTTPTimeout: k.timeout,
	})
}

// fetchErrorText is a fetch's failure in few words: the status, a network
// error or a parse error, without the URL that jwkset and net/http repeat.
func fetchErrorText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return fmt.Sprintf("it is larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, jwkset.ErrInvalidHTTPStatusCode):
		_, status, _ := strings.Cut(err.Error(), jwkset.ErrInvalidHTTPStatusCode.Error()+": ")
		return "status " + status
	}
	return err.Error()
}

// jwksClient is the http.Client of the JWKS fetches from jwksURL: the
// user's Transport and Timeout (or http.DefaultTransport), no cookie jar
// (nothing but a bare GET goes to the JWKS), redirects only within
// jwksURL's origin, and the answer's body bounded.
func jwksClient(jwksURL string, user *http.Client) *http.Client {
	var rt http.RoundTripper = http.DefaultTransport
	hc := &http.Client{}
	if user != nil {
		if user.Transport != nil {
			rt = user.Transport
		}
		hc.Timeout = user.Timeout
	}
	hc.Transport = boundedBody{rt}
	pinned, _ := url.Parse(jwksURL) // checked by checkJWKSURL
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("stopped after 5 redirects")
		}
		// The keys decide what is trusted: whoever answers another
		// origin must not get to choose them.
		if !sameOrigin(req.URL, pinned) {
			return errors.New("refused a redirect to another origin than the JWKS URL's")
		}
		return nil
	}
	return hc
}

// sameOrigin reports whether a and b have the same scheme, host and port
// (the scheme's default when none is given), case aside.
func sameOrigin(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if strings.EqualFold(u.Scheme, "http") {
			return "80"
		}
		return "443"
	}
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

// boundedBody cuts answers off at maxJWKSBytes: jwkset decodes the body
// as it comes, with no bound of its own.
type boundedBody struct{ rt http.RoundTripper }

func (b boundedBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.rt.RoundTrip(req)
	if resp != nil && resp.Body != nil {
		resp.Body = http.MaxBytesReader(nil, resp.Body, maxJWKSBytes)
	}
	return resp, err
}

// checkJWKSURL refuses a JWKS URL that anyone on the path could answer.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.User != nil || u.Fragment != "":
		return invalidInput("WithJWKSURL", "url", "is not an absolute URL without credentials")
	case u.Scheme == "https":
	case u.Scheme == "http" && hosts.Loopback(u.Hostname()):
	default:
		return invalidInput("WithJWKSURL", "url", "must be https:// (or http:// to a loopback host): the keys decide what is trusted")
	}
	return nil
}
