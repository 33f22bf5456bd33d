// Package hosts classifies the host of a URL the same way for package
// servicedesk and package forge: whether it is Jira Cloud, and whether it
// names this machine.
package hosts

import (
	"net"
	"strings"
)

// Cloud reports whether host is Jira Cloud: a site, or the OAuth gateway
// (api.atlassian.com, where Forge's app.apiBaseUrl points too).
func Cloud(host string) bool {
	host = strings.ToLower(host)
	return strings.HasSuffix(host, ".atlassian.net") || host == "api.atlassian.com" || strings.HasSuffix(host, ".jira.com")
}

// Loopback reports whether host names this machine: a loopback IP, or
// "localhost" (which the hosts file maps). Names below .localhost are not
// exempt: Go resolves them through DNS, which anyone on the path can answer.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
