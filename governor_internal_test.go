package servicedesk

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servicedesk-go/servicedesk/internal/limits"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestUnannouncedBurstCutsThenRecovers: a 429 that says nothing of the
// limit lowers the endpoint's rate to the pace for what was served in the
// second before it (at most 90 % of what it was); 2xx answers bring it
// back, slowly, to where it was.
func TestUnannouncedBurstCutsThenRecovers(t *testing.T) {
	t.Parallel()
	g := NewRateLimiter(RateLimiterConfig{Cloud: true}).(*governor)
	ep := Endpoint{Method: http.MethodPost, Path: deskCustomersTemplate}
	b := g.bucket(ep)
	start := b.lim.limit()
	assert.Equal(t, limits.PaceRate(limits.CloudDefaultRate), start)

	none := RateLimit{Limit: -1, Remaining: -1, FillRate: -1, RetryAfter: -1}
	for i := 0; i < 30; i++ { // 30 served in the last second: the limit, most likely
		g.admitted(b)
		g.Done(ep, Outcome{StatusCode: 204, RateLimit: none})
	}
	g.admitted(b)
	g.Done(ep, Outcome{StatusCode: 429, RateLimit: none})
	cut := b.lim.limit()
	assert.Equal(t, limits.PaceRate(30), cut)
	pace, known := g.knownPace(b)
	assert.Equal(t, cut, pace, "the in-flight bound sizes itself for the cut pace")
	assert.True(t, known, "what the server served is a pace it told")
	p := b.pause.Load()
	require.NotNil(t, p, "paused a second, burst limits being per second")
	assert.Equal(t, "after a 429", p.Cause)
	assert.Empty(t, p.Reason, "the 429 named none")

	// A second 429 of the same burst does not cut again.
	g.Done(ep, Outcome{StatusCode: 429, RateLimit: none})
	assert.Equal(t, cut, b.lim.limit())

	// Nothing served before it: 90 % of the pace.
	b2 := g.bucket(Endpoint{Method: http.MethodDelete, Path: deskCustomersTemplate})
	before := b2.lim.limit()
	g.done(b2, Outcome{StatusCode: 429, RateLimit: none})
	assert.InDelta(t, float64(before)*0.9, float64(b2.lim.limit()), 0.001)

	// Recovery: 5 % every 10 s without a 429, up to the start.
	now := time.Now()
	for i := 1; i <= 40; i++ {
		b.recover(g, now.Add(time.Duration(i)*11*time.Second))
	}
	assert.Equal(t, start, b.lim.limit())
	assert.False(t, b.cut.Load())
}

// TestAnnouncedLimitIsLearned: a 2xx's policy sets the pace; Data Center's
// headers pace the whole client.
func TestAnnouncedLimitIsLearned(t *testing.T) {
	t.Parallel()
	g := NewRateLimiter(RateLimiterConfig{}).(*governor)
	ep := Endpoint{Method: http.MethodGet, Path: deskCustomersTemplate}
	require.NoError(t, g.Wait(context.Background(), ep, 0))
	assert.True(t, math.IsInf(g.bucket(ep).lim.limit(), 1), "not Cloud: unpaced until told")
	h := http.Header{"Ratelimit-Policy": {`"jira-burst-based";q=20;w=1`}, "Ratelimit": {`"jira-burst-based";r=15;t=1`}}
	rl, _ := rateLimitOf(h, time.Now())
	g.Done(ep, Outcome{StatusCode: 200, RateLimit: rl})
	assert.Equal(t, limits.PaceRate(20), g.bucket(ep).lim.limit())
	assert.Equal(t, limits.PaceBurst(20), g.bucket(ep).lim.burst)

	require.NoError(t, g.Wait(context.Background(), ep, time.Second))
	h = http.Header{"X-Ratelimit-Limit": {"60"}, "X-Ratelimit-Remaining": {"59"}, "X-Ratelimit-Fillrate": {"10"}, "X-Ratelimit-Interval-Seconds": {"2"}}
	rl, _ = rateLimitOf(h, time.Now())
	g.Done(ep, Outcome{StatusCode: 200, RateLimit: rl})
	assert.Equal(t, limits.PaceRate(5), g.global.limit(), "10 every 2 s, a request short of it")
	assert.Equal(t, limits.PaceBurst(5), g.global.burst)
}

