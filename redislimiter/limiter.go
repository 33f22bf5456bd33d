// Package redislimiter is a [servicedesk.RateLimiter] whose state lives in
// Redis, so that every process of a fleet (a Forge or Connect app's remote
// behind a load balancer, a pool of import workers) paces its requests to
// one Jira site as one client would.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	limiter := redislimiter.New(rdb, servicedesk.RateLimiterConfig{Cloud: true},
//		redislimiter.WithKeyPrefix("servicedesk:your-domain:"), redislimiter.WithLogger(logger))
//	c, err := servicedesk.NewClient(site, auth, servicedesk.WithRateLimiter(limiter), servicedesk.WithLogger(logger))
//
// It keeps the in-process governor's rules ([servicedesk.NewRateLimiter]),
// with the state shared: each endpoint is paced by one bucket for the whole
// fleet; a burst 429 seen by any process pauses that endpoint for all of
// them, a quota 429 pauses everything; limits learned from one process's
// answers pace the others. A request costs one Redis round trip when it
// need not wait (a script checks the pauses and reserves its turn, and says
// how long to wait: the wait is slept in the process, never past maxWait or
// the context), and a second one to confirm its turn when it had to wait.
// An answer costs a round trip only when it says something new: a 429, a
// limit other than the one known, little left.
//
// Requests in flight are leases that expire (two minutes), so a process
// that dies cannot hold them for good; every key expires.
//
// Redis is never in the way of a call: an operation that takes longer than
// 50 ms, or fails, puts the limiter on in-process pacing (a
// [servicedesk.NewRateLimiter], paced at this process's share of the
// limits the fleet had learned), logged once; it goes back to Redis when a
// probe (at most one a second, in the background) finds it answering.
// go-redis logs its own failures to dial through its global logger
// ([redis.SetLogger]), which the limiter leaves as the program set it.
package redislimiter

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servicedesk-go/servicedesk/internal/limits"

	"github.com/redis/go-redis/v9"
	"github.com/servicedesk-go/servicedesk"
)

// DefaultKeyPrefix is the prefix of the limiter's keys without
// [WithKeyPrefix].
const DefaultKeyPrefix = "servicedesk:"

// Tunables: fixed, as they are not the caller's to guess.
const (
	opTimeout  = 50 * time.Millisecond // the longest a Redis operation may hold a request
	leaseTTL   = 2 * time.Minute       // the longest a request counts as in flight
	keyTTL     = time.Hour             // how long an endpoint's learned state outlives its use
	probeEvery = time.Second           // how often an outage is probed
	flushAfter = 100 * time.Millisecond
	// memberEvery is how often a process counts itself among the site's
	// members (who stay members for 10 s).
	memberEvery = 2 * time.Second
	// maxEndpoints bounds the endpoints a limiter remembers locally (their
	// state in Redis expires on its own).
	maxEndpoints = 1024
	// maxKeyPath is the longest path kept as is in a key; longer ones are
	// hashed.
	maxKeyPath = 200
)

// Option configures [New].
type Option interface{ apply(*limiter) }

type optionFunc func(*limiter)

func (f optionFunc) apply(l *limiter) { f(l) }

// WithKeyPrefix sets the prefix of the limiter's Redis keys (default
// [DefaultKeyPrefix]). Processes share limits when they share the prefix:
// give each Jira site its own ("servicedesk:your-domain:"), and every
// process that calls that site the same one. It must not be empty nor hold
// '{' or '}' (the keys are "{prefix}…", a Redis Cluster hash tag); such a
// prefix makes every Wait fail with servicedesk.ErrInvalidInput.
func WithKeyPrefix(prefix string) Option {
	return optionFunc(func(l *limiter) { l.prefix = prefix })
}

// WithLogger sets where the limiter says that Redis stopped answering
// (Warn, once an outage) and answers again (Info). Pass the client's
// logger. nil, or without it: nothing is logged. Records are written from
// the goroutine of a call to Wait or Done, never from one of the
// limiter's own.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(lim *limiter) { lim.logger = l })
}

