package servicedesktest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/internal/connect"
)

// principal is who made a request: a user, a Connect app, or an app
// acting as a user (both set).
type principal struct {
	user  *account
	app   string
	forge bool // app is a Forge app (through the gateway), not a Connect app
}

// ServeHTTP answers the Customer API, Jira's user search
// (/rest/api/{2,3}/user/search) and the act-as-user token endpoint
// ([Server.TokenURL]); everything else is 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.forge != nil && r.URL.Path == forgeJWKSPath { // s.forge is set before the server starts
		s.serveForgeJWKSRequest(w, r)
		return
	}
	if s.latency > 0 {
		t := time.NewTimer(s.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := &statusWriter{ResponseWriter: w}
	at := time.Now()
	received := r // recorded as it came, gateway prefix included
	defer func() { s.record(received, sw.status, at) }()
	w.Header().Set("X-AREQUESTID", s.uuid())
	r, _ = s.forgeGateway(r) // from here on, a gateway request reads as the site's
	path, _ := strings.CutPrefix(r.URL.EscapedPath(), s.contextPath)
	if f := s.fault(r, path); f != nil {
		sw.status = f.fail(sw, r, func(w http.ResponseWriter) { s.route(w, r) })
		return
	}
	now := time.Now()
	if !s.rate.allow(w.Header(), now) {
		s.writeError(sw, http.StatusTooManyRequests, "Rate limit exceeded.", "sd.error.rate.limit")
		return
	}
	s.returned = 0
	if !s.admit(sw, r, path, now) {
		return
	}
	s.route(sw, r)
}

// route answers r from the server's state.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	if path == "/oauth2/token" { // Atlassian's authorization server, another host in truth
		s.serveToken(w, r)
		return
	}
	switch {
	case s.dataCenter && strings.HasPrefix(path, s.contextPath+"/rest/api/3/"):
		// Data Center has no /rest/api/3: fall through to its 404.
	case path == s.contextPath+"/rest/api/3/user/search":
		s.serveUserSearch(w, r, "3")
		return
	case path == s.contextPath+"/rest/api/2/user/search":
		s.serveUserSearch(w, r, "2")
		return
	}
	rest, ok := strings.CutPrefix(path, s.contextPath+"/rest/servicedeskapi/")
	revoke, underUser := strings.CutPrefix(rest, "customer/user/")
	revoke, revoking := strings.CutSuffix(revoke, "/revoke-portal-only-access")
	isRevoke := underUser && revoking
	switch {
	case ok && rest == "customer":
		s.serveCreate(w, r)
	case ok && isRevoke && revoke != "" && !strings.Contains(revoke, "/") && !s.dataCenter:
		id, err := url.PathUnescape(revoke)
		if err != nil {
			s.writeError(w, http.StatusNotFound, "The account ID is invalid.", "sd.customer.error.account.not.found")
			return
		}
		s.serveRevoke(w, r, id)
	case ok && strings.HasPrefix(rest, "servicedesk/") && strings.HasSuffix(rest, "/customer") && strings.Count(rest, "/") == 2:
		id, err := url.PathUnescape(strings.TrimSuffix(strings.TrimPrefix(rest, "servicedesk/"), "/customer"))
		if err != nil {
			s.writeError(w, http.StatusNotFound, "Service desk not found.", "sd.error.servicedesk.not.found")
			return
		}
		s.serveDeskCustomers(w, r, id)
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"errorMessages": []string{"null for uri: " + r.URL.Path}})
	}
}

// statusWriter remembers the status written, and runs beforeHeader just
// before the headers go out.
type statusWriter struct {
	http.ResponseWriter
	status       int
	beforeHeader func()
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
		if f := w.beforeHeader; f != nil {
			w.beforeHeader = nil
			f()
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Hijack).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) record(r *http.Request, status int, at time.Time) {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: scheme, Status: status, At: at})
}

