package servicedesk_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// Do reaches any endpoint of the site on the client's pipeline: here Jira's
// user search by name (CustomersService.FindByEmail does the look-up by
// email).
func ExampleClient_Do() {
	srv := servicedesktest.NewServer(servicedesktest.WithCustomer("", "ada@example.com", "Ada Lovelace"))
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	ctx := context.Background()

	var users []struct {
		AccountID    string `json:"accountId"`
		EmailAddress string `json:"emailAddress"`
		DisplayName  string `json:"displayName"`
	}
	err := c.Do(ctx, http.MethodGet, "/rest/api/3/user/search", url.Values{"query": {"lovelace"}}, nil, &users)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(users), users[0].DisplayName)
	err = c.Customers.Add(ctx, "HELP", servicedesk.CustomerIDs{AccountIDs: []string{users[0].AccountID}})
	fmt.Println(err, len(srv.Customers("HELP")))

	// Paths that could leave the site are refused before anything is sent.
	err = c.Do(ctx, http.MethodGet, "https://elsewhere.example/rest/api/3/myself", nil, nil, nil)
	fmt.Println(errors.Is(err, servicedesk.ErrInvalidInput))
	// Output:
	// 1 Ada Lovelace
	// <nil> 1
	// true
}

// A logger at Debug level sees every attempt; at the default Info level,
// retries (Warn) and calls that gave up (Error). Times and durations are
// left out here so that the output is the same on every run.
func ExampleWithLogger() {
	srv := servicedesktest.NewServer(servicedesktest.WithCustomer("", "ada@example.com", "Ada"))
	defer srv.Close()
	steady := func(groups []string, a slog.Attr) slog.Attr {
		switch a.Key {
		case slog.TimeKey, "duration", "wait", "waited", "request_id":
			return slog.Attr{}
		}
		return a
	}
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: steady}))
	c, _ := servicedesk.NewClient(srv.URL,
		servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken),
		servicedesk.WithLogger(logger),
		servicedesk.WithRetryWait(time.Millisecond, time.Millisecond))

	srv.FailNext(1, http.StatusServiceUnavailable)
	_, _ = c.Customers.List(context.Background(), "HELP", nil)
	// Output:
	// level=DEBUG msg="servicedesk: attempt" op=CustomersService.List method=GET path=/rest/servicedeskapi/servicedesk/HELP/customer attempt=1 status=503
	// level=WARN msg="servicedesk: retrying" op=CustomersService.List method=GET path=/rest/servicedeskapi/servicedesk/HELP/customer attempt=1 reason="503 Service Unavailable"
	// level=DEBUG msg="servicedesk: attempt" op=CustomersService.List method=GET path=/rest/servicedeskapi/servicedesk/HELP/customer attempt=2 status=200
}

// Hooks see every call and attempt: here they count calls by operation
// and outcome, as a metrics bridge would (examples/otel bridges them to
// OpenTelemetry).
func ExampleWithHooks() {
	srv := servicedesktest.NewServer()
	defer srv.Close()
	var mu sync.Mutex
	calls := map[string]int{}
	retries := 0
	c, _ := servicedesk.NewClient(srv.URL,
		servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken),
		servicedesk.WithRetryWait(time.Millisecond, time.Millisecond),
		servicedesk.WithHooks(servicedesk.Hooks{
			CallEnd: func(_ context.Context, r servicedesk.CallResult) {
				mu.Lock()
				defer mu.Unlock()
				calls[r.Operation+" "+string(r.Class)]++
				retries += max(r.Attempts-1, 0)
			},
		}))
	ctx := context.Background()
	srv.FailNext(1, http.StatusBadGateway)
	_, _ = c.Customers.List(ctx, "HELP", nil)
	_, _ = c.Customers.List(ctx, "NOPE", nil)
	_, _ = c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
	fmt.Println(calls["CustomersService.List ok"], calls["CustomersService.List not_found"], calls["CustomersService.Create ok"], retries)
	// Output: 1 1 1 1
}

// A Connect app authenticates each request with a JWT signed with the shared
// secret of its installation; acting as a user, it trades a signed assertion
// for a token of that user's.
func ExampleConnectUserTokenSource() {
	srv := servicedesktest.NewServer(
		servicedesktest.WithConnectApp("com.example.app", "shared-secret"),
		servicedesktest.WithConnectActAsUser("com.example.app", "oauth-client-id"),
		servicedesktest.WithCustomer("1", "mary@example.com", "Mary Jones"))
	defer srv.Close()
	agent := srv.AddUser(servicedesktest.User{Email: "agent@example.com", DisplayName: "Agent", Role: servicedesktest.RoleAgent, Desks: []string{"HELP"}})

	// As the app itself.
	app, _ := servicedesk.NewClient(srv.URL, servicedesk.WithConnectJWT("com.example.app", "shared-secret"))
	page, err := app.Customers.List(context.Background(), "HELP", nil)
	fmt.Println(len(page.Values), err)

	// As the agent, with the agent's permissions.
	ts, _ := servicedesk.ConnectUserTokenSource(servicedesk.ConnectUserConfig{
		OAuthClientID: "oauth-client-id", SharedSecret: "shared-secret",
		BaseURL: srv.URL, AccountID: agent.AccountID,
		TokenURL: srv.TokenURL(), // Atlassian's by default
	})
	asAgent, _ := servicedesk.NewClient(srv.URL, servicedesk.WithTokenSource(ts))
	page, err = asAgent.Customers.List(context.Background(), "HELP", nil)
	fmt.Println(page.Values[0].DisplayName, err)
	err = asAgent.Customers.Add(context.Background(), "HELP", servicedesk.CustomerIDs{AccountIDs: []string{agent.AccountID}})
	fmt.Println(errors.Is(err, servicedesk.ErrForbidden))
	// Output:
	// 1 <nil>
	// Mary Jones <nil>
	// true
}

// A handler must not hang while Jira's quota is spent: the client fails at
// once, without sending, and says how long to wait, which the handler
// passes on as Retry-After.
func ExampleWithRateLimitWait() {
	jsm := servicedesktest.NewServer(servicedesktest.WithQuota(servicedesktest.Quota{Points: 1, Window: time.Hour}))
	defer jsm.Close()
	c, _ := servicedesk.NewClient(jsm.URL,
		servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken),
		servicedesk.WithRateLimitWait(5*time.Second)) // the longest a request of ours may wait
	customers := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, err := c.Customers.List(r.Context(), "HELP", nil)
		var apiErr *servicedesk.Error
		if errors.As(err, &apiErr) && errors.Is(err, servicedesk.ErrRateLimited) && apiErr.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(apiErr.RetryAfter.Seconds()))))
			http.Error(w, "Jira is rate limiting us", http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, len(page.Values), "customers")
	})
	for i := 0; i < 3; i++ {
		rec := httptest.NewRecorder()
		customers.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/customers", nil))
		retryAfter, _ := strconv.Atoi(rec.Header().Get("Retry-After"))
		fmt.Println(rec.Code, retryAfter > 3000)
	}
	fmt.Println(len(jsm.Requests()), "requests reached Jira")
	// Output:
	// 200 false
	// 503 true
	// 503 true
	// 2 requests reached Jira
}
