// Package servicedesk is a client for the Jira Service Management (JSM) Customer API.
//
// It creates customers, lists the customers of a service desk (one page at a
// time or as an iterator over all of them), and adds customers to or removes
// them from a desk, against JSM Cloud (the site URL, or the OAuth 2.0 gateway
// returned by [CloudGatewayURL]) and JSM Data Center (with or without a
// context path) alike.
//
//	c, err := servicedesk.NewClient("https://your-domain.atlassian.net",
//		servicedesk.WithBasicAuth("me@example.com", os.Getenv("JSM_API_TOKEN")))
//	if err != nil {
//		return err
//	}
//	cust, err := c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{
//		Email:       "fred@example.com",
//		DisplayName: "Fred F. User",
//	})
//
// Every answer from the server outside 2xx is an [*Error]; errors.Is matches it
// against the sentinel of its status class ([ErrNotFound], [ErrRateLimited],
// ...). Input that cannot be right is rejected before anything is sent, with
// an error that wraps [ErrInvalidInput] and names the field.
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