// New returns a servicedesk.RateLimiter whose pacing, pauses and learned
// limits live in Redis, shared by every process that uses the same rdb and
// key prefix (one per Jira site). rdb may be a single node, Sentinel
// (failover) or Cluster client. cfg is what [servicedesk.NewRateLimiter]
// takes: Cloud for Atlassian's documented starting rates, Rates for limits
// you know (for the whole fleet). Pass the limiter to every client of the
// site with [servicedesk.WithRateLimiter]. It is safe for concurrent use.
//
// A nil rdb or an invalid prefix makes every Wait fail with an error
// wrapping servicedesk.ErrInvalidInput, before anything is sent.
func New(rdb redis.UniversalClient, cfg servicedesk.RateLimiterConfig, opts ...Option) servicedesk.RateLimiter {
	l := &limiter{
		rdb:    rdb,
		cfg:    servicedesk.RateLimiterConfig{Cloud: cfg.Cloud, Rates: maps.Clone(cfg.Rates)},
		prefix: DefaultKeyPrefix,
		proc:   randomID(),
		eps:    map[servicedesk.Endpoint]*endpoint{},
		timing: timing{op: opTimeout, lease: leaseTTL, key: keyTTL, probe: probeEvery, flush: flushAfter},
	}
	for _, o := range opts {
		if o != nil {
			o.apply(l)
		}
	}
	switch {
	case rdb == nil:
		l.invalid = fmt.Errorf("%w: redislimiter.New: the Redis client is nil", servicedesk.ErrInvalidInput)
	case l.prefix == "" || strings.ContainsAny(l.prefix, "{}"):
		l.invalid = fmt.Errorf("%w: redislimiter.WithKeyPrefix(%q): the prefix must be non-empty, without '{' or '}'", servicedesk.ErrInvalidInput, l.prefix)
	}
	tag := "{" + l.prefix + "}"
	l.globalKey, l.flightKey, l.membersKey, l.epPrefix = tag+"global", tag+"flight", tag+"members", tag
	return l
}

// limiter is the Redis-backed RateLimiter.
type limiter struct {
	rdb     redis.UniversalClient
	cfg     servicedesk.RateLimiterConfig
	prefix  string
	logger  *slog.Logger
	invalid error
	proc    string // this process, among the site's members
	leases  atomic.Uint64
	timing  timing

	globalKey, flightKey, membersKey, epPrefix string

	mu         sync.Mutex
	eps        map[servicedesk.Endpoint]*endpoint
	pending    []release // leases of finished requests, not yet removed from Redis
	flushTimer *time.Timer
	logs       []logRecord // to write from a caller's goroutine
	hasLogs    atomic.Bool

	fleet  atomic.Int64                 // processes seen lately, from the last reply that counted them
	member atomic.Int64                 // when this process last counted itself among them, unix ns
	pause  atomic.Pointer[limits.Pause] // the last pause of everything this process knows of
	outage atomic.Pointer[outage]
}

// timing holds the limiter's durations; tests shorten them.
type timing struct {
	op, lease, key, probe, flush time.Duration
}

// endpoint is what a process keeps of one endpoint.
type endpoint struct {
	ep             servicedesk.Endpoint
	key, flightKey string
	start          float64 // its limit before any answer; 0: none
	pause          atomic.Pointer[limits.Pause]
	mu             sync.Mutex
	st             state
	leases         []string  // requests admitted through Redis, not yet done
	locals         []*outage // requests admitted in-process, by which outage's limiter
}

// release is a lease to remove from an endpoint's flight set, and whether
// its answer was served (a status below 400).
type release struct {
	e      *endpoint
	lease  string
	served bool
}

func (l *limiter) endpoint(ep servicedesk.Endpoint) *endpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.eps[ep]; e != nil {
		return e
	}
	if len(l.eps) >= maxEndpoints {
		for k, e := range l.eps {
			e.mu.Lock()
			idle := len(e.leases) == 0 && len(e.locals) == 0
			e.mu.Unlock()
			if idle {
				delete(l.eps, k)
			}
		}
	}
	name := ep.Method + " " + ep.Path
	if len(name) > maxKeyPath {
		sum := sha256.Sum256([]byte(name))
		name = ep.Method + " sha256:" + hex.EncodeToString(sum[:])
	}
	e := &endpoint{ep: ep, key: l.epPrefix + "ep:" + name, flightKey: l.epPrefix + "flight:" + name, start: startLimit(l.cfg, ep)}
	l.eps[ep] = e
	return e
}

