package servicedesk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
)

// hookLog records what the hooks were told, in order.
type hookLog struct {
	mu       sync.Mutex
	starts   []servicedesk.CallInfo
	attempts []servicedesk.AttemptInfo
	ends     []servicedesk.CallResult
}

type spanKey struct{}

func (h *hookLog) hooks() servicedesk.Hooks {
	return servicedesk.Hooks{
		CallStart: func(ctx context.Context, c servicedesk.CallInfo) context.Context {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.starts = append(h.starts, c)
			return context.WithValue(ctx, spanKey{}, "span of "+c.Operation)
		},
		Attempt: func(ctx context.Context, a servicedesk.AttemptInfo) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if ctx.Value(spanKey{}) == nil {
				panic("the attempt hook did not get the call's context")
			}
			h.attempts = append(h.attempts, a)
		},
		CallEnd: func(ctx context.Context, r servicedesk.CallResult) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.ends = append(h.ends, r)
		},
	}
}

func TestHooksSeeEveryAttemptAndCall(t *testing.T) {
	t.Parallel()
	var h hookLog
	var seenSpan []any
	var mu sync.Mutex
	c, w := mockClient(t, "https://x.atlassian.net", []reply{
		{status: 503, header: map[string]string{"X-AREQUESTID": "r1"}},
		{status: 204, header: map[string]string{"X-AREQUESTID": "r2", "X-RateLimit-Remaining": "9"}},
	}, basicAuth(), servicedesk.WithHooks(h.hooks()))
	// The transport below sees the context CallStart returned.
	c2, err := servicedesk.NewClient("https://x.atlassian.net", servicedesk.WithHooks(h.hooks()),
		servicedesk.WithHTTPClient(&http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			seenSpan = append(seenSpan, r.Context().Value(spanKey{}))
			mu.Unlock()
			return &http.Response{StatusCode: 204, Header: http.Header{}, Body: http.NoBody}, nil
		})}))
	require.NoError(t, err)

	require.NoError(t, addOne(c, context.Background()))
	require.Len(t, w.all(), 2)
	want := servicedesk.CallInfo{Operation: "CustomersService.Add", Method: "POST", Path: "/rest/servicedeskapi/servicedesk/{serviceDeskId}/customer"}
	require.Equal(t, []servicedesk.CallInfo{want}, h.starts)
	require.Len(t, h.attempts, 2)
	a1, a2 := h.attempts[0], h.attempts[1]
	assert.Equal(t, want, a1.CallInfo)
	assert.Equal(t, 1, a1.Attempt)
	assert.Equal(t, 503, a1.StatusCode)
	assert.Equal(t, "r1", a1.RequestID)
	assert.Equal(t, servicedesk.ClassServerError, a1.Class)
	assert.True(t, a1.Retry)
	assert.Equal(t, -1, a1.RateLimit.Remaining)
	assert.Equal(t, 2, a2.Attempt)
	assert.Equal(t, 204, a2.StatusCode)
	assert.Equal(t, servicedesk.ClassOK, a2.Class)
	assert.False(t, a2.Retry)
	assert.Equal(t, 9, a2.RateLimit.Remaining)
	assert.Positive(t, a2.Waited, "the backoff before the retry")
	require.Len(t, h.ends, 1)
	end := h.ends[0]
	assert.Equal(t, want, end.CallInfo)
	assert.Equal(t, 2, end.Attempts)
	assert.Equal(t, 204, end.StatusCode)
	assert.Equal(t, "r2", end.RequestID)
	assert.Equal(t, servicedesk.ClassOK, end.Class)
	assert.NoError(t, end.Err)
	assert.GreaterOrEqual(t, end.Duration, a1.Duration+a2.Duration)

	require.NoError(t, addOne(c2, context.Background()))
	assert.Equal(t, []any{"span of CustomersService.Add"}, seenSpan)
}

