package servicedesk

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/servicedesk-go/servicedesk/internal/hosts"
)

// isCloud reports whether host is Jira Cloud: a site, or the OAuth gateway.
func isCloud(host string) bool { return hosts.Cloud(host) }

// isLoopback reports whether host names this machine (see hosts.Loopback).
func isLoopback(host string) bool { return hosts.Loopback(host) }

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		// url.Error quotes the input, which may hold a password: say less.
		return nil, invalidInput("NewClient", "baseURL", "is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, invalidInput("NewClient", "baseURL", "must start with https:// or http://")
	case u.Host == "" || u.Hostname() == "":
		return nil, invalidInput("NewClient", "baseURL", "has no host")
	case u.User != nil:
		return nil, invalidInput("NewClient", "baseURL", "must not contain credentials; use an auth option")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, invalidInput("NewClient", "baseURL", "must not contain a query")
	case u.Fragment != "":
		return nil, invalidInput("NewClient", "baseURL", "must not contain a fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	if err := checkBasePath(u); err != nil {
		return nil, err
	}
	return u, nil
}

// checkBasePath refuses base URLs that look right but make every call 404:
// one that already holds an API path, a page of Jira's web interface (the
// customer portal, a desk's queues, an issue), and the OAuth gateway
// without a cloud id.
func checkBasePath(u *url.URL) error {
	segments := strings.Split(u.Path, "/")
	for i, seg := range segments {
		site := *u
		site.Path, site.RawPath = strings.Join(segments[:i], "/"), ""
		next := ""
		if i+1 < len(segments) {
			next = segments[i+1]
		}
		switch {
		case seg == "rest":
			return invalidInput("NewClient", "baseURL",
				fmt.Sprintf("must not include the API path (%q): use %q; the SDK appends /rest/servicedeskapi/...",
					"/"+strings.Join(segments[i:], "/"), site.String()))
		case seg == "servicedesk" && (next == "customer" || next == "projects"), seg == "browse":
			return invalidInput("NewClient", "baseURL",
				fmt.Sprintf("is a page of Jira's web interface (%q), not the site's base URL: use %q",
					"/"+strings.Join(segments[i:], "/"), site.String()))
		}
	}
	if strings.EqualFold(u.Hostname(), "api.atlassian.com") {
		cloudID, ok := strings.CutPrefix(u.Path, "/ex/jira/")
		if !ok || cloudID == "" || strings.Contains(cloudID, "/") {
			return invalidInput("NewClient", "baseURL",
				"is the OAuth 2.0 gateway without a cloud id: use CloudGatewayURL(cloudID), with the id from AccessibleResources")
		}
	}
	return nil
}