// Wait implements servicedesk.RateLimiter.
func (l *limiter) Wait(ctx context.Context, ep servicedesk.Endpoint, maxWait time.Duration) error {
	if l.invalid != nil {
		return l.invalid
	}
	defer l.writeLogs()
	start := time.Now()
	now := start
	deadline, ctxFirst := now.Add(max(maxWait, 0)), false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxFirst = d, true
	}
	e := l.endpoint(ep)
	lease := l.proc + ":" + strconv.FormatUint(l.leases.Add(1), 36)
	confirm, epoch, turn := false, "", ""
	// abandon gives back the turn a request reserved and will not take.
	abandon := func() {
		if confirm {
			go l.giveBack(e, epoch, turn)
		}
	}
	// lost undoes what a script did for this request when the request left
	// before the reply came (its context ended): the turn it booked, the
	// lease it took.
	lost := func(r reply) {
		switch r.code {
		case codeWait:
			l.giveBack(e, r.epoch, r.turn)
		case codeOK:
			l.deferRelease(release{e, lease, false})
		}
	}
	// refuse is the error of a request that cannot go out in time.
	refuse := func(r limits.Refusal) error {
		r.MaxWait, r.Waited, r.CtxFirst = max(maxWait, 0), now.Sub(start), ctxFirst
		return refusal(r)
	}
	for {
		if err := ctx.Err(); err != nil {
			abandon()
			return err
		}
		now = time.Now()
		if p := l.pausedLocally(e, now); p != nil && p.Until.After(deadline) {
			abandon()
			return refuse(paused(p, p.Until.Sub(now)))
		}
		if o := l.outage.Load(); o != nil {
			return l.waitLocally(ctx, e, o, deadline, refuse)
		}
		r, err := l.reserve(ctx, e, lease, confirm, epoch, deadline.Sub(now), lost)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return l.waitLocally(ctx, e, l.fail(err), deadline, refuse)
		}
		// The script weighed the wait against the budget as it stood when
		// the request left; the wait is slept from when the reply came: a
		// turn or a pause that would end after the deadline is refused
		// here, the turn given back. Each pass of the loop thus ends, or
		// sleeps to a time no later than the deadline, and a reply that
		// comes after it with anything to wait ends it.
		arrived := time.Now()
		l.update(e, r.st)
		switch r.code {
		case codeOK:
			e.admitted(lease, nil)
			return nil
		case codeRefusedPace:
			return refuse(limits.Refusal{Wait: r.wait, Policy: r.policy, Rate: r.st.rate, Queued: r.queued})
		case codeRefusedPause, codePaused:
			p := &limits.Pause{Until: arrived.Add(r.wait), Reason: r.reason, Policy: r.policy, Cause: r.cause}
			l.remember(e, r.global, p)
			confirm = false
			if r.code == codeRefusedPause || p.Until.After(deadline) {
				return refuse(paused(p, r.wait))
			}
		case codeWait:
			confirm, epoch, turn = true, r.epoch, r.turn
			if arrived.Add(r.wait).After(deadline) {
				abandon()
				return refuse(limits.Refusal{Wait: r.wait, Policy: r.policy, Rate: r.st.rate, Queued: r.queued})
			}
		default:
			return l.waitLocally(ctx, e, l.fail(fmt.Errorf("%w: code %d", errReply, r.code)), deadline, refuse)
		}
		if err := sleep(ctx, r.wait); err != nil {
			abandon()
			return err
		}
	}
}

