// Command bulk-import creates customers from a CSV file of
// "email,displayName" rows and adds them to a service desk.
//
//	go run ./examples/bulk-import                  # sample.csv, in-memory JSM
//	go run ./examples/bulk-import -csv people.csv -desk HELP -concurrency 8
//	go run ./examples/bulk-import -csv people.csv -dry-run
//
// With JSM_BASE_URL, JSM_EMAIL and JSM_API_TOKEN set it runs against that
// site; otherwise against an in-memory JSM. Emails that already have an
// account are not errors: if the account is already a customer of the desk it
// is used, so a second run over the same file changes nothing. Creation runs
// with bounded concurrency; the SDK backs off on 429s as the server asks.
// Progress goes to stderr, the summary to stdout; the exit status is 1 when
// any row failed.
package main

import (
	"context"
	_ "embed"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

//go:embed sample.csv
var sampleCSV string

// addBatch is how many account ids go in one Add call.
const addBatch = 50

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bulk-import:", err)
		os.Exit(1)
	}
}

type row struct {
	line        int
	email, name string
}

// result is what became of one row.
type result struct {
	row
	accountID string
	outcome   string // created, existing, failed
	err       error
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("bulk-import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	csvPath := fs.String("csv", "", "CSV file of email,displayName rows (default: the bundled sample)")
	desk := fs.String("desk", "", "service desk id or project key (default: JSM_SERVICE_DESK, or HELP on the in-memory JSM)")
	concurrency := fs.Int("concurrency", 4, "customers created at once")
	dryRun := fs.Bool("dry-run", false, "read and check the file, send nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *concurrency < 1 {
		return errors.New("-concurrency must be at least 1")
	}

	input := io.Reader(strings.NewReader(sampleCSV))
	if *csvPath != "" {
		f, err := os.Open(*csvPath)
		if err != nil {
			return err
		}
		defer f.Close()
		input = f
	}
	rows, invalid, err := readRows(input)
	if err != nil {
		return err
	}
	for _, r := range invalid {
		fmt.Fprintf(stdout, "line %d: %v\n", r.line, r.err)
	}
	if *dryRun {
		fmt.Fprintf(stdout, "dry run: %d customers to import, %d rows refused; nothing sent\n", len(rows), len(invalid))
		if len(invalid) > 0 {
			return fmt.Errorf("%d rows refused", len(invalid))
		}
		return nil
	}

	baseURL, email, token := getenv("JSM_BASE_URL"), getenv("JSM_EMAIL"), getenv("JSM_API_TOKEN")
	if baseURL == "" {
		// A rate limit as tight as Jira's under load, and one customer who
		// is already there, to show both being handled.
		srv := servicedesktest.NewServer(
			servicedesktest.WithRateLimit(20, 50*time.Millisecond),
			servicedesktest.WithCustomer(servicedesktest.DefaultDeskID, "grace@example.com", "Grace Hopper"))
		defer srv.Close()
		baseURL, email, token = srv.URL, servicedesktest.AdminEmail, servicedesktest.AdminToken
		if *desk == "" {
			*desk = servicedesktest.DefaultProjectKey
		}
		fmt.Fprintf(stderr, "No JSM_BASE_URL: importing into the in-memory JSM at %s\n", baseURL)
	}
	if *desk == "" {
		*desk = getenv("JSM_SERVICE_DESK")
	}
	if *desk == "" {
		return errors.New("no service desk: pass -desk or set JSM_SERVICE_DESK")
	}
	c, err := servicedesk.NewClient(baseURL, servicedesk.WithBasicAuth(email, token))
	if err != nil {
		return err
	}

	results := createAll(ctx, c, *desk, rows, *concurrency, stderr)
	added, addErr := addAll(ctx, c, *desk, results)

	var created, existing, failed int
	for _, r := range results {
		switch r.outcome {
		case "created":
			created++
		case "existing":
			existing++
		default:
			failed++
			fmt.Fprintf(stdout, "line %d: %s: %v\n", r.line, r.email, r.err)
		}
	}
	if addErr != nil {
		fmt.Fprintf(stdout, "adding to desk %s: %v\n", *desk, addErr)
	}
	fmt.Fprintf(stdout, "%d rows: %d created, %d already had an account, %d added to desk %s, %d refused, %d failed\n",
		len(rows)+len(invalid), created, existing, added, *desk, len(invalid), failed)
	if failed > 0 || len(invalid) > 0 || addErr != nil {
		return fmt.Errorf("%d rows did not import", failed+len(invalid))
	}
	return nil
}

// readRows parses the CSV: an optional header, then email,displayName.
// Rows that cannot be imported (a bad email, an email seen before) come
// back apart, with the reason.
func readRows(in io.Reader) (rows []row, invalid []result, err error) {
	cr := csv.NewReader(in)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	seen := map[string]int{}
	for first := true; ; first = false {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		line, _ := cr.FieldPos(0)
		if first && len(rec) > 0 && strings.EqualFold(strings.TrimSpace(rec[0]), "email") {
			continue
		}
		r := row{line: line}
		if len(rec) >= 1 {
			r.email = strings.TrimSpace(rec[0])
		}
		if len(rec) >= 2 {
			r.name = strings.TrimSpace(rec[1])
		}
		key := strings.ToLower(r.email)
		switch addr, perr := mail.ParseAddress(r.email); {
		case len(rec) != 2:
			invalid = append(invalid, result{row: r, err: fmt.Errorf("want 2 fields, got %d", len(rec))})
		case perr != nil || addr.Address != r.email:
			invalid = append(invalid, result{row: r, err: fmt.Errorf("%q is not an email address", r.email)})
		case r.name == "":
			invalid = append(invalid, result{row: r, err: errors.New("no display name")})
		case seen[key] != 0:
			invalid = append(invalid, result{row: r, err: fmt.Errorf("%s repeats line %d", r.email, seen[key])})
		default:
			seen[key] = line
			rows = append(rows, r)
		}
	}
	return rows, invalid, nil
}

// createAll creates the customers, concurrency at a time, and reports
// progress on stderr.
func createAll(ctx context.Context, c *servicedesk.Client, desk string, rows []row, concurrency int, progress io.Writer) []result {
	results := make([]result, len(rows))
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				results[i] = create(ctx, c, desk, rows[i])
				mu.Lock()
				done++
				fmt.Fprintf(progress, "\rcreating customers: %d/%d", done, len(rows))
				mu.Unlock()
			}
		}()
	}
	for i := range rows {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	fmt.Fprintln(progress)
	for i := range results {
		if results[i].outcome == "" { // never started: cancelled
			results[i] = result{row: rows[i], outcome: "failed", err: ctx.Err()}
		}
	}
	return results
}

