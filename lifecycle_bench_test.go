package servicedesk_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// BenchmarkEnsure compares Ensure with the three calls a program made by
// hand before it (Create with strictConflictStatusCode; on a conflict,
// Jira's user search through Do; then Add), on the fake over loopback, for
// a new email and for one that has an account on no desk. Each reports
// requests/op from what the fake received: Ensure must send no more than
// the hand-rolled sequence, 2 for a new email and 3 for an existing one.
func BenchmarkEnsure(b *testing.B) {
	ensure := func(ctx context.Context, c *servicedesk.Client, email string) error {
		_, _, err := c.Customers.Ensure(ctx, "1", servicedesk.CreateCustomerRequest{Email: email, DisplayName: "Bench"})
		return err
	}
	for _, bc := range []struct {
		name     string
		existing bool
		ensure   func(context.Context, *servicedesk.Client, string) error
		want     int
	}{
		{"new/Ensure", false, ensure, 2},
		{"new/hand-rolled", false, handRolledEnsure, 2},
		{"existing/Ensure", true, ensure, 3},
		{"existing/hand-rolled", true, handRolledEnsure, 3},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			var srv *servicedesktest.Server
			var c *servicedesk.Client
			requests := 0
			// A fresh fake every 500 customers: its look-ups by email are
			// linear, and would otherwise grow with b.N.
			fresh := func() {
				if srv != nil {
					requests += len(srv.Requests())
					srv.Close()
				}
				opts := []servicedesktest.Option{}
				if bc.existing {
					for i := range 100 {
						opts = append(opts, servicedesktest.WithCustomer("", fmt.Sprintf("old%03d@example.com", i), "Old"))
					}
				}
				srv = servicedesktest.NewServer(opts...)
				var err error
				c, err = servicedesk.NewClient(srv.URL, servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
				if err != nil {
					b.Fatal(err)
				}
			}
			fresh()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i > 0 && i%500 == 0 {
					b.StopTimer()
					fresh()
					b.StartTimer()
				}
				email := fmt.Sprintf("new%d@example.com", i)
				if bc.existing {
					email = fmt.Sprintf("old%03d@example.com", i%100)
				}
				if err := bc.ensure(ctx, c, email); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			requests += len(srv.Requests())
			srv.Close()
			perOp := float64(requests) / float64(b.N)
			b.ReportMetric(perOp, "requests/op")
			if perOp != float64(bc.want) {
				b.Fatalf("%.2f requests per ensured customer, want %d", perOp, bc.want)
			}
		})
	}
}

// handRolledEnsure is what programs wrote before Ensure: the quickstart's
// and bulk-import's sequence, Cloud's form of the user search only.
func handRolledEnsure(ctx context.Context, c *servicedesk.Client, email string) error {
	cust, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: email, DisplayName: "Bench", StrictConflictStatusCode: true})
	if errors.Is(err, servicedesk.ErrConflict) {
		var users []servicedesk.Customer
		if err := c.Do(ctx, http.MethodGet, "/rest/api/3/user/search", url.Values{"query": {email}}, nil, &users); err != nil {
			return err
		}
		cust, err = nil, errors.New("not found")
		for i := range users {
			if strings.EqualFold(users[i].EmailAddress, email) {
				cust, err = &users[i], nil
				break
			}
		}
	}
	if err != nil {
		return err
	}
	return c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{cust.AccountID}})
}
