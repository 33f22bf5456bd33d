package limits

import "time"

// DataCenterPace is how a limiter paces Data Center's bucket, the one
// bucket for all of a user's requests that an answer announces with
// X-RateLimit-FillRate tokens every X-RateLimit-Interval-Seconds, of
// X-RateLimit-Limit tokens: fill is its refill in requests a second
// (bounded, as every rate a server sends); rate and burst pace it with
// the same margin as a burst limit (PaceRate, PaceBurst), a request short
// of it, the burst no more than limit-1 tokens when limit is known
// (above 0) and at least 1. interval must be above 0.
func DataCenterPace(fillRate int, interval time.Duration, limit int) (fill, rate float64, burst int) {
	fill = BoundRate(float64(fillRate) / interval.Seconds())
	rate, burst = PaceRate(fill), PaceBurst(fill)
	if limit > 0 {
		burst = max(1, min(burst, limit-1))
	}
	return fill, rate, burst
}
