package servicedesk

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/servicedesk-go/servicedesk/internal/limits"
)

// CustomersService creates customers and manages the customers of service
// desks. Get it from [Client.Customers].
type CustomersService service

// Customer is a JSM customer: an Atlassian account (Cloud) or a Jira user
// (Data Center).
type Customer struct {
	AccountID    string    `json:"accountId"`
	Name         string    `json:"name,omitempty"`         // deprecated by Atlassian, kept for Data Center
	Key          string    `json:"key,omitempty"`          // deprecated by Atlassian, kept for Data Center
	EmailAddress string    `json:"emailAddress,omitempty"` // may be empty: privacy settings
	DisplayName  string    `json:"displayName"`
	Active       bool      `json:"active"`
	TimeZone     string    `json:"timeZone,omitempty"`
	Links        UserLinks `json:"_links"`
}

// UserLinks are the links of a [Customer].
type UserLinks struct {
	Self       string            `json:"self,omitempty"`
	JiraRest   string            `json:"jiraRest,omitempty"`
	AvatarURLs map[string]string `json:"avatarUrls,omitempty"` // keys "16x16", "24x24", "32x32", "48x48"
}

// validate refuses a decoded customer with no identity at all (a "{}" or a
// body of some other kind): Cloud sends accountId, Data Center name and key.
func (c *Customer) validate() error {
	if c.AccountID == "" && c.Key == "" && c.Name == "" {
		return fmt.Errorf("customer has no accountId, key or name")
	}
	return nil
}

// CreateCustomerRequest is the body of [CustomersService.Create].
type CreateCustomerRequest struct {
	Email       string `json:"email"`
	DisplayName string `json:"displayName"`
	// StrictConflictStatusCode asks the server for 409 Conflict, instead of 400,
	// when the email already exists. Sent as a query parameter only when true.
	StrictConflictStatusCode bool `json:"-"`
}

func (r CreateCustomerRequest) validate(where string) error {
	if err := validEmail(where, "Email", r.Email); err != nil {
		return err
	}
	if strings.TrimSpace(r.DisplayName) == "" {
		return invalidInput(where, "DisplayName", "must not be empty")
	}
	if !utf8.ValidString(r.DisplayName) {
		return invalidInput(where, "DisplayName", "is not valid UTF-8")
	}
	return nil
}

// validEmail refuses what is not a plain email address ("fred@example.com",
// not "Fred <fred@example.com>").
func validEmail(where, field, email string) error {
	if strings.TrimSpace(email) == "" {
		return invalidInput(where, field, "must not be empty")
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return invalidInput(where, field, fmt.Sprintf("%q is not a plain email address", email))
	}
	return nil
}

// Create creates a customer: an account that can raise requests, not yet on
// any service desk (see [CustomersService.Add]). It needs the Jira
// Administrator global permission. To make an email a customer of a desk
// whether or not it has an account, use [CustomersService.Ensure].
//
// An email that already has an account is ErrConflict: a 409 when
// req.StrictConflictStatusCode is set, otherwise the server's 400, which is
// ErrBadRequest as well. The existing account is not returned: find it with
// [CustomersService.FindByEmail]. Create is not retried once the request may
// have reached the server, except after a 429, so that a retry cannot create
// a second customer; after a 5xx or a broken connection the error's hint
// says how to find out whether the customer was created.
//
// JSM API: POST /rest/servicedeskapi/customer
func (s *CustomersService) Create(ctx context.Context, req CreateCustomerRequest) (*Customer, error) {
	const where = "CustomersService.Create"
	if err := req.validate(where); err != nil {
		return nil, err
	}
	return s.create(ctx, where, req, createUnsure)
}

// createUnsure is the hint of a Create that may have run though it failed.
// List and All cannot tell: they show only a desk's customers, and a new
// customer is on none.
const createUnsure = "the customer may have been created all the same: " +
	"Ensure makes the email a customer of a desk either way; or create it again with StrictConflictStatusCode " +
	"(409 Conflict: it exists) and find the account with FindByEmail"

// create sends Create's request for op (the operation the caller called),
// req already checked; unsure is the hint of an answer that leaves the
// outcome open.
func (s *CustomersService) create(ctx context.Context, op string, req CreateCustomerRequest, unsure string) (*Customer, error) {
	var query url.Values
	if req.StrictConflictStatusCode {
		query = url.Values{"strictConflictStatusCode": {"true"}}
	}
	r, err := s.client.newRequest(op, http.MethodPost, "customer", createCustomerTemplate, needsCreate, query, req)
	if err != nil {
		return nil, err
	}
	r.unsure = unsure
	cust := new(Customer)
	if err := s.client.do(ctx, r, cust); err != nil {
		return nil, err
	}
	return cust, nil
}

