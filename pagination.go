package servicedesk

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

// PageLinks are the links of a [Page]. They name the site's host even when
// the page came through the OAuth 2.0 gateway.
type PageLinks struct {
	Self    string `json:"self,omitempty"`
	Base    string `json:"base,omitempty"`
	Context string `json:"context,omitempty"`
	Next    string `json:"next,omitempty"`
	Prev    string `json:"prev,omitempty"`
}
