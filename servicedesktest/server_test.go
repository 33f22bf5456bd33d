package servicedesktest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/internal/connect"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

var ctx = context.Background()

func start(t *testing.T, opts ...servicedesktest.Option) *servicedesktest.Server {
	t.Helper()
	srv := servicedesktest.NewServer(opts...)
	t.Cleanup(srv.Close)
	return srv
}

func client(t *testing.T, srv *servicedesktest.Server, opts ...servicedesk.Option) *servicedesk.Client {
	t.Helper()
	if len(opts) == 0 {
		opts = []servicedesk.Option{servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken)}
	}
	opts = append(opts, servicedesk.WithRetryWait(time.Millisecond, 5*time.Millisecond), servicedesk.WithRateLimitWait(10*time.Second))
	c, err := servicedesk.NewClient(srv.URL, opts...)
	require.NoError(t, err)
	return c
}

func accountIDs(cs []servicedesk.Customer) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.AccountID)
	}
	return ids
}

// raw sends a request the SDK would refuse to send, as admin unless auth is set.
func raw(t *testing.T, srv *servicedesktest.Server, method, path, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken)
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

var accountIDShape = regexp.MustCompile(`^qm:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}:[0-9a-f]{24}$`)

func TestWalkThrough(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := client(t, srv)

	fred, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred F. User"})
	require.NoError(t, err)
	assert.Regexp(t, accountIDShape, fred.AccountID)
	assert.Equal(t, fred.AccountID, fred.Name)
	assert.Equal(t, fred.AccountID, fred.Key)
	assert.Equal(t, "fred@example.com", fred.EmailAddress)
	assert.Equal(t, "Fred F. User", fred.DisplayName)
	assert.True(t, fred.Active)
	assert.NotEmpty(t, fred.TimeZone)
	assert.Equal(t, srv.URL+"/rest/api/2/user?username="+fred.AccountID, fred.Links.Self)
	assert.Len(t, fred.Links.AvatarURLs, 4)
	assert.Empty(t, srv.Customers("1"), "a new customer is on no desk")

	require.NoError(t, c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{fred.AccountID}}))
	page, err := c.Customers.List(ctx, "HELP", nil)
	require.NoError(t, err)
	require.Len(t, page.Values, 1)
	assert.Equal(t, *fred, page.Values[0])
	assert.True(t, page.IsLastPage)

	require.NoError(t, c.Customers.Remove(ctx, "HELP", servicedesk.CustomerIDs{AccountIDs: []string{fred.AccountID}}))
	assert.Empty(t, srv.Customers("1"))
}

func TestCreateDuplicates(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithCustomer("", "Fred@Example.com", "Fred"))
	c := client(t, srv)
	_, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "fred@example.COM", DisplayName: "Fred 2"})
	require.ErrorIs(t, err, servicedesk.ErrBadRequest)
	_, err = c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred 2", StrictConflictStatusCode: true})
	require.ErrorIs(t, err, servicedesk.ErrConflict)
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "An account already exists for this email.", apiErr.Message)
	assert.Equal(t, "sd.customer.email.exists", apiErr.I18nKey)
	assert.NotEmpty(t, apiErr.RequestID)
}

