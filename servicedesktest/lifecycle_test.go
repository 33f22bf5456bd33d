package servicedesktest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// TestRevokeEndpoint: the fake's revoke answers as Atlassian documents
// it, for each status.
func TestRevokeEndpoint(t *testing.T) {
	t.Parallel()
	srv := start(t,
		servicedesktest.WithUser(servicedesktest.User{Email: "site@example.com", Role: servicedesktest.RoleSiteAdmin, APIToken: "st"}),
		servicedesktest.WithUser(servicedesktest.User{Email: "agent@example.com", Role: servicedesktest.RoleAgent, APIToken: "at", Desks: []string{"1"}}))
	cust := srv.AddCustomer("1", "fred@example.com", "Fred")
	path := "/rest/servicedeskapi/customer/user/" + cust.AccountID + "/revoke-portal-only-access"
	as := func(login, token string) map[string]string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(login, token)
		return map[string]string{"Authorization": req.Header.Get("Authorization")}
	}
	site := as("site@example.com", "st")

	resp, _ := raw(t, srv, "PUT", path, "", map[string]string{"Authorization": ""})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, body := raw(t, srv, "PUT", path, "", nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "the default admin is a Jira administrator, not a site administrator")
	assert.Contains(t, string(body), "site administrator")
	resp, _ = raw(t, srv, "PUT", path, "", as("agent@example.com", "at"))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = raw(t, srv, "POST", path, "", site)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	resp, body = raw(t, srv, "PUT", "/rest/servicedeskapi/customer/user/qm%3Anobody/revoke-portal-only-access", "", site)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Contains(t, string(body), `"errorMessage"`)
	assert.False(t, srv.PortalAccessRevoked(cust.AccountID))

	resp, body = raw(t, srv, "PUT", path, "", site)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Empty(t, body)
	assert.True(t, srv.PortalAccessRevoked(cust.AccountID))
	assert.Len(t, srv.Customers("1"), 1, "still a customer of its desk")

	// An agent's Atlassian account is not portal-only: left as it is.
	agentAccount := srv.AddUser(servicedesktest.User{Email: "agent2@example.com", Role: servicedesktest.RoleAgent, APIToken: "a2"})
	resp, _ = raw(t, srv, "PUT", "/rest/servicedeskapi/customer/user/"+agentAccount.AccountID+"/revoke-portal-only-access", "", site)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.False(t, srv.PortalAccessRevoked(agentAccount.AccountID))
	resp, _ = raw(t, srv, "GET", "/rest/api/3/user/search?query=x", "", as("agent2@example.com", "a2"))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the agent still signs in")

	// A site administrator is a Jira administrator too.
	c := client(t, srv, servicedesk.WithBasicAuth("site@example.com", "st"))
	_, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "new@example.com", DisplayName: "New"})
	require.NoError(t, err)
}

// TestRevokedCustomerCannotSignIn: a portal-only customer with credentials
// loses them when revoked, with acting tokens too.
func TestRevokedCustomerCannotSignIn(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithUser(servicedesktest.User{Email: "site@example.com", Role: servicedesktest.RoleSiteAdmin, APIToken: "st"}))
	cust := srv.AddUser(servicedesktest.User{Email: "cust@example.com", Role: servicedesktest.RoleCustomer, APIToken: "ct", PAT: "cust-pat"})
	for _, auth := range []servicedesk.Option{servicedesk.WithBasicAuth("cust@example.com", "ct"), servicedesk.WithBearerToken("cust-pat")} {
		c := client(t, srv, auth)
		_, err := c.Customers.FindByEmail(ctx, "cust@example.com")
		require.ErrorIs(t, err, servicedesk.ErrNotFound, "signed in; customers may not browse users: an empty list, as from Jira")
	}
	site := client(t, srv, servicedesk.WithBasicAuth("site@example.com", "st"))
	require.NoError(t, site.Customers.RevokePortalOnlyAccess(ctx, cust.AccountID))
	for _, auth := range []servicedesk.Option{servicedesk.WithBasicAuth("cust@example.com", "ct"), servicedesk.WithBearerToken("cust-pat")} {
		c := client(t, srv, auth)
		_, err := c.Customers.FindByEmail(ctx, "cust@example.com")
		require.ErrorIs(t, err, servicedesk.ErrUnauthorized)
	}
	found, err := site.Customers.FindByEmail(ctx, "cust@example.com")
	require.NoError(t, err, "the account stays")
	assert.Equal(t, cust.AccountID, found.AccountID)
}

