package servicedesk

import (
	"math"
	"sync"
	"time"
)

// pacer spaces turns at a rate with a burst, by the generic cell rate
// algorithm (GCRA): tat is the theoretical arrival time of the next turn,
// a turn may be taken from tat − tolerance on (tolerance being burst − 1
// intervals), and taking one moves tat an interval on. A pacer with an
// infinite rate lets every turn go at once.
//
// The governor does not use x/time/rate for this: it re-paces the turns of
// requests already waiting when the rate changes, which means giving back
// exactly the turns booked ahead. Here those are the tail of one schedule
// and giving back k of them is tat − k intervals, in whole nanoseconds;
// x/time/rate's CancelAt gives a token back only when a reservation's time
// equals the limiter's last event to the nanosecond, which float rounding
// breaks (measured: cancelling 76 reservations booked ahead gave back 2,
// and the bucket stalled for their debt).
type pacer struct {
	mu    sync.Mutex
	rate  float64       // turns a second; +Inf: unpaced
	every time.Duration // one interval, 1/rate
	burst int
	tat   time.Time
	// floor is the earliest tat may be brought back to: what the server
	// said is spent (spendTo) stays spent when turns are given back.
	floor time.Time
}

func newPacer(rate float64, burst int, now time.Time) *pacer {
	p := &pacer{}
	p.set(rate, burst, now)
	p.tat = now // full: burst turns at once
	return p
}

// limit is the pacer's rate, turns a second (+Inf: unpaced).
func (p *pacer) limit() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate
}

func (p *pacer) paced() bool { return !math.IsInf(p.rate, 1) }

// isPaced is paced for callers not holding p.mu.
func (p *pacer) isPaced() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paced()
}

func (p *pacer) tolerance() time.Duration { return time.Duration(p.burst-1) * p.every }

// set changes the rate and burst. Coming from no rate, the pacer holds one
// turn, not a full burst: what went out before counts already.
func (p *pacer) setLocked(rate float64, burst int, now time.Time) {
	wasPaced := p.every > 0
	p.rate, p.burst = rate, max(burst, 1)
	p.every = 0
	if p.paced() {
		p.every = max(time.Duration(float64(time.Second)/rate), 1)
	}
	if !wasPaced && p.paced() {
		p.tat = now.Add(p.tolerance())
	}
}

func (p *pacer) set(rate float64, burst int, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setLocked(rate, burst, now)
}

// nextLocked is when the next turn may be taken, at the earliest now.
func (p *pacer) nextLocked(now time.Time) time.Time {
	if !p.paced() {
		return now
	}
	if at := p.tat.Add(-p.tolerance()); at.After(now) {
		return at
	}
	return now
}

// allow takes a turn if one is due now.
func (p *pacer) allow(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nextLocked(now).After(now) {
		return false
	}
	p.bookLocked(now)
	return true
}

// bookLocked takes the next turn and returns its time.
func (p *pacer) bookLocked(now time.Time) time.Time {
	at := p.nextLocked(now)
	if p.paced() {
		p.tat = maxTime(p.tat, at).Add(p.every)
	}
	return at
}

// giveBackLocked gives back the last k turns booked, all of them ahead of
// now, never below what the server said is spent.
func (p *pacer) giveBackLocked(k int) {
	if k > 0 && p.paced() {
		p.tat = maxTime(p.tat.Add(-time.Duration(k)*p.every), p.floor)
	}
}

// cancel gives back a turn booked for at that was not taken, when it is
// the last one booked; another is left as a gap (one turn lost, which errs
// on the safe side).
func (p *pacer) cancel(at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paced() && p.tat.Equal(at.Add(p.tolerance()+p.every)) {
		p.giveBackLocked(1)
	}
}

// available is how many turns could be taken at once now.
func (p *pacer) availableLocked(now time.Time) int {
	if !p.paced() {
		return math.MaxInt
	}
	d := now.Sub(p.tat.Add(-p.tolerance()))
	if d < 0 {
		return 0
	}
	return min(p.burst, int(d/p.every)+1)
}

// spendTo leaves at most left turns available now, as the server says.
func (p *pacer) spendTo(left int, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paced() || p.availableLocked(now) <= left {
		return
	}
	left = max(left, 0)
	p.floor = now.Add(p.tolerance() - time.Duration(left-1)*p.every)
	p.tat = maxTime(p.tat, p.floor)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
