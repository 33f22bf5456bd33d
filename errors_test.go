package servicedesk_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
				if b.message != "" {
					want += ": " + b.message
				}
				want += " (request id abc-123)"
				if status == 401 || status == 403 {
					needs := "needs the service desk administrator permission; OAuth 2.0 scope manage:servicedesk-customer" +
						" (granular: read:servicedesk.customer:jira-service-management, write:servicedesk.customer:jira-service-management); Connect scope WRITE"
					assert.Equal(t, needs, apiErr.Needs)
					want += "; " + needs
				} else {
					assert.Empty(t, apiErr.Needs)
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

func TestErrorRetryAfter(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		header map[string]string
		want   time.Duration
		within time.Duration
	}{
		"seconds":    {map[string]string{"Retry-After": "7"}, 7 * time.Second, 0},
		"zero":       {map[string]string{"Retry-After": "0"}, 0, 0},
		"http date":  {map[string]string{"Retry-After": time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)}, 90 * time.Second, 10 * time.Second},
		"reset iso":  {map[string]string{"X-RateLimit-Reset": time.Now().Add(2 * time.Hour).UTC().Format("2006-01-02T15:04Z")}, 2 * time.Hour, 61 * time.Second},
		"reset past": {map[string]string{"X-RateLimit-Reset": "2024-06-01T12:34Z"}, 0, 0},
		"none":       {nil, 0, 0},
		"garbage":    {map[string]string{"Retry-After": "soon"}, 0, 0},
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
			assert.InDelta(t, tc.want, apiErr.RetryAfter, float64(tc.within))
		})
	}
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
