package forge_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/forge"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// A Forge remote in production: the app's id from manifest.yml, and
// Atlassian's JWKS (the default).
func ExampleNewVerifier() {
	v, err := forge.NewVerifier(os.Getenv("FORGE_APP_ID")) // "ari:cloud:ecosystem::app/<uuid>"
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /onboard", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, _ := forge.FromContext(r.Context())
		fmt.Fprintln(w, "hello,", inv.Principal)
	})))
	_ = http.ListenAndServe(":8080", mux) // behind TLS: Forge calls https:// only
}

// The middleware hands verified invocations on, and refuses the rest; the
// handler calls Jira as the calling user. Against the fake, which plays
// Forge: its JWKS, FITs it signs, and its gateway.
func ExampleVerifier_Middleware() {
	const appID = "ari:cloud:ecosystem::app/406d303d-0393-4ec4-ad7c-1435be94583a"
	srv := servicedesktest.NewServer(servicedesktest.WithForgeApp(appID))
	defer srv.Close()
	admin := srv.AddUser(servicedesktest.User{Email: "ada@example.com", DisplayName: "Ada", Role: servicedesktest.RoleJiraAdmin})

	v, err := forge.NewVerifier(appID, forge.WithJWKSURL(srv.ForgeJWKSURL()), forge.WithLoopbackAPIBaseURL())
	if err != nil {
		log.Fatal(err)
	}
	onboard := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, _ := forge.FromContext(r.Context())
		c, err := inv.Client(forge.AsUser) // the endpoint has auth.appUserToken.enabled: true
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		cust, err := c.Customers.Create(r.Context(), servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, "created", cust.DisplayName)
	}))

	// Forge calls the remote for a user of the site.
	r := httptest.NewRequest(http.MethodPost, "/onboard", nil)
	if err := srv.SignInvocation(r, servicedesktest.ForgeCall{Principal: admin.AccountID, UserToken: true}); err != nil {
		log.Fatal(err)
	}
	w := httptest.NewRecorder()
	onboard.ServeHTTP(w, r)
	fmt.Print(w.Code, " ", w.Body)

	// Anyone else is refused.
	w = httptest.NewRecorder()
	onboard.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/onboard", nil))
	fmt.Print(w.Code, " ", w.Body)
	// Output:
	// 200 created Fred
	// 401 forge: invalid invocation: no Authorization header
}

// A scheduled trigger acts as the app: it has no user.
func ExampleInvocation_Client() {
	const appID = "406d303d-0393-4ec4-ad7c-1435be94583a"
	srv := servicedesktest.NewServer(servicedesktest.WithForgeApp(appID),
		servicedesktest.WithCustomer("1", "mary@example.com", "Mary Jones"))
	defer srv.Close()
	v, _ := forge.NewVerifier(appID, forge.WithJWKSURL(srv.ForgeJWKSURL()), forge.WithLoopbackAPIBaseURL())

	r := httptest.NewRequest(http.MethodPost, "/nightly-sync", nil)
	_ = srv.SignInvocation(r, servicedesktest.ForgeCall{SystemToken: true, ModuleKey: "nightly-sync"})
	inv, err := v.Verify(context.Background(), r)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := inv.Client(forge.AsUser); err != nil {
		fmt.Println("as the user:", err)
	}
	c, err := inv.Client(forge.AsApp) // the endpoint has auth.appSystemToken.enabled: true
	if err != nil {
		log.Fatal(err)
	}
	for cust, err := range c.Customers.All(context.Background(), "HELP", nil) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(inv.ModuleKey+":", cust.DisplayName)
	}
	// Output:
	// as the user: forge: invalid input: Invocation.Client: as is AsUser, but the invocation carried no user token (x-forge-oauth-user): set auth.appUserToken.enabled: true on the endpoint in manifest.yml, and ask for the scopes read:app-user-token and those the calls need
	// nightly-sync: Mary Jones
}