func TestParseStructuredList(t *testing.T) {
	t.Parallel()
	items := parseStructuredList([]string{`"a";q=1;w=2, b;r=3`, `"c,d";t="4" , ;x=1`, `"e\"f";q=5.5`})
	require.Len(t, items, 4)
	assert.Equal(t, "a", items[0].name)
	assert.Equal(t, map[string]string{"q": "1", "w": "2"}, items[0].params)
	assert.Equal(t, "b", items[1].name)
	assert.Equal(t, "c,d", items[2].name, "a comma inside quotes")
	n, ok := items[2].int("t")
	assert.True(t, ok)
	assert.Equal(t, 4, n)
	assert.Equal(t, `e"f`, items[3].name)
	n, ok = items[3].int("q")
	assert.True(t, ok)
	assert.Equal(t, 5, n)
	_, ok = items[3].int("zz")
	assert.False(t, ok)
}

// TestServerNumbersAreBounded: no wait, pause or pace a server sends can
// stop the client for good: t= and w= are capped at 24 h, X-RateLimit-Reset
// too, and a pace is never slower than one request a minute.
func TestServerNumbersAreBounded(t *testing.T) {
	t.Parallel()
	now := time.Now()
	h := http.Header{
		"Ratelimit-Policy":             {`"jira-burst-based";q=1;w=1000000000`},
		"Ratelimit":                    {`"jira-burst-based";r=0;t=1000000000, "global-app-quota";r=0;t=99999999999999999999`},
		"X-Ratelimit-Reset":            {"2999-01-01T00:00:00Z"},
		"X-Ratelimit-Fillrate":         {"1"},
		"X-Ratelimit-Interval-Seconds": {"1000000000"},
		"Retry-After":                  {"1000000000"},
	}
	rl, ok := rateLimitOf(h, now)
	require.True(t, ok)
	day := now.Add(limits.MaxServerWait + time.Second)
	assert.False(t, rl.Reset.After(day))
	assert.LessOrEqual(t, rl.Interval, limits.MaxServerWait)
	assert.LessOrEqual(t, rl.RetryAfter, limits.MaxServerWait)
	for _, p := range rl.Policies {
		assert.LessOrEqual(t, p.Window, limits.MaxServerWait, p.Name)
		assert.False(t, p.Reset.After(day), p.Name)
	}

	g := NewRateLimiter(RateLimiterConfig{}).(*governor)
	ep := Endpoint{Method: http.MethodPost, Path: deskCustomersTemplate}
	b := g.bucket(ep)
	g.admitted(b)
	g.Done(ep, Outcome{StatusCode: 429, RateLimit: rl, Wait: 1000 * time.Hour})
	for _, p := range []*limits.Pause{g.pause.Load(), b.pause.Load()} {
		if p != nil {
			assert.False(t, p.Until.After(day), "a pause of at most a day")
		}
	}
	assert.GreaterOrEqual(t, float64(g.global.limit()), limits.MinRate, "Data Center's fill rate has a floor")
	assert.GreaterOrEqual(t, float64(b.lim.limit()), limits.MinRate, "the burst policy's rate has a floor")
	assert.GreaterOrEqual(t, float64(limits.PaceRate(limits.BoundRate(1e-30))), limits.MinRate)
}

// TestLongPolicyHeadersAreReadWithinABound: a megabyte of distinct policy
// names costs what a few kilobytes do: only the first maxParsed bytes and
// limits.MaxPolicies policies are read (net/http accepts a 10 MB header, and
// merging it whole took 29 s of CPU).
func TestLongPolicyHeadersAreReadWithinABound(t *testing.T) { // not parallel: AllocsPerRun
	long := func(n int) http.Header {
		var b strings.Builder
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, `"p%d";q=10;w=1, `, i)
		}
		b.WriteString(`"jira-burst-based";q=50;w=1`)
		return http.Header{"Ratelimit-Policy": {b.String()}, "Ratelimit": {b.String()}}
	}
	small, big := long(8<<10), long(1<<20)
	ps := policiesOf(big, time.Now())
	assert.Len(t, ps, limits.MaxPolicies)
	for _, p := range ps {
		assert.NotEqual(t, "jira-burst-based", p.Name, "what comes after the bound is not read")
	}
	allocs := func(h http.Header) float64 {
		return testing.AllocsPerRun(5, func() { policiesOf(h, time.Now()) })
	}
	assert.Equal(t, allocs(small), allocs(big), "the same work for 8 KiB and 1 MiB")

	items := parseStructuredList([]string{strings.Repeat("x", maxParsed-5) + `, "a";q=123456789`})
	for _, it := range items {
		assert.NotEqual(t, "a", it.name, "a member cut in two by the bound is dropped, not misread")
	}
}

