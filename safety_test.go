package servicedesk_test

// Faults a client must survive: contexts that keep their contract, hooks
// and limiters that panic, answers that try to stall it (issue 17).

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
)

type traceKey struct{}

// contextChecker is a transport that does what httptrace and otelhttp do:
// it puts a value in the request's context and derives a context from it.
// It remembers each attempt's context and, on every later attempt, checks
// that the earlier ones kept the contract of context.Context: Done never
// reopens, and Err is set once Done is closed.
type contextChecker struct {
	mu         sync.Mutex
	ctxs       []context.Context
	dones      []<-chan struct{}
	violations []string
}

func (cc *contextChecker) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := context.WithValue(req.Context(), traceKey{}, "span")
	cc.mu.Lock()
	for i, old := range cc.ctxs {
		select {
		case <-cc.dones[i]:
			if old.Err() == nil {
				cc.violations = append(cc.violations, "Err() is nil after Done was closed")
			}
			if old.Done() != cc.dones[i] {
				cc.violations = append(cc.violations, "Done reopened")
			}
		default:
		}
	}
	cc.ctxs = append(cc.ctxs, req.Context())
	cc.dones = append(cc.dones, req.Context().Done())
	cc.mu.Unlock()
	child, cancel := context.WithCancel(ctx) // as net/http does below the transport
	defer cancel()
	resp, err := http.DefaultTransport.RoundTrip(req.WithContext(child))
	if err == nil {
		// Keep the child alive while the body is read.
		body := resp.Body
		cancelLater := cancel
		cancel = func() {}
		resp.Body = &onClose{ReadCloser: body, f: cancelLater}
	}
	return resp, err
}

type onClose struct {
	io.ReadCloser
	f func()
}

func (o *onClose) Close() error {
	err := o.ReadCloser.Close()
	o.f()
	return err
}

// TestAttemptContextsKeepTheirContract: an attempt that times out is
// retried with a fresh bound, and the timed-out attempt's context stays
// done with its error set. A hand-made context that reopened Done let a
// context derived by a transport see Done closed and Err nil, and
// net/http panicked on a goroutine nobody could recover
// ("context: internal error: missing cancel error").
func TestAttemptContextsKeepTheirContract(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n.Add(1) == 1 {
			select { // the first attempt outlives its bound
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	cc := &contextChecker{}
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithHTTPClient(&http.Client{Transport: cc}),
		servicedesk.WithTimeout(100*time.Millisecond), servicedesk.WithMaxRetries(2),
		servicedesk.WithRetryWait(time.Millisecond, time.Millisecond))
	require.NoError(t, err)
	within(t, 10*time.Second, func() { err = addOne(c, context.Background()) })
	require.ErrorIs(t, err, servicedesk.ErrServer, "the last answer, a 503")
	assert.Equal(t, int32(3), n.Load(), "a timed-out attempt is retried")
	cc.mu.Lock()
	defer cc.mu.Unlock()
	assert.Empty(t, cc.violations)
	require.Len(t, cc.ctxs, 3)
	select {
	case <-cc.dones[0]:
		assert.Error(t, cc.ctxs[0].Err(), "the timed-out attempt's context says why it ended")
	default:
		t.Error("the timed-out attempt's context is not done")
	}
}
