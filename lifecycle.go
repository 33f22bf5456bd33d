package servicedesk

// The rest of a customer's life cycle: finding the account of an email,
// making an email a customer of a desk whatever its state, and revoking a
// portal-only customer's access.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// lifecycle is what the life-cycle operations keep per Client: the form of
// Jira's user search the site answers, and the Ensure calls in flight.
type lifecycle struct {
	search atomic.Int32 // searchUnknown until a form answered

	mu      sync.Mutex
	flights map[string]*ensureFlight
}

// The forms of Jira's user search.
const (
	searchUnknown int32 = iota
	searchCloud
	searchDataCenter
)

// userSearch is one form of Jira's user search: its path and the parameter
// that carries the email.
type userSearch struct {
	path, param string
}

var (
	cloudUserSearch      = userSearch{"/rest/api/3/user/search", "query"}
	dataCenterUserSearch = userSearch{"/rest/api/2/user/search", "username"}
)

// Paging of the user search: Jira returns at most the first 1,000 matches,
// 50 a page by default.
const (
	userSearchPage = 50
	userSearchMax  = 1000
)

// jiraUser is a user as Jira's user search returns it: Cloud names it by
// accountId, Data Center by name and key.
type jiraUser struct {
	AccountID    string            `json:"accountId"`
	Name         string            `json:"name"`
	Key          string            `json:"key"`
	EmailAddress string            `json:"emailAddress"`
	DisplayName  string            `json:"displayName"`
	Active       bool              `json:"active"`
	TimeZone     string            `json:"timeZone"`
	Self         string            `json:"self"`
	AvatarURLs   map[string]string `json:"avatarUrls"`
}

// id is what names the user: its account id, or on Data Center its key or
// username.
func (u *jiraUser) id() string {
	switch {
	case u.AccountID != "":
		return u.AccountID
	case u.Key != "":
		return u.Key
	}
	return u.Name
}

func (u *jiraUser) customer() *Customer {
	return &Customer{
		AccountID:    u.AccountID,
		Name:         u.Name,
		Key:          u.Key,
		EmailAddress: u.EmailAddress,
		DisplayName:  u.DisplayName,
		Active:       u.Active,
		TimeZone:     u.TimeZone,
		Links:        UserLinks{Self: u.Self, JiraRest: u.Self, AvatarURLs: u.AvatarURLs},
	}
}

// FindByEmail returns the account whose email address is email (compared
// case-insensitively), through Jira's user search (Cloud: GET
// /rest/api/3/user/search?query=; Data Center: GET
// /rest/api/2/user/search?username=). It finds accounts whether or not they
// are on a desk, which List cannot. errors.Is(err, ErrNotFound) when no
// visible account has it; that error is not an [*Error] (a 404 *Error means
// the user search itself was not found at the base URL).
//
// The search matches the start of names and emails, so only an exact match
// is returned: "fred@example.com" does not find "fred@example.com.au". When
// the first page of matches (50) is full and holds no exact match, the next
// pages are read, up to the 1,000 matches Jira returns at most. When more
// than one account has the email (Data Center lets users share one), the
// error is an [*AmbiguousEmailError] listing them: adding one of them to a
// desk is a choice the caller must make.
//
// What the search can see, it finds. It needs the "Browse users and groups"
// global permission: without it Jira answers an empty list, so the result is
// ErrNotFound, not a 403. It shows active accounts only, and an account
// whose privacy settings hide its email cannot be matched. On Cloud the
// search is eventually consistent: an account created a moment ago may not
// be found yet.
//
// Which form to use comes from the base URL: Cloud sites and the OAuth 2.0
// gateway use Cloud's; on any other host the Cloud form is tried first and,
// when it is not found (404), Data Center's. The form that answered is
// remembered by the Client, so later calls go straight to it (calls made
// at the same time as the first may each ask Cloud's form first).
//
// With OAuth 2.0 it needs the scope read:jira-user ([ScopeReadJiraUser]),
// or granular [ScopeReadUser]; a Connect app, the scope READ.
func (s *CustomersService) FindByEmail(ctx context.Context, email string) (*Customer, error) {
	const where = "CustomersService.FindByEmail"
	if err := validEmail(where, "email", email); err != nil {
		return nil, err
	}
	return s.findByEmail(ctx, where, email)
}

