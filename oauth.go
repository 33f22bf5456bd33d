package servicedesk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
)

// AtlassianEndpoint is Atlassian's OAuth 2.0 (3LO) authorization server,
// for an oauth2.Config. Ask for the "offline_access" scope too, to get a
// refresh token.
var AtlassianEndpoint = oauth2.Endpoint{
	AuthURL:   "https://auth.atlassian.com/authorize",
	TokenURL:  "https://auth.atlassian.com/oauth/token",
	AuthStyle: oauth2.AuthStyleInParams,
}

// OAuth 2.0 scopes of the Customer API. The classic scope
// ScopeManageCustomers covers every customer operation; with granular scopes
// each operation needs the ones listed. FindByEmail (and Ensure, which calls
// it) goes through Jira's user search, whose classic scope is
// ScopeReadJiraUser:
//
//	Create:                 ScopeReadCustomer, ScopeWriteCustomer, ScopeReadUser
//	List:                   ScopeReadDeskCustomer, ScopeReadUser
//	Add:                    ScopeReadDeskCustomer, ScopeWriteDeskCustomer
//	Remove:                 ScopeReadDeskCustomer, ScopeDeleteDeskCustomer
//	RevokePortalOnlyAccess: ScopeWriteCustomer (a beta scope at Atlassian)
//	FindByEmail:            ScopeReadUser (classic: ScopeReadJiraUser)
//	Ensure:                 those of Create, FindByEmail and Add
const (
	ScopeManageCustomers    = "manage:servicedesk-customer" // classic (recommended)
	ScopeReadJiraUser       = "read:jira-user"              // classic: Jira's user search
	ScopeReadCustomer       = "read:customer:jira-service-management"
	ScopeWriteCustomer      = "write:customer:jira-service-management"
	ScopeReadUser           = "read:user:jira"
	ScopeReadDeskCustomer   = "read:servicedesk.customer:jira-service-management"
	ScopeWriteDeskCustomer  = "write:servicedesk.customer:jira-service-management"
	ScopeDeleteDeskCustomer = "delete:servicedesk.customer:jira-service-management"
)

// needs describes what an operation requires of the caller: a 401 or 403
// *Error carries it, so the user knows what to grant, and the pipeline
// refuses before sending what a Connect app may not call at all.
type needs struct {
	action     string // "remove customers", for messages
	permission string
	granular   []string
	connect    string // Connect app scope
	classic    string // classic OAuth 2.0 scope; "" is ScopeManageCustomers
}

// connectInaccessible is the Connect scope of operations no Connect app may call.
const connectInaccessible = "INACCESSIBLE"

// forAuth says what the operation needs in the terms of the way the client
// authenticates: the Jira permission always; the OAuth 2.0 scopes for an
// OAuth 2.0 token (WithTokenSource, or a bearer token on Cloud); the
// Connect scope for a Connect app (its JWT, or a token acting as a user).
// An API token, a password or a Data Center personal access token has no
// scopes: it can do what its user may.
func (n needs) forAuth(a authenticator, cloud bool) string {
	s := "needs " + n.permission
	classic := n.classic
	if classic == "" {
		classic = ScopeManageCustomers
	}
	oauth := "; OAuth 2.0 scope " + classic + " (granular: " + strings.Join(n.granular, ", ") + ")"
	switch a := a.(type) {
	case *connectAuth:
		s += "; Connect scope " + n.connect
	case *tokenSourceAuth:
		if _, actAsUser := a.ts.(connectUserTokens); actAsUser {
			s += " (the user's); the app's Connect scope " + n.connect
		} else {
			s += oauth
		}
	case staticAuth:
		if cloud && strings.HasPrefix(a.header, "Bearer ") {
			s += oauth
		}
	}
	return s
}

var (
	needsCreate = needs{action: "create customers", permission: "the Jira Administrator global permission", granular: []string{ScopeReadCustomer, ScopeWriteCustomer, ScopeReadUser}, connect: "ADMIN"}
	needsList   = needs{action: "list customers", permission: "permission to view the service desk's customers", granular: []string{ScopeReadDeskCustomer, ScopeReadUser}, connect: "READ"}
	needsAdd    = needs{action: "add customers", permission: "the service desk administrator permission", granular: []string{ScopeReadDeskCustomer, ScopeWriteDeskCustomer}, connect: "WRITE"}
	needsRemove = needs{action: "remove customers", permission: "the service desk administrator permission", granular: []string{ScopeReadDeskCustomer, ScopeDeleteDeskCustomer}, connect: connectInaccessible}
	// Revoking portal-only access: Atlassian's current Customer API
	// (revokePortalOnlyAccessForUser); its granular scope is in beta.
	needsRevoke = needs{action: "revoke portal-only access", permission: "site administration (membership of site-admins)", granular: []string{ScopeWriteCustomer}, connect: connectInaccessible}
	// Jira's user search, which FindByEmail uses: without the permission
	// Jira answers an empty list, not a 403.
	needsUserSearch = needs{action: "search users", permission: "the Browse users and groups global permission", granular: []string{ScopeReadUser}, connect: "READ", classic: ScopeReadJiraUser}
)

