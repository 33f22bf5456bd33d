package redislimiter

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servicedesk-go/servicedesk"
)

// BenchmarkWait is what a request costs the limiter when it need not wait:
// Wait, then Done with an answer that says nothing new. impl=redis is this
// limiter on the tests' Redis (a local redis-server), impl=governor the
// SDK's in-process one, impl=ping one PING to the same Redis with the same
// client (a round trip, for scale). cmds/op counts the commands sent to
// Redis (round trips; a script is one).
func BenchmarkWait(b *testing.B) {
	ok := servicedesk.Outcome{StatusCode: 204, RateLimit: noHeaders()}
	b.Run("impl=ping", func(b *testing.B) {
		rdb, cmds := shared.client(b)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if err := rdb.Ping(ctx).Err(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cmds.Load())/float64(b.N), "cmds/op")
	})
	for _, impl := range []string{"redis", "governor"} {
		b.Run("impl="+impl, func(b *testing.B) {
			lim, cmds := benchLimiter(b, impl)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := lim.Wait(ctx, addEp, time.Second); err != nil {
					b.Fatal(err)
				}
				lim.Done(addEp, ok)
			}
			b.ReportMetric(float64(cmds.Load())/float64(b.N), "cmds/op")
		})
	}
}

// BenchmarkWaitParallel is BenchmarkWait from GOMAXPROCS goroutines.
func BenchmarkWaitParallel(b *testing.B) {
	ok := servicedesk.Outcome{StatusCode: 204, RateLimit: noHeaders()}
	for _, impl := range []string{"redis", "governor"} {
		b.Run("impl="+impl, func(b *testing.B) {
			lim, cmds := benchLimiter(b, impl)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if err := lim.Wait(ctx, addEp, time.Second); err != nil {
						b.Error(err)
						return
					}
					lim.Done(addEp, ok)
				}
			})
			b.ReportMetric(float64(cmds.Load())/float64(b.N), "cmds/op")
		})
	}
}

// benchLimiter is an unpaced limiter (nothing known of the site's limits)
// whose scripts are loaded, and its command count from now on.
func benchLimiter(b *testing.B, impl string) (servicedesk.RateLimiter, *atomic.Int64) {
	if impl == "governor" {
		return servicedesk.NewRateLimiter(servicedesk.RateLimiterConfig{}), new(atomic.Int64)
	}
	l, cmds := newLimiter(b, shared, prefix(b), servicedesk.RateLimiterConfig{})
	for _, ep := range []servicedesk.Endpoint{addEp, listEp} {
		if err := l.Wait(context.Background(), ep, time.Second); err != nil {
			b.Fatal(err)
		}
	}
	l.Done(addEp, servicedesk.Outcome{StatusCode: 204, RateLimit: noHeaders()})
	l.Done(listEp, outcome429("jira-burst-based", time.Millisecond)) // loads learnScript
	cmds.Store(0)
	return l, cmds
}

// BenchmarkFleet: 500 Adds from 4 or 16 processes (8 goroutines each, as
// many as a client lets on the wire by default)
// against a site that allows 50 a second with 20 ms latency, starting from
// Atlassian's documented 100 a second. impl=own gives each process its own
// in-process governor; impl=redis shares this limiter. Metrics: the share
// of answers that were 429s, failed calls, successful Adds a second ÷ the
// limit, Redis commands per answer.
func BenchmarkFleet(b *testing.B) {
	for _, processes := range []int{4, 16} {
		for _, impl := range []string{"own", "redis"} {
			b.Run(fmt.Sprintf("processes=%d/impl=%s", processes, impl), func(b *testing.B) {
				var throttled, answers, failed, ok int
				var elapsed time.Duration
				var cmds int64
				for range b.N {
					r := fleet{processes: processes, goroutines: 8, adds: 500, limit: 50, latency: 20 * time.Millisecond,
						shared: impl == "redis", redis: shared, prefix: prefix(b)}.run(b)
					throttled, answers, failed, ok = throttled+r.throttled, answers+r.answers, failed+r.failed, ok+r.ok
					elapsed += r.elapsed
					cmds += r.redisCommands
				}
				b.ReportMetric(100*float64(throttled)/float64(answers), "429-%")
				b.ReportMetric(float64(failed)/float64(b.N), "failed")
				b.ReportMetric(float64(ok)/elapsed.Seconds()/50, "x-limit")
				b.ReportMetric(float64(cmds)/float64(answers), "cmds/answer")
			})
		}
	}
}
