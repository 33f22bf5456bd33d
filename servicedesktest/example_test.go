package servicedesktest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// onboard is the code under test: a user's function that makes sure an
// email is a customer of a desk.
func onboard(ctx context.Context, c *servicedesk.Client, desk, email, name string) error {
	cust, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: email, DisplayName: name, StrictConflictStatusCode: true})
	if errors.Is(err, servicedesk.ErrConflict) {
		return nil // already there, in this simple version
	}
	if err != nil {
		return err
	}
	return c.Customers.Add(ctx, desk, servicedesk.CustomerIDs{AccountIDs: []string{cust.AccountID}})
}

// In a test of your own: start the fake, point a client at it, run your
// code, then look at the fake's state and the requests it received.
func ExampleNewServer() {
	srv := servicedesktest.NewServer(servicedesktest.WithCustomer("1", "mary@example.com", "Mary Jones"))
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))

	if err := onboard(context.Background(), c, "HELP", "fred@example.com", "Fred"); err != nil {
		fmt.Println("onboard:", err)
	}
	for _, cust := range srv.Customers("HELP") {
		fmt.Println(cust.DisplayName)
	}
	for _, r := range srv.Requests() {
		fmt.Println(r.Method, r.Path, r.Status)
	}
	// Output:
	// Mary Jones
	// Fred
	// POST /rest/servicedeskapi/customer 201
	// POST /rest/servicedeskapi/servicedesk/HELP/customer 204
}

// Inject makes the next matching requests fail: here a Create whose
// connection drops after the server has created the customer, which the
// code under test must survive.
func ExampleServer_Inject() {
	srv := servicedesktest.NewServer()
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	srv.Inject(servicedesktest.Fault{Method: http.MethodPost, Path: "/rest/servicedeskapi/customer", After: true, Drop: true})

	err := onboard(context.Background(), c, "HELP", "fred@example.com", "Fred")
	fmt.Println(err != nil)
	// The error said the customer may exist; a second run finds it.
	fmt.Println(onboard(context.Background(), c, "HELP", "fred@example.com", "Fred"))
	// Output:
	// true
	// <nil>
}

// WithBurstLimit and WithQuota model Jira Cloud's rate limits, so that code
// can be tested against them; the client paces itself to what they announce.
func ExampleWithBurstLimit() {
	srv := servicedesktest.NewServer(
		servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{Method: http.MethodPost, Path: "/rest/servicedeskapi/servicedesk/*/customer", Requests: 5}),
		servicedesktest.WithAnnounce(servicedesktest.AnnounceAlways))
	defer srv.Close()
	fred := srv.AddCustomer("", "fred@example.com", "Fred")
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	start := time.Now()
	failed := 0
	for i := 0; i < 8; i++ {
		if err := c.Customers.Add(context.Background(), "HELP", servicedesk.CustomerIDs{AccountIDs: []string{fred.AccountID}}); err != nil {
			failed++
		}
	}
	// Eight Adds at five a second: paced over more than a second, none failed.
	fmt.Println(failed, time.Since(start) > time.Second)
	// Output: 0 true
}
