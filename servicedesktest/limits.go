package servicedesktest

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// BurstLimit limits the requests to one endpoint and method in each window,
// as Jira Cloud's burst limits do (RateLimit-Reason: jira-burst-based):
// Atlassian documents 5 a second for listing a desk's customers.
type BurstLimit struct {
	// Method is the HTTP method limited; "" limits every method, each
	// counted apart.
	Method string
	// Path is the escaped path limited, below the context path, "*"
	// standing for one segment ("/rest/servicedeskapi/servicedesk/*/customer");
	// "" limits every path, each counted apart.
	Path string
	// Requests are allowed in each Window (1 s when zero).
	Requests int
	Window   time.Duration
}

// WithBurstLimit adds a burst limit. Once an endpoint has had its Requests
// in the current window, it answers 429 until the window ends, with
// Retry-After (whole seconds, at least 1), X-RateLimit-Reset, X-RateLimit-
// Limit, X-RateLimit-Remaining: 0, RateLimit-Reason: jira-burst-based and
// the structured headers (see [WithAnnounce]). Other endpoints go on.
func WithBurstLimit(l BurstLimit) Option {
	return func(s *Server) {
		if l.Window <= 0 {
			l.Window = time.Second
		}
		s.limits.bursts = append(s.limits.bursts, &burst{BurstLimit: l, windows: map[string]*window{}})
	}
}

// Quota is an app's points quota, as Jira's hourly quotas for OAuth 2.0 and
// Connect apps: each request costs a point, plus two for each customer it
// returns (a page of 50 costs 101). Once the quota is spent every request is
// refused until the window ends, whatever its endpoint.
type Quota struct {
	Points int
	// Window is an hour on Jira; use a short one in tests.
	Window time.Duration
	// Name is the policy's name in the structured headers; default
	// "global-app-quota" ("tenant-app-quota" is the other).
	Name string
	// Reason is RateLimit-Reason of its 429s; default
	// "jira-quota-global-based".
	Reason string
	// Gateway answers its 429s as the OAuth 2.0 gateway was seen to: no
	// Retry-After and no reason, only X-RateLimit-Remaining: 0,
	// X-RateLimit-Reset and X-Failure-Category.
	Gateway bool
}

// WithQuota adds a points quota. Every answer carries
// X-RateLimit-NearLimit: true once less than 20 % of it is left.
func WithQuota(q Quota) Option {
	return func(s *Server) {
		if q.Window <= 0 {
			q.Window = time.Hour
		}
		if q.Name == "" {
			q.Name = "global-app-quota"
		}
		if q.Reason == "" {
			q.Reason = "jira-quota-global-based"
		}
		s.limits.quota = &quota{Quota: q}
	}
}

// Announce says when the server sends the structured rate-limit headers,
// RateLimit-Policy: "<name>";q=<quota>;w=<seconds> and
// RateLimit: "<name>";r=<remaining>;t=<seconds to reset>.
type Announce int

const (
	// AnnounceOn429 sends them on 429s only (the default).
	AnnounceOn429 Announce = iota
	// AnnounceAlways sends them on every answer of a limited endpoint, as
	// live Jira Cloud sites were seen to.
	AnnounceAlways
	// AnnounceBeta sends the informational Beta-RateLimit-Policy and
	// Beta-RateLimit on every answer, and the enforced headers on 429s.
	AnnounceBeta
)

// WithAnnounce sets when the limits of [WithBurstLimit] and [WithQuota] are
// announced.
func WithAnnounce(a Announce) Option {
	return func(s *Server) { s.limits.announce = a }
}

// limits are the server's rate limits.
type limits struct {
	bursts   []*burst
	quota    *quota
	announce Announce
	epoch    time.Time // windows are counted from here
}

type burst struct {
	BurstLimit
	windows map[string]*window // by method and path
}

type quota struct {
	Quota
	window
}

// window is a fixed window and what was used of it.
type window struct {
	index int64
	used  int
}

// at moves w to the window that holds now and says when it ends.
func (w *window) at(epoch, now time.Time, length time.Duration) (end time.Time) {
	i := int64(now.Sub(epoch) / length)
	if i != w.index {
		w.index, w.used = i, 0
	}
	return epoch.Add(time.Duration(i+1) * length)
}

