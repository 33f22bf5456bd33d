package servicedesk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
)

// desk is a scripted list endpoint: total customers c0..c(n-1), served in
// pages of at most maxLimit, with _links built on linkBase (the site's
// public URL, which may be another host than the one asked).
type desk struct {
	t        *testing.T
	total    int
	maxLimit int
	linkBase string // e.g. "https://site.example/jira"; "" means the server's own URL

	// tweaks, per page index (0-based) where it says so
	noNext     bool          // never send _links.next
	fail       map[int]int   // page index -> status to answer
	repeatNext bool          // every next link points at the same start
	nextLink   func() string // overrides the next link

	mu    sync.Mutex
	reqs  []string // path?query, as received
	auths []string
}

func (d *desk) requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.reqs...)
}

func (d *desk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	idx := len(d.reqs)
	d.reqs = append(d.reqs, r.URL.EscapedPath()+"?"+r.URL.RawQuery)
	d.auths = append(d.auths, r.Header.Get("Authorization"))
	d.mu.Unlock()

	if r.Header.Get("X-ExperimentalApi") != "opt-in" {
		w.WriteHeader(http.StatusPreconditionFailed)
		return
	}
	if status, ok := d.fail[idx]; ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"errorMessage":"scripted failure on page %d"}`, idx)
		return
	}
	q := r.URL.Query()
	start, _ := strconv.Atoi(q.Get("start"))
	limit := d.maxLimit
	if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > 0 && l < limit {
		limit = l
	}
	end := min(start+limit, d.total)
	var vals []servicedesk.Customer
	for i := start; i < end; i++ {
		vals = append(vals, servicedesk.Customer{AccountID: "c" + strconv.Itoa(i), DisplayName: "Customer " + strconv.Itoa(i), Active: true})
	}
	base := d.linkBase
	if base == "" {
		base = "http://" + r.Host
	}
	path := strings.TrimSuffix(base, "/") + "/rest/servicedeskapi" + r.URL.EscapedPath()[strings.Index(r.URL.EscapedPath(), "/servicedesk/"):]
	page := servicedesk.Page[servicedesk.Customer]{
		Size: len(vals), Start: start, Limit: limit, IsLastPage: end >= d.total, Values: vals,
		Links: servicedesk.PageLinks{
			Base: strings.TrimSuffix(base, "/") + "/rest/servicedeskapi",
			Self: path + "?start=" + strconv.Itoa(start),
		},
	}
	if !page.IsLastPage && !d.noNext {
		next := end
		if d.repeatNext {
			next = limit
		}
		page.Links.Next = fmt.Sprintf("%s?start=%d&limit=%d", path, next, limit)
		if q.Get("query") != "" {
			page.Links.Next += "&query=" + q.Get("query")
		}
		if d.nextLink != nil {
			page.Links.Next = d.nextLink()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	require.NoError(d.t, json.NewEncoder(w).Encode(page))
}

// serve starts d on loopback and returns a client for its URL+contextPath,
// with opts (Basic auth when there are none).
func (d *desk) serve(t *testing.T, contextPath string, opts ...servicedesk.Option) (*servicedesk.Client, *httptest.Server) {
	t.Helper()
	d.t = t
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	if len(opts) == 0 {
		opts = []servicedesk.Option{basicAuth()}
	}
	c, err := servicedesk.NewClient(srv.URL+contextPath, opts...)
	require.NoError(t, err)
	return c, srv
}

func collect(t *testing.T, seq func(func(servicedesk.Customer, error) bool)) ([]string, error) {
	t.Helper()
	var ids []string
	for cust, err := range seq {
		if err != nil {
			assert.Empty(t, cust.AccountID, "an error comes with a zero Customer")
			return ids, err
		}
		ids = append(ids, cust.AccountID)
	}
	return ids, nil
}

func ids(from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, "c"+strconv.Itoa(i))
	}
	return s
}

func TestAllWalksEveryPageInOrder(t *testing.T) {
	t.Parallel()
	d := &desk{total: 7, maxLimit: 50}
	c, _ := d.serve(t, "")
	got, err := collect(t, c.Customers.All(context.Background(), "1", &servicedesk.ListCustomersOptions{Limit: 3}))
	require.NoError(t, err)
	assert.Equal(t, ids(0, 7), got)
	assert.Equal(t, []string{
		"/rest/servicedeskapi/servicedesk/1/customer?limit=3",
		"/rest/servicedeskapi/servicedesk/1/customer?limit=3&start=3",
		"/rest/servicedeskapi/servicedesk/1/customer?limit=3&start=6",
	}, d.requests())
	for _, a := range d.auths {
		assert.Equal(t, wantBasic(), a)
	}
}

func TestPagesYieldsEachPage(t *testing.T) {
	t.Parallel()
	d := &desk{total: 5, maxLimit: 2}
	c, _ := d.serve(t, "")
	var starts, sizes []int
	var last []bool
	for page, err := range c.Customers.Pages(context.Background(), "HELP", nil) {
		require.NoError(t, err)
		starts = append(starts, page.Start)
		sizes = append(sizes, page.Size)
		last = append(last, page.IsLastPage)
		assert.Len(t, page.Values, page.Size)
	}
	assert.Equal(t, []int{0, 2, 4}, starts)
	assert.Equal(t, []int{2, 2, 1}, sizes)
	assert.Equal(t, []bool{false, false, true}, last)
}

// TestAllBehindGatewayStaysOnConfiguredHost: the pages name the site's host
// (a second live server); the walk must go on through the gateway.
func TestAllBehindGatewayStaysOnConfiguredHost(t *testing.T) {
	t.Parallel()
	var siteHits atomic.Int32
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		siteHits.Add(1)
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(site.Close)

	d := &desk{total: 5, maxLimit: 2, linkBase: site.URL}
	c, _ := d.serve(t, "/ex/jira/cloud-1", servicedesk.WithBearerToken("oauth-access-token"))
	got, err := collect(t, c.Customers.All(context.Background(), "1", nil))
	require.NoError(t, err)
	assert.Equal(t, ids(0, 5), got)
	assert.Equal(t, int32(0), siteHits.Load(), "the host named in _links gets no request")
	for _, r := range d.requests() {
		assert.True(t, strings.HasPrefix(r, "/ex/jira/cloud-1/rest/servicedeskapi/servicedesk/1/customer?"), r)
	}
	for _, a := range d.auths {
		assert.Equal(t, "Bearer oauth-access-token", a)
	}
}

func TestAllDataCenterContextPath(t *testing.T) {
	t.Parallel()
	// The proxy's internal name in the links, the public one configured.
	d := &desk{total: 4, maxLimit: 3, linkBase: "http://jira-internal.corp:8080/jira"}
	c, _ := d.serve(t, "/jira/")
	got, err := collect(t, c.Customers.All(context.Background(), "HELP", nil))
	require.NoError(t, err)
	assert.Equal(t, ids(0, 4), got)
	assert.Equal(t, []string{
		"/jira/rest/servicedeskapi/servicedesk/HELP/customer?",
		"/jira/rest/servicedeskapi/servicedesk/HELP/customer?limit=3&start=3",
	}, d.requests())
}

func TestAllEarlyBreakMakesOneRequest(t *testing.T) {
	t.Parallel()
	d := &desk{total: 100, maxLimit: 10}
	c, _ := d.serve(t, "")
	n := 0
	for _, err := range c.Customers.All(context.Background(), "1", nil) {
		require.NoError(t, err)
		n++
		if n == 3 {
			break
		}
	}
	assert.Equal(t, 3, n)
	assert.Len(t, d.requests(), 1)
}

func TestAllErrorOnSecondPage(t *testing.T) {
	t.Parallel()
	d := &desk{total: 10, maxLimit: 3, fail: map[int]int{1: 500}}
	c, _ := d.serve(t, "", basicAuth(), servicedesk.WithMaxRetries(0))
	got, err := collect(t, c.Customers.All(context.Background(), "1", nil))
	require.ErrorIs(t, err, servicedesk.ErrServer)
	assert.Contains(t, err.Error(), "scripted failure on page 1")
	assert.Equal(t, ids(0, 3), got)
	assert.Len(t, d.requests(), 2)

	// Pages yields the error once, with a nil page, and stops.
	d2 := &desk{total: 10, maxLimit: 3, fail: map[int]int{1: 404}}
	c2, _ := d2.serve(t, "")
	var errs int
	for page, err := range c2.Customers.Pages(context.Background(), "1", nil) {
		if err != nil {
			errs++
			assert.Nil(t, page)
			assert.ErrorIs(t, err, servicedesk.ErrNotFound)
		}
	}
	assert.Equal(t, 1, errs)
}

func TestAllRepeatedNextLinkIsAnError(t *testing.T) {
	t.Parallel()
	d := &desk{total: 10, maxLimit: 3, repeatNext: true}
	c, _ := d.serve(t, "")
	got, err := collectWithin(t, 10*time.Second, c.Customers.All(context.Background(), "1", nil))
	require.ErrorIs(t, err, servicedesk.ErrInvalidResponse)
	assert.Contains(t, err.Error(), "does not advance")
	assert.Equal(t, ids(0, 6), got)
	assert.Len(t, d.requests(), 2)
}

func TestAllServerIgnoringStartIsAnError(t *testing.T) {
	t.Parallel()
	// No next link and a server that always answers the first page.
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"start":0,"size":1,"limit":1,"isLastPage":false,"values":[{"accountId":"a"}]}`))
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL)
	require.NoError(t, err)
	_, err = collectWithin(t, 10*time.Second, c.Customers.All(context.Background(), "1", nil))
	require.ErrorIs(t, err, servicedesk.ErrInvalidResponse)
	assert.LessOrEqual(t, n.Load(), int32(3))
}