// waitLocally is Wait during an outage: the pauses this process knows of,
// then the in-process limiter. refuse words the refusal of a pause that
// ends after the deadline.
func (l *limiter) waitLocally(ctx context.Context, e *endpoint, o *outage, deadline time.Time, refuse func(limits.Refusal) error) error {
	o.probe(l, e)
	if p := l.pausedLocally(e, time.Now()); p != nil {
		wait := time.Until(p.Until)
		if p.Until.After(deadline) {
			return refuse(paused(p, wait))
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	if err := o.fallback.Wait(ctx, e.ep, max(0, time.Until(deadline))); err != nil {
		return err
	}
	e.admitted("", o)
	return nil
}

// Done implements servicedesk.RateLimiter.
func (l *limiter) Done(ep servicedesk.Endpoint, o servicedesk.Outcome) {
	if l.invalid != nil {
		return
	}
	e := l.endpoint(ep)
	lease, local := e.done()
	if local != nil {
		local.fallback.Done(ep, share(o, local.fleet))
	}
	// served: an answer the site served, counted (in Redis, for the whole
	// fleet) for the cut after a 429 that announces no limit.
	served := o.StatusCode > 0 && o.StatusCode < 400
	now := time.Now()
	ops := opsFor(o, now)
	for _, op := range ops {
		if op.kind == opPauseAll || op.kind == opPauseEndpoint {
			l.remember(e, op.kind == opPauseAll, &limits.Pause{Until: now.Add(op.wait), Reason: op.reason, Policy: op.policy, Cause: op.cause})
		}
	}
	defer l.writeLogs()
	if l.outage.Load() != nil {
		return // its lease expires in Redis
	}
	ops = news(ops, e.state())
	if len(ops) == 0 {
		if lease != "" {
			l.deferRelease(release{e, lease, served})
		}
		return
	}
	rels := l.takePending()
	if lease != "" {
		rels = append(rels, release{e, lease, served})
	}
	r, err := l.learn(e, ops, rels)
	if err != nil {
		l.fail(err)
		return
	}
	l.update(e, r.st)
}

// reserve runs reserveScript for a request to e; lost is given the reply
// that comes after ctx ended.
func (l *limiter) reserve(ctx context.Context, e *endpoint, lease string, confirm bool, epoch string, budget time.Duration, lost func(reply)) (reply, error) {
	mode := "r"
	if confirm {
		mode = "c"
	}
	member := "0"
	if now, last := time.Now().UnixNano(), l.member.Load(); time.Duration(now-last) >= memberEvery && l.member.CompareAndSwap(last, now) {
		member = "1"
	}
	keys, args := l.scriptArgs(e, l.takePending())
	args = append(args, mode, max(budget, 0).Microseconds(), lease, epoch, member)
	return l.run(ctx, reserveScript, keys, args, lost)
}

// learn runs learnScript: ops for e, and releases.
func (l *limiter) learn(e *endpoint, ops []op, rels []release) (reply, error) {
	keys, args := l.scriptArgs(e, rels)
	args = append(args, len(ops))
	for _, o := range ops {
		args = append(args, o.args()...)
	}
	return l.run(context.Background(), learnScript, keys, args, nil)
}

// scriptArgs are the keys and the first arguments of every script (see
// prelude).
func (l *limiter) scriptArgs(e *endpoint, rels []release) ([]string, []any) {
	keys := []string{e.key, l.globalKey, e.flightKey, l.flightKey, l.membersKey}
	n := e.start
	rate, burst := 0.0, 1
	if n > 0 {
		rate, burst = limits.PaceRate(n), limits.PaceBurst(n)
	}
	args := []any{l.proc, l.timing.key.Milliseconds(), l.timing.lease.Milliseconds(),
		strconv.FormatFloat(n, 'g', -1, 64), strconv.FormatFloat(rate, 'g', -1, 64), burst, len(rels)}
	// Each released endpoint's flight set and hash, by index in KEYS.
	index := map[*endpoint]int{e: 3}
	for _, r := range rels {
		i, ok := index[r.e]
		if !ok {
			keys = append(keys, r.e.flightKey, r.e.key)
			i = len(keys) - 1
			index[r.e] = i
		}
		h, served := i+1, "0"
		if r.e == e {
			h = 1
		}
		if r.served {
			served = "1"
		}
		args = append(args, i, h, r.lease, served)
	}
	return keys, args
}

var errTimeout = errors.New("no answer in time")

// run runs a script within the operation timeout, whatever the client's
// own timeouts (go-redis ignores a context's deadline unless
// ContextTimeoutEnabled): past it, the caller goes on and the operation
// ends in the background. ctx ends the wait too, but not the script, which
// may have run: its reply, when it comes, goes to lost (when not nil), in
// the background.
func (l *limiter) run(ctx context.Context, s *redis.Script, keys []string, args []any, lost func(reply)) (reply, error) {
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timing.op)
	go func() {
		defer cancel()
		v, err := s.Run(opCtx, l.rdb, keys, args...).Result()
		done <- result{v, err}
	}()
	t := time.NewTimer(l.timing.op)
	defer t.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return reply{}, r.err
		}
		return parseReply(r.v)
	case <-t.C:
		return reply{}, fmt.Errorf("redislimiter: Redis: %w after %v", errTimeout, l.timing.op)
	case <-ctx.Done():
		if lost != nil {
			go func() {
				if r := <-done; r.err == nil {
					if rep, err := parseReply(r.v); err == nil {
						lost(rep)
					}
				}
			}()
		}
		return reply{}, ctx.Err()
	}
}

