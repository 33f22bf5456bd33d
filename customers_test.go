package servicedesk_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
)

const fredID = "qm:a713c8ea-1075-4e30-9d96-891a7d181739:5ad6d3581db05e2a66fa80b"

// fred is the customer of Atlassian's documented examples, field by field.
func fred() servicedesk.Customer {
	avatar := func(size string) string {
		return "https://avatar-cdn.atlassian.com/9bc3b5bcb0db050c6d7660b28a5b86c9?s=" + size +
			"&d=https%3A%2F%2Fsecure.gravatar.com%2Favatar%2F9bc3b5bcb0db050c6d7660b28a5b86c9%3Fd%3Dmm%26s%3D" + size + "%26noRedirect%3Dtrue"
	}
	return servicedesk.Customer{
		AccountID:    fredID,
		Name:         fredID,
		Key:          fredID,
		EmailAddress: "fred@example.com",
		DisplayName:  "Fred F. User",
		Active:       true,
		TimeZone:     "Australia/Sydney",
		Links: servicedesk.UserLinks{
			Self:     "https://your-domain.atlassian.net/rest/api/2/user?username=" + fredID,
			JiraRest: "https://your-domain.atlassian.net/rest/api/2/user?username=" + fredID,
			AvatarURLs: map[string]string{
				"16x16": avatar("16"), "24x24": avatar("24"), "32x32": avatar("32"), "48x48": avatar("48"),
			},
		},
	}
}

func wantBasic() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(testEmail+":"+testToken))
}

// assertCommonHeaders checks what every request carries.
func assertCommonHeaders(t *testing.T, s sent, experimental bool) {
	t.Helper()
	assert.Equal(t, "application/json", s.Header.Get("Accept"))
	assert.Equal(t, "servicedesk-go/"+servicedesk.Version, s.Header.Get("User-Agent"))
	assert.Equal(t, wantBasic(), s.Header.Get("Authorization"))
	if experimental {
		assert.Equal(t, "opt-in", s.Header.Get("X-ExperimentalApi"))
	} else {
		assert.Empty(t, s.Header.Values("X-ExperimentalApi"))
	}
	if s.HasBody {
		assert.Equal(t, "application/json", s.Header.Get("Content-Type"))
	} else {
		assert.Empty(t, s.Header.Get("Content-Type"))
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://your-domain.atlassian.net",
		[]reply{{status: 201, body: fixture(t, "create_customer_201.json")}}, basicAuth())

	got, err := c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{
		Email: "fred@example.com", DisplayName: "Fred F. User",
	})
	require.NoError(t, err)
	assert.Equal(t, fred(), *got)

	s := w.only(t)
	assert.Equal(t, http.MethodPost, s.Method)
	assert.Equal(t, "your-domain.atlassian.net", s.Host)
	assert.Equal(t, "/rest/servicedeskapi/customer", s.Path)
	assert.Empty(t, s.Query)
	assertCommonHeaders(t, s, false)
	assert.JSONEq(t, `{"email":"fred@example.com","displayName":"Fred F. User"}`, string(s.Body))
	assert.NotContains(t, string(s.Body), "fullName")
}

func TestCreateStrictConflict(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://your-domain.atlassian.net", []reply{{
		status: 409,
		body:   `{"errorMessage":"An account already exists for this email","i18nErrorMessage":{"i18nKey":"sd.customer.exists","parameters":[]}}`,
		header: map[string]string{"X-AREQUESTID": "req-42"},
	}}, basicAuth())

	_, err := c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{
		Email: "fred@example.com", DisplayName: "Fred", StrictConflictStatusCode: true,
	})
	require.ErrorIs(t, err, servicedesk.ErrConflict)
	assert.Equal(t, "servicedesk: POST /rest/servicedeskapi/customer: 409 Conflict: An account already exists for this email (request id req-42)", err.Error())
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "sd.customer.exists", apiErr.I18nKey)
	assert.Equal(t, "https://your-domain.atlassian.net/rest/servicedeskapi/customer?strictConflictStatusCode=true", apiErr.URL)

	s := w.only(t)
	assert.Equal(t, "strictConflictStatusCode=true", s.Query)
	assert.Len(t, w.all(), 1, "a 409 is not retried")
}

