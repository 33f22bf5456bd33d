package servicedesk_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// cloudUser is Jira's user as the Cloud user search returns it.
type cloudUser struct {
	AccountID    string `json:"accountId"`
	AccountType  string `json:"accountType"`
	EmailAddress string `json:"emailAddress"`
	DisplayName  string
}

// TestDoFindsAnAccountByEmail: Jira's user search through Do, on the fake:
// an email with an account on no desk is found, then added by account id.
func TestDoFindsAnAccountByEmail(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer()
	t.Cleanup(srv.Close)
	loner := srv.AddCustomer("", "loner@example.com", "Lone Ranger")
	c := fakeClient(t, srv)

	var users []cloudUser
	err := c.Do(context.Background(), http.MethodGet, "/rest/api/3/user/search", url.Values{"query": {"loner@example.com"}}, nil, &users)
	require.NoError(t, err)
	require.Len(t, users, 1)
	assert.Equal(t, cloudUser{AccountID: loner.AccountID, AccountType: "customer", EmailAddress: "loner@example.com", DisplayName: "Lone Ranger"}, users[0],
		"encoding/json's rules: DisplayName matched case-insensitively")

	require.NoError(t, c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{users[0].AccountID}}))
	assert.Len(t, srv.Customers("1"), 1)

	// Data Center's form of the search.
	var dc []struct{ Name, Key, EmailAddress string }
	require.NoError(t, c.Do(context.Background(), http.MethodGet, "/rest/api/2/user/search", url.Values{"username": {"loner"}}, nil, &dc))
	require.Len(t, dc, 1)
	assert.Equal(t, loner.Name, dc[0].Name)
}

// TestDoWire: what Do sends, and what it returns.
func TestDoWire(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://jira.example.com/jira", []reply{{status: 201, body: `{"id":"10001","Name":"Fred"}`}}, basicAuth())
	var got struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	body := map[string]any{"name": "Acme", "zero": 0}
	err := c.Do(context.Background(), http.MethodPost, "/rest/servicedeskapi/organization", url.Values{"expand": {"a", "b"}}, body, &got)
	require.NoError(t, err)
	assert.Equal(t, "10001", got.ID)
	assert.Equal(t, "Fred", got.Name, "names matched case-insensitively, as encoding/json does")
	s := w.only(t)
	assert.Equal(t, http.MethodPost, s.Method)
	assert.Equal(t, "/jira/rest/servicedeskapi/organization", s.Path)
	assert.Equal(t, "expand=a&expand=b", s.Query)
	assert.JSONEq(t, `{"name":"Acme","zero":0}`, string(s.Body))
	assert.Equal(t, "application/json", s.Header.Get("Content-Type"))
	assert.Equal(t, "opt-in", s.Header.Get("X-ExperimentalApi"), "servicedeskapi paths opt in to experimental endpoints")
	assert.Equal(t, wantBasic(), s.Header.Get("Authorization"))

	// Raw JSON goes as it is; a 204 leaves v alone; platform paths do not opt in.
	c, w = mockClient(t, "https://jira.example.com", []reply{{status: 204}}, basicAuth())
	v := map[string]any{"kept": true}
	require.NoError(t, c.Do(context.Background(), http.MethodPut, "/rest/api/2/user/properties/x", nil, json.RawMessage(`{"value":[1,2]}`), &v))
	assert.Equal(t, map[string]any{"kept": true}, v)
	s = w.only(t)
	assert.JSONEq(t, `{"value":[1,2]}`, string(s.Body))
	assert.Empty(t, s.Header.Get("X-ExperimentalApi"))
}