func TestHooksOnRefusalsErrorsAndDo(t *testing.T) {
	t.Parallel()
	var h hookLog
	srv, _ := scripted(t, 429, map[string]string{"Retry-After": "3600", "RateLimit-Reason": "jira-quota-global-based", "X-AREQUESTID": "q1"})
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithHooks(h.hooks()))
	require.NoError(t, err)
	err = c.Do(context.Background(), "GET", "/rest/api/3/user/5b10ac8d82e05b22cc7d4ef5/properties/HELP-7", nil, nil, nil)
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	_, err = c.Customers.List(context.Background(), "1", nil)
	require.ErrorIs(t, err, servicedesk.ErrRateLimited)
	_, err = c.Customers.List(context.Background(), "", nil)
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)

	require.Len(t, h.ends, 2, "input refused before the pipeline calls no hook")
	assert.Equal(t, servicedesk.CallInfo{Operation: "Do", Method: "GET", Path: "/rest/api/3/user/{id}/properties/{id}"}, h.ends[0].CallInfo)
	assert.Equal(t, 1, h.ends[0].Attempts)
	assert.Equal(t, 429, h.ends[0].StatusCode)
	assert.Equal(t, "q1", h.ends[0].RequestID)
	assert.Equal(t, servicedesk.ClassRateLimited, h.ends[0].Class)
	assert.Equal(t, 0, h.ends[1].Attempts, "refused by the limiter: never sent")
	assert.Equal(t, servicedesk.ClassRateLimited, h.ends[1].Class)
	assert.Error(t, h.ends[1].Err)
	assert.Len(t, h.attempts, 1, "an attempt is what was sent")
}

func TestClassOf(t *testing.T) {
	t.Parallel()
	cases := map[servicedesk.ErrorClass]error{
		servicedesk.ClassOK:              nil,
		servicedesk.ClassNotFound:        &servicedesk.Error{StatusCode: 404},
		servicedesk.ClassClientError:     &servicedesk.Error{StatusCode: 412},
		servicedesk.ClassServerError:     &servicedesk.Error{StatusCode: 502},
		servicedesk.ClassConflict:        &servicedesk.Error{StatusCode: 409},
		servicedesk.ClassBadRequest:      &servicedesk.Error{StatusCode: 400},
		servicedesk.ClassUnauthorized:    &servicedesk.Error{StatusCode: 401},
		servicedesk.ClassInvalidInput:    servicedesk.ErrInvalidInput,
		servicedesk.ClassInvalidResponse: servicedesk.ErrInvalidResponse,
		servicedesk.ClassCanceled:        context.Canceled,
		servicedesk.ClassTimeout:         context.DeadlineExceeded,
		servicedesk.ClassTransport:       assert.AnError,
	}
	for want, err := range cases {
		assert.Equal(t, want, servicedesk.ClassOf(err), "%v", err)
	}
}

// TestLogLevels: with a default handler (Info) a human sees retries and a
// call that gave up, not every attempt; at Debug, every attempt too.
func TestLogLevels(t *testing.T) {
	t.Parallel()
	run := func(level slog.Level) []map[string]any {
		var buf bytes.Buffer
		var mu sync.Mutex
		logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: level}))
		c, _ := mockClient(t, "https://x.atlassian.net", []reply{{status: 503, body: `{"errorMessage":"down for ` + testToken + `"}`}},
			basicAuth(), servicedesk.WithLogger(logger), servicedesk.WithMaxRetries(1))
		require.Error(t, addOne(c, context.Background()))
		mu.Lock()
		defer mu.Unlock()
		assert.NotContains(t, buf.String(), testToken)
		var recs []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var rec map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &rec))
			recs = append(recs, rec)
		}
		return recs
	}
	msgs := func(recs []map[string]any) (out []string) {
		for _, r := range recs {
			out = append(out, r["level"].(string)+" "+r["msg"].(string))
		}
		return out
	}
	info := run(slog.LevelInfo)
	assert.Equal(t, []string{"WARN servicedesk: retrying", "ERROR servicedesk: gave up"}, msgs(info))
	gaveUp := info[1]
	assert.Equal(t, "CustomersService.Add", gaveUp["op"])
	assert.EqualValues(t, 2, gaveUp["attempts"])
	assert.Equal(t, "server_error", gaveUp["class"])
	assert.Contains(t, gaveUp["error"], "gave up after 2 attempts")
	assert.Contains(t, gaveUp["error"], "[REDACTED]")
	debug := run(slog.LevelDebug)
	assert.Equal(t, []string{"DEBUG servicedesk: attempt", "WARN servicedesk: retrying", "DEBUG servicedesk: attempt", "ERROR servicedesk: gave up"}, msgs(debug))
}
