package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/forge"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testApp = "ari:cloud:ecosystem::app/406d303d-0393-4ec4-ad7c-1435be94583a"

// remote is the backend under test, against the fake playing Forge and
// JSM, called over HTTP as Forge calls it.
type remote struct {
	t            *testing.T
	jsm          *servicedesktest.Server
	app          *App
	backend      *httptest.Server
	admin, agent servicedesk.Customer
}

func newRemote(t *testing.T, cfg Config, opts ...servicedesktest.Option) *remote {
	jsm := servicedesktest.NewServer(append([]servicedesktest.Option{servicedesktest.WithForgeApp(testApp)}, opts...)...)
	t.Cleanup(jsm.Close)
	v, err := forge.NewVerifier(testApp, forge.WithJWKSURL(jsm.ForgeJWKSURL()), forge.WithLoopbackAPIBaseURL())
	require.NoError(t, err)
	if cfg.Desk == "" {
		cfg.Desk = servicedesktest.DefaultProjectKey
	}
	if cfg.Directory == nil {
		cfg.Directory = func(context.Context) ([]servicedesk.CreateCustomerRequest, error) { return nil, nil }
	}
	app := NewApp(v, cfg)
	backend := httptest.NewServer(app.Handler())
	t.Cleanup(backend.Close)
	t.Cleanup(app.Close)
	return &remote{t: t, jsm: jsm, app: app, backend: backend,
		admin: jsm.AddUser(servicedesktest.User{Email: "ada@example.com", DisplayName: "Ada", Role: servicedesktest.RoleJiraAdmin}),
		agent: jsm.AddUser(servicedesktest.User{Email: "agent@example.com", DisplayName: "Agent", Role: servicedesktest.RoleAgent, Desks: []string{"HELP"}}),
	}
}

// call sends what Forge sends: a signed invocation (unless call is nil).
func (r *remote) call(path string, call *servicedesktest.ForgeCall, body string) (int, map[string]any) {
	req, err := http.NewRequest(http.MethodPost, r.backend.URL+path, strings.NewReader(body))
	require.NoError(r.t, err)
	if call != nil {
		require.NoError(r.t, r.jsm.SignInvocation(req, *call))
	}
	resp, err := r.backend.Client().Do(req)
	require.NoError(r.t, err)
	defer resp.Body.Close()
	var answer map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	return resp.StatusCode, answer
}

func emails(cs []servicedesk.Customer) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.EmailAddress)
	}
	return out
}

func TestOnboardAsTheUser(t *testing.T) {
	t.Parallel()
	r := newRemote(t, Config{})
	asAdmin := &servicedesktest.ForgeCall{Principal: r.admin.AccountID, UserToken: true, ModuleKey: "onboard-page"}
	fred := `{"email":"fred@example.com","displayName":"Fred"}`

	status, answer := r.call("/onboard", asAdmin, fred)
	require.Equal(t, http.StatusOK, status, answer)
	assert.Equal(t, true, answer["created"])
	id := answer["accountId"]
	// Forge does not retry a UI call, but the user may click twice.
	status, answer = r.call("/onboard", asAdmin, fred)
	require.Equal(t, http.StatusOK, status, answer)
	assert.Equal(t, false, answer["created"])
	assert.Equal(t, id, answer["accountId"])
	assert.Equal(t, []string{"fred@example.com"}, emails(r.jsm.Customers("HELP")))

	// The user's own permissions: an agent may not create customers.
	status, answer = r.call("/onboard", &servicedesktest.ForgeCall{Principal: r.agent.AccountID, UserToken: true}, `{"email":"barney@example.com","displayName":"Barney"}`)
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, answer["error"], "you may not")

	// Not Forge: refused before the handler.
	status, _ = r.call("/onboard", nil, fred)
	assert.Equal(t, http.StatusUnauthorized, status)
	// A manifest that does not send the user token.
	status, answer = r.call("/onboard", &servicedesktest.ForgeCall{Principal: r.admin.AccountID}, fred)
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.Contains(t, answer["error"], "auth.appUserToken.enabled")
	// Bad input never reaches Jira.
	before := len(r.jsm.Requests())
	status, _ = r.call("/onboard", asAdmin, `{"email":"not an address","displayName":"X"}`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, before, len(r.jsm.Requests()))
}