func TestList(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://your-domain.atlassian.net",
		[]reply{{status: 200, body: fixture(t, "get_customers_200.json")}}, basicAuth())

	page, err := c.Customers.List(context.Background(), "1",
		&servicedesk.ListCustomersOptions{Query: "fred smith&co", Start: 5, Limit: 10})
	require.NoError(t, err)

	s := w.only(t)
	assert.Equal(t, http.MethodGet, s.Method)
	assert.Equal(t, "/rest/servicedeskapi/servicedesk/1/customer", s.Path)
	assert.Equal(t, "limit=10&query=fred+smith%26co&start=5", s.Query)
	assert.False(t, s.HasBody)
	assertCommonHeaders(t, s, true)

	assert.Equal(t, &servicedesk.Page[servicedesk.Customer]{
		Size: 1, Start: 1, Limit: 1, IsLastPage: false,
		Values:  []servicedesk.Customer{fred()},
		Expands: []string{},
		Links: servicedesk.PageLinks{
			Base:    "https://your-domain.atlassian.net/rest/servicedeskapi",
			Context: "context",
			Next:    "https://your-domain.atlassian.net/rest/servicedeskapi/servicedesk/1/customer?start=2&limit=1",
			Prev:    "https://your-domain.atlassian.net/rest/servicedeskapi/servicedesk/1/customer?start=0&limit=1",
		},
	}, page)
}

func TestListSendsOnlyWhatIsSet(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]*servicedesk.ListCustomersOptions{
		"nil":   nil,
		"zero":  {},
		"limit": {Limit: 50},
		"query": {Query: "jo"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, w := mockClient(t, "https://x.atlassian.net",
				[]reply{{status: 200, body: `{"size":0,"start":0,"limit":50,"isLastPage":true,"values":[]}`}})
			_, err := c.Customers.List(context.Background(), "HELP", opts)
			require.NoError(t, err)
			want := map[string]string{"nil": "", "zero": "", "limit": "limit=50", "query": "query=jo"}[name]
			assert.Equal(t, want, w.only(t).Query)
			assert.Equal(t, "/rest/servicedeskapi/servicedesk/HELP/customer", w.only(t).Path)
		})
	}
}

func TestAdd(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 204}}, basicAuth())

	err := c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a1", "a2"}})
	require.NoError(t, err)

	s := w.only(t)
	assert.Equal(t, http.MethodPost, s.Method)
	assert.Equal(t, "/rest/servicedeskapi/servicedesk/1/customer", s.Path)
	assert.Empty(t, s.Query)
	assertCommonHeaders(t, s, false)
	assert.JSONEq(t, `{"accountIds":["a1","a2"]}`, string(s.Body))
}

func TestAddPartialFailure(t *testing.T) {
	t.Parallel()
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{
		status: 400, body: `{"errorMessage":"The following users do not exist: nobody"}`,
	}}, basicAuth())

	err := c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a1", "nobody"}})
	require.ErrorIs(t, err, servicedesk.ErrBadRequest)
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "The following users do not exist: nobody", apiErr.Message)
}

func TestRemove(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 204}}, basicAuth())

	err := c.Customers.Remove(context.Background(), "HELP",
		servicedesk.CustomerIDs{AccountIDs: []string{"a1"}, Usernames: []string{"fred"}})
	require.NoError(t, err)

	s := w.only(t)
	assert.Equal(t, http.MethodDelete, s.Method)
	assert.Equal(t, "/rest/servicedeskapi/servicedesk/HELP/customer", s.Path)
	assertCommonHeaders(t, s, true)
	assert.JSONEq(t, `{"accountIds":["a1"],"usernames":["fred"]}`, string(s.Body))
}

func TestBaseURLs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		base, host, path string
	}{
		{"https://your-domain.atlassian.net", "your-domain.atlassian.net", "/rest/servicedeskapi/servicedesk/1/customer"},
		{"https://your-domain.atlassian.net/", "your-domain.atlassian.net", "/rest/servicedeskapi/servicedesk/1/customer"},
		{servicedesk.CloudGatewayURL("11223344-a1b2-3b33-c444-def123456789"), "api.atlassian.com",
			"/ex/jira/11223344-a1b2-3b33-c444-def123456789/rest/servicedeskapi/servicedesk/1/customer"},
		{"https://jira.example.com/jira", "jira.example.com", "/jira/rest/servicedeskapi/servicedesk/1/customer"},
		{"https://jira.example.com/jira/", "jira.example.com", "/jira/rest/servicedeskapi/servicedesk/1/customer"},
		{"http://127.0.0.1:8080/a%20b/", "127.0.0.1:8080", "/a%20b/rest/servicedeskapi/servicedesk/1/customer"},
	}
	for _, tc := range cases {
		t.Run(tc.base, func(t *testing.T) {
			t.Parallel()
			c, w := mockClient(t, tc.base, []reply{{status: 204}})
			require.NoError(t, c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}}))
			s := w.only(t)
			assert.Equal(t, tc.host, s.Host)
			assert.Equal(t, tc.path, s.Path)
		})
	}
}

