package servicedesk_test

// Benchmarks: the SDK beside a raw net/http + encoding/json baseline doing
// the same work (same headers, same body, keep-alive, every field decoded)
// against one in-process loopback server with pre-rendered bodies. Run with
// `make bench`; benchstat -col /impl turns the pairs into ratios.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// benchServer serves pre-rendered answers. A desk page is a fixed block of
// pageSize customers (every field set: 72,345 bytes for 50) behind a small
// header with start, isLastPage and the next link; total bounds the desk.
type benchServer struct {
	*httptest.Server
	customer []byte // one rendered customer, the Create answer
	values   []byte // `"values":[...]` for a full page
	total    atomic.Int64
	latency  time.Duration
	fail503  atomic.Int32 // answer this many 503s first
}

const pageSize = 50

func newBenchServer(b *testing.B) *benchServer {
	b.Helper()
	s := &benchServer{}
	s.total.Store(pageSize)
	cust := fred()
	s.customer, _ = json.Marshal(cust)
	var buf bytes.Buffer
	buf.WriteString(`"values":[`)
	for i := 0; i < pageSize; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		c := cust
		c.AccountID = fmt.Sprintf("qm:a713c8ea-1075-4e30-9d96-891a7d181739:%023d", i)
		c.Name, c.Key = c.AccountID, c.AccountID
		one, _ := json.Marshal(c)
		buf.Write(one)
	}
	buf.WriteByte(']')
	s.values = buf.Bytes()
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	b.Cleanup(s.Close)
	return s
}

func (s *benchServer) serve(w http.ResponseWriter, r *http.Request) {
	if s.latency > 0 {
		time.Sleep(s.latency)
	}
	_, _ = io.Copy(io.Discard, r.Body)
	if s.fail503.Load() > 0 {
		s.fail503.Add(-1)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	switch r.Method {
	case http.MethodPost:
		if r.URL.Path == "/rest/servicedeskapi/customer" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(s.customer)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet:
		start, _ := strconv.Atoi(r.URL.Query().Get("start"))
		total := int(s.total.Load())
		last := start+pageSize >= total
		w.Header().Set("Content-Type", "application/json")
		var head []byte
		head = fmt.Appendf(head, `{"_expands":[],"size":%d,"start":%d,"limit":%d,"isLastPage":%t,"_links":{"base":"%s/rest/servicedeskapi","context":""`,
			pageSize, start, pageSize, last, s.URL)
		if !last {
			head = fmt.Appendf(head, `,"next":"%s%s?limit=%d&start=%d"`, s.URL, r.URL.Path, pageSize, start+pageSize)
		}
		head = append(head, "},"...)
		_, _ = w.Write(head)
		_, _ = w.Write(s.values)
		_, _ = w.Write([]byte("}"))
	}
}

func (s *benchServer) client(b *testing.B, opts ...servicedesk.Option) *servicedesk.Client {
	b.Helper()
	opts = append([]servicedesk.Option{
		servicedesk.WithBasicAuth(testEmail, testToken),
		servicedesk.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}),
	}, opts...)
	c, err := servicedesk.NewClient(s.URL, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// The raw baseline: what a careful hand-written client does.

type rawCustomer struct {
	AccountID    string `json:"accountId"`
	Name         string `json:"name"`
	Key          string `json:"key"`
	EmailAddress string `json:"emailAddress"`
	DisplayName  string `json:"displayName"`
	Active       bool   `json:"active"`
	TimeZone     string `json:"timeZone"`
	Links        struct {
		Self       string            `json:"self"`
		JiraRest   string            `json:"jiraRest"`
		AvatarURLs map[string]string `json:"avatarUrls"`
	} `json:"_links"`
}

type rawPage struct {
	Size       int           `json:"size"`
	Start      int           `json:"start"`
	Limit      int           `json:"limit"`
	IsLastPage bool          `json:"isLastPage"`
	Values     []rawCustomer `json:"values"`
	Expands    []string      `json:"_expands"`
	Links      struct {
		Self, Base, Context, Next, Prev string
	} `json:"_links"`
}

type rawClient struct {
	hc   *http.Client
	base string
	auth string
}

func newRawClient(s *benchServer) *rawClient {
	return &rawClient{
		hc:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
		base: s.URL,
		auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(testEmail+":"+testToken)),
	}
}

