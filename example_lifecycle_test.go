package servicedesk_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// Ensure is "make sure this email is a customer of desk HELP": one call,
// whatever state the email is in, safe to repeat.
func ExampleCustomersService_Ensure() {
	srv := servicedesktest.NewServer(
		servicedesktest.WithCustomer("", "ada@example.com", "Ada Lovelace"),       // an account on no desk
		servicedesktest.WithCustomer("HELP", "grace@example.com", "Grace Hopper"), // already a customer
	)
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	ctx := context.Background()

	for _, email := range []string{"fred@example.com", "ada@example.com", "grace@example.com", "fred@example.com"} {
		cust, created, err := c.Customers.Ensure(ctx, "HELP", servicedesk.CreateCustomerRequest{Email: email, DisplayName: "New Customer"})
		if err != nil {
			log.Fatal(err) // the error names the step that failed: create, find or add
		}
		fmt.Println(cust.EmailAddress, cust.DisplayName, created)
	}
	fmt.Println(len(srv.Customers("HELP")), "customers on HELP")
	// Output:
	// fred@example.com New Customer true
	// ada@example.com Ada Lovelace false
	// grace@example.com Grace Hopper false
	// fred@example.com New Customer false
	// 3 customers on HELP
}

// FindByEmail finds the account of an email, on a desk or not; only an
// exact match counts.
func ExampleCustomersService_FindByEmail() {
	srv := servicedesktest.NewServer(
		servicedesktest.WithCustomer("", "ada@example.com", "Ada Lovelace"),
		servicedesktest.WithCustomer("", "fred@example.com.au", "Fred Down Under"),
	)
	defer srv.Close()
	c, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	ctx := context.Background()

	cust, err := c.Customers.FindByEmail(ctx, "Ada@Example.com")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cust.DisplayName)

	_, err = c.Customers.FindByEmail(ctx, "fred@example.com")
	fmt.Println(errors.Is(err, servicedesk.ErrNotFound))
	// Output:
	// Ada Lovelace
	// true
}

// RevokePortalOnlyAccess needs a site administrator; the fake's default
// admin is a Jira administrator only.
func ExampleCustomersService_RevokePortalOnlyAccess() {
	srv := servicedesktest.NewServer(servicedesktest.WithUser(servicedesktest.User{
		Email: "site-admin@example.com", Role: servicedesktest.RoleSiteAdmin, APIToken: "site-token",
	}))
	defer srv.Close()
	fred := srv.AddCustomer("HELP", "fred@example.com", "Fred")
	ctx := context.Background()

	jiraAdmin, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	err := jiraAdmin.Customers.RevokePortalOnlyAccess(ctx, fred.AccountID)
	fmt.Println(errors.Is(err, servicedesk.ErrForbidden))

	siteAdmin, _ := servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth("site-admin@example.com", "site-token"))
	err = siteAdmin.Customers.RevokePortalOnlyAccess(ctx, fred.AccountID)
	fmt.Println(err, srv.PortalAccessRevoked(fred.AccountID))

	err = siteAdmin.Customers.RevokePortalOnlyAccess(ctx, "qm:no-such-account")
	fmt.Println(errors.Is(err, servicedesk.ErrNotFound))
	// Output:
	// true
	// <nil> true
	// true
}
