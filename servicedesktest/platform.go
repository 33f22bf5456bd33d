package servicedesktest

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The Jira platform endpoints the fake serves beside the Customer API:
// user search, which finds the account of an email that is on no desk,
// and Atlassian's token endpoint for Connect apps acting as a user.

// serveUserSearch answers Jira's user search: on Cloud
// GET /rest/api/{2,3}/user/search?query=..., on Data Center
// GET /rest/api/2/user/search?username=... (with [WithDataCenter], the only
// form). The query matches the start of the email, the display name or one
// of its words, or the username, ignoring case. Pages are startAt and
// maxResults (50 by default, 1,000 at most), over the first 1,000 matches,
// as Jira returns no more. A caller without the Browse users and groups
// permission (here: below RoleAgent) gets an empty list, not an error, as
// from Jira.
func (s *Server) serveUserSearch(w http.ResponseWriter, r *http.Request, version string) {
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"errorMessages": []string{"Method not allowed."}})
		return
	}
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if (p.app == "" || p.user != nil) && p.role() < RoleAgent {
		writeJSON(w, http.StatusOK, []any{}) // Jira hides what it does not let the caller see
		return
	}
	q := r.URL.Query()
	dc := q.Has("username") || s.dataCenter
	query := q.Get("query")
	if dc {
		query = q.Get("username")
	}
	if strings.TrimSpace(query) == "" || (dc && version != "2") {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{"The query parameter 'query' (or 'username' on Data Center) is required."}})
		return
	}
	startAt, err1 := pageParam(q, "startAt", 0)
	maxResults, err2 := pageParam(q, "maxResults", 50)
	if err1 != nil || err2 != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{"startAt and maxResults must be non-negative integers."}})
		return
	}
	maxResults = min(maxResults, maxUserSearch)
	users := []map[string]any{}
	matched := 0
	for _, id := range s.order {
		a := s.accounts[id]
		if !matches(a, query) && !strings.HasPrefix(a.email, strings.ToLower(strings.TrimSpace(query))) {
			continue
		}
		matched++
		if matched > maxUserSearch {
			break
		}
		if matched <= startAt || len(users) >= maxResults {
			continue
		}
		u := map[string]any{
			"self":         s.publicURL + "/rest/api/" + version + "/user?accountId=" + url.QueryEscape(a.AccountID),
			"emailAddress": a.EmailAddress,
			"displayName":  a.DisplayName,
			"active":       a.Active,
			"timeZone":     a.TimeZone,
		}
		if dc {
			u["self"] = s.publicURL + "/rest/api/2/user?username=" + url.QueryEscape(a.Name)
			u["name"], u["key"] = a.Name, a.Key
		} else {
			u["accountId"] = a.AccountID
			u["accountType"] = "atlassian"
			if a.portalOnly() {
				u["accountType"] = "customer"
			}
		}
		users = append(users, u)
	}
	s.returned = len(users)
	writeJSON(w, http.StatusOK, users)
}

// maxUserSearch is the most matches Jira's user search returns, and its
// largest page.
const maxUserSearch = 1000

// pageParam reads a non-negative integer query parameter, def when absent.
func pageParam(q url.Values, name string, def int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: not a non-negative integer", name)
	}
	return n, nil
}

// WithConnectActAsUser lets the Connect app appKey (see [WithConnectApp])
// act as users: its JWT-bearer grants at [Server.TokenURL], asserting
// iss "urn:atlassian:connect:clientid:"+oauthClientID and signed with the
// app's shared secret, are exchanged for bearer tokens that act as the
// user named in sub, with that user's permissions, for 15 minutes.
func WithConnectActAsUser(appKey, oauthClientID string) Option {
	return func(s *Server) { s.clientIDs[oauthClientID] = appKey }
}

// TokenURL is where [servicedesk.ConnectUserTokenSource] asks the fake for
// tokens: give it as ConnectUserConfig.TokenURL, with the server's URL as
// BaseURL.
func (s *Server) TokenURL() string { return s.srv.URL + "/oauth2/token" }

// ConnectTokenAudience is the audience an act-as-user assertion names.
const ConnectTokenAudience = "https://oauth-2-authorization-server.services.atlassian.com"

// actingToken is a bearer token issued to an app acting as a user.
type actingToken struct {
	accountID string
	app       string
	expires   time.Time
}

const actingTokenTTL = 15 * time.Minute

// serveToken answers the JWT-bearer grant as Atlassian's authorization
// server does, with OAuth 2.0 error bodies.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	oauthError := func(status int, code, description string) {
		writeJSON(w, status, map[string]string{"error": code, "error_description": description})
	}
	if r.Method != http.MethodPost {
		oauthError(http.StatusMethodNotAllowed, "invalid_request", "POST only")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthError(http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported", gt))
		return
	}
	var app string
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(t *jwt.Token) (any, error) {
		iss, _ := t.Claims.GetIssuer()
		clientID, _ := strings.CutPrefix(iss, "urn:atlassian:connect:clientid:")
		var known bool
		if app, known = s.clientIDs[clientID]; !known || clientID == "" {
			return nil, errors.New("unknown OAuth client id")
		}
		return []byte(s.apps[app]), nil
	},
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(ConnectTokenAudience),
		jwt.WithLeeway(30*time.Second))
	if err != nil {
		oauthError(http.StatusUnauthorized, "invalid_grant", "the assertion is not valid: "+err.Error())
		return
	}
	if tnt, _ := claims["tnt"].(string); strings.TrimRight(tnt, "/") != s.publicURL && strings.TrimRight(tnt, "/") != s.URL {
		oauthError(http.StatusUnauthorized, "invalid_grant", "tnt does not name this site")
		return
	}
	sub, _ := claims.GetSubject()
	accountID, _ := strings.CutPrefix(sub, "urn:atlassian:connect:useraccountid:")
	if s.accounts[accountID] == nil {
		oauthError(http.StatusUnauthorized, "invalid_grant", "sub names no user of this site")
		return
	}
	token := "act-" + s.hex(16)
	s.tokens[token] = actingToken{accountID: accountID, app: app, expires: time.Now().Add(actingTokenTTL)}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"token_type":   "Bearer",
		"expires_in":   int(actingTokenTTL / time.Second),
	})
}