// TestBucketsAreBounded: however many endpoints Client.Do names, the
// governor keeps at most maxBuckets apart; the rest share one per method.
func TestBucketsAreBounded(t *testing.T) {
	t.Parallel()
	g := NewRateLimiter(RateLimiterConfig{}).(*governor)
	for i := 0; i < 3*maxBuckets; i++ {
		ep := Endpoint{Method: http.MethodGet, Path: fmt.Sprintf("/rest/api/3/issue/key%d", i)}
		require.NoError(t, g.Wait(context.Background(), ep, time.Minute))
		g.Done(ep, Outcome{StatusCode: 200, RateLimit: noRateLimit()})
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	assert.LessOrEqual(t, len(g.buckets), maxBuckets+1)
}

// TestSlotLimitFollowsPaceAndLatency: while the server has not told an
// endpoint's pace, the bound probes: it starts at the default, grows by
// one a round trip while calls wait for slots and answers are 2xx, and
// falls by a quarter on a 429. Once the pace is known, the bound is what
// that pace needs at the latency observed.
func TestSlotLimitFollowsPaceAndLatency(t *testing.T) {
	t.Parallel()
	c, err := NewClient("https://x.atlassian.net")
	require.NoError(t, err)
	g := c.limiter.(*governor)
	add := g.bucket(Endpoint{Method: "POST", Path: deskCustomersTemplate})
	assert.Equal(t, DefaultMaxInFlight, c.slotLimit(add), "Cloud's documented pace is not the server's word: probe from the default")

	const rtt = 250 * time.Millisecond
	c.conc.observe(rtt, 204, false)
	c.conc.grown.Add(-int64(probeEvery))
	c.conc.observe(rtt, 204, false)
	assert.Equal(t, DefaultMaxInFlight, c.slotLimit(add), "no call waited for a slot: no reason to grow")
	for round := 0; round < 4; round++ {
		c.conc.grown.Add(-int64(probeEvery)) // a step ago (at most two a second)
		for i := 0; i < c.slotLimit(add); i++ {
			c.conc.observe(rtt, 204, true)
		}
	}
	assert.Equal(t, DefaultMaxInFlight+4, c.slotLimit(add), "one more a round trip")
	c.conc.observe(rtt, 204, true)
	assert.Equal(t, DefaultMaxInFlight+4, c.slotLimit(add), "not two steps within half a second")
	c.conc.observe(rtt, 429, true)
	assert.Equal(t, 9, c.slotLimit(add), "a quarter less after a 429")

	g.setRate(add, 50, "jira-burst-based") // the server's word: paced at 47 a second
	assert.Equal(t, 19, c.slotLimit(add), "47/s × 0.25 s × 1.5, and one")
	for i := 0; i < 100; i++ {
		c.conc.observe(10*time.Second, 204, true)
	}
	assert.Equal(t, maxAutoInFlight, c.slotLimit(add), "capped")

	fixed, err := NewClient("https://x.atlassian.net", WithMaxInFlight(3))
	require.NoError(t, err)
	fixed.conc.observe(rtt, 204, true)
	fb := fixed.limiter.(*governor).bucket(Endpoint{Method: "POST", Path: deskCustomersTemplate})
	fixed.limiter.(*governor).setRate(fb, 50, "jira-burst-based")
	assert.Equal(t, 3, fixed.slotLimit(fb))
}

// TestWaitingTurnsArePacedAgain: requests waiting their turn when the pace
// drops wait at the new pace, not at the one their turns were taken at.
// Forty turns taken at 100 a second would all go within half a second.
func TestWaitingTurnsArePacedAgain(t *testing.T) {
	t.Parallel()
	ep := Endpoint{Method: http.MethodPost, Path: deskCustomersTemplate}
	g := NewRateLimiter(RateLimiterConfig{Rates: map[Endpoint]float64{ep: 100}}).(*governor)
	b := g.bucket(ep)
	start := time.Now()
	var mu sync.Mutex
	var admitted []time.Duration
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if g.Wait(ctx, ep, time.Minute) == nil {
				mu.Lock()
				admitted = append(admitted, time.Since(start))
				mu.Unlock()
			}
		}()
	}
	require.Eventually(t, func() bool { return b.queued.Load() > 30 }, 5*time.Second, time.Millisecond, "turns taken")
	g.setRate(b, 10, "jira-burst-based") // paced at 8 a second
	time.Sleep(600 * time.Millisecond)
	mu.Lock()
	early := 0
	for _, d := range admitted {
		if d < 600*time.Millisecond {
			early++
		}
	}
	mu.Unlock()
	assert.Less(t, early, 20, "admitted in the first 600 ms: at most a few before the change, then 8 a second")

	// And the other way: the rest, queued at 8 a second (3 s and more),
	// go at once when the pace rises, instead of keeping their old turns.
	raised := time.Now()
	g.setRate(b, 1000, "jira-burst-based")
	within := make(chan struct{})
	go func() { wg.Wait(); close(within) }()
	select {
	case <-within:
	case <-time.After(2 * time.Second):
		t.Fatal("the queue did not speed up with the pace")
	}
	assert.Less(t, time.Since(raised), 2*time.Second)
}