// findByEmail is FindByEmail for op, email already checked.
func (s *CustomersService) findByEmail(ctx context.Context, op, email string) (*Customer, error) {
	lc := &s.client.lifecycle
	switch lc.search.Load() {
	case searchDataCenter:
		cust, _, err := s.searchEmail(ctx, op, dataCenterUserSearch, email)
		return cust, err
	case searchCloud:
		cust, _, err := s.searchEmail(ctx, op, cloudUserSearch, email)
		return cust, err
	}
	if isCloud(s.client.base.Hostname()) {
		cust, _, err := s.searchEmail(ctx, op, cloudUserSearch, email)
		return cust, err
	}
	cust, answered, err := s.searchEmail(ctx, op, cloudUserSearch, email)
	if answered {
		lc.search.Store(searchCloud)
		return cust, err
	}
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		return nil, err
	}
	// Data Center has no /rest/api/3.
	cust, answered, err = s.searchEmail(ctx, op, dataCenterUserSearch, email)
	if answered {
		lc.search.Store(searchDataCenter)
	}
	return cust, err
}

// searchEmail pages through the user search of form f for email, its
// requests made for op; answered says whether the search answered 2xx at
// least once. Its own errors name FindByEmail, the step that failed.
func (s *CustomersService) searchEmail(ctx context.Context, op string, f userSearch, email string) (cust *Customer, answered bool, err error) {
	var found []jiraUser // exact matches, each account once
	seen := map[string]bool{}
	hidden := 0 // matches whose email the search did not show
	for start := 0; start < userSearchMax; {
		query := url.Values{
			f.param:      {email},
			"startAt":    {strconv.Itoa(start)},
			"maxResults": {strconv.Itoa(userSearchPage)},
		}
		var page []jiraUser
		if err := s.client.do(ctx, s.client.userSearchRequest(op, f, query), &page); err != nil {
			return nil, answered, err
		}
		answered = true
		if len(page) > userSearchPage {
			// A page is bounded by what was asked for, so that what is
			// done with it is too.
			return nil, true, fmt.Errorf("%w: GET %s: asked for %d users, got %d", ErrInvalidResponse, f.path, userSearchPage, len(page))
		}
		for i := range page {
			u := &page[i]
			switch {
			case u.EmailAddress == "":
				hidden++
			case !strings.EqualFold(strings.TrimSpace(u.EmailAddress), email):
				// a match on the start of the email or of a name
			case u.id() == "":
				return nil, true, fmt.Errorf("%w: GET %s: the account with this email has no accountId, key or name", ErrInvalidResponse, f.path)
			case !seen[u.id()]:
				seen[u.id()] = true
				found = append(found, *u)
			}
		}
		if len(found) > 0 || len(page) < userSearchPage {
			break
		}
		start += len(page)
	}
	switch len(found) {
	case 1:
		return found[0].customer(), true, nil
	case 0:
		why := "no account the search can see has this email"
		if hidden > 0 {
			why += fmt.Sprintf(" (%d matches had their email hidden by privacy settings)", hidden)
		}
		return nil, true, fmt.Errorf("%w: CustomersService.FindByEmail: %s; the search shows active accounts only, and without the Browse users and groups permission it shows none",
			ErrNotFound, why)
	}
	amb := &AmbiguousEmailError{}
	for i := range found {
		amb.Accounts = append(amb.Accounts, *found[i].customer())
	}
	return nil, true, amb
}

// userSearchRequest is a GET of Jira's user search, form f.
func (c *Client) userSearchRequest(op string, f userSearch, query url.Values) *request {
	return &request{
		op:         op,
		method:     http.MethodGet,
		url:        c.siteURL(f.path, query),
		endpoint:   Endpoint{Method: http.MethodGet, Path: f.path},
		expect:     '[',
		idempotent: true,
		needs:      needsUserSearch,
	}
}