func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.writeError(w, http.StatusMethodNotAllowed, "Method not allowed.", "sd.error.method.not.allowed")
		return
	}
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if (p.app == "" || p.user != nil) && p.role() < RoleJiraAdmin {
		s.writeError(w, http.StatusForbidden, "You do not have permission to create customers: Jira administrators only.", "sd.error.permission.create.customer")
		return
	}
	var body struct {
		Email       string `json:"email"`
		DisplayName string `json:"displayName"`
		FullName    string `json:"fullName"` // deprecated alias of displayName
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		s.writeError(w, http.StatusBadRequest, "The request body is not valid JSON.", "sd.error.invalid.json")
		return
	}
	if body.DisplayName == "" {
		body.DisplayName = body.FullName
	}
	if addr, err := mail.ParseAddress(body.Email); err != nil || addr.Address != body.Email {
		s.writeError(w, http.StatusBadRequest, "The email address is invalid.", "sd.customer.email.invalid")
		return
	}
	if strings.TrimSpace(body.DisplayName) == "" {
		s.writeError(w, http.StatusBadRequest, "The display name is required.", "sd.customer.displayname.required")
		return
	}
	if s.accountByEmail(body.Email) != nil {
		status := http.StatusBadRequest
		if strings.EqualFold(r.URL.Query().Get("strictConflictStatusCode"), "true") {
			status = http.StatusConflict
		}
		s.writeError(w, status, "An account already exists for this email.", "sd.customer.email.exists")
		return
	}
	a := s.newAccount(body.Email, body.DisplayName, "")
	s.returned = 1
	writeJSON(w, http.StatusCreated, s.customerJSON(a))
}

func (s *Server) serveDeskCustomers(w http.ResponseWriter, r *http.Request, deskID string) {
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodDelete:
	default:
		s.writeError(w, http.StatusMethodNotAllowed, "Method not allowed.", "sd.error.method.not.allowed")
		return
	}
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if r.Method != http.MethodPost && r.Header.Get("X-ExperimentalApi") != "opt-in" {
		s.writeError(w, http.StatusPreconditionFailed,
			"This API is experimental. Experimental APIs are not guaranteed to be stable within the preview period. You must set the header 'X-ExperimentalApi: opt-in' to opt into using this API.",
			"sd.error.experimental.api")
		return
	}
	d := s.desk(deskID)
	if d == nil {
		s.writeError(w, http.StatusNotFound, fmt.Sprintf("Service desk %s does not exist.", deskID), "sd.error.servicedesk.not.found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		if !s.may(p, d, RoleAgent) {
			s.writeError(w, http.StatusForbidden, "You do not have permission to view the customers of this service desk.", "sd.error.permission.view.customers")
			return
		}
		s.serveList(w, r, d, deskID)
	case http.MethodPost:
		if !s.may(p, d, RoleDeskAdmin) {
			s.writeError(w, http.StatusForbidden, "You must be a service desk administrator to add customers.", "sd.error.permission.admin")
			return
		}
		s.serveAdd(w, r, d)
	case http.MethodDelete:
		if p.app != "" && !p.forge {
			s.writeError(w, http.StatusForbidden, "Connect apps cannot remove customers.", "sd.error.permission.connect")
			return
		}
		if !s.may(p, d, RoleDeskAdmin) {
			s.writeError(w, http.StatusForbidden, "You must be a service desk administrator to remove customers.", "sd.error.permission.admin")
			return
		}
		s.serveRemove(w, r, d)
	}
}

// serveRevoke revokes a portal-only customer's access to the portal, as
// Jira Cloud's revokePortalOnlyAccessForUser does: site administrators
// only, never Connect apps (INACCESSIBLE), 404 for an account id the site
// does not know, 204 otherwise. An account that is not portal-only (an
// agent's) is left as it is. Revoking twice answers 204 twice.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request, accountID string) {
	if r.Method != http.MethodPut {
		s.writeError(w, http.StatusMethodNotAllowed, "Method not allowed.", "sd.error.method.not.allowed")
		return
	}
	p, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if p.app != "" {
		s.writeError(w, http.StatusForbidden, "Connect apps cannot revoke portal-only access.", "sd.error.permission.connect")
		return
	}
	if p.role() < RoleSiteAdmin {
		s.writeError(w, http.StatusForbidden, "You must be a site administrator to revoke portal-only access.", "sd.error.permission.site.admin")
		return
	}
	a := s.accounts[accountID]
	if a == nil {
		s.writeError(w, http.StatusNotFound, "The account ID is invalid.", "sd.customer.error.account.not.found")
		return
	}
	if a.portalOnly() {
		a.revoked = true
	}
	w.WriteHeader(http.StatusNoContent)
}

// role is what the user a request acts for may do: a customer created
// through the API has no User, and may do only what customers do.
func (p principal) role() Role {
	if p.user == nil || p.user.user == nil {
		return RoleCustomer
	}
	return p.user.user.Role
}

