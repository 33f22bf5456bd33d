package forge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/forge"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// forgeSite is the fake JSM playing Forge for the app, with a Jira
// administrator and an agent who may sign in through Forge, and a verifier
// pointed at its JWKS.
type forgeSite struct {
	srv          *servicedesktest.Server
	v            *forge.Verifier
	admin, agent servicedesk.Customer
}

func newForgeSite(t testing.TB, opts ...servicedesktest.Option) *forgeSite {
	srv := servicedesktest.NewServer(append([]servicedesktest.Option{servicedesktest.WithForgeApp(testAppUUID)}, opts...)...)
	t.Cleanup(srv.Close)
	s := &forgeSite{srv: srv}
	s.admin = srv.AddUser(servicedesktest.User{Email: "jira-admin@example.com", DisplayName: "Ada Admin", Role: servicedesktest.RoleJiraAdmin})
	s.agent = srv.AddUser(servicedesktest.User{Email: "agent@example.com", DisplayName: "Agent", Role: servicedesktest.RoleAgent, Desks: []string{"HELP"}})
	v, err := forge.NewVerifier(testAppARI, forge.WithJWKSURL(srv.ForgeJWKSURL()), forge.WithLoopbackAPIBaseURL())
	require.NoError(t, err)
	s.v = v
	return s
}

// invoke verifies an invocation the fake signed.
func (s *forgeSite) invoke(t testing.TB, call servicedesktest.ForgeCall) *forge.Invocation {
	r := httptest.NewRequest(http.MethodPost, "https://remote.example.com/x", nil)
	require.NoError(t, s.srv.SignInvocation(r, call))
	inv, err := s.v.Verify(context.Background(), r)
	require.NoError(t, err)
	return inv
}

func TestClientActsAsAppAndAsUser(t *testing.T) {
	t.Parallel()
	site := newForgeSite(t, servicedesktest.WithSeed(7))
	ctx := context.Background()

	inv := site.invoke(t, servicedesktest.ForgeCall{Principal: site.admin.AccountID, SystemToken: true, UserToken: true, ModuleKey: "onboard"})
	assert.Equal(t, site.srv.ForgeCloudID(), inv.CloudID)
	assert.Equal(t, site.srv.ForgeInstallationID(), inv.InstallationID)
	assert.Equal(t, site.srv.URL+"/ex/jira/"+site.srv.ForgeCloudID(), inv.APIBaseURL)
	assert.Equal(t, servicedesktest.ForgeEnvironmentType, inv.EnvironmentType)
	assert.Equal(t, "onboard", inv.ModuleKey)
	assert.Equal(t, site.admin.AccountID, inv.Principal)

	asUser, err := inv.Client(forge.AsUser)
	require.NoError(t, err)
	cust, err := asUser.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
	require.NoError(t, err, "a Jira administrator may create customers")
	asApp, err := inv.Client(forge.AsApp)
	require.NoError(t, err)
	require.NoError(t, asApp.Customers.Add(ctx, "HELP", servicedesk.CustomerIDs{AccountIDs: []string{cust.AccountID}}))
	var n int
	for c, err := range asApp.Customers.All(ctx, "HELP", nil) {
		require.NoError(t, err)
		if c.AccountID == cust.AccountID {
			n++
		}
	}
	assert.Equal(t, 1, n, "the walk through the gateway follows the site's links")

	// An agent's token acts with the agent's permissions.
	inv = site.invoke(t, servicedesktest.ForgeCall{Principal: site.agent.AccountID, UserToken: true})
	asAgent, err := inv.Client(forge.AsUser)
	require.NoError(t, err)
	_, err = asAgent.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "barney@example.com", DisplayName: "Barney"})
	require.ErrorIs(t, err, servicedesk.ErrForbidden)
	_, err = asAgent.Customers.List(ctx, "HELP", nil)
	require.NoError(t, err, "an agent of the desk may list its customers")

	for _, r := range site.srv.Requests() {
		if strings.Contains(r.Path, "/rest/") {
			assert.True(t, strings.HasPrefix(r.Path, "/ex/jira/"+site.srv.ForgeCloudID()+"/rest/"), "went to the gateway: %s", r.Path)
			assert.Equal(t, "Bearer", r.Auth)
		}
	}
}