// TestUserSearchPages: startAt and maxResults page through the matches,
// over the first 1,000 at most.
func TestUserSearchPages(t *testing.T) {
	t.Parallel()
	srv := start(t)
	for i := range 1005 {
		srv.AddCustomer("", fmt.Sprintf("p%04d@example.com", i), "P")
	}
	emails := func(query string) ([]string, int) {
		resp, body := raw(t, srv, "GET", "/rest/api/3/user/search?"+query, "", nil)
		var users []struct {
			EmailAddress string `json:"emailAddress"`
		}
		_ = json.Unmarshal(body, &users)
		var out []string
		for _, u := range users {
			out = append(out, u.EmailAddress)
		}
		return out, resp.StatusCode
	}
	got, status := emails("query=p")
	require.Equal(t, http.StatusOK, status)
	assert.Len(t, got, 50, "50 by default")
	assert.Equal(t, "p0000@example.com", got[0])
	got, _ = emails("query=p&startAt=50&maxResults=2")
	assert.Equal(t, []string{"p0050@example.com", "p0051@example.com"}, got)
	got, _ = emails("query=p&startAt=990&maxResults=100")
	assert.Len(t, got, 10, "no more than the first 1,000 matches")
	got, _ = emails("query=p&maxResults=5000")
	assert.Len(t, got, 1000)
	_, status = emails("query=p&startAt=-1")
	assert.Equal(t, http.StatusBadRequest, status)
	_, status = emails("query=p&maxResults=x")
	assert.Equal(t, http.StatusBadRequest, status)
}

// TestDataCenterMode: WithDataCenter has no /rest/api/3, no account ids,
// and no revoke.
func TestDataCenterMode(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithDataCenter(), servicedesktest.WithContextPath("/jira"))
	srv.AddCustomer("1", "ada@example.com", "Ada")
	for _, c := range srv.Customers("1") {
		assert.Empty(t, c.AccountID)
		assert.NotEmpty(t, c.Name)
	}
	resp, _ := raw(t, srv, "GET", "/rest/api/3/user/search?query=ada", "", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = raw(t, srv, "GET", "/rest/api/2/user/search?query=ada", "", nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "Data Center searches by username")
	resp, body := raw(t, srv, "GET", "/rest/api/2/user/search?username=ada", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, string(body), "accountId")
	assert.Contains(t, string(body), `"name"`)
	resp, _ = raw(t, srv, "PUT", "/rest/servicedeskapi/customer/user/x/revoke-portal-only-access", "", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	c := client(t, srv)
	cust, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
	require.NoError(t, err)
	assert.Empty(t, cust.AccountID)
	require.NoError(t, c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{Usernames: []string{cust.Name}}))
	assert.Len(t, srv.Customers("1"), 2)
}

// TestDuplicateEmailAnswers: the fake's duplicate-email answer, in the
// servicedeskapi error shape, 400 by default and 409 when asked.
func TestDuplicateEmailAnswers(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithCustomer("", "mary@example.com", "Mary"))
	for query, want := range map[string]int{"": 400, "?strictConflictStatusCode=true": 409} {
		resp, body := raw(t, srv, "POST", "/rest/servicedeskapi/customer"+query, `{"email":"Mary@Example.com","displayName":"M"}`, map[string]string{"Content-Type": "application/json"})
		assert.Equal(t, want, resp.StatusCode)
		var e struct {
			ErrorMessage     string `json:"errorMessage"`
			I18nErrorMessage struct {
				I18nKey string `json:"i18nKey"`
			} `json:"i18nErrorMessage"`
		}
		require.NoError(t, json.Unmarshal(body, &e))
		assert.True(t, strings.Contains(e.ErrorMessage, "already exists"), e.ErrorMessage)
		assert.NotEmpty(t, e.I18nErrorMessage.I18nKey)
	}
}
