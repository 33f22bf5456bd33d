package servicedesk_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/servicedesk-go/servicedesk"
)

func TestNewClientRefusesBadInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		base  string
		opts  []servicedesk.Option
		field string
	}{
		{"empty", "", nil, "baseURL"},
		{"no scheme", "your-domain.atlassian.net", nil, "baseURL"},
		{"ftp", "ftp://x.example.com", nil, "baseURL"},
		{"no host", "https://", nil, "baseURL"},
		{"path only", "/rest", nil, "baseURL"},
		{"credentials", "https://me:" + testToken + "@x.atlassian.net", nil, "baseURL"},
		{"query", "https://x.atlassian.net/?a=b", nil, "baseURL"},
		{"fragment", "https://x.atlassian.net/#top", nil, "baseURL"},
		{"control char", "https://x.atlassian.net/\x7f" + testToken, nil, "baseURL"},
		{"empty token", "https://x.atlassian.net", []servicedesk.Option{servicedesk.WithBasicAuth("me@example.com", "")}, "apiToken"},
		{"empty email", "https://x.atlassian.net", []servicedesk.Option{servicedesk.WithBasicAuth(" ", testToken)}, "email"},
		{"empty bearer", "https://x.atlassian.net", []servicedesk.Option{servicedesk.WithBearerToken("")}, "token"},
		{"two auths", "https://x.atlassian.net", []servicedesk.Option{basicAuth(), servicedesk.WithBearerToken("pat")}, "WithBasicAuth and WithBearerToken"},
		{"nil http client", "https://x.atlassian.net", []servicedesk.Option{servicedesk.WithHTTPClient(nil)}, "hc"},
		{"negative retries", "https://x.atlassian.net", []servicedesk.Option{servicedesk.WithMaxRetries(-1)}, "n"},
		{"max below min", "https://x.atlassian.net", []servicedesk.Option{servicedesk.WithRetryWait(time.Second, time.Millisecond)}, "max"},
		{"negative min", "https://x.atlassian.net", []servicedesk.Option{servicedesk.WithRetryWait(-time.Second, time.Second)}, "min"},
		{"empty user agent", "https://x.atlassian.net", []servicedesk.Option{servicedesk.WithUserAgent("")}, "ua"},
		{"header injection", "https://x.atlassian.net", []servicedesk.Option{servicedesk.WithUserAgent("a\r\nX-Evil: 1")}, "ua"},
		{"nil option", "https://x.atlassian.net", []servicedesk.Option{nil}, "opts"},
		{"servicedeskapi path", "https://x.atlassian.net/rest/servicedeskapi", nil, `use "https://x.atlassian.net"`},
		{"platform api path", "https://jira.example.com/jira/rest/api/2/", nil, `use "https://jira.example.com/jira"`},
		{"gateway without cloud id", servicedesk.CloudGatewayURL(""), nil, "CloudGatewayURL(cloudID)"},
		{"customer portal", "https://x.atlassian.net/servicedesk/customer/portal/1", nil, `web interface ("/servicedesk/customer/portal/1"), not the site's base URL: use "https://x.atlassian.net"`},
		{"agent view", "https://jira.example.com/jira/servicedesk/projects/HELP/queues", nil, `use "https://jira.example.com/jira"`},
		{"issue page", "https://x.atlassian.net/browse/HELP-1", nil, `use "https://x.atlassian.net"`},
		{"gateway root", "https://api.atlassian.com", nil, "cloud id"},
		{"gateway with API path", servicedesk.CloudGatewayURL("abc") + "/rest/servicedeskapi/", nil, "/rest/servicedeskapi"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := servicedesk.NewClient(tc.base, tc.opts...)
			require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
			assert.Nil(t, c)
			assert.Contains(t, err.Error(), tc.field)
			assert.NotContains(t, err.Error(), testToken)
		})
	}
}

