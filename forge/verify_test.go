package forge_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/forge"
)

func TestVerifyReadsEveryClaim(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	v := a.verifier(t)
	c := claims()
	exp := time.Unix(c["exp"].(int64), 0)
	sys, usr := forwardedToken(t, "", exp), forwardedToken(t, testUser, exp)

	inv, err := v.Verify(context.Background(), request(a.sign(c), sys, usr))
	require.NoError(t, err)
	assert.Equal(t, testAppARI, inv.AppID)
	assert.Equal(t, "PRODUCTION", inv.EnvironmentType)
	assert.Equal(t, "96b2b0c1-b1e4-4bd0-9b6b-8a1e3e2c5f10", inv.EnvironmentID)
	assert.Equal(t, testInstall, inv.InstallationID)
	assert.Equal(t, testBaseURL, inv.APIBaseURL)
	assert.Equal(t, testCloudID, inv.CloudID)
	assert.Equal(t, "https://example.atlassian.net", inv.SiteURL)
	assert.Equal(t, testUser, inv.Principal)
	assert.Equal(t, "onboard-panel", inv.ModuleKey)
	assert.True(t, inv.Expires.Equal(exp), "Expires %v, want %v", inv.Expires, exp)
	assert.Empty(t, inv.ICLabel)
	assert.Contains(t, inv.String(), "SystemToken: sent")
	assert.Contains(t, inv.String(), "UserToken: sent")
}

func TestVerifyTriggerInvocation(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	v := a.verifier(t)
	c := claims()
	delete(c, "context")
	delete(c, "principal")
	delete(app(c), "installationId") // the older claim alone would do too
	inv, err := v.Verify(context.Background(), request(a.sign(c)))
	require.NoError(t, err)
	assert.Empty(t, inv.Principal)
	assert.Empty(t, inv.SiteURL)
	assert.Equal(t, testCloudID, inv.CloudID, "from app.installation.contexts")
	assert.Equal(t, testInstall, inv.InstallationID)
	assert.Contains(t, inv.String(), "SystemToken: not sent")
}

func TestNewVerifierAcceptsBareUUID(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	v, err := forge.NewVerifier(strings.ToUpper(testAppUUID), forge.WithJWKSURL(a.jwksURL()))
	require.NoError(t, err)
	inv, err := v.Verify(context.Background(), request(a.sign(claims())))
	require.NoError(t, err)
	assert.Equal(t, testAppARI, inv.AppID)
}

func TestNewVerifierRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		appID string
		opt   forge.VerifierOption
		field string
	}{
		{"", nil, "appID"},
		{"my-app", nil, "appID"},
		{"ari:cloud:ecosystem::app/not-a-uuid", nil, "appID"},
		{testAppUUID, forge.WithJWKSURL("http://keys.example.com/jwks.json"), "url"},
		{testAppUUID, forge.WithJWKSURL("https://user:pw@keys.example.com/jwks.json"), "url"},
		{testAppUUID, forge.WithJWKSURL("jwks.json"), "url"},
		{testAppUUID, forge.WithHTTPClient(nil), "hc"},
		{testAppUUID, forge.WithJWKSRefreshLimit(0), "d"},
		{testAppUUID, forge.WithIsolatedCloud(" "), "label"},
	} {
		var opts []forge.VerifierOption
		if tc.opt != nil {
			opts = append(opts, tc.opt)
		}
		_, err := forge.NewVerifier(tc.appID, opts...)
		require.ErrorIs(t, err, servicedesk.ErrInvalidInput, "%q %v", tc.appID, tc.opt)
		assert.Contains(t, err.Error(), tc.field)
	}
}

