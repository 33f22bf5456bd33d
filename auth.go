package servicedesk

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/servicedesk-go/servicedesk/internal/connect"
)

// An authenticator sets the credentials of one attempt. It is called for
// every attempt (retries and pages included), and only for requests to the
// configured origin, so a token can be fresh each time and never travels to
// another host.
type authenticator interface {
	authenticate(req *http.Request) error
	// secrets are what must never appear in an error or a log line,
	// should a server echo them back.
	secrets() []string
}

// staticAuth sends the same Authorization header every time: Basic, or a
// bearer token. The header's value is built once.
type staticAuth struct {
	header string   // the Authorization header's value
	secret []string // what to redact
}

func newBasicAuth(user, password string) staticAuth {
	encoded := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	return staticAuth{header: "Basic " + encoded, secret: []string{password, encoded}}
}

func newBearerAuth(token string) staticAuth {
	return staticAuth{header: "Bearer " + token, secret: []string{token}}
}

func (a staticAuth) authenticate(req *http.Request) error {
	req.Header["Authorization"] = []string{a.header}
	return nil
}

func (a staticAuth) secrets() []string { return a.secret }

// tokenSourceAuth asks the token source for every attempt: oauth2 sources
// cache the token and refresh it as it expires.
type tokenSourceAuth struct {
	ts oauth2.TokenSource

	// The last few access tokens sent, to redact: an answer to a request
	// that went out before a refresh may echo the token it carried.
	mu     sync.Mutex
	recent [recentTokens]string
	next   int
}

// recentTokens is how many access tokens a client redacts: more than
// calls can straddle refreshes (a token lives for minutes at least).
const recentTokens = 4

func (a *tokenSourceAuth) authenticate(req *http.Request) error {
	tok, err := a.ts.Token()
	if err != nil {
		return &credentialsError{err: err}
	}
	if tok == nil || tok.AccessToken == "" {
		return &credentialsError{err: errors.New("token source returned no access token")}
	}
	a.remember(tok.AccessToken)
	tok.SetAuthHeader(req)
	return nil
}

func (a *tokenSourceAuth) remember(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range a.recent {
		if t == token {
			return
		}
	}
	a.recent[a.next%recentTokens] = token
	a.next++
}

func (a *tokenSourceAuth) secrets() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, t := range a.recent {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

// connectJWTTTL is how long each Connect JWT is valid. Every attempt gets a
// fresh one, so this only has to cover clock skew and one request.
const connectJWTTTL = 3 * time.Minute

// connectAuth signs every attempt with its own JWT, whose qsh binds it to
// that request's method, path and query.
type connectAuth struct {
	appKey, sharedSecret string
	basePath             string // the site's context path, not part of the qsh
}

func (a *connectAuth) authenticate(req *http.Request) error {
	tok, err := connect.Sign(a.appKey, a.sharedSecret, req.Method, req.URL, a.basePath, time.Now(), connectJWTTTL)
	if err != nil {
		return &credentialsError{err: errors.New("signing the Connect JWT failed")}
	}
	req.Header.Set("Authorization", "JWT "+tok)
	return nil
}

// secrets: the JWTs themselves are caught by redact's pattern.
func (a *connectAuth) secrets() []string { return []string{a.sharedSecret} }

// jwtPattern matches anything shaped like a JWT (or a JWS-shaped OAuth
// access token): base64url header "eyJ...", payload, signature.
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)

// redact replaces every credential in s with "[REDACTED]": as it is, in the
// forms a server may echo it in (JSON-escaped, with "/" as "\/", or
// percent-encoded), and anything shaped like a JWT.
func redact(a authenticator, s string) string {
	if a == nil || s == "" {
		return s
	}
	for _, secret := range a.secrets() {
		if len(secret) < 4 {
			continue
		}
		for _, form := range echoedForms(secret) {
			s = strings.ReplaceAll(s, form, "[REDACTED]")
		}
	}
	return jwtPattern.ReplaceAllString(s, "[REDACTED]")
}

// redactRateLimit redacts what an answer's rate-limit headers said in
// words, the reason and the policy names: a server may echo a credential
// in any header.
func redactRateLimit(a authenticator, rl RateLimit) RateLimit {
	if a == nil {
		return rl
	}
	rl.Reason = redact(a, rl.Reason)
	if len(rl.Policies) > 0 {
		ps := make([]RateLimitPolicy, len(rl.Policies))
		for i, p := range rl.Policies {
			p.Name = redact(a, p.Name)
			ps[i] = p
		}
		rl.Policies = ps
	}
	return rl
}

// echoedForms are the ways a secret can appear in a server's answer.
func echoedForms(secret string) []string {
	forms := []string{secret}
	add := func(f string) {
		for _, have := range forms {
			if have == f {
				return
			}
		}
		forms = append(forms, f)
	}
	quoted, _ := json.Marshal(secret) // escapes <, >, & and control characters
	jsonForm := string(quoted[1 : len(quoted)-1])
	add(jsonForm)
	add(strings.ReplaceAll(jsonForm, "/", `\/`)) // Java and PHP encoders escape "/"
	add(url.QueryEscape(secret))
	add(url.PathEscape(secret))
	return forms
}

// unauthorizedHint says what to check after a 401, for the way the client
// authenticates; scoped reports a token whose missing scope Jira also
// answers with 401.
func unauthorizedHint(a authenticator, cloud bool) (hint string, scoped bool) {
	switch a := a.(type) {
	case nil:
		return "no credentials were sent: give NewClient WithBasicAuth, WithBearerToken, WithTokenSource or WithConnectJWT", false
	case staticAuth:
		if strings.HasPrefix(a.header, "Basic ") {
			if cloud {
				return "Jira Cloud's Basic auth takes the account's email and an API token (id.atlassian.com, Security, API tokens), not its password: check both, and that the token has not expired or been revoked", false
			}
			return "check the username and password", false
		}
		if cloud {
			return "the bearer token was refused: an OAuth 2.0 token may have expired or been revoked, or lack a scope, and works only through CloudGatewayURL; a personal access token works only on Data Center", true
		}
		return "the bearer token was refused: a personal access token may be mistyped, expired or revoked", false
	case *tokenSourceAuth:
		if _, actAsUser := a.ts.(connectUserTokens); actAsUser {
			return "the act-as-user access token was refused: it may have expired early or been revoked; check that the app still has the ACT_AS_USER scope and the user still exists", false
		}
		return "the OAuth 2.0 access token was refused: it may have been revoked, or lack a scope the operation needs", true
	case *connectAuth:
		return "the Connect JWT was refused: check the app key and the shared secret (from the latest installed lifecycle payload: reinstalling changes it) and this machine's clock (each JWT is valid for 3 minutes from its iat)", false
	case secretOnly:
		return "the act-as-user grant was refused: check the OAuth client id and shared secret from the installation payload, the account id, and that the app has the ACT_AS_USER scope", false
	}
	return "", false
}

// redactedError is an error whose text went through redact; errors.Is and
// errors.As still see the original.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