// TestPacerGivesBackExactly: turns booked ahead, given back the last
// first, leave the pacer as it was before they were booked; a turn in the
// middle of the schedule is left as a gap; what the server said is spent
// stays spent.
func TestPacerGivesBackExactly(t *testing.T) {
	t.Parallel()
	now := time.Now()
	p := newPacer(47, 2, now)
	p.mu.Lock()
	book := func() turn { return p.bookLocked(p.nextLocked(now)) }
	for i := 0; i < 2; i++ {
		assert.Equal(t, now, book().at, "a burst of two at once")
	}
	before := p.tat
	var turns []turn
	for i := 0; i < 100; i++ {
		turns = append(turns, book())
	}
	assert.InDelta(t, (100 * time.Second / 47).Seconds(), turns[99].at.Sub(now).Seconds(), 0.001, "one every 1/47 s after the burst")
	p.giveBackLocked(turns[50]) // not the last: nothing given back yet
	assert.Equal(t, turns[99].after, p.tat)
	for i := len(turns) - 1; i >= 0; i-- {
		if i != 50 { // its waiter has gone: a gap
			p.giveBackLocked(turns[i])
		}
	}
	assert.Equal(t, turns[50].after, p.tat, "the tail given back, down to the gap")
	for i := 50; i >= 0; i-- {
		p.giveBackLocked(turns[i])
	}
	assert.Equal(t, before, p.tat, "back where it was, to the nanosecond")
	p.mu.Unlock()

	full := newPacer(47, 5, now)
	full.spendTo(0, now) // the server says none are left
	full.mu.Lock()
	assert.Equal(t, 0, full.availableLocked(now))
	spent := full.tat
	var booked []turn
	for i := 0; i < 3; i++ {
		booked = append(booked, full.bookLocked(full.nextLocked(now)))
	}
	for i := len(booked) - 1; i >= 0; i-- {
		full.giveBackLocked(booked[i])
	}
	assert.Equal(t, spent, full.tat, "what the server said is spent stays spent")
	full.mu.Unlock()

	slow := newPacer(1.0/60, 1, now)
	slow.allow(now)
	slow.set(100, 1, now)
	assert.True(t, slow.allow(now.Add(20*time.Millisecond)), "a pace that rises applies at once: the turn spent was one turn, now 10 ms")

	u := newPacer(math.Inf(1), 1, now)
	for i := 0; i < 1000; i++ {
		require.True(t, u.allow(now), "unpaced")
	}
	u.set(10, 2, now)
	assert.True(t, u.allow(now), "from no pace: one turn at hand, not a burst")
	assert.False(t, u.allow(now))
	assert.True(t, u.allow(now.Add(100*time.Millisecond)))
}

