// Package servicedesktest runs an in-memory Jira Service Management server
// for tests, as net/http/httptest does for handlers. It implements the
// customer operations (create, list, add, remove, revoke portal-only access)
// and Jira's user search with the real service's semantics: authentication
// (Basic, Bearer personal access tokens, Atlassian Connect JWTs with qsh),
// permissions (site administration included), the experimental header and
// its 412, duplicate emails (400, or 409 when asked), partial success of
// Add, paging with _links on a configurable public URL, error bodies in the
// servicedeskapi shape with X-AREQUESTID, and Data Center's forms
// ([WithDataCenter]). It models Jira Cloud's 2026 rate limits: burst limits per
// endpoint and method, an app's points quota (with a short window for
// tests), the structured RateLimit-Policy/RateLimit headers (Beta- or
// enforced), their reasons, and the OAuth gateway's bare 429. It can also
// misbehave on purpose: faults injected into the next requests that match
// (any status, headers and body, or a dropped connection, before or after
// the server acts), and latency.
//
//	srv := servicedesktest.NewServer()
//	defer srv.Close()
//	c, _ := servicedesk.NewClient(srv.URL,
//		servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
//
// By default the server holds service desk "1" (project key "HELP", closed
// access) and a Jira administrator who signs in with [AdminEmail] and
// [AdminToken] (not a site administrator: add a User with [RoleSiteAdmin]
// to revoke portal-only access). A Server is safe for concurrent use.
package servicedesktest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/servicedesk-go/servicedesk"
)

// The defaults every new Server holds.
const (
	AdminEmail        = "admin@example.com"
	AdminToken        = "admin-token"
	DefaultDeskID     = "1"
	DefaultProjectKey = "HELP"
	// MaxPageSize is the largest page the server returns, as on Jira Cloud.
	MaxPageSize = 50
)

// Role is what a user may do.
type Role int

const (
	// RoleCustomer may raise requests; it may not list or change customers.
	RoleCustomer Role = iota
	// RoleAgent may list the customers of the desks in User.Desks.
	RoleAgent
	// RoleDeskAdmin may list, add and remove customers of the desks in User.Desks.
	RoleDeskAdmin
	// RoleJiraAdmin may do everything but site administration, creating
	// customers included.
	RoleJiraAdmin
	// RoleSiteAdmin is a site administrator (a member of site-admins), who
	// is a Jira administrator too and may also revoke a portal-only
	// customer's access (CustomersService.RevokePortalOnlyAccess).
	RoleSiteAdmin
)

// User is an account that can sign in. Give it an APIToken (Basic auth with
// Email, or with Username on Data Center) or a PAT (Bearer), or both.
type User struct {
	Email       string
	DisplayName string
	AccountID   string // generated when empty
	Username    string // Data Center username; the account id when empty
	Role        Role
	Desks       []string // ids or project keys of the desks an agent or desk admin works on
	APIToken    string
	PAT         string
}

// Desk is a service desk. OpenAccess desks let anyone raise requests; their
// customers cannot be removed.
type Desk struct {
	ID         string
	ProjectKey string
	OpenAccess bool
}

// An Option configures a Server in NewServer.
type Option func(*Server)

// WithDesk adds a service desk.
func WithDesk(d Desk) Option { return func(s *Server) { s.AddDesk(d) } }

// WithUser adds a user who can sign in.
func WithUser(u User) Option { return func(s *Server) { s.AddUser(u) } }

// WithCustomer creates a customer and, unless deskID is "", puts it on that
// desk. An email that has an account already (a user's, or an earlier
// WithCustomer's) is that account: two accounts never share an email here;
// use WithUser twice for that (Data Center allows it).
func WithCustomer(deskID, email, displayName string) Option {
	return func(s *Server) { s.AddCustomer(deskID, email, displayName) }
}

// WithConnectApp installs an Atlassian Connect app: its JWTs, signed with
// sharedSecret, are accepted with the scope ADMIN (create, list, add; never
// remove, which is INACCESSIBLE to Connect apps).
func WithConnectApp(appKey, sharedSecret string) Option {
	return func(s *Server) { s.apps[appKey] = sharedSecret }
}

// WithSeed makes generated account and request ids deterministic: two
// servers with the same seed and options generate the same ids, the
// default admin's included, wherever WithSeed stands among the options.
func WithSeed(seed uint64) Option {
	return func(s *Server) { s.seed = &seed }
}

// WithPublicURL sets the base URL that _links name, in place of the
// server's own; set it to another host to reproduce the OAuth 2.0 gateway,
// whose pages link to the site.
func WithPublicURL(u string) Option {
	return func(s *Server) { s.publicURL = strings.TrimRight(u, "/") }
}

// WithContextPath serves the API below a Data Center context path such as
// "/jira"; URL then includes it. "" and "/" mean no context path.
func WithContextPath(p string) Option {
	return func(s *Server) {
		s.contextPath = ""
		if p = strings.Trim(p, "/"); p != "" {
			s.contextPath = "/" + p
		}
	}
}