// ListCustomersOptions filters and pages [CustomersService.List].
type ListCustomersOptions struct {
	Query string // matched against displayName, name and email
	Start int    // index of the first customer, 0-based
	Limit int    // page size; 0 lets the server choose (50)
}

func (o *ListCustomersOptions) validate(where string) error {
	if o == nil {
		return nil
	}
	if o.Start < 0 {
		return invalidInput(where, "ListCustomersOptions.Start", "must not be negative, got "+strconv.Itoa(o.Start))
	}
	if o.Limit < 0 {
		return invalidInput(where, "ListCustomersOptions.Limit", "must not be negative, got "+strconv.Itoa(o.Limit))
	}
	// Jira would search for U+FFFD in place of the broken bytes.
	if !utf8.ValidString(o.Query) {
		return invalidInput(where, "ListCustomersOptions.Query", "is not valid UTF-8")
	}
	return nil
}

// values encodes only what is set.
func (o *ListCustomersOptions) values() url.Values {
	q := url.Values{}
	if o == nil {
		return q
	}
	if o.Query != "" {
		q.Set("query", o.Query)
	}
	if o.Start > 0 {
		q.Set("start", strconv.Itoa(o.Start))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return q
}

// List fetches one page of the customers of a service desk, filtered by
// opts.Query (nil opts: the first page, unfiltered). The server may return
// fewer customers than opts.Limit asks for; trust the page's Limit and Size.
// It needs permission to view the desk's customers. serviceDeskID is the
// desk's id ("1") or its project key ("HELP").
//
// JSM API: GET /rest/servicedeskapi/servicedesk/{serviceDeskId}/customer (experimental)
func (s *CustomersService) List(ctx context.Context, serviceDeskID string, opts *ListCustomersOptions) (*Page[Customer], error) {
	r, err := s.listRequest("CustomersService.List", serviceDeskID, opts)
	if err != nil {
		return nil, err
	}
	page := new(Page[Customer])
	if err := s.client.do(ctx, r, page); err != nil {
		return nil, err
	}
	return page, nil
}

// All walks every page, following _links.next, and yields each customer.
// It starts at opts.Start and asks for opts.Limit per page, matching
// opts.Query (nil opts: every customer of the desk); opts is not modified.
//
// The walk stops when the server says the last page was reached, after an
// empty page, when the loop body breaks (no further request is made), or
// when ctx is done. An error is yielded once, with a zero Customer, and ends
// the walk; a server that does not advance is such an error, never an
// endless loop. One page is held at a time, so memory stays flat however
// many customers the desk has. Next links are resolved onto the client's
// base URL, never followed to another host (see [CustomersService.Pages]).
//
// JSM API: GET /rest/servicedeskapi/servicedesk/{serviceDeskId}/customer (experimental)
func (s *CustomersService) All(ctx context.Context, serviceDeskID string, opts *ListCustomersOptions) iter.Seq2[Customer, error] {
	r, err := s.listRequest("CustomersService.All", serviceDeskID, opts)
	return values(pages[Customer](ctx, s.client, r, err))
}

// Pages walks every page, following _links.next, and yields each page.
// It stops, and yields errors, as [CustomersService.All] does.
//
// Pages fetched through the OAuth 2.0 gateway or a Data Center proxy carry
// links to the site's own host. The next page is therefore requested from
// the client's base URL: the part of _links.next after _links.base is
// appended to it, with the link's query. Without a usable next link on a
// page that is not the last, the walk continues from Start+Size with the
// caller's query and limit.
//
// JSM API: GET /rest/servicedeskapi/servicedesk/{serviceDeskId}/customer (experimental)
func (s *CustomersService) Pages(ctx context.Context, serviceDeskID string, opts *ListCustomersOptions) iter.Seq2[*Page[Customer], error] {
	r, err := s.listRequest("CustomersService.Pages", serviceDeskID, opts)
	return pages[Customer](ctx, s.client, r, err)
}

// listRequest is the first (or only) request of List, All and Pages.
func (s *CustomersService) listRequest(where, serviceDeskID string, opts *ListCustomersOptions) (*request, error) {
	if err := validDeskID(where, serviceDeskID); err != nil {
		return nil, err
	}
	if err := opts.validate(where); err != nil {
		return nil, err
	}
	r, err := s.client.newRequest(where, http.MethodGet, deskCustomersPath(serviceDeskID), deskCustomersTemplate, needsList, opts.values(), nil)
	if err != nil {
		return nil, err
	}
	r.experimental = true
	return r, nil
}

// CustomerIDs names customers, by Cloud account id or by Data Center username.
type CustomerIDs struct {
	AccountIDs []string `json:"accountIds,omitempty"`
	Usernames  []string `json:"usernames,omitempty"` // Data Center; deprecated on Cloud
}

func (ids CustomerIDs) validate(where string) error {
	if len(ids.AccountIDs) == 0 && len(ids.Usernames) == 0 {
		return invalidInput(where, "CustomerIDs", "must name at least one account id or username")
	}
	for i, id := range ids.AccountIDs {
		if err := validID(id); err != "" {
			return invalidInput(where, fmt.Sprintf("CustomerIDs.AccountIDs[%d]", i), err)
		}
	}
	for i, name := range ids.Usernames {
		if err := validID(name); err != "" {
			return invalidInput(where, fmt.Sprintf("CustomerIDs.Usernames[%d]", i), err)
		}
	}
	return nil
}

// validID says what is wrong with an account id or username, or "".
func validID(id string) string {
	switch {
	case strings.TrimSpace(id) == "":
		return "must not be empty"
	case !utf8.ValidString(id):
		return "is not valid UTF-8"
	}
	return ""
}

// Add adds customers to a service desk. Customers already on the desk are
// left as they are. It needs the service desk administrator permission.
//
// When some of the customers do not exist the server answers 400
// (ErrBadRequest, with its message) and the valid ones have still been
// added: the error does not mean that nothing changed.
//
// JSM API: POST /rest/servicedeskapi/servicedesk/{serviceDeskId}/customer
func (s *CustomersService) Add(ctx context.Context, serviceDeskID string, ids CustomerIDs) error {
	return s.changeDesk(ctx, http.MethodPost, "CustomersService.Add", needsAdd, serviceDeskID, ids)
}

// Remove removes customers from a service desk. Customers not on the desk
// are ignored. The desk must have closed access: on a desk with public
// signup or open access the server answers 400 (ErrBadRequest). It needs the
// service desk administrator permission. Atlassian Connect apps cannot call
// it (its Connect scope is INACCESSIBLE): with [WithConnectJWT] it fails,
// wrapping ErrForbidden, before anything is sent.
//
// JSM API: DELETE /rest/servicedeskapi/servicedesk/{serviceDeskId}/customer (experimental)
func (s *CustomersService) Remove(ctx context.Context, serviceDeskID string, ids CustomerIDs) error {
	return s.changeDesk(ctx, http.MethodDelete, "CustomersService.Remove", needsRemove, serviceDeskID, ids)
}

// changeDesk is Add (POST) and Remove (DELETE, experimental): same path,
// same body, 204 with no body. Both are idempotent: customers already
// (or not) on the desk are a no-op, so either may be retried.
func (s *CustomersService) changeDesk(ctx context.Context, method, where string, n needs, serviceDeskID string, ids CustomerIDs) error {
	if err := validDeskID(where, serviceDeskID); err != nil {
		return err
	}
	if err := ids.validate(where); err != nil {
		return err
	}
	r, err := s.client.newRequest(where, method, deskCustomersPath(serviceDeskID), deskCustomersTemplate, n, nil, ids)
	if err != nil {
		return err
	}
	r.idempotent = true
	r.experimental = method == http.MethodDelete
	return s.client.do(ctx, r, nil)
}

// validDeskID refuses a service desk id that is empty, or that cannot be a
// desk's id ("1") or project key ("HELP"): something pasted from a URL, a
// path, or what escaping cannot keep inside its path segment ("." and
// ".." are resolved by servers).
func validDeskID(where, id string) error {
	switch {
	case strings.TrimSpace(id) == "":
		return invalidInput(where, "serviceDeskID", "must not be empty")
	case id == "." || id == ".." || !utf8.ValidString(id) ||
		strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune(`/\?#;%`, r) }):
		return invalidInput(where, "serviceDeskID", fmt.Sprintf(
			"%q is not a service desk id or project key: pass the desk's id (\"1\") or its project key (\"HELP\"), not a URL or a path", id))
	}
	return nil
}

// createCustomerTemplate is the path of Create, for the rate limiter and
// hooks.
const createCustomerTemplate = "/rest/servicedeskapi/customer"

// deskCustomersTemplate is the path template of a desk's customers.
const deskCustomersTemplate = limits.DeskCustomersTemplate

// deskCustomersPath is the escaped path of a desk's customers: the id is one
// path segment whatever it holds.
func deskCustomersPath(serviceDeskID string) string {
	return "servicedesk/" + url.PathEscape(serviceDeskID) + "/customer"
}
