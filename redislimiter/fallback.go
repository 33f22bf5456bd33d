package redislimiter

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/servicedesk-go/servicedesk"
)

// outage is a time when Redis does not answer: requests are paced by an
// in-process limiter until a probe finds Redis answering again.
type outage struct {
	since     time.Time
	fallback  servicedesk.RateLimiter
	lastProbe atomic.Int64 // unix nanoseconds
}

// fail starts an outage after err, unless one is on, and returns the
// outage on.
func (l *limiter) fail(err error) *outage {
	if cur := l.outage.Load(); cur != nil {
		return cur
	}
	o := &outage{since: time.Now(), fallback: l.newFallback()}
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
// endpoint this process knows at its share of what the fleet was paced at
// (the limit divided by the processes seen lately), so that a fleet that
// loses Redis keeps near the limit instead of each process spending all of
// it.
func (l *limiter) newFallback() servicedesk.RateLimiter {
	fleet := float64(max(1, l.fleet.Load()))
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
	}
	return servicedesk.NewRateLimiter(servicedesk.RateLimiterConfig{Cloud: l.cfg.Cloud, Rates: rates})
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