// Each refusal names its reason, wraps ErrInvalidInvocation, and never
// quotes the token.
func TestVerifyRefusals(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	v := a.verifier(t)
	other := testKey(t, 1)
	now := time.Now()
	valid := a.sign(claims())
	parts := strings.Split(valid, ".")

	for _, tc := range []struct {
		name   string
		token  func() string
		reason string
	}{
		{"wrong aud", func() string {
			c := claims()
			c["aud"] = "ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000"
			return a.sign(c)
		}, "aud is not this app"},
		{"no aud", func() string { c := claims(); delete(c, "aud"); return a.sign(c) }, "has no aud"},
		{"wrong iss", func() string { c := claims(); c["iss"] = "someone/else"; return a.sign(c) }, "iss is not forge/invocation-token"},
		{"no iss", func() string { c := claims(); delete(c, "iss"); return a.sign(c) }, "has no iss"},
		{"expired", func() string {
			c := claims()
			c["exp"] = now.Add(-2 * time.Minute).Unix()
			c["iat"], c["nbf"] = now.Add(-7*time.Minute).Unix(), now.Add(-7*time.Minute).Unix()
			return a.sign(c)
		}, "expired"},
		{"future nbf", func() string { c := claims(); c["nbf"] = now.Add(2 * time.Minute).Unix(); return a.sign(c) }, "not valid yet"},
		{"future iat", func() string { c := claims(); c["iat"] = now.Add(2 * time.Minute).Unix(); return a.sign(c) }, "issued in the future"},
		{"missing exp", func() string { c := claims(); delete(c, "exp"); return a.sign(c) }, "has no exp"},
		{"missing nbf", func() string { c := claims(); delete(c, "nbf"); return a.sign(c) }, "has no nbf"},
		{"missing iat", func() string { c := claims(); delete(c, "iat"); return a.sign(c) }, "has no iat"},
		{"alg none", func() string {
			s, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
			require.NoError(t, err)
			return s
		}, "not signed RS256"},
		{"HS256 with the public key as secret", func() string {
			pem := a.signer.priv.PublicKey.N.Bytes()
			return signWith(t, jwt.SigningMethodHS256, a.signer.kid, pem, claims())
		}, "not signed RS256"},
		{"RS512", func() string { return signWith(t, jwt.SigningMethodRS512, a.signer.kid, a.signer.priv, claims()) }, "not signed RS256"},
		{"unknown kid", func() string { return signWith(t, jwt.SigningMethodRS256, "forge/unknown", other, claims()) }, "kid is not in the JWKS"},
		{"no kid", func() string { return signWith(t, jwt.SigningMethodRS256, "", a.signer.priv, claims()) }, "names no key"},
		{"another key with the same kid", func() string {
			return signWith(t, jwt.SigningMethodRS256, a.signer.kid, other, claims())
		}, "signature does not verify"},
		{"tampered payload", func() string {
			c := claims()
			c["principal"] = "someone-else"
			forged := strings.Split(signWith(t, jwt.SigningMethodRS256, a.signer.kid, other, c), ".")
			return parts[0] + "." + forged[1] + "." + parts[2]
		}, "signature does not verify"},
		{"truncated signature", func() string { return valid[:len(valid)-4] }, ""},
		{"app.id is not aud", func() string {
			c := claims()
			app(c)["id"] = "ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000"
			return a.sign(c)
		}, "app.id is not its aud"},
		{"http apiBaseUrl", func() string {
			c := claims()
			app(c)["apiBaseUrl"] = "http://api.atlassian.com/ex/jira/x"
			return a.sign(c)
		}, "not https"},
		{"loopback apiBaseUrl without the option", func() string {
			c := claims()
			app(c)["apiBaseUrl"] = "http://127.0.0.1:8080/ex/jira/x"
			return a.sign(c)
		}, "WithLoopbackAPIBaseURL"},
		{"no apiBaseUrl", func() string { c := claims(); delete(app(c), "apiBaseUrl"); return a.sign(c) }, "no app.apiBaseUrl"},
		{"apiBaseUrl with a query", func() string { c := claims(); app(c)["apiBaseUrl"] = testBaseURL + "?x=1"; return a.sign(c) }, "not a base URL"},
		{"installation ids differ", func() string {
			c := claims()
			app(c)["installationId"] = "ari:cloud:ecosystem::installation/other"
			return a.sign(c)
		}, "installationId and app.installation.id differ"},
		{"no installation id", func() string {
			c := claims()
			delete(app(c), "installationId")
			delete(app(c), "installation")
			return a.sign(c)
		}, "no app.installationId"},
		{"icLabel", func() string { c := claims(); c["icLabel"] = "acme-ic"; return a.sign(c) }, "Isolated Cloud"},
		{"claims of the wrong type", func() string { c := claims(); c["app"] = "not an object"; return a.sign(c) }, "not a well-formed JWT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token()
			_, err := v.Verify(context.Background(), request(tok))
			require.ErrorIs(t, err, forge.ErrInvalidInvocation)
			assert.Contains(t, err.Error(), tc.reason)
			assert.NotContains(t, err.Error(), tok)
			for _, part := range strings.Split(tok, ".") {
				if len(part) > 8 {
					assert.NotContains(t, err.Error(), part)
				}
			}
		})
	}
}