func TestBearerTokenAndUserAgent(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://jira.example.com/jira", []reply{{status: 204}},
		servicedesk.WithBearerToken("pat-123"), servicedesk.WithUserAgent("bulk-importer/2.1"))
	require.NoError(t, c.Customers.Add(context.Background(), "HELP", servicedesk.CustomerIDs{Usernames: []string{"fred"}}))
	s := w.only(t)
	assert.Equal(t, "Bearer pat-123", s.Header.Get("Authorization"))
	assert.Equal(t, "bulk-importer/2.1", s.Header.Get("User-Agent"))
	assert.JSONEq(t, `{"usernames":["fred"]}`, string(s.Body))
}

func TestNoAuthSendsNoAuthorization(t *testing.T) {
	t.Parallel()
	c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 204}})
	require.NoError(t, c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}}))
	assert.Empty(t, w.only(t).Header.Values("Authorization"))
}

// TestRedirectToAnotherHostCarriesNoCredentials follows a redirect from the
// configured server to a second loopback server standing for another host.
func TestRedirectToAnotherHostCarriesNoCredentials(t *testing.T) {
	t.Parallel()
	var foreignAuth atomic.Value
	foreignAuth.Store("unset")
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreignAuth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"values":[],"isLastPage":true}`))
	}))
	defer foreign.Close()
	var homeAuth atomic.Value
	home := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		homeAuth.Store(r.Header.Get("Authorization"))
		http.Redirect(w, r, foreign.URL+r.URL.Path, http.StatusFound)
	}))
	defer home.Close()

	for _, opt := range []servicedesk.Option{
		basicAuth(),
		servicedesk.WithBearerToken(testToken),
		servicedesk.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: testToken})),
		servicedesk.WithConnectJWT("com.example.app", testToken),
	} {
		c, err := servicedesk.NewClient(home.URL, opt)
		require.NoError(t, err)
		_, err = c.Customers.List(context.Background(), "1", nil)
		require.NoError(t, err)
		assert.NotEmpty(t, homeAuth.Load(), "the configured host gets credentials")
		assert.Equal(t, "", foreignAuth.Load(), "another host gets none")
	}
}

func TestContextCanceled(t *testing.T) {
	t.Parallel()
	t.Run("before the call", func(t *testing.T) {
		t.Parallel()
		c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 204}})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, w.all())
	})
	t.Run("while waiting for the server", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		c, err := servicedesk.NewClient(srv.URL)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err = c.Customers.List(ctx, "1", nil)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "servicedesk: GET /rest/servicedeskapi/servicedesk/1/customer")
	})
}

// TestConnectionReuse makes 1,000 sequential calls, successes and errors,
// and counts the TCP connections the server saw.
func TestConnectionReuse(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && n.Add(1)%2 == 0:
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodPost:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errorMessage":"no such desk"}`))
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"size":0,"values":[],"isLastPage":true,"unread":"` + strings.Repeat("z", 8000) + `"}`))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithHTTPClient(&http.Client{Transport: &http.Transport{}}))
	require.NoError(t, err)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		if i%2 == 0 {
			err = c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
		} else {
			_, err = c.Customers.List(ctx, "1", nil)
		}
		if err != nil && !errors.Is(err, servicedesk.ErrNotFound) {
			require.NoError(t, err)
		}
	}
	assert.Equal(t, int32(1), conns.Load(), "connections opened")
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	// Not a Cloud host: Cloud's documented pacing would stretch 200 calls
	// over two seconds, and pacing is not what this tests.
	c, w := mockClient(t, "https://jira.example.com", []reply{{status: 204}}, basicAuth())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				assert.NoError(t, c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}}))
			}
		}()
	}
	wg.Wait()
	assert.Len(t, w.all(), 200)
	for _, s := range w.all() {
		assert.Equal(t, wantBasic(), s.Header.Get("Authorization"))
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	unavailable := reply{status: 503, body: "<html><title>Service Unavailable</title></html>", header: map[string]string{"Content-Type": "text/html"}}
	t.Run("idempotent add retried through 503", func(t *testing.T) {
		t.Parallel()
		c, w := mockClient(t, "https://x.atlassian.net", []reply{unavailable, unavailable, {status: 204}}, basicAuth())
		require.NoError(t, c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}}))
		reqs := w.all()
		require.Len(t, reqs, 3)
		for _, s := range reqs {
			assert.JSONEq(t, `{"accountIds":["a"]}`, string(s.Body), "every attempt re-sends the body")
			assert.Equal(t, wantBasic(), s.Header.Get("Authorization"))
		}
	})
	t.Run("remove re-sends its DELETE body", func(t *testing.T) {
		t.Parallel()
		c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 502}, {status: 204}})
		require.NoError(t, c.Customers.Remove(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}}))
		reqs := w.all()
		require.Len(t, reqs, 2)
		assert.Equal(t, reqs[0].Body, reqs[1].Body)
		assert.Equal(t, http.MethodDelete, reqs[1].Method)
	})
	t.Run("create not retried on 500", func(t *testing.T) {
		t.Parallel()
		c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 500}, {status: 201, body: fixture(t, "create_customer_201.json")}})
		_, err := c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "a@b.co", DisplayName: "A"})
		require.ErrorIs(t, err, servicedesk.ErrServer)
		assert.Len(t, w.all(), 1)
	})
	t.Run("create retried on 429", func(t *testing.T) {
		t.Parallel()
		c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 429, header: map[string]string{"Retry-After": "0"}}, {status: 201, body: fixture(t, "create_customer_201.json")}})
		cust, err := c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "a@b.co", DisplayName: "A"})
		require.NoError(t, err)
		assert.Equal(t, fredID, cust.AccountID)
		assert.Len(t, w.all(), 2)
	})
	t.Run("exhausted retries return the last answer", func(t *testing.T) {
		t.Parallel()
		c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 503, body: `{"errorMessage":"busy"}`, header: map[string]string{"X-AREQUESTID": "r9"}}},
			servicedesk.WithMaxRetries(2))
		_, err := c.Customers.List(context.Background(), "1", nil)
		var apiErr *servicedesk.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 503, apiErr.StatusCode)
		assert.Equal(t, "busy", apiErr.Message)
		assert.Equal(t, "r9", apiErr.RequestID)
		assert.Len(t, w.all(), 3)
	})
	t.Run("no retry on 4xx", func(t *testing.T) {
		t.Parallel()
		c, w := mockClient(t, "https://x.atlassian.net", []reply{{status: 404}})
		_, err := c.Customers.List(context.Background(), "1", nil)
		require.ErrorIs(t, err, servicedesk.ErrNotFound)
		assert.Len(t, w.all(), 1)
	})
}

// TestCredentialsNeverInErrors provokes every kind of failure and checks no
// error string carries the token, raw or encoded.
func TestCredentialsNeverInErrors(t *testing.T) {
	t.Parallel()
	secrets := []string{testToken, wantBasic()[len("Basic "):]}
	check := func(t *testing.T, err error) {
		t.Helper()
		require.Error(t, err)
		for _, s := range secrets {
			assert.NotContains(t, err.Error(), s)
			assert.NotContains(t, strings.ToLower(err.Error()), strings.ToLower(s))
		}
	}
	for _, status := range []int{400, 401, 403, 404, 409, 429, 500, 503} {
		c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: status, body: `{"errorMessage":"nope"}`}}, basicAuth(), servicedesk.WithMaxRetries(0))
		_, err := c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{Email: "a@b.co", DisplayName: "A"})
		check(t, err)
	}
	// A transport error: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	c, err := servicedesk.NewClient("http://"+addr, basicAuth(), servicedesk.WithMaxRetries(0))
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	check(t, err)
}
