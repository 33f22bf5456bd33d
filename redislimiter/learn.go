package redislimiter

import (
	"strconv"
	"time"

	"github.com/servicedesk-go/servicedesk"
)

// An op is one change an answer makes to the shared state, applied in
// Redis by learnScript, in order.
type op struct {
	kind   opKind
	wait   time.Duration // opPauseAll, opPauseEndpoint: how long
	limit  float64       // opRate: the limit, requests a second; opGlobalRate: the rate
	burst  int           // opGlobalRate: the bucket size
	count  int           // opSpend, opGlobalSpend: what the server says is left
	reason string        // pauses: RateLimit-Reason; opRate: the policy
	why    string        // pauses: what happened, for refusals
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
	opGiveBack      opKind = "back" // a reservation given up; why is its epoch
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
	policies := rl.Policies[:min(len(rl.Policies), maxPolicies)]
	// Enforced policies win over Beta ones of the same name.
	for _, beta := range []bool{false, true} {
		for _, p := range policies {
			if p.Beta != beta {
				continue
			}
			name := cleanName(p.Name)
			if isQuota(p.Name) {
				if !p.Beta && p.Remaining == 0 && p.Reset.After(now) {
					ops = append(ops, op{kind: opPauseAll, wait: boundWait(p.Reset.Sub(now)),
						reason: reasonOfPolicy(name), why: "paused: none left of " + orWord(name, "a quota") + ", as announced"})
				}
				continue
			}
			if !announced && p.Quota > 0 && p.Window > 0 {
				ops = append(ops, op{kind: opRate, limit: boundLimit(float64(p.Quota) / p.Window.Seconds()), reason: name})
				announced = true
			}
			if p.Remaining >= 0 && !p.Beta {
				ops = append(ops, op{kind: opSpend, count: boundCount(p.Remaining)})
				// Nothing left until a reset more than a second away: wait
				// for it. A one-second window's "t=1" is rounded up and may
				// be a millisecond away; the drained bucket paces that.
				if p.Remaining == 0 && p.Reset.Sub(now) > time.Second {
					ops = append(ops, op{kind: opPauseEndpoint, wait: boundWait(p.Reset.Sub(now)),
						reason: reasonOfPolicy(name), why: "paused: none left of " + orWord(name, "a limit") + ", as announced"})
				}
			}
		}
	}
	switch {
	case rl.FillRate > 0 && rl.Interval > 0:
		// Data Center: one bucket for all of this user's requests.
		g := op{kind: opGlobalRate, limit: boundLimit(float64(rl.FillRate) / rl.Interval.Seconds()), burst: 1}
		if rl.Limit > 0 {
			g.burst = boundCount(rl.Limit)
		}
		ops = append(ops, g)
		if rl.Remaining >= 0 {
			ops = append(ops, op{kind: opGlobalSpend, count: boundCount(rl.Remaining)})
		}
		announced = true
	case !announced && rl.Reason == "jira-burst-based" && rl.Limit > 0:
		// On Cloud, X-RateLimit-Limit of a burst limit is per second.
		ops = append(ops, op{kind: opRate, limit: boundLimit(float64(rl.Limit)), reason: rl.Reason})
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
	reason := cleanName(rl.Reason)
	wait := boundWait(o.Wait)
	if quota429(rl, o.Wait) {
		return []op{{kind: opPauseAll, wait: wait, reason: reason, why: "paused after a 429"}}
	}
	if wait <= 0 {
		wait = time.Second // burst limits are per second
	}
	ops := []op{{kind: opPauseEndpoint, wait: wait, reason: reason, why: "paused after a 429"}}
	if !announced {
		ops = append(ops, op{kind: opCut})
	}
	return ops
}

func orWord(s, word string) string {
	if s == "" {
		return word
	}
	return s
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
			if st.known && st.globalRate == o.limit && st.globalBurst == o.burst {
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

// args encodes ops for learnScript: six values each.
func (o op) args() []any {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	switch o.kind {
	case opPauseAll, opPauseEndpoint:
		return []any{string(o.kind), o.wait.Microseconds(), 0, 0, o.reason, o.why}
	case opRate:
		return []any{string(o.kind), f(o.limit), f(paceRate(o.limit)), paceBurst(o.limit), o.reason, ""}
	case opSpend, opGlobalSpend:
		return []any{string(o.kind), o.count, 0, 0, "", ""}
	case opGlobalRate:
		return []any{string(o.kind), f(o.limit), o.burst, 0, "", ""}
	case opGiveBack:
		return []any{string(o.kind), 0, 0, 0, o.why, ""}
	}
	return []any{string(o.kind), 0, 0, 0, "", ""}
}
