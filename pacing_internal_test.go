package servicedesk

// The governor's pacing under the faults an adversarial review found
// (each test failed on the code it reviewed).

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk-go/servicedesk/internal/limits"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOverflowKeepsTheOperationsPace: once Client.Do has named maxBuckets
// endpoints, a typed operation's endpoint seen for the first time still
// gets a bucket of its own, at its own pace: listing a desk's customers
// (5 a second) is not folded into the method's "{other}" bucket at
// Cloud's default 100.
func TestOverflowKeepsTheOperationsPace(t *testing.T) {
	t.Parallel()
	g := NewRateLimiter(RateLimiterConfig{Cloud: true}).(*governor)
	for i := 0; i < maxBuckets; i++ {
		g.bucket(Endpoint{Method: http.MethodGet, Path: fmt.Sprintf("/rest/api/3/user/properties/key%c%c", 'a'+i/26, 'a'+i%26)})
	}
	list := g.bucket(Endpoint{Method: http.MethodGet, Path: deskCustomersTemplate})
	assert.Equal(t, limits.PaceRate(limits.CloudListCustomersRate), list.lim.limit(), "listing is paced for Cloud's 5 a second")
}

// TestRefusalTextAddsUp: a call that sat out part of a pause and is then
// refused (the pause was extended past its allowance) is told what is
// left of its allowance: 500 ms in all, 300 ms of it gone.
func TestRefusalTextAddsUp(t *testing.T) {
	t.Parallel()
	g := NewRateLimiter(RateLimiterConfig{}).(*governor)
	ep := Endpoint{Method: http.MethodPost, Path: createCustomerTemplate}
	b := g.bucket(ep)
	g.pauseEndpoint(b, &limits.Pause{Until: time.Now().Add(300 * time.Millisecond), Reason: "jira-burst-based", Cause: "after a 429"})
	time.AfterFunc(100*time.Millisecond, func() {
		g.pauseEndpoint(b, &limits.Pause{Until: time.Now().Add(time.Second), Reason: "jira-burst-based", Cause: "after a 429"})
	})
	err := g.wait(context.Background(), b, 500*time.Millisecond)
	require.Error(t, err)
	t.Log(err)
	m := regexp.MustCompile(`allowance has (\S+) left`).FindStringSubmatch(err.Error())
	require.Len(t, m, 2)
	left, _ := time.ParseDuration(m[1])
	assert.LessOrEqual(t, left, 210*time.Millisecond, "300 ms of the 500 ms allowed went in the first pause")
}

// TestRepacedTurnsKeepTheirOrder: when the pace changes, requests already
// waiting their turn are paced again in the order they queued: repace
// books their new turns in that order (waking them all to race for new
// turns once put the first in line last).
func TestRepacedTurnsKeepTheirOrder(t *testing.T) {
	t.Parallel()
	ep := Endpoint{Method: http.MethodPost, Path: deskCustomersTemplate}
	g := NewRateLimiter(RateLimiterConfig{Rates: map[Endpoint]float64{ep: 10}}).(*governor)
	b := g.bucket(ep)
	const n = 12
	order := make(chan int, n)
	for i := 0; i < n; i++ {
		go func() {
			if err := g.wait(context.Background(), b, time.Minute); err == nil {
				order <- i
			}
		}()
		// The next goroutine asks only once this one holds its turn: the
		// first takes the bucket's one token, the others queue.
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			g.wmu.Lock()
			queued := len(g.waiting)
			g.wmu.Unlock()
			if queued == i && len(order) == 1 {
				break
			}
		}
	}
	g.setRate(b, 20, "jira-burst-based") // the pace changes (18 a second, a burst of 1): every waiting turn is re-paced, one after the other
	var got []int
	for i := 0; i < n; i++ {
		select {
		case v := <-order:
			got = append(got, v)
		case <-time.After(5 * time.Second):
			t.Fatalf("only %v admitted", got)
		}
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	assert.Equal(t, want, got, "admitted in the order they queued")
}

