package servicedesk_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/servicedesk-go/servicedesk"
)

func TestTokenSourceRefreshes(t *testing.T) {
	t.Parallel()
	var grants atomic.Int32
	var form url.Values
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		grants.Add(1)
		require.NoError(t, r.ParseForm())
		form = r.PostForm
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"fresh-1","token_type":"Bearer","expires_in":3600,"refresh_token":"r2"}`))
	}))
	t.Cleanup(tokenSrv.Close)

	conf := &oauth2.Config{ClientID: "cid", ClientSecret: "csecret", Endpoint: oauth2.Endpoint{TokenURL: tokenSrv.URL, AuthStyle: oauth2.AuthStyleInParams}}
	ts := conf.TokenSource(context.Background(), &oauth2.Token{AccessToken: "stale", RefreshToken: "r1", Expiry: time.Now().Add(-time.Hour)})
	c, w := mockClient(t, servicedesk.CloudGatewayURL("cloud-1"), []reply{{status: 204}}, servicedesk.WithTokenSource(ts))

	for i := 0; i < 2; i++ {
		require.NoError(t, c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}}))
	}
	assert.Equal(t, int32(1), grants.Load(), "refreshed once, then reused")
	assert.Equal(t, "refresh_token", form.Get("grant_type"))
	assert.Equal(t, "r1", form.Get("refresh_token"))
	for _, s := range w.all() {
		assert.Equal(t, "Bearer fresh-1", s.Header.Get("Authorization"))
		assert.Equal(t, "/ex/jira/cloud-1/rest/servicedeskapi/servicedesk/1/customer", s.Path)
	}
}

type failingSource struct{}

func (failingSource) Token() (*oauth2.Token, error) { return nil, errors.New("refresh token revoked") }

func TestTokenSourceFailureSendsNothing(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://api.atlassian.com/ex/jira/x", []reply{{status: 204}}, servicedesk.WithTokenSource(failingSource{}))
	err := c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "refresh token revoked")
	assert.Empty(t, w.all(), "no request without credentials, and no retry")
}

func TestAccessibleResources(t *testing.T) {
	t.Parallel()
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if r.URL.Path != "/oauth/token/accessible-resources" {
			w.WriteHeader(404)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`[{"id":"1324a887-45db-1bf4-1e99-ef0ff456d421","url":"https://your-domain.atlassian.net","name":"your-domain","scopes":["manage:servicedesk-customer","offline_access"],"avatarUrl":"https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/flag.png"}]`))
	}))
	t.Cleanup(srv.Close)
	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "at-1"})

	res, err := servicedesk.AccessibleResources(context.Background(), ts, &servicedesk.AccessibleResourcesOptions{URL: srv.URL + "/oauth/token/accessible-resources"})
	require.NoError(t, err)
	assert.Equal(t, "Bearer at-1", auth)
	require.Len(t, res, 1)
	assert.Equal(t, servicedesk.Resource{
		ID: "1324a887-45db-1bf4-1e99-ef0ff456d421", URL: "https://your-domain.atlassian.net", Name: "your-domain",
		Scopes:    []string{"manage:servicedesk-customer", "offline_access"},
		AvatarURL: "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/flag.png",
	}, res[0])
	assert.Equal(t, "https://api.atlassian.com/ex/jira/"+res[0].ID, servicedesk.CloudGatewayURL(res[0].ID))

	_, err = servicedesk.AccessibleResources(context.Background(), ts, &servicedesk.AccessibleResourcesOptions{URL: srv.URL + "/elsewhere"})
	assert.ErrorIs(t, err, servicedesk.ErrNotFound)
}

// connectServer checks every Connect JWT it receives on its own: signature,
// claims, and a qsh recomputed from a canonical request the test spells out.
type connectServer struct {
	t       *testing.T
	secret  string
	mu      sync.Mutex
	claims  []jwt.MapClaims
	answers []int
}

func (s *connectServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "JWT ")
	require.True(s.t, ok, "Authorization: JWT <token>")
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(s.secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	require.NoError(s.t, err)
	s.mu.Lock()
	s.claims = append(s.claims, claims)
	status := 200
	if len(s.answers) > 0 {
		status, s.answers = s.answers[0], s.answers[1:]
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if r.URL.Query().Get("start") == "" {
		_, _ = w.Write([]byte(`{"start":0,"size":2,"limit":2,"isLastPage":false,"values":[{"accountId":"a"},{"accountId":"b"}],
			"_links":{"base":"https://site.example/jira/rest/servicedeskapi","next":"https://site.example/jira/rest/servicedeskapi/servicedesk/1/customer?limit=2&query=a%20b*c~d%26e%3Df%C3%A9&start=2"}}`))
		return
	}
	_, _ = w.Write([]byte(`{"start":2,"size":1,"limit":2,"isLastPage":true,"values":[{"accountId":"c"}]}`))
}

func qsh(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(sum[:])
}

func TestConnectJWT(t *testing.T) {
	t.Parallel()
	s := &connectServer{t: t, secret: "install-secret", answers: []int{503}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL+"/jira", servicedesk.WithConnectJWT("com.example.app", "install-secret"),
		servicedesk.WithRetryWait(time.Millisecond, time.Millisecond))
	require.NoError(t, err)

	var got []string
	for cust, err := range c.Customers.All(context.Background(), "1", &servicedesk.ListCustomersOptions{Query: "a b*c~d&e=fé", Limit: 2}) {
		require.NoError(t, err)
		got = append(got, cust.AccountID)
	}
	assert.Equal(t, []string{"a", "b", "c"}, got)

	// The context path is not part of the canonical path; the query is
	// sorted and RFC 3986-encoded (space %20, * %2A, ~ kept, & and = escaped).
	first := qsh("GET&/rest/servicedeskapi/servicedesk/1/customer&limit=2&query=a%20b%2Ac~d%26e%3Df%C3%A9")
	second := qsh("GET&/rest/servicedeskapi/servicedesk/1/customer&limit=2&query=a%20b%2Ac~d%26e%3Df%C3%A9&start=2")
	require.Len(t, s.claims, 3, "a 503, its retry, the second page")
	for i, want := range []string{first, first, second} {
		cl := s.claims[i]
		assert.Equal(t, want, cl["qsh"], "request %d", i)
		assert.Equal(t, "com.example.app", cl["iss"])
		iat, exp := cl["iat"].(float64), cl["exp"].(float64)
		assert.InDelta(t, float64(time.Now().Unix()), iat, 5)
		assert.InDelta(t, 180, exp-iat, 1, "valid a few minutes")
	}
}

func TestConnectCannotRemove(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 204}}, servicedesk.WithConnectJWT("app", "secret"))
	err := c.Customers.Remove(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
	require.ErrorIs(t, err, servicedesk.ErrForbidden)
	assert.Contains(t, err.Error(), "Connect apps cannot remove customers")
	assert.Empty(t, w.all())
	require.NoError(t, c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}}))
}

func TestConnectUserTokenSource(t *testing.T) {
	t.Parallel()
	var grants atomic.Int32
	expiresIn := atomic.Int32{}
	expiresIn.Store(900)
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := grants.Add(1)
		require.NoError(t, r.ParseForm())
		assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
		assert.Equal(t, "urn:ietf:params:oauth:grant-type:jwt-bearer", r.PostForm.Get("grant_type"))
		assert.Equal(t, "READ WRITE", r.PostForm.Get("scope"))
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(*jwt.Token) (any, error) { return []byte("install-secret"), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
			jwt.WithAudience("https://oauth-2-authorization-server.services.atlassian.com"))
		require.NoError(t, err)
		assert.Equal(t, "urn:atlassian:connect:clientid:oauth-client-1", claims["iss"])
		assert.Equal(t, "urn:atlassian:connect:useraccountid:user-42", claims["sub"])
		assert.Equal(t, "https://your-domain.atlassian.net", claims["tnt"])
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "user-token-" + string(rune('0'+n)), "token_type": "Bearer", "expires_in": expiresIn.Load()})
	}))
	t.Cleanup(tokenSrv.Close)

	cfg := servicedesk.ConnectUserConfig{
		OAuthClientID: "oauth-client-1", SharedSecret: "install-secret", BaseURL: "https://your-domain.atlassian.net",
		AccountID: "user-42", Scopes: []string{"READ", "WRITE"}, TokenURL: tokenSrv.URL,
	}
	ts, err := servicedesk.ConnectUserTokenSource(cfg)
	require.NoError(t, err)
	c, w := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 204}}, servicedesk.WithTokenSource(ts))
	for i := 0; i < 3; i++ {
		require.NoError(t, c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}}))
	}
	assert.Equal(t, int32(1), grants.Load(), "the token is cached while valid")
	for _, s := range w.all() {
		assert.Equal(t, "Bearer user-token-1", s.Header.Get("Authorization"))
	}

	// A token that expires within the renewal margin is fetched again.
	expiresIn.Store(30)
	ts2, err := servicedesk.ConnectUserTokenSource(cfg)
	require.NoError(t, err)
	t1, err := ts2.Token()
	require.NoError(t, err)
	t2, err := ts2.Token()
	require.NoError(t, err)
	assert.NotEqual(t, t1.AccessToken, t2.AccessToken)
	assert.Equal(t, int32(3), grants.Load())

	_, err = servicedesk.ConnectUserTokenSource(servicedesk.ConnectUserConfig{OAuthClientID: "x", SharedSecret: "y", BaseURL: "z"})
	assert.ErrorIs(t, err, servicedesk.ErrInvalidInput)
	assert.Contains(t, err.Error(), "AccountID")
}

func TestConnectUserTokenSourceRefused(t *testing.T) {
	t.Parallel()
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"bad assertion"}`))
	}))
	t.Cleanup(tokenSrv.Close)
	ts, err := servicedesk.ConnectUserTokenSource(servicedesk.ConnectUserConfig{
		OAuthClientID: "c", SharedSecret: "very-secret-value", BaseURL: "https://x.atlassian.net", AccountID: "u", TokenURL: tokenSrv.URL,
	})
	require.NoError(t, err)
	_, err = ts.Token()
	require.ErrorIs(t, err, servicedesk.ErrUnauthorized)
	assert.NotContains(t, err.Error(), "very-secret-value")
}

