// Package forge serves a Forge app from a Go backend: a Forge remote.
//
// Forge calls a remote with an HTTPS request whose Authorization header
// carries a Forge Invocation Token (FIT): a JWT that Atlassian signs (RS256,
// keys from its JWKS) and that says which app, installation, site and user
// the call is for. When the manifest's endpoint asks for them, the request
// also carries an app system token (x-forge-oauth-system) and a token of
// the calling user (x-forge-oauth-user), with which the remote calls Jira at
// the FIT's app.apiBaseUrl.
//
// A [Verifier] checks the FIT and reads the tokens: every claim that makes
// an invocation genuine and meant for this app, keys chosen by kid from
// Atlassian's JWKS (fetched at the first invocation, cached, fetched again
// when a key Atlassian rotated in shows up, and never more than once in a
// while, whatever the tokens say). [Verifier.Middleware] does it for an
// http.Handler; [Invocation.Client] then returns a [servicedesk.Client]
// that calls Jira as the app or as the user:
//
//	v, err := forge.NewVerifier(os.Getenv("FORGE_APP_ID"))
//	if err != nil {
//		return err
//	}
//	mux.Handle("POST /onboard", v.Middleware(http.HandlerFunc(onboard)))
//
//	func onboard(w http.ResponseWriter, r *http.Request) {
//		inv, _ := forge.FromContext(r.Context())
//		c, err := inv.Client(forge.AsUser)
//		...
//	}
//
// The FIT and the tokens are credentials: no error, log line or formatted
// [Invocation] shows them. Package servicedesktest plays Forge for tests
// ([servicedesktest.WithForgeApp]).
package forge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/internal/forgeapp"
	"github.com/servicedesk-go/servicedesk/internal/inputerr"
)

// DefaultJWKSURL is where Atlassian publishes the keys that sign FITs.
const DefaultJWKSURL = "https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"

// Limits of what Verify reads from a request, checked before parsing.
const (
	// MaxFITBytes bounds the Authorization header. A FIT carries the UI's
	// context and may run to several kilobytes; a much larger header is
	// not one Forge sent.
	MaxFITBytes = 64 << 10
	// MaxTokenBytes bounds x-forge-oauth-system and x-forge-oauth-user.
	MaxTokenBytes = 16 << 10
)

// ClockSkew is how far the clocks of Atlassian and of this machine may
// disagree when exp, nbf and iat are checked.
const ClockSkew = 60 * time.Second

const (
	fitIssuer = "forge/invocation-token"

	headerSystemToken = "X-Forge-Oauth-System"
	headerUserToken   = "X-Forge-Oauth-User"
)

// ErrInvalidInvocation is wrapped by every error of [Verifier.Verify]: the
// request is not a Forge invocation of this app that can be trusted. The
// error's text says why, never what the token holds.
var ErrInvalidInvocation = errors.New("forge: invalid invocation")

// Verifier checks Forge Invocation Tokens for one app. Create it with
// [NewVerifier]; it is safe for concurrent use, and meant to live as long
// as the backend: it caches the JWKS, and what [Invocation.Client]'s
// clients share per installation.
type Verifier struct {
	appID     string // the app's ARI
	keys      *keySet
	keyfunc   keyfunc.Keyfunc
	parser    *jwt.Parser
	loopback  bool            // app.apiBaseUrl may be http:// to loopback
	isolated  map[string]bool // icLabels accepted
	logger    *slog.Logger
	installs  *installations
	apiClient *http.Client // carries the calls of every Client made from an Invocation
}

