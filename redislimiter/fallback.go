package redislimiter

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/internal/limits"
)

// outage is a time when Redis does not answer: requests are paced by an
// in-process limiter until a probe finds Redis answering again.
type outage struct {
	since     time.Time
	fallback  servicedesk.RateLimiter
	fleet     int          // the processes that share the limits, as last counted
	lastProbe atomic.Int64 // unix nanoseconds
}

// fail starts an outage after err, unless one is on, and returns the
// outage on.
func (l *limiter) fail(err error) *outage {
	if cur := l.outage.Load(); cur != nil {
		return cur
	}
	fleet := int(max(1, l.fleet.Load()))
	o := &outage{since: time.Now(), fallback: l.newFallback(fleet), fleet: fleet}
	o.lastProbe.Store(o.since.UnixNano())
	if !l.outage.CompareAndSwap(nil, o) {
		if cur := l.outage.Load(); cur != nil {
			return cur // another goroutine's
		}
		return o // begun and ended meanwhile: this request is paced in-process all the same
	}
	l.log(slog.LevelWarn, "redislimiter: Redis does not answer; pacing in this process alone until it does",
		slog.String("key_prefix", l.prefix), slog.String("error", err.Error()))
	return o
}

// newFallback is the in-process limiter of an outage: it paces each
// endpoint this process knows, and Data Center's bucket, at its share of
// what the fleet was paced at (the limit divided by the fleet, the
// processes seen lately), so that a fleet that loses Redis keeps near the
// limit instead of each process spending all of it. Answers keep to the
// share too (see share).
func (l *limiter) newFallback(processes int) servicedesk.RateLimiter {
	fleet := float64(processes)
	rates := map[servicedesk.Endpoint]float64{}
	for ep, n := range l.cfg.Rates {
		if n > 0 {
			rates[ep] = n / fleet
		}
	}
	l.mu.Lock()
	eps := make([]*endpoint, 0, len(l.eps))
	for _, e := range l.eps {
		eps = append(eps, e)
	}
	l.mu.Unlock()
	var dc state // Data Center's bucket, the slowest any reply said
	var dcEp servicedesk.Endpoint
	for _, e := range eps {
		st := e.state()
		n := st.limit
		if st.cut {
			n = st.rate
		}
		if !st.known {
			n = e.start
		}
		if n > 0 {
			rates[e.ep] = n / fleet
		}
		if st.globalLimit > 0 && (dc.globalLimit == 0 || st.globalLimit < dc.globalLimit) {
			dc, dcEp = st, e.ep
		}
	}
	fallback := servicedesk.NewRateLimiter(servicedesk.RateLimiterConfig{Cloud: l.cfg.Cloud, Rates: rates})
	if dc.globalLimit > 0 {
		// RateLimiterConfig has no field for Data Center's bucket: the
		// governor learns it from an answer, as it would from the site's,
		// of the process's share of the fill (to a millionth), bounded by
		// the fleet's burst. Answers during the outage say the same, shared
		// alike, and change nothing.
		fallback.Done(dcEp, servicedesk.Outcome{StatusCode: 200, RateLimit: servicedesk.RateLimit{
			Limit: dc.globalBurst + 1, Remaining: -1, RetryAfter: -1,
			FillRate: int(math.Round(dc.globalLimit * 1e6)), Interval: time.Duration(processes) * 1e6 * time.Second}})
	}
	return fallback
}

// share is an answer as the fallback of an outage is to read it, for a
// process that paces its share of limits that a fleet of that many
// processes shares: each limit it announces is the fleet's, and is
// divided among them (a policy's window, Data Center's interval, made
// that many times longer; the per-second limit of a burst 429 taken as a
// policy over that many seconds); what is left, a pause, a 429, hold for
// every process as they are.
func share(o servicedesk.Outcome, fleet int) servicedesk.Outcome {
	if fleet <= 1 {
		return o
	}
	rl := o.RateLimit
	rl.Policies = slices.Clone(rl.Policies)
	announced := false
	for i := range rl.Policies {
		p := &rl.Policies[i]
		if !limits.IsQuota(p.Name) && p.Quota > 0 && p.Window > 0 {
			p.Window *= time.Duration(fleet)
			announced = true
		}
	}
	if rl.FillRate > 0 && rl.Interval > 0 {
		rl.Interval *= time.Duration(fleet)
		announced = true
	}
	if !announced && rl.Reason == "jira-burst-based" && rl.Limit > 0 {
		rl.Policies = append(rl.Policies, servicedesk.RateLimitPolicy{Name: rl.Reason, Quota: rl.Limit,
			Window: time.Duration(fleet) * time.Second, Remaining: -1})
	}
	o.RateLimit = rl
	return o
}

// probe asks Redis, at most once every probeEvery and in the background,
// whether it answers again; when it does, the outage ends.
func (o *outage) probe(l *limiter, e *endpoint) {
	now := time.Now().UnixNano()
	last := o.lastProbe.Load()
	if time.Duration(now-last) < l.timing.probe || !o.lastProbe.CompareAndSwap(last, now) {
		return
	}
	go func() {
		// The script itself, not a PING: a server that answers PING but
		// not scripts (a replica, a full memory) is still an outage.
		r, err := l.learn(e, nil, nil)
		if err != nil {
			return
		}
		l.update(e, r.st)
		if l.outage.CompareAndSwap(o, nil) {
			l.log(slog.LevelInfo, "redislimiter: Redis answers again; pacing shared",
				slog.String("key_prefix", l.prefix), slog.Duration("outage", time.Since(o.since)))
		}
	}()
}

// logRecord is a record to write on a caller's goroutine: a logger's
// handler is the user's code, and may panic.
type logRecord struct {
	level slog.Level
	msg   string
	attrs []slog.Attr
}

// maxLogs bounds the records kept until a caller comes by.
const maxLogs = 8

func (l *limiter) log(level slog.Level, msg string, attrs ...slog.Attr) {
	if l.logger == nil {
		return
	}
	l.mu.Lock()
	if len(l.logs) < maxLogs {
		l.logs = append(l.logs, logRecord{level, msg, attrs})
		l.hasLogs.Store(true)
	}
	l.mu.Unlock()
}

// writeLogs writes the records kept.
func (l *limiter) writeLogs() {
	if !l.hasLogs.Load() {
		return
	}
	l.mu.Lock()
	logs := l.logs
	l.logs = nil
	l.hasLogs.Store(false)
	l.mu.Unlock()
	for _, r := range logs {
		l.logger.LogAttrs(context.Background(), r.level, r.msg, r.attrs...)
	}
}
