package forge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A fetch that hangs is given up after the keySet's own bound, whatever
// the waiting caller's context allows, and does not hold the fetches after
// it: a key rotated in later is still picked up.
func TestKeySetGivesUpAHangingFetch(t *testing.T) {
	t.Parallel()
	jwk := func(kid string) jwkset.JWKMarshal {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		k, err := jwkset.NewJWKFromKey(priv.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}})
		require.NoError(t, err)
		return k.Marshal()
	}
	var (
		mu      sync.Mutex
		keys    = []jwkset.JWKMarshal{jwk("key-1")}
		hang    bool
		fetches int
	)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetches++
		set, hanging := jwkset.JWKSMarshal{Keys: keys}, hang
		mu.Unlock()
		if hanging {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before srv.Close

	k := newKeySet(srv.URL, jwksClient(srv.URL, nil), time.Nanosecond)
	k.timeout = 50 * time.Millisecond
	// The callers' deadline only keeps a regression from hanging the test.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, err := k.key(ctx, "key-1")
	require.NoError(t, err)

	mu.Lock()
	hang = true
	mu.Unlock()
	_, err = k.key(ctx, "key-2")
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "the caller gave up waiting: the fetch was not")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "the JWKS could not be fetched")

	mu.Lock()
	hang = false
	keys = append(keys, jwk("key-2"))
	mu.Unlock()
	_, err = k.key(ctx, "key-2")
	require.NoError(t, err, "the key rotated in after the hung fetch")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 3, fetches)
}
