package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/forge"
)

// Bounds of Forge's invocation contract, and what the backend keeps below
// them.
const (
	// uiDeadline bounds an onboarding: Forge gives a UI call 25 s, then
	// fails it, with no retry.
	uiDeadline = 20 * time.Second
	// defaultSyncTimeout bounds a nightly sync, which runs after its
	// trigger was answered. The app system token lasts for hours at most:
	// a sync cut short by either is finished by the next night's.
	defaultSyncTimeout = 10 * time.Minute
	// defaultMaxSyncs bounds the syncs running at once (one per
	// installation at most).
	defaultMaxSyncs = 4
	maxBody         = 64 << 10
)

// Config configures an App.
type Config struct {
	// Desk is the service desk customers are onboarded to: its id or
	// project key.
	Desk string
	// Directory lists the customers the nightly sync makes sure of.
	Directory func(context.Context) ([]servicedesk.CreateCustomerRequest, error)
	// MaxSyncs bounds the syncs running at once; 0: 4. A trigger that
	// finds them all busy is answered 503, and Forge retries it.
	MaxSyncs int
	// SyncTimeout bounds one sync; 0: 10 minutes.
	SyncTimeout time.Duration
	// UITimeout bounds an onboarding; 0: 20 s, under the 25 s Forge
	// gives a UI call.
	UITimeout time.Duration
	// Logger logs the syncs' outcomes; nil: nothing is logged.
	Logger *slog.Logger
}

// App is the Forge remote: its handlers, and the syncs they started.
type App struct {
	v   *forge.Verifier
	cfg Config
	log *slog.Logger

	ctx    context.Context // the syncs'; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  chan struct{}

	mu      sync.Mutex
	running map[string]bool // installations whose sync is running

	beforeSync func() // tests hold a sync here
}

// NewApp returns the backend of the app whose invocations v verifies.
func NewApp(v *forge.Verifier, cfg Config) *App {
	if cfg.MaxSyncs <= 0 {
		cfg.MaxSyncs = defaultMaxSyncs
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = defaultSyncTimeout
	}
	if cfg.UITimeout <= 0 {
		cfg.UITimeout = uiDeadline
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &App{v: v, cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		slots: make(chan struct{}, cfg.MaxSyncs), running: map[string]bool{}}
}

// Handler serves the endpoints of manifest.yml; every request must carry
// a valid FIT of the app.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /onboard", a.v.Middleware(http.HandlerFunc(a.onboard)))
	mux.Handle("POST /nightly-sync", a.v.Middleware(http.HandlerFunc(a.nightlySync)))
	return mux
}

// Wait waits for the syncs in flight to finish.
func (a *App) Wait() { a.wg.Wait() }

// Close stops the syncs in flight and waits for them: a sync cut short is
// finished by the next one, which finds what this one did.
func (a *App) Close() {
	a.cancel()
	a.wg.Wait()
}

type onboardRequest struct {
	Email       string `json:"email"`
	DisplayName string `json:"displayName"`
}

type onboardResponse struct {
	AccountID   string `json:"accountId"`
	DisplayName string `json:"displayName"`
	Created     bool   `json:"created"` // false: the account existed
}

// onboard makes an email a customer of the desk, as the calling user.
func (a *App) onboard(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.UITimeout)
	defer cancel()
	inv, _ := forge.FromContext(ctx)
	var req onboardRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "the body is not JSON: {\"email\": ..., \"displayName\": ...}")
		return
	}
	if addr, err := mail.ParseAddress(req.Email); err != nil || addr.Address != req.Email || strings.TrimSpace(req.DisplayName) == "" {
		writeError(w, http.StatusBadRequest, "email must be an address and displayName not empty")
		return
	}
	c, err := inv.Client(forge.AsUser)
	if err != nil { // the manifest does not send the user token
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	// Ensure creates the account or finds the one the email has, and adds
	// it to the desk: a repeated click converges on one customer.
	cust, created, err := c.Customers.Ensure(ctx, a.cfg.Desk, servicedesk.CreateCustomerRequest{Email: req.Email, DisplayName: req.DisplayName})
	if err != nil {
		writeJiraError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, onboardResponse{AccountID: cust.AccountID, DisplayName: cust.DisplayName, Created: created})
}

// nightlySync starts the sync of the installation's customers, as the
// app, and answers at once: Forge gives a trigger 5 s.
func (a *App) nightlySync(w http.ResponseWriter, r *http.Request) {
	inv, _ := forge.FromContext(r.Context())
	c, err := inv.Client(forge.AsApp)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running[inv.InstallationID] {
		// A retry of a trigger whose sync goes on.
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "already running"})
		return
	}
	select {
	case a.slots <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusServiceUnavailable, "busy with other syncs")
		return
	}
	a.running[inv.InstallationID] = true
	a.wg.Add(1)
	go a.sync(c, inv.InstallationID)
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "started"})
}

// sync onboards every customer of the directory; customers already there
// are left as they are.
func (a *App) sync(c *servicedesk.Client, installation string) {
	defer a.wg.Done()
	defer func() {
		a.mu.Lock()
		delete(a.running, installation)
		<-a.slots
		a.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(a.ctx, a.cfg.SyncTimeout)
	defer cancel()
	if a.beforeSync != nil {
		a.beforeSync()
	}
	customers, err := a.cfg.Directory(ctx)
	if err != nil {
		a.log.Error("nightly sync: reading the directory", "installation", installation, "error", err)
		return
	}
	var created, failed int
	for _, cust := range customers {
		_, isNew, err := c.Customers.Ensure(ctx, a.cfg.Desk, cust)
		switch {
		case ctx.Err() != nil:
			a.log.Warn("nightly sync: cut short", "installation", installation, "error", ctx.Err())
			return
		case errors.Is(err, servicedesk.ErrUnauthorized):
			// The system token expired (or was refused): every customer
			// left would fail alike. The next night's sync, with a new
			// token, finishes the job.
			a.log.Warn("nightly sync: cut short", "installation", installation, "created", created, "error", err)
			return
		case err != nil:
			failed++
			a.log.Warn("nightly sync: a customer failed", "installation", installation, "error", err)
		case isNew:
			created++
		}
	}
	a.log.Info("nightly sync: done", "installation", installation, "customers", len(customers), "created", created, "failed", failed)
}

// writeJiraError answers with what Jira said, in terms Forge's UI can show.
func writeJiraError(w http.ResponseWriter, err error) {
	var apiErr *servicedesk.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "Jira did not answer in time")
	case errors.As(err, &apiErr) && errors.Is(err, servicedesk.ErrRateLimited):
		if apiErr.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(apiErr.RetryAfter.Seconds()))))
		}
		writeError(w, http.StatusServiceUnavailable, "Jira is rate limiting this app: try again later")
	case errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusForbidden || apiErr.StatusCode == http.StatusUnauthorized):
		writeError(w, http.StatusForbidden, "you may not do this in Jira: "+apiErr.Message)
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadRequest:
		writeError(w, http.StatusBadRequest, apiErr.Message)
	default:
		writeError(w, http.StatusBadGateway, err.Error())
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
