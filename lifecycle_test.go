package servicedesk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// lifeFake starts a fake JSM and a client for it as its Jira
// administrator (fakeClient).
func lifeFake(t *testing.T, srvOpts []servicedesktest.Option, opts ...servicedesk.Option) (*servicedesktest.Server, *servicedesk.Client) {
	t.Helper()
	srv := servicedesktest.NewServer(srvOpts...)
	t.Cleanup(srv.Close)
	return srv, fakeClient(t, srv, opts...)
}

// calls renders the requests a fake received as "METHOD path status".
func calls(srv *servicedesktest.Server) []string {
	var out []string
	for _, r := range srv.Requests() {
		out = append(out, fmt.Sprintf("%s %s %d", r.Method, r.Path, r.Status))
	}
	return out
}

// accountsWith counts the accounts the fake's user search shows for email.
func accountsWith(t *testing.T, srv *servicedesktest.Server, email string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/rest/api/3/user/search?maxResults=1000&query="+url.QueryEscape(email), nil)
	require.NoError(t, err)
	req.SetBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var users []struct {
		EmailAddress string `json:"emailAddress"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&users))
	n := 0
	for _, u := range users {
		if strings.EqualFold(u.EmailAddress, email) {
			n++
		}
	}
	return n
}

func onDesk(srv *servicedesktest.Server, desk, email string) int {
	n := 0
	for _, c := range srv.Customers(desk) {
		if strings.EqualFold(c.EmailAddress, email) {
			n++
		}
	}
	return n
}

const (
	createPath = "/rest/servicedeskapi/customer"
	deskPath   = "/rest/servicedeskapi/servicedesk/1/customer"
	searchPath = "/rest/api/3/user/search"
)

// TestCreateDuplicateEmailIsConflict: Create's 400 for an email that has
// an account is ErrConflict as well as ErrBadRequest, in every form the
// service may word it; other 400s, and the same words from another
// endpoint, are not.
func TestCreateDuplicateEmailIsConflict(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"servicedeskapi, the fake's": `{"errorMessage":"An account already exists for this email.","i18nErrorMessage":{"i18nKey":"sd.customer.email.exists","parameters":[]}}`,
		"i18n key only":              `{"errorMessage":"","i18nErrorMessage":{"i18nKey":"sd.customer.exists","parameters":["fred@example.com"]}}`,
		"key in upper snake case":    `{"errorMessage":"Bad request","i18nErrorMessage":{"i18nKey":"CUSTOMER_EMAIL_ALREADY_EXISTS"}}`,
		"platform errorMessages":     `{"errorMessages":["A user with that username already exists."]}`,
		"platform field error":       `{"errorMessages":[],"errors":{"email":"Email address already in use"}}`,
		"plain text":                 `An account with this email already exists`,
	} {
		c, _ := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 400, body: body}}, basicAuth())
		_, err := c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
		assert.ErrorIs(t, err, servicedesk.ErrConflict, name)
		assert.ErrorIs(t, err, servicedesk.ErrBadRequest, name)
	}
	for name, body := range map[string]string{
		"invalid email":   `{"errorMessage":"The email address is invalid.","i18nErrorMessage":{"i18nKey":"sd.customer.email.invalid"}}`,
		"no display name": `{"errorMessage":"The display name is required.","i18nErrorMessage":{"i18nKey":"sd.customer.displayname.required"}}`,
		"user not found":  `{"errorMessage":"The user does not exist.","i18nErrorMessage":{"i18nKey":"sd.customer.user.not.exist"}}`,
		"empty":           ``,
	} {
		c, _ := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 400, body: body}}, basicAuth())
		_, err := c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
		assert.ErrorIs(t, err, servicedesk.ErrBadRequest, name)
		assert.NotErrorIs(t, err, servicedesk.ErrConflict, name)
	}

	// Another endpoint's 400 in the same words is not Create's duplicate.
	c, _ := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 400, body: `{"errorMessage":"An account already exists for this email."}`}}, basicAuth())
	err := c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
	assert.NotErrorIs(t, err, servicedesk.ErrConflict)

	// An *Error made by hand (a test's fake) matches as the server's does,
	// below a Data Center context path too.
	handMade := &servicedesk.Error{StatusCode: 400, Method: "POST", URL: "https://jira.example.com/jira/rest/servicedeskapi/customer", Message: "An account already exists for this email"}
	assert.ErrorIs(t, handMade, servicedesk.ErrConflict)
	handMade.Method = "GET"
	assert.NotErrorIs(t, handMade, servicedesk.ErrConflict)

	// The fake answers the default request with its 400.
	srv, fc := lifeFake(t, []servicedesktest.Option{servicedesktest.WithCustomer("", "mary@example.com", "Mary")})
	_, err = fc.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "MARY@example.com", DisplayName: "Mary"})
	require.ErrorIs(t, err, servicedesk.ErrConflict)
	require.ErrorIs(t, err, servicedesk.ErrBadRequest)
	assert.Equal(t, []string{"POST " + createPath + " 400"}, calls(srv))
}

// TestCreateMayHaveRunHint: after a Create that may have run (a 5xx, or a
// connection broken after sending), the error says what finds out, not
// List, which cannot see an account on no desk.
func TestCreateMayHaveRunHint(t *testing.T) {
	t.Parallel()
	srv, c := lifeFake(t, nil)
	srv.Inject(servicedesktest.Fault{Method: "POST", Path: createPath, Status: 503, After: true})
	_, err := c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
	require.ErrorIs(t, err, servicedesk.ErrServer)
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	for _, s := range []string{apiErr.Hint, err.Error()} {
		assert.Contains(t, s, "may have been created")
		assert.Contains(t, s, "Ensure")
		assert.Contains(t, s, "StrictConflictStatusCode")
		assert.Contains(t, s, "FindByEmail")
		assert.NotContains(t, s, "List")
	}

	srv.Inject(servicedesktest.Fault{Method: "POST", Path: createPath, Drop: true, After: true})
	_, err = c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "ann@example.com", DisplayName: "Ann"})
	require.Error(t, err)
	assert.NotErrorAs(t, err, &apiErr)
	assert.Contains(t, err.Error(), "may have been created")
	assert.Contains(t, err.Error(), "FindByEmail")
	assert.NotContains(t, err.Error(), "List")
}

func TestFindByEmail(t *testing.T) {
	t.Parallel()
	srv, c := lifeFake(t, []servicedesktest.Option{
		servicedesktest.WithCustomer("", "ada@example.com", "Ada Lovelace"),
		servicedesktest.WithCustomer("1", "grace@example.com", "Grace Hopper"),
	})
	ctx := context.Background()
	cust, err := c.Customers.FindByEmail(ctx, "ADA@Example.com")
	require.NoError(t, err)
	assert.Equal(t, "Ada Lovelace", cust.DisplayName)
	assert.Equal(t, "ada@example.com", cust.EmailAddress)
	assert.True(t, cust.Active)
	assert.NotEmpty(t, cust.AccountID)
	assert.Contains(t, cust.Links.Self, "/rest/api/3/user?accountId=")
	assert.Len(t, cust.Links.AvatarURLs, 0, "the fake's search sends none; nothing is invented")

	reqs := srv.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "GET", reqs[0].Method)
	assert.Equal(t, searchPath, reqs[0].Path)
	q, err := url.ParseQuery(reqs[0].Query)
	require.NoError(t, err)
	assert.Equal(t, url.Values{"query": {"ADA@Example.com"}, "startAt": {"0"}, "maxResults": {"50"}}, q)

	got, err := c.Customers.FindByEmail(ctx, "grace@example.com")
	require.NoError(t, err)
	assert.Equal(t, srv.Customers("1")[0].AccountID, got.AccountID, "an account on a desk is the same account")
}

// TestFindByEmailExactMatchOnly: the search matches prefixes; a longer
// email is not the one asked for.
func TestFindByEmailExactMatchOnly(t *testing.T) {
	t.Parallel()
	srv, c := lifeFake(t, []servicedesktest.Option{servicedesktest.WithCustomer("", "fred@example.com.au", "Fred Down Under")})
	_, err := c.Customers.FindByEmail(context.Background(), "fred@example.com")
	require.ErrorIs(t, err, servicedesk.ErrNotFound)
	var apiErr *servicedesk.Error
	assert.NotErrorAs(t, err, &apiErr, "no account is not an answer from the server")
	assert.Contains(t, err.Error(), "CustomersService.FindByEmail")
	assert.Contains(t, err.Error(), "Browse users and groups")
	assert.NotContains(t, err.Error(), "fred@", "no email in error strings")
	assert.Len(t, srv.Requests(), 1, "a page that is not full is the last")
}

// TestFindByEmailPages: a full first page without the account is followed
// by the next.
func TestFindByEmailPages(t *testing.T) {
	t.Parallel()
	opts := []servicedesktest.Option{}
	for i := range 55 {
		opts = append(opts, servicedesktest.WithCustomer("", fmt.Sprintf("fred@example.com.x%02d", i), "Fred"))
	}
	opts = append(opts, servicedesktest.WithCustomer("", "fred@example.com", "The Fred"))
	srv, c := lifeFake(t, opts)
	cust, err := c.Customers.FindByEmail(context.Background(), "fred@example.com")
	require.NoError(t, err)
	assert.Equal(t, "The Fred", cust.DisplayName)
	var starts []string
	for _, r := range srv.Requests() {
		q, _ := url.ParseQuery(r.Query)
		starts = append(starts, q.Get("startAt"))
	}
	assert.Equal(t, []string{"0", "50"}, starts)
}

// TestFindByEmailBounded: a server whose pages never end is read up to the
// 1,000 matches Jira returns at most, not forever.
func TestFindByEmailBounded(t *testing.T) {
	t.Parallel()
	var page []map[string]any
	for i := range 50 {
		page = append(page, map[string]any{"accountId": fmt.Sprintf("id-%d", i), "emailAddress": fmt.Sprintf("fred@example.com.%d", i), "active": true})
	}
	body, _ := json.Marshal(page)
	c, w := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 200, body: string(body)}}, basicAuth())
	_, err := c.Customers.FindByEmail(context.Background(), "fred@example.com")
	require.ErrorIs(t, err, servicedesk.ErrNotFound)
	reqs := w.all()
	require.Len(t, reqs, 20)
	assert.Contains(t, reqs[19].Query, "startAt=950")
}

// TestFindByEmailSeveralAccounts: two accounts with one email are not a
// choice the SDK makes; hidden emails are counted in the not-found error.
func TestFindByEmailSeveralAccounts(t *testing.T) {
	t.Parallel()
	c, _ := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 200, body: `[
		{"accountId":"a-1","emailAddress":"fred@example.com","displayName":"Fred","active":true},
		{"accountId":"a-2","emailAddress":"Fred@Example.com","displayName":"Fred (portal)","active":true},
		{"accountId":"a-1","emailAddress":"fred@example.com","displayName":"Fred","active":true}]`}}, basicAuth())
	_, err := c.Customers.FindByEmail(context.Background(), "fred@example.com")
	var amb *servicedesk.AmbiguousEmailError
	require.ErrorAs(t, err, &amb)
	require.Len(t, amb.Accounts, 2, "one entry per account")
	assert.Equal(t, "a-1", amb.Accounts[0].AccountID)
	assert.Equal(t, "a-2", amb.Accounts[1].AccountID)
	assert.Equal(t, "servicedesk: CustomersService.FindByEmail: 2 accounts have this email (a-1, a-2): choose one and add it by its id", err.Error())

	c, _ = mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 200, body: `[{"accountId":"a-1","displayName":"Fred","active":true}]`}}, basicAuth())
	_, err = c.Customers.FindByEmail(context.Background(), "fred@example.com")
	require.ErrorIs(t, err, servicedesk.ErrNotFound)
	assert.Contains(t, err.Error(), "1 matches had their email hidden")

	c, _ = mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 200, body: `[{"emailAddress":"fred@example.com"}]`}}, basicAuth())
	_, err = c.Customers.FindByEmail(context.Background(), "fred@example.com")
	require.ErrorIs(t, err, servicedesk.ErrInvalidResponse, "a match with no id cannot be used")

	c, _ = mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 200, body: `{"accountId":"a-1"}`}}, basicAuth())
	_, err = c.Customers.FindByEmail(context.Background(), "fred@example.com")
	require.ErrorIs(t, err, servicedesk.ErrInvalidResponse, "the search answers a list")
}

// TestFindByEmailDataCenter: on a host that is not Cloud, a 404 from
// Cloud's form means Data Center: its own form is asked, and remembered.
func TestFindByEmailDataCenter(t *testing.T) {
	t.Parallel()
	srv, c := lifeFake(t, []servicedesktest.Option{
		servicedesktest.WithDataCenter(), servicedesktest.WithContextPath("/jira"),
		servicedesktest.WithCustomer("", "ada@example.com", "Ada Lovelace"),
	})
	ctx := context.Background()
	cust, err := c.Customers.FindByEmail(ctx, "ada@example.com")
	require.NoError(t, err)
	assert.Empty(t, cust.AccountID, "Data Center has no account ids")
	assert.NotEmpty(t, cust.Name)
	assert.Equal(t, "Ada Lovelace", cust.DisplayName)
	_, err = c.Customers.FindByEmail(ctx, "nobody@example.com")
	require.ErrorIs(t, err, servicedesk.ErrNotFound)
	assert.Equal(t, []string{
		"GET /jira/rest/api/3/user/search 404",
		"GET /jira/rest/api/2/user/search 200",
		"GET /jira/rest/api/2/user/search 200",
	}, calls(srv), "the form that answered is remembered")
	q, _ := url.ParseQuery(srv.Requests()[1].Query)
	assert.Equal(t, "ada@example.com", q.Get("username"))
	assert.False(t, q.Has("query"))
}

// TestFindByEmailCloudHost: a Cloud site goes straight to Cloud's form; a
// 404 there is an answer, not a reason to try Data Center's. Where neither
// form exists the 404 *Error comes back.
func TestFindByEmailCloudHost(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 404, body: `{"errorMessages":["null for uri"]}`}}, basicAuth())
	_, err := c.Customers.FindByEmail(context.Background(), "fred@example.com")
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 404, apiErr.StatusCode)
	s := w.only(t)
	assert.Equal(t, searchPath, s.Path)
	assert.Empty(t, s.Header.Values("X-ExperimentalApi"), "not the servicedeskapi")

	c, w = mockClient(t, "https://jira.example.com", []reply{{status: 404, body: `{"errorMessages":["null for uri"]}`}}, basicAuth())
	_, err = c.Customers.FindByEmail(context.Background(), "fred@example.com")
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "/rest/api/2/user/search", apiErr.URL[strings.Index(apiErr.URL, "/rest"):strings.Index(apiErr.URL, "?")])
	assert.Len(t, w.all(), 2)
	_, err = c.Customers.FindByEmail(context.Background(), "fred@example.com")
	require.Error(t, err)
	assert.Len(t, w.all(), 4, "nothing remembered when neither form answered")
}

func TestFindByEmailRefusals(t *testing.T) {
	t.Parallel()
	srv, c := lifeFake(t, []servicedesktest.Option{servicedesktest.WithUser(servicedesktest.User{Email: "cust@example.com", Role: servicedesktest.RoleCustomer, APIToken: "ct"})})
	for _, email := range []string{"", " ", "Fred <fred@example.com>", "not-an-email"} {
		_, err := c.Customers.FindByEmail(context.Background(), email)
		require.ErrorIs(t, err, servicedesk.ErrInvalidInput, "%q", email)
		assert.Contains(t, err.Error(), "CustomersService.FindByEmail: email")
	}
	assert.Empty(t, srv.Requests())

	cust, err := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth("cust@example.com", "ct"), servicedesk.WithMaxRetries(0))
	require.NoError(t, err)
	_, err = cust.Customers.FindByEmail(context.Background(), "cust@example.com")
	require.ErrorIs(t, err, servicedesk.ErrNotFound, "without Browse users and groups Jira answers an empty list, as the fake does")
	assert.ErrorContains(t, err, "without the Browse users and groups permission it shows none")

	var apiErr *servicedesk.Error
	oc, _ := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 403}}, servicedesk.WithBearerToken("oauth-token"))
	_, err = oc.Customers.FindByEmail(context.Background(), "cust@example.com")
	require.ErrorAs(t, err, &apiErr)
	assert.Contains(t, apiErr.Needs, "Browse users and groups")
	assert.Contains(t, apiErr.Needs, "OAuth 2.0 scope read:jira-user", "an OAuth 2.0 token is told its scope")
}

// TestEnsure covers the three states an email can be in.
func TestEnsure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, c := lifeFake(t, []servicedesktest.Option{
		servicedesktest.WithCustomer("", "ada@example.com", "Ada Lovelace"),
		servicedesktest.WithCustomer("1", "grace@example.com", "Grace Hopper"),
	})

	t.Run("new account", func(t *testing.T) {
		before := len(srv.Requests())
		cust, created, err := c.Customers.Ensure(ctx, "1", servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
		require.NoError(t, err)
		assert.True(t, created)
		assert.Equal(t, "Fred", cust.DisplayName)
		assert.Equal(t, []string{"POST " + createPath + " 201", "POST " + deskPath + " 204"}, calls(srv)[before:])
		assert.Equal(t, "strictConflictStatusCode=true", srv.Requests()[before].Query)
		assert.Equal(t, 1, onDesk(srv, "1", "fred@example.com"))
	})
	t.Run("existing account on no desk", func(t *testing.T) {
		before := len(srv.Requests())
		cust, created, err := c.Customers.Ensure(ctx, "HELP", servicedesk.CreateCustomerRequest{Email: "Ada@Example.com", DisplayName: "Someone Else"})
		require.NoError(t, err)
		assert.False(t, created)
		assert.Equal(t, "Ada Lovelace", cust.DisplayName, "the account as it is")
		assert.Equal(t, []string{
			"POST " + createPath + " 409",
			"GET " + searchPath + " 200",
			"POST /rest/servicedeskapi/servicedesk/HELP/customer 204",
		}, calls(srv)[before:])
		assert.Equal(t, 1, onDesk(srv, "1", "ada@example.com"))
	})
	t.Run("already on the desk", func(t *testing.T) {
		cust, created, err := c.Customers.Ensure(ctx, "1", servicedesk.CreateCustomerRequest{Email: "grace@example.com", DisplayName: "Grace"})
		require.NoError(t, err)
		assert.False(t, created)
		assert.Equal(t, srv.Customers("1")[0].AccountID, cust.AccountID)
		assert.Equal(t, 1, onDesk(srv, "1", "grace@example.com"))
	})
	t.Run("repeated", func(t *testing.T) {
		_, created, err := c.Customers.Ensure(ctx, "1", servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
		require.NoError(t, err)
		assert.False(t, created)
		assert.Equal(t, 1, accountsWith(t, srv, "fred@example.com"))
	})
}

// TestEnsureConcurrent: 16 goroutines ensuring one email make one account,
// one Create, at most one created, and all get the customer. Two clients
// (two processes) cannot coalesce, and still make one account.
func TestEnsureConcurrent(t *testing.T) {
	t.Parallel()
	srv, c := lifeFake(t, []servicedesktest.Option{servicedesktest.WithLatency(20 * time.Millisecond)})
	other, err := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	require.NoError(t, err)
	for _, clients := range [][]*servicedesk.Client{{c}, {c, other}} {
		email := fmt.Sprintf("fred%d@example.com", len(clients))
		var wg sync.WaitGroup
		var created atomic.Int32
		ids := make([]string, 16)
		errs := make([]error, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cust, made, err := clients[i%len(clients)].Customers.Ensure(context.Background(), "1", servicedesk.CreateCustomerRequest{Email: email, DisplayName: "Fred"})
				errs[i] = err
				if err == nil {
					ids[i] = cust.AccountID
				}
				if made {
					created.Add(1)
				}
			}()
		}
		wg.Wait()
		for i := range 16 {
			require.NoError(t, errs[i], "goroutine %d", i)
			assert.Equal(t, ids[0], ids[i], "goroutine %d", i)
		}
		assert.Equal(t, int32(1), created.Load(), "%d clients", len(clients))
		assert.Equal(t, 1, accountsWith(t, srv, email))
		assert.Equal(t, 1, onDesk(srv, "1", email))
		creates := 0
		for _, r := range srv.Requests() {
			if r.Method == "POST" && r.Path == createPath && strings.Contains(r.Query, "strict") {
				creates++
			}
		}
		if len(clients) == 1 {
			assert.Equal(t, 1, creates, "coalesced into one Create")
		}
	}
}

// TestEnsureLostCreateAnswer: the server created the account and the
// client saw the connection drop. Ensure looks before creating again, and
// the next Ensure finds the same account.
func TestEnsureLostCreateAnswer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, c := lifeFake(t, nil)
	srv.Inject(servicedesktest.Fault{Method: "POST", Path: createPath, Drop: true, After: true})
	cust, created, err := c.Customers.Ensure(ctx, "1", servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
	require.NoError(t, err)
	assert.False(t, created, "this call cannot tell that its Create made it")
	assert.Equal(t, []string{"POST " + createPath + " 0", "GET " + searchPath + " 200", "POST " + deskPath + " 204"}, calls(srv))

	again, created, err := c.Customers.Ensure(ctx, "1", servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, cust.AccountID, again.AccountID)
	assert.Equal(t, 1, accountsWith(t, srv, "fred@example.com"))
	assert.Equal(t, 1, onDesk(srv, "1", "fred@example.com"))
}

// TestEnsureCreateThatDidNotRun: a Create that failed before the server
// acted (dropped, or a 503 from the edge) is looked for, not found, and
// sent once more.
func TestEnsureCreateThatDidNotRun(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]servicedesktest.Fault{
		"dropped": {Method: "POST", Path: createPath, Drop: true},
		"503":     {Method: "POST", Path: createPath, Status: 503},
	} {
		srv, c := lifeFake(t, nil)
		srv.Inject(f)
		_, created, err := c.Customers.Ensure(context.Background(), "1", servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
		require.NoError(t, err, name)
		assert.True(t, created, name)
		got := calls(srv)
		require.Len(t, got, 4, name)
		assert.Equal(t, []string{"GET " + searchPath + " 200", "POST " + createPath + " 201", "POST " + deskPath + " 204"}, got[1:], name)
		assert.Equal(t, 1, accountsWith(t, srv, "fred@example.com"), name)
	}

	// Twice unsure: the error says so, and nothing was made twice.
	srv, c := lifeFake(t, nil)
	srv.Inject(servicedesktest.Fault{Method: "POST", Path: createPath, Status: 503, Times: 2})
	_, _, err := c.Customers.Ensure(context.Background(), "1", servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
	var ens *servicedesk.EnsureError
	require.ErrorAs(t, err, &ens)
	assert.Equal(t, "create", ens.Step)
	require.ErrorIs(t, err, servicedesk.ErrServer)
	assert.Contains(t, err.Error(), "Ensure again")
	assert.Len(t, srv.Requests(), 4, "create, find, create, find: no third create")
}

// TestEnsureSteps: the error names the step that failed and wraps its
// cause.
func TestEnsureSteps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, c := lifeFake(t, []servicedesktest.Option{
		servicedesktest.WithCustomer("", "ada@example.com", "Ada"),
		servicedesktest.WithUser(servicedesktest.User{Email: "agent@example.com", Role: servicedesktest.RoleAgent, APIToken: "at", Desks: []string{"1"}}),
	})
	var ens *servicedesk.EnsureError

	agent, err := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth("agent@example.com", "at"))
	require.NoError(t, err)
	_, _, err = agent.Customers.Ensure(ctx, "1", servicedesk.CreateCustomerRequest{Email: "new@example.com", DisplayName: "New"})
	require.ErrorAs(t, err, &ens)
	assert.Equal(t, "create", ens.Step)
	assert.ErrorIs(t, err, servicedesk.ErrForbidden)
	assert.True(t, strings.HasPrefix(err.Error(), "servicedesk: CustomersService.Ensure: create: POST /rest/servicedeskapi/customer: 403 Forbidden"), err.Error())

	_, _, err = c.Customers.Ensure(ctx, "1", servicedesk.CreateCustomerRequest{Email: "ada@example.com.au", DisplayName: "Ada"})
	require.NoError(t, err, "a new email")
	srv.Inject(servicedesktest.Fault{Method: "GET", Path: searchPath, Status: 200, Body: "[]"})
	_, _, err = c.Customers.Ensure(ctx, "1", servicedesk.CreateCustomerRequest{Email: "ada@example.com", DisplayName: "Ada"})
	require.ErrorAs(t, err, &ens)
	assert.Equal(t, "find", ens.Step)
	assert.ErrorIs(t, err, servicedesk.ErrNotFound, "exists, but the search does not show it")
	assert.True(t, strings.HasPrefix(err.Error(), "servicedesk: CustomersService.Ensure: find: not found: CustomersService.FindByEmail: no account the search can see has this email"), err.Error())

	srv.Inject(servicedesktest.Fault{Method: "GET", Path: searchPath, Status: 500, Times: 10})
	_, _, err = c.Customers.Ensure(ctx, "1", servicedesk.CreateCustomerRequest{Email: "ada@example.com", DisplayName: "Ada"})
	require.ErrorAs(t, err, &ens)
	assert.Equal(t, "find", ens.Step)
	assert.ErrorIs(t, err, servicedesk.ErrServer)

	cust, created, err := c.Customers.Ensure(ctx, "NOPE", servicedesk.CreateCustomerRequest{Email: "bob@example.com", DisplayName: "Bob"})
	require.ErrorAs(t, err, &ens)
	assert.Equal(t, "add", ens.Step)
	assert.ErrorIs(t, err, servicedesk.ErrNotFound)
	require.NotNil(t, cust, "the account exists: the caller may add it alone")
	assert.True(t, created)
	assert.Equal(t, "bob@example.com", cust.EmailAddress)

	before := len(srv.Requests())
	for _, tc := range []struct {
		desk string
		req  servicedesk.CreateCustomerRequest
		want string
	}{
		{"", servicedesk.CreateCustomerRequest{Email: "a@example.com", DisplayName: "A"}, "serviceDeskID"},
		{"1", servicedesk.CreateCustomerRequest{Email: "nope", DisplayName: "A"}, "Email"},
		{"1", servicedesk.CreateCustomerRequest{Email: "a@example.com"}, "DisplayName"},
	} {
		_, _, err := c.Customers.Ensure(ctx, tc.desk, tc.req)
		require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
		assert.Contains(t, err.Error(), "CustomersService.Ensure: "+tc.want)
	}
	//lint:ignore SA1012 a nil context is the mistake under test
	_, _, err = c.Customers.Ensure(nil, "1", servicedesk.CreateCustomerRequest{Email: "a@example.com", DisplayName: "A"})
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
	assert.Len(t, srv.Requests(), before, "nothing sent")
}

// TestEnsureDataCenter: on Data Center the account is found by username
// and added by it.
func TestEnsureDataCenter(t *testing.T) {
	t.Parallel()
	srv, c := lifeFake(t, []servicedesktest.Option{
		servicedesktest.WithDataCenter(), servicedesktest.WithContextPath("/jira"),
		servicedesktest.WithCustomer("", "ada@example.com", "Ada Lovelace"),
	})
	for _, email := range []string{"ada@example.com", "new@example.com"} {
		for range 2 {
			cust, _, err := c.Customers.Ensure(context.Background(), "1", servicedesk.CreateCustomerRequest{Email: email, DisplayName: "X"})
			require.NoError(t, err, email)
			assert.Empty(t, cust.AccountID)
			assert.NotEmpty(t, cust.Name)
		}
		assert.Equal(t, 1, onDesk(srv, "1", email), email)
	}
}

// TestEnsureWaitersAndTheirContexts: a call waiting for another stops with
// its own context; when the call it waited for ends with its context (or
// panics), it tries for itself.
func TestEnsureWaitersAndTheirContexts(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	panicNow := make(chan struct{})
	var panicked atomic.Bool
	hooks := servicedesk.Hooks{CallStart: func(ctx context.Context, c servicedesk.CallInfo) context.Context {
		if c.Method == "POST" && c.Path == createPath {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			if ctx.Value(panicKey{}) != nil && panicked.CompareAndSwap(false, true) {
				<-panicNow
				panic("hook")
			}
		}
		return nil
	}}
	srv, c := lifeFake(t, nil, servicedesk.WithHooks(hooks))
	req := servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"}

	// The leader's context ends while it waits: the follower goes on alone.
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, _, err := c.Customers.Ensure(leaderCtx, "1", req)
		leaderErr <- err
	}()
	receive(t, entered)
	followerDone := make(chan error, 1)
	var followerCreated bool
	go func() {
		_, made, err := c.Customers.Ensure(context.Background(), "1", req)
		followerCreated = made
		followerDone <- err
	}()

	// A third, with a short deadline, gives up waiting by itself.
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, _, err := c.Customers.Ensure(short, "1", req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "waiting for another call")

	cancelLeader()
	require.ErrorIs(t, receive(t, leaderErr), context.Canceled)
	receive(t, entered) // the follower's own Create
	close(release)
	require.NoError(t, receive(t, followerDone))
	assert.True(t, followerCreated)
	assert.Equal(t, 1, onDesk(srv, "1", "fred@example.com"))

	// A leader whose hook panics releases those waiting.
	pctx := context.WithValue(context.Background(), panicKey{}, true)
	req.Email = "ann@example.com"
	recovered := make(chan any, 1)
	go func() {
		defer func() { recovered <- recover() }()
		_, _, _ = c.Customers.Ensure(pctx, "1", req)
	}()
	receive(t, entered)
	waiter := make(chan *servicedesk.Customer, 1)
	go func() {
		cust, made, err := c.Customers.Ensure(context.Background(), "1", req)
		assert.NoError(t, err, "the waiter tried for itself")
		assert.True(t, made)
		waiter <- cust
	}()
	time.Sleep(20 * time.Millisecond) // for the waiter to join the leader's call
	close(panicNow)
	assert.Equal(t, "hook", receive(t, recovered))
	require.NotNil(t, receive(t, waiter))
	assert.Equal(t, 1, onDesk(srv, "1", "ann@example.com"))
}

type panicKey struct{}

// receive takes a value from ch, failing the test instead of hanging when
// none comes.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received in 5 s")
		panic("unreachable")
	}
}

func TestRevokePortalOnlyAccessWire(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://your-domain.atlassian.net/", []reply{{status: 204}}, basicAuth())
	require.NoError(t, c.Customers.RevokePortalOnlyAccess(context.Background(), fredID))
	// Atlassian's current document (JSM-FACTS, "The Customer API today"):
	// PUT, the account id as the one path parameter, no query, no body.
	s := w.only(t)
	assert.Equal(t, http.MethodPut, s.Method)
	assert.Equal(t, "/rest/servicedeskapi/customer/user/"+fredID+"/revoke-portal-only-access", s.Path)
	assert.Empty(t, s.Query)
	assert.False(t, s.HasBody)
	assertCommonHeaders(t, s, false)

	c, w = mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 204}}, basicAuth())
	require.NoError(t, c.Customers.RevokePortalOnlyAccess(context.Background(), "a b?c"))
	assert.Equal(t, "/rest/servicedeskapi/customer/user/a%20b%3Fc/revoke-portal-only-access", w.only(t).Path)

	// And what Client.Do refuses in a path segment: an id that a server
	// or proxy decoding it twice, or reading ";" as parameters, would take
	// out of its segment.
	for _, id := range []string{"", "  ", "..", ".", "a/b", `a\b`, "\xff", "%2e%2e", "%2f", "a;b"} {
		err := c.Customers.RevokePortalOnlyAccess(context.Background(), id)
		require.ErrorIs(t, err, servicedesk.ErrInvalidInput, "%q", id)
		assert.Contains(t, err.Error(), "RevokePortalOnlyAccess: accountID")
	}
	assert.Len(t, w.all(), 1)
}

// TestRevokePortalOnlyAccessStatuses: each answer the document lists.
func TestRevokePortalOnlyAccessStatuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status   int
		sentinel error
		attempts int
	}{
		{401, servicedesk.ErrUnauthorized, 1},
		{403, servicedesk.ErrForbidden, 1},
		{404, servicedesk.ErrNotFound, 1},
		{500, servicedesk.ErrServer, 3}, // a PUT: retried
	} {
		c, w := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: tc.status, body: `{"errorMessage":"no"}`}}, basicAuth(), servicedesk.WithMaxRetries(2))
		err := c.Customers.RevokePortalOnlyAccess(context.Background(), "acc")
		require.ErrorIs(t, err, tc.sentinel, "%d", tc.status)
		assert.Len(t, w.all(), tc.attempts, "%d", tc.status)
		var apiErr *servicedesk.Error
		require.ErrorAs(t, err, &apiErr)
		if tc.status == 403 {
			assert.Equal(t, "needs site administration (membership of site-admins)", apiErr.Needs, "an API token has no scopes")
			oc, _ := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 403}}, servicedesk.WithBearerToken("oauth-token"))
			err := oc.Customers.RevokePortalOnlyAccess(context.Background(), "acc")
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, "needs site administration (membership of site-admins); OAuth 2.0 scope manage:servicedesk-customer (granular: write:customer:jira-service-management)", apiErr.Needs)
		}
		if tc.status == 500 {
			assert.Empty(t, apiErr.Hint, "a PUT is not unsure")
		}
	}
}

// TestRevokePortalOnlyAccessOnTheFake: a site administrator revokes, the
// customer can no longer sign in; others are refused.
func TestRevokePortalOnlyAccessOnTheFake(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, jiraAdmin := lifeFake(t, []servicedesktest.Option{
		servicedesktest.WithUser(servicedesktest.User{Email: "site@example.com", Role: servicedesktest.RoleSiteAdmin, APIToken: "st"}),
		servicedesktest.WithConnectApp("app", "s3cr3t-shared-secret"),
	})
	cust := srv.AddUser(servicedesktest.User{Email: "cust@example.com", Role: servicedesktest.RoleCustomer, APIToken: "ct"})
	site, err := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth("site@example.com", "st"))
	require.NoError(t, err)

	err = jiraAdmin.Customers.RevokePortalOnlyAccess(ctx, cust.AccountID)
	require.ErrorIs(t, err, servicedesk.ErrForbidden, "a Jira administrator is not a site administrator")
	assert.False(t, srv.PortalAccessRevoked(cust.AccountID))

	require.ErrorIs(t, site.Customers.RevokePortalOnlyAccess(ctx, "qm:nobody"), servicedesk.ErrNotFound)

	signIn := func() int {
		req, _ := http.NewRequest("GET", srv.URL+searchPath+"?query=x", nil)
		req.SetBasicAuth("cust@example.com", "ct")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusOK, signIn(), "signed in, though a customer's search finds nothing")
	require.NoError(t, site.Customers.RevokePortalOnlyAccess(ctx, cust.AccountID))
	require.NoError(t, site.Customers.RevokePortalOnlyAccess(ctx, cust.AccountID), "revoking twice is revoking once")
	assert.True(t, srv.PortalAccessRevoked(cust.AccountID))
	assert.Equal(t, http.StatusUnauthorized, signIn(), "no longer signs in")

	app, err := servicedesk.NewClient(srv.URL, servicedesk.WithConnectJWT("app", "s3cr3t-shared-secret"))
	require.NoError(t, err)
	before := len(srv.Requests())
	err = app.Customers.RevokePortalOnlyAccess(ctx, cust.AccountID)
	require.ErrorIs(t, err, servicedesk.ErrForbidden)
	assert.Contains(t, err.Error(), "INACCESSIBLE")
	assert.Len(t, srv.Requests(), before, "refused before sending")
	var apiErr *servicedesk.Error
	assert.False(t, errors.As(err, &apiErr), "not an answer from the server")
}

// waitingCtx tells, by closing waiting, when Ensure first selects on its
// Done channel: for a call that found another in flight, that is the
// moment it has joined it. Nothing before coalesce's select calls Done.
type waitingCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func newWaitingCtx(parent context.Context) *waitingCtx {
	return &waitingCtx{Context: parent, waiting: make(chan struct{})}
}

func (c *waitingCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

type leaderKey struct{}

// holdLeaderCreate returns hooks that hold the leader's Create (the call
// whose context carries leaderKey) until joined is closed, and count
// the Creates sent; entered gets a value when the leader's Create starts.
func holdLeaderCreate(entered chan<- struct{}, joined <-chan struct{}, creates *atomic.Int32) servicedesk.Hooks {
	return servicedesk.Hooks{CallStart: func(ctx context.Context, c servicedesk.CallInfo) context.Context {
		if c.Method == "POST" && c.Path == createPath {
			creates.Add(1)
			if ctx.Value(leaderKey{}) != nil {
				entered <- struct{}{}
				select {
				case <-joined:
				case <-time.After(5 * time.Second):
				}
			}
		}
		return nil
	}}
}

// TestEnsureFollowerCopyIsNotShared: the customer the leading call
// returns to its own caller is that caller's to change, at once: those
// waiting must not copy it meanwhile (a data race under -race), and get
// a copy of their own.
func TestEnsureFollowerCopyIsNotShared(t *testing.T) {
	t.Parallel()
	follower := newWaitingCtx(context.Background())
	var creates atomic.Int32
	entered := make(chan struct{}, 4)
	_, c := lifeFake(t, nil, servicedesk.WithHooks(holdLeaderCreate(entered, follower.waiting, &creates)))
	req := servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"}

	leaderCtx := context.WithValue(context.Background(), leaderKey{}, true)
	leaderDone := make(chan *servicedesk.Customer, 1)
	go func() {
		cust, _, err := c.Customers.Ensure(leaderCtx, "1", req)
		assert.NoError(t, err)
		cust.DisplayName = "changed by the leader's caller" // its own result
		leaderDone <- cust
	}()
	receive(t, entered)
	got, _, err := c.Customers.Ensure(follower, "1", req)
	require.NoError(t, err)
	mine := receive(t, leaderDone)
	assert.Equal(t, int32(1), creates.Load(), "the follower joined the leader")
	assert.NotSame(t, mine, got, "the follower's customer is a copy")
}

// TestEnsureCoalescesPerDesk: the same email ensured on two desks at
// once is two ensures; the second call must not take the first's result
// (the desk is part of what calls are coalesced on).
func TestEnsureCoalescesPerDesk(t *testing.T) {
	t.Parallel()
	follower := newWaitingCtx(context.Background())
	var creates atomic.Int32
	entered := make(chan struct{}, 4)
	srv, c := lifeFake(t, []servicedesktest.Option{servicedesktest.WithDesk(servicedesktest.Desk{ID: "2", ProjectKey: "TWO"})},
		servicedesk.WithHooks(holdLeaderCreate(entered, follower.waiting, &creates)))
	req := servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"}

	leaderCtx := context.WithValue(context.Background(), leaderKey{}, true)
	leaderErr := make(chan error, 1)
	go func() {
		_, _, err := c.Customers.Ensure(leaderCtx, "1", req)
		leaderErr <- err
	}()
	receive(t, entered)
	// The leader is released when the desk 2 call first looks at its
	// context's Done: while (wrongly) waiting for the leader, or else in
	// its own requests.
	_, _, err := c.Customers.Ensure(follower, "2", req)
	require.NoError(t, err)
	require.NoError(t, receive(t, leaderErr))
	assert.Equal(t, 1, onDesk(srv, "1", "fred@example.com"))
	assert.Equal(t, 1, onDesk(srv, "2", "fred@example.com"), "the second desk's Ensure added the customer to it")
}

// TestEnsureFollowerTakesLeadersFailure: a follower takes the
// leader's failure when the leader's context did not end, rather than
// sending a Create of its own.
func TestEnsureFollowerTakesLeadersFailure(t *testing.T) {
	t.Parallel()
	follower := newWaitingCtx(context.Background())
	var creates atomic.Int32
	entered := make(chan struct{}, 4)
	srv := servicedesktest.NewServer(servicedesktest.WithUser(servicedesktest.User{Email: "agent@example.com", Role: servicedesktest.RoleAgent, APIToken: "at", Desks: []string{"1"}}))
	t.Cleanup(srv.Close)
	agent, err := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth("agent@example.com", "at"),
		servicedesk.WithHooks(holdLeaderCreate(entered, follower.waiting, &creates)))
	require.NoError(t, err)
	req := servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"}

	leaderCtx := context.WithValue(context.Background(), leaderKey{}, true)
	leaderErr := make(chan error, 1)
	go func() {
		_, _, err := agent.Customers.Ensure(leaderCtx, "1", req)
		leaderErr <- err
	}()
	receive(t, entered)
	_, _, err = agent.Customers.Ensure(follower, "1", req)
	require.ErrorIs(t, err, servicedesk.ErrForbidden)
	require.ErrorIs(t, receive(t, leaderErr), servicedesk.ErrForbidden)
	assert.Equal(t, int32(1), creates.Load(), "one Create for both calls")
}

// TestEnsureWaiterErrorIsEnsureError: Ensure's error is an
// *EnsureError, for a call whose context ends while it waits for another
// (step "wait") as for the one it waited for (step "create").
func TestEnsureWaiterErrorIsEnsureError(t *testing.T) {
	t.Parallel()
	parent, cancelWaiter := context.WithCancel(context.Background())
	defer cancelWaiter()
	follower := newWaitingCtx(parent)
	var creates atomic.Int32
	entered := make(chan struct{}, 4)
	never := make(chan struct{})
	_, c := lifeFake(t, nil, servicedesk.WithHooks(holdLeaderCreate(entered, never, &creates)))
	req := servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"}

	leaderCtx, cancelLeader := context.WithCancel(context.WithValue(context.Background(), leaderKey{}, true))
	leaderErr := make(chan error, 1)
	go func() {
		_, _, err := c.Customers.Ensure(leaderCtx, "1", req)
		leaderErr <- err
	}()
	receive(t, entered)
	go func() {
		<-follower.waiting // joined the leader
		cancelWaiter()
	}()
	_, _, err := c.Customers.Ensure(follower, "1", req)
	require.ErrorIs(t, err, context.Canceled)
	cancelLeader()
	close(never)
	var ens *servicedesk.EnsureError
	require.ErrorAs(t, receive(t, leaderErr), &ens, "the leader's cancellation is an *EnsureError")
	require.ErrorAs(t, err, &ens, "the waiter's cancellation: %v", err)
	assert.Equal(t, "wait", ens.Step)
}

// refuseCreate is a RateLimiter (a caller's own, as WithRateLimiter
// allows) that refuses Create with an error of its own and lets the rest
// through.
type refuseCreate struct{}

func (refuseCreate) Wait(_ context.Context, ep servicedesk.Endpoint, _ time.Duration) error {
	if ep.Method == "POST" && ep.Path == createPath {
		return errors.New("quota service unavailable")
	}
	return nil
}
func (refuseCreate) Done(servicedesk.Endpoint, servicedesk.Outcome) {}

// TestEnsureCreateNeverSentIsNotUnsure: a Create that was never sent
// (a caller's own limiter refused it with an error of its own) cannot
// have run: Ensure takes the pipeline's word for it, and neither looks
// for the account nor sends Create again.
func TestEnsureCreateNeverSentIsNotUnsure(t *testing.T) {
	t.Parallel()
	srv, c := lifeFake(t, nil, servicedesk.WithRateLimiter(refuseCreate{}))
	_, err := c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "may have been created", "Create itself knows it never left")

	_, _, err = c.Customers.Ensure(context.Background(), "1", servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
	require.Error(t, err)
	assert.Empty(t, calls(srv), "nothing was sent, so there is nothing to look for")
	assert.NotContains(t, err.Error(), "looking for the account")
}

// TestFindByEmailRefusesAPageLargerThanAsked: the search is asked for 50
// users a page; a page of more is a bad answer (ErrInvalidResponse), not
// work without bound (50,000 matches took seconds to sort out, and named
// each in the error).
func TestFindByEmailRefusesAPageLargerThanAsked(t *testing.T) {
	t.Parallel()
	page := make([]map[string]any, 51)
	for i := range page {
		page[i] = map[string]any{"accountId": fmt.Sprintf("a-%d", i), "emailAddress": "fred@example.com"}
	}
	body, err := json.Marshal(page)
	require.NoError(t, err)
	c, w := mockClient(t, "https://your-domain.atlassian.net", []reply{{status: 200, body: string(body)}}, basicAuth())
	_, err = c.Customers.FindByEmail(context.Background(), "fred@example.com")
	require.ErrorIs(t, err, servicedesk.ErrInvalidResponse)
	assert.Contains(t, err.Error(), "asked for 50 users, got 51")
	assert.Contains(t, w.only(t).Query, "maxResults=50")
}

// TestAmbiguousEmailErrorNamesTenAccounts: the error's text names ten
// accounts and counts the rest; Accounts has them all.
func TestAmbiguousEmailErrorNamesTenAccounts(t *testing.T) {
	t.Parallel()
	amb := &servicedesk.AmbiguousEmailError{}
	for i := range 25 {
		amb.Accounts = append(amb.Accounts, servicedesk.Customer{AccountID: fmt.Sprintf("a-%d", i)})
	}
	msg := amb.Error()
	assert.Contains(t, msg, "25 accounts have this email (a-0, a-1, a-2, a-3, a-4, a-5, a-6, a-7, a-8, a-9, and 15 more)")
	assert.NotContains(t, msg, "a-10")

	two := &servicedesk.AmbiguousEmailError{Accounts: amb.Accounts[:2]}
	assert.Contains(t, two.Error(), "2 accounts have this email (a-0, a-1)")
}