func TestVerifyRefusesBadHeaders(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	v := a.verifier(t)
	fit := a.sign(claims())
	for _, tc := range []struct {
		name   string
		header http.Header
		reason string
	}{
		{"none", http.Header{}, "no Authorization header"},
		{"two", http.Header{"Authorization": {"Bearer " + fit, "Bearer " + fit}}, "more than one Authorization"},
		{"basic", http.Header{"Authorization": {"Basic " + fit}}, "not a Bearer token"},
		{"no space", http.Header{"Authorization": {"Bearer" + fit}}, "not a Bearer token"},
		{"two spaces", http.Header{"Authorization": {"Bearer  " + fit}}, "has spaces"},
		{"too large", http.Header{"Authorization": {"Bearer " + strings.Repeat("a", forge.MaxFITBytes)}}, "larger than 65536 bytes"},
		{"two system tokens", http.Header{"Authorization": {"Bearer " + fit}, "X-Forge-Oauth-System": {"a", "b"}}, "more than one x-forge-oauth-system"},
		{"huge user token", http.Header{"Authorization": {"Bearer " + fit}, "X-Forge-Oauth-User": {strings.Repeat("a", forge.MaxTokenBytes+1)}}, "x-forge-oauth-user header is larger"},
	} {
		r := request("")
		r.Header = tc.header
		_, err := v.Verify(context.Background(), r)
		require.ErrorIs(t, err, forge.ErrInvalidInvocation, tc.name)
		assert.Contains(t, err.Error(), tc.reason, tc.name)
		assert.NotContains(t, err.Error(), fit, tc.name)
	}
	// "bearer" in any case is the same scheme.
	r := request("")
	r.Header.Set("Authorization", "bearer "+fit)
	_, err := v.Verify(context.Background(), r)
	require.NoError(t, err)

	_, err = v.Verify(context.Background(), nil)
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
	//lint:ignore SA1012 the nil context is the subject
	_, err = v.Verify(nil, request(fit)) //nolint:staticcheck
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
}

func TestVerifyOptIns(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)

	c := claims()
	app(c)["apiBaseUrl"] = "http://127.0.0.1:8080/ex/jira/" + testCloudID
	inv, err := a.verifier(t, forge.WithLoopbackAPIBaseURL()).Verify(context.Background(), request(a.sign(c)))
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:8080/ex/jira/"+testCloudID, inv.APIBaseURL)
	c = claims()
	app(c)["apiBaseUrl"] = "http://api.example.com/ex/jira/" + testCloudID
	_, err = a.verifier(t, forge.WithLoopbackAPIBaseURL()).Verify(context.Background(), request(a.sign(c)))
	require.ErrorIs(t, err, forge.ErrInvalidInvocation, "only loopback is let through")

	c = claims()
	c["icLabel"] = "acme-ic"
	inv, err = a.verifier(t, forge.WithIsolatedCloud("acme-ic")).Verify(context.Background(), request(a.sign(c)))
	require.NoError(t, err)
	assert.Equal(t, "acme-ic", inv.ICLabel)
	_, err = a.verifier(t, forge.WithIsolatedCloud("other-ic")).Verify(context.Background(), request(a.sign(c)))
	require.ErrorIs(t, err, forge.ErrInvalidInvocation)
	c["icLabel"] = nil // null: Atlassian's commercial cloud, as when absent
	inv, err = a.verifier(t).Verify(context.Background(), request(a.sign(c)))
	require.NoError(t, err)
	assert.Empty(t, inv.ICLabel)
	c["icLabel"] = 7
	_, err = a.verifier(t, forge.WithIsolatedCloud("7")).Verify(context.Background(), request(a.sign(c)))
	require.ErrorIs(t, err, forge.ErrInvalidInvocation, "an icLabel that is not a string")
}