func TestCreateValidatesLikeJSM(t *testing.T) {
	t.Parallel()
	srv := start(t)
	resp, body := raw(t, srv, "POST", "/rest/servicedeskapi/customer", `{"email":"not-an-email","displayName":"X"}`, nil)
	assert.Equal(t, 400, resp.StatusCode)
	assert.Contains(t, string(body), "email address is invalid")
	assert.NotEmpty(t, resp.Header.Get("X-AREQUESTID"))

	resp, _ = raw(t, srv, "POST", "/rest/servicedeskapi/customer", `{"email":"a@b.co"}`, nil)
	assert.Equal(t, 400, resp.StatusCode, "display name required")

	// fullName is the deprecated alias of displayName.
	resp, body = raw(t, srv, "POST", "/rest/servicedeskapi/customer", `{"email":"a@b.co","fullName":"Alias"}`, map[string]string{"Content-Type": "application/json"})
	assert.Equal(t, 201, resp.StatusCode)
	assert.Contains(t, string(body), `"displayName":"Alias"`)
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	srv := start(t,
		servicedesktest.WithUser(servicedesktest.User{Email: "dc@example.com", DisplayName: "DC", Username: "dcuser", Role: servicedesktest.RoleJiraAdmin, APIToken: "pw", PAT: "pat-1"}))
	for name, opt := range map[string]servicedesk.Option{
		"no credentials": nil,
		"wrong token":    servicedesk.WithBasicAuth(servicedesktest.AdminEmail, "wrong"),
		"wrong pat":      servicedesk.WithBearerToken("pat-2"),
		"unknown app":    servicedesk.WithConnectJWT("nobody", "secret"),
	} {
		opts := []servicedesk.Option{servicedesk.WithMaxRetries(0)}
		if opt != nil {
			opts = append(opts, opt)
		}
		c, err := servicedesk.NewClient(srv.URL, opts...)
		require.NoError(t, err)
		_, err = c.Customers.List(ctx, "1", nil)
		assert.ErrorIs(t, err, servicedesk.ErrUnauthorized, name)
	}
	for name, opt := range map[string]servicedesk.Option{
		"pat":             servicedesk.WithBearerToken("pat-1"),
		"dc username":     servicedesk.WithBasicAuth("dcuser", "pw"),
		"email, any case": servicedesk.WithBasicAuth("DC@example.com", "pw"),
		"default admin":   servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken),
	} {
		_, err := client(t, srv, opt).Customers.List(ctx, "1", nil)
		assert.NoError(t, err, name)
	}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	srv := start(t,
		servicedesktest.WithDesk(servicedesktest.Desk{ID: "2", ProjectKey: "OPS"}),
		servicedesktest.WithUser(servicedesktest.User{Email: "agent@example.com", DisplayName: "Agent", Role: servicedesktest.RoleAgent, Desks: []string{"HELP"}, APIToken: "t"}),
		servicedesktest.WithUser(servicedesktest.User{Email: "lead@example.com", DisplayName: "Lead", Role: servicedesktest.RoleDeskAdmin, Desks: []string{"1"}, APIToken: "t"}),
		servicedesktest.WithUser(servicedesktest.User{Email: "cust@example.com", DisplayName: "Cust", Role: servicedesktest.RoleCustomer, APIToken: "t"}),
		servicedesktest.WithCustomer("1", "x@example.com", "X"),
	)
	x := srv.Customers("1")[0]
	ids := servicedesk.CustomerIDs{AccountIDs: []string{x.AccountID}}
	as := func(email string) *servicedesk.Client { return client(t, srv, servicedesk.WithBasicAuth(email, "t")) }
	create := func(c *servicedesk.Client) error {
		_, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "new@example.com", DisplayName: "New"})
		return err
	}
	list := func(desk string) func(c *servicedesk.Client) error {
		return func(c *servicedesk.Client) error { _, err := c.Customers.List(ctx, desk, nil); return err }
	}
	add := func(desk string) func(c *servicedesk.Client) error {
		return func(c *servicedesk.Client) error { return c.Customers.Add(ctx, desk, ids) }
	}
	remove := func(desk string) func(c *servicedesk.Client) error {
		return func(c *servicedesk.Client) error { return c.Customers.Remove(ctx, desk, ids) }
	}
	cases := []struct {
		who     string
		what    string
		call    func(*servicedesk.Client) error
		allowed bool
	}{
		{"agent@example.com", "create", create, false},
		{"agent@example.com", "list own desk", list("1"), true},
		{"agent@example.com", "list other desk", list("OPS"), false},
		{"agent@example.com", "add", add("1"), false},
		{"lead@example.com", "create", create, false},
		{"lead@example.com", "list", list("HELP"), true},
		{"lead@example.com", "add own desk", add("HELP"), true},
		{"lead@example.com", "add other desk", add("2"), false},
		{"lead@example.com", "remove own desk", remove("1"), true},
		{"lead@example.com", "remove other desk", remove("2"), false},
		{"cust@example.com", "list", list("1"), false},
		{"cust@example.com", "add", add("1"), false},
	}
	for _, tc := range cases {
		err := tc.call(as(tc.who))
		if tc.allowed {
			assert.NoError(t, err, "%s: %s", tc.who, tc.what)
		} else {
			assert.ErrorIs(t, err, servicedesk.ErrForbidden, "%s: %s", tc.who, tc.what)
		}
	}
}