func TestAllWithoutNextLinkContinuesFromStartPlusSize(t *testing.T) {
	t.Parallel()
	d := &desk{total: 5, maxLimit: 2, noNext: true}
	c, _ := d.serve(t, "")
	got, err := collect(t, c.Customers.All(context.Background(), "1", &servicedesk.ListCustomersOptions{Query: "cust", Limit: 2, Start: 1}))
	require.NoError(t, err)
	assert.Equal(t, ids(1, 5), got)
	assert.Equal(t, []string{
		"/rest/servicedeskapi/servicedesk/1/customer?limit=2&query=cust&start=1",
		"/rest/servicedeskapi/servicedesk/1/customer?limit=2&query=cust&start=3",
	}, d.requests())
}

func TestAllUnusableNextLinkFallsBack(t *testing.T) {
	t.Parallel()
	for name, link := range map[string]string{
		"dot segments":   "https://evil.example/rest/servicedeskapi/servicedesk/1/../../../rest/api/2/user?start=2",
		"escaped dots":   "https://evil.example/rest/servicedeskapi/%2E%2E/api?start=2",
		"not the api":    "https://evil.example/some/where?start=2",
		"malformed":      "http://[::1",
		"broken escapes": "https://x/rest/servicedeskapi/servicedesk/1/customer?start=%zz",
		"only a host":    "https://evil.example?start=2",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := &desk{total: 4, maxLimit: 2, nextLink: func() string { return link }}
			c, _ := d.serve(t, "")
			got, err := collect(t, c.Customers.All(context.Background(), "1", nil))
			require.NoError(t, err)
			assert.Equal(t, ids(0, 4), got)
			for _, r := range d.requests() {
				assert.True(t, strings.HasPrefix(r, "/rest/servicedeskapi/servicedesk/1/customer?"), r)
			}
		})
	}
}