// AccessibleResourcesURL is where [AccessibleResources] asks by default.
const AccessibleResourcesURL = "https://api.atlassian.com/oauth/token/accessible-resources"

// Resource is a site an OAuth 2.0 token can reach. Its ID is the cloud id
// of [CloudGatewayURL].
type Resource struct {
	ID        string   `json:"id"`
	URL       string   `json:"url"`
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	AvatarURL string   `json:"avatarUrl,omitempty"`
}

// AccessibleResourcesOptions overrides where and how [AccessibleResources]
// asks; the zero value (or nil) asks Atlassian over http.DefaultTransport,
// each attempt bounded by [DefaultTimeout].
type AccessibleResourcesOptions struct {
	URL        string       // default AccessibleResourcesURL
	HTTPClient *http.Client // its Transport and Timeout are used as WithHTTPClient uses them
}

// AccessibleResources lists the sites the token from ts can reach, so a 3LO
// app can find the cloud id to use with [CloudGatewayURL]. It goes through
// the same pipeline as the Customer API: the token is sent only to the
// endpoint's own scheme, host and port (never to a redirect elsewhere),
// plain http:// is refused except to loopback, answers are bounded and
// checked, and a non-2xx answer is an [*Error] with any echoed token
// redacted.
func AccessibleResources(ctx context.Context, ts oauth2.TokenSource, opts *AccessibleResourcesOptions) ([]Resource, error) {
	const where = "AccessibleResources"
	if ts == nil {
		return nil, invalidInput(where, "ts", "must not be nil")
	}
	cfg := defaultConfig()
	cfg.auth = &tokenSourceAuth{ts: ts}
	cfg.limiter, cfg.limiterSet = nil, true // not Jira's limits
	endpoint := AccessibleResourcesURL
	if opts != nil {
		if opts.URL != "" {
			endpoint = opts.URL
		}
		cfg.httpClient = opts.HTTPClient
	}
	c, u, err := endpointClient(where, "AccessibleResourcesOptions.URL", endpoint, cfg)
	if err != nil {
		return nil, err
	}
	var resources []Resource
	r := &request{op: where, method: http.MethodGet, url: u, expect: '[', idempotent: true,
		endpoint: Endpoint{Method: http.MethodGet, Path: u.EscapedPath()}}
	if err := c.do(ctx, r, &resources); err != nil {
		return nil, err
	}
	return resources, nil
}

// endpointClient returns a Client for the origin of endpoint, an absolute
// URL of another Atlassian service, and the endpoint parsed.
func endpointClient(where, field, endpoint string, cfg config) (*Client, *url.URL, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, nil, invalidInput(where, field, "is not an absolute http(s) URL without credentials")
	}
	c, err := newClient(where, field, &url.URL{Scheme: u.Scheme, Host: u.Host}, cfg)
	return c, u, err
}

// ConnectUserTokenURL is Atlassian's token endpoint for Connect apps acting
// as a user.
const ConnectUserTokenURL = "https://oauth-2-authorization-server.services.atlassian.com/oauth2/token"

// ConnectUserConfig configures [ConnectUserTokenSource].
type ConnectUserConfig struct {
	// OAuthClientID and SharedSecret come from the app's installation
	// payload (oauthClientId, sharedSecret).
	OAuthClientID string
	SharedSecret  string
	// BaseURL is the site's base URL from the installation payload.
	BaseURL string
	// AccountID is the user to act as.
	AccountID string
	// Scopes are Connect scopes ("READ", "WRITE", "ADMIN"...); empty
	// asks for the app's scopes.
	Scopes []string
	// TokenURL defaults to ConnectUserTokenURL. HTTPClient's Transport and
	// Timeout are used as WithHTTPClient uses them; by default
	// http.DefaultTransport, each attempt bounded by DefaultTimeout.
	TokenURL   string
	HTTPClient *http.Client
}