// AmbiguousEmailError is the error of [CustomersService.FindByEmail] (and
// of [CustomersService.Ensure]) when more than one account has the email,
// as Data Center allows. Choose one of Accounts and add it to the desk by
// its AccountID (Cloud) or Name (Data Center).
type AmbiguousEmailError struct {
	Accounts []Customer
}

// Error names the accounts, the first ten of them.
func (e *AmbiguousEmailError) Error() string {
	const named = 10
	var ids []string
	for i := range e.Accounts[:min(len(e.Accounts), named)] {
		u := jiraUser{AccountID: e.Accounts[i].AccountID, Key: e.Accounts[i].Key, Name: e.Accounts[i].Name}
		ids = append(ids, u.id())
	}
	if more := len(e.Accounts) - named; more > 0 {
		ids = append(ids, fmt.Sprintf("and %d more", more))
	}
	return fmt.Sprintf("servicedesk: CustomersService.FindByEmail: %d accounts have this email (%s): choose one and add it by its id",
		len(e.Accounts), strings.Join(ids, ", "))
}

// Ensure makes req.Email a customer of the desk whatever its state: it
// creates the account when there is none (never creating a second one),
// finds it when there is, and adds it to the desk. created says whether this
// call created the account. Safe to repeat and to run concurrently.
//
// It sends Create with StrictConflictStatusCode (req's own setting does not
// matter); on ErrConflict it finds the account with FindByEmail; then it
// adds the account to the desk (by account id, or by username on Data
// Center). A new email costs two requests, an existing one three.
//
// It converges: repeated after any failure, it ends with one account on the
// desk. A Create that may have run though it failed (a 5xx, a connection
// broken after sending) is followed by a look-up before anything else: the
// account is used if it is there (created is then false: the call cannot
// tell whether its own Create made it), and Create is sent once more if it
// is not. The server refuses a second account for an email, so nothing
// Ensure does can make two.
//
// Calls for the same email and desk on one Client are coalesced: while one
// is in flight, others wait for it and get its customer (created false), so
// 16 goroutines ensuring one email send one Create. A waiting call stops
// when its own context ends; when the call it waited for ended with its
// context, it tries for itself.
//
// An account the user search cannot see (see FindByEmail: permission,
// privacy, and on Cloud a search that lags a moment behind a Create made
// elsewhere) makes the find step fail with ErrNotFound; nothing was
// created, and Ensure can be repeated once the cause is gone.
//
// The error is an [*EnsureError] naming the step that failed ("create",
// "find" or "add", or "wait" for a call whose context ended while it
// waited for another) and wrapping the cause, so errors.Is and errors.As see
// through it. When only the add failed, cust and created describe the
// account, so the caller may retry Add alone (or Ensure again). It needs
// what Create, FindByEmail and Add need: the Jira Administrator global
// permission, Browse users and groups, and service desk administrator.
func (s *CustomersService) Ensure(ctx context.Context, serviceDeskID string, req CreateCustomerRequest) (cust *Customer, created bool, err error) {
	const where = "CustomersService.Ensure"
	if ctx == nil {
		return nil, false, invalidInput(where, "ctx", "must not be nil")
	}
	if err := validDeskID(where, serviceDeskID); err != nil {
		return nil, false, err
	}
	if err := req.validate(where); err != nil {
		return nil, false, err
	}
	req.StrictConflictStatusCode = true
	key := strings.ToLower(strings.TrimSpace(serviceDeskID)) + "\x00" + strings.ToLower(req.Email)
	return s.client.lifecycle.coalesce(ctx, key, func() (*Customer, bool, error) {
		return s.ensure(ctx, where, serviceDeskID, req)
	})
}

