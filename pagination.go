package servicedesk

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"strconv"
	"strings"
)

// Page is one page of a JSM list: every list endpoint of the servicedeskapi
// returns this shape.
type Page[T any] struct {
	Size       int       `json:"size"`
	Start      int       `json:"start"`
	Limit      int       `json:"limit"`
	IsLastPage bool      `json:"isLastPage"`
	Values     []T       `json:"values"`
	Expands    []string  `json:"_expands,omitempty"`
	Links      PageLinks `json:"_links"`
}

// validate refuses a decoded object that is not a page: every page of the
// servicedeskapi has a values array, even an empty one. Without this check a
// 200 such as {"status":"maintenance"} would be an empty page, and a walk
// would end quietly with nothing.
func (p *Page[T]) validate() error {
	if p.Values == nil {
		return errors.New(`answer has no "values" array: not a page`)
	}
	if p.Size < 0 || p.Start < 0 || p.Limit < 0 {
		return fmt.Errorf("page has a negative size, start or limit (%d, %d, %d)", p.Size, p.Start, p.Limit)
	}
	return nil
}

// PageLinks are the links of a [Page]. They name the site's host even when
// the page came through the OAuth 2.0 gateway.
type PageLinks struct {
	Self    string `json:"self,omitempty"`
	Base    string `json:"base,omitempty"`
	Context string `json:"context,omitempty"`
	Next    string `json:"next,omitempty"`
	Prev    string `json:"prev,omitempty"`
}

// pages walks a list endpoint page by page from first on, following
// _links.next safely (see [Client.nextRequest]). A non-nil err (bad input)
// is yielded once instead. One page is held at a time (two with
// WithPrefetch): memory stays flat however long the list.
func pages[T any](ctx context.Context, c *Client, first *request, err error) iter.Seq2[*Page[T], error] {
	return func(yield func(*Page[T], error) bool) {
		if err != nil {
			yield(nil, err)
			return
		}
		fetch := func(ctx context.Context, r *request) (*Page[T], error) {
			page := new(Page[T])
			if err := c.do(ctx, r, page); err != nil {
				return nil, err
			}
			return page, nil
		}
		var ahead *prefetch[*Page[T]]
		defer func() { ahead.stop() }()

		var seen recentURLs
		seen.add(first.url.String())
		r := first
		page, err := fetch(ctx, r)
		for {
			if err != nil {
				yield(nil, err)
				return
			}
			next, nextErr := c.nextRequest(r, page.cursor(), &seen)
			if next != nil {
				seen.add(next.url.String())
				if c.prefetch {
					ahead = startPrefetch(ctx, next, fetch, c.onRateLimit)
				}
			}
			if !yield(page, nil) {
				return
			}
			if nextErr != nil {
				yield(nil, nextErr)
				return
			}
			if next == nil {
				return
			}
			if ahead != nil {
				page, err = ahead.wait()
			} else {
				page, err = fetch(ctx, next)
			}
			r = next
		}
	}
}

// recentURLs remembers the last few pages a walk requested, so a server
// whose next links go round in a circle is caught. It is bounded, so a walk
// of any length holds the same memory; a server that goes back further is
// caught by the start guard in nextRequest.
type recentURLs struct {
	urls [16]string
	n    int
}

func (r *recentURLs) add(u string) {
	r.urls[r.n%len(r.urls)] = u
	r.n++
}

func (r *recentURLs) has(u string) bool {
	for i := 0; i < min(r.n, len(r.urls)); i++ {
		if r.urls[i] == u {
			return true
		}
	}
	return false
}

// prefetch is one page being fetched while the caller works on the last.
type prefetch[P any] struct {
	cancel   context.CancelFunc
	done     chan struct{}
	page     P
	err      error
	panicked any // a hook's panic on the fetching goroutine, raised again on the walker's
	// The rate-limit hook promises to run on the goroutine of the call;
	// the fetch's observations wait here for the goroutine walking the
	// pages.
	sink   *rateLimitSink
	onRate func(RateLimit)
}

func startPrefetch[P any](ctx context.Context, r *request, fetch func(context.Context, *request) (P, error), onRate func(RateLimit)) *prefetch[P] {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetch[P]{cancel: cancel, done: make(chan struct{}), onRate: onRate}
	if onRate != nil {
		p.sink = new(rateLimitSink)
		ctx = context.WithValue(ctx, rateLimitSinkKey{}, p.sink)
	}
	go func() {
		defer close(p.done)
		// A panicking hook must not take the process down from a
		// goroutine nobody can recover on: it is raised again on the
		// goroutine walking the pages, as if the fetch had run there.
		defer func() { p.panicked = recover() }()
		p.page, p.err = fetch(ctx, r)
	}()
	return p
}

// wait returns the prefetched page.
func (p *prefetch[P]) wait() (P, error) {
	<-p.done
	p.cancel()
	p.sink.deliver(p.onRate)
	p.repanic()
	return p.page, p.err
}

// stop abandons a prefetch the caller no longer wants and waits for its
// goroutine, so none outlives the walk.
func (p *prefetch[P]) stop() {
	if p != nil {
		p.cancel()
		<-p.done
		p.sink.deliver(p.onRate)
		p.repanic()
	}
}

func (p *prefetch[P]) repanic() {
	if v := p.panicked; v != nil {
		p.panicked = nil
		panic(v)
	}
}