// A VerifierOption configures a [Verifier] in [NewVerifier]. An invalid one
// makes NewVerifier fail with an error wrapping [servicedesk.ErrInvalidInput].
type VerifierOption interface {
	apply(*config) error
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

type config struct {
	jwksURL      string
	httpClient   *http.Client
	refreshEvery time.Duration
	loopback     bool
	isolated     map[string]bool
	logger       *slog.Logger
}

// DefaultJWKSRefreshLimit is the least time between two fetches of the
// JWKS that tokens with unknown key ids trigger; see [WithJWKSRefreshLimit].
const DefaultJWKSRefreshLimit = 30 * time.Second

// WithJWKSURL sets where the keys are fetched from (default
// [DefaultJWKSURL]): an https:// URL, or http:// to a loopback host (a
// test's server, such as servicedesktest's [Server.ForgeJWKSURL]).
// Redirects are followed only within its origin (scheme, host and port).
//
// [Server.ForgeJWKSURL]: https://pkg.go.dev/github.com/servicedesk-go/servicedesk/servicedesktest#Server.ForgeJWKSURL
func WithJWKSURL(u string) VerifierOption {
	return optionFunc(func(c *config) error {
		if err := checkJWKSURL(u); err != nil {
			return err
		}
		c.jwksURL = u
		return nil
	})
}

// WithHTTPClient sets the client whose Transport and Timeout carry the JWKS
// fetches (default: http.DefaultTransport, each fetch bounded by 10 s and
// by the invocation's context). Its Jar is not used: nothing but a GET with
// no credentials goes to the JWKS. It has no say over [Invocation.Client]'s
// clients: give those servicedesk.WithHTTPClient.
func WithHTTPClient(hc *http.Client) VerifierOption {
	return optionFunc(func(c *config) error {
		if hc == nil {
			return invalidInput("WithHTTPClient", "hc", "must not be nil")
		}
		c.httpClient = hc
		return nil
	})
}

// WithJWKSRefreshLimit sets the least time between two fetches of the JWKS
// (default [DefaultJWKSRefreshLimit]). The JWKS is fetched at the first
// invocation; a token whose kid is not in it triggers one more fetch at
// once (Atlassian rotated a key in), and further ones no sooner than every
// d apart, so a flood of forged tokens cannot make the backend hammer
// Atlassian, and a JWKS that could not be had is tried again that often.
func WithJWKSRefreshLimit(d time.Duration) VerifierOption {
	return optionFunc(func(c *config) error {
		if d <= 0 {
			return invalidInput("WithJWKSRefreshLimit", "d", fmt.Sprintf("must be positive, got %v", d))
		}
		c.refreshEvery = d
		return nil
	})
}

// WithLoopbackAPIBaseURL accepts FITs whose app.apiBaseUrl is plain http://
// to a loopback host, as servicedesktest's are. Without it such a FIT is
// refused: Atlassian's API base URLs are https://, and the tokens go there.
// For tests only.
func WithLoopbackAPIBaseURL() VerifierOption {
	return optionFunc(func(c *config) error {
		c.loopback = true
		return nil
	})
}

// WithIsolatedCloud accepts FITs from the Isolated Cloud whose icLabel is
// label. Such FITs are signed with that cloud's keys: give its JWKS with
// [WithJWKSURL]. Without it, a FIT that carries an icLabel is refused.
func WithIsolatedCloud(label string) VerifierOption {
	return optionFunc(func(c *config) error {
		if strings.TrimSpace(label) == "" {
			return invalidInput("WithIsolatedCloud", "label", "must not be empty")
		}
		if c.isolated == nil {
			c.isolated = map[string]bool{}
		}
		c.isolated[label] = true
		return nil
	})
}

// WithLogger makes [Verifier.Middleware] log each request it refuses, at
// Warn level, with the reason (never the token). Without it, or with nil,
// nothing is logged.
func WithLogger(l *slog.Logger) VerifierOption {
	return optionFunc(func(c *config) error {
		c.logger = l
		return nil
	})
}

// NewVerifier returns a Verifier of the FITs of the app appID: its ARI
// ("ari:cloud:ecosystem::app/<uuid>", as app.id in manifest.yml) or the
// bare uuid. It does no network I/O: the JWKS is fetched when the first
// invocation needs it, so a backend starts while the JWKS cannot be had,
// and refuses invocations until it can.
func NewVerifier(appID string, opts ...VerifierOption) (*Verifier, error) {
	ari, err := appARI(appID)
	if err != nil {
		return nil, err
	}
	cfg := config{jwksURL: DefaultJWKSURL, refreshEvery: DefaultJWKSRefreshLimit}
	for _, opt := range opts {
		if opt == nil {
			return nil, invalidInput("NewVerifier", "opts", "must not contain nil")
		}
		if err := opt.apply(&cfg); err != nil {
			return nil, err
		}
	}
	keys := newKeySet(cfg.jwksURL, jwksClient(cfg.jwksURL, cfg.httpClient), cfg.refreshEvery)
	kf, err := keyfunc.New(keyfunc.Options{
		Storage: keys.storage(),
		// A key the JWKS marks for encryption signs nothing; most JWKS
		// leave "use" out.
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
	if err != nil {
		return nil, fmt.Errorf("forge: NewVerifier: %w", err)
	}
	v := &Verifier{
		appID:    ari,
		keys:     keys,
		keyfunc:  kf,
		loopback: cfg.loopback,
		isolated: cfg.isolated,
		logger:   cfg.logger,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
			jwt.WithIssuer(fitIssuer),
			jwt.WithAudience(ari),
			jwt.WithExpirationRequired(),
			jwt.WithNotBeforeRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(ClockSkew),
			// One text, one token: no second spelling of the same
			// signature (base64 with stray bits set) is accepted.
			jwt.WithStrictDecoding(),
		),
		installs:  newInstallations(MaxInstallations),
		apiClient: &http.Client{Transport: apiTransport()},
	}
	return v, nil
}

// appARI expands a bare uuid to the app's ARI, and checks either form.
func appARI(appID string) (string, error) {
	ari, ok := forgeapp.ARI(appID)
	if !ok {
		return "", invalidInput("NewVerifier", "appID",
			`must be the app's ARI ("ari:cloud:ecosystem::app/<uuid>", app.id in manifest.yml) or its uuid`)
	}
	return ari, nil
}

// Middleware answers 401 to requests that do not verify (the body says
// why, never what the token holds) and hands the rest to next, with the
// [Invocation] in their context ([FromContext]).
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, err := v.Verify(r.Context(), r)
		if err != nil {
			if v.logger != nil {
				v.logger.LogAttrs(r.Context(), slog.LevelWarn, "forge: invocation refused",
					slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
			}
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), invocationKey{}, inv)))
	})
}