// ensure runs Ensure's steps.
func (s *CustomersService) ensure(ctx context.Context, op, serviceDeskID string, req CreateCustomerRequest) (*Customer, bool, error) {
	cust, created, err := s.createOrFind(ctx, op, req)
	if err != nil {
		return nil, false, err
	}
	var ids CustomerIDs
	switch {
	case cust.AccountID != "":
		ids.AccountIDs = []string{cust.AccountID}
	case cust.Name != "": // Data Center adds by username
		ids.Usernames = []string{cust.Name}
	default:
		return cust, created, &EnsureError{Step: "add", Err: fmt.Errorf("%w: the account has no accountId or name to add it by", ErrInvalidResponse)}
	}
	if err := s.changeDesk(ctx, http.MethodPost, op, needsAdd, serviceDeskID, ids); err != nil {
		return cust, created, &EnsureError{Step: "add", Err: err}
	}
	return cust, created, nil
}

// ensureUnsure is the hint of Ensure's Create when the look-up after it
// failed too.
const ensureUnsure = "the customer may have been created all the same: Ensure again (it looks for the account before creating one)"

// createOrFind creates the account of req.Email, or finds it when it
// exists; created is true only when this call's Create was answered 201.
func (s *CustomersService) createOrFind(ctx context.Context, op string, req CreateCustomerRequest) (*Customer, bool, error) {
	for retried := false; ; retried = true {
		cust, err := s.create(ctx, op, req, ensureUnsure)
		switch {
		case err == nil:
			return cust, true, nil
		case errors.Is(err, ErrConflict):
			cust, err := s.findByEmail(ctx, op, req.Email)
			if err != nil {
				return nil, false, &EnsureError{Step: "find", Err: err}
			}
			return cust, false, nil
		case ctx.Err() != nil || !createMayHaveRun(err):
			return nil, false, &EnsureError{Step: "create", Err: err}
		}
		// The server may have created it: look before creating again.
		cust, findErr := s.findByEmail(ctx, op, req.Email)
		if findErr == nil {
			return cust, false, nil
		}
		var apiErr *Error
		if retried || !errors.Is(findErr, ErrNotFound) || errors.As(findErr, &apiErr) {
			return nil, false, &EnsureError{Step: "create", Err: fmt.Errorf("%w (and looking for the account then: %v)", err, findErr)}
		}
		// No such account: that Create did not run. Send it once more.
	}
}

// createMayHaveRun reports a failed Create that the server may have carried
// out: a 5xx, a 2xx whose body could not be read, or a connection that
// broke after the request was sent (the pipeline marks that). Input refused
// before sending, a 4xx and a request never sent are not.
func createMayHaveRun(err error) bool {
	var apiErr *Error
	var unsure *mayHaveRunError
	switch {
	case errors.As(err, &apiErr):
		return apiErr.StatusCode >= 500
	case errors.As(err, &unsure):
		return true
	}
	return errors.Is(err, ErrInvalidResponse)
}

// EnsureError is the error of [CustomersService.Ensure]: the step that
// failed, "create", "find", "add" or "wait", and its error, which errors.Is and
// errors.As see through.
type EnsureError struct {
	Step string
	Err  error
}

func (e *EnsureError) Error() string {
	return "servicedesk: CustomersService.Ensure: " + e.Step + ": " + strings.TrimPrefix(e.Err.Error(), "servicedesk: ")
}

func (e *EnsureError) Unwrap() error { return e.Err }

// ensureFlight is an Ensure in flight; the calls that wait for it read its
// result once done is closed.
type ensureFlight struct {
	done chan struct{}
	cust *Customer
	err  error
	// again says the result is the leading call's own (its context ended,
	// or it panicked): those waiting try for themselves.
	again bool
}