// The gateway takes Forge's tokens and nothing else, and the site does not
// take Forge's tokens.
func TestGatewayTakesOnlyForgeTokens(t *testing.T) {
	t.Parallel()
	site := newForgeSite(t)
	ctx := context.Background()
	basic, err := servicedesk.NewClient(site.srv.URL+"/ex/jira/"+site.srv.ForgeCloudID(),
		servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	require.NoError(t, err)
	_, err = basic.Customers.List(ctx, "HELP", nil)
	require.ErrorIs(t, err, servicedesk.ErrUnauthorized)

	r := httptest.NewRequest(http.MethodPost, "/", nil)
	require.NoError(t, site.srv.SignInvocation(r, servicedesktest.ForgeCall{SystemToken: true}))
	onSite, err := servicedesk.NewClient(site.srv.URL, servicedesk.WithBearerToken(r.Header.Get("X-Forge-Oauth-System")))
	require.NoError(t, err)
	_, err = onSite.Customers.List(ctx, "HELP", nil)
	require.ErrorIs(t, err, servicedesk.ErrUnauthorized)
}

func TestClientWithoutTheTokenNamesTheManifestSetting(t *testing.T) {
	t.Parallel()
	site := newForgeSite(t)
	inv := site.invoke(t, servicedesktest.ForgeCall{})
	_, err := inv.Client(forge.AsApp)
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
	assert.Contains(t, err.Error(), "auth.appSystemToken")
	assert.Contains(t, err.Error(), "x-forge-oauth-system")
	_, err = inv.Client(forge.AsUser)
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
	assert.Contains(t, err.Error(), "auth.appUserToken")
	_, err = inv.Client(forge.Actor(7))
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
}

// An expired token is refused before anything is sent, with an error that
// says so and wraps servicedesk.ErrUnauthorized; the gateway too answers
// an expired token 401.
func TestClientWithAnExpiredToken(t *testing.T) {
	t.Parallel()
	site := newForgeSite(t)
	a := newAtlassian(t)
	v := a.verifier(t, forge.WithLoopbackAPIBaseURL())
	c := claims()
	app(c)["apiBaseUrl"] = site.srv.URL + "/ex/jira/" + site.srv.ForgeCloudID()
	expired := forwardedToken(t, "", time.Now().Add(-time.Second))
	inv, err := v.Verify(context.Background(), request(a.sign(c), expired))
	require.NoError(t, err, "the FIT is valid; the token's expiry is Client's concern")

	client, err := inv.Client(forge.AsApp)
	require.NoError(t, err)
	_, err = client.Customers.List(context.Background(), "HELP", nil)
	require.ErrorIs(t, err, servicedesk.ErrUnauthorized, "as the gateway's 401 would: a caller can tell it apart")
	assert.Contains(t, err.Error(), "app system token expired at")
	assert.NotContains(t, err.Error(), expired)
	assert.Empty(t, site.srv.Requests(), "nothing was sent")

	// The fake's own expired tokens, sent anyway, are answered 401.
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	require.NoError(t, site.srv.SignInvocation(r, servicedesktest.ForgeCall{SystemToken: true, TTL: -time.Minute}))
	gw, err := servicedesk.NewClient(site.srv.URL+"/ex/jira/"+site.srv.ForgeCloudID(),
		servicedesk.WithBearerToken(r.Header.Get("X-Forge-Oauth-System")))
	require.NoError(t, err)
	_, err = gw.Customers.List(context.Background(), "HELP", nil)
	require.ErrorIs(t, err, servicedesk.ErrUnauthorized)
	// And the verifier refuses that expired FIT.
	_, err = site.v.Verify(context.Background(), r)
	require.ErrorIs(t, err, forge.ErrInvalidInvocation)
	assert.Contains(t, err.Error(), "expired")
}

// Clients of one installation made through one Verifier share a rate
// limiter: the quota pause one of them meets holds the next, which sends
// nothing. A client made through another Verifier has its own.
func TestClientsOfOneInstallationShareALimiter(t *testing.T) {
	t.Parallel()
	site := newForgeSite(t, servicedesktest.WithQuota(servicedesktest.Quota{Points: 2, Window: time.Hour}))
	ctx := context.Background()
	call := servicedesktest.ForgeCall{SystemToken: true}

	first, err := site.invoke(t, call).Client(forge.AsApp, servicedesk.WithMaxRetries(0))
	require.NoError(t, err)
	_, err = first.Customers.List(ctx, "HELP", nil) // a point each: the desk is empty
	require.NoError(t, err)
	_, err = first.Customers.List(ctx, "HELP", nil)
	require.NoError(t, err)
	_, err = first.Customers.List(ctx, "HELP", nil)
	require.ErrorIs(t, err, servicedesk.ErrRateLimited, "the quota is spent")
	sent := len(site.srv.Requests())

	second, err := site.invoke(t, call).Client(forge.AsApp, servicedesk.WithMaxRetries(0))
	require.NoError(t, err)
	_, err = second.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "x@example.com", DisplayName: "X"})
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 0, apiErr.Attempts, "held by the pause the first client met")
	assert.Equal(t, sent, len(site.srv.Requests()), "the second client sent nothing")

	// Another Verifier keeps its own limiters: its client goes out, and
	// meets the server's 429.
	other, err := forge.NewVerifier(testAppARI, forge.WithJWKSURL(site.srv.ForgeJWKSURL()), forge.WithLoopbackAPIBaseURL())
	require.NoError(t, err)
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	require.NoError(t, site.srv.SignInvocation(r, call))
	inv, err := other.Verify(ctx, r)
	require.NoError(t, err)
	third, err := inv.Client(forge.AsApp, servicedesk.WithMaxRetries(0))
	require.NoError(t, err)
	_, err = third.Customers.List(ctx, "HELP", nil)
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 1, apiErr.Attempts)

	// The caller's own limiter replaces the shared one.
	fourth, err := site.invoke(t, call).Client(forge.AsApp, servicedesk.WithMaxRetries(0),
		servicedesk.WithRateLimiter(servicedesk.NewRateLimiter(servicedesk.RateLimiterConfig{})))
	require.NoError(t, err)
	_, err = fourth.Customers.List(ctx, "HELP", nil)
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 1, apiErr.Attempts, "not held: its own limiter")
}

