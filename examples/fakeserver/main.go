// Command fakeserver serves the in-memory JSM of package servicedesktest on
// an address, so that scripts and clients in any language can be tested
// against it:
//
//	go run ./examples/fakeserver -addr 127.0.0.1:8080 -customers 120
//	curl -u admin@example.com:admin-token -H 'X-ExperimentalApi: opt-in' \
//	    http://127.0.0.1:8080/rest/servicedeskapi/servicedesk/1/customer
//
// Rate limits as Jira Cloud's: -cloud-limits (Atlassian's documented burst
// rates, announced on every answer), or -burst-limit N (each endpoint and
// method, N a second) counted by -limit-kind fixed, sliding or bucket;
// -quota P adds an app's points quota per -quota-window; -announce says
// when the structured headers are sent (429, always, beta).
//
// It runs until interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fakeserver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("fakeserver", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	customers := fs.Int("customers", 3, "sample customers to put on desk 1")
	seed := fs.Uint64("seed", 1, "seed of generated ids")
	publicURL := fs.String("public-url", "", "base URL that _links name (default: the server's own)")
	contextPath := fs.String("context-path", "", `Data Center context path, e.g. "/jira"`)
	cloud := fs.Bool("cloud-limits", false, "Jira Cloud's documented burst limits, announced on every answer")
	burst := fs.Int("burst-limit", 0, "requests a second allowed to each endpoint and method (0: none)")
	kind := fs.String("limit-kind", "fixed", "how -burst-limit counts: fixed, sliding or bucket")
	points := fs.Int("quota", 0, "an app's points quota per -quota-window (0: none)")
	quotaWindow := fs.Duration("quota-window", time.Hour, "window of -quota")
	announce := fs.String("announce", "", "when to send RateLimit-Policy/RateLimit: 429, always or beta (default 429; always with -cloud-limits)")
	rate := fs.Int("rate-limit", 0, "requests allowed per -rate-window, all endpoints together (0: no limit; see -burst-limit)")
	window := fs.Duration("rate-window", time.Second, "window of -rate-limit")
	latency := fs.Duration("latency", 0, "delay of every answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h: the usage was printed, nothing failed
		}
		return err
	}
	limitKinds := map[string]servicedesktest.LimitKind{"fixed": servicedesktest.FixedWindow, "sliding": servicedesktest.SlidingWindow, "bucket": servicedesktest.TokenBucket}
	lk, ok := limitKinds[*kind]
	if !ok {
		return fmt.Errorf("-limit-kind %q: want fixed, sliding or bucket", *kind)
	}
	announces := map[string]servicedesktest.Announce{"429": servicedesktest.AnnounceOn429, "always": servicedesktest.AnnounceAlways, "beta": servicedesktest.AnnounceBeta}
	an, ok := announces[*announce]
	if !ok && *announce != "" {
		return fmt.Errorf("-announce %q: want 429, always or beta", *announce)
	}

	opts := []servicedesktest.Option{servicedesktest.WithAddr(*addr), servicedesktest.WithSeed(*seed)}
	for i := 1; i <= *customers; i++ {
		opts = append(opts, servicedesktest.WithCustomer(servicedesktest.DefaultDeskID,
			fmt.Sprintf("customer%d@example.com", i), fmt.Sprintf("Customer %d", i)))
	}
	if *publicURL != "" {
		opts = append(opts, servicedesktest.WithPublicURL(*publicURL))
	}
	if *contextPath != "" {
		opts = append(opts, servicedesktest.WithContextPath(*contextPath))
	}
	if *cloud {
		opts = append(opts, servicedesktest.WithCloudLimits())
	}
	if *burst > 0 {
		opts = append(opts, servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{Requests: *burst, Kind: lk}))
	}
	if *points > 0 {
		opts = append(opts, servicedesktest.WithQuota(servicedesktest.Quota{Points: *points, Window: *quotaWindow}))
	}
	if *announce != "" {
		opts = append(opts, servicedesktest.WithAnnounce(an))
	}
	if *rate > 0 {
		opts = append(opts, servicedesktest.WithRateLimit(*rate, *window))
	}
	if *latency > 0 {
		opts = append(opts, servicedesktest.WithLatency(*latency))
	}
	srv, err := newServer(opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(out, "serving the fake JSM at %s\n", srv.URL)
	fmt.Fprintf(out, "basic auth %s:%s, service desk %s (project %s)\n",
		servicedesktest.AdminEmail, servicedesktest.AdminToken, servicedesktest.DefaultDeskID, servicedesktest.DefaultProjectKey)
	<-ctx.Done()
	fmt.Fprintln(out, "stopping")
	return nil
}

// newServer turns servicedesktest's panic on a busy address into an error.
func newServer(opts []servicedesktest.Option) (srv *servicedesktest.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return servicedesktest.NewServer(opts...), nil
}
