// Command quickstart walks through the Customer API: create a customer, add
// it to a service desk, list every customer of the desk, remove it again.
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
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"

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

	// 1. Create the customer; if the email is taken, use that account.
	cust, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{
		Email:                    customerEmail,
		DisplayName:              "Fred F. User",
		StrictConflictStatusCode: true,
	})
	switch {
	case errors.Is(err, servicedesk.ErrConflict):
		fmt.Fprintf(out, "1. %s already has an account\n", customerEmail)
		if cust, err = findByEmail(ctx, c, customerEmail); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		fmt.Fprintf(out, "1. Created %s <%s> as %s\n", cust.DisplayName, cust.EmailAddress, cust.AccountID)
	}
	ids := servicedesk.CustomerIDs{AccountIDs: []string{cust.AccountID}}

	// 2. Add it to the desk (a no-op if it is there already).
	if err := c.Customers.Add(ctx, desk, ids); err != nil {
		return err
	}
	fmt.Fprintf(out, "2. Added %s to service desk %s\n", cust.DisplayName, desk)

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

// findByEmail finds the account of an email that already exists, on a desk
// or not, with Jira's user search: the Customer API has no look-up by email,
// and Client.Do reaches any endpoint of the site with the same credentials,
// retries and errors.
func findByEmail(ctx context.Context, c *servicedesk.Client, email string) (*servicedesk.Customer, error) {
	var users []servicedesk.Customer
	if err := c.Do(ctx, http.MethodGet, "/rest/api/3/user/search", url.Values{"query": {email}}, nil, &users); err != nil {
		return nil, err
	}
	for _, u := range users {
		if strings.EqualFold(u.EmailAddress, email) {
			return &u, nil
		}
	}
	return nil, fmt.Errorf("%s has an account that user search does not show (its email may be hidden)", email)
}
