package servicedesk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

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

// OAuth 2.0 scopes of the Customer API. The classic scope covers all four
// operations; with granular scopes each operation needs the ones listed:
//
//	Create: ScopeReadCustomer, ScopeWriteCustomer, ScopeReadUser
//	List:   ScopeReadDeskCustomer, ScopeReadUser
//	Add:    ScopeReadDeskCustomer, ScopeWriteDeskCustomer
//	Remove: ScopeReadDeskCustomer, ScopeDeleteDeskCustomer
const (
	ScopeManageCustomers    = "manage:servicedesk-customer" // classic (recommended)
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
}

// connectInaccessible is the Connect scope of operations no Connect app may call.
const connectInaccessible = "INACCESSIBLE"

func (n needs) String() string {
	return "needs " + n.permission + "; OAuth 2.0 scope " + ScopeManageCustomers +
		" (granular: " + strings.Join(n.granular, ", ") + "); Connect scope " + n.connect
}

var (
	needsCreate = needs{"create customers", "the Jira Administrator global permission", []string{ScopeReadCustomer, ScopeWriteCustomer, ScopeReadUser}, "ADMIN"}
	needsList   = needs{"list customers", "permission to view the service desk's customers", []string{ScopeReadDeskCustomer, ScopeReadUser}, "READ"}
	needsAdd    = needs{"add customers", "the service desk administrator permission", []string{ScopeReadDeskCustomer, ScopeWriteDeskCustomer}, "WRITE"}
	needsRemove = needs{"remove customers", "the service desk administrator permission", []string{ScopeReadDeskCustomer, ScopeDeleteDeskCustomer}, connectInaccessible}
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
// asks; the zero value (or nil) asks Atlassian with a client whose timeout
// is [DefaultTimeout].
type AccessibleResourcesOptions struct {
	URL        string       // default AccessibleResourcesURL
	HTTPClient *http.Client // default: http.DefaultTransport, DefaultTimeout
}

// AccessibleResources lists the sites the token from ts can reach, so a 3LO
// app can find the cloud id to use with [CloudGatewayURL]. A non-2xx answer
// is an [*Error].
func AccessibleResources(ctx context.Context, ts oauth2.TokenSource, opts *AccessibleResourcesOptions) ([]Resource, error) {
	if ts == nil {
		return nil, invalidInput("AccessibleResources", "ts", "must not be nil")
	}
	endpoint, hc := AccessibleResourcesURL, &http.Client{Timeout: DefaultTimeout}
	if opts != nil && opts.URL != "" {
		endpoint = opts.URL
	}
	if opts != nil && opts.HTTPClient != nil {
		hc = opts.HTTPClient
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, invalidInput("AccessibleResources", "URL", "is not an absolute http(s) URL")
	}
	tok, err := ts.Token()
	if err != nil {
		return nil, fmt.Errorf("servicedesk: accessible resources: %w", &credentialsError{err: err})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("servicedesk: accessible resources: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", defaultUserAgent)
	tok.SetAuthHeader(req)
	resp, err := hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return nil, fmt.Errorf("servicedesk: GET %s: %w", u.EscapedPath(), stripURLError(err))
	}
	defer closeBody(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := newError(resp, http.MethodGet, u, time.Now())
		e.redact(newBearerAuth(tok.AccessToken))
		return nil, e
	}
	var resources []Resource
	if err := decodeJSON(resp, &resources, '['); err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrInvalidResponse, u.EscapedPath(), err)
	}
	return resources, nil
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
	// TokenURL defaults to ConnectUserTokenURL; HTTPClient to
	// http.DefaultClient.
	TokenURL   string
	HTTPClient *http.Client
}

// ConnectUserTokenSource returns a token source for a Connect app (scope
// ACT_AS_USER) acting as a user: it exchanges a JWT assertion, signed with
// the shared secret, for an access token at Atlassian's authorization
// server (the JWT-bearer grant), and reuses that token until shortly before
// it expires. Use it with [WithTokenSource] and the site's base URL.
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
	if u, err := url.Parse(cfg.TokenURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, invalidInput(where, "ConnectUserConfig.TokenURL", "is not an absolute http(s) URL")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	cfg.Scopes = append([]string(nil), cfg.Scopes...)
	// Renew a minute early, so a token is never sent as it expires.
	return oauth2.ReuseTokenSourceWithExpiry(nil, &connectUserSource{cfg: cfg}, time.Minute), nil
}

// connectUserSource performs one JWT-bearer grant per Token call.
type connectUserSource struct {
	cfg ConnectUserConfig
	mu  sync.Mutex // one grant at a time
}

// connectAuthServer is the audience of the grant's assertion.
const connectAuthServer = "https://oauth-2-authorization-server.services.atlassian.com"

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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("servicedesk: act-as-user grant: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("servicedesk: act-as-user grant: %w", stripURLError(err))
	}
	defer closeBody(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e := newError(resp, http.MethodPost, req.URL, now)
		e.redact(staticAuth{secret: []string{s.cfg.SharedSecret}}) // and the assertion, a JWT
		return nil, e
	}
	var body struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.NewDecoder(&limitedReader{r: resp.Body, n: maxErrorBody}).Decode(&body); err != nil || body.AccessToken == "" {
		return nil, fmt.Errorf("%w: act-as-user grant: no access token in the answer", ErrInvalidResponse)
	}
	tok := &oauth2.Token{AccessToken: body.AccessToken, TokenType: body.TokenType}
	// expires_in is a number, but some servers send it as a string.
	if secs, err := strconv.ParseInt(strings.Trim(string(body.ExpiresIn), `"`), 10, 64); err == nil && secs > 0 {
		tok.Expiry = now.Add(time.Duration(secs) * time.Second)
	}
	return tok, nil
}