// TestOAuthHelpersRedactEchoedCredentials: a token endpoint or the
// accessible-resources API that echoes what it was sent must not put a
// credential into the error.
func TestOAuthHelpersRedactEchoedCredentials(t *testing.T) {
	t.Parallel()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"errorMessage": "rejected: " + r.Header.Get("Authorization") + " " + r.PostForm.Get("assertion") + " secret=install-secret-123",
		})
	}))
	t.Cleanup(echo.Close)

	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "opaque-access-token-123"})
	_, err := servicedesk.AccessibleResources(context.Background(), ts, &servicedesk.AccessibleResourcesOptions{URL: echo.URL})
	require.ErrorIs(t, err, servicedesk.ErrUnauthorized)
	assert.NotContains(t, err.Error(), "opaque-access-token-123")
	assert.Contains(t, err.Error(), "[REDACTED]")

	grant, err := servicedesk.ConnectUserTokenSource(servicedesk.ConnectUserConfig{
		OAuthClientID: "c", SharedSecret: "install-secret-123", BaseURL: "https://x.atlassian.net", AccountID: "u", TokenURL: echo.URL,
	})
	require.NoError(t, err)
	_, err = grant.Token()
	require.ErrorIs(t, err, servicedesk.ErrUnauthorized)
	assert.NotContains(t, err.Error(), "install-secret-123")
	assert.NotContains(t, err.Error(), "eyJ", "the signed assertion")
}

