package forge_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
