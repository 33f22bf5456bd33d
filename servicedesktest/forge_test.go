package servicedesktest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

const forgeApp = "ari:cloud:ecosystem::app/406d303d-0393-4ec4-ad7c-1435be94583a"

// The Forge ids are the same for the same seed, and WithForgeApp changes
// no other generated id.
func TestForgeIDsUnderSeed(t *testing.T) {
	t.Parallel()
	one := servicedesktest.NewServer(servicedesktest.WithSeed(3), servicedesktest.WithForgeApp(forgeApp))
	defer one.Close()
	two := servicedesktest.NewServer(servicedesktest.WithForgeApp("406D303D-0393-4EC4-AD7C-1435BE94583A"), servicedesktest.WithSeed(3))
	defer two.Close()
	plain := servicedesktest.NewServer(servicedesktest.WithSeed(3))
	defer plain.Close()

	require.NotEmpty(t, one.ForgeCloudID())
	assert.Equal(t, one.ForgeCloudID(), two.ForgeCloudID())
	assert.Equal(t, one.ForgeInstallationID(), two.ForgeInstallationID())
	assert.True(t, strings.HasPrefix(one.ForgeInstallationID(), "ari:cloud:ecosystem::installation/"))
	assert.Equal(t, plain.AddUser(servicedesktest.User{Email: "u@example.com"}).AccountID,
		one.AddUser(servicedesktest.User{Email: "u@example.com"}).AccountID)
	assert.Empty(t, plain.ForgeCloudID())
}

// SignInvocation signs what Forge sends; the JWKS publishes its key, and
// the one before a rotation.
func TestSignInvocation(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(servicedesktest.WithForgeApp(forgeApp))
	defer srv.Close()
	user := srv.AddUser(servicedesktest.User{Email: "a@example.com", Role: servicedesktest.RoleJiraAdmin})

	jwks := func() []map[string]any {
		resp, err := http.Get(srv.ForgeJWKSURL())
		require.NoError(t, err)
		defer resp.Body.Close()
		var set struct{ Keys []map[string]any }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&set))
		return set.Keys
	}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	require.NoError(t, srv.SignInvocation(r, servicedesktest.ForgeCall{Principal: user.AccountID, SystemToken: true, UserToken: true, ModuleKey: "m", TTL: time.Minute}))
	fit, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	require.True(t, ok)
	claims := jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(fit, claims)
	require.NoError(t, err)
	assert.Equal(t, "RS256", tok.Method.Alg())
	keys := jwks()
	require.Len(t, keys, 1)
	assert.Equal(t, keys[0]["kid"], tok.Header["kid"])
	assert.Equal(t, "forge/invocation-token", claims["iss"])
	assert.Equal(t, forgeApp, claims["aud"])
	assert.Equal(t, user.AccountID, claims["principal"])
	app := claims["app"].(map[string]any)
	assert.Equal(t, forgeApp, app["id"])
	assert.Equal(t, srv.URL+"/ex/jira/"+srv.ForgeCloudID(), app["apiBaseUrl"])
	assert.Equal(t, srv.ForgeInstallationID(), app["installationId"])
	assert.Equal(t, "m", app["module"].(map[string]any)["key"])
	exp, _ := claims.GetExpirationTime()
	assert.WithinDuration(t, time.Now().Add(time.Minute), exp.Time, 5*time.Second)
	assert.NotEmpty(t, r.Header.Get("X-Forge-Oauth-System"))
	assert.NotEmpty(t, r.Header.Get("X-Forge-Oauth-User"))

	srv.RotateForgeKey()
	srv.RotateForgeKey()
	keys = jwks()
	require.Len(t, keys, 2, "the current key and the one before")
	require.NoError(t, srv.SignInvocation(r, servicedesktest.ForgeCall{}))
	tok, _, err = jwt.NewParser().ParseUnverified(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), jwt.MapClaims{})
	require.NoError(t, err)
	assert.Equal(t, keys[1]["kid"], tok.Header["kid"])
	assert.Empty(t, r.Header.Get("X-Forge-Oauth-System"), "a second signing replaces the tokens")

	for _, call := range []servicedesktest.ForgeCall{{UserToken: true}, {UserToken: true, Principal: "nobody"}} {
		require.Error(t, srv.SignInvocation(r, call))
	}
	plain := servicedesktest.NewServer()
	defer plain.Close()
	require.Error(t, plain.SignInvocation(r, servicedesktest.ForgeCall{}))
}

// The gateway serves the API with the forwarded tokens: the system token
// as the app, which may remove customers (a Connect app may not), a user
// token with that user's permissions, an expired one not at all.
func TestForgeGateway(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(servicedesktest.WithForgeApp(forgeApp),
		servicedesktest.WithCustomer("1", "mary@example.com", "Mary"))
	defer srv.Close()
	agent := srv.AddUser(servicedesktest.User{Email: "agent@example.com", Role: servicedesktest.RoleAgent, Desks: []string{"1"}})
	ctx := context.Background()
	client := func(header string, call servicedesktest.ForgeCall) *servicedesk.Client {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		require.NoError(t, srv.SignInvocation(r, call))
		c, err := servicedesk.NewClient(srv.URL+"/ex/jira/"+srv.ForgeCloudID(), servicedesk.WithBearerToken(r.Header.Get(header)), servicedesk.WithMaxRetries(0))
		require.NoError(t, err)
		return c
	}
	asApp := client("X-Forge-Oauth-System", servicedesktest.ForgeCall{SystemToken: true})
	mary := srv.Customers("1")[0]
	require.NoError(t, asApp.Customers.Remove(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{mary.AccountID}}))
	assert.Empty(t, srv.Customers("1"))

	asAgent := client("X-Forge-Oauth-User", servicedesktest.ForgeCall{Principal: agent.AccountID, UserToken: true})
	_, err := asAgent.Customers.List(ctx, "1", nil)
	require.NoError(t, err)
	err = asAgent.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{mary.AccountID}})
	require.ErrorIs(t, err, servicedesk.ErrForbidden, "an agent may not add customers")

	expired := client("X-Forge-Oauth-System", servicedesktest.ForgeCall{SystemToken: true, TTL: -time.Second})
	_, err = expired.Customers.List(ctx, "1", nil)
	require.ErrorIs(t, err, servicedesk.ErrUnauthorized)

	// Another cloud id is no gateway of this site.
	other, err := servicedesk.NewClient(srv.URL+"/ex/jira/00000000-0000-4000-8000-000000000000", servicedesk.WithBearerToken("x"))
	require.NoError(t, err)
	_, err = other.Customers.List(ctx, "1", nil)
	require.ErrorIs(t, err, servicedesk.ErrNotFound)
}
