package redislimiter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// A fleet is processes adding customers to one desk of the fake JSM, which
// limits Adds to limit a second (fixed one-second windows, announced in
// 429s) and answers after latency. Each process has its own go-redis
// client, limiter and servicedesk.Client, as separate processes would.
type fleet struct {
	processes  int
	goroutines int // a process
	adds       int
	limit      int
	latency    time.Duration
	// shared: every process's limiter is New on redis with prefix; else
	// each has its own in-process governor.
	shared bool
	redis  *testRedis
	prefix string
	// logger, when set, is every limiter's.
	logger *recordingLogger
	// halfway, when set, runs once half the adds are done.
	halfway func()
	// waitCap, when set, is the most a limiter's Wait is given; a Wait
	// refused within it is made again when its turn is nearer (see
	// recordingLimiter), so that no Wait has long and none fails a call.
	waitCap time.Duration
}

type fleetResult struct {
	ok, failed, throttled, answers int
	elapsed                        time.Duration
	redisCommands                  int64
	waits                          []waited // every Wait of every limiter
	errs                           []error  // the first few failures
}

// waited is one call to a limiter's Wait: how long it took and how long it
// could.
type waited struct {
	took, bound time.Duration
	err         error
}

func (f fleet) run(tb testing.TB) fleetResult {
	tb.Helper()
	srv := servicedesktest.NewServer(
		servicedesktest.WithBurstLimit(servicedesktest.BurstLimit{Method: "POST", Path: "/rest/servicedeskapi/servicedesk/*/customer", Requests: f.limit}),
		servicedesktest.WithLatency(f.latency))
	defer srv.Close()
	ids := servicedesk.CustomerIDs{AccountIDs: []string{srv.AddCustomer("", "bulk@example.com", "Bulk").AccountID}}

	var r fleetResult
	var mu sync.Mutex
	var commands []*atomic.Int64
	clients := make([]*servicedesk.Client, f.processes)
	cfg := servicedesk.RateLimiterConfig{Cloud: true} // Atlassian's documented 100 a second, where the site allows 50
	for p := range clients {
		var lim servicedesk.RateLimiter
		if f.shared {
			var opts []Option
			if f.logger != nil {
				opts = append(opts, WithLogger(f.logger.logger()))
			}
			l, n := newLimiter(tb, f.redis, f.prefix, cfg, opts...)
			commands = append(commands, n)
			lim = l
		} else {
			lim = servicedesk.NewRateLimiter(cfg)
		}
		lim = &recordingLimiter{RateLimiter: lim, cap: f.waitCap, record: func(w waited) {
			mu.Lock()
			r.waits = append(r.waits, w)
			mu.Unlock()
		}}
		c, err := servicedesk.NewClient(srv.URL,
			servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken),
			servicedesk.WithRateLimiter(lim))
		if err != nil {
			tb.Fatal(err)
		}
		clients[p] = c
	}

	jobs := make(chan int, f.adds)
	for i := range f.adds {
		jobs <- i
	}
	close(jobs)
	var halfway sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range clients {
		for range f.goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					if i == f.adds/2 && f.halfway != nil {
						halfway.Do(f.halfway)
					}
					err := c.Customers.Add(context.Background(), "1", ids)
					mu.Lock()
					if err != nil {
						r.failed++
						if len(r.errs) < 5 {
							r.errs = append(r.errs, err)
						}
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	for _, req := range srv.Requests() {
		r.answers++
		switch req.Status {
		case http.StatusNoContent:
			r.ok++
		case http.StatusTooManyRequests:
			r.throttled++
		}
	}
	for _, n := range commands {
		r.redisCommands += n.Load()
	}
	return r
}

func (r fleetResult) throttledShare() float64 { return float64(r.throttled) / float64(r.answers) }

func (r fleetResult) ofLimit(limit int) float64 {
	return float64(r.ok) / r.elapsed.Seconds() / float64(limit)
}

func (r fleetResult) String() string {
	return fmt.Sprintf("%d ok, %d failed %v, %d of %d answers 429 (%.1f %%), %.1f a second in %v, %.1f Redis commands a call",
		r.ok, r.failed, r.errs, r.throttled, r.answers, 100*r.throttledShare(), float64(r.ok)/r.elapsed.Seconds(),
		r.elapsed.Round(time.Millisecond), float64(r.redisCommands)/float64(r.answers))
}

// recordingLimiter records how long each Wait took, and its bound. With
// a cap, it gives each Wait at most cap of the call's maxWait and, when
// that Wait is refused, sleeps until the turn it was refused is within cap
// and asks again, while the call's maxWait lasts: a caller of its own
// (the client fails a call its limiter refused).
type recordingLimiter struct {
	servicedesk.RateLimiter
	cap    time.Duration
	record func(waited)
}

func (l *recordingLimiter) Wait(ctx context.Context, ep servicedesk.Endpoint, maxWait time.Duration) error {
	deadline := time.Now().Add(maxWait)
	for {
		start := time.Now()
		left := time.Until(deadline)
		wait := max(left, 0)
		if l.cap > 0 {
			wait = min(wait, l.cap)
		}
		bound := wait
		if d, ok := ctx.Deadline(); ok {
			bound = min(bound, time.Until(d))
		}
		err := l.RateLimiter.Wait(ctx, ep, wait)
		l.record(waited{took: time.Since(start), bound: bound, err: err})
		var apiErr *servicedesk.Error
		if err == nil || wait >= left || !errors.As(err, &apiErr) || apiErr.StatusCode != 429 {
			return err
		}
		time.Sleep(max(apiErr.RetryAfter-wait, time.Millisecond))
	}
}

// TestAFleetPacesLikeOneClient: 16 processes, 8 goroutines each, against a
// site that allows 50 Adds a second, starting from Atlassian's documented
// 100: the fleet wastes at most 2 % of its requests on 429s, loses no
// call and reaches 0.75× the limit. (Each with its own governor, 16
// processes waste about half.)
func TestAFleetPacesLikeOneClient(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a 12-second import")
	}
	log := &recordingLogger{}
	f := fleet{processes: 16, goroutines: 8, adds: 500, limit: 50, latency: 20 * time.Millisecond,
		shared: true, redis: shared, prefix: prefix(t), logger: log}
	r := f.run(t)
	t.Log(r)
	if n := log.count(slog.LevelWarn); n > 0 {
		t.Logf("Redis was slow or down %d times", n)
	}
	if r.failed > 0 {
		t.Errorf("%d calls failed: %v", r.failed, r.errs)
	}
	if r.throttledShare() > 0.02 {
		t.Errorf("%.1f %% of answers were 429s, want at most 2 %%", 100*r.throttledShare())
	}
	if x := r.ofLimit(f.limit); x < 0.75 {
		t.Errorf("%.2f× the limit, want at least 0.75×", x)
	}
	assertKeysExpire(t, shared, f.prefix)
}