// TestDoRefusesPathsThatCouldLeave: nothing is sent for a path, method,
// query or v that is wrong.
func TestDoRefusesPathsThatCouldLeave(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 200, body: `{}`}}, basicAuth())
	cases := []struct {
		name, method, path, field string
		query                     url.Values
		v                         any
	}{
		{"absolute URL", "GET", "https://evil.example/rest/api/3/myself", "path", nil, nil},
		{"scheme-relative", "GET", "//evil.example/rest/api/3/myself", "path", nil, nil},
		{"no /rest/ prefix", "GET", "/secure/admin", "path", nil, nil},
		{"relative", "GET", "rest/api/3/myself", "path", nil, nil},
		{"dot-dot", "GET", "/rest/../../evil", "path", nil, nil},
		{"escaped dot-dot", "GET", "/rest/api/%2e%2e/%2E%2E/x", "path", nil, nil},
		{"escaped slash", "GET", "/rest/api/3/user/a%2F..%2Fb", "path", nil, nil},
		{"escaped backslash", "GET", "/rest/api/3/user/a%5Cb", "path", nil, nil},
		{"backslash", "GET", `/rest/api\evil`, "path", nil, nil},
		{"empty segment", "GET", "/rest//api", "path", nil, nil},
		{"query in path", "GET", "/rest/api/3/user/search?query=x", "path", nil, nil},
		{"fragment", "GET", "/rest/api/3/myself#x", "path", nil, nil},
		{"space", "GET", "/rest/api/3/user/fred smith", "path", nil, nil},
		{"malformed escape", "GET", "/rest/api/3/user/%zz", "path", nil, nil},
		{"Tomcat path parameter", "GET", "/rest/..;/secure/admin", "path", nil, nil},
		{"path parameter", "GET", "/rest/api/3/myself;jsessionid=x", "path", nil, nil},
		{"escaped path parameter", "GET", "/rest/..%3B/secure/admin", "path", nil, nil},
		{"double-encoded dot-dot", "GET", "/rest/%252e%252e/secure/admin", "path", nil, nil},
		{"double-encoded slash", "GET", "/rest/api/a%252Fb", "path", nil, nil},
		{"lower-case method", "get", "/rest/api/3/myself", "method", nil, nil},
		{"unknown method", "TRACE", "/rest/api/3/myself", "method", nil, nil},
		{"query not UTF-8", "GET", "/rest/api/3/user/search", "query", url.Values{"query": {"caf\xe9"}}, nil},
		{"v not a pointer", "GET", "/rest/api/3/myself", "v", nil, struct{}{}},
		{"v nil pointer", "GET", "/rest/api/3/myself", "v", nil, (*struct{})(nil)},
	}
	for _, tc := range cases {
		err := c.Do(context.Background(), tc.method, tc.path, tc.query, nil, tc.v)
		require.ErrorIs(t, err, servicedesk.ErrInvalidInput, tc.name)
		assert.Contains(t, err.Error(), "Client.Do: "+tc.field, tc.name)
	}
	err := c.Do(context.Background(), "POST", "/rest/api/3/x", nil, map[string]any{"f": func() {}}, nil)
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
	assert.Contains(t, err.Error(), "body")
	var noCtx context.Context // a nil context is the point
	err = c.Do(noCtx, "GET", "/rest/api/3/myself", nil, nil, nil)
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
	assert.Empty(t, w.all(), "nothing was sent")
}

// TestDoUsesThePipeline: Do retries by idempotency, maps errors, pins the
// host and signs Connect JWTs for its path and query.
func TestDoUsesThePipeline(t *testing.T) {
	t.Parallel()
	t.Run("GET retried through 503", func(t *testing.T) {
		t.Parallel()
		c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 503}, {status: 200, body: `[]`}})
		var v []any
		require.NoError(t, c.Do(context.Background(), "GET", "/rest/api/3/user/search", url.Values{"query": {"a"}}, nil, &v))
		assert.Len(t, w.all(), 2)
	})
	t.Run("POST not repeated after a 500", func(t *testing.T) {
		t.Parallel()
		c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 500}, {status: 201, body: `{}`}})
		err := c.Do(context.Background(), "POST", "/rest/servicedeskapi/organization", nil, map[string]string{"name": "A"}, nil)
		require.ErrorIs(t, err, servicedesk.ErrServer)
		assert.Contains(t, err.Error(), "the server may have acted on it")
		assert.Len(t, w.all(), 1)
	})
	t.Run("errors are *Error", func(t *testing.T) {
		t.Parallel()
		c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 404, body: `{"errorMessages":["No user"]}`}})
		err := c.Do(context.Background(), "GET", "/rest/api/3/user", url.Values{"accountId": {"x"}}, nil, nil)
		var apiErr *servicedesk.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, "No user", apiErr.Message)
		assert.Equal(t, "servicedesk: GET /rest/api/3/user: 404 Not Found: No user", err.Error())
	})
	t.Run("a 2xx that is not JSON", func(t *testing.T) {
		t.Parallel()
		c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 200, body: `<html>login</html>`, header: map[string]string{"Content-Type": "text/html"}}})
		var v any
		require.ErrorIs(t, c.Do(context.Background(), "GET", "/rest/api/3/myself", nil, nil, &v), servicedesk.ErrInvalidResponse)
	})
	t.Run("Connect JWT signed for the path and query", func(t *testing.T) {
		t.Parallel()
		var got string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claims := jwt.MapClaims{}
			_, err := jwt.ParseWithClaims(strings.TrimPrefix(r.Header.Get("Authorization"), "JWT "), claims,
				func(*jwt.Token) (any, error) { return []byte("shared"), nil })
			assert.NoError(t, err)
			got, _ = claims["qsh"].(string)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`[]`))
		}))
		t.Cleanup(srv.Close)
		c, err := servicedesk.NewClient(srv.URL+"/jira", servicedesk.WithConnectJWT("app", "shared"))
		require.NoError(t, err)
		require.NoError(t, c.Do(context.Background(), "GET", "/rest/api/2/user/search", url.Values{"username": {"fred smith"}, "maxResults": {"5"}}, nil, nil))
		assert.Equal(t, qsh("GET&/rest/api/2/user/search&maxResults=5&username=fred%20smith"), got)
	})
}

