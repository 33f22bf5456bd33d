package hosts

import "testing"

func TestCloud(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"example.atlassian.net":      true,
		"EXAMPLE.Atlassian.NET":      true,
		"api.atlassian.com":          true,
		"API.ATLASSIAN.COM":          true,
		"example.jira.com":           true,
		"atlassian.net.example.com":  false,
		"jira.example.com":           false,
		"auth.atlassian.com":         false,
		"api.atlassian.com.evil.com": false,
		"127.0.0.1":                  false,
	} {
		if got := Cloud(host); got != want {
			t.Errorf("Cloud(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestLoopback(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"localhost":             true,
		"LocalHost":             true,
		"127.0.0.1":             true,
		"127.8.9.10":            true,
		"::1":                   true,
		"app.localhost":         false, // resolved through DNS
		"localhost.evil.com":    false,
		"10.0.0.1":              false,
		"example.com":           false,
		"":                      false,
		"0.0.0.0":               false,
		"::ffff:127.0.0.1":      true,
		"[::1]":                 false, // a Hostname, never bracketed
		"2001:db8::1":           false,
		"localhost:8080":        false, // a Hostname, never with a port
		"api.atlassian.com":     false,
		"127.0.0.1.nip.io":      false,
		"0177.0.0.1":            false, // not an IP to net.ParseIP
		"example.atlassian.net": false,
	} {
		if got := Loopback(host); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", host, got, want)
		}
	}
}