// ConnectUserTokenSource returns a token source for a Connect app (scope
// ACT_AS_USER) acting as a user: it exchanges a JWT assertion, signed with
// the shared secret, for an access token at Atlassian's authorization
// server (the JWT-bearer grant), and reuses that token until shortly before
// it expires. Use it with [WithTokenSource] and the site's base URL.
//
// The grant goes through the SDK's pipeline: the assertion is posted only to
// the token URL's own origin (a redirect elsewhere is refused, not
// followed), plain http:// is refused except to loopback, and a refusal is
// an [*Error] with the secret and the assertion redacted.
func ConnectUserTokenSource(cfg ConnectUserConfig) (oauth2.TokenSource, error) {
	const where = "ConnectUserTokenSource"
	for field, v := range map[string]string{"OAuthClientID": cfg.OAuthClientID, "SharedSecret": cfg.SharedSecret, "BaseURL": cfg.BaseURL, "AccountID": cfg.AccountID} {
		if strings.TrimSpace(v) == "" {
			return nil, invalidInput(where, "ConnectUserConfig."+field, "must not be empty")
		}
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = ConnectUserTokenURL
	}
	cc := defaultConfig()
	cc.auth = secretOnly{cfg.SharedSecret}
	cc.limiter, cc.limiterSet = nil, true // not Jira's limits
	cc.httpClient = cfg.HTTPClient
	c, u, err := endpointClient(where, "ConnectUserConfig.TokenURL", cfg.TokenURL, cc)
	if err != nil {
		return nil, err
	}
	cfg.Scopes = append([]string(nil), cfg.Scopes...)
	// Renew a minute early, so a token is never sent as it expires.
	return connectUserTokens{oauth2.ReuseTokenSourceWithExpiry(nil, &connectUserSource{cfg: cfg, client: c, tokenURL: u}, time.Minute)}, nil
}

// connectUserTokens is the token source ConnectUserTokenSource returns: a
// client using it authenticates as a Connect app acting as a user, which
// the advice of its errors knows.
type connectUserTokens struct{ oauth2.TokenSource }

// secretOnly is the authenticator of a request whose credential is in its
// body: it adds no header, and redacts the secret.
type secretOnly struct{ secret string }

func (secretOnly) authenticate(*http.Request) error { return nil }
func (a secretOnly) secrets() []string              { return []string{a.secret} }

// connectUserSource performs one JWT-bearer grant per Token call.
type connectUserSource struct {
	cfg      ConnectUserConfig
	client   *Client
	tokenURL *url.URL
	mu       sync.Mutex // one grant at a time
}

// connectAuthServer is the audience of the grant's assertion.
const connectAuthServer = "https://oauth-2-authorization-server.services.atlassian.com"

// grantTimeout bounds a grant, retries included: oauth2.TokenSource has no
// context.
const grantTimeout = 30 * time.Second

const formContentType = "application/x-www-form-urlencoded"

func (s *connectUserSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	assertion, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "urn:atlassian:connect:clientid:" + s.cfg.OAuthClientID,
		"sub": "urn:atlassian:connect:useraccountid:" + s.cfg.AccountID,
		"tnt": s.cfg.BaseURL,
		"aud": connectAuthServer,
		"iat": now.Unix(),
		"exp": now.Add(time.Minute).Unix(),
	}).SignedString([]byte(s.cfg.SharedSecret))
	if err != nil {
		return nil, errors.New("servicedesk: signing the act-as-user assertion failed")
	}
	form := url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"assertion":  {assertion},
	}
	if len(s.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(s.cfg.Scopes, " "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), grantTimeout)
	defer cancel()
	// A grant may be repeated: a second one only issues another token.
	r := &request{op: "ConnectUserTokenSource", method: http.MethodPost, url: s.tokenURL,
		body: []byte(form.Encode()), contentType: formContentType, expect: '{', idempotent: true,
		endpoint: Endpoint{Method: http.MethodPost, Path: s.tokenURL.EscapedPath()}}
	var body struct {
		AccessToken string         `json:"access_token"`
		TokenType   string         `json:"token_type"`
		ExpiresIn   jsontext.Value `json:"expires_in"`
	}
	if err := s.client.do(ctx, r, &body); err != nil {
		return nil, err
	}
	if body.AccessToken == "" {
		return nil, fmt.Errorf("%w: POST %s: no access token in the answer", ErrInvalidResponse, s.tokenURL.EscapedPath())
	}
	tok := &oauth2.Token{AccessToken: body.AccessToken, TokenType: body.TokenType}
	// expires_in is a number, but some servers send it as a string.
	if secs, err := strconv.ParseInt(strings.Trim(string(body.ExpiresIn), `"`), 10, 64); err == nil && secs > 0 {
		tok.Expiry = now.Add(time.Duration(secs) * time.Second)
	}
	return tok, nil
}