func TestCloudGatewayURL(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "https://api.atlassian.com/ex/jira/abc-123", servicedesk.CloudGatewayURL("abc-123"))
}

// TestServiceDeskIDIsOnePathSegment: a desk id is escaped into one path
// segment, and one that cannot be an id or a project key (it holds "/",
// "?", "#", "%" or ";", pasted from a URL, or would be read as a path) is
// refused before anything is sent.
func TestServiceDeskIDIsOnePathSegment(t *testing.T) {
	t.Parallel()
	sent := map[string]string{
		"HELP":  "/rest/servicedeskapi/servicedesk/HELP/customer",
		"Ünï_1": "/rest/servicedeskapi/servicedesk/%C3%9Cn%C3%AF_1/customer",
	}
	for id, want := range sent {
		c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 200, body: `{"values":[],"isLastPage":true}`}})
		_, err := c.Customers.List(context.Background(), id, nil)
		require.NoError(t, err)
		s := w.only(t)
		assert.Equal(t, want, s.Path)
		assert.Empty(t, s.Query)
	}
	for _, id := range []string{"1/../../api/2/user", "a b?c#d%", "..%2F", "1;x", `1\2`, "1\n"} {
		c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 200, body: `{"values":[],"isLastPage":true}`}})
		_, err := c.Customers.List(context.Background(), id, nil)
		require.ErrorIs(t, err, servicedesk.ErrInvalidInput, id)
		assert.ErrorContains(t, err, "serviceDeskID", id)
		assert.Empty(t, w.all(), id)
	}
}

func TestInvalidInputSendsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ids := servicedesk.CustomerIDs{AccountIDs: []string{"a"}}
	cases := []struct {
		name, field string
		call        func(c *servicedesk.Client) error
	}{
		{"empty email", "Email", func(c *servicedesk.Client) error {
			_, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{DisplayName: "F"})
			return err
		}},
		{"malformed email", "Email", func(c *servicedesk.Client) error {
			_, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "fred@", DisplayName: "F"})
			return err
		}},
		{"email with a name", "Email", func(c *servicedesk.Client) error {
			_, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "Fred <fred@example.com>", DisplayName: "F"})
			return err
		}},
		{"empty display name", "DisplayName", func(c *servicedesk.Client) error {
			_, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "  "})
			return err
		}},
		{"display name not UTF-8", "DisplayName", func(c *servicedesk.Client) error {
			_, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "caf\xe9"})
			return err
		}},
		{"query not UTF-8", "Query", func(c *servicedesk.Client) error {
			_, err := c.Customers.List(ctx, "1", &servicedesk.ListCustomersOptions{Query: "caf\xe9"})
			return err
		}},
		{"account id not UTF-8", "AccountIDs[0]", func(c *servicedesk.Client) error {
			return c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{"\xff"}})
		}},
		{"list empty desk", "serviceDeskID", func(c *servicedesk.Client) error {
			_, err := c.Customers.List(ctx, "", nil)
			return err
		}},
		{"list dot-dot desk", "serviceDeskID", func(c *servicedesk.Client) error {
			_, err := c.Customers.List(ctx, "..", nil)
			return err
		}},
		{"desk id holding a path", `"1/customer" is not a service desk id or project key`, func(c *servicedesk.Client) error {
			_, err := c.Customers.List(ctx, "1/customer", nil)
			return err
		}},
		{"desk id pasted from a URL", `not a URL or a path`, func(c *servicedesk.Client) error {
			return c.Customers.Add(ctx, "https://x.atlassian.net/servicedesk/customer/portal/1", ids)
		}},
		{"desk id with a parameter", "serviceDeskID", func(c *servicedesk.Client) error {
			return c.Customers.Remove(ctx, "1;x=y", ids)
		}},
		{"negative start", "Start", func(c *servicedesk.Client) error {
			_, err := c.Customers.List(ctx, "1", &servicedesk.ListCustomersOptions{Start: -1})
			return err
		}},
		{"negative limit", "Limit", func(c *servicedesk.Client) error {
			_, err := c.Customers.List(ctx, "1", &servicedesk.ListCustomersOptions{Limit: -5})
			return err
		}},
		{"add no ids", "CustomerIDs", func(c *servicedesk.Client) error {
			return c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{})
		}},
		{"add empty id", "AccountIDs[1]", func(c *servicedesk.Client) error {
			return c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{"a", ""}})
		}},
		{"add empty desk", "serviceDeskID", func(c *servicedesk.Client) error {
			return c.Customers.Add(ctx, " ", ids)
		}},
		{"remove no ids", "CustomerIDs", func(c *servicedesk.Client) error {
			return c.Customers.Remove(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{}, Usernames: nil})
		}},
		{"remove empty username", "Usernames[0]", func(c *servicedesk.Client) error {
			return c.Customers.Remove(ctx, "1", servicedesk.CustomerIDs{Usernames: []string{""}})
		}},
		{"remove dot desk", "serviceDeskID", func(c *servicedesk.Client) error {
			return c.Customers.Remove(ctx, ".", ids)
		}},
		{"nil context", "ctx", func(c *servicedesk.Client) error {
			//lint:ignore SA1012 a nil context is the case under test
			return c.Customers.Add(nil, "1", ids)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 204}}, basicAuth())
			err := tc.call(c)
			require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
			assert.Contains(t, err.Error(), tc.field)
			assert.True(t, strings.HasPrefix(err.Error(), "servicedesk: invalid input: "), err.Error())
			assert.Empty(t, w.all(), "nothing may be sent")
		})
	}
}