func TestListNeedsTheExperimentalHeader(t *testing.T) {
	t.Parallel()
	srv := start(t)
	for _, method := range []string{"GET", "DELETE"} {
		resp, body := raw(t, srv, method, "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["a"]}`, nil)
		assert.Equal(t, http.StatusPreconditionFailed, resp.StatusCode, method)
		assert.Contains(t, string(body), "X-ExperimentalApi")
	}
	resp, _ := raw(t, srv, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["a"]}`, nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "add is not experimental; a is unknown")
}

func TestListQueryMatching(t *testing.T) {
	t.Parallel()
	srv := start(t,
		servicedesktest.WithCustomer("1", "jsmith@example.com", "John Smith"),
		servicedesktest.WithCustomer("1", "mary@example.com", "Mary Jones"),
	)
	c := client(t, srv)
	for _, q := range []string{"John", "Jo", "Smi", "Smith", "jsmith", "john sm", "JOHN"} {
		page, err := c.Customers.List(ctx, "1", &servicedesk.ListCustomersOptions{Query: q})
		require.NoError(t, err)
		names := []string{}
		for _, v := range page.Values {
			names = append(names, v.DisplayName)
		}
		if q == "Jo" {
			assert.ElementsMatch(t, []string{"John Smith", "Mary Jones"}, names, q)
		} else {
			assert.Equal(t, []string{"John Smith"}, names, q)
		}
	}
	page, err := c.Customers.List(ctx, "1", &servicedesk.ListCustomersOptions{Query: "mith"})
	require.NoError(t, err)
	assert.Empty(t, page.Values, "the middle of a word does not match")
}

func TestListPagingAndLinks(t *testing.T) {
	t.Parallel()
	var opts []servicedesktest.Option
	for i := 0; i < 120; i++ {
		opts = append(opts, servicedesktest.WithCustomer("1", fmt.Sprintf("c%03d@example.com", i), fmt.Sprintf("Customer %03d", i)))
	}
	srv := start(t, append(opts, servicedesktest.WithPublicURL("https://site.example.net"))...)
	c := client(t, srv)

	page, err := c.Customers.List(ctx, "1", &servicedesk.ListCustomersOptions{Start: 60, Limit: 100})
	require.NoError(t, err)
	assert.Equal(t, 50, page.Limit, "the server caps the limit")
	assert.Equal(t, 50, page.Size)
	assert.Equal(t, 60, page.Start)
	assert.False(t, page.IsLastPage)
	assert.Equal(t, "Customer 060", page.Values[0].DisplayName)
	assert.Equal(t, "https://site.example.net/rest/servicedeskapi", page.Links.Base)
	assert.Equal(t, "https://site.example.net/rest/servicedeskapi/servicedesk/1/customer?limit=50&start=110", page.Links.Next)
	assert.Equal(t, "https://site.example.net/rest/servicedeskapi/servicedesk/1/customer?limit=50&start=10", page.Links.Prev)
	assert.Equal(t, "https://site.example.net/rest/servicedeskapi/servicedesk/1/customer?limit=50&start=60", page.Links.Self)

	// The SDK walks it all through the server's own URL, not the public one.
	var n int
	for cust, err := range c.Customers.All(ctx, "HELP", nil) {
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("Customer %03d", n), cust.DisplayName)
		n++
	}
	assert.Equal(t, 120, n)
}

func TestAddSemantics(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithCustomer("", "a@example.com", "A"), servicedesktest.WithCustomer("1", "b@example.com", "B"))
	c := client(t, srv)
	a, b := srv.AddCustomer("", "a@example.com", ""), srv.Customers("1")[0]

	err := c.Customers.Add(ctx, "404", servicedesk.CustomerIDs{AccountIDs: []string{a.AccountID}})
	assert.ErrorIs(t, err, servicedesk.ErrNotFound)
	err = c.Customers.Add(ctx, "NOPE", servicedesk.CustomerIDs{AccountIDs: []string{a.AccountID}})
	assert.ErrorIs(t, err, servicedesk.ErrNotFound)

	err = c.Customers.Add(ctx, "HELP", servicedesk.CustomerIDs{AccountIDs: []string{"qm:nobody", a.AccountID, b.AccountID}})
	require.ErrorIs(t, err, servicedesk.ErrBadRequest)
	assert.Contains(t, err.Error(), "qm:nobody")
	assert.Equal(t, []string{b.AccountID, a.AccountID}, accountIDs(srv.Customers("1")), "the valid ones were still added, b once")

	require.NoError(t, c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{a.AccountID}}), "already there: a no-op")
	assert.Len(t, srv.Customers("1"), 2)
}

func TestRemoveSemantics(t *testing.T) {
	t.Parallel()
	srv := start(t,
		servicedesktest.WithDesk(servicedesktest.Desk{ID: "2", ProjectKey: "OPEN", OpenAccess: true}),
		servicedesktest.WithCustomer("1", "a@example.com", "A"),
		servicedesktest.WithCustomer("2", "b@example.com", "B"),
	)
	c := client(t, srv)
	a := srv.Customers("1")[0]
	err := c.Customers.Remove(ctx, "OPEN", servicedesk.CustomerIDs{AccountIDs: []string{srv.Customers("2")[0].AccountID}})
	assert.ErrorIs(t, err, servicedesk.ErrBadRequest)
	assert.Len(t, srv.Customers("2"), 1)

	require.NoError(t, c.Customers.Remove(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{"qm:absent"}}), "absent: a no-op")
	assert.Len(t, srv.Customers("1"), 1)
	require.NoError(t, c.Customers.Remove(ctx, "1", servicedesk.CustomerIDs{Usernames: []string{a.Name}}))
	assert.Empty(t, srv.Customers("1"))
}

func TestConnectApp(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithConnectApp("com.example.app", "shared-secret"), servicedesktest.WithContextPath("/jira"))
	assert.True(t, strings.HasSuffix(srv.URL, "/jira"))
	c := client(t, srv, servicedesk.WithConnectJWT("com.example.app", "shared-secret"))

	cust, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "app@example.com", DisplayName: "Via App"})
	require.NoError(t, err)
	require.NoError(t, c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{cust.AccountID}}))
	page, err := c.Customers.List(ctx, "1", &servicedesk.ListCustomersOptions{Query: "Via App*~ é", Limit: 5})
	require.NoError(t, err)
	assert.Empty(t, page.Values)
	for _, r := range srv.Requests() {
		assert.Equal(t, "JWT", r.Auth)
	}

	// The SDK refuses Remove itself; the server refuses it too.
	err = c.Customers.Remove(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{cust.AccountID}})
	assert.ErrorIs(t, err, servicedesk.ErrForbidden)
	u := srv.URL + "/rest/servicedeskapi/servicedesk/1/customer"
	req, _ := http.NewRequest("DELETE", u, bytes.NewReader([]byte(`{"accountIds":["x"]}`)))
	tok, err := connect.Sign("com.example.app", "shared-secret", "DELETE", req.URL, "/jira", time.Now(), time.Minute)
	require.NoError(t, err)
	req.Header.Set("Authorization", "JWT "+tok)
	req.Header.Set("X-ExperimentalApi", "opt-in")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)

	// A token signed for another request (qsh) is refused.
	req, _ = http.NewRequest("GET", u+"?limit=1", nil)
	tok, _ = connect.Sign("com.example.app", "shared-secret", "GET", req.URL, "/jira", time.Now(), time.Minute)
	req2, _ := http.NewRequest("GET", u+"?limit=2", nil)
	req2.Header.Set("Authorization", "JWT "+tok)
	req2.Header.Set("X-ExperimentalApi", "opt-in")
	resp, err = http.DefaultClient.Do(req2)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithRateLimit(2, time.Second))
	resp, _ := raw(t, srv, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
	assert.Equal(t, "2", resp.Header.Get("X-RateLimit-Limit"))
	assert.Equal(t, "1", resp.Header.Get("X-RateLimit-Remaining"))
	raw(t, srv, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
	resp, body := raw(t, srv, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "0", resp.Header.Get("Retry-After"))
	assert.Equal(t, "jira-burst-based", resp.Header.Get("RateLimit-Reason"))
	reset, err := time.Parse(time.RFC3339Nano, resp.Header.Get("X-RateLimit-Reset"))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), reset, time.Second)
	assert.Contains(t, string(body), "errorMessage")

	// The SDK waits for the reset and gets through.
	c := client(t, srv)
	_, err = c.Customers.List(ctx, "1", nil)
	require.NoError(t, err)
}

func TestInjectedFailures(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := client(t, srv)
	srv.FailNext(2, http.StatusServiceUnavailable)
	_, err := c.Customers.List(ctx, "1", nil)
	require.NoError(t, err, "list is retried through two 503s")
	assert.Len(t, srv.Requests(), 3)

	srv.FailNext(1, http.StatusBadGateway)
	_, err = c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "z@example.com", DisplayName: "Z"})
	require.ErrorIs(t, err, servicedesk.ErrServer, "create is not retried on 5xx")
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "502 Bad Gateway", apiErr.Message)
}

func TestLatency(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithLatency(200*time.Millisecond))
	c := client(t, srv)
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, err := c.Customers.List(short, "1", nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestSeedMakesIDsDeterministic(t *testing.T) {
	t.Parallel()
	// Everything a server generates: the default admin, seeded users and
	// customers, created customers and request ids; the seed last among
	// the options on purpose.
	state := func() []string {
		srv := start(t,
			servicedesktest.WithUser(servicedesktest.User{Email: "u@example.com", APIToken: "t"}),
			servicedesktest.WithCustomer("1", "c@example.com", "C"),
			servicedesktest.WithSeed(42))
		c := client(t, srv)
		cust, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "s@example.com", DisplayName: "S"})
		require.NoError(t, err)
		require.NoError(t, c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{cust.AccountID}}))
		var out []string
		for cu, err := range c.Customers.All(ctx, "1", nil) {
			require.NoError(t, err)
			out = append(out, cu.AccountID, cu.Links.AvatarURLs["48x48"])
		}
		resp, _ := raw(t, srv, "GET", "/rest/servicedeskapi/servicedesk/1/customer", "", map[string]string{"X-ExperimentalApi": "opt-in"})
		return append(out, resp.Header.Get("X-AREQUESTID"))
	}
	first := state()
	assert.Len(t, first, 2*2+1, "customers c and s, their avatars, and a request id")
	assert.Equal(t, first, state())
}

func TestSeedCoversTheDefaultAdmin(t *testing.T) {
	t.Parallel()
	admin := func() string {
		srv := start(t, servicedesktest.WithSeed(7))
		return srv.AddCustomer("1", servicedesktest.AdminEmail, "").AccountID
	}
	assert.Equal(t, admin(), admin())
}

func TestEmptyContextPathServesAtTheRoot(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "/", "//"} {
		srv := start(t, servicedesktest.WithContextPath(p))
		assert.NotContains(t, srv.URL[len("http://"):], "/", "URL of %q", p)
		page, err := client(t, srv).Customers.List(ctx, "1", nil)
		require.NoError(t, err, "context path %q", p)
		assert.Empty(t, page.Values)
	}
}

func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := client(t, srv)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cust, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: fmt.Sprintf("p%d@example.com", i), DisplayName: "P"})
			if assert.NoError(t, err) {
				assert.NoError(t, c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{cust.AccountID}}))
			}
		}()
	}
	wg.Wait()
	assert.Len(t, srv.Customers("1"), 20)
}

func TestUnknownPathsAre404(t *testing.T) {
	t.Parallel()
	srv := start(t)
	resp, body := raw(t, srv, "GET", "/rest/api/2/myself", "", nil)
	assert.Equal(t, 404, resp.StatusCode)
	var platform struct{ ErrorMessages []string }
	require.NoError(t, json.Unmarshal(body, &platform))
	assert.NotEmpty(t, platform.ErrorMessages)
}

// TestConnectQSHOfInvalidUTF8AgreesWithAtlassian: a query with bytes that
// are not UTF-8 ("caf%E9") is hashed as atlassian-jwt hashes it, with
// U+FFFD in their place, so the fake accepts what Jira accepts and refuses
// what Jira refuses.
func TestConnectQSHOfInvalidUTF8AgreesWithAtlassian(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithConnectApp("com.example.app", "shared-secret"))
	send := func(canonical string) int {
		sum := sha256.Sum256([]byte(canonical))
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": "com.example.app", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
			"qsh": hex.EncodeToString(sum[:]),
		}).SignedString([]byte("shared-secret"))
		require.NoError(t, err)
		req, _ := http.NewRequest("GET", srv.URL+"/rest/servicedeskapi/servicedesk/1/customer?query=caf%E9", nil)
		req.Header.Set("Authorization", "JWT "+tok)
		req.Header.Set("X-ExperimentalApi", "opt-in")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	// The canonical request atlassian-jwt 2.0.3 builds (see internal/connect/testdata).
	assert.Equal(t, http.StatusOK, send("GET&/rest/servicedeskapi/servicedesk/1/customer&query=caf%EF%BF%BD"))
	assert.Equal(t, http.StatusUnauthorized, send("GET&/rest/servicedeskapi/servicedesk/1/customer&query=caf%E9"))
}

func TestBurstLimitPerEndpointAndMethod(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{
		Method: "GET", Path: "/rest/servicedeskapi/servicedesk/*/customer", Requests: 2, Window: time.Hour,
	}))
	opt := map[string]string{"X-ExperimentalApi": "opt-in"}
	for i := 0; i < 2; i++ {
		resp, _ := raw(t, srv, "GET", "/rest/servicedeskapi/servicedesk/1/customer", "", opt)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("RateLimit-Policy"), "announced on 429s only, by default")
	}
	resp, body := raw(t, srv, "GET", "/rest/servicedeskapi/servicedesk/1/customer", "", opt)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Contains(t, string(body), "errorMessage")
	h := resp.Header
	assert.Equal(t, "jira-burst-based", h.Get("RateLimit-Reason"))
	assert.Equal(t, "2", h.Get("X-RateLimit-Limit"))
	assert.Equal(t, "0", h.Get("X-RateLimit-Remaining"))
	retryAfter, err := strconv.Atoi(h.Get("Retry-After"))
	require.NoError(t, err)
	assert.InDelta(t, 3600, retryAfter, 5)
	reset, err := time.Parse(time.RFC3339, h.Get("X-RateLimit-Reset"))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(time.Hour), reset, 5*time.Second)
	assert.Equal(t, `"jira-burst-based";q=2;w=3600`, h.Get("RateLimit-Policy"))
	assert.Regexp(t, `^"jira-burst-based";r=0;t=3[56]\d\d$`, h.Get("RateLimit"))

	// Another desk is another path: counted apart. Another method is not limited.
	resp, _ = raw(t, srv, "GET", "/rest/servicedeskapi/servicedesk/HELP/customer", "", opt)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = raw(t, srv, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "served: x does not exist")
	var got []int
	for _, r := range srv.Requests() {
		got = append(got, r.Status)
	}
	assert.Equal(t, []int{200, 200, 429, 200, 400}, got)
}

func TestAnnounceAlwaysAndBeta(t *testing.T) {
	t.Parallel()
	limit := servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{Method: "POST", Requests: 5, Window: time.Hour})
	srv := start(t, limit, servicedesktest.WithAnnounce(servicedesktest.AnnounceAlways),
		servicedesktest.WithQuota(servicedesktest.Quota{Points: 100, Window: time.Hour}))
	resp, _ := raw(t, srv, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
	assert.Equal(t, `"jira-burst-based";q=5;w=3600, "global-app-quota";q=100;w=3600`, resp.Header.Get("RateLimit-Policy"))
	assert.Regexp(t, `^"jira-burst-based";r=4;t=3[56]\d\d, "global-app-quota";r=99;t=3[56]\d\d$`, resp.Header.Get("RateLimit"))

	srv = start(t, limit, servicedesktest.WithAnnounce(servicedesktest.AnnounceBeta))
	resp, _ = raw(t, srv, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
	assert.Empty(t, resp.Header.Get("RateLimit-Policy"))
	assert.Equal(t, `"jira-burst-based";q=5;w=3600`, resp.Header.Get("Beta-RateLimit-Policy"))
	assert.Regexp(t, `^"jira-burst-based";r=4;t=\d+$`, resp.Header.Get("Beta-RateLimit"))
}

func TestQuotaCountsPointsAndWarns(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithQuota(servicedesktest.Quota{Points: 10, Window: time.Hour}))
	for i := 0; i < 4; i++ {
		srv.AddCustomer("1", fmt.Sprintf("q%d@example.com", i), "Q")
	}
	opt := map[string]string{"X-ExperimentalApi": "opt-in"}
	resp, _ := raw(t, srv, "GET", "/rest/servicedeskapi/servicedesk/1/customer", "", opt) // 1 + 2×4 = 9 points
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("X-RateLimit-NearLimit"))
	resp, _ = raw(t, srv, "GET", "/rest/servicedeskapi/servicedesk/1/customer?limit=1", "", opt) // 1 point left: 3 more make 12
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "true", resp.Header.Get("X-RateLimit-NearLimit"), "under 20 % left when it was taken up")
	resp, _ = raw(t, srv, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "every endpoint is refused")
	assert.Equal(t, "jira-quota-global-based", resp.Header.Get("RateLimit-Reason"))
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.Equal(t, `"global-app-quota";q=10;w=3600`, resp.Header.Get("RateLimit-Policy"))

	gw := start(t, servicedesktest.WithQuota(servicedesktest.Quota{Points: 1, Window: time.Hour, Gateway: true}))
	raw(t, gw, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
	resp, _ = raw(t, gw, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Retry-After"), "the gateway names no wait")
	assert.Empty(t, resp.Header.Get("RateLimit-Reason"))
	assert.Equal(t, "0", resp.Header.Get("X-RateLimit-Remaining"))
	assert.NotEmpty(t, resp.Header.Get("X-RateLimit-Reset"))
	assert.Equal(t, "FAILURE CLIENT RATE LIMITED", resp.Header.Get("X-Failure-Category"))
}

// TestQuotaAnnouncesWhatIsLeftAfterTheAnswer: the r= of the quota counts
// the answer's own cost, customers included: an answer that spends the
// quota says none are left.
func TestQuotaAnnouncesWhatIsLeftAfterTheAnswer(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithQuota(servicedesktest.Quota{Points: 11, Window: time.Hour}),
		servicedesktest.WithAnnounce(servicedesktest.AnnounceAlways))
	for i := 0; i < 5; i++ {
		srv.AddCustomer("1", fmt.Sprintf("q%d@example.com", i), "Q")
	}
	resp, _ := raw(t, srv, "GET", "/rest/servicedeskapi/servicedesk/1/customer", "", map[string]string{"X-ExperimentalApi": "opt-in"})
	require.Equal(t, http.StatusOK, resp.StatusCode) // 1 + 2×5 = 11 points
	assert.Regexp(t, `^"global-app-quota";r=0;t=\d+$`, resp.Header.Get("RateLimit"))
	resp, _ = raw(t, srv, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "as announced")
}

// TestRequestAtTheAnnouncedResetIsServed: for every kind of limit, a
// client that waits until the X-RateLimit-Reset of a 429 is served then.
func TestRequestAtTheAnnouncedResetIsServed(t *testing.T) {
	t.Parallel()
	for _, kind := range []servicedesktest.LimitKind{servicedesktest.FixedWindow, servicedesktest.SlidingWindow, servicedesktest.TokenBucket} {
		t.Run(fmt.Sprint(kind), func(t *testing.T) {
			t.Parallel()
			srv := start(t, servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{Method: "POST", Requests: 2, Kind: kind}))
			add := func() *http.Response {
				resp, _ := raw(t, srv, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
				return resp
			}
			var refused *http.Response
			for i := 0; i < 4 && refused == nil; i++ {
				if resp := add(); resp.StatusCode == http.StatusTooManyRequests {
					refused = resp
				}
			}
			require.NotNil(t, refused, "two a second, four sent at once")
			reset, err := time.Parse(time.RFC3339, refused.Header.Get("X-RateLimit-Reset"))
			require.NoError(t, err)
			require.Equal(t, reset, reset.Truncate(time.Second), "whole seconds, as Jira sends")
			require.Less(t, time.Until(reset), 2*time.Second)
			time.Sleep(time.Until(reset))
			assert.Equal(t, http.StatusBadRequest, add().StatusCode, "served at the reset (400: x is no customer)")
		})
	}
}

// TestLimitKinds: a sliding window allows no more than Requests in any
// span of Window; a token bucket refills one token every Window/Requests.
func TestLimitKinds(t *testing.T) {
	t.Parallel()
	served := func(srv *servicedesktest.Server) int {
		n := 0
		for _, r := range srv.Requests() {
			if r.Status != http.StatusTooManyRequests {
				n++
			}
		}
		return n
	}
	add := func(srv *servicedesktest.Server) int {
		resp, _ := raw(t, srv, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
		return resp.StatusCode
	}
	sliding := start(t, servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{Method: "POST", Requests: 3, Window: 300 * time.Millisecond, Kind: servicedesktest.SlidingWindow}))
	for i := 0; i < 3; i++ {
		require.Equal(t, http.StatusBadRequest, add(sliding))
	}
	require.Equal(t, http.StatusTooManyRequests, add(sliding))
	time.Sleep(350 * time.Millisecond)
	for i := 0; i < 3; i++ {
		require.Equal(t, http.StatusBadRequest, add(sliding), "the first three left the window")
	}
	assert.Equal(t, 6, served(sliding))

	bucket := start(t, servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{Method: "POST", Requests: 4, Window: 400 * time.Millisecond, Kind: servicedesktest.TokenBucket}))
	for i := 0; i < 4; i++ {
		require.Equal(t, http.StatusBadRequest, add(bucket), "a full bucket")
	}
	resp, _ := raw(t, bucket, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"), "whole seconds, at least 1")
	time.Sleep(120 * time.Millisecond) // one token comes back every 100 ms
	assert.Equal(t, http.StatusBadRequest, add(bucket))
	assert.Equal(t, http.StatusTooManyRequests, add(bucket), "only one had come back")
}

// TestCloudLimits: Atlassian's documented rates, announced on every answer.
func TestCloudLimits(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithCloudLimits())
	opt := map[string]string{"X-ExperimentalApi": "opt-in"}
	var refused *http.Response
	for i := 0; i < 11 && refused == nil; i++ { // within two one-second windows at most
		resp, _ := raw(t, srv, "GET", "/rest/servicedeskapi/servicedesk/1/customer", "", opt)
		if i == 0 {
			assert.Equal(t, `"jira-burst-based";q=5;w=1`, resp.Header.Get("RateLimit-Policy"), "the tightest of the limits that hold it")
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			refused = resp
		}
	}
	require.NotNil(t, refused, "listing is limited to 5 a second")
	assert.Equal(t, "5", refused.Header.Get("X-RateLimit-Limit"))
	assert.Equal(t, "jira-burst-based", refused.Header.Get("RateLimit-Reason"))
	assert.LessOrEqual(t, statusCount(srv, http.StatusOK), 10)
	resp, _ := raw(t, srv, "POST", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "another endpoint is counted apart")
	assert.Equal(t, `"jira-burst-based";q=100;w=1`, resp.Header.Get("RateLimit-Policy"))
	resp, _ = raw(t, srv, "DELETE", "/rest/servicedeskapi/servicedesk/1/customer", `{"accountIds":["x"]}`, opt)
	assert.Equal(t, `"jira-burst-based";q=50;w=1`, resp.Header.Get("RateLimit-Policy"))
}

func statusCount(srv *servicedesktest.Server, status int) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Status == status {
			n++
		}
	}
	return n
}

func TestInjectFaults(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := client(t, srv)
	srv.Inject(servicedesktest.Fault{Method: "GET", Path: "/rest/servicedeskapi/servicedesk/*/customer", Times: 2, Status: 429,
		Header: http.Header{"Retry-After": {"0"}, "Ratelimit-Reason": {"jira-burst-based"}}, Body: `{"errorMessage":"slow down"}`})
	require.NoError(t, c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{srv.AddCustomer("", "f@example.com", "F").AccountID}}),
		"another method and path is not hit")
	_, err := c.Customers.List(ctx, "1", nil)
	require.NoError(t, err, "two 429s, then the answer")
	var got []int
	for _, r := range srv.Requests() {
		got = append(got, r.Status)
	}
	assert.Equal(t, []int{204, 429, 429, 200}, got)

	// After: the server acts, then the client sees the failure; a
	// dropped connection has no status.
	srv.Inject(servicedesktest.Fault{Method: "POST", Path: "/rest/servicedeskapi/customer", After: true, Drop: true})
	_, err = c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "ghost@example.com", DisplayName: "Ghost"})
	require.Error(t, err)
	assert.NotErrorIs(t, err, servicedesk.ErrInvalidInput)
	reqs := srv.Requests()
	assert.Equal(t, 0, reqs[len(reqs)-1].Status, "dropped")
	_, err = c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "ghost@example.com", DisplayName: "Ghost", StrictConflictStatusCode: true})
	require.ErrorIs(t, err, servicedesk.ErrConflict, "the first Create did create the customer")

	// The default fault: one 503 with an HTML page.
	srv.Inject(servicedesktest.Fault{})
	resp, body := raw(t, srv, "GET", "/rest/servicedeskapi/servicedesk/1/customer", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, string(body), "<title>503 Service Unavailable</title>")
}

func TestUserSearch(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithUser(servicedesktest.User{Email: "cust@example.com", Role: servicedesktest.RoleCustomer, APIToken: "ct"}))
	srv.AddCustomer("", "ada.lovelace@example.com", "Ada Lovelace")
	var users []map[string]any
	resp, body := raw(t, srv, "GET", "/rest/api/3/user/search?query=lovelace", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.Unmarshal(body, &users))
	require.Len(t, users, 1, "a word of the display name")
	assert.Equal(t, "customer", users[0]["accountType"])
	assert.Equal(t, "ada.lovelace@example.com", users[0]["emailAddress"])
	assert.NotEmpty(t, users[0]["accountId"])
	assert.NotContains(t, users[0], "name", "Cloud names accounts by id")

	resp, body = raw(t, srv, "GET", "/rest/api/2/user/search?username=ada.love", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	users = nil
	require.NoError(t, json.Unmarshal(body, &users))
	require.Len(t, users, 1, "the start of the email")
	assert.NotEmpty(t, users[0]["name"], "Data Center names accounts by username")
	assert.NotContains(t, users[0], "accountId")

	resp, _ = raw(t, srv, "GET", "/rest/api/3/user/search", "", nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "no query")
	resp, _ = raw(t, srv, "GET", "/rest/api/3/user/search?username=ada", "", nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "username is Data Center's, on /rest/api/2")
	resp, _ = raw(t, srv, "POST", "/rest/api/3/user/search?query=ada", "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	req, _ := http.NewRequest("GET", srv.URL+"/rest/api/3/user/search?query=ada", nil)
	req.SetBasicAuth("cust@example.com", "ct")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "customers may not browse users: Jira answers an empty list")
	assert.JSONEq(t, `[]`, string(body))
}

func TestConnectTokenEndpoint(t *testing.T) {
	t.Parallel()
	srv := start(t, servicedesktest.WithConnectApp("app", "secret"), servicedesktest.WithConnectActAsUser("app", "client-1"))
	u := srv.AddUser(servicedesktest.User{Email: "u@example.com", Role: servicedesktest.RoleAgent})
	grant := func(form url.Values) (int, map[string]any) {
		resp, err := http.PostForm(srv.TokenURL(), form)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	assertion := func(iss, sub, tnt, aud, secret string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"iss": iss, "sub": sub, "tnt": tnt, "aud": aud,
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
		}).SignedString([]byte(secret))
		require.NoError(t, err)
		return tok
	}
	ok := assertion("urn:atlassian:connect:clientid:client-1", "urn:atlassian:connect:useraccountid:"+u.AccountID, srv.URL, servicedesktest.ConnectTokenAudience, "secret")
	status, out := grant(url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {ok}})
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "Bearer", out["token_type"])
	assert.EqualValues(t, 900, out["expires_in"])
	assert.NotEmpty(t, out["access_token"])

	for name, tc := range map[string]struct {
		form  url.Values
		error string
	}{
		"grant type":   {url.Values{"grant_type": {"client_credentials"}}, "unsupported_grant_type"},
		"client id":    {url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion("urn:atlassian:connect:clientid:other", "urn:atlassian:connect:useraccountid:"+u.AccountID, srv.URL, servicedesktest.ConnectTokenAudience, "secret")}}, "invalid_grant"},
		"secret":       {url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion("urn:atlassian:connect:clientid:client-1", "urn:atlassian:connect:useraccountid:"+u.AccountID, srv.URL, servicedesktest.ConnectTokenAudience, "wrong")}}, "invalid_grant"},
		"audience":     {url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion("urn:atlassian:connect:clientid:client-1", "urn:atlassian:connect:useraccountid:"+u.AccountID, srv.URL, "https://elsewhere", "secret")}}, "invalid_grant"},
		"tenant":       {url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion("urn:atlassian:connect:clientid:client-1", "urn:atlassian:connect:useraccountid:"+u.AccountID, "https://other.atlassian.net", servicedesktest.ConnectTokenAudience, "secret")}}, "invalid_grant"},
		"unknown user": {url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion("urn:atlassian:connect:clientid:client-1", "urn:atlassian:connect:useraccountid:nobody", srv.URL, servicedesktest.ConnectTokenAudience, "secret")}}, "invalid_grant"},
	} {
		status, out := grant(tc.form)
		assert.NotEqual(t, http.StatusOK, status, name)
		assert.Equal(t, tc.error, out["error"], name)
		assert.NotEmpty(t, out["error_description"], name)
	}
}
