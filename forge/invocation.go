package forge

import (
	"container/list"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/internal/hosts"
)

// Invocation is what a verified FIT says about one call from Forge, and
// the tokens Forge forwarded with it. The tokens are kept unexported and
// out of reach of printers: String, GoString, every fmt verb, encoding/json
// and log/slog show whether each was sent, never its value.
type Invocation struct {
	AppID           string // the app's ARI
	EnvironmentType string // app.environment.type as sent ("DEVELOPMENT", "STAGING", "PRODUCTION")
	EnvironmentID   string
	InstallationID  string // app.installation.id (an ARI: "ari:cloud:ecosystem::installation/<uuid>")
	APIBaseURL      string // where this installation's API calls go (app.apiBaseUrl)
	CloudID         string // the site's cloud id, when the FIT names it
	SiteURL         string // context.siteUrl: when the invocation came from a UI
	Principal       string // the calling user's account id; "" for events and triggers
	ModuleKey       string // app.module.key
	Expires         time.Time
	// ICLabel is the Isolated Cloud the FIT came from (see
	// [WithIsolatedCloud]); "" for Atlassian's commercial cloud.
	ICLabel string

	system token // x-forge-oauth-system
	user   token // x-forge-oauth-user
	v      *Verifier
}

// token is a token Forge forwarded.
type token struct {
	value secret
}

// secret holds a credential where no printer reaches it: fmt, spew and
// other reflection-based dumps show a func as an address, never what it
// captured.
type secret func() string

func newToken(raw string) token {
	if raw == "" {
		return token{}
	}
	return token{value: func() string { return raw }}
}

// expires is the token's JWT exp; zero when it has none that can be read.
// It is read, not trusted: the token is checked by the API it is sent to.
// It only spares sending one that can no longer work.
func (t token) expires() time.Time {
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(t.value(), &claims); err == nil && claims.ExpiresAt != nil {
		return claims.ExpiresAt.Time
	}
	return time.Time{}
}

func (t token) sent() bool { return t.value != nil }

// Actor is who an [Invocation.Client] acts as.
type Actor int

const (
	// AsApp acts as the app's bot user, with the app system token
	// (x-forge-oauth-system; the manifest's endpoint needs
	// auth.appSystemToken.enabled: true, and the app the scope
	// read:app-system-token).
	AsApp Actor = iota
	// AsUser acts as the calling user, with that user's permissions and
	// the user token (x-forge-oauth-user; the endpoint needs
	// auth.appUserToken.enabled: true, the app the scope
	// read:app-user-token, and the invocation a user: a UI call).
	AsUser
)

func (a Actor) String() string {
	switch a {
	case AsApp:
		return "AsApp"
	case AsUser:
		return "AsUser"
	}
	return fmt.Sprintf("Actor(%d)", int(a))
}

// Client returns a servicedesk.Client that calls APIBaseURL as the actor,
// with opts after the client's own. It fails, with an error wrapping
// [servicedesk.ErrInvalidInput] that names the manifest setting, when the
// invocation carried no token for that actor. Once the token has expired
// (its exp), calls fail before sending, with an error that says so and
// wraps [servicedesk.ErrUnauthorized], as the 401 the API would answer
// does (errors.Is tells it apart from other failures, so that a long job
// can stop): make a Client per invocation, from that invocation's tokens.
//
// Clients made for the same installation through the same [Verifier]
// share one rate limiter (the app's quota and Jira's burst limits count
// per installation; see [servicedesk.NewRateLimiter]), and all of them one
// http.Transport, so that invocations reuse connections; opts may replace
// either (servicedesk.WithRateLimiter, servicedesk.WithHTTPClient).
func (inv *Invocation) Client(as Actor, opts ...servicedesk.Option) (*servicedesk.Client, error) {
	var tok token
	var setting, scope, header, who string
	switch as {
	case AsApp:
		tok, setting, scope, header, who = inv.system, "auth.appSystemToken.enabled", "read:app-system-token", "x-forge-oauth-system", "app system token"
	case AsUser:
		tok, setting, scope, header, who = inv.user, "auth.appUserToken.enabled", "read:app-user-token", "x-forge-oauth-user", "user token"
	default:
		return nil, invalidInput("Invocation.Client", "as", fmt.Sprintf("must be AsApp or AsUser, got %v", as))
	}
	if !tok.sent() {
		return nil, invalidInput("Invocation.Client", "as",
			fmt.Sprintf("is %v, but the invocation carried no %s (%s): set %s: true on the endpoint in manifest.yml, and ask for the scopes %s and those the calls need",
				as, who, header, setting, scope))
	}
	own := []servicedesk.Option{servicedesk.WithTokenSource(tokenSource{tok: tok.value, expires: tok.expires(), who: who})}
	if inv.v != nil {
		own = append(own,
			servicedesk.WithRateLimiter(inv.v.installs.limiter(inv.InstallationID, inv.APIBaseURL)),
			servicedesk.WithHTTPClient(inv.v.apiClient))
	}
	return servicedesk.NewClient(inv.APIBaseURL, append(own, opts...)...)
}

