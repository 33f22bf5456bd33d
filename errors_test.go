package servicedesk_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
)

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	sentinels := map[int]error{
		400: servicedesk.ErrBadRequest,
		401: servicedesk.ErrUnauthorized,
		403: servicedesk.ErrForbidden,
		404: servicedesk.ErrNotFound,
		409: servicedesk.ErrConflict,
		429: servicedesk.ErrRateLimited,
		500: servicedesk.ErrServer,
		502: servicedesk.ErrServer,
		503: servicedesk.ErrServer,
	}
	all := []error{
		servicedesk.ErrBadRequest, servicedesk.ErrUnauthorized, servicedesk.ErrForbidden,
		servicedesk.ErrNotFound, servicedesk.ErrConflict, servicedesk.ErrRateLimited,
		servicedesk.ErrServer, servicedesk.ErrInvalidInput, servicedesk.ErrInvalidResponse,
	}
	bodies := []struct {
		name        string
		body        string
		contentType string
		message     string
		i18nKey     string
		messages    []string
		fields      map[string]string
	}{
		{"servicedeskapi", fixture(t, "error_servicedeskapi.json"), "application/json",
			"Here is an error message", "some.error.key", nil, nil},
		{"platform", fixture(t, "error_platform.json"), "application/json",
			"The service desk does not exist.; Try another id.", "",
			[]string{"The service desk does not exist.", "Try another id."}, map[string]string{"serviceDeskId": "not found"}},
		{"html", fixture(t, "error_edge_503.html"), "text/html; charset=utf-8",
			"503 Service Unavailable", "", nil, nil},
		{"empty", "", "", "", "", nil, nil},
	}
	for status, sentinel := range sentinels {
		for _, b := range bodies {
			t.Run(fmt.Sprintf("%d/%s", status, b.name), func(t *testing.T) {
				t.Parallel()
				header := map[string]string{"X-AREQUESTID": "abc-123"}
				if b.contentType != "" {
					header["Content-Type"] = b.contentType
				}
				c, w := mockClient(t, "https://x.atlassian.net/",
					[]reply{{status: status, body: b.body, header: header}},
					basicAuth(), servicedesk.WithMaxRetries(0))

				err := c.Customers.Add(context.Background(), "7", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
				require.Error(t, err)
				require.Len(t, w.all(), 1)
				for _, s := range all {
					assert.Equal(t, s == sentinel, errors.Is(err, s), "errors.Is(err, %v)", s)
				}
				var apiErr *servicedesk.Error
				require.ErrorAs(t, err, &apiErr)
				assert.Equal(t, status, apiErr.StatusCode)
				assert.Equal(t, http.MethodPost, apiErr.Method)
				assert.Equal(t, "https://x.atlassian.net/rest/servicedeskapi/servicedesk/7/customer", apiErr.URL)
				assert.Equal(t, b.message, apiErr.Message)
				assert.Equal(t, b.i18nKey, apiErr.I18nKey)
				assert.Equal(t, b.messages, apiErr.ErrorMessages)
				assert.Equal(t, b.fields, apiErr.Errors)
				assert.Equal(t, "abc-123", apiErr.RequestID)
				assert.Equal(t, b.body, string(apiErr.Body))

				want := fmt.Sprintf("servicedesk: POST /rest/servicedeskapi/servicedesk/7/customer: %d %s", status, http.StatusText(status))
				if b.message != "" && b.message != fmt.Sprintf("%d %s", status, http.StatusText(status)) {
					want += ": " + b.message // an edge page repeating the status is not said twice
				}
				want += " (request id abc-123)"
				switch status {
				case 401:
					// Basic auth on Cloud: what to check, not permissions.
					hint := "Jira Cloud's Basic auth takes the account's email and an API token (id.atlassian.com, Security, API tokens), not its password: check both, and that the token has not expired or been revoked"
					assert.Equal(t, hint, apiErr.Hint)
					assert.Empty(t, apiErr.Needs)
					want += "; " + hint
				case 403:
					// Basic auth: the permission, and no scopes, which an API token does not have.
					needs := "needs the service desk administrator permission"
					assert.Equal(t, needs, apiErr.Needs)
					assert.Empty(t, apiErr.Hint)
					want += "; " + needs
				default:
					assert.Empty(t, apiErr.Needs)
					assert.Empty(t, apiErr.Hint)
				}
				assert.Equal(t, want, err.Error())
			})
		}
	}
}