// rateLimitSink holds what a prefetching call's answers said about rate
// limits. Only the prefetch goroutine adds, and only after it is done does
// the walking goroutine deliver, so no lock is needed.
type rateLimitSink struct{ seen []RateLimit }

type rateLimitSinkKey struct{}

func (s *rateLimitSink) add(rl RateLimit) { s.seen = append(s.seen, rl) }

func (s *rateLimitSink) deliver(fn func(RateLimit)) {
	if s == nil {
		return
	}
	seen := s.seen
	s.seen = nil
	for _, rl := range seen {
		fn(rl)
	}
}

// values flattens pages into their values, in order.
func values[T any](seq iter.Seq2[*Page[T], error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for page, err := range seq {
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, v := range page.Values {
				if !yield(v, nil) {
					return
				}
			}
		}
	}
}

// cursor is what paging needs of a page, whatever its values.
type cursor struct {
	start, size, count int
	isLastPage         bool
	links              PageLinks
}

func (p *Page[T]) cursor() cursor {
	return cursor{start: p.Start, size: p.Size, count: len(p.Values), isLastPage: p.IsLastPage, links: p.Links}
}

// nextRequest returns the request for the page after cur's, or nil at the
// end: on isLastPage or an empty page.
//
// The next link names the site's host and path even behind the OAuth 2.0
// gateway or a Data Center proxy, so it is never requested as it is: the
// part after _links.base (or after /rest/servicedeskapi/) is resolved onto
// the client's own base URL with the link's query. Credentials therefore
// never leave the configured host. Without a usable link the walk goes on
// from start+size with the same query. A server that does not advance ends
// the walk with an error wrapping ErrInvalidResponse.
func (c *Client) nextRequest(cur *request, p cursor, seen *recentURLs) (*request, error) {
	if p.isLastPage || p.count == 0 {
		return nil, nil
	}
	next := *cur // same operation, another page
	if u, ok := c.resolveNext(p.links); ok {
		next.url = u
	} else {
		step := p.size
		if step <= 0 {
			step = p.count
		}
		q := cur.url.Query()
		q.Set("start", strconv.Itoa(p.start+step))
		next.url = withQuery(cur.url, q)
	}
	if start, err := strconv.Atoi(next.url.Query().Get("start")); err == nil && start <= p.start {
		return nil, stalled(cur, fmt.Sprintf("next page starts at %d, this one at %d", start, p.start))
	}
	if seen.has(next.url.String()) {
		return nil, stalled(cur, "next page was already fetched")
	}
	return &next, nil
}

func stalled(cur *request, why string) error {
	return fmt.Errorf("%w: %s %s: pagination does not advance: %s", ErrInvalidResponse, cur.method, cur.url.EscapedPath(), why)
}

// resolveNext maps links.Next onto the client's base URL; ok is false when
// there is no usable link.
func (c *Client) resolveNext(links PageLinks) (*url.URL, bool) {
	if links.Next == "" {
		return nil, false
	}
	u, err := url.Parse(links.Next)
	if err != nil {
		return nil, false
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, false
	}
	p := u.EscapedPath()
	rel, ok := "", false
	// _links.base is the API root as the server sees it ("…/jira/rest/
	// servicedeskapi"); anything else there says nothing about the path.
	if b, err := url.Parse(links.Base); err == nil && strings.HasSuffix(strings.TrimRight(b.EscapedPath(), "/"), strings.TrimRight(apiRoot, "/")) {
		rel, ok = strings.CutPrefix(p, strings.TrimRight(b.EscapedPath(), "/")+"/")
	}
	if !ok {
		if i := strings.Index(p, apiRoot); i >= 0 {
			rel, ok = p[i+len(apiRoot):], true
		}
	}
	if !ok || !safeRelPath(rel) {
		return nil, false
	}
	return c.apiURL(rel, q), true
}

// safeRelPath reports whether an escaped relative path from a server's link
// stays below the API root however a proxy decodes it: no empty segment,
// and none that segmentProblem refuses.
func safeRelPath(rel string) bool {
	if rel == "" {
		return false
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == "" || segmentProblem(seg) != "" {
			return false
		}
	}
	return true
}

// segmentProblem says why an escaped path segment could take a path
// elsewhere once a server or proxy decodes it, or "": a malformed escape,
// "." or "..", an escaped "/" or "\", a ";" (Tomcat, which Jira runs on,
// drops ";params" before it resolves "..", so "/rest/..;/x" leaves /rest/),
// or an escaped "%" (decoded twice, "%252e%252e" is ".."). Next links and
// Client.Do's paths are both held to it.
func segmentProblem(seg string) string {
	plain, err := url.PathUnescape(seg)
	switch {
	case err != nil:
		return "holds a malformed escape"
	case plain == "." || plain == "..":
		return "must not hold . or .. segments"
	case strings.ContainsAny(plain, "/\\"):
		return `must not hold an escaped "/" or "\"`
	case strings.Contains(plain, ";"):
		return `must not hold ";" (servers read what follows as parameters and drop it)`
	case strings.Contains(plain, "%"):
		return `must not hold an escaped "%" (decoded twice, it could be anything)`
	}
	return ""
}

// withQuery is u with its query replaced.
func withQuery(u *url.URL, q url.Values) *url.URL {
	cp := *u
	cp.RawQuery = q.Encode()
	return &cp
}
