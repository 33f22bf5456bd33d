package forge_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk/forge"
)

// NewVerifier does no I/O; the first invocation fetches the JWKS, and the
// many after it use what was fetched.
func TestJWKSFetchedOnceForManyVerifications(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	v := a.verifier(t)
	require.Zero(t, a.fetches.Load(), "NewVerifier fetched the JWKS")

	fit := a.sign(claims())
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				_, err := v.Verify(context.Background(), request(fit))
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), a.fetches.Load(), "JWKS fetches for 200 verifications")
}

// A key Atlassian rotated in is accepted at its first use; then a flood of
// unknown kids does not make the verifier hammer the JWKS.
func TestJWKSRotationAndFlood(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	v := a.verifier(t)
	_, err := v.Verify(context.Background(), request(a.sign(claims())))
	require.NoError(t, err)
	require.Equal(t, int32(1), a.fetches.Load())

	a.rotate("forge/key-2", testKey(t, 1))
	inv, err := v.Verify(context.Background(), request(a.sign(claims())))
	require.NoError(t, err, "the rotated key at its first use")
	require.NotNil(t, inv)
	require.Equal(t, int32(2), a.fetches.Load())

	forger := testKey(t, 2)
	for i := range 50 {
		fit := signWith(t, jwtRS256, "forge/forged-"+string(rune('a'+i%26)), forger, claims())
		_, err := v.Verify(context.Background(), request(fit))
		require.ErrorIs(t, err, forge.ErrInvalidInvocation)
		assert.Contains(t, err.Error(), "kid is not in the JWKS")
	}
	assert.Equal(t, int32(2), a.fetches.Load(), "JWKS fetches after 50 unknown kids")

	// Both keys still verify.
	_, err = v.Verify(context.Background(), request(signWith(t, jwtRS256, "forge/key-1", testKey(t, 0), claims())))
	require.NoError(t, err)
}

// Past the refresh limit, an unknown kid fetches the JWKS again.
func TestJWKSRefreshLimit(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	v := a.verifier(t, forge.WithJWKSRefreshLimit(50*time.Millisecond))
	_, err := v.Verify(context.Background(), request(a.sign(claims())))
	require.NoError(t, err)
	unknown := signWith(t, jwtRS256, "forge/later", testKey(t, 1), claims())
	_, err = v.Verify(context.Background(), request(unknown))
	require.ErrorIs(t, err, forge.ErrInvalidInvocation)
	require.Equal(t, int32(2), a.fetches.Load())

	a.rotate("forge/later", testKey(t, 1))
	_, err = v.Verify(context.Background(), request(unknown))
	require.Error(t, err, "within the limit: not fetched again")
	require.Equal(t, int32(2), a.fetches.Load())
	require.Eventually(t, func() bool {
		_, err = v.Verify(context.Background(), request(unknown))
		return err == nil
	}, 5*time.Second, 20*time.Millisecond, "after the limit: fetched again, and accepted")
	assert.Equal(t, int32(3), a.fetches.Load())
}

// A backend starts while the JWKS is down, refuses invocations saying why,
// and accepts them once the JWKS can be had.
func TestJWKSDownThenUp(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	a.fail(http.StatusServiceUnavailable)
	v := a.verifier(t, forge.WithJWKSRefreshLimit(50*time.Millisecond))
	fit := a.sign(claims())
	_, err := v.Verify(context.Background(), request(fit))
	require.ErrorIs(t, err, forge.ErrInvalidInvocation)
	assert.Contains(t, err.Error(), "the JWKS could not be fetched: status 503")
	assert.NotContains(t, err.Error(), a.srv.URL)

	for range 20 {
		_, err = v.Verify(context.Background(), request(fit))
		require.ErrorIs(t, err, forge.ErrInvalidInvocation)
	}
	assert.LessOrEqual(t, a.fetches.Load(), int32(3), "a JWKS that is down is not hammered")

	a.fail(0)
	require.Eventually(t, func() bool {
		_, err = v.Verify(context.Background(), request(fit))
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
}

// A refresh that fails leaves the keys fetched before in use, and says
// why the unknown kid is refused.
func TestJWKSFailedRefreshKeepsTheKeys(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	v := a.verifier(t)
	fit := a.sign(claims())
	_, err := v.Verify(context.Background(), request(fit))
	require.NoError(t, err)

	a.fail(http.StatusBadGateway)
	_, err = v.Verify(context.Background(), request(signWith(t, jwtRS256, "forge/key-2", testKey(t, 1), claims())))
	require.ErrorIs(t, err, forge.ErrInvalidInvocation)
	assert.Contains(t, err.Error(), "the JWKS could not be fetched: status 502")
	require.Equal(t, int32(2), a.fetches.Load())

	_, err = v.Verify(context.Background(), request(fit))
	require.NoError(t, err, "the key fetched before the failed refresh")
}

// A JWKS that never answers holds an invocation only as long as its
// context allows.
func TestJWKSHangingIsBoundedByContext(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	a.hangUntilCleanup()
	v := a.verifier(t)
	fit := a.sign(claims())

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := v.Verify(ctx, request(fit))
		done <- err
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, forge.ErrInvalidInvocation)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "the JWKS fetch did not end in time")
	case <-time.After(5 * time.Second):
		t.Fatal("Verify is still waiting for the JWKS past its context's deadline")
	}
	// Another invocation meanwhile waits for the same fetch, not a second.
	_, err := v.Verify(ctxTimeout(t, 50*time.Millisecond), request(fit))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, int32(1), a.fetches.Load())
}

