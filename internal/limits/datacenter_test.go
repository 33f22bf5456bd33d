package limits

import (
	"testing"
	"time"
)

func TestDataCenterPace(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		fillRate int
		interval time.Duration
		limit    int
		fill     float64
		rate     float64
		burst    int
	}{
		{200, time.Second, 20, 200, 191, 8},                            // a burst limit's margin: 8 + 191 < 200
		{200, time.Second, 5, 200, 191, 4},                             // no more than the bucket holds, a token short
		{200, time.Second, 0, 200, 191, 8},                             // the bucket's size unknown
		{4, time.Second, 1, 4, 3, 1},                                   // below 10 a second: burst + rate <= fill
		{10, 2 * time.Second, 100, 5, 4, 1},                            // per interval
		{1, 1e9 * time.Second, 1, MinRate, MinRate, 1},                 // bounded: a request a minute
		{1 << 30, time.Second, 0, MaxRate, MaxRate - 40000 - 1, 40000}, // bounded: 4 % of a million
	} {
		fill, rate, burst := DataCenterPace(c.fillRate, c.interval, c.limit)
		if fill != c.fill || rate != c.rate || burst != c.burst {
			t.Errorf("DataCenterPace(%d, %v, %d) = %v, %v, %d; want %v, %v, %d",
				c.fillRate, c.interval, c.limit, fill, rate, burst, c.fill, c.rate, c.burst)
		}
	}
}
