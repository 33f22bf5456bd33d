package servicedesk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
)

// TestRedirectRefusedByTheUserIsNotRetried: a redirect the user's own
// CheckRedirect refuses gets the same refusal every time; it is returned
// after one request, wrapping the user's error.
func TestRedirectRefusedByTheUserIsNotRetried(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	errNoRedirects := errors.New("no redirects, please")
	c, err := servicedesk.NewClient(srv.URL, basicAuth(), servicedesk.WithRetryWait(time.Millisecond, time.Millisecond),
		servicedesk.WithHTTPClient(&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return errNoRedirects }}))
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	require.ErrorIs(t, err, errNoRedirects)
	assert.Equal(t, int32(1), n.Load(), "requests sent")
}

// TestRedirectLoopIsNotRetried: net/http's own limit of 10 hops holds, and
// reaching it is not retried.
func TestRedirectLoopIsNotRetried(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithRetryWait(time.Millisecond, time.Millisecond))
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	require.ErrorContains(t, err, "stopped after 10 redirects")
	assert.Equal(t, int32(10), n.Load(), "one attempt: as net/http does, the 10th redirect is not followed")
}

// TestBodyIsNotRedirectedToAnotherOrigin: a 307 asks for the body to be
// sent again, to another host; the SDK refuses instead of posting it there.
func TestBodyIsNotRedirectedToAnotherOrigin(t *testing.T) {
	t.Parallel()
	var foreign atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreign.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(other.Close)
	var home atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		home.Add(1)
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL, basicAuth(), servicedesk.WithRetryWait(time.Millisecond, time.Millisecond))
	require.NoError(t, err)
	err = addOne(c, context.Background())
	require.ErrorContains(t, err, "refused a redirect to "+other.URL)
	assert.Equal(t, int32(0), foreign.Load(), "the other host got nothing")
	assert.Equal(t, int32(1), home.Load(), "not retried")

	// Within the configured origin, a 307 is followed with the body.
	var got []byte
	var hops atomic.Int32
	same := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hops.Add(1) == 1 {
			http.Redirect(w, r, "/moved"+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		got, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(same.Close)
	c, err = servicedesk.NewClient(same.URL, basicAuth())
	require.NoError(t, err)
	require.NoError(t, addOne(c, context.Background()))
	assert.JSONEq(t, `{"accountIds":["a"]}`, string(got))
}

// TestRedirectThatWouldDropTheBodyIsRefused: a 301, 302 or 303 turns a
// POST or DELETE into a GET without a body, which net/http follows; an Add
// or Remove then "succeeded" with nothing done. Such a redirect is refused,
// on the configured origin too, and the call fails saying so.
func TestRedirectThatWouldDropTheBodyIsRefused(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther} {
		var seen []string
		var mu sync.Mutex
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Method+" "+r.URL.Path)
			mu.Unlock()
			if !strings.HasPrefix(r.URL.Path, "/moved") {
				http.Redirect(w, r, "/moved"+r.URL.Path, status)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(srv.Close)
		c, err := servicedesk.NewClient(srv.URL, basicAuth())
		require.NoError(t, err)
		err = addOne(c, context.Background())
		require.Error(t, err, "%d: the Add did not happen", status)
		assert.ErrorContains(t, err, "would turn POST into GET", "%d", status)
		err = c.Customers.Remove(context.Background(), "1", servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
		assert.ErrorContains(t, err, "would turn DELETE into GET", "%d", status)
		mu.Lock()
		assert.Equal(t, []string{"POST /rest/servicedeskapi/servicedesk/1/customer", "DELETE /rest/servicedeskapi/servicedesk/1/customer"}, seen, "%d: not followed, not retried", status)
		mu.Unlock()
	}
	// A GET is redirected as a GET: followed.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/moved") {
			http.Redirect(w, r, "/moved"+r.URL.Path, http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"values":[],"isLastPage":true}`)
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL, basicAuth())
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", nil)
	require.NoError(t, err)
}

// TestRetriesReuseTheConnectionAfterLargeErrorPages: an edge's HTML 503 page
// is larger than the 4 KiB retryablehttp drains; the SDK reads it whole, so
// every retry goes out on the same connection, not a new one (with TLS, a
// new handshake each time, during an overload).
func TestRetriesReuseTheConnectionAfterLargeErrorPages(t *testing.T) {
	t.Parallel()
	page := "<html><head><title>Service Unavailable</title></head><body>" + strings.Repeat("<p>Atlassian is busy.</p>", 1000) + "</body></html>"
	require.Greater(t, len(page), 20<<10)
	var n, conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 3 {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(page))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithRetryWait(time.Millisecond, time.Millisecond),
		servicedesk.WithHTTPClient(&http.Client{Transport: &http.Transport{}}))
	require.NoError(t, err)
	require.NoError(t, addOne(c, context.Background()))
	assert.Equal(t, int32(4), n.Load())
	assert.Equal(t, int32(1), conns.Load(), "connections opened")

	// The last answer's page is still whole in the error.
	n.Store(-10)
	err = addOne(c, context.Background())
	var apiErr *servicedesk.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, page, string(apiErr.Body))
	assert.Equal(t, "Service Unavailable", apiErr.Message)
}

// TestTransportErrorLogsKeepTheQueryOut: the query may hold a customer's
// email; neither the error nor the log records carry it.
func TestTransportErrorLogsKeepTheQueryOut(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // no answer at all
		}
	}))
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	var logs bytes.Buffer
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithMaxRetries(1), servicedesk.WithRetryWait(time.Millisecond, time.Millisecond),
		servicedesk.WithLogger(slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	require.NoError(t, err)
	_, err = c.Customers.List(context.Background(), "1", &servicedesk.ListCustomersOptions{Query: "fred.flintstone@example.com"})
	require.Error(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, logs.String())
	for _, text := range []string{err.Error(), logs.String()} {
		assert.NotContains(t, text, "fred.flintstone")
		assert.NotContains(t, text, "query=")
	}
	var first map[string]any
	require.NoError(t, json.NewDecoder(bytes.NewReader(logs.Bytes())).Decode(&first))
	assert.Contains(t, first["error"], "EOF", "the error is still logged")
}

// TestWithTimeoutBoundsEachAttempt: a server that does not answer within the
// per-attempt bound fails the attempt, even with the user's http.Client,
// and a retry gets a fresh bound.
func TestWithTimeoutBoundsEachAttempt(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client hanging up
		if n.Add(1) == 1 {
			select { // the first attempt hangs, for as long as a test may
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithHTTPClient(&http.Client{}),
		servicedesk.WithTimeout(500*time.Millisecond), servicedesk.WithRetryWait(time.Millisecond, time.Millisecond))
	require.NoError(t, err)
	within(t, 10*time.Second, func() { err = addOne(c, context.Background()) })
	require.NoError(t, err, "the retry succeeds")
	// Two attempts, the hung one and its retry; on a machine loaded enough
	// to keep a loopback 204 past half a second, one retry more.
	assert.GreaterOrEqual(t, n.Load(), int32(2))

	_, err = servicedesk.NewClient(srv.URL, servicedesk.WithTimeout(-time.Second))
	require.ErrorIs(t, err, servicedesk.ErrInvalidInput)
}

// TestTimeoutCoversReadingTheBody: the bound covers the whole answer, not
// only its headers, and a body cut short by it is a timeout, not an
// invalid answer.
func TestTimeoutCoversReadingTheBody(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"size":0,"values":[`))
		w.(http.Flusher).Flush()
		select { // the rest never comes, for as long as a test may
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithTimeout(100*time.Millisecond), servicedesk.WithMaxRetries(0))
	require.NoError(t, err)
	within(t, 10*time.Second, func() { _, err = c.Customers.List(context.Background(), "1", nil) })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, servicedesk.ErrInvalidResponse)
	assert.Equal(t, servicedesk.ClassTimeout, servicedesk.ClassOf(err))
	assert.ErrorContains(t, err, "reading the answer: attempt timed out after 100ms (WithTimeout)")
}

// within runs f, failing the test if it has not returned after d: a
// timeout that no longer fires fails the test instead of hanging the suite.
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("still running after %v", d)
	}
}