// WithRateLimit answers 429, with Retry-After (whole seconds left, which
// may be 0, as Jira sometimes sends), X-RateLimit-Reset and RateLimit-Reason,
// once requests requests were served in the current window of the given
// length, all endpoints together. Every answer carries X-RateLimit-Limit and
// X-RateLimit-Remaining (and X-RateLimit-NearLimit when few are left). For
// Jira Cloud's own model, see [WithBurstLimit] and [WithQuota].
func WithRateLimit(requests int, window time.Duration) Option {
	return func(s *Server) { s.rate = rateLimit{budget: requests, window: window} }
}

// WithDataCenter answers as Jira Data Center does: there is no
// /rest/api/3 (user search is /rest/api/2/user/search?username=, and the
// Cloud form answers 404), accounts are named by username and key with no
// accountId in any answer, and revoking portal-only access, a Cloud
// operation, answers 404. Combine it with [WithContextPath] for a site
// below a context path.
func WithDataCenter() Option {
	return func(s *Server) { s.dataCenter = true }
}

// WithLatency delays every answer by d.
func WithLatency(d time.Duration) Option {
	return func(s *Server) { s.latency = d }
}

// WithAddr listens on addr ("127.0.0.1:8080") instead of a free loopback
// port. NewServer panics if it cannot listen there.
func WithAddr(addr string) Option {
	return func(s *Server) { s.addr = addr }
}

// Server is a running fake JSM.
type Server struct {
	// URL is the base URL to give servicedesk.NewClient, context path included.
	URL string

	srv         *httptest.Server
	addr        string
	publicURL   string
	contextPath string
	dataCenter  bool

	mu        sync.Mutex
	seed      *uint64 // from WithSeed
	rng       *rand.Rand
	accounts  map[string]*account // by account id
	order     []string            // account ids in creation order
	desks     []*desk
	apps      map[string]string      // Connect app key -> shared secret
	clientIDs map[string]string      // OAuth client id -> Connect app key
	tokens    map[string]actingToken // bearer tokens of apps acting as users
	latency   time.Duration
	faults    []*Fault
	rate      rateLimit
	limits    limits
	returned  int // customers in the answer being written, for the quota
	requests  []Request

	forgeAppID string    // from WithForgeApp
	forge      *forgeApp // the Forge app the server plays for, if any
}

// Request is a request the server received.
type Request struct {
	Method string
	Path   string // escaped
	Query  string
	// Auth is the scheme of the Authorization header ("Basic", "Bearer",
	// "JWT"), or "" without one. Credentials are not kept.
	Auth string
	// Status is the status answered; 0 when the connection was dropped.
	Status int
	// At is when the server took the request up.
	At time.Time
}

type account struct {
	servicedesk.Customer
	user  *User // nil for a customer created through the API
	email string
	// revoked: a site administrator revoked its portal access; a
	// portal-only customer then can no longer sign in.
	revoked bool
}

// portalOnly reports a portal-only customer account (accountType
// "customer"): one created as a customer, or a user whose role is
// RoleCustomer. Agents and administrators have Atlassian accounts.
func (a *account) portalOnly() bool {
	return a.user == nil || a.user.Role == RoleCustomer
}

type desk struct {
	Desk
	members []string // account ids, in the order they were added
}

// NewServer starts a fake JSM on loopback. Close it when done.
func NewServer(opts ...Option) *Server {
	// The random generator must be seeded before the defaults are created,
	// and a seed may come last among the options: look for it first, on a
	// server that is then thrown away (options only touch their server).
	probe := newServer(rand.New(rand.NewPCG(0, 0)))
	for _, opt := range opts {
		opt(probe)
	}
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	if probe.seed != nil {
		rng = rand.New(rand.NewPCG(*probe.seed, *probe.seed^0x5eed))
	}
	s := newServer(rng)
	for _, opt := range opts {
		opt(s)
	}
	if s.forgeAppID != "" {
		s.forge = newForgeApp(s.forgeAppID, s.seed)
	}
	s.srv = httptest.NewUnstartedServer(s)
	if s.addr != "" {
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			panic(fmt.Sprintf("servicedesktest: listen on %s: %v", s.addr, err))
		}
		s.srv.Listener.Close()
		s.srv.Listener = l
	}
	s.limits.epoch = time.Now().Truncate(time.Second) // fixed windows end on whole seconds
	s.srv.Start()
	s.URL = s.srv.URL + s.contextPath
	if s.publicURL == "" {
		s.publicURL = s.URL
	}
	return s
}

// newServer holds the default desk and admin.
func newServer(rng *rand.Rand) *Server {
	s := &Server{
		accounts:  map[string]*account{},
		apps:      map[string]string{},
		clientIDs: map[string]string{},
		tokens:    map[string]actingToken{},
		rng:       rng,
	}
	s.AddDesk(Desk{ID: DefaultDeskID, ProjectKey: DefaultProjectKey})
	s.AddUser(User{Email: AdminEmail, DisplayName: "Admin", Role: RoleJiraAdmin, APIToken: AdminToken})
	return s
}