// TestAllIgnoresAnOddBaseLink: a _links.base that is not the API root
// (here the site root) must not be taken for it.
func TestAllIgnoresAnOddBaseLink(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("start") == "" {
			_, _ = w.Write([]byte(`{"start":0,"size":1,"limit":1,"isLastPage":false,"values":[{"accountId":"a"}],
				"_links":{"base":"https://site.example/","next":"https://site.example/rest/servicedeskapi/servicedesk/1/customer?start=1&limit=1"}}`))
			return
		}
		assert.Equal(t, "/rest/servicedeskapi/servicedesk/1/customer", r.URL.Path)
		_, _ = w.Write([]byte(`{"start":1,"size":1,"limit":1,"isLastPage":true,"values":[{"accountId":"b"}]}`))
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL)
	require.NoError(t, err)
	got, err := collect(t, c.Customers.All(context.Background(), "1", nil))
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, got)
}

func TestAllStopsOnEmptyPage(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("start") == "" {
			_, _ = w.Write([]byte(`{"start":0,"size":2,"limit":2,"isLastPage":false,"values":[{"accountId":"a"},{"accountId":"b"}]}`))
			return
		}
		_, _ = w.Write([]byte(`{"start":2,"size":0,"limit":2,"isLastPage":false,"values":[]}`))
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL)
	require.NoError(t, err)
	got, err := collect(t, c.Customers.All(context.Background(), "1", nil))
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, got)
}

func TestAllTrustsTheServersLimit(t *testing.T) {
	t.Parallel()
	d := &desk{total: 7, maxLimit: 3}
	c, _ := d.serve(t, "")
	opts := &servicedesk.ListCustomersOptions{Query: "c", Limit: 100}
	before := *opts
	got, err := collect(t, c.Customers.All(context.Background(), "1", opts))
	require.NoError(t, err)
	assert.Equal(t, ids(0, 7), got)
	assert.Len(t, d.requests(), 3)
	assert.Equal(t, before, *opts, "options are not modified")
}