// coalesce runs ensure for key unless a call for key is in flight, in
// which case it waits for that call's result.
func (l *lifecycle) coalesce(ctx context.Context, key string, ensure func() (*Customer, bool, error)) (*Customer, bool, error) {
	for {
		l.mu.Lock()
		f, inFlight := l.flights[key]
		if !inFlight {
			f = &ensureFlight{done: make(chan struct{})}
			if l.flights == nil {
				l.flights = map[string]*ensureFlight{}
			}
			l.flights[key] = f
			l.mu.Unlock()
			return l.lead(ctx, key, f, ensure)
		}
		l.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, false, &EnsureError{Step: "wait", Err: fmt.Errorf("waiting for another call ensuring the same email: %w", ctx.Err())}
		}
		if !f.again {
			return f.cust.clone(), false, forWaiter(f.err)
		}
	}
}

// lead runs ensure for the calls waiting on f. A panic in ensure (a hook's)
// still releases them.
func (l *lifecycle) lead(ctx context.Context, key string, f *ensureFlight, ensure func() (*Customer, bool, error)) (cust *Customer, created bool, err error) {
	f.again = true
	defer func() {
		l.mu.Lock()
		delete(l.flights, key)
		l.mu.Unlock()
		close(f.done)
	}()
	cust, created, err = ensure()
	// The customer returned here is the caller's to change: those waiting
	// copy a copy of their own.
	f.cust, f.err = cust.clone(), err
	f.again = err != nil && ctx.Err() != nil
	return cust, created, err
}

// forWaiter is the leading call's error as a waiting call gets it: an
// *EnsureError of its own and, when the email was ambiguous, accounts of
// its own to choose from.
func forWaiter(err error) error {
	e, ok := err.(*EnsureError)
	if !ok {
		return err
	}
	cp := *e
	if amb, ok := e.Err.(*AmbiguousEmailError); ok {
		accounts := make([]Customer, len(amb.Accounts))
		for i := range amb.Accounts {
			accounts[i] = *amb.Accounts[i].clone()
		}
		cp.Err = &AmbiguousEmailError{Accounts: accounts}
	}
	return &cp
}

// clone copies a customer for another caller, who may change it.
func (c *Customer) clone() *Customer {
	if c == nil {
		return nil
	}
	cp := *c
	cp.Links.AvatarURLs = maps.Clone(c.Links.AvatarURLs)
	return &cp
}

// RevokePortalOnlyAccess removes a portal-only customer's ability to log in
// to the customer portal. The account stays, and stays on its desks. It
// needs site administration (membership of site-admins); Atlassian Connect
// apps cannot call it (its Connect scope is INACCESSIBLE): with
// [WithConnectJWT] it fails, wrapping ErrForbidden, before anything is sent.
// An account id the site does not know is ErrNotFound; a caller who is not
// a site administrator gets ErrForbidden. It is a PUT: the SDK retries it
// after a 5xx or a broken connection, since revoking twice leaves the
// account as revoking once does. It is a Cloud operation: Data Center
// answers 404.
//
// JSM API: PUT /rest/servicedeskapi/customer/user/{accountId}/revoke-portal-only-access
func (s *CustomersService) RevokePortalOnlyAccess(ctx context.Context, accountID string) error {
	const where = "CustomersService.RevokePortalOnlyAccess"
	if why := validID(accountID); why != "" {
		return invalidInput(where, "accountID", why)
	}
	// One path segment, whoever decodes it and how often: the rule of
	// Client.Do's paths and next links.
	if why := segmentProblem(url.PathEscape(accountID)); why != "" {
		return invalidInput(where, "accountID", fmt.Sprintf("%q is not an account id: it %s", accountID, why))
	}
	r, err := s.client.newRequest(where, http.MethodPut, "customer/user/"+url.PathEscape(accountID)+"/revoke-portal-only-access",
		revokePortalOnlyAccessTemplate, needsRevoke, nil, nil)
	if err != nil {
		return err
	}
	return s.client.do(ctx, r, nil)
}

// revokePortalOnlyAccessTemplate is the path template of
// RevokePortalOnlyAccess, for the rate limiter and hooks.
const revokePortalOnlyAccessTemplate = "/rest/servicedeskapi/customer/user/{accountId}/revoke-portal-only-access"
