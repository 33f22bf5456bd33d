package servicedesk_test

import (
	"io"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
)

const (
	testEmail = "me@example.com"
	testToken = "s3cr3t-api-token-XYZ"
)

// sent is one request as it went over the wire.
type sent struct {
	Method  string
	Path    string // escaped
	Query   string
	Host    string
	Header  http.Header
	Body    []byte
	HasBody bool
}

// wire records what a mock transport received.
type wire struct {
	mu   sync.Mutex
	reqs []sent
}

func (w *wire) record(req *http.Request) sent {
	s := sent{
		Method: req.Method,
		Path:   req.URL.EscapedPath(),
		Query:  req.URL.RawQuery,
		Host:   req.URL.Host,
		Header: req.Header.Clone(),
	}
	if req.Body != nil && req.Body != http.NoBody {
		s.Body, _ = io.ReadAll(req.Body)
		s.HasBody = true
	}
	w.mu.Lock()
	w.reqs = append(w.reqs, s)
	w.mu.Unlock()
	return s
}

func (w *wire) all() []sent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]sent(nil), w.reqs...)
}

// only returns the single request sent, failing the test otherwise.
func (w *wire) only(t *testing.T) sent {
	t.Helper()
	reqs := w.all()
	require.Len(t, reqs, 1, "requests sent")
	return reqs[0]
}

// reply is a canned answer.
type reply struct {
	status int
	body   string
	header map[string]string
}

// mockClient returns a client for baseURL whose requests go to an httpmock
// transport answering replies in order (the last one repeats), and the wire
// log. Retries wait a millisecond; the rate limiter may make a call wait up
// to 10 s (its default would be the retry policy's longest wait, 2 ms).
func mockClient(t *testing.T, baseURL string, replies []reply, opts ...servicedesk.Option) (*servicedesk.Client, *wire) {
	t.Helper()
	w := &wire{}
	mt := httpmock.NewMockTransport()
	var mu sync.Mutex
	n := 0
	mt.RegisterNoResponder(func(req *http.Request) (*http.Response, error) {
		w.record(req)
		mu.Lock()
		r := replies[min(n, len(replies)-1)]
		n++
		mu.Unlock()
		resp := httpmock.NewStringResponse(r.status, r.body)
		resp.Request = req
		if r.body != "" {
			resp.Header.Set("Content-Type", "application/json")
		}
		for k, v := range r.header {
			resp.Header.Set(k, v)
		}
		return resp, nil
	})
	all := append([]servicedesk.Option{
		servicedesk.WithHTTPClient(&http.Client{Transport: mt}),
		servicedesk.WithRetryWait(time.Millisecond, 2*time.Millisecond),
		servicedesk.WithRateLimitWait(10 * time.Second),
	}, opts...)
	c, err := servicedesk.NewClient(baseURL, all...)
	require.NoError(t, err)
	return c, w
}

func basicAuth() servicedesk.Option { return servicedesk.WithBasicAuth(testEmail, testToken) }

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return string(b)
}