func TestAllInvalidInputYieldsOneError(t *testing.T) {
	t.Parallel()
	d := &desk{total: 1, maxLimit: 1}
	c, _ := d.serve(t, "")
	var errs []error
	for _, err := range c.Customers.All(context.Background(), "", nil) {
		errs = append(errs, err)
	}
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], servicedesk.ErrInvalidInput)
	for _, err := range c.Customers.Pages(context.Background(), "1", &servicedesk.ListCustomersOptions{Start: -1}) {
		assert.ErrorIs(t, err, servicedesk.ErrInvalidInput)
	}
	assert.Empty(t, d.requests())
}

func TestAllContextCanceledMidWalk(t *testing.T) {
	t.Parallel()
	d := &desk{total: 10, maxLimit: 2}
	c, _ := d.serve(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []string
	var last error
	for cust, err := range c.Customers.All(ctx, "1", nil) {
		if err != nil {
			last = err
			break
		}
		got = append(got, cust.AccountID)
		if len(got) == 2 {
			cancel()
		}
	}
	require.ErrorIs(t, last, context.Canceled)
	assert.Equal(t, ids(0, 2), got)
	assert.Len(t, d.requests(), 1)
}

func TestConcurrentWalksShareOneClient(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]servicedesk.Option{
		"default":  {basicAuth()},
		"prefetch": {basicAuth(), servicedesk.WithPrefetch()},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := &desk{total: 40, maxLimit: 7}
			c, _ := d.serve(t, "", opts...)
			var wg sync.WaitGroup
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := collect(t, c.Customers.All(context.Background(), "1", nil))
					assert.NoError(t, err)
					assert.Equal(t, ids(0, 40), got)
				}()
			}
			wg.Wait()
			assert.Len(t, d.requests(), 4*6)
		})
	}
}

func TestPrefetchWalksInOrder(t *testing.T) {
	t.Parallel()
	d := &desk{total: 23, maxLimit: 5}
	c, _ := d.serve(t, "", basicAuth(), servicedesk.WithPrefetch())
	got, err := collect(t, c.Customers.All(context.Background(), "1", nil))
	require.NoError(t, err)
	assert.Equal(t, ids(0, 23), got)
	assert.Len(t, d.requests(), 5)
}

// TestPrefetchFetchesWhileTheCallerWorks: while the loop is still on the
// first customer, the request for the second page has already arrived.
func TestPrefetchFetchesWhileTheCallerWorks(t *testing.T) {
	t.Parallel()
	d := &desk{total: 20, maxLimit: 10}
	c, _ := d.serve(t, "", basicAuth(), servicedesk.WithPrefetch())
	n := 0
	for _, err := range c.Customers.All(context.Background(), "1", nil) {
		require.NoError(t, err)
		if n++; n == 1 {
			require.Eventually(t, func() bool { return len(d.requests()) == 2 }, 5*time.Second, time.Millisecond,
				"the second page is requested before the first is consumed")
		}
	}
	assert.Equal(t, 20, n)
}

// TestPrefetchEarlyBreakCancelsTheNextPage: the page fetched ahead is
// abandoned on break: its request is cancelled (the server sees the client
// hang up) rather than left to finish, and nothing is requested after it.
func TestPrefetchEarlyBreakCancelsTheNextPage(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	cancelled := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"size":1,"start":0,"limit":1,"isLastPage":false,"values":[{"accountId":"c0"}]}`))
			return
		}
		select { // the prefetched page: answered only if not cancelled
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"size":1,"start":1,"limit":1,"isLastPage":true,"values":[{"accountId":"c1"}]}`))
		}
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithPrefetch())
	require.NoError(t, err)
	start := time.Now()
	for _, err := range c.Customers.All(context.Background(), "1", nil) {
		require.NoError(t, err)
		require.Eventually(t, func() bool { return n.Load() == 2 }, 5*time.Second, time.Millisecond, "the next page was asked for")
		break
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the prefetched request was not cancelled")
	}
	assert.Less(t, time.Since(start), 9*time.Second, "the walk did not wait for the abandoned page")
	assert.Equal(t, int32(2), n.Load(), "nothing after the abandoned page")
}