type invocationKey struct{}

// FromContext returns the Invocation that [Verifier.Middleware] put in a
// request's context.
func FromContext(ctx context.Context) (*Invocation, bool) {
	if ctx == nil {
		return nil, false
	}
	inv, ok := ctx.Value(invocationKey{}).(*Invocation)
	return inv, ok && inv != nil
}

// invocationError is a refusal of Verify: it names its reason, and wraps
// ErrInvalidInvocation and what caused it (a JWT library's sentinel, a
// context's error), whose texts do not quote the token either.
type invocationError struct {
	reason string
	cause  error
}

func refuse(reason string) error { return &invocationError{reason: reason} }

func refuseWith(reason string, cause error) error {
	return &invocationError{reason: reason, cause: cause}
}

func (e *invocationError) Error() string { return ErrInvalidInvocation.Error() + ": " + e.reason }

func (e *invocationError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalidInvocation}
	}
	return []error{ErrInvalidInvocation, e.cause}
}

// invalidInput is input refused before anything is done with it: it wraps
// servicedesk.ErrInvalidInput and names where it came from and the field.
func invalidInput(where, field, reason string) error {
	return &inputerr.Error{Prefix: "forge", Where: where, Field: field, Reason: reason, Kind: servicedesk.ErrInvalidInput}
}
