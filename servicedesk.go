// Package servicedesk is a client for the Jira Service Management (JSM) Customer API.
//
// It creates customers, lists the customers of a service desk (one page at a
// time or as an iterator over all of them), adds customers to or removes
// them from a desk, finds the account of an email, makes an email a customer
// of a desk in one call whatever its state ([CustomersService.Ensure]), and
// revokes a portal-only customer's access, against JSM Cloud (the site URL,
// or the OAuth 2.0 gateway returned by [CloudGatewayURL]) and JSM Data
// Center (with or without a context path) alike.
//
//	c, err := servicedesk.NewClient("https://your-domain.atlassian.net",
//		servicedesk.WithBasicAuth("me@example.com", os.Getenv("JSM_API_TOKEN")))
//	if err != nil {
//		return err
//	}
//	cust, created, err := c.Customers.Ensure(ctx, "HELP", servicedesk.CreateCustomerRequest{
//		Email:       "fred@example.com",
//		DisplayName: "Fred F. User",
//	})
//
// Every answer from the server outside 2xx is an [*Error]; errors.Is matches it
// against the sentinel of its status class ([ErrNotFound], [ErrRateLimited],
// ...), and it says what to do when the SDK can tell (how long to wait, what
// to check after a 401). Input that cannot be right is rejected before
// anything is sent, with an error that wraps [ErrInvalidInput] and names the
// field.
//
// Each Client paces itself to Jira's rate limits: one governor, shared by
// every goroutine, learns each endpoint's limit from the answers, pauses an
// endpoint (or everything, when the app's quota is spent) when Jira says so,
// and never waits longer than [WithRateLimitWait] allows. [Client.Do] calls
// any other endpoint of the site through the same pipeline: credentials,
// retries, rate limits, errors. [WithLogger] and [WithHooks] tell what
// happens at run time; the package servicedesktest is an in-memory JSM for
// tests.
//
// A Client is safe for concurrent use by multiple goroutines.
package servicedesk

// Version is the version of this SDK, sent in the default User-Agent.
const Version = "0.1.0"

// defaultUserAgent names the SDK and its version on every request.
const defaultUserAgent = "servicedesk-go/" + Version

// service is what every API area shares: the client whose request pipeline
// it uses. Each area is a named type of it (go-github's pattern), so adding
// one is a new file and one line in NewClient.
type service struct {
	client *Client
}