// may reports whether p holds at least role on d. Jira administrators and
// Connect apps (scope ADMIN) hold every role; an app acting as a user has
// the user's.
func (s *Server) may(p principal, d *desk, role Role) bool {
	if p.app != "" && p.user == nil {
		return true
	}
	if p.role() >= RoleJiraAdmin {
		return true
	}
	if p.role() < role {
		return false
	}
	u := p.user.user
	for _, id := range u.Desks {
		if id == d.ID || strings.EqualFold(id, d.ProjectKey) {
			return true
		}
	}
	return false
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, d *desk, deskID string) {
	q := r.URL.Query()
	start, limit := 0, MaxPageSize
	if v := q.Get("start"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.writeError(w, http.StatusBadRequest, "start must be a non-negative integer.", "sd.error.pagination.start")
			return
		}
		start = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.writeError(w, http.StatusBadRequest, "limit must be a non-negative integer.", "sd.error.pagination.limit")
			return
		}
		if n > 0 {
			limit = min(n, MaxPageSize)
		}
	}
	query := q.Get("query")
	var matched []*account
	for _, id := range d.members {
		if a := s.accounts[id]; matches(a, query) {
			matched = append(matched, a)
		}
	}
	end := min(start+limit, len(matched))
	values := []any{}
	for i := start; i < end; i++ {
		values = append(values, s.customerJSON(matched[i]))
	}
	base := s.publicURL + "/rest/servicedeskapi"
	self := base + "/servicedesk/" + url.PathEscape(deskID) + "/customer"
	at := func(from int) string {
		v := url.Values{"start": {strconv.Itoa(from)}, "limit": {strconv.Itoa(limit)}}
		if query != "" {
			v.Set("query", query)
		}
		return self + "?" + v.Encode()
	}
	s.returned = len(values)
	links := map[string]string{"base": base, "context": s.contextPath, "self": at(start)}
	last := end >= len(matched)
	if !last {
		links["next"] = at(end)
	}
	if start > 0 {
		links["prev"] = at(max(0, start-limit))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"_expands":   []string{},
		"size":       len(values),
		"start":      start,
		"limit":      limit,
		"isLastPage": last,
		"_links":     links,
		"values":     values,
	})
}

// matches applies the documented filter: the query matches the start of
// the display name, of any word in it, of the name, or of the email, ignoring
// case ("John", "Jo", "Smi" and "Smith" all match "John Smith").
func matches(a *account, query string) bool {
	q := strings.ToLower(strings.TrimSpace(query))
	if q == "" {
		return true
	}
	name := strings.ToLower(a.DisplayName)
	if strings.HasPrefix(name, q) || strings.HasPrefix(strings.ToLower(a.Name), q) || strings.HasPrefix(a.email, q) {
		return true
	}
	for _, word := range strings.FieldsFunc(name, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if strings.HasPrefix(word, q) {
			return true
		}
	}
	return false
}

type idsBody struct {
	AccountIDs []string `json:"accountIds"`
	Usernames  []string `json:"usernames"`
}

// resolve maps the body's ids to accounts; unknown ones are returned apart.
func (s *Server) resolve(w http.ResponseWriter, r *http.Request) (found []*account, unknown []string, ok bool) {
	var body idsBody
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		s.writeError(w, http.StatusBadRequest, "The request body is not valid JSON.", "sd.error.invalid.json")
		return nil, nil, false
	}
	if len(body.AccountIDs) == 0 && len(body.Usernames) == 0 {
		s.writeError(w, http.StatusBadRequest, "accountIds or usernames must be provided.", "sd.error.customers.required")
		return nil, nil, false
	}
	for _, id := range body.AccountIDs {
		if a := s.accounts[id]; a != nil {
			found = append(found, a)
		} else {
			unknown = append(unknown, id)
		}
	}
	for _, name := range body.Usernames {
		if a := s.accountByUsername(name); a != nil {
			found = append(found, a)
		} else {
			unknown = append(unknown, name)
		}
	}
	return found, unknown, true
}

