package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// syncBuffer is a bytes.Buffer safe to read while run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestServesTheFakeUntilCancelled(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addr", addr, "-customers", "120", "-context-path", "/jira"}, out) }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "serving") }, 5*time.Second, 5*time.Millisecond)
	assert.Contains(t, out.String(), "http://"+addr+"/jira")

	c, err := servicedesk.NewClient("http://"+addr+"/jira", servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken))
	require.NoError(t, err)
	n := 0
	for _, err := range c.Customers.All(context.Background(), "1", nil) {
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 120, n)

	cancel()
	require.NoError(t, <-done)
	_, err = http.Get("http://" + addr + "/jira/rest/servicedeskapi/customer")
	assert.Error(t, err, "the server is closed")
}

// TestRateLimitFlags: -burst-limit with a kind and -announce reach the
// server: the limit is enforced and announced on every answer.
func TestRateLimitFlags(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", addr, "-burst-limit", "2", "-limit-kind", "sliding", "-announce", "always"}, out)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "serving") }, 5*time.Second, 5*time.Millisecond)
	statuses := map[int]int{}
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("POST", "http://"+addr+"/rest/servicedeskapi/servicedesk/1/customer", strings.NewReader(`{"accountIds":["x"]}`))
		req.SetBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		statuses[resp.StatusCode]++
		if i == 0 {
			assert.Equal(t, `"jira-burst-based";q=2;w=1`, resp.Header.Get("RateLimit-Policy"))
		}
	}
	assert.Equal(t, map[int]int{400: 2, 429: 1}, statuses, "two served (x is no customer), the third refused")
	cancel()
	require.NoError(t, <-done)

	err := run(context.Background(), []string{"-limit-kind", "leaky"}, &syncBuffer{})
	assert.ErrorContains(t, err, "-limit-kind")

	help := &syncBuffer{}
	require.NoError(t, run(context.Background(), []string{"-h"}, help), "-h is not a failure")
	assert.Contains(t, help.String(), "-burst-limit")
}

func TestBusyAddressIsAnError(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	err = run(context.Background(), []string{"-addr", l.Addr().String()}, &syncBuffer{})
	assert.ErrorContains(t, err, "listen")
}