func TestErrorOtherStatusHasNoSentinel(t *testing.T) {
	t.Parallel()
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 412, body: `{"errorMessage":"experimental API not opted in"}`}})
	_, err := c.Customers.List(context.Background(), "1", nil)
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 412, apiErr.StatusCode)
	for _, s := range []error{servicedesk.ErrBadRequest, servicedesk.ErrServer, servicedesk.ErrNotFound} {
		assert.NotErrorIs(t, err, s)
	}
}

func TestErrorPlainTextAndLongBodies(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 5000)
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{
		status: 502, body: "upstream\n\tconnect error " + long,
		header: map[string]string{"Content-Type": "text/plain"},
	}}, servicedesk.WithMaxRetries(0))
	err := c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.True(t, strings.HasPrefix(apiErr.Message, "upstream connect error xxx"), apiErr.Message)
	assert.LessOrEqual(t, len(apiErr.Message), 210)
	assert.Len(t, apiErr.Body, len("upstream\n\tconnect error ")+5000)
}

func TestErrorBodyIsBounded(t *testing.T) {
	t.Parallel()
	huge := `{"errorMessage":"` + strings.Repeat("y", 3<<20) + `"}`
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 400, body: huge}})
	err := c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Len(t, apiErr.Body, 1<<20)
	assert.ErrorIs(t, err, servicedesk.ErrBadRequest)
}

// TestErrorRetryAfter reads every form of the wait. Absolute times are
// measured against the answer's Date header, so these cases do not depend
// on the local clock (or on how slow the machine is).
func TestErrorRetryAfter(t *testing.T) {
	t.Parallel()
	date := time.Date(2026, 3, 26, 15, 0, 0, 0, time.UTC)
	at := func(h map[string]string) map[string]string {
		h["Date"] = date.Format(http.TimeFormat)
		return h
	}
	cases := map[string]struct {
		header map[string]string
		want   time.Duration
	}{
		"seconds":           {map[string]string{"Retry-After": "7"}, 7 * time.Second},
		"zero":              {map[string]string{"Retry-After": "0"}, 0},
		"http date":         {at(map[string]string{"Retry-After": date.Add(90 * time.Second).Format(http.TimeFormat)}), 90 * time.Second},
		"reset iso minutes": {at(map[string]string{"X-RateLimit-Reset": "2026-03-26T17:00Z"}), 2 * time.Hour},
		"reset iso seconds": {at(map[string]string{"X-RateLimit-Reset": "2026-03-26T15:00:42Z"}), 42 * time.Second},
		"zero with reset":   {at(map[string]string{"Retry-After": "0", "X-RateLimit-Reset": "2026-03-26T15:00:03Z"}), 3 * time.Second},
		"reset past":        {map[string]string{"X-RateLimit-Reset": "2024-06-01T12:34Z"}, 0},
		"none":              {map[string]string{}, 0},
		"garbage":           {map[string]string{"Retry-After": "soon"}, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 429, body: "", header: tc.header}},
				servicedesk.WithMaxRetries(0))
			err := c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
			var apiErr *servicedesk.Error
			require.ErrorAs(t, err, &apiErr)
			assert.ErrorIs(t, err, servicedesk.ErrRateLimited)
			assert.Equal(t, tc.want, apiErr.RetryAfter)
		})
	}
}

// TestServerClockSkewDoesNotStretchTheWait: a server whose clock is an hour
// ahead sends a reset an hour ahead of ours; measured against its own Date
// header it is a second away, and the retry comes after about a second.
func TestServerClockSkewDoesNotStretchTheWait(t *testing.T) {
	t.Parallel()
	serverNow := time.Now().Add(time.Hour).UTC()
	c, w := mockClient(t, "https://x.atlassian.net", []reply{
		{status: 429, header: map[string]string{
			"Date": serverNow.Format(http.TimeFormat), "Retry-After": "1",
			"X-RateLimit-Reset": serverNow.Truncate(time.Second).Add(time.Second).Format(time.RFC3339),
		}},
		{status: 204},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, addOne(c, ctx), "retried within the deadline, not an hour later")
	assert.Len(t, w.all(), 2)
}

func TestErrorBodyWithOddTypesKeepsWhatItCan(t *testing.T) {
	t.Parallel()
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 400, body: `{"errorMessage":"Bad desk","errors":{"limit":1,"start":"must be positive"}}`}})
	err := c.Customers.Add(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "Bad desk", apiErr.Message)
	assert.Equal(t, "must be positive", apiErr.Errors["start"])
}