func (r *rawClient) do(method, u string, body []byte, experimental bool, v any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "raw/1")
	req.Header.Set("Authorization", r.auth)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if experimental {
		req.Header.Set("X-ExperimentalApi", "opt-in")
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		_, _ = io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if v != nil {
		return json.NewDecoder(resp.Body).Decode(v)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

func (r *rawClient) create() (*rawCustomer, error) {
	body, _ := json.Marshal(map[string]string{"email": "fred@example.com", "displayName": "Fred F. User"})
	c := new(rawCustomer)
	return c, r.do(http.MethodPost, r.base+"/rest/servicedeskapi/customer", body, false, c)
}

func (r *rawClient) list(start int) (*rawPage, error) {
	q := url.Values{"limit": {strconv.Itoa(pageSize)}}
	if start > 0 {
		q.Set("start", strconv.Itoa(start))
	}
	p := new(rawPage)
	return p, r.do(http.MethodGet, r.base+"/rest/servicedeskapi/servicedesk/1/customer?"+q.Encode(), nil, true, p)
}

var benchIDs = servicedesk.CustomerIDs{AccountIDs: []string{fredID, "qm:second"}}

func BenchmarkCreate(b *testing.B) {
	s := newBenchServer(b)
	req := servicedesk.CreateCustomerRequest{Email: "fred@example.com", DisplayName: "Fred F. User"}
	b.Run("impl=sdk", func(b *testing.B) {
		c, ctx := s.client(b), context.Background()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := c.Customers.Create(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=raw", func(b *testing.B) {
		r := newRawClient(s)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := r.create(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkList(b *testing.B) {
	s := newBenchServer(b)
	s.total.Store(1 << 30)
	b.Run("impl=sdk", func(b *testing.B) {
		c, ctx := s.client(b), context.Background()
		opts := &servicedesk.ListCustomersOptions{Limit: pageSize}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			p, err := c.Customers.List(ctx, "1", opts)
			if err != nil || len(p.Values) != pageSize {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=raw", func(b *testing.B) {
		r := newRawClient(s)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			p, err := r.list(0)
			if err != nil || len(p.Values) != pageSize {
				b.Fatal(err)
			}
		}
	})
}

func benchChange(b *testing.B, method string) {
	s := newBenchServer(b)
	b.Run("impl=sdk", func(b *testing.B) {
		c, ctx := s.client(b), context.Background()
		call := c.Customers.Add
		if method == http.MethodDelete {
			call = c.Customers.Remove
		}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := call(ctx, "1", benchIDs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=raw", func(b *testing.B) {
		r := newRawClient(s)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			body, _ := json.Marshal(benchIDs) // the caller's ids, each call
			if err := r.do(method, r.base+"/rest/servicedeskapi/servicedesk/1/customer", body, method == http.MethodDelete, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAdd(b *testing.B)    { benchChange(b, http.MethodPost) }
func BenchmarkRemove(b *testing.B) { benchChange(b, http.MethodDelete) }

// heapSampler tracks the peak of the live heap (as marked by the last GC)
// above where it started: what the walk retains, not garbage awaiting GC.
type heapSampler struct {
	sample []metrics.Sample
	base   uint64
	peak   uint64
}

func newHeapSampler() *heapSampler {
	runtime.GC()
	h := &heapSampler{sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	metrics.Read(h.sample)
	h.base = h.sample[0].Value.Uint64()
	return h
}

func (h *heapSampler) read() {
	metrics.Read(h.sample)
	if v := h.sample[0].Value.Uint64(); v > h.base && v-h.base > h.peak {
		h.peak = v - h.base
	}
}

func BenchmarkWalk(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("customers=%d/impl=sdk", n), func(b *testing.B) { benchWalkSDK(b, n) })
		b.Run(fmt.Sprintf("customers=%d/impl=sdk-prefetch", n), func(b *testing.B) { benchWalkSDK(b, n, servicedesk.WithPrefetch()) })
		b.Run(fmt.Sprintf("customers=%d/impl=raw", n), func(b *testing.B) { benchWalkRaw(b, n) })
	}
}

func benchWalkSDK(b *testing.B, n int, opts ...servicedesk.Option) {
	s := newBenchServer(b)
	s.total.Store(int64(n))
	c, ctx := s.client(b, opts...), context.Background()
	heap := newHeapSampler()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := 0
		for _, err := range c.Customers.All(ctx, "1", nil) {
			if err != nil {
				b.Fatal(err)
			}
			if got++; got%pageSize == 0 {
				heap.read()
			}
		}
		if got != n {
			b.Fatalf("walked %d customers, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/customer")
	b.ReportMetric(float64(heap.peak)/1024, "peak-live-heap-KB")
}

func benchWalkRaw(b *testing.B, n int) {
	s := newBenchServer(b)
	s.total.Store(int64(n))
	r := newRawClient(s)
	heap := newHeapSampler()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := 0
		for start := 0; ; {
			p, err := r.list(start)
			if err != nil {
				b.Fatal(err)
			}
			got += len(p.Values)
			heap.read()
			if p.IsLastPage {
				break
			}
			start += p.Size
		}
		if got != n {
			b.Fatalf("walked %d customers, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/customer")
	b.ReportMetric(float64(heap.peak)/1024, "peak-live-heap-KB")
}

// BenchmarkWalkLatency: every request costs the server 5 ms; the walk
// should cost pages × 5 ms and not much more. The metric is that ratio.
func BenchmarkWalkLatency(b *testing.B) {
	const n, latency = 1_000, 5 * time.Millisecond
	pages := (n + pageSize - 1) / pageSize
	for _, prefetch := range []bool{false, true} {
		name := "impl=sdk"
		if prefetch {
			name = "impl=sdk-prefetch"
		}
		b.Run(name, func(b *testing.B) {
			s := newBenchServer(b)
			s.total.Store(n)
			s.latency = latency
			var opts []servicedesk.Option
			if prefetch {
				opts = append(opts, servicedesk.WithPrefetch())
			}
			c, ctx := s.client(b, opts...), context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, err := range c.Customers.All(ctx, "1", nil) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(time.Duration(pages)*latency), "x-pages*latency")
		})
	}
	b.Run("impl=raw", func(b *testing.B) {
		s := newBenchServer(b)
		s.total.Store(n)
		s.latency = latency
		r := newRawClient(s)
		for i := 0; i < b.N; i++ {
			for start := 0; ; {
				p, err := r.list(start)
				if err != nil {
					b.Fatal(err)
				}
				if p.IsLastPage {
					break
				}
				start += p.Size
			}
		}
		b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(time.Duration(pages)*latency), "x-pages*latency")
	})
	// The floor: the same server's latency alone (its sleep overshoots
	// 5 ms by the timer's slack), with no body to transfer or decode.
	b.Run("impl=floor", func(b *testing.B) {
		s := newBenchServer(b)
		s.latency = latency
		r := newRawClient(s)
		for i := 0; i < b.N; i++ {
			for p := 0; p < pages; p++ {
				if err := r.do(http.MethodDelete, s.URL+"/x", nil, false, nil); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(time.Duration(pages)*latency), "x-pages*latency")
	})
}

func BenchmarkConnectJWT(b *testing.B) {
	s := newBenchServer(b)
	b.Run("impl=sdk", func(b *testing.B) {
		c, err := servicedesk.NewClient(s.URL, servicedesk.WithConnectJWT("com.example.app", "shared-secret"),
			servicedesk.WithHTTPClient(&http.Client{Transport: &http.Transport{}}))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := c.Customers.Add(context.Background(), "1", benchIDs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRetry: one 503 then success, with a 1 ms wait.
func BenchmarkRetry(b *testing.B) {
	s := newBenchServer(b)
	c := s.client(b, servicedesk.WithRetryWait(time.Millisecond, time.Millisecond))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.fail503.Store(1)
		if err := c.Customers.Add(context.Background(), "1", benchIDs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBulkAdd: an import of 500 Adds from many goroutines against a
// burst limit of 50 Adds a second on the fake JSM, counted as fixed
// windows, a sliding window or a token bucket, at 20 ms and 250 ms of
// latency; the limit announced only in 429s (X-RateLimit-Limit), on every
// answer, or not at all (429s with Retry-After alone). impl=sdk is the
// client as it comes; impl=naive has no rate limiter and no bound on
// requests in flight: it only retries 429s, waiting out Retry-After.
// Metrics: successful Adds a second ÷ the limit, the share of answers that
// were 429s, calls that failed, and the 99th percentile of call latency.
func BenchmarkBulkAdd(b *testing.B) {
	const limit, adds = 50, 500
	type bulkCase struct {
		kind     string
		announce string
		latency  time.Duration
		conc     int
	}
	var cases []bulkCase
	for _, kind := range []string{"fixed", "sliding", "bucket"} {
		for _, latency := range []time.Duration{20 * time.Millisecond, 250 * time.Millisecond} {
			for _, conc := range []int{8, 32, 128} {
				cases = append(cases, bulkCase{kind, "429s", latency, conc})
			}
		}
	}
	for _, announce := range []string{"always", "nothing"} {
		for _, conc := range []int{8, 128} {
			cases = append(cases, bulkCase{"fixed", announce, 20 * time.Millisecond, conc})
		}
	}
	kinds := map[string]servicedesktest.LimitKind{"fixed": servicedesktest.FixedWindow, "sliding": servicedesktest.SlidingWindow, "bucket": servicedesktest.TokenBucket}
	announces := map[string]servicedesktest.Announce{"429s": servicedesktest.AnnounceOn429, "always": servicedesktest.AnnounceAlways, "nothing": servicedesktest.AnnounceNothing}
	for _, bc := range cases {
		for _, impl := range []string{"sdk", "naive"} {
			name := fmt.Sprintf("limit=%s/announce=%s/latency=%v/conc=%d/impl=%s", bc.kind, bc.announce, bc.latency, bc.conc, impl)
			b.Run(name, func(b *testing.B) {
				var opts []servicedesk.Option
				if impl == "naive" {
					opts = append(opts, servicedesk.WithRateLimiter(nil), servicedesk.WithMaxInFlight(1<<20))
				}
				srvOpts := []servicedesktest.Option{
					servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{Method: "POST", Path: "/rest/servicedeskapi/servicedesk/*/customer",
						Requests: limit, Kind: kinds[bc.kind]}),
					servicedesktest.WithAnnounce(announces[bc.announce]),
					servicedesktest.WithLatency(bc.latency),
				}
				var ok, throttled, failed, answers, steadyOK int
				var latencies []time.Duration
				var elapsed, steady time.Duration
				for i := 0; i < b.N; i++ {
					r := bulkAdd(b, srvOpts, adds, bc.conc, opts...)
					ok, throttled, failed, answers = ok+r.ok, throttled+r.throttled, failed+r.failed, answers+r.answers
					latencies = append(latencies, r.latencies...)
					elapsed += r.elapsed
					steadyOK, steady = steadyOK+r.steadyOK, steady+r.steady
				}
				slices.Sort(latencies)
				b.ReportMetric(float64(ok)/elapsed.Seconds()/limit, "x-limit")
				b.ReportMetric(float64(steadyOK)/steady.Seconds()/limit, "x-limit-steady")
				b.ReportMetric(100*float64(throttled)/float64(answers), "429-%")
				b.ReportMetric(float64(failed)/float64(b.N), "failed")
				b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}

type bulkResult struct {
	ok, throttled, failed, answers int
	latencies                      []time.Duration
	elapsed                        time.Duration
	// Once the limit is learnt: Adds served from 4 s after the start to
	// the last full second of the run, and that span.
	steadyOK int
	steady   time.Duration
}

func bulkAdd(b *testing.B, srvOpts []servicedesktest.Option, adds, conc int, opts ...servicedesk.Option) bulkResult {
	srv := servicedesktest.NewServer(srvOpts...)
	defer srv.Close()
	id := srv.AddCustomer("", "bulk@example.com", "Bulk").AccountID
	c, err := servicedesk.NewClient(srv.URL, append([]servicedesk.Option{
		servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken),
	}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	ids := servicedesk.CustomerIDs{AccountIDs: []string{id}}
	var mu sync.Mutex
	var r bulkResult
	jobs := make(chan struct{}, adds)
	for i := 0; i < adds; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				t := time.Now()
				err := c.Customers.Add(context.Background(), "1", ids)
				d := time.Since(t)
				mu.Lock()
				r.latencies = append(r.latencies, d)
				if err != nil {
					r.failed++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	from, to := start.Add(4*time.Second), start.Add(r.elapsed.Truncate(time.Second))
	for _, req := range srv.Requests() {
		r.answers++
		switch req.Status {
		case http.StatusNoContent:
			r.ok++
			if !req.At.Before(from) && req.At.Before(to) {
				r.steadyOK++
			}
		case http.StatusTooManyRequests:
			r.throttled++
		}
	}
	r.steady = max(to.Sub(from), time.Millisecond)
	return r
}
