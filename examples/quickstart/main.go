// Command quickstart walks through the Customer API: make sure an email is
// a customer of a service desk (its account created, or found, and added),
// list every customer of the desk, remove it from the desk again.
//
// With no environment set it starts an in-memory JSM (servicedesktest) and
// runs against that:
//
//	go run ./examples/quickstart
//
// Against a real site, set all four of:
//
//	JSM_BASE_URL=https://your-domain.atlassian.net
//	JSM_EMAIL=you@example.com
//	JSM_API_TOKEN=...            (https://id.atlassian.com/manage-profile/security/api-tokens)
//	JSM_SERVICE_DESK=1           (the desk's id or project key)
//
// and optionally JSM_CUSTOMER_EMAIL (default fred@example.com). Customers
// cannot be deleted through this API: the one created stays on the site.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, getenv func(string) string) error {
	baseURL, email, token, desk := getenv("JSM_BASE_URL"), getenv("JSM_EMAIL"), getenv("JSM_API_TOKEN"), getenv("JSM_SERVICE_DESK")
	set := 0
	for _, v := range []string{baseURL, email, token, desk} {
		if v != "" {
			set++
		}
	}
	switch set {
	case 0:
		srv := servicedesktest.NewServer(servicedesktest.WithSeed(1),
			servicedesktest.WithCustomer(servicedesktest.DefaultDeskID, "mary@example.com", "Mary Jones"))
		defer srv.Close()
		baseURL, email, token, desk = srv.URL, servicedesktest.AdminEmail, servicedesktest.AdminToken, servicedesktest.DefaultProjectKey
		fmt.Fprintf(out, "No JSM_* variables set: using the in-memory JSM at %s\n", baseURL)
	case 4:
		fmt.Fprintf(out, "Using %s, service desk %s\n", baseURL, desk)
	default:
		return errors.New("set all of JSM_BASE_URL, JSM_EMAIL, JSM_API_TOKEN and JSM_SERVICE_DESK, or none")
	}
	customerEmail := getenv("JSM_CUSTOMER_EMAIL")
	if customerEmail == "" {
		customerEmail = "fred@example.com"
	}

	c, err := servicedesk.NewClient(baseURL, servicedesk.WithBasicAuth(email, token))
	if err != nil {
		return err
	}

	// 1. Make sure the email is a customer of the desk, whatever its state:
	//    the account is created when there is none, found when there is,
	//    and added to the desk. Repeating it changes nothing.
	cust, created, err := c.Customers.Ensure(ctx, desk, servicedesk.CreateCustomerRequest{
		Email:       customerEmail,
		DisplayName: "Fred F. User",
	})
	if err != nil {
		return err // says which step failed: create, find or add
	}
	if created {
		fmt.Fprintf(out, "1. Created %s <%s> as %s\n", cust.DisplayName, cust.EmailAddress, cust.AccountID)
	} else {
		fmt.Fprintf(out, "1. %s already has an account\n", customerEmail)
	}
	fmt.Fprintf(out, "2. %s is a customer of service desk %s\n", cust.DisplayName, desk)
	ids := servicedesk.CustomerIDs{AccountIDs: []string{cust.AccountID}}
	if cust.AccountID == "" { // Data Center names accounts by username
		ids = servicedesk.CustomerIDs{Usernames: []string{cust.Name}}
	}

	// 3. Walk every customer of the desk, page by page behind the scenes.
	fmt.Fprintf(out, "3. Customers of service desk %s:\n", desk)
	n := 0
	for cu, err := range c.Customers.All(ctx, desk, nil) {
		if err != nil {
			return err
		}
		n++
		fmt.Fprintf(out, "   - %s <%s>\n", cu.DisplayName, cu.EmailAddress)
	}
	fmt.Fprintf(out, "   %d in all\n", n)

	// 4. Remove it from the desk again.
	if err := c.Customers.Remove(ctx, desk, ids); err != nil {
		var apiErr *servicedesk.Error
		if errors.As(err, &apiErr) {
			return fmt.Errorf("remove: %s (status %d, request id %s)", apiErr.Message, apiErr.StatusCode, apiErr.RequestID)
		}
		return err
	}
	fmt.Fprintf(out, "4. Removed %s from service desk %s\n", cust.DisplayName, desk)
	fmt.Fprintln(out, "Done.")
	return nil
}