// giveBack returns the turn of a reservation its caller gave up, when no
// turn was booked after it.
func (l *limiter) giveBack(e *endpoint, epoch, turn string) {
	if l.outage.Load() != nil {
		return
	}
	if _, err := l.learn(e, []op{{kind: opGiveBack, cause: epoch, turn: turn}}, nil); err != nil {
		l.fail(err)
	}
}

// deferRelease keeps a finished request's lease to remove with this
// process's next script, or within flushAfter.
func (l *limiter) deferRelease(r release) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, r)
	if l.flushTimer == nil {
		l.flushTimer = time.AfterFunc(l.timing.flush, l.flush)
	}
}

func (l *limiter) takePending() []release {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pending
	l.pending = nil
	return p
}

// flush removes the leases of finished requests when no script did.
func (l *limiter) flush() {
	l.mu.Lock()
	l.flushTimer = nil
	l.mu.Unlock()
	rels := l.takePending()
	if len(rels) == 0 || l.outage.Load() != nil {
		return
	}
	if _, err := l.learn(rels[0].e, nil, rels); err != nil {
		l.fail(err)
	}
}

// remember keeps a pause this process learned of, for Wait to refuse
// without asking Redis and to keep during an outage.
func (l *limiter) remember(e *endpoint, all bool, p *limits.Pause) {
	ptr := &e.pause
	if all {
		ptr = &l.pause
	}
	limits.Extend(ptr, p)
}

// pausedLocally is the pause this process knows holds e now, the later of
// the site's and the endpoint's; nil when there is none.
func (l *limiter) pausedLocally(e *endpoint, now time.Time) *limits.Pause {
	return limits.Holding(now, l.pause.Load(), e.pause.Load())
}

// update keeps what a reply said.
func (l *limiter) update(e *endpoint, st state) {
	if st.fleet >= 0 {
		l.fleet.Store(int64(st.fleet))
	}
	e.update(st)
}

func (e *endpoint) update(st state) {
	e.mu.Lock()
	e.st = st
	e.mu.Unlock()
}

func (e *endpoint) state() state {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st
}

// admitted records a request let through: by Redis (a lease) or by an
// outage's in-process limiter.
func (e *endpoint) admitted(lease string, local *outage) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if local != nil {
		e.locals = append(e.locals, local)
	} else {
		e.leases = append(e.leases, lease)
	}
}

// done takes the record of one request let through, the in-process ones
// first; Done does not say which request it is about, and any one will do.
func (e *endpoint) done() (lease string, local *outage) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n := len(e.locals); n > 0 {
		local, e.locals = e.locals[n-1], e.locals[:n-1]
		return "", local
	}
	if n := len(e.leases); n > 0 {
		lease, e.leases = e.leases[n-1], e.leases[:n-1]
	}
	return lease, nil
}

// refusal is the error of a request the limiter will not let out in time,
// worded and filled in (RateLimit.Reason and Policy, RetryAfter) as the
// in-process governor's is.
func refusal(r limits.Refusal) *servicedesk.Error {
	rl := servicedesk.RateLimit{Limit: -1, Remaining: -1, FillRate: -1, RetryAfter: -1, Policy: r.Policy}
	if r.Paused {
		rl.Reason = r.Reason
	}
	return &servicedesk.Error{StatusCode: 429, Message: r.Message(), RetryAfter: max(r.Wait, 0), RateLimit: rl}
}

// paused is the refusal of a request a pause holds for wait.
func paused(p *limits.Pause, wait time.Duration) limits.Refusal {
	return limits.Refusal{Wait: wait, Paused: true, Cause: cmp.Or(p.Cause, "by another process"), Reason: p.Reason, Policy: p.Policy}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