func (s *Server) serveAdd(w http.ResponseWriter, r *http.Request, d *desk) {
	found, unknown, ok := s.resolve(w, r)
	if !ok {
		return
	}
	// The valid ones are added even when some are unknown, as JSM does.
	for _, a := range found {
		d.add(a.AccountID)
	}
	if len(unknown) > 0 {
		s.writeError(w, http.StatusBadRequest, "The following users do not exist: "+strings.Join(unknown, ", "), "sd.error.customers.not.found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) serveRemove(w http.ResponseWriter, r *http.Request, d *desk) {
	if d.OpenAccess {
		s.writeError(w, http.StatusBadRequest, "Customers cannot be removed from a service desk with public signup or open access.", "sd.error.customers.remove.open.access")
		return
	}
	found, _, ok := s.resolve(w, r)
	if !ok {
		return
	}
	for _, a := range found {
		d.remove(a.AccountID)
	}
	w.WriteHeader(http.StatusNoContent)
}

// authenticate finds who sent r, answering 401 when nobody valid did.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (principal, bool) {
	if onGateway(r) { // the gateway takes Forge's tokens, and nothing else
		if p, ok := s.authenticateForge(r); ok {
			return p, true
		}
		s.writeError(w, http.StatusUnauthorized, "Client must be authenticated to access this resource.", "sd.error.authentication.required")
		return principal{}, false
	}
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	switch scheme {
	case "Basic":
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			break
		}
		login, secret, _ := strings.Cut(string(raw), ":")
		for _, id := range s.order {
			a := s.accounts[id]
			if a.user != nil && a.user.APIToken != "" && a.user.APIToken == secret &&
				(strings.EqualFold(a.email, login) || a.Name == login) && !a.revoked {
				return principal{user: a}, true
			}
		}
	case "Bearer":
		for _, id := range s.order {
			if a := s.accounts[id]; a.user != nil && a.user.PAT != "" && a.user.PAT == cred && !a.revoked {
				return principal{user: a}, true
			}
		}
		if t, ok := s.tokens[cred]; ok && time.Now().Before(t.expires) && !s.accounts[t.accountID].revoked {
			return principal{user: s.accounts[t.accountID], app: t.app}, true
		}
	case "JWT":
		secretOf := func(key string) (string, bool) { secret, ok := s.apps[key]; return secret, ok }
		app, err := connect.Verify(cred, secretOf, r.Method, r.URL, s.contextPath, time.Now())
		if err == nil {
			return principal{app: app}, true
		}
	}
	s.writeError(w, http.StatusUnauthorized, "Client must be authenticated to access this resource.", "sd.error.authentication.required")
	return principal{}, false
}

// customerJSON is a customer as the API returns it, links on the public URL.
func (s *Server) customerJSON(a *account) servicedesk.Customer {
	c := a.Customer
	c.Links.AvatarURLs = maps.Clone(c.Links.AvatarURLs) // the caller's copy, not the server's map
	c.Links.Self = s.publicURL + "/rest/api/2/user?username=" + a.Name
	c.Links.JiraRest = c.Links.Self
	if s.dataCenter {
		c.AccountID = "" // Data Center names users by username and key
	}
	return c
}

func (s *Server) writeError(w http.ResponseWriter, status int, message, key string) {
	writeJSON(w, status, map[string]any{
		"errorMessage":     message,
		"i18nErrorMessage": map[string]any{"i18nKey": key, "parameters": []string{}},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeHTML(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.WriteHeader(status)
	text := fmt.Sprintf("%d %s", status, http.StatusText(status))
	_, _ = fmt.Fprintf(w, "<!DOCTYPE html><html><head><title>%s</title></head><body><h1>%s</h1><p>Injected by servicedesktest.</p></body></html>", text, text)
}

// rateLimit is a fixed window of budget requests.
type rateLimit struct {
	budget int
	window time.Duration
	start  time.Time
	used   int
}

// allow counts a request and sets the rate-limit headers on h; false means
// the budget of this window is spent.
func (rl *rateLimit) allow(h http.Header, now time.Time) bool {
	if rl.budget <= 0 {
		return true
	}
	if now.Sub(rl.start) >= rl.window {
		rl.start, rl.used = now, 0
	}
	reset := rl.start.Add(rl.window)
	h.Set("X-RateLimit-Limit", strconv.Itoa(rl.budget))
	if rl.used >= rl.budget {
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("Retry-After", strconv.Itoa(int(reset.Sub(now)/time.Second)))
		h.Set("X-RateLimit-Reset", reset.UTC().Format(time.RFC3339Nano))
		h.Set("RateLimit-Reason", "jira-burst-based")
		return false
	}
	rl.used++
	left := rl.budget - rl.used
	h.Set("X-RateLimit-Remaining", strconv.Itoa(left))
	if left*5 < rl.budget {
		h.Set("X-RateLimit-NearLimit", "true")
	}
	return true
}