// TestEndpointPaceHoldsBehindTheGlobalBucket: a request that Data
// Center's client-wide bucket holds back takes its endpoint's turn at the
// time it goes, not earlier: requests held back by the global bucket do
// not go out bunched, past the endpoint's limit.
func TestEndpointPaceHoldsBehindTheGlobalBucket(t *testing.T) {
	t.Parallel()
	x := Endpoint{Method: http.MethodGet, Path: "/rest/api/2/myself"}
	y := Endpoint{Method: http.MethodPost, Path: deskCustomersTemplate}
	const yLimit = 5 // requests a second: paced at 4, burst 1
	g := NewRateLimiter(RateLimiterConfig{Rates: map[Endpoint]float64{y: yLimit}}).(*governor)
	g.repace(func() { g.global.set(10, 1, time.Now()) }) // Data Center: 10 a second for the user
	var mu sync.Mutex
	var sent []time.Time
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ { // another endpoint's requests queue in the global bucket for half a second
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, g.Wait(context.Background(), x, time.Minute))
		}()
	}
	time.Sleep(20 * time.Millisecond)
	for i := 0; i < 7; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g.Wait(context.Background(), y, time.Minute) == nil {
				mu.Lock()
				sent = append(sent, time.Now())
				mu.Unlock()
			}
		}()
		time.Sleep(5 * time.Millisecond) // in order
	}
	wg.Wait()
	most := 0
	for i := range sent {
		n := 0
		for j := range sent {
			if d := sent[j].Sub(sent[i]); d >= 0 && d < time.Second {
				n++
			}
		}
		most = max(most, n)
	}
	assert.LessOrEqual(t, most, yLimit, "requests to y in one second")
}

// TestDataCenterPaceHasAMargin: told Data Center's bucket (10 tokens, 20
// a second), the governor keeps a request short of it, as for a burst
// limit: from full, the eleventh request does not leave at the moment the
// server's bucket holds exactly one token.
func TestDataCenterPaceHasAMargin(t *testing.T) {
	t.Parallel()
	g := NewRateLimiter(RateLimiterConfig{}).(*governor)
	b := g.bucket(Endpoint{Method: http.MethodPost, Path: deskCustomersTemplate})
	rl := noRateLimit()
	rl.FillRate, rl.Interval, rl.Limit, rl.Remaining = 20, time.Second, 10, 9
	g.done(b, Outcome{StatusCode: http.StatusNoContent, RateLimit: rl})
	time.Sleep(600 * time.Millisecond) // both buckets fill up
	now := time.Now()
	var at []time.Time
	for i := 0; i < 11; i++ {
		w, turn := g.reserve(b, now, now.Add(time.Hour))
		require.NotNil(t, w)
		at = append(at, turn)
	}
	t.Logf("first turn at +%v, eleventh at +%v", at[0].Sub(now), at[10].Sub(now))
	assert.Greater(t, at[10].Sub(at[0]), 50*time.Millisecond, "the eleventh request leaves when the server's bucket has one token, not more")
}

// TestFasterPaceAppliesAtOnce: after a turn taken at a slow pace (one a
// minute, the floor any answer can set), an answer announcing 100 a
// second makes the next turn come within a second: the turns spent count
// in turns, not in time.
func TestFasterPaceAppliesAtOnce(t *testing.T) {
	t.Parallel()
	g := NewRateLimiter(RateLimiterConfig{}).(*governor)
	ep := Endpoint{Method: http.MethodPost, Path: deskCustomersTemplate}
	b := g.bucket(ep)
	g.setRate(b, 1.0/3600, "jira-burst-based") // an answer: q=1;w=3600, bounded to one a minute
	require.NoError(t, g.wait(context.Background(), b, 0))
	g.done(b, Outcome{StatusCode: http.StatusNoContent, RateLimit: noRateLimit()})
	g.setRate(b, 100, "jira-burst-based") // the next answer: q=100;w=1
	err := g.wait(context.Background(), b, time.Second)
	if err != nil {
		t.Log(err)
	}
	assert.NoError(t, err, "at 100 a second, the next turn is within a second")
}