// admit decides whether r may be served now. It sets the headers of the
// answer, and on false has written the 429.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, path string, now time.Time) bool {
	l := &s.limits
	h := w.Header()
	if q := l.quota; q != nil {
		end := q.at(l.epoch, now, q.Window)
		left := q.Points - q.used
		if left*5 < q.Points {
			h.Set("X-RateLimit-NearLimit", "true")
		}
		if left <= 0 {
			if q.Gateway {
				h.Set("X-RateLimit-Remaining", "0")
				h.Set("X-RateLimit-Reset", end.UTC().Format(time.RFC3339))
				h.Set("X-Failure-Category", "FAILURE CLIENT RATE LIMITED")
			} else {
				throttle(h, q.Name, q.Reason, q.Points, q.Window, end, now)
			}
			s.writeError(w, http.StatusTooManyRequests, "Rate limit exceeded: the app's quota is spent until "+end.UTC().Format(time.RFC3339)+".", "sd.error.rate.limit")
			return false
		}
		if l.announce != AnnounceOn429 {
			announce(h, l.announce == AnnounceBeta, q.Name, q.Points, q.Window, left-1, end, now)
		}
	}
	for _, b := range l.bursts {
		if (b.Method != "" && b.Method != r.Method) || (b.Path != "" && !matchPath(b.Path, path)) {
			continue
		}
		key := r.Method + " " + path
		win := b.windows[key]
		if win == nil {
			win = &window{index: -1}
			b.windows[key] = win
		}
		end := win.at(l.epoch, now, b.Window)
		if win.used >= b.Requests {
			h.Set("X-RateLimit-Limit", strconv.Itoa(b.Requests))
			h.Set("X-RateLimit-Remaining", "0")
			throttle(h, "jira-burst-based", "jira-burst-based", b.Requests, b.Window, end, now)
			s.writeError(w, http.StatusTooManyRequests, "Rate limit exceeded.", "sd.error.rate.limit")
			return false
		}
		win.used++
		if l.announce != AnnounceOn429 {
			announce(h, l.announce == AnnounceBeta, "jira-burst-based", b.Requests, b.Window, b.Requests-win.used, end, now)
		}
	}
	return true
}

// charge spends a served request's points from the quota.
func (s *Server) charge(customers int) {
	if q := s.limits.quota; q != nil {
		q.used += 1 + 2*customers
	}
}

// throttle sets the headers of a 429 of the named policy.
func throttle(h http.Header, name, reason string, q int, w time.Duration, end, now time.Time) {
	h.Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(end.Sub(now)))))
	h.Set("X-RateLimit-Reset", end.UTC().Format(time.RFC3339))
	h.Set("RateLimit-Reason", reason)
	addPolicy(h, "", name, q, w, 0, end, now)
}

// announce sets the structured headers of an answer that was served.
func announce(h http.Header, beta bool, name string, q int, w time.Duration, left int, end, now time.Time) {
	prefix := ""
	if beta {
		prefix = "Beta-"
	}
	addPolicy(h, prefix, name, q, w, max(left, 0), end, now)
}

// addPolicy adds one policy to the structured headers; several policies
// share one header, comma-separated.
func addPolicy(h http.Header, prefix, name string, q int, w time.Duration, left int, end, now time.Time) {
	appendList(h, prefix+"RateLimit-Policy", fmt.Sprintf("%q;q=%d;w=%d", name, q, max(1, ceilSeconds(w))))
	appendList(h, prefix+"RateLimit", fmt.Sprintf("%q;r=%d;t=%d", name, left, max(0, ceilSeconds(end.Sub(now)))))
}

func appendList(h http.Header, key, member string) {
	if v := h.Get(key); v != "" {
		member = v + ", " + member
	}
	h.Set(key, member)
}

func ceilSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

// matchPath reports whether an escaped path matches a pattern in which "*"
// stands for one segment.
func matchPath(pattern, path string) bool {
	ps, segs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(segs) {
		return false
	}
	for i := range ps {
		if ps[i] != "*" && ps[i] != segs[i] {
			return false
		}
	}
	return true
}
