package redislimiter

import (
	"strconv"
	"time"

	"github.com/servicedesk-go/servicedesk/internal/limits"

	"github.com/servicedesk-go/servicedesk"
)

// An op is one change an answer makes to the shared state, applied in
// Redis by learnScript, in order.
type op struct {
	kind   opKind
	wait   time.Duration // opPauseAll, opPauseEndpoint: how long
	limit  float64       // opRate: the limit, requests a second; opGlobalRate: the fill
	rate   float64       // opGlobalRate: the pace
	burst  int           // opGlobalRate: the pace's burst
	count  int           // opSpend, opGlobalSpend: what the server says is left
	reason string        // pauses: the 429's RateLimit-Reason
	policy string        // pauses, opRate: the policy
	cause  string        // pauses: why, for refusals; opGiveBack: the reservation's epoch
	turn   string        // opGiveBack: the reservation's turn
}

type opKind string

const (
	opPauseAll      opKind = "pa"   // hold every endpoint: a spent quota
	opPauseEndpoint opKind = "pe"   // hold one endpoint: a burst limit
	opRate          opKind = "rate" // pace the endpoint for a limit
	opSpend         opKind = "spend"
	opCut           opKind = "cut" // lower the rate after a 429 that announced none
	opGlobalRate    opKind = "grate"
	opGlobalSpend   opKind = "gspend"
	opGiveBack      opKind = "back" // a reservation given up
)

// opsFor is what an answer, received at now, changes: the governor's learn
// and throttled, as ops, every number bounded.
func opsFor(o servicedesk.Outcome, now time.Time) []op {
	if o.StatusCode == 0 {
		return nil
	}
	rl := o.RateLimit
	var ops []op
	announced := false
	policies := rl.Policies[:min(len(rl.Policies), limits.MaxPolicies)]
	// Enforced policies win over Beta ones of the same name.
	for _, beta := range []bool{false, true} {
		for _, p := range policies {
			if p.Beta != beta {
				continue
			}
			name := cleanName(p.Name)
			if limits.IsQuota(p.Name) {
				if !p.Beta && p.Remaining == 0 && p.Reset.After(now) {
					ops = append(ops, op{kind: opPauseAll, wait: limits.BoundWait(p.Reset.Sub(now)), policy: name,
						cause: "until the quota resets: the server said none is left"})
				}
				continue
			}
			if !announced && p.Quota > 0 && p.Window > 0 {
				ops = append(ops, op{kind: opRate, limit: limits.BoundRate(float64(p.Quota) / p.Window.Seconds()), policy: name})
				announced = true
			}
			if p.Remaining >= 0 && !p.Beta {
				// r is the server's count of what is left in its window:
				// none means none until t, whatever the bucket holds.
				if p.Remaining == 0 && p.Reset.After(now) {
					ops = append(ops, op{kind: opPauseEndpoint, wait: limits.BoundWait(p.Reset.Sub(now)), policy: name,
						cause: "until the window resets: the server said none are left"})
				} else {
					ops = append(ops, op{kind: opSpend, count: boundCount(p.Remaining)})
				}
			}
		}
	}
	switch {
	case rl.FillRate > 0 && rl.Interval > 0:
		// Data Center: one bucket for all of this user's requests, paced
		// with the same margin as a burst limit, as the governor paces it.
		fill, rate, burst := limits.DataCenterPace(rl.FillRate, rl.Interval, rl.Limit)
		ops = append(ops, op{kind: opGlobalRate, limit: fill, rate: rate, burst: burst})
		if rl.Remaining >= 0 {
			ops = append(ops, op{kind: opGlobalSpend, count: boundCount(rl.Remaining)})
		}
		announced = true
	case !announced && rl.Reason == "jira-burst-based" && rl.Limit > 0:
		// On Cloud, X-RateLimit-Limit of a burst limit is per second.
		ops = append(ops, op{kind: opRate, limit: limits.BoundRate(float64(rl.Limit)), policy: cleanName(rl.Reason)})
		announced = true
	}
	if o.StatusCode == 429 {
		ops = append(ops, throttled(o, announced)...)
	}
	return ops
}

// throttled is what a 429 changes: a pause of the endpoint, or of
// everything, until the wait is over.
func throttled(o servicedesk.Outcome, announced bool) []op {
	rl := o.RateLimit
	policy := ""
	for _, p := range rl.Policies[:min(len(rl.Policies), limits.MaxPolicies)] {
		if !p.Beta && p.Remaining == 0 {
			policy = cleanName(p.Name)
			break
		}
	}
	reason := cleanName(rl.Reason)
	wait := limits.BoundWait(o.Wait)
	if limits.Quota429(rl.Reason, rl.RetryAfter >= 0, !rl.Reset.IsZero(), wait) {
		return []op{{kind: opPauseAll, wait: wait, reason: reason, policy: policy, cause: "after a 429"}}
	}
	if wait <= 0 {
		wait = time.Second // burst limits are per second
	}
	ops := []op{{kind: opPauseEndpoint, wait: wait, reason: reason, policy: policy, cause: "after a 429"}}
	if !announced {
		ops = append(ops, op{kind: opCut})
	}
	return ops
}

// news keeps the ops that change what Redis holds, as far as the state
// last read from it tells: an answer that says what is already known (the
// same limit, more left than the bucket could spend) costs no round trip.
func news(ops []op, st state) []op {
	out := ops[:0:0]
	for _, o := range ops {
		switch o.kind {
		case opRate:
			if st.known && st.learned && st.limit == o.limit && !st.cut {
				continue
			}
		case opSpend:
			if st.known && (st.rate == 0 || o.count-2*st.inflight >= st.burst) {
				continue
			}
		case opGlobalRate:
			if st.known && st.globalLimit == o.limit && st.globalBurst == o.burst {
				continue
			}
		case opGlobalSpend:
			if st.known && (st.globalRate == 0 || o.count-2*st.globalInflight >= st.globalBurst) {
				continue
			}
		}
		out = append(out, o)
	}
	return out
}

// args encodes ops for learnScript: seven values each.
func (o op) args() []any {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	switch o.kind {
	case opPauseAll, opPauseEndpoint:
		return []any{string(o.kind), o.wait.Microseconds(), 0, 0, o.reason, o.cause, o.policy}
	case opRate:
		return []any{string(o.kind), f(o.limit), f(limits.PaceRate(o.limit)), limits.PaceBurst(o.limit), o.policy, "", ""}
	case opSpend, opGlobalSpend:
		return []any{string(o.kind), o.count, 0, 0, "", "", ""}
	case opGlobalRate:
		return []any{string(o.kind), f(o.limit), f(o.rate), o.burst, "", "", ""}
	case opCut:
		return []any{string(o.kind), f(limits.CloudDefaultRate), f(limits.MinRate), 0, "", "", ""}
	case opGiveBack:
		return []any{string(o.kind), 0, 0, 0, o.cause, o.turn, ""}
	}
	return []any{string(o.kind), 0, 0, 0, "", "", ""}
}
