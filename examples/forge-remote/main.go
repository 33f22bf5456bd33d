// Command forge-remote is the backend of a Forge app for Jira Service
// Management: a Forge remote (manifest.yml beside this file). It serves
// two endpoints:
//
//   - POST /onboard, a UI resolver ("onboard this customer"): it acts as
//     the calling user, with that user's permissions, and answers within
//     Forge's 25 s (it gives itself 20), which Forge does not retry.
//   - POST /nightly-sync, a scheduled trigger (nightly sync of the app's
//     customer directory): it acts as the app, hands the work to a bounded
//     pool and answers at once, well within Forge's 5 s; Forge retries a
//     trigger up to 4 times, and a retry while the sync runs is a no-op.
//
// Both are safe to repeat: onboarding finds a customer that already exists
// and adds it to the desk again, which changes nothing.
//
// With no FORGE_APP_ID set it runs a demonstration against the in-memory
// fake of package servicedesktest, which plays Forge as well as JSM:
//
//	go run ./examples/forge-remote
//
// As a real backend, behind TLS (Forge calls https:// only):
//
//	FORGE_APP_ID=ari:cloud:ecosystem::app/<uuid>   (app.id in manifest.yml)
//	JSM_SERVICE_DESK=HELP                          (the desk's id or project key)
//	FORGE_DIRECTORY=customers.json                 ([{"email": ..., "displayName": ...}], for the sync)
//	go run ./examples/forge-remote -addr :8080
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/forge"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if os.Getenv("FORGE_APP_ID") == "" {
		err = demo(ctx, os.Stdout)
	} else {
		err = serve(ctx, *addr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "forge-remote:", err)
		os.Exit(1)
	}
}

// serve runs the backend until ctx ends, then lets the syncs in flight
// finish.
func serve(ctx context.Context, addr string) error {
	v, err := forge.NewVerifier(os.Getenv("FORGE_APP_ID"), forge.WithLogger(slog.Default()))
	if err != nil {
		return err
	}
	desk := os.Getenv("JSM_SERVICE_DESK")
	if desk == "" {
		return errors.New("set JSM_SERVICE_DESK to the desk's id or project key")
	}
	app := NewApp(v, Config{Desk: desk, Directory: fileDirectory(os.Getenv("FORGE_DIRECTORY")), Logger: slog.Default()})
	defer app.Close()
	srv := &http.Server{
		Addr:              addr,
		Handler:           app.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// fileDirectory reads the customers to sync from a JSON file, afresh for
// each sync.
func fileDirectory(path string) func(context.Context) ([]servicedesk.CreateCustomerRequest, error) {
	return func(context.Context) ([]servicedesk.CreateCustomerRequest, error) {
		if path == "" {
			return nil, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var customers []servicedesk.CreateCustomerRequest
		return customers, json.Unmarshal(b, &customers)
	}
}

// demo plays both sides against the fake: Forge calls the backend's two
// endpoints as a user of the site would, and as the nightly trigger does.
func demo(ctx context.Context, out io.Writer) error {
	const appID = "ari:cloud:ecosystem::app/406d303d-0393-4ec4-ad7c-1435be94583a"
	jsm := servicedesktest.NewServer(servicedesktest.WithSeed(1), servicedesktest.WithForgeApp(appID),
		servicedesktest.WithCustomer(servicedesktest.DefaultDeskID, "mary@example.com", "Mary Jones"))
	defer jsm.Close()
	admin := jsm.AddUser(servicedesktest.User{Email: "ada@example.com", DisplayName: "Ada Admin", Role: servicedesktest.RoleJiraAdmin})
	fmt.Fprintf(out, "No FORGE_APP_ID set: Forge and JSM are played by the in-memory fake at %s\n", jsm.URL)

	v, err := forge.NewVerifier(appID, forge.WithJWKSURL(jsm.ForgeJWKSURL()), forge.WithLoopbackAPIBaseURL())
	if err != nil {
		return err
	}
	directory := []servicedesk.CreateCustomerRequest{
		{Email: "mary@example.com", DisplayName: "Mary Jones"},
		{Email: "wilma@example.com", DisplayName: "Wilma Flintstone"},
	}
	app := NewApp(v, Config{Desk: servicedesktest.DefaultProjectKey,
		Directory: func(context.Context) ([]servicedesk.CreateCustomerRequest, error) { return directory, nil }})
	defer app.Close()
	backend := httptest.NewServer(app.Handler())
	defer backend.Close()

	call := func(path string, fc servicedesktest.ForgeCall, body string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, backend.URL+path, stringsReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if err := jsm.SignInvocation(req, fc); err != nil {
			return err
		}
		resp, err := backend.Client().Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		fmt.Fprintf(out, "POST %s as %s: %d %s", path, who(fc), resp.StatusCode, answer)
		return nil
	}
	onboard := servicedesktest.ForgeCall{Principal: admin.AccountID, UserToken: true, ModuleKey: "onboard-page"}
	for range 2 { // the second time changes nothing
		if err := call("/onboard", onboard, `{"email":"fred@example.com","displayName":"Fred F. User"}`); err != nil {
			return err
		}
	}
	if err := call("/nightly-sync", servicedesktest.ForgeCall{SystemToken: true, ModuleKey: "nightly-sync"}, ""); err != nil {
		return err
	}
	app.Wait() // for the sync
	fmt.Fprintln(out, "Customers of the desk now:")
	for _, c := range jsm.Customers(servicedesktest.DefaultDeskID) {
		fmt.Fprintf(out, "  %s <%s>\n", c.DisplayName, c.EmailAddress)
	}
	return nil
}

func who(fc servicedesktest.ForgeCall) string {
	if fc.UserToken {
		return "the user"
	}
	return "the app"
}