// TestConnectActsAsUserEndToEnd: ConnectUserTokenSource against the fake's
// token endpoint; the token then acts with the user's permissions.
func TestConnectActsAsUserEndToEnd(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(
		servicedesktest.WithConnectApp("com.example.app", "app-secret"),
		servicedesktest.WithConnectActAsUser("com.example.app", "oauth-client-1"))
	t.Cleanup(srv.Close)
	agent := srv.AddUser(servicedesktest.User{Email: "agent@example.com", DisplayName: "Agent", Role: servicedesktest.RoleAgent, Desks: []string{"HELP"}})
	cust := srv.AddCustomer("1", "c@example.com", "C")

	tokens := func(accountID, secret string) *servicedesk.Client {
		ts, err := servicedesk.ConnectUserTokenSource(servicedesk.ConnectUserConfig{
			OAuthClientID: "oauth-client-1", SharedSecret: secret, BaseURL: srv.URL, AccountID: accountID, TokenURL: srv.TokenURL(),
		})
		require.NoError(t, err)
		c, err := servicedesk.NewClient(srv.URL, servicedesk.WithTokenSource(ts))
		require.NoError(t, err)
		return c
	}
	c := tokens(agent.AccountID, "app-secret")
	page, err := c.Customers.List(context.Background(), "HELP", nil)
	require.NoError(t, err, "the agent may list the desk's customers")
	require.Len(t, page.Values, 1)
	assert.Equal(t, cust.AccountID, page.Values[0].AccountID)
	err = c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{cust.AccountID}})
	require.ErrorIs(t, err, servicedesk.ErrForbidden, "but not add: the agent's permissions, not the app's")

	_, err = tokens(agent.AccountID, "wrong-secret").Customers.List(context.Background(), "HELP", nil)
	require.ErrorIs(t, err, servicedesk.ErrUnauthorized)
	assert.Contains(t, err.Error(), "invalid_grant")
	assert.Contains(t, err.Error(), "act-as-user grant was refused")
	_, err = tokens("qm:nobody", "app-secret").Customers.List(context.Background(), "HELP", nil)
	require.ErrorIs(t, err, servicedesk.ErrUnauthorized)
	assert.Contains(t, err.Error(), "sub names no user")
}

// TestCreateThatMayHaveReachedTheServer: a Create whose connection broke
// after the server acted, or that got a 5xx, says the customer may exist;
// one that never left does not.
func TestCreateThatMayHaveReachedTheServer(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer()
	t.Cleanup(srv.Close)
	c := fakeClient(t, srv)
	create := func() error {
		_, err := c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "maybe@example.com", DisplayName: "Maybe"})
		return err
	}
	srv.Inject(servicedesktest.Fault{Method: "POST", Path: "/rest/servicedeskapi/customer", After: true, Drop: true})
	err := create()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the customer may have been created all the same")
	assert.Len(t, srv.Requests(), 1, "not retried")

	srv.Inject(servicedesktest.Fault{Method: "POST", Path: "/rest/servicedeskapi/customer", Status: 503})
	err = create()
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Contains(t, apiErr.Hint, "may have been created")
	assert.NotContains(t, err.Error(), "503 Service Unavailable: 503", "the status is said once")

	refused, err := servicedesk.NewClient("http://127.0.0.1:1", servicedesk.WithMaxRetries(0))
	require.NoError(t, err)
	_, err = refused.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "a@b.co", DisplayName: "A"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "may have been created", "the connection was never made")
}

