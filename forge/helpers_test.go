package forge_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk/forge"
)

const (
	testAppUUID = "406d303d-0393-4ec4-ad7c-1435be94583a"
	testAppARI  = "ari:cloud:ecosystem::app/" + testAppUUID
	testInstall = "ari:cloud:ecosystem::installation/c3658f0f-8380-41e5-bb1e-68903f8efdca"
	testCloudID = "a436116f-02ce-4520-8fbb-7301462a1674"
	testBaseURL = "https://api.atlassian.com/ex/jira/" + testCloudID
	testUser    = "5b10a2844c20165700ede21g"
)

// keyPair is a signing key and the kid the JWKS names it by.
type keyPair struct {
	kid  string
	priv *rsa.PrivateKey
}

// Keys are expensive to make under the race detector: the tests share a
// few.
var (
	keysOnce sync.Once
	keys     [3]*rsa.PrivateKey
)

func testKey(t testing.TB, i int) *rsa.PrivateKey {
	keysOnce.Do(func() {
		for j := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[j] = k
		}
	})
	return keys[i]
}

// atlassian plays Atlassian's side for the tests of this package: a JWKS
// (whose fetches it counts, and which can be made to fail or hang) and
// FITs with any claims.
type atlassian struct {
	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	keys    []keyPair // published
	signer  keyPair   // signs FITs
	status  int       // answered instead of the JWKS, when not 0
	hang    chan struct{}
	fetches atomic.Int32
	headers []http.Header // of each JWKS request
}

func newAtlassian(t testing.TB) *atlassian {
	a := &atlassian{t: t}
	a.signer = keyPair{kid: "forge/key-1", priv: testKey(t, 0)}
	a.keys = []keyPair{a.signer}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serveJWKS))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *atlassian) jwksURL() string { return a.srv.URL + "/.well-known/jwks.json" }

func (a *atlassian) serveJWKS(w http.ResponseWriter, r *http.Request) {
	a.fetches.Add(1)
	a.mu.Lock()
	a.headers = append(a.headers, r.Header.Clone())
	status, hang := a.status, a.hang
	var set []map[string]string
	for _, k := range a.keys {
		set = append(set, map[string]string{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": k.kid,
			"n": base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes()),
		})
	}
	a.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return
	}
	if status != 0 {
		http.Error(w, "down", status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
}

// rotate publishes a new key and signs with it from now on.
func (a *atlassian) rotate(kid string, priv *rsa.PrivateKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.signer = keyPair{kid: kid, priv: priv}
	a.keys = append(a.keys, a.signer)
}

// fail makes the JWKS answer status (0: answer again).
func (a *atlassian) fail(status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status = status
}

// hangUntilCleanup makes the JWKS never answer, until the test ends.
func (a *atlassian) hangUntilCleanup() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hang = make(chan struct{})
	hang := a.hang
	a.t.Cleanup(func() { close(hang) }) // runs before srv.Close, registered earlier
}

// claims are a valid FIT's, as Forge sends for a UI call.
func claims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": "forge/invocation-token",
		"aud": testAppARI,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
		"jti": "e3b0c442-98fc-1c14-9afb-f4c8996fb924",
		"app": map[string]any{
			"id":             testAppARI,
			"version":        "3.1.0",
			"installationId": testInstall,
			"apiBaseUrl":     testBaseURL,
			"environment":    map[string]any{"type": "PRODUCTION", "id": "96b2b0c1-b1e4-4bd0-9b6b-8a1e3e2c5f10"},
			"module":         map[string]any{"type": "xen:macro", "key": "onboard-panel"},
			"installation": map[string]any{
				"id":       testInstall,
				"contexts": []any{map[string]any{"name": "jira", "cloudId": testCloudID, "apiBaseUrl": testBaseURL}},
			},
		},
		"context":   map[string]any{"cloudId": testCloudID, "siteUrl": "https://example.atlassian.net", "extension": map[string]any{"type": "jira:issuePanel"}},
		"principal": testUser,
	}
}

// app returns the "app" claim of c, to change it.
func app(c jwt.MapClaims) map[string]any { return c["app"].(map[string]any) }

// sign signs c as Atlassian does: RS256 with the current key, its kid in
// the header.
func (a *atlassian) sign(c jwt.MapClaims) string {
	a.mu.Lock()
	k := a.signer
	a.mu.Unlock()
	return signWith(a.t, jwt.SigningMethodRS256, k.kid, k.priv, c)
}

func signWith(t testing.TB, m jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// request is an invocation carrying fit and the tokens given.
func request(fit string, tokens ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "https://remote.example.com/onboard", nil)
	if fit != "" {
		r.Header.Set("Authorization", "Bearer "+fit)
	}
	if len(tokens) > 0 && tokens[0] != "" {
		r.Header.Set("x-forge-oauth-system", tokens[0])
	}
	if len(tokens) > 1 && tokens[1] != "" {
		r.Header.Set("x-forge-oauth-user", tokens[1])
	}
	return r
}

// forwardedToken is a token as Forge forwards them: a JWT whose exp says
// when it expires.
func forwardedToken(t testing.TB, sub string, exp time.Time) string {
	return signWith(t, jwt.SigningMethodHS256, "", []byte("not-the-fit-key"), jwt.MapClaims{"sub": sub, "exp": exp.Unix()})
}

func (a *atlassian) verifier(t testing.TB, opts ...forge.VerifierOption) *forge.Verifier {
	v, err := forge.NewVerifier(testAppARI, append([]forge.VerifierOption{forge.WithJWKSURL(a.jwksURL())}, opts...)...)
	require.NoError(t, err)
	return v
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var jwtRS256 = jwt.SigningMethodRS256

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func ioNopCloser(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }
