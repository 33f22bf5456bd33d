package redislimiter

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/servicedesk-go/servicedesk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordingLogger keeps the records written to it.
type recordingLogger struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingLogger) logger() *slog.Logger { return slog.New(h) }

func (h *recordingLogger) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingLogger) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingLogger) WithGroup(string) slog.Handler            { return h }

func (h *recordingLogger) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}

// count is how many records of level were written.
func (h *recordingLogger) count(level slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r.Level == level {
			n++
		}
	}
	return n
}

// TestRedisKilledMidRun: a fleet loses Redis halfway through an import and
// gets it back (empty) 1.5 s later. No call fails, no Wait takes longer
// than it may, each process says once that Redis is gone, and they go back
// to it. Each Wait is given at most 100 ms (and asked again when refused),
// so that its bound is one a Wait comes near: the call's 30 s never is.
func TestRedisKilledMidRun(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("an 8-second import")
	}
	r := ownRedis(t)
	log := &recordingLogger{}
	var restarted sync.WaitGroup
	restarted.Add(1)
	f := fleet{processes: 4, goroutines: 4, adds: 400, limit: 50, latency: 20 * time.Millisecond,
		shared: true, redis: r, prefix: prefix(t), logger: log, waitCap: 100 * time.Millisecond,
		halfway: func() {
			r.kill()
			go func() {
				defer restarted.Done()
				time.Sleep(1500 * time.Millisecond)
				if err := r.restart(); err != nil {
					t.Error(err)
				}
			}()
		}}
	res := f.run(t)
	restarted.Wait()
	t.Log(res)
	assert.Zero(t, res.failed, "failed calls: %v", res.errs)
	refused := 0
	for _, w := range res.waits {
		// The bound, plus one Redis operation's timeout and the scheduler's slack.
		if w.took > w.bound+r.opTimeout()+50*time.Millisecond {
			t.Errorf("a Wait took %v, allowed %v (%v)", w.took, w.bound, w.err)
		}
		if w.err != nil {
			refused++
		}
	}
	t.Logf("%d Waits, %d refused within 100 ms and made again", len(res.waits), refused)
	assert.Positive(t, refused, "the bound was one Waits came near")
	assert.Equal(t, f.processes, log.count(slog.LevelWarn), "one warning a process")
	assert.Positive(t, log.count(slog.LevelInfo), "Redis answers again")
	rdb, _ := r.client(t)
	keys, err := rdb.Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	assert.NotEmpty(t, keys, "the fleet went back to Redis")
	for _, k := range keys {
		// One hash tag: in a Cluster, one slot, so the scripts may touch them all.
		assert.True(t, strings.HasPrefix(k, "{"+f.prefix+"}"), k)
	}
	assertKeysExpire(t, r, f.prefix)
}

// blackHole accepts connections and never answers: a Redis that hangs.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go io.Copy(io.Discard, c) //nolint:errcheck
		}
	}()
	return ln.Addr().String()
}

// TestRedisThatHangsOrIsGoneNeverHoldsACall: a Redis that hangs or
// refuses connections costs the first call one operation (the limiter's
// own timeout, not go-redis's 3 s), and the calls after it none: they are
// paced in-process without asking Redis, counted by the commands the
// client sends (a probe aside, pushed out of the test here).
func TestRedisThatHangsOrIsGoneNeverHoldsACall(t *testing.T) {
	t.Parallel()
	down, err := freePort()
	require.NoError(t, err)
	for name, addr := range map[string]string{"hangs": blackHole(t), "refuses": down} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rdb := redis.NewClient(&redis.Options{Addr: addr}) // go-redis's defaults: 3 s read timeout, retries
			t.Cleanup(func() { rdb.Close() })
			sent := new(atomic.Int64)
			rdb.AddHook(countHook{sent})
			log := &recordingLogger{}
			lim := New(rdb, servicedesk.RateLimiterConfig{Cloud: true}, WithKeyPrefix(prefix(t)), WithLogger(log.logger())).(*limiter)
			lim.timing.probe = time.Hour
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // fails, not hangs, if Wait loops
			defer cancel()
			var first int64
			for i := range 20 {
				require.NoError(t, lim.Wait(ctx, addEp, time.Second))
				lim.Done(addEp, servicedesk.Outcome{StatusCode: 204, RateLimit: noHeaders()})
				if i == 0 {
					first = sent.Load()
					assert.Positive(t, first, "the first call asks Redis")
				}
			}
			assert.Equal(t, first, sent.Load(), "the later calls do not ask Redis")
			assert.Equal(t, 1, log.count(slog.LevelWarn), "one warning an outage")
			log.mu.Lock()
			msg := log.records[0].Message
			var cause string
			log.records[0].Attrs(func(a slog.Attr) bool {
				if a.Key == "error" {
					cause = a.Value.String()
				}
				return true
			})
			log.mu.Unlock()
			assert.True(t, strings.HasPrefix(msg, "redislimiter: Redis does not answer"), msg)
			if name == "hangs" {
				assert.Contains(t, cause, errTimeout.Error(), "the limiter's own timeout ended the first call's wait")
			}
		})
	}
}

// TestAnOutagePacesAtTheProcesssShare: a process that loses Redis paces at
// its share of what the fleet had learned.
func TestAnOutagePacesAtTheProcesssShare(t *testing.T) {
	t.Parallel()
	r := ownRedis(t)
	pfx := prefix(t)
	ctx := context.Background()
	var lims []*limiter
	for range 4 {
		l, _ := newLimiter(t, r, pfx, servicedesk.RateLimiterConfig{Cloud: true})
		require.NoError(t, l.Wait(ctx, listEp, time.Second)) // 5 a second, one at once
		lims = append(lims, l)
	}
	rl := noHeaders()
	rl.Policies = []servicedesk.RateLimitPolicy{{Name: "jira-burst-based", Quota: 40, Window: time.Second, Remaining: -1}}
	lims[0].Done(addEp, servicedesk.Outcome{StatusCode: 204, RateLimit: rl}) // Adds: 40 a second
	require.NoError(t, lims[3].Wait(ctx, addEp, 0))                          // this one learns it, and the fleet's size
	r.kill()

	// 10 a second for one of four: a bucket of 1, paced at 8 a second.
	n, err := admitNow(t, addEp, lims[3])
	assert.Equal(t, 1, n)
	apiErr := rateLimited(t, err)
	assert.InDelta(t, time.Second/8, apiErr.RetryAfter, float64(20*time.Millisecond))
}

// TestAnOutageKeepsTheProcesssShareAfterAnAnswer: an answer during an
// outage that announces the limit the fleet had learned (40 a second) does
// not give the process the whole of it: it keeps its share, a quarter
// (the answer went to the in-process limiter as it was, and the first to
// announce the limit set it to 40: four processes at 4× the limit).
func TestAnOutageKeepsTheProcesssShareAfterAnAnswer(t *testing.T) {
	t.Parallel()
	r := ownRedis(t)
	pfx := prefix(t)
	ctx := context.Background()
	var lims []*limiter
	for range 4 {
		l, _ := newLimiter(t, r, pfx, servicedesk.RateLimiterConfig{Cloud: true})
		require.NoError(t, l.Wait(ctx, listEp, time.Second))
		lims = append(lims, l)
	}
	rl := noHeaders()
	rl.Policies = []servicedesk.RateLimitPolicy{{Name: "jira-burst-based", Quota: 40, Window: time.Second, Remaining: -1}}
	announced := servicedesk.Outcome{StatusCode: 204, RateLimit: rl}
	lims[0].Done(addEp, announced)
	require.NoError(t, lims[3].Wait(ctx, addEp, 0))
	r.kill()

	require.NoError(t, lims[3].Wait(ctx, addEp, 0)) // the outage begins; paced at 8 a second
	lims[3].Done(addEp, announced)                  // the same limit, said again
	_, err := admitNow(t, addEp, lims[3])
	apiErr := rateLimited(t, err)
	assert.InDelta(t, time.Second/8, apiErr.RetryAfter, float64(20*time.Millisecond), "the process's share, 10 a second, paced at 8: %s", apiErr.Message)
}

// TestAnOutageKeepsDataCentersBucket: Data Center's bucket, the one limit
// a Data Center site has, paces the process in an outage too, at its share
// (nothing was paced: 50 requests at once).
func TestAnOutageKeepsDataCentersBucket(t *testing.T) {
	t.Parallel()
	r := ownRedis(t)
	ctx := context.Background()
	l, _ := newLimiter(t, r, prefix(t), servicedesk.RateLimiterConfig{})
	require.NoError(t, l.Wait(ctx, addEp, 0))
	l.Done(addEp, dataCenter(1, 10)) // 10 a second for everything: paced at 8, a bucket of 1
	require.NoError(t, l.Wait(ctx, addEp, time.Second))
	r.kill()
	n, err := admitNow(t, listEp, l) // another endpoint: the bucket is everything's
	assert.LessOrEqual(t, n, 2, "requests at once in an outage, from a fleet paced at 8 a second")
	apiErr := rateLimited(t, err)
	assert.InDelta(t, time.Second/8, apiErr.RetryAfter, float64(20*time.Millisecond), apiErr.Message)
}

// TestShareDividesWhatIsAnnounced: an answer read in an outage by one of
// four processes announces a quarter of each limit; what it says is left,
// and its pauses, are the site's.
func TestShareDividesWhatIsAnnounced(t *testing.T) {
	t.Parallel()
	reset := time.Now().Add(time.Minute)
	rl := servicedesk.RateLimit{Limit: 20, Remaining: 3, FillRate: 200, Interval: time.Second, RetryAfter: -1, Reason: "jira-burst-based",
		Policies: []servicedesk.RateLimitPolicy{
			{Name: "jira-burst-based", Quota: 40, Window: time.Second, Remaining: 5, Reset: reset},
			{Name: "global-app-quota", Quota: 65000, Window: time.Hour, Remaining: 0, Reset: reset},
		}}
	o := servicedesk.Outcome{StatusCode: 429, RateLimit: rl, Wait: time.Second}
	got := share(o, 4)
	assert.Equal(t, 4*time.Second, got.RateLimit.Policies[0].Window, "40 in 4 s: 10 a second")
	assert.Equal(t, time.Hour, got.RateLimit.Policies[1].Window, "a quota holds everyone")
	assert.Equal(t, 4*time.Second, got.RateLimit.Interval, "200 in 4 s: 50 a second")
	assert.Equal(t, time.Second, o.RateLimit.Policies[0].Window, "the caller's answer unchanged")
	got.RateLimit.Policies, got.RateLimit.Interval, o.RateLimit.Policies, o.RateLimit.Interval = nil, 0, nil, 0
	assert.Equal(t, o, got, "the rest as it was")

	burst := outcome429("jira-burst-based", time.Second)
	burst.RateLimit.Limit = 40 // per second, on a burst 429
	got = share(burst, 4)
	require.Len(t, got.RateLimit.Policies, 1)
	assert.Equal(t, servicedesk.RateLimitPolicy{Name: "jira-burst-based", Quota: 40, Window: 4 * time.Second, Remaining: -1}, got.RateLimit.Policies[0])
	assert.Equal(t, o, share(o, 1), "one process: the whole")
}
