package servicedesk_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
)

// openAPIDoc is the part of an OpenAPI 3 document the conformance test
// reads.
type openAPIDoc struct {
	Paths      map[string]map[string]openAPIOperation `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties           map[string]struct{ Type string } `json:"properties"`
			AdditionalProperties *bool                            `json:"additionalProperties"`
		} `json:"schemas"`
	} `json:"components"`
}

type openAPIOperation struct {
	OperationID  string `json:"operationId"`
	Experimental bool   `json:"x-experimental"`
	Parameters   []struct {
		Name     string `json:"name"`
		In       string `json:"in"`
		Required bool   `json:"required"`
	} `json:"parameters"`
	RequestBody *struct {
		Required bool `json:"required"`
		Content  map[string]struct {
			Schema struct {
				Ref string `json:"$ref"`
			} `json:"schema"`
		} `json:"content"`
	} `json:"requestBody"`
}

// TestRequestsConformToOpenAPI sends every customer operation (and
// Ensure's and FindByEmail's requests) to a server that records them, and
// checks each servicedeskapi request against Atlassian's OpenAPI document
// (testdata/openapi_customer.json: the 2020 document's customer paths, plus
// what JSM-FACTS.md records of today's: strictConflictStatusCode and
// revoke-portal-only-access): a path and method the document has, only
// query parameters it declares, the body its schema allows (no other
// properties) and none where it has no body, and X-ExperimentalApi exactly
// on experimental operations. Every operation of the document is sent at
// least once. Jira's user search, not in that document, is checked against
// the parameters Jira's platform documents.
func TestRequestsConformToOpenAPI(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/openapi_customer.json")
	require.NoError(t, err)
	var doc openAPIDoc
	require.NoError(t, json.Unmarshal(raw, &doc))

	type recorded struct {
		method, path string
		query        map[string][]string
		header       http.Header
		body         []byte
	}
	var mu sync.Mutex
	var reqs []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, recorded{r.Method, r.URL.EscapedPath(), r.URL.Query(), r.Header.Clone(), body})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "POST" && r.URL.Path == "/rest/servicedeskapi/customer":
			if strings.Contains(string(body), "old@example.com") {
				w.WriteHeader(http.StatusConflict)
				_, _ = io.WriteString(w, `{"errorMessage":"An account already exists for this email."}`)
				return
			}
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, fixture(t, "create_customer_201.json"))
		case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/user/search"):
			_, _ = io.WriteString(w, `[{"accountId":"old-id","emailAddress":"old@example.com","displayName":"Old","active":true}]`)
		case r.Method == "GET":
			_, _ = io.WriteString(w, fixture(t, "get_customers_200.json"))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	c, err := servicedesk.NewClient(srv.URL, basicAuth())
	require.NoError(t, err)

	ctx := context.Background()
	_, err = c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred"})
	require.NoError(t, err)
	_, err = c.Customers.Create(ctx, servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred", StrictConflictStatusCode: true})
	require.NoError(t, err)
	_, err = c.Customers.List(ctx, "HELP", &servicedesk.ListCustomersOptions{Query: "fred", Start: 5, Limit: 10})
	require.NoError(t, err)
	require.NoError(t, c.Customers.Add(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}, Usernames: []string{"u"}}))
	require.NoError(t, c.Customers.Remove(ctx, "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}}))
	require.NoError(t, c.Customers.RevokePortalOnlyAccess(ctx, fredID))
	_, _, err = c.Customers.Ensure(ctx, "1", servicedesk.CreateCustomerRequest{Email: "new@example.com", DisplayName: "New"})
	require.NoError(t, err)
	_, _, err = c.Customers.Ensure(ctx, "1", servicedesk.CreateCustomerRequest{Email: "old@example.com", DisplayName: "Old"})
	require.NoError(t, err)
	_, err = c.Customers.FindByEmail(ctx, "old@example.com")
	require.NoError(t, err)

	type route struct {
		template, method string
		re               *regexp.Regexp
		op               openAPIOperation
	}
	var routes []route
	for template, methods := range doc.Paths {
		re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(template), `[^/]+`) + "$")
		for method, op := range methods {
			routes = append(routes, route{template, strings.ToUpper(method), re, op})
		}
	}
	// Jira platform's documented parameters of the user search (Cloud,
	// Data Center).
	userSearch := map[string][]string{
		"/rest/api/3/user/search": {"query", "accountId", "property", "startAt", "maxResults"},
		"/rest/api/2/user/search": {"username", "startAt", "maxResults", "includeActive", "includeInactive", "property"},
	}

	sent := map[string]bool{}
	for _, r := range reqs {
		if params, ok := userSearch[r.path]; ok {
			assert.Equal(t, "GET", r.method)
			for name := range r.query {
				assert.Contains(t, params, name, "%s %s", r.method, r.path)
			}
			assert.Empty(t, r.body)
			continue
		}
		var match *route
		for i := range routes {
			if routes[i].method == r.method && routes[i].re.MatchString(r.path) {
				match = &routes[i]
			}
		}
		if !assert.NotNil(t, match, "%s %s is in no document", r.method, r.path) {
			continue
		}
		where := match.op.OperationID
		sent[match.method+" "+match.template] = true
		declared := map[string]bool{}
		for _, p := range match.op.Parameters {
			if p.In == "query" {
				declared[p.Name] = true
			}
		}
		for name := range r.query {
			assert.True(t, declared[name], "%s: query parameter %q is not declared", where, name)
		}
		if match.op.Experimental {
			assert.Equal(t, "opt-in", r.header.Get("X-ExperimentalApi"), where)
		} else {
			assert.Empty(t, r.header.Values("X-ExperimentalApi"), where)
		}
		if match.op.RequestBody == nil {
			assert.Empty(t, r.body, "%s has no body", where)
			assert.Empty(t, r.header.Get("Content-Type"), where)
			continue
		}
		content, ok := match.op.RequestBody.Content["application/json"]
		require.True(t, ok, where)
		assert.Equal(t, "application/json", r.header.Get("Content-Type"), where)
		schema := doc.Components.Schemas[strings.TrimPrefix(content.Schema.Ref, "#/components/schemas/")]
		require.NotEmpty(t, schema.Properties, "%s: schema %s", where, content.Schema.Ref)
		var body map[string]any
		require.NoError(t, json.Unmarshal(r.body, &body), "%s: the body is a JSON object", where)
		for name, value := range body {
			prop, ok := schema.Properties[name]
			if !assert.True(t, ok, "%s: property %q is not in %s", where, name, content.Schema.Ref) {
				continue
			}
			switch prop.Type {
			case "string":
				assert.IsType(t, "", value, "%s.%s", where, name)
			case "array":
				assert.IsType(t, []any{}, value, "%s.%s", where, name)
			}
		}
		assert.NotContains(t, body, "fullName", "%s: deprecated alias", where)
	}
	var missing []string
	for _, r := range routes {
		if !sent[r.method+" "+r.template] {
			missing = append(missing, r.method+" "+r.template)
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "operations of the document never sent")
}
