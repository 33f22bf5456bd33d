package servicedesk_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// The examples run against servicedesktest, the in-memory JSM; against a
// real site, pass its URL and your credentials to NewClient instead.

func ExampleNewClient() {
	// Cloud, with an Atlassian account email and an API token.
	c, err := servicedesk.NewClient("https://your-domain.atlassian.net",
		servicedesk.WithBasicAuth("me@example.com", "api-token"))
	if err != nil {
		log.Fatal(err)
	}
	_ = c

	// Data Center below a context path, with a personal access token.
	_, err = servicedesk.NewClient("https://jira.example.com/jira", servicedesk.WithBearerToken("pat"))
	fmt.Println(err)

	// Input that cannot be right is refused before anything is sent.
	_, err = servicedesk.NewClient("your-domain.atlassian.net")
	fmt.Println(errors.Is(err, servicedesk.ErrInvalidInput), err)
	// Output:
	// <nil>
	// true servicedesk: invalid input: NewClient: baseURL must start with https:// or http://
}

func ExampleCustomersService_Create() {
	srv := servicedesktest.NewServer(servicedesktest.WithCustomer("", "mary@example.com", "Mary Jones"))
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	ctx := context.Background()

	cust, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{
		Email:       "fred@example.com",
		DisplayName: "Fred F. User",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cust.DisplayName, cust.EmailAddress, cust.Active)

	// An email that already has an account is ErrConflict: the server's
	// 400, or its 409 with StrictConflictStatusCode. The account is not
	// returned: FindByEmail finds it, and Ensure does it all.
	_, err = c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{
		Email:       "mary@example.com",
		DisplayName: "Mary",
	})
	fmt.Println(errors.Is(err, servicedesk.ErrConflict))
	// Output:
	// Fred F. User fred@example.com true
	// true
}

func ExampleCustomersService_List() {
	srv := servicedesktest.NewServer(
		servicedesktest.WithCustomer("1", "john@example.com", "John Smith"),
		servicedesktest.WithCustomer("1", "jane@example.com", "Jane Smithers"),
		servicedesktest.WithCustomer("1", "bob@example.com", "Bob Brown"),
	)
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))

	// One page: customers of desk HELP whose name or email starts with "smi".
	page, err := c.Customers.List(context.Background(), "HELP", &servicedesk.ListCustomersOptions{Query: "smi", Limit: 10})
	if err != nil {
		log.Fatal(err)
	}
	for _, cust := range page.Values {
		fmt.Println(cust.DisplayName)
	}
	fmt.Println("last page:", page.IsLastPage)
	// Output:
	// John Smith
	// Jane Smithers
	// last page: true
}

func ExampleCustomersService_All() {
	opts := []servicedesktest.Option{}
	for i := 1; i <= 120; i++ {
		opts = append(opts, servicedesktest.WithCustomer("1", fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("Customer %d", i)))
	}
	srv := servicedesktest.NewServer(opts...)
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))

	// All follows the pages (50 customers each here) for you.
	n := 0
	for cust, err := range c.Customers.All(context.Background(), "1", nil) {
		if err != nil {
			log.Fatal(err)
		}
		n++
		if n == 120 {
			fmt.Println("last:", cust.DisplayName)
		}
	}
	fmt.Println(n, "customers")
	// Output:
	// last: Customer 120
	// 120 customers
}

func ExampleCustomersService_All_stopEarly() {
	opts := []servicedesktest.Option{}
	for i := 1; i <= 500; i++ {
		opts = append(opts, servicedesktest.WithCustomer("1", fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("Customer %d", i)))
	}
	srv := servicedesktest.NewServer(opts...)
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))

	// Breaking out of the loop stops the walk: no further page is fetched.
	for cust, err := range c.Customers.All(context.Background(), "1", nil) {
		if err != nil {
			log.Fatal(err)
		}
		if cust.DisplayName == "Customer 3" {
			fmt.Println("found", cust.EmailAddress)
			break
		}
	}
	fmt.Println("requests:", len(srv.Requests()))
	// Output:
	// found c3@example.com
	// requests: 1
}

func ExampleCustomersService_Pages() {
	opts := []servicedesktest.Option{}
	for i := 1; i <= 7; i++ {
		opts = append(opts, servicedesktest.WithCustomer("1", fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("Customer %d", i)))
	}
	srv := servicedesktest.NewServer(opts...)
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))

	for page, err := range c.Customers.Pages(context.Background(), "1", &servicedesk.ListCustomersOptions{Limit: 3}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("start %d, %d customers, last page %v\n", page.Start, page.Size, page.IsLastPage)
	}
	// Output:
	// start 0, 3 customers, last page false
	// start 3, 3 customers, last page false
	// start 6, 1 customers, last page true
}

func ExampleCustomersService_Add() {
	srv := servicedesktest.NewServer()
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	fred := srv.AddCustomer("", "fred@example.com", "Fred") // an account on no desk yet
	ctx := context.Background()

	err := c.Customers.Add(ctx, "HELP", servicedesk.CustomerIDs{AccountIDs: []string{fred.AccountID}})
	fmt.Println(err, len(srv.Customers("HELP")))

	// Unknown ids are a 400, but the valid ones were still added.
	err = c.Customers.Add(ctx, "HELP", servicedesk.CustomerIDs{AccountIDs: []string{"qm:unknown"}})
	fmt.Println(errors.Is(err, servicedesk.ErrBadRequest))
	// Output:
	// <nil> 1
	// true
}

func ExampleCustomersService_Remove() {
	srv := servicedesktest.NewServer(servicedesktest.WithCustomer("1", "fred@example.com", "Fred"))
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	fred := srv.Customers("1")[0]

	err := c.Customers.Remove(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{fred.AccountID}})
	fmt.Println(err, len(srv.Customers("1")))
	// Output:
	// <nil> 0
}

func ExampleError() {
	srv := servicedesktest.NewServer()
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))

	err := c.Customers.Add(context.Background(), "404", servicedesk.CustomerIDs{AccountIDs: []string{"qm:x"}})
	switch {
	case errors.Is(err, servicedesk.ErrInvalidInput):
		fmt.Println("fix the call:", err)
	case errors.Is(err, servicedesk.ErrNotFound):
		var apiErr *servicedesk.Error
		errors.As(err, &apiErr)
		fmt.Println(apiErr.StatusCode, apiErr.Message, apiErr.RequestID != "")
	case err != nil:
		fmt.Println("other failure:", err)
	}
	// Output:
	// 404 Service desk 404 does not exist. true
}