// assertKeysExpire asserts that the keys of a prefix all expire.
func assertKeysExpire(t *testing.T, r *testRedis, pfx string) {
	t.Helper()
	ctx := context.Background()
	rdb, _ := r.client(t)
	keys, err := rdb.Keys(ctx, "{"+pfx+"}*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Errorf("no keys under %q", pfx)
	}
	for _, k := range keys {
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > keyTTL+maxPause+time.Minute {
			t.Errorf("%s: TTL %v", k, ttl)
		}
	}
}

// TestAQuota429ReachesEveryProcessAtOnce: one process's call meets the
// spent quota; the others' calls, to any endpoint, fail at once without
// being sent, until the reset. Clients of another site (prefix) go on.
func TestAQuota429ReachesEveryProcessAtOnce(t *testing.T) {
	t.Parallel()
	srv := servicedesktest.NewServer(servicedesktest.WithQuota(servicedesktest.Quota{Points: 3, Window: time.Hour}))
	defer srv.Close()
	pfx := prefix(t)
	client := func(pfx string) *servicedesk.Client {
		lim, _ := newLimiter(t, shared, pfx, servicedesk.RateLimiterConfig{Cloud: true})
		c, err := servicedesk.NewClient(srv.URL,
			servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken),
			servicedesk.WithRateLimiter(lim), servicedesk.WithRateLimitWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b, other := client(pfx), client(pfx), client(prefix(t))
	ctx := context.Background()
	ids := servicedesk.CustomerIDs{AccountIDs: []string{srv.AddCustomer("", "fred@example.com", "Fred").AccountID}}

	for range 3 {
		if err := a.Customers.Add(ctx, "1", ids); err != nil {
			t.Fatal(err)
		}
	}
	err := a.Customers.Add(ctx, "1", ids) // the quota is spent: a 429 until the hour is over
	rateLimited(t, err)
	sent := len(srv.Requests())

	start := time.Now()
	_, err = b.Customers.List(ctx, "1", nil)
	apiErr := rateLimited(t, err)
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("the refusal took %v", took)
	}
	if apiErr.Attempts != 0 || apiErr.RateLimit.Reason != "jira-quota-global-based" || apiErr.RetryAfter < 50*time.Minute {
		t.Errorf("Attempts %d, Reason %q, RetryAfter %v: want a refusal until the reset", apiErr.Attempts, apiErr.RateLimit.Reason, apiErr.RetryAfter)
	}
	if n := len(srv.Requests()); n != sent {
		t.Errorf("%d requests sent after the quota 429", n-sent)
	}

	// Another site's limiter knows nothing of it: its call is sent (and meets
	// the same fake's spent quota).
	_, err = other.Customers.List(ctx, "1", nil)
	if len(srv.Requests()) == sent {
		t.Errorf("another prefix was paused too: %v", err)
	}
}