func TestInvalidSuccessBodies(t *testing.T) {
	t.Parallel()
	cases := map[string]reply{
		"html login page": {status: 200, body: "<html><title>Log in</title></html>", header: map[string]string{"Content-Type": "text/html; charset=UTF-8"}},
		"truncated json":  {status: 201, body: `{"accountId":"qm:1","displayName":"Fr`},
		"null":            {status: 201, body: `null`},
		"array":           {status: 201, body: `[]`},
		"empty object":    {status: 201, body: `{}`},
		"empty body":      {status: 201, body: ``, header: map[string]string{"Content-Type": "application/json"}},
		"wrong types":     {status: 201, body: `{"accountId": 12, "active": "yes"}`},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, _ := mockClient(t, "https://x.atlassian.net", []reply{r})
			cust, err := c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "a@b.co", DisplayName: "A"})
			require.ErrorIs(t, err, servicedesk.ErrInvalidResponse)
			assert.Nil(t, cust)
			assert.Contains(t, err.Error(), "POST /rest/servicedeskapi/customer")
			var apiErr *servicedesk.Error
			assert.False(t, errors.As(err, &apiErr), "a 2xx is not an *Error")
		})
	}
}

func TestListRefusesWhatIsNotAPage(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"null":              "null",
		"maintenance":       `{"status":"maintenance"}`,
		"empty object":      `{}`,
		"values null":       `{"size":0,"values":null,"isLastPage":true}`,
		"values not a list": `{"size":0,"values":{},"isLastPage":true}`,
		"negative start":    `{"size":0,"start":-1,"values":[],"isLastPage":true}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 200, body: body}})
			page, err := c.Customers.List(context.Background(), "1", nil)
			require.ErrorIs(t, err, servicedesk.ErrInvalidResponse)
			assert.Nil(t, page)
			assert.Contains(t, err.Error(), "GET /rest/servicedeskapi/servicedesk/1/customer")

			n := 0
			for _, err := range c.Customers.All(context.Background(), "1", nil) {
				n++
				require.ErrorIs(t, err, servicedesk.ErrInvalidResponse, "a walk does not end quietly with nothing")
			}
			assert.Equal(t, 1, n)
		})
	}
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 200, body: `{"size":0,"start":0,"limit":50,"isLastPage":true,"values":[]}`}})
	page, err := c.Customers.List(context.Background(), "1", nil)
	require.NoError(t, err, "an empty page is a page")
	assert.Empty(t, page.Values)
}