func create(ctx context.Context, c *servicedesk.Client, desk string, r row) result {
	cust, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: r.email, DisplayName: r.name, StrictConflictStatusCode: true})
	switch {
	case err == nil:
		return result{row: r, accountID: cust.AccountID, outcome: "created"}
	case errors.Is(err, servicedesk.ErrConflict):
		id, lookupErr := existingCustomer(ctx, c, desk, r.email)
		if lookupErr != nil {
			return result{row: r, outcome: "failed", err: lookupErr}
		}
		return result{row: r, accountID: id, outcome: "existing"}
	default:
		return result{row: r, outcome: "failed", err: err}
	}
}

// existingCustomer finds the account id of an email that is already a
// customer of the desk. The API cannot look up other accounts by email.
func existingCustomer(ctx context.Context, c *servicedesk.Client, desk, email string) (string, error) {
	for cu, err := range c.Customers.All(ctx, desk, &servicedesk.ListCustomersOptions{Query: email}) {
		if err != nil {
			return "", err
		}
		if strings.EqualFold(cu.EmailAddress, email) {
			return cu.AccountID, nil
		}
	}
	return "", errors.New("has an account that is not a customer of this desk; add it by account id")
}

// addAll adds every imported account to the desk, addBatch at a time.
func addAll(ctx context.Context, c *servicedesk.Client, desk string, results []result) (int, error) {
	var ids []string
	for _, r := range results {
		if r.accountID != "" {
			ids = append(ids, r.accountID)
		}
	}
	added := 0
	for len(ids) > 0 {
		n := min(addBatch, len(ids))
		if err := c.Customers.Add(ctx, desk, servicedesk.CustomerIDs{AccountIDs: ids[:n]}); err != nil {
			return added, err
		}
		added += n
		ids = ids[n:]
	}
	return added, nil
}
