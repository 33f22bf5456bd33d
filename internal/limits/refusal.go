package limits

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Refusal describes a request a limiter will not let out in time: within
// what is left of the call's WithRateLimitWait allowance, or before its
// context's deadline when that comes first. The in-process governor and
// the Redis-backed limiter both word their refusals with it, so a caller
// reads (and matches) one message whichever limiter refused.
type Refusal struct {
	Wait     time.Duration // how long it would have had to wait
	Paused   bool          // a pause holds it, not the pace
	Cause    string        // what set the pause: "after a 429", …
	Reason   string        // the pause's RateLimit-Reason
	Policy   string        // the policy pausing or pacing it
	Rate     float64       // the pace, requests a second; 0 or +Inf: none said
	Queued   int           // requests waiting ahead of it
	MaxWait  time.Duration // what was left of the allowance when the wait began
	Waited   time.Duration // waited since
	CtxFirst bool          // the context's deadline came before the allowance ran out
}

// Message says why the request was not sent, what bounded its wait and,
// for a paced request, how deep the queue was and how much more allowance
// would have served it. How long it would have had to wait is left to the
// error's RetryAfter, which the error's text appends with the reason.
func (r Refusal) Message() string {
	var b strings.Builder
	b.WriteString("not sent: ")
	if r.Paused {
		b.WriteString("paused " + r.Cause)
		if r.Policy != "" && r.Policy != r.Reason {
			b.WriteString(" (" + r.Policy + ")")
		}
	} else {
		b.WriteString("paced")
		if r.Rate > 0 && !math.IsInf(r.Rate, 1) {
			fmt.Fprintf(&b, " at %.3g a second", r.Rate)
		}
		if r.Policy != "" {
			b.WriteString(" (" + r.Policy + ")")
		}
		if r.Queued > 0 {
			fmt.Fprintf(&b, ", %d requests queued ahead", r.Queued)
		}
	}
	if r.CtxFirst {
		b.WriteString("; the context's deadline comes first")
		return b.String()
	}
	left := max(0, r.MaxWait-r.Waited)
	fmt.Fprintf(&b, "; WithRateLimitWait's allowance has %v left", left.Round(time.Millisecond))
	if !r.Paused {
		short := (r.Wait - left).Truncate(100*time.Millisecond) + 100*time.Millisecond
		fmt.Fprintf(&b, " (%v more would have served it)", short)
	}
	return b.String()
}