// The JWKS gets a bare GET: no credentials, no cookies from the user's
// client's jar, over the user's transport.
func TestJWKSFetchCarriesNoCredentials(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	u, _ := url.Parse(a.srv.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: "secret-session"}})
	var used bool
	hc := &http.Client{Jar: jar, Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		used = true
		return http.DefaultTransport.RoundTrip(r)
	})}
	v := a.verifier(t, forge.WithHTTPClient(hc))
	_, err = v.Verify(context.Background(), request(a.sign(claims())))
	require.NoError(t, err)
	require.True(t, used, "the user's transport carried the fetch")
	a.mu.Lock()
	defer a.mu.Unlock()
	require.Len(t, a.headers, 1)
	assert.Empty(t, a.headers[0].Get("Authorization"))
	assert.Empty(t, a.headers[0].Get("Cookie"))
}

// A JWKS larger than any real one is not read to its end.
func TestJWKSBodyIsBounded(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	hc := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		body := `{"keys":[` + strings.Repeat(`{"kty":"RSA","n":"AQAB","e":"AQAB"},`, 100_000) + `]}`
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: ioNopCloser(body), Request: r}, nil
	})}
	v := a.verifier(t, forge.WithHTTPClient(hc))
	_, err := v.Verify(context.Background(), request(a.sign(claims())))
	require.ErrorIs(t, err, forge.ErrInvalidInvocation)
	assert.Contains(t, err.Error(), "larger than 1048576 bytes")
	var maxErr *http.MaxBytesError
	assert.True(t, errors.As(err, &maxErr))
}

// The keys decide what is trusted, and WithJWKSURL says where they come
// from: a redirect from that URL to another origin must not be followed,
// or whoever answers the other origin chooses the keys.
func TestJWKSRedirectToAnotherOriginIsRefused(t *testing.T) {
	t.Parallel()
	// Another origin that publishes its own key under the kid Atlassian uses.
	other := newAtlassian(t)
	other.mu.Lock()
	other.signer = keyPair{kid: "forge/key-1", priv: testKey(t, 2)}
	other.keys = []keyPair{other.signer}
	other.mu.Unlock()

	// The configured JWKS URL answers with a redirect to it.
	configured := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.jwksURL(), http.StatusFound)
	}))
	t.Cleanup(configured.Close)

	v, err := forge.NewVerifier(testAppARI, forge.WithJWKSURL(configured.URL+"/.well-known/jwks.json"))
	require.NoError(t, err)
	forged := other.sign(claims()) // signed with the other origin's key
	inv, err := v.Verify(context.Background(), request(forged))
	require.ErrorIs(t, err, forge.ErrInvalidInvocation,
		"a FIT signed with keys from %s was accepted: %v", other.srv.URL, inv)
	assert.Contains(t, err.Error(), "another origin")
	require.Zero(t, other.fetches.Load(), "the other origin was asked for the keys")
}

// A redirect within the JWKS URL's origin (host spelled in another case)
// is followed.
func TestJWKSRedirectWithinTheOriginIsFollowed(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/old/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		_, port, _ := net.SplitHostPort(r.Host)
		http.Redirect(w, r, "http://LOCALHOST:"+port+"/new/jwks.json", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/new/jwks.json", a.serveJWKS)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)

	v, err := forge.NewVerifier(testAppARI, forge.WithJWKSURL("http://localhost:"+u.Port()+"/old/jwks.json"))
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), request(a.sign(claims())))
	require.NoError(t, err)
	assert.Equal(t, int32(1), a.fetches.Load())
}