// Clock skew of up to a minute either way is forgiven.
func TestVerifyClockSkew(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	v := a.verifier(t)
	now := time.Now()
	c := claims()
	c["iat"], c["nbf"] = now.Add(50*time.Second).Unix(), now.Add(50*time.Second).Unix()
	_, err := v.Verify(context.Background(), request(a.sign(c)))
	require.NoError(t, err, "issued 50 s ahead of this clock")
	c = claims()
	c["exp"] = now.Add(-50 * time.Second).Unix()
	c["iat"], c["nbf"] = now.Add(-5*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
	_, err = v.Verify(context.Background(), request(a.sign(c)))
	require.NoError(t, err, "expired 50 s ago by this clock")
	c["exp"] = now.Add(-70 * time.Second).Unix()
	_, err = v.Verify(context.Background(), request(a.sign(c)))
	require.ErrorIs(t, err, jwt.ErrTokenExpired, "the JWT library's sentinel is wrapped too")
	require.True(t, errors.Is(err, forge.ErrInvalidInvocation))
}

// The key a kid picks is checked too: an RSA key of at least 2048 bits,
// and not one the JWKS marks for encryption ("use": "enc").
func TestVerifyChecksTheKeyOfTheKid(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	big2048 := testKey(t, 1)
	jwk := func(kid, use string, k *rsa.PrivateKey) map[string]string {
		return map[string]string{"kty": "RSA", "alg": "RS256", "use": use, "kid": kid,
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{
			jwk("forge/small", "sig", small),
			jwk("forge/enc", "enc", big2048),
		}})
	}))
	t.Cleanup(srv.Close)
	v, err := forge.NewVerifier(testAppARI, forge.WithJWKSURL(srv.URL))
	require.NoError(t, err)

	for _, tc := range []struct {
		kid    string
		key    *rsa.PrivateKey
		reason string
	}{
		{"forge/small", small, "not an RSA key of at least 2048 bits"},
		{"forge/enc", big2048, "does not sign RS256"},
	} {
		_, err := v.Verify(context.Background(), request(signWith(t, jwtRS256, tc.kid, tc.key, claims())))
		require.ErrorIs(t, err, forge.ErrInvalidInvocation, tc.kid)
		assert.Contains(t, err.Error(), tc.reason, tc.kid)
	}
}

// One text, one token: a signature spelled with stray bits in its last
// base64 character (which decodes to the same bytes when decoding is lax)
// is not the FIT Atlassian signed.
func TestVerifyRefusesASignatureWithStrayBits(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	v := a.verifier(t)
	valid := a.sign(claims())
	_, err := v.Verify(context.Background(), request(valid))
	require.NoError(t, err)

	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	// A 2048-bit signature is 256 bytes: 342 characters, the last of which
	// carries 2 bits and 4 that must be zero.
	last := strings.IndexByte(alphabet, valid[len(valid)-1])
	respelled := valid[:len(valid)-1] + string(alphabet[last|1])
	require.NotEqual(t, valid, respelled)
	_, err = v.Verify(context.Background(), request(respelled))
	require.ErrorIs(t, err, forge.ErrInvalidInvocation, "a second spelling of the signature was accepted")
}
