package forge_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk/forge"
)

func TestMiddleware(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	var logs bytes.Buffer
	v := a.verifier(t, forge.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	var got *forge.Invocation
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, ok := forge.FromContext(r.Context())
		require.True(t, ok)
		got = inv
		w.WriteHeader(http.StatusNoContent)
	}))

	sys := forwardedToken(t, "", time.Now().Add(time.Minute))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request(a.sign(claims()), sys))
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.NotNil(t, got)
	assert.Equal(t, testUser, got.Principal)
	assert.Empty(t, logs.String(), "nothing logged for a good invocation")

	got = nil
	c := claims()
	c["aud"] = "ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000"
	bad := a.sign(c)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, request(bad, sys))
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	assert.Nil(t, got, "the handler was not called")
	body, _ := io.ReadAll(rec.Body)
	assert.Contains(t, string(body), "aud is not this app")
	assert.Contains(t, rec.Header().Get("WWW-Authenticate"), "invalid_token")
	for _, out := range []string{string(body), logs.String()} {
		assert.NotContains(t, out, bad)
		assert.NotContains(t, out, sys)
	}
	assert.Contains(t, logs.String(), "forge: invocation refused")
	assert.Contains(t, logs.String(), "aud is not this app")

	_, ok := forge.FromContext(context.Background())
	assert.False(t, ok)
}

// The JWKS fetch runs the user's RoundTripper (WithHTTPClient) on a
// goroutine the Verifier starts: a panic there would not reach the
// request's goroutine, where net/http's server recovers it and fails one
// request; it would kill the whole backend. It fails the invocation that
// waits for the fetch instead. The backend runs in a child process, which
// the panic kills when it is not recovered.
func TestPanickingJWKSTransportDoesNotKillTheProcess(t *testing.T) {
	if os.Getenv("FORGE_TEST_PANICKING_TRANSPORT") == "1" {
		a := newAtlassian(t)
		hc := &http.Client{Transport: roundTripper(func(*http.Request) (*http.Response, error) {
			panic("instrumentation bug")
		})}
		v := a.verifier(t, forge.WithHTTPClient(hc))
		backend := httptest.NewServer(v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
		defer backend.Close()
		req, err := http.NewRequest(http.MethodPost, backend.URL, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+a.sign(claims()))
		resp, err := backend.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, string(body), "the JWKS could not be fetched: the HTTP client panicked: instrumentation bug")
		return // the backend survived: a request failed, the process did not
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPanickingJWKSTransportDoesNotKillTheProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FORGE_TEST_PANICKING_TRANSPORT=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the backend process died:\n%.600s", out)
}
