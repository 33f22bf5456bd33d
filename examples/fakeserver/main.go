// Command fakeserver serves the in-memory JSM of package servicedesktest on
// an address, so that scripts and clients in any language can be tested
// against it:
//
//	go run ./examples/fakeserver -addr 127.0.0.1:8080 -customers 120
//	curl -u admin@example.com:admin-token -H 'X-ExperimentalApi: opt-in' \
//	    http://127.0.0.1:8080/rest/servicedeskapi/servicedesk/1/customer
//
// It runs until interrupted.
package main

import (
	"context"
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
	rate := fs.Int("rate-limit", 0, "requests allowed per -rate-window (0: no limit)")
	window := fs.Duration("rate-window", time.Second, "window of -rate-limit")
	latency := fs.Duration("latency", 0, "delay of every answer")
	if err := fs.Parse(args); err != nil {
		return err
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