// TestErrorNamesTheRequestSent: a transport need not set resp.Request (a
// user's stub does not), and the error still says what was sent.
func TestErrorNamesTheRequestSent(t *testing.T) {
	t.Parallel()
	stub := roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 404, Header: http.Header{}, Body: http.NoBody}, nil
	})
	c, err := servicedesk.NewClient("https://x.atlassian.net", servicedesk.WithHTTPClient(&http.Client{Transport: stub}))
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", &servicedesk.ListCustomersOptions{Query: "fred@example.com"})
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.MethodGet, apiErr.Method)
	assert.Equal(t, "https://x.atlassian.net/rest/servicedeskapi/servicedesk/1/customer?query=fred%40example.com", apiErr.URL)
	assert.Equal(t, "servicedesk: GET /rest/servicedeskapi/servicedesk/1/customer: 404 Not Found", err.Error())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestHandMadeError: an *Error built by hand, as a user's fake would, reads
// like one from the pipeline, with the path and without the query.
func TestHandMadeError(t *testing.T) {
	t.Parallel()
	e := &servicedesk.Error{StatusCode: 404, Method: "GET", URL: "https://x.atlassian.net/rest/servicedeskapi/servicedesk/1/customer?query=fred%40example.com", Message: "no desk"}
	assert.Equal(t, "servicedesk: GET /rest/servicedeskapi/servicedesk/1/customer: 404 Not Found: no desk", e.Error())
	assert.Equal(t, "servicedesk: 503 Service Unavailable", (&servicedesk.Error{StatusCode: 503}).Error())
	assert.ErrorIs(t, e, servicedesk.ErrNotFound)
}

func TestNilErrorDoesNotPanic(t *testing.T) {
	t.Parallel()
	var e *servicedesk.Error
	assert.NotPanics(t, func() {
		assert.Equal(t, "servicedesk: <nil *Error>", e.Error())
		assert.False(t, errors.Is(e, servicedesk.ErrNotFound))
		assert.False(t, e.Is(servicedesk.ErrServer))
	})
}

// TestEchoedCredentialsAreRedactedInEveryForm: a server that echoes a
// credential JSON-escaped ("/" as "\/"), percent-encoded, in a field name or
// in the i18n key gets it redacted everywhere in the error.
func TestEchoedCredentialsAreRedactedInEveryForm(t *testing.T) {
	t.Parallel()
	const token = "tok/with+slash=="
	escaped := strings.ReplaceAll(token, "/", `\/`)
	body := `{"errorMessage":"bad ` + escaped + `","i18nErrorMessage":{"i18nKey":"key.` + escaped + `"},` +
		`"errors":{"` + escaped + `":"unknown","q":"` + url.QueryEscape(token) + `"}}`
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 400, body: body}}, servicedesk.WithBearerToken(token))
	err := addOne(c, context.Background())
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	for _, form := range []string{token, escaped, url.QueryEscape(token)} {
		assert.NotContains(t, err.Error(), form)
		assert.NotContains(t, string(apiErr.Body), form)
		assert.NotContains(t, apiErr.Message, form)
		assert.NotContains(t, apiErr.I18nKey, form)
		for k, v := range apiErr.Errors {
			assert.NotContains(t, k, form)
			assert.NotContains(t, v, form)
		}
	}
	assert.Equal(t, "bad [REDACTED]", apiErr.Message)
	assert.Equal(t, "key.[REDACTED]", apiErr.I18nKey)
	assert.Equal(t, map[string]string{"[REDACTED]": "unknown", "q": "[REDACTED]"}, apiErr.Errors)
}

// TestFieldErrorsMakeTheMessage: a body with only the platform's "errors"
// object gets a message of its fields, in a stable order.
func TestFieldErrorsMakeTheMessage(t *testing.T) {
	t.Parallel()
	c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 400, body: `{"errors":{"start":"must be positive","limit":"too large","accountIds":"unknown"}}`}})
	err := addOne(c, context.Background())
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "accountIds: unknown; limit: too large; start: must be positive", apiErr.Message)
	assert.Len(t, apiErr.Errors, 3)
}