// TestPrefetchRateLimitHookRunsOnTheWalkingGoroutine: WithRateLimitHook
// promises the hook runs on the goroutine of the call, so a loop body and
// the hook may share state without a lock. With WithPrefetch the next page
// is fetched on another goroutine: its hook calls wait for the walk to pick
// the page up. The race detector fails this test if they do not.
func TestPrefetchRateLimitHookRunsOnTheWalkingGoroutine(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1) - 1
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(int(100-i)))
		_, _ = fmt.Fprintf(w, `{"size":1,"start":%d,"limit":1,"isLastPage":%t,"values":[{"accountId":"c%d"}]}`, i, i == 3, i)
	}))
	t.Cleanup(srv.Close)
	var events []string // shared by the hook and the loop body, no lock on purpose
	c, err := servicedesk.NewClient(srv.URL, servicedesk.WithPrefetch(), servicedesk.WithRateLimitHook(func(rl servicedesk.RateLimit) {
		events = append(events, "hook "+strconv.Itoa(100-rl.Remaining))
	}))
	require.NoError(t, err)
	page := int32(0)
	for cust, err := range c.Customers.All(context.Background(), "1", nil) {
		require.NoError(t, err)
		// Give the next page's fetch time to finish while the body works.
		require.Eventually(t, func() bool { return n.Load() == min(4, page+2) }, 5*time.Second, time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		events = append(events, "body "+cust.AccountID[1:])
		page++
	}
	assert.Equal(t, []string{"hook 0", "body 0", "hook 1", "body 1", "hook 2", "body 2", "hook 3", "body 3"}, events)
}

// collectWithin is collect with a deadline, for walks whose guard against
// a server that never ends is what is tested: a regression fails the test
// instead of hanging the suite.
func collectWithin(t *testing.T, d time.Duration, seq func(func(servicedesk.Customer, error) bool)) ([]string, error) {
	t.Helper()
	type result struct {
		got []string
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		var r result
		for cust, err := range seq {
			if err != nil {
				r.err = err
				break
			}
			r.got = append(r.got, cust.AccountID)
			if ctx.Err() != nil {
				break
			}
		}
		done <- r
	}()
	select {
	case r := <-done:
		return r.got, r.err
	case <-time.After(d):
		cancel()
		<-done
		t.Fatalf("the walk did not end within %v", d)
		return nil, nil
	}
}

// TestAllStartGoingBackIsAnError: next links that go back to an earlier
// start, each URL new (so no record of seen links catches them), end the
// walk with an error.
func TestAllStartGoingBackIsAnError(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		start, _ := strconv.Atoi(r.URL.Query().Get("start"))
		next := start + 5
		if i%2 == 0 {
			next = start - 3 // back, with a fresh marker so the URL is new
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"size":1,"start":%d,"limit":1,"isLastPage":false,"values":[{"accountId":"c%d"}],`+
			`"_links":{"base":"http://%s/rest/servicedeskapi","next":"http://%s/rest/servicedeskapi/servicedesk/1/customer?start=%d&m=%d"}}`,
			start, start, r.Host, r.Host, next, i)
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL)
	require.NoError(t, err)
	got, err := collectWithin(t, 10*time.Second, c.Customers.All(context.Background(), "1", nil))
	require.ErrorIs(t, err, servicedesk.ErrInvalidResponse)
	assert.ErrorContains(t, err, "next page starts at 2, this one at 5")
	assert.Equal(t, []string{"c0", "c5"}, got)
}

// TestAllCircularLinksAreAnError: cursor links without a start, going
// round in a circle, end the walk with an error.
func TestAllCircularLinksAreAnError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"size":1,"limit":1,"isLastPage":false,"values":[{"accountId":"c%d"}],`+
			`"_links":{"base":"http://%s/rest/servicedeskapi","next":"http://%s/rest/servicedeskapi/servicedesk/1/customer?cursor=%d"}}`,
			cur, r.Host, r.Host, (cur+1)%3)
	}))
	t.Cleanup(srv.Close)
	c, err := servicedesk.NewClient(srv.URL)
	require.NoError(t, err)
	got, err := collectWithin(t, 10*time.Second, c.Customers.All(context.Background(), "1", nil))
	require.ErrorIs(t, err, servicedesk.ErrInvalidResponse)
	assert.ErrorContains(t, err, "already fetched")
	assert.Equal(t, []string{"c0", "c1", "c2", "c0"}, got, "the first page had no cursor; cursor=0 is new once")
}

func TestPrefetchErrorComesAfterTheCurrentPage(t *testing.T) {
	t.Parallel()
	d := &desk{total: 30, maxLimit: 10, fail: map[int]int{1: 404}}
	c, _ := d.serve(t, "", basicAuth(), servicedesk.WithPrefetch())
	got, err := collect(t, c.Customers.All(context.Background(), "1", nil))
	require.ErrorIs(t, err, servicedesk.ErrNotFound)
	assert.Equal(t, ids(0, 10), got)
}