func TestAccessibleResourcesRefusesWhatIsNotAList(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`null`))
	}))
	t.Cleanup(srv.Close)
	res, err := servicedesk.AccessibleResources(context.Background(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "a"}),
		&servicedesk.AccessibleResourcesOptions{URL: srv.URL})
	require.ErrorIs(t, err, servicedesk.ErrInvalidResponse)
	assert.Nil(t, res)
}

// TestConnectUserGrantIsNotRedirectedElsewhere: a token endpoint answering
// 307 or 308 to another host would have the signed assertion posted there.
// The SDK refuses the redirect and does not retry it.
func TestConnectUserGrantIsNotRedirectedElsewhere(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		var stolen atomic.Int32
		thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			stolen.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"stolen","expires_in":900}`))
		}))
		t.Cleanup(thief.Close)
		var asked atomic.Int32
		tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked.Add(1)
			http.Redirect(w, r, thief.URL+"/oauth2/token", status)
		}))
		t.Cleanup(tokenSrv.Close)
		ts, err := servicedesk.ConnectUserTokenSource(servicedesk.ConnectUserConfig{
			OAuthClientID: "c", SharedSecret: "install-secret", BaseURL: "https://x.atlassian.net", AccountID: "u",
			TokenURL: tokenSrv.URL + "/oauth2/token",
		})
		require.NoError(t, err)
		_, err = ts.Token()
		require.ErrorContains(t, err, "refused a redirect to "+thief.URL, "status %d", status)
		assert.NotContains(t, err.Error(), "eyJ", "no assertion in the error")
		assert.Equal(t, int32(0), stolen.Load(), "the other host got nothing (status %d)", status)
		assert.Equal(t, int32(1), asked.Load(), "not retried (status %d)", status)
	}
}

// TestAccessibleResourcesTokenStaysOnItsOrigin: an https endpoint that
// redirects to plain http on the same host, another port, gets the token
// only on its own origin; and a plain-http endpoint is refused.
func TestAccessibleResourcesTokenStaysOnItsOrigin(t *testing.T) {
	t.Parallel()
	var clearAuth atomic.Value
	clearAuth.Store("unset")
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clearAuth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`[]`))
	}))
	t.Cleanup(plain.Close)
	var tlsAuth atomic.Value
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tlsAuth.Store(r.Header.Get("Authorization"))
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(secure.Close)
	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "secret-access-token"})
	_, err := servicedesk.AccessibleResources(context.Background(), ts,
		&servicedesk.AccessibleResourcesOptions{URL: secure.URL + "/oauth/token/accessible-resources", HTTPClient: secure.Client()})
	require.NoError(t, err)
	assert.Equal(t, "Bearer secret-access-token", tlsAuth.Load())
	assert.Equal(t, "", clearAuth.Load(), "no token in clear text to another port")

	_, err = servicedesk.AccessibleResources(context.Background(), ts, &servicedesk.AccessibleResourcesOptions{URL: "http://api.example.com/oauth/token/accessible-resources"})
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
	assert.ErrorContains(t, err, "clear text")
	_, err = servicedesk.ConnectUserTokenSource(servicedesk.ConnectUserConfig{
		OAuthClientID: "c", SharedSecret: "s", BaseURL: "https://x.atlassian.net", AccountID: "u", TokenURL: "http://auth.example.com/oauth2/token",
	})
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
	assert.ErrorContains(t, err, "clear text")
}