// tokenSource hands out a forwarded token until it expires, and then
// refuses, so that nothing is sent with it that could only come back 401.
type tokenSource struct {
	tok     secret
	expires time.Time
	who     string
}

func (s tokenSource) Token() (*oauth2.Token, error) {
	if !s.expires.IsZero() && !time.Now().Before(s.expires) {
		return nil, &expiredError{who: s.who, at: s.expires}
	}
	return &oauth2.Token{AccessToken: s.tok(), TokenType: "Bearer", Expiry: s.expires}, nil
}

// expiredError is a forwarded token past its exp. It wraps
// servicedesk.ErrUnauthorized: the API would answer it 401, and callers
// match that one sentinel whichever side refused the token.
type expiredError struct {
	who string
	at  time.Time
}

func (e *expiredError) Error() string {
	return fmt.Sprintf("forge: the %s expired at %s: Forge sends short-lived tokens afresh with each invocation; make the Client from a newer one",
		e.who, e.at.UTC().Format(time.RFC3339))
}

func (e *expiredError) Unwrap() error { return servicedesk.ErrUnauthorized }

// String describes the invocation without its tokens.
func (inv Invocation) String() string {
	var b strings.Builder
	b.WriteString("forge.Invocation{")
	field := func(name, value string) {
		if value != "" {
			if b.Len() > len("forge.Invocation{") {
				b.WriteString(", ")
			}
			b.WriteString(name + ": " + value)
		}
	}
	field("App", inv.AppID)
	field("Environment", strings.TrimSpace(inv.EnvironmentType+" "+inv.EnvironmentID))
	field("Installation", inv.InstallationID)
	field("APIBaseURL", inv.APIBaseURL)
	field("CloudID", inv.CloudID)
	field("SiteURL", inv.SiteURL)
	field("Principal", inv.Principal)
	field("Module", inv.ModuleKey)
	field("ICLabel", inv.ICLabel)
	if !inv.Expires.IsZero() {
		field("Expires", inv.Expires.UTC().Format(time.RFC3339))
	}
	field("SystemToken", sentOrNot(inv.system))
	field("UserToken", sentOrNot(inv.user))
	b.WriteString("}")
	return b.String()
}

// GoString is String: %#v must not print the tokens either.
func (inv Invocation) GoString() string { return inv.String() }

// LogValue logs the invocation's claims, and whether each token was sent.
func (inv Invocation) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("app", inv.AppID),
		slog.String("installation", inv.InstallationID),
		slog.String("environment", inv.EnvironmentType),
		slog.String("module", inv.ModuleKey),
		slog.String("principal", inv.Principal),
		slog.String("api_base_url", inv.APIBaseURL),
		slog.Time("expires", inv.Expires),
		slog.String("system_token", sentOrNot(inv.system)),
		slog.String("user_token", sentOrNot(inv.user)),
	)
}

func sentOrNot(t token) string {
	if t.sent() {
		return "sent"
	}
	return "not sent"
}

// MaxInstallations bounds how many installations a Verifier keeps a rate
// limiter for; past it, the one used least recently is forgotten (its next
// Client starts a new limiter, which learns Jira's limits again).
const MaxInstallations = 1000

// installations holds one rate limiter per installation (and API base URL),
// least recently used first out.
type installations struct {
	mu  sync.Mutex
	max int
	lru *list.List // of *installation, most recent at the front
	by  map[installKey]*list.Element
}

type installKey struct{ id, apiBaseURL string }

type installation struct {
	key     installKey
	limiter servicedesk.RateLimiter
}

func newInstallations(max int) *installations {
	return &installations{max: max, lru: list.New(), by: map[installKey]*list.Element{}}
}

// limiter returns the installation's rate limiter, making it on first use:
// paced from Jira Cloud's documented rates when the API base URL is Jira
// Cloud's (Atlassian's gateway, as Forge's are), as NewClient decides.
func (in *installations) limiter(id, apiBaseURL string) servicedesk.RateLimiter {
	key := installKey{id, apiBaseURL}
	in.mu.Lock()
	defer in.mu.Unlock()
	if e, ok := in.by[key]; ok {
		in.lru.MoveToFront(e)
		return e.Value.(*installation).limiter
	}
	cloud := false
	if u, err := url.Parse(apiBaseURL); err == nil {
		cloud = hosts.Cloud(u.Hostname())
	}
	inst := &installation{key: key, limiter: servicedesk.NewRateLimiter(servicedesk.RateLimiterConfig{Cloud: cloud})}
	in.by[key] = in.lru.PushFront(inst)
	if in.lru.Len() > in.max {
		oldest := in.lru.Back()
		in.lru.Remove(oldest)
		delete(in.by, oldest.Value.(*installation).key)
	}
	return inst.limiter
}

// apiTransport carries the API calls of every Client a Verifier's
// invocations make: one pool of connections, kept open between
// invocations. Every installation calls the same gateway host, so it keeps
// more idle connections to one host than http.DefaultTransport's two.
func apiTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	return t
}
