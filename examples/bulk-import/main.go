// Command bulk-import makes every email of a CSV file of
// "email,displayName" rows a customer of a service desk.
//
//	go run ./examples/bulk-import                  # sample.csv, in-memory JSM
//	go run ./examples/bulk-import -csv people.csv -desk HELP -concurrency 8
//	go run ./examples/bulk-import -csv people.csv -dry-run
//
// With JSM_BASE_URL, JSM_EMAIL and JSM_API_TOKEN set it runs against that
// site; otherwise against an in-memory JSM with Jira Cloud's burst limits.
// Each row is one call to CustomersService.Ensure: the account is created
// when the email has none, found when it has one (on a desk or not), and
// added to the desk, so a second run over any file converges and changes
// nothing. Rows run with bounded concurrency; the client paces its requests
// to Jira's rate limits, shared by all workers, and the summary says how
// long it was held back. Progress goes to stderr, the summary to stdout; the
// exit status is 1 when any row failed.
package main

import (
	"context"
	_ "embed"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
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
	outcome string // created, existing, failed
	err     error
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("bulk-import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	csvPath := fs.String("csv", "", "CSV file of email,displayName rows (default: the bundled sample)")
	desk := fs.String("desk", "", "service desk id or project key (default: JSM_SERVICE_DESK, or HELP on the in-memory JSM)")
	concurrency := fs.Int("concurrency", 4, "rows imported at once")
	maxWait := fs.Duration("max-wait", 2*time.Minute, "the longest a request waits for Jira's rate limits before its row fails")
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
		fmt.Fprintf(stdout, "dry run: %s to import, %s refused; nothing sent\n", count(len(rows), "customer"), count(len(invalid), "row"))
		if len(invalid) > 0 {
			return fmt.Errorf("%d rows refused", len(invalid))
		}
		return nil
	}

	baseURL, email, token := getenv("JSM_BASE_URL"), getenv("JSM_EMAIL"), getenv("JSM_API_TOKEN")
	if baseURL == "" {
		// Jira Cloud's burst limits, made tight, one customer who is on the
		// desk already and one who has an account on no desk, to show all
		// three being handled.
		srv := servicedesktest.NewServer(
			servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{Method: "POST", Requests: 4}),
			servicedesktest.WithCustomer(servicedesktest.DefaultDeskID, "grace@example.com", "Grace Hopper"),
			servicedesktest.WithCustomer("", "ada@example.com", "Ada Lovelace"))
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
	var limits rateLimitReport
	c, err := servicedesk.NewClient(baseURL, servicedesk.WithBasicAuth(email, token),
		servicedesk.WithRateLimitWait(*maxWait), servicedesk.WithHooks(limits.hooks()))
	if err != nil {
		return err
	}

	// A mistyped desk would fail every row at its last step, after creating
	// its account (customers cannot be deleted through the API): look first.
	if _, err := c.Customers.List(ctx, *desk, &servicedesk.ListCustomersOptions{Limit: 1}); err != nil {
		return fmt.Errorf("service desk %s: %w; nothing was imported", *desk, err)
	}

	results := ensureAll(ctx, c, *desk, rows, *concurrency, stderr)

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
	fmt.Fprintf(stdout, "%s: %d on desk %s (%d created, %d had an account already), %d refused, %d failed\n",
		count(len(rows)+len(invalid), "row"), created+existing, *desk, created, existing, len(invalid), failed)
	fmt.Fprintln(stdout, limits.String())
	if failed > 0 || len(invalid) > 0 {
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

// ensureAll makes each row's email a customer of desk, concurrency rows at
// a time, and reports progress on stderr.
func ensureAll(ctx context.Context, c *servicedesk.Client, desk string, rows []row, concurrency int, progress io.Writer) []result {
	results := make([]result, len(rows))
	terminal := isTerminal(progress)
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				results[i] = ensure(ctx, c, desk, rows[i])
				mu.Lock()
				done++
				switch {
				case terminal:
					fmt.Fprintf(progress, "\rimporting customers: %d/%d", done, len(rows))
				case done*10/len(rows) != (done-1)*10/len(rows) || done == len(rows):
					fmt.Fprintf(progress, "importing customers: %d/%d\n", done, len(rows)) // every tenth, for a log
				}
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
	if terminal {
		fmt.Fprintln(progress)
	}
	for i := range results {
		if results[i].outcome == "" { // never started: cancelled
			results[i] = result{row: rows[i], outcome: "failed", err: ctx.Err()}
		}
	}
	return results
}

// isTerminal reports whether w is a terminal, where progress may redraw
// one line; a file or a pipe gets a line every tenth instead.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// count is n things, in the singular for one.
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func ensure(ctx context.Context, c *servicedesk.Client, desk string, r row) result {
	_, created, err := c.Customers.Ensure(ctx, desk, servicedesk.CreateCustomerRequest{Email: r.email, DisplayName: r.name})
	switch {
	case err != nil:
		return result{row: r, outcome: "failed", err: err} // names the step: create, find or add
	case created:
		return result{row: r, outcome: "created"}
	}
	return result{row: r, outcome: "existing"}
}

// rateLimitReport counts, through the client's hooks, how much Jira's rate
// limits held the import back.
type rateLimitReport struct {
	mu        sync.Mutex
	calls     int
	held      int           // calls that waited for the rate limiter
	waited    time.Duration // how long, in all
	throttled int           // answers that were 429s
	refused   int           // calls that gave up waiting
}

func (r *rateLimitReport) hooks() servicedesk.Hooks {
	return servicedesk.Hooks{
		Attempt: func(_ context.Context, a servicedesk.AttemptInfo) {
			if a.StatusCode == http.StatusTooManyRequests {
				r.mu.Lock()
				r.throttled++
				r.mu.Unlock()
			}
		},
		CallEnd: func(_ context.Context, c servicedesk.CallResult) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.calls++
			if c.Waited > time.Millisecond {
				r.held++
				r.waited += c.Waited
			}
			if c.Class == servicedesk.ClassRateLimited {
				r.refused++
			}
		},
	}
}

func (r *rateLimitReport) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("rate limits: paced or paused %d of %d calls, %v in all; 429 answers: %d; calls that gave up waiting: %d",
		r.held, r.calls, r.waited.Round(time.Millisecond), r.throttled, r.refused)
}
