package servicedesk

// Client.Do: any other endpoint of the configured site, on the client's
// pipeline (design/API.md lists it with the Client, in client.go).

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Do sends method to path below the base URL ("/rest/api/3/user/search"; a
// leading "/rest/" is required, so it cannot leave the configured host),
// with the client's credentials, retry policy, rate-limit pacing and error
// mapping (*Error and the sentinels). query may be nil. body, when not nil,
// is sent as JSON; a 2xx body is decoded into v when v is not nil. POST is
// not repeated once the server may have acted on it; other methods are
// treated as idempotent.
//
// path is an escaped path: escape ids taken from elsewhere with
// url.PathEscape. Paths that could leave the API are refused before
// anything is sent, wrapping [ErrInvalidInput]: no "/rest/" prefix, a query
// or fragment in the path (use query), "." or ".." segments, empty
// segments, escaped "/" or "\", or characters that need escaping. A
// Connect JWT is signed for the path and query sent. Under
// /rest/servicedeskapi/ the request opts in to experimental endpoints
// (X-ExperimentalApi). body and v are encoded and decoded as encoding/json
// does (use json.RawMessage for JSON you already have); v must be a
// non-nil pointer, and is left as it is when the answer has no body (204).
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, v any) error {
	r, err := c.newDoRequest(method, path, query, body, v)
	if err != nil {
		return err
	}
	return c.do(ctx, r, v)
}

// newDoRequest checks what Do was given and builds its request.
func (c *Client) newDoRequest(method, path string, query url.Values, body, v any) (*request, error) {
	const where = "Client.Do"
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return nil, invalidInput(where, "method", fmt.Sprintf("%q is not GET, HEAD, POST, PUT, PATCH or DELETE", method))
	}
	if why := unsafePath(path); why != "" {
		return nil, invalidInput(where, "path", fmt.Sprintf("%q %s", path, why))
	}
	for name, values := range query {
		if !utf8.ValidString(name) {
			return nil, invalidInput(where, "query", fmt.Sprintf("%q is not valid UTF-8", name))
		}
		for _, value := range values {
			if !utf8.ValidString(value) {
				return nil, invalidInput(where, "query", fmt.Sprintf("the value of %q is not valid UTF-8", name))
			}
		}
	}
	if v != nil {
		if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || rv.IsNil() {
			return nil, invalidInput(where, "v", fmt.Sprintf("must be nil or a non-nil pointer, got %T", v))
		}
	}
	r := &request{
		op:           "Do",
		method:       method,
		url:          c.siteURL(path, query), // unsafePath checked every escape
		endpoint:     Endpoint{Method: method, Path: pathTemplate(path)},
		userTypes:    true,
		experimental: strings.HasPrefix(path, apiRoot),
		idempotent:   method != http.MethodPost,
		unsure:       "the server may have acted on it: check before sending it again",
	}
	var err error
	if r.body, err = encodeBody(where, body); err != nil {
		return nil, err
	}
	return r, nil
}

// unsafePath says why a path given to Do could leave the API (or be read
// differently by a proxy than by the SDK), or "" when it cannot.
func unsafePath(path string) string {
	if !strings.HasPrefix(path, "/rest/") {
		return `must start with "/rest/": a path on the configured site, such as "/rest/api/3/user/search"`
	}
	segments := strings.Split(path[1:], "/")
	for i, seg := range segments {
		if seg == "" && i < len(segments)-1 {
			return "must not hold an empty segment (//)"
		}
		for j := 0; j < len(seg); j++ {
			if c := seg[j]; c <= ' ' || c >= 0x7f || strings.IndexByte(`"#<>?\^`+"`{|}", c) >= 0 {
				return fmt.Sprintf("holds %q, which must be escaped (url.PathEscape), or a query or fragment (use query)", c)
			}
		}
		if why := segmentProblem(seg); why != "" {
			return why
		}
	}
	return ""
}

// operationTemplates are the path templates of the SDK's own operations:
// Do on one of their paths gets the same template, so it is paced, paused
// and labelled as the operation is ("/rest/servicedeskapi/servicedesk/
// help/customer" is the desk customers endpoint, limited to 5 a second,
// whatever the desk's key looks like).
var operationTemplates = []string{createCustomerTemplate, deskCustomersTemplate, revokePortalOnlyAccessTemplate}

// isOperationTemplate reports whether path is the template of one of the
// SDK's operations.
func isOperationTemplate(path string) bool {
	for _, t := range operationTemplates {
		if t == path {
			return true
		}
	}
	return false
}

// pathTemplate turns a path given to Do into a template for metrics and the
// rate limiter: the template of the SDK's operation on that path, or else
// the path with segments that look like ids as "{id}". Words in lower
// camel case ("user", "search", "requesttype") are kept, and so is the
// version after the API's name ("/rest/api/3").
func pathTemplate(path string) string {
	for _, t := range operationTemplates {
		if matchesTemplate(t, path) {
			return t
		}
	}
	segments := strings.Split(path, "/")
	for i, seg := range segments {
		if i <= 2 || seg == "" || isWord(seg) || i == 3 && isVersion(seg) {
			continue
		}
		segments[i] = "{id}"
	}
	return strings.Join(segments, "/")
}

// matchesTemplate reports whether path has template's segments, any
// segment standing for a "{name}" one.
func matchesTemplate(template, path string) bool {
	for {
		t, tRest, tMore := strings.Cut(template, "/")
		p, pRest, pMore := strings.Cut(path, "/")
		if tMore != pMore || !(t == p || strings.HasPrefix(t, "{") && p != "") {
			return false
		}
		if !tMore {
			return true
		}
		template, path = tRest, pRest
	}
}

// isWord reports a segment that names something rather than identifies
// it: lower camel case ("requesttype", "serviceDesk") or words joined by
// hyphens ("revoke-portal-only-access").
func isWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || i > 0 && ('A' <= c && c <= 'Z' || c == '-' && i < len(s)-1)) {
			return false
		}
	}
	return true
}

func isVersion(s string) bool {
	if s == "latest" {
		return true
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}