// TestUnauthorizedSaysWhatToCheck: a 401 says what to check for the way
// the client authenticates, not which permission the operation needs.
func TestUnauthorizedSaysWhatToCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, base string
		opt        servicedesk.Option
		hint       string
		needs      bool
	}{
		{"no auth", "https://x.atlassian.net", nil, "no credentials were sent", false},
		{"basic on Cloud", "https://x.atlassian.net", basicAuth(), "an API token", false},
		{"basic on Data Center", "https://jira.example.com", basicAuth(), "username and password", false},
		{"bearer on Cloud", "https://x.atlassian.net", servicedesk.WithBearerToken("t0ken"), "CloudGatewayURL", true},
		{"bearer on Data Center", "https://jira.example.com", servicedesk.WithBearerToken("t0ken"), "personal access token", false},
		{"token source", servicedesk.CloudGatewayURL("abc"), servicedesk.WithTokenSource(tokenFunc(func() string { return "at" })), "revoked, or lack a scope", true},
		{"Connect", "https://x.atlassian.net", servicedesk.WithConnectJWT("app", "secret"), "shared secret", false},
	}
	for _, tc := range cases {
		var opts []servicedesk.Option
		if tc.opt != nil {
			opts = append(opts, tc.opt)
		}
		c, _ := mockClient(t, tc.base, []reply{{status: 401}}, opts...)
		err := addOne(c, context.Background())
		var apiErr *servicedesk.Error
		require.ErrorAs(t, err, &apiErr, tc.name)
		assert.Contains(t, apiErr.Hint, tc.hint, tc.name)
		assert.Contains(t, err.Error(), tc.hint, tc.name)
		assert.Equal(t, tc.needs, apiErr.Needs != "", tc.name)
		if !tc.needs {
			assert.NotContains(t, err.Error(), "permission", tc.name)
			assert.NotContains(t, err.Error(), "scope", tc.name)
		}
	}
}

// TestNeedsSpeaksTheAuthKindsLanguage: a 403 says the permission to every
// client, the OAuth 2.0 scopes only to OAuth 2.0 tokens, the Connect scope
// only to Connect apps (a Data Center PAT was told both).
func TestNeedsSpeaksTheAuthKindsLanguage(t *testing.T) {
	t.Parallel()
	const permission = "needs the service desk administrator permission"
	cases := []struct {
		name, base string
		opt        servicedesk.Option
		oauth      bool
		connect    bool
	}{
		{"basic on Cloud", "https://x.atlassian.net", basicAuth(), false, false},
		{"PAT on Data Center", "https://jira.example.com", servicedesk.WithBearerToken("t0ken"), false, false},
		{"bearer on Cloud (OAuth)", "https://x.atlassian.net", servicedesk.WithBearerToken("t0ken"), true, false},
		{"token source", servicedesk.CloudGatewayURL("abc"), servicedesk.WithTokenSource(tokenFunc(func() string { return "at" })), true, false},
		{"Connect", "https://x.atlassian.net", servicedesk.WithConnectJWT("app", "secret"), false, true},
	}
	for _, tc := range cases {
		c, _ := mockClient(t, tc.base, []reply{{status: 403}}, tc.opt)
		err := addOne(c, context.Background())
		var apiErr *servicedesk.Error
		require.ErrorAs(t, err, &apiErr, tc.name)
		assert.True(t, strings.HasPrefix(apiErr.Needs, permission), "%s: %q", tc.name, apiErr.Needs)
		assert.Equal(t, tc.oauth, strings.Contains(apiErr.Needs, "OAuth 2.0 scope manage:servicedesk-customer"), tc.name)
		assert.Equal(t, tc.connect, strings.Contains(apiErr.Needs, "Connect scope WRITE"), tc.name)
	}
}

// TestExhaustedRetriesSayHowMany: the error of a call that gave up says how
// many attempts were made.
func TestExhaustedRetriesSayHowMany(t *testing.T) {
	t.Parallel()
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 503}}, servicedesk.WithMaxRetries(2))
	err := addOne(c, context.Background())
	assert.Equal(t, "servicedesk: POST /rest/servicedeskapi/servicedesk/1/customer: 503 Service Unavailable; gave up after 3 attempts", err.Error())
}

// TestDoGetsEveryOperationsTemplate: Client.Do on the path of any of the
// SDK's operations, with any ids, is paced and labelled as the operation.
func TestDoGetsEveryOperationsTemplate(t *testing.T) {
	t.Parallel()
	l := &recordingLimiter{}
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 204}}, servicedesk.WithRateLimiter(l))
	ctx := context.Background()
	paths := map[string]string{
		"/rest/servicedeskapi/customer":                                                         "/rest/servicedeskapi/customer",
		"/rest/servicedeskapi/servicedesk/help/customer":                                        "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer",
		"/rest/servicedeskapi/servicedesk/42/customer":                                          "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer",
		"/rest/servicedeskapi/customer/user/5b10ac8d82e05b22cc7d4ef5/revoke-portal-only-access": "/rest/servicedeskapi/customer/user/{accountId}/revoke-portal-only-access",
		"/rest/servicedeskapi/customer/user/qm:a1-b2:c3/revoke-portal-only-access":              "/rest/servicedeskapi/customer/user/{accountId}/revoke-portal-only-access",
		"/rest/api/3/user/search":                                                               "/rest/api/3/user/search",
	}
	for path, want := range paths {
		require.NoError(t, c.Do(ctx, http.MethodPut, path, nil, nil, nil))
		l.mu.Lock()
		got := l.waits[len(l.waits)-1].Path
		l.mu.Unlock()
		assert.Equal(t, want, got, path)
	}
}
