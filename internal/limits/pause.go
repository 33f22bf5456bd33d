package limits

import (
	"sync/atomic"
	"time"
)

// Pause is a time before which a limiter lets nothing out (one endpoint's
// requests, or all of them), and why.
type Pause struct {
	Until  time.Time
	Reason string // RateLimit-Reason of the 429 that set it, if any
	Policy string // the policy it comes from, if any
	Cause  string // "after a 429", or what else set it
}

// Holding is the pause of ps (nil ones included) that holds at now, the
// one ending last; nil when none does.
func Holding(now time.Time, ps ...*Pause) *Pause {
	var held *Pause
	for _, p := range ps {
		if p != nil && p.Until.After(now) && (held == nil || p.Until.After(held.Until)) {
			held = p
		}
	}
	return held
}

// Extend stores p in ptr if it ends later than the pause there: a shorter
// pause never cuts a longer one short.
func Extend(ptr *atomic.Pointer[Pause], p *Pause) {
	for {
		cur := ptr.Load()
		if cur != nil && !p.Until.After(cur.Until) {
			return
		}
		if ptr.CompareAndSwap(cur, p) {
			return
		}
	}
}