// Close shuts the server down, waiting for requests in flight.
func (s *Server) Close() { s.srv.Close() }

// AddDesk adds a service desk.
func (s *Server) AddDesk(d Desk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.desks = append(s.desks, &desk{Desk: d})
}

// AddUser adds a user who can sign in, and returns its account.
func (s *Server) AddUser(u User) servicedesk.Customer {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.newAccount(u.Email, u.DisplayName, u.AccountID)
	if u.Username != "" {
		a.Name, a.Key = u.Username, u.Username
	}
	a.user = &u
	return s.customerJSON(a)
}

// AddCustomer creates a customer (or finds the account with that email) and,
// unless deskID is "", puts it on that desk. It panics on an unknown desk:
// seeding a test with one is a bug in the test.
func (s *Server) AddCustomer(deskID, email, displayName string) servicedesk.Customer {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accountByEmail(email)
	if a == nil {
		a = s.newAccount(email, displayName, "")
	}
	if deskID != "" {
		d := s.desk(deskID)
		if d == nil {
			panic(fmt.Sprintf("servicedesktest: AddCustomer: no desk %q", deskID))
		}
		d.add(a.AccountID)
	}
	return s.customerJSON(a)
}

// Customers returns the customers of a desk (by id or project key), in the
// order they were added, or nil for an unknown desk.
func (s *Server) Customers(deskID string) []servicedesk.Customer {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.desk(deskID)
	if d == nil {
		return nil
	}
	out := make([]servicedesk.Customer, 0, len(d.members))
	for _, id := range d.members {
		out = append(out, s.customerJSON(s.accounts[id]))
	}
	return out
}

// PortalAccessRevoked reports whether a site administrator revoked the
// portal access of the portal-only customer accountID (see
// servicedesk.CustomersService.RevokePortalOnlyAccess). Such a customer can
// no longer sign in to the fake: its credentials answer 401. It stays a
// customer of its desks, and user search still finds it.
func (s *Server) PortalAccessRevoked(accountID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[accountID]
	return a != nil && a.revoked
}

// Requests returns the requests taken up so far, in order: a request is
// taken up after WithLatency's delay, so one whose client gave up during
// the delay is not among them.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// newAccount creates an account with an id shaped like Atlassian's
// ("qm:<uuid>:<hex>"), name and key equal to it. Callers hold s.mu.
func (s *Server) newAccount(email, displayName, id string) *account {
	if id == "" {
		id = "qm:" + s.uuid() + ":" + s.hex(12)
	}
	a := &account{email: strings.ToLower(email)}
	a.Customer = servicedesk.Customer{
		AccountID:    id,
		Name:         id,
		Key:          id,
		EmailAddress: email,
		DisplayName:  displayName,
		Active:       true,
		TimeZone:     "UTC",
	}
	a.Links = s.userLinks(a)
	s.accounts[id] = a
	s.order = append(s.order, id)
	return a
}

func (s *Server) userLinks(a *account) servicedesk.UserLinks {
	// publicURL is not known before the listener starts; links are
	// completed when an answer is written (see customerJSON).
	avatar := "https://avatar-cdn.atlassian.com/" + s.hex(16) + "?s=%s&d=mm"
	sizes := map[string]string{}
	for _, px := range []string{"16", "24", "32", "48"} {
		sizes[px+"x"+px] = fmt.Sprintf(avatar, px)
	}
	return servicedesk.UserLinks{AvatarURLs: sizes}
}

func (s *Server) accountByEmail(email string) *account {
	email = strings.ToLower(strings.TrimSpace(email))
	for _, id := range s.order {
		if a := s.accounts[id]; a.email == email {
			return a
		}
	}
	return nil
}

func (s *Server) accountByUsername(name string) *account {
	for _, id := range s.order {
		if a := s.accounts[id]; a.Name == name {
			return a
		}
	}
	return nil
}

// desk finds a desk by id or project key (case-insensitive).
func (s *Server) desk(idOrKey string) *desk {
	for _, d := range s.desks {
		if d.ID == idOrKey || (d.ProjectKey != "" && strings.EqualFold(d.ProjectKey, idOrKey)) {
			return d
		}
	}
	return nil
}

func (d *desk) has(id string) bool {
	for _, m := range d.members {
		if m == id {
			return true
		}
	}
	return false
}

func (d *desk) add(id string) {
	if !d.has(id) {
		d.members = append(d.members, id)
	}
}

func (d *desk) remove(id string) {
	for i, m := range d.members {
		if m == id {
			d.members = append(d.members[:i], d.members[i+1:]...)
			return
		}
	}
}

func (s *Server) uuid() string {
	b := make([]byte, 16)
	for i := range b {
		b[i] = byte(s.rng.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *Server) hex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(s.rng.Uint32())
	}
	return fmt.Sprintf("%x", b)
}
