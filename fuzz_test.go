package servicedesk

import (
	"bytes"
	stdjson "encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/ and run with every
// `go test`; `go test -fuzz FuzzErrorBody` explores from them.

func FuzzErrorBody(f *testing.F) {
	f.Add([]byte(`{"errorMessage":"x","i18nErrorMessage":{"i18nKey":"k","parameters":[]}}`), "application/json", 400)
	f.Add([]byte(`{"errorMessages":["a","b"],"errors":{"f":"g"}}`), "application/json", 404)
	f.Add([]byte("<html><title>503</title></html>"), "text/html", 503)
	f.Add([]byte{0xff, 0xfe, '<', 't'}, "", 429)
	f.Fuzz(func(t *testing.T, body []byte, contentType string, status int) {
		status = 400 + (status%200+200)%200
		u, _ := url.Parse("https://x.atlassian.net/rest/servicedeskapi/customer")
		resp := &http.Response{
			StatusCode: status,
			Header:     http.Header{"Content-Type": {contentType}, "Retry-After": {string(body[:min(len(body), 8)])}},
			Body:       io.NopCloser(bytes.NewReader(body)),
		}
		e := newError(resp, http.MethodGet, u, time.Now(), nil)
		msg := e.Error()
		if !strings.HasPrefix(msg, "servicedesk: GET /rest/servicedeskapi/customer: ") {
			t.Fatalf("Error() = %q", msg)
		}
		if len(e.Body) > maxErrorBody || !bytes.Equal(e.Body, body[:min(len(body), maxErrorBody)]) {
			t.Fatalf("Body not kept as sent, within the limit")
		}
		if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
			t.Fatalf("RetryAfter = %v", e.RetryAfter)
		}
		if t := bytes.TrimSpace(body); len(t) > 0 && t[0] != '{' {
			if len(e.Message) > maxMessage+len("…") || !utf8.ValidString(e.Message) || strings.ContainsAny(e.Message, "\n\r") {
				panic("a non-JSON body must give a short single-line UTF-8 message, got " + e.Message)
			}
		}
	})
}

func FuzzDecodePage(f *testing.F) {
	f.Add([]byte(`{"size":1,"start":0,"limit":1,"isLastPage":true,"values":[{"accountId":"a","_links":{"avatarUrls":{"16x16":"u"}}}],"_links":{"next":"n"}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(` {"values":[` + strings.Repeat(`{},`, 10) + `{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(body))}
		var page Page[Customer]
		err := decodeJSON(resp, &page, '{', decodeOptions)
		if err != nil {
			return
		}
		if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
		// Differential: where encoding/json also accepts the body, both
		// decoders agree on every field. encoding/json also matches names
		// that differ in case, which the SDK deliberately does not (JSM
		// sends exact names); bodies with such names are left out.
		var want Page[Customer]
		if stdjson.Unmarshal(body, &want) != nil || hasNearMissName(body) {
			return
		}
		if !reflect.DeepEqual(page, want) {
			t.Fatalf("go-json-experiment and encoding/json disagree on %q:\n%+v\n%+v", body, page, want)
		}
	})
}

var pageFieldNames = []string{"size", "start", "limit", "isLastPage", "values", "_expands", "_links",
	"self", "base", "context", "next", "prev", "accountId", "name", "key", "emailAddress",
	"displayName", "active", "timeZone", "jiraRest", "avatarUrls"}

// hasNearMissName reports whether any string in body folds to a field name
// (ignoring case, '_' and '-') without being it.
func hasNearMissName(body []byte) bool {
	fold := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return false
		}
		if tok.Kind() != '"' {
			continue
		}
		for _, name := range pageFieldNames {
			if s := tok.String(); s != name && (strings.EqualFold(s, name) || fold(s) == fold(name)) {
				return true
			}
		}
	}
}

func FuzzResolveNext(f *testing.F) {
	f.Add("https://site.example/rest/servicedeskapi/servicedesk/1/customer?start=50&limit=50", "https://site.example/rest/servicedeskapi")
	f.Add("https://evil.example/rest/servicedeskapi/servicedesk/1/../../../x?start=2", "")
	f.Add("/jira/rest/servicedeskapi/servicedesk/HELP/customer?start=%zz", "https://jira.internal/jira/rest/servicedeskapi")
	f.Add("//evil.example/rest/servicedeskapi/%2e%2E/x", "https://x/")
	f.Add("https://site.example/rest/servicedeskapi/..;/secure/admin?start=1", "https://site.example/rest/servicedeskapi")
	f.Add("https://site.example/rest/servicedeskapi/%252e%252e/%252e%252e/secure?start=1", "")
	c, err := NewClient("https://api.atlassian.com/ex/jira/cloud-1")
	if err != nil {
		f.Fatal(err)
	}
	const prefix = "/ex/jira/cloud-1/rest/servicedeskapi/"
	f.Fuzz(func(t *testing.T, next, base string) {
		u, ok := c.resolveNext(PageLinks{Next: next, Base: base})
		if !ok {
			return
		}
		if u.Scheme != "https" || u.Host != "api.atlassian.com" || u.User != nil || u.Fragment != "" {
			t.Fatalf("left the configured origin: %s", u)
		}
		if !strings.HasPrefix(u.EscapedPath(), prefix) || !strings.HasPrefix(u.Path, prefix) {
			t.Fatalf("left the API root: %s", u)
		}
		for _, seg := range strings.Split(strings.TrimPrefix(u.Path, prefix), "/") {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\\;%") {
				t.Fatalf("dot, empty, backslash, parameter or double-encoded segment in %q", u.Path)
			}
		}
		if _, err := url.ParseQuery(u.RawQuery); err != nil {
			t.Fatalf("query %q does not parse", u.RawQuery)
		}
	})
}