// TestInFlightCountsDoNotDrift: whatever a workload does (429s, retries,
// refusals, cancelled contexts), the governor's and the client's counts of
// requests in flight are back at zero when it is over; a Done without its
// Wait does not push them below zero (r minus a negative count would keep
// tokens the server says are gone).
func TestInFlightCountsDoNotDrift(t *testing.T) {
	t.Parallel()
	ep := Endpoint{Method: http.MethodPost, Path: deskCustomersTemplate}
	g := NewRateLimiter(RateLimiterConfig{}).(*governor)
	g.Done(ep, Outcome{StatusCode: 204, RateLimit: noRateLimit()})
	assert.Zero(t, g.inflight.Load())
	assert.Zero(t, g.bucket(ep).inflight.Load())

	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 4 {
		case 0:
			w.Header().Set("Retry-After", "0")
			w.Header().Set("RateLimit-Reason", "jira-burst-based")
			w.WriteHeader(http.StatusTooManyRequests)
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			time.Sleep(time.Millisecond)
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, WithRetryWait(time.Millisecond, 2*time.Millisecond), WithRateLimitWait(200*time.Millisecond))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+(i*j)%40)*time.Millisecond)
				_ = c.Customers.Add(ctx, "1", CustomerIDs{AccountIDs: []string{"a"}})
				cancel()
			}
		}()
	}
	wg.Wait()
	cg := c.limiter.(*governor)
	assert.Zero(t, cg.inflight.Load(), "the governor's count")
	cg.mu.RLock()
	for ep, b := range cg.buckets {
		assert.Zero(t, b.inflight.Load(), "%v", ep)
		assert.Zero(t, b.queued.Load(), "%v", ep)
	}
	cg.mu.RUnlock()
	assert.False(t, c.slots.starved())
	c.slots.mu.Lock()
	assert.Zero(t, c.slots.used, "the client's slots")
	c.slots.mu.Unlock()
	cg.wmu.Lock()
	assert.Empty(t, cg.waiting, "turns left registered")
	cg.wmu.Unlock()
}

// TestSameNamePoliciesKeepTheTighter: an answer naming one policy twice
// (two burst limits on one endpoint) is read as the tighter of the two:
// the lower rate, the fewer remaining, the later reset; read the other
// way, listing (5 a second) was paced at 100 a second.
func TestSameNamePoliciesKeepTheTighter(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, order := range [][2]string{{"5", "100"}, {"100", "5"}} {
		h := http.Header{
			"Ratelimit-Policy": {`"jira-burst-based";q=` + order[0] + `;w=1, "jira-burst-based";q=` + order[1] + `;w=1`},
			"Ratelimit":        {`"jira-burst-based";r=3;t=1, "jira-burst-based";r=0;t=2`},
		}
		ps := policiesOf(h, now)
		require.Len(t, ps, 1)
		assert.Equal(t, 5, ps[0].Quota)
		assert.Equal(t, time.Second, ps[0].Window)
		assert.Equal(t, 0, ps[0].Remaining)
		assert.Equal(t, localTime(now, 2*time.Second), ps[0].Reset)
	}
}

// TestRecoveryDoesNotShieldTheNextCut: a 429 half a second after a step of
// recovery cuts the pace again (the step was taken for a cut, which
// allows one cut a second).
func TestRecoveryDoesNotShieldTheNextCut(t *testing.T) {
	t.Parallel()
	g := NewRateLimiter(RateLimiterConfig{Cloud: true}).(*governor)
	b := g.bucket(Endpoint{Method: http.MethodPost, Path: deskCustomersTemplate})
	t0 := time.Now()
	g.cutRate(b, 0, t0)
	cut := b.lim.limit()
	b.recover(g, t0.Add(11*time.Second))
	up := b.lim.limit()
	require.Greater(t, up, cut, "a step of recovery")
	g.cutRate(b, 0, t0.Add(11500*time.Millisecond))
	assert.Less(t, b.lim.limit(), up, "the 429 after it cut the pace")
}
