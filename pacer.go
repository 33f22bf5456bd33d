package servicedesk

import (
	"math"
	"sync"
	"time"
)

// pacer spaces turns at a rate with a burst, by the generic cell rate
// algorithm (GCRA): tat is the theoretical arrival time of the next turn,
// a turn may be taken from tat − tolerance on (tolerance being burst − 1
// intervals), and taking one moves tat on. A pacer with an infinite rate
// lets every turn go at once.
//
// The governor does not use x/time/rate for this: it re-paces the turns of
// requests already waiting when the rate changes, which means giving back
// exactly the turns booked ahead. Here a turn remembers tat before and
// after it was booked, and the turns booked ahead are the tail of one
// schedule, so giving them back, the last first, restores tat exactly.
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

// turn is a turn booked on a pacer: when it may go, and the pacer's tat
// before and after it was booked (for giving it back).
type turn struct {
	at, before, after time.Time
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

// setLocked changes the rate and burst. Coming from no rate, the pacer
// holds one turn, not a full burst: what went out before counts already.
// From one rate to another, the turns already spent ahead of now stay
// spent, counted in turns: a pace that rises applies at once.
func (p *pacer) setLocked(rate float64, burst int, now time.Time) {
	oldEvery := p.every
	p.rate, p.burst = rate, max(burst, 1)
	p.every = 0
	if p.paced() {
		p.every = max(time.Duration(float64(time.Second)/rate), 1)
	}
	switch {
	case oldEvery == 0 && p.paced():
		p.tat = now.Add(p.tolerance())
	case oldEvery > 0 && p.paced():
		p.tat = rescale(p.tat, now, oldEvery, p.every)
		p.floor = rescale(p.floor, now, oldEvery, p.every)
	}
}

// rescale moves t, when it is ahead of now, from intervals of old to as
// many intervals of next.
func rescale(t, now time.Time, old, next time.Duration) time.Time {
	if !t.After(now) {
		return t
	}
	return now.Add(time.Duration(float64(t.Sub(now)) * float64(next) / float64(old)))
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

// bookLocked takes a turn at at, which is not before nextLocked(at).
func (p *pacer) bookLocked(at time.Time) turn {
	t := turn{at: at, before: p.tat}
	if p.paced() {
		p.tat = maxTime(p.tat, at).Add(p.every)
	}
	t.after = p.tat
	return t
}

// giveBackLocked gives back a turn not taken, when it is the last one
// booked (the tail of the schedule); another is left as a gap: one turn
// lost, which errs on the safe side. What the server said is spent stays
// spent.
func (p *pacer) giveBackLocked(t turn) {
	if p.paced() && p.tat.Equal(t.after) {
		p.tat = maxTime(t.before, p.floor)
	}
}

func (p *pacer) giveBack(t turn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.giveBackLocked(t)
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

// fillTo makes as many turns available now as the server says are left
// (up to the burst), when it says more than the pacer holds: a pace just
// learnt need not start from one turn when the server counts many.
func (p *pacer) fillTo(left int, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paced() || left <= p.availableLocked(now) {
		return
	}
	left = min(left, p.burst)
	p.tat = maxTime(now.Add(p.tolerance()-time.Duration(left-1)*p.every), p.floor)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