// An onboarding answers before Forge's 25 s even when Jira is slow.
func TestOnboardHasADeadline(t *testing.T) {
	t.Parallel()
	r := newRemote(t, Config{UITimeout: 100 * time.Millisecond}, servicedesktest.WithLatency(time.Second))
	status, answer := r.call("/onboard", &servicedesktest.ForgeCall{Principal: r.admin.AccountID, UserToken: true},
		`{"email":"fred@example.com","displayName":"Fred"}`)
	assert.Equal(t, http.StatusGatewayTimeout, status, answer)
}

// The trigger answers before its sync is done, a retry while the sync runs
// is a no-op, and a second sync changes nothing the first did.
func TestNightlySync(t *testing.T) {
	t.Parallel()
	directory := []servicedesk.CreateCustomerRequest{
		{Email: "mary@example.com", DisplayName: "Mary"},
		{Email: "wilma@example.com", DisplayName: "Wilma"},
	}
	r := newRemote(t, Config{Directory: func(context.Context) ([]servicedesk.CreateCustomerRequest, error) { return directory, nil }},
		servicedesktest.WithCustomer("", "mary@example.com", "Mary")) // an account on no desk yet
	hold := make(chan struct{})
	r.app.beforeSync = func() { <-hold }
	trigger := &servicedesktest.ForgeCall{SystemToken: true, ModuleKey: "nightly-sync"}

	status, answer := r.call("/nightly-sync", trigger, "")
	require.Equal(t, http.StatusAccepted, status, answer)
	assert.Equal(t, "started", answer["status"])
	assert.Empty(t, r.jsm.Customers("HELP"), "answered before the sync did anything")
	status, answer = r.call("/nightly-sync", trigger, "") // Forge's retry
	require.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, "already running", answer["status"])
	close(hold)
	r.app.Wait()
	assert.ElementsMatch(t, []string{"mary@example.com", "wilma@example.com"}, emails(r.jsm.Customers("HELP")))

	status, answer = r.call("/nightly-sync", trigger, "")
	require.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, "started", answer["status"])
	r.app.Wait()
	assert.ElementsMatch(t, []string{"mary@example.com", "wilma@example.com"}, emails(r.jsm.Customers("HELP")))
	var created int
	for _, req := range r.jsm.Requests() {
		if req.Method == http.MethodPost && strings.HasSuffix(req.Path, "/rest/servicedeskapi/customer") && req.Status == http.StatusCreated {
			created++
		}
	}
	assert.Equal(t, 1, created, "wilma, once")

	// A trigger without the system token is the manifest's mistake.
	status, answer = r.call("/nightly-sync", &servicedesktest.ForgeCall{}, "")
	assert.Equal(t, http.StatusInternalServerError, status)
	assert.Contains(t, answer["error"], "auth.appSystemToken.enabled")
}

// A sync stops when its system token expires (the error wraps
// servicedesk.ErrUnauthorized), reported cut short, to be finished by the
// next night's: it does not go on to fail, and log, every customer left.
func TestNightlySyncStopsWhenTheSystemTokenExpires(t *testing.T) {
	t.Parallel()
	const n = 25
	var directory []servicedesk.CreateCustomerRequest
	for i := range n {
		directory = append(directory, servicedesk.CreateCustomerRequest{Email: fmt.Sprintf("c%d@example.com", i), DisplayName: "C"})
	}
	var logs syncBuffer
	r := newRemote(t, Config{
		Directory: func(context.Context) ([]servicedesk.CreateCustomerRequest, error) { return directory, nil },
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	// A FIT within the clock skew Verify forgives, whose system token has
	// expired (a sync that outlived its token is the same case).
	status, answer := r.call("/nightly-sync", &servicedesktest.ForgeCall{SystemToken: true, TTL: -time.Second}, "")
	require.Equal(t, http.StatusAccepted, status, answer)
	r.app.Wait()

	failed := strings.Count(logs.String(), "a customer failed")
	assert.LessOrEqual(t, failed, 1, "the sync went on after the token expired:\n%s", firstLines(logs.String(), 3))
	assert.True(t, strings.Contains(logs.String(), "cut short"), "the sync was not reported cut short")
	assert.Contains(t, logs.String(), "app system token expired at")
	assert.Empty(t, r.jsm.Customers("HELP"))
}

// syncBuffer is a log's output, written by a sync's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

func TestDemo(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, demo(context.Background(), &out))
	for _, want := range []string{
		`POST /onboard as the user: 200 {"accountId":`,
		`"created":true}`,
		`"created":false}`,
		`POST /nightly-sync as the app: 202 {"status":"started"}`,
		"  Mary Jones <mary@example.com>\n  Fred F. User <fred@example.com>\n  Wilma Flintstone <wilma@example.com>\n",
	} {
		assert.Contains(t, out.String(), want)
	}
}