// Installations are kept apart: a pause one meets does not hold another.
func TestInstallationsHaveTheirOwnLimiters(t *testing.T) {
	t.Parallel()
	site := newForgeSite(t, servicedesktest.WithQuota(servicedesktest.Quota{Points: 1, Window: time.Hour}))
	a := newAtlassian(t)
	v := a.verifier(t, forge.WithLoopbackAPIBaseURL())
	ctx := context.Background()
	client := func(installation string) *servicedesk.Client {
		c := claims()
		app(c)["apiBaseUrl"] = site.srv.URL + "/ex/jira/" + site.srv.ForgeCloudID()
		app(c)["installationId"] = installation
		delete(app(c), "installation")
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		require.NoError(t, site.srv.SignInvocation(r, servicedesktest.ForgeCall{SystemToken: true}))
		r.Header.Set("Authorization", "Bearer "+a.sign(c))
		inv, err := v.Verify(ctx, r)
		require.NoError(t, err)
		cl, err := inv.Client(forge.AsApp, servicedesk.WithMaxRetries(0))
		require.NoError(t, err)
		return cl
	}
	one := client("ari:cloud:ecosystem::installation/one")
	_, err := one.Customers.List(ctx, "HELP", nil)
	require.NoError(t, err)
	_, err = one.Customers.List(ctx, "HELP", nil)
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	var apiErr *servicedesk.Error
	_, err = client("ari:cloud:ecosystem::installation/one").Customers.List(ctx, "HELP", nil)
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 0, apiErr.Attempts, "same installation: held")
	_, err = client("ari:cloud:ecosystem::installation/two").Customers.List(ctx, "HELP", nil)
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 1, apiErr.Attempts, "another installation: sent")
}

// No printer, encoder or logger shows a token.
func TestInvocationNeverPrintsTokens(t *testing.T) {
	t.Parallel()
	a := newAtlassian(t)
	v := a.verifier(t)
	exp := time.Now().Add(time.Minute)
	sys, usr := forwardedToken(t, "", exp), forwardedToken(t, testUser, exp)
	fit := a.sign(claims())
	inv, err := v.Verify(context.Background(), request(fit, sys, usr))
	require.NoError(t, err)

	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T %v"} {
		outs = append(outs, fmt.Sprintf(verb, inv), fmt.Sprintf(verb, *inv))
	}
	outs = append(outs, fmt.Sprint(inv), fmt.Sprintln(*inv), fmt.Sprintf("%v", struct{ Inv forge.Invocation }{*inv}),
		fmt.Sprintf("%+v", []*forge.Invocation{inv}))
	js, err := json.Marshal(inv)
	require.NoError(t, err)
	outs = append(outs, string(js))
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("invocation", "inv", inv, "value", *inv)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("invocation", "inv", inv)
	outs = append(outs, buf.String())

	for _, out := range outs {
		for _, secret := range []string{sys, usr, fit} {
			require.NotContains(t, out, secret)
			require.NotContains(t, out, strings.Split(secret, ".")[2], "a token's signature")
		}
	}
	assert.Contains(t, inv.String(), testInstall)
	assert.Contains(t, buf.String(), "system_token=sent")
}
