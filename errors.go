package servicedesk

import (
	"bytes"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinels of the status classes. errors.Is(err, ErrNotFound) holds for an
// [*Error] with status 404, and so on; ErrServer matches any 5xx.
// ErrInvalidInput is wrapped by errors for input rejected before any request.
var (
	ErrBadRequest   = errors.New("servicedesk: bad request")
	ErrUnauthorized = errors.New("servicedesk: unauthorized")
	ErrForbidden    = errors.New("servicedesk: forbidden")
	ErrNotFound     = errors.New("servicedesk: not found")
	ErrConflict     = errors.New("servicedesk: conflict")
	ErrRateLimited  = errors.New("servicedesk: rate limited")
	ErrServer       = errors.New("servicedesk: server error")
	ErrInvalidInput = errors.New("servicedesk: invalid input")

	// ErrInvalidResponse is wrapped by the error for a 2xx answer whose body
	// is not what the operation returns: not JSON, truncated, too large, or
	// missing what every answer has.
	ErrInvalidResponse = errors.New("servicedesk: invalid response")
)

// maxErrorBody bounds how much of an error answer is read and kept.
const maxErrorBody = 1 << 20

// maxMessage bounds the excerpt of a non-JSON body used as the message.
const maxMessage = 200

// Error is every non-2xx answer from the server.
type Error struct {
	StatusCode    int
	Method        string            // HTTP method of the request
	URL           string            // request URL, with no credentials in it
	Message       string            // errorMessage, or errorMessages joined
	I18nKey       string            // i18nErrorMessage.i18nKey, when present
	ErrorMessages []string          // Jira platform shape {"errorMessages": [...]}
	Errors        map[string]string // Jira platform shape {"errors": {...}}
	RequestID     string            // X-AREQUESTID response header
	RetryAfter    time.Duration     // from Retry-After / X-RateLimit-Reset, when the server sent one
	Body          []byte            // the raw body, truncated

	// Needs says, on a 403 (and on a 401 with an OAuth 2.0 token, whose
	// missing scope Jira answers with 401), what the operation requires:
	// the Jira permission and the OAuth 2.0 and Connect scopes.
	Needs string
	// Hint says what to do about it, when the SDK can tell: on a 401, what
	// to check for the way the client authenticates; after a Create that
	// may have reached the server, that the customer may exist.
	Hint string
	// Attempts is how many times the request was sent, retries included.
	// 0 means it never was: the client's rate limiter refused it (a 429
	// with RetryAfter and RateLimit.Reason).
	Attempts int
	// RateLimit holds the rate-limit headers of the answer, if it had any.
	RateLimit RateLimit
}

// Error reads like
// "servicedesk: POST /rest/servicedeskapi/customer: 409 Conflict: <message> (request id …)",
// followed by what to do: how long to wait, how many attempts were made,
// a hint, what the operation needs. It is built from the exported fields
// alone, so an Error made by hand (in a test's fake, say) reads the same.
// The URL's query is left out: it may hold a customer's email.
func (e *Error) Error() string {
	if e == nil {
		return "servicedesk: <nil *Error>"
	}
	var b strings.Builder
	b.WriteString("servicedesk: ")
	if e.Method != "" || e.URL != "" {
		b.WriteString(e.Method)
		if p := pathOf(e.URL); p != "" {
			if e.Method != "" {
				b.WriteByte(' ')
			}
			b.WriteString(p)
		}
		b.WriteString(": ")
	}
	b.WriteString(strconv.Itoa(e.StatusCode))
	text := http.StatusText(e.StatusCode)
	if text != "" {
		b.WriteByte(' ')
		b.WriteString(text)
	}
	// An edge's page often says no more than the status: say it once.
	if e.Message != "" && !strings.EqualFold(e.Message, text) && !strings.EqualFold(e.Message, strconv.Itoa(e.StatusCode)+" "+text) {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id ")
		b.WriteString(e.RequestID)
		b.WriteByte(')')
	}
	var more []string
	if e.RetryAfter > 0 {
		after := "retry after " + e.RetryAfter.Round(time.Millisecond).String()
		if e.RateLimit.Reason != "" {
			after += " (" + e.RateLimit.Reason + ")"
		}
		more = append(more, after)
	}
	if e.Attempts > 1 {
		more = append(more, "gave up after "+strconv.Itoa(e.Attempts)+" attempts")
	}
	more = append(more, e.Hint, e.Needs)
	head, tail := b.String(), joinNonEmpty("; ", more...)
	if tail == "" {
		return head
	}
	// A message's full stop before "; " would read ".;".
	return strings.TrimSuffix(head, ".") + "; " + tail
}

// pathOf is the escaped path of a URL, without scheme, host or query; a
// string that does not parse as a URL gives "".
func pathOf(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.EscapedPath()
}

// Is reports whether target is the sentinel of e's status class. Create's
// 400 for an email that already has an account is ErrConflict too, as the
// 409 that StrictConflictStatusCode asks for is.
func (e *Error) Is(target error) bool {
	if e == nil || target == nil {
		return false
	}
	return target == statusSentinel(e.StatusCode) || target == ErrConflict && e.duplicateEmail()
}

// duplicateEmail reports Create's 400 for an email that already has an
// account (POST .../rest/servicedeskapi/customer, whatever the base path),
// from the exported fields alone, so that an *Error made by hand matches as
// one from the server does.
//
// Atlassian documents the status but not the body. The servicedeskapi
// shape names the cause in errorMessage and in an "sd."-prefixed i18n key;
// the Jira platform shape in errorMessages or a field error. No recorded
// answer was found to copy, so both are recognised by their meaning rather
// than one exact string: an i18n key or a message that says an email,
// account, user or customer already exists (or is in use, taken, not
// unique). Create's other 400s (an invalid email, a missing name) say
// nothing of the kind.
func (e *Error) duplicateEmail() bool {
	if e.StatusCode != http.StatusBadRequest || e.Method != http.MethodPost ||
		!strings.HasSuffix(pathOf(e.URL), createCustomerTemplate) {
		return false
	}
	return saysDuplicate(strings.ReplaceAll(strings.ToLower(e.I18nKey), "_", ".")) ||
		saysDuplicate(strings.ToLower(e.Message))
}

// saysDuplicate reports a lower-case message or i18n key that says an
// identity already exists.
func saysDuplicate(s string) bool {
	if s == "" || !containsAny(s, "email", "e-mail", "account", "user", "customer") {
		return false
	}
	if containsAny(s, "not exist", "not.exist", "notexist", "does not", "doesn't") {
		return false
	}
	return containsAny(s, "already", "exists", ".exist", "in use", "in.use", "taken", "duplicate", "not unique", "not.unique")
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func statusSentinel(status int) error {
	switch {
	case status == http.StatusBadRequest:
		return ErrBadRequest
	case status == http.StatusUnauthorized:
		return ErrUnauthorized
	case status == http.StatusForbidden:
		return ErrForbidden
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusConflict:
		return ErrConflict
	case status == http.StatusTooManyRequests:
		return ErrRateLimited
	case status >= 500 && status <= 599:
		return ErrServer
	}
	return nil
}

// errorBody holds both error shapes: servicedeskapi's and the Jira platform's.
type errorBody struct {
	ErrorMessage     string `json:"errorMessage"`
	I18nErrorMessage *struct {
		I18nKey string `json:"i18nKey"`
	} `json:"i18nErrorMessage"`
	ErrorMessages []string          `json:"errorMessages"`
	Errors        map[string]string `json:"errors"`
	// OAuth 2.0 token endpoints answer {"error": "...", "error_description": "..."}.
	OAuthError       string `json:"error"`
	OAuthDescription string `json:"error_description"`
}

// newError builds the *Error of a non-2xx answer to method u and consumes
// its body (at most maxErrorBody is read). Method and URL come from the
// request the SDK sent, not from resp.Request, which a transport need not
// set. now anchors X-RateLimit-Reset. Whatever the server sent, headers
// and body, has a's credentials redacted before anything is made of it:
// a message cut short must not keep the start of a secret.
func newError(resp *http.Response, method string, u *url.URL, now time.Time, a authenticator) *Error {
	e := &Error{
		StatusCode: resp.StatusCode,
		Method:     method,
		URL:        redactedURL(u),
		RequestID:  redact(a, requestID(resp.Header)),
	}
	e.RetryAfter, _ = retryAfter(resp.Header, now)
	e.RateLimit, _ = rateLimitOf(resp.Header, now)
	e.RateLimit = redactRateLimit(a, e.RateLimit)
	if resp.Body != nil {
		e.Body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	}
	if body := redact(a, string(e.Body)); body != string(e.Body) {
		e.Body = []byte(body)
	}
	e.parseBody(resp.Header.Get("Content-Type"), func(s string) string { return redact(a, s) })
	e.redact(a)
	return e
}

// redact removes the client's credentials from what was parsed from the
// body (messages, field names, the i18n key), in case JSON escapes hid
// them from the redaction of the body itself.
func (e *Error) redact(a authenticator) {
	if a == nil {
		return
	}
	e.Message = redact(a, e.Message)
	e.I18nKey = redact(a, e.I18nKey)
	for i, m := range e.ErrorMessages {
		e.ErrorMessages[i] = redact(a, m)
	}
	if len(e.Errors) > 0 {
		fields := make(map[string]string, len(e.Errors))
		for k, v := range e.Errors {
			fields[redact(a, k)] = redact(a, v)
		}
		e.Errors = fields
	}
}

// parseBody fills the message fields from whichever shape the body has;
// clean redacts text made from it (nil: nothing to redact).
func (e *Error) parseBody(contentType string, clean func(string) string) {
	body := bytes.TrimSpace(e.Body)
	if len(body) == 0 {
		return
	}
	if body[0] == '{' && e.parseJSON(body) {
		return
	}
	e.Message = excerpt(body, contentType, clean)
}

// parseJSON fills the message fields from either JSON error shape; false
// means the body held neither.
func (e *Error) parseJSON(body []byte) bool {
	var eb errorBody
	// A field of an unexpected type ({"errors":{"a":1}}) spoils only
	// itself: Unmarshal fills the rest and reports an UnmarshalTypeError.
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(body, &eb); err != nil && !errors.As(err, &typeErr) {
		return false
	}
	e.ErrorMessages = eb.ErrorMessages
	e.Errors = eb.Errors
	if eb.I18nErrorMessage != nil {
		e.I18nKey = eb.I18nErrorMessage.I18nKey
	}
	e.Message = eb.ErrorMessage
	if e.Message == "" {
		e.Message = strings.Join(eb.ErrorMessages, "; ")
	}
	if e.Message == "" {
		e.Message = joinFieldErrors(eb.Errors)
	}
	if e.Message == "" && eb.OAuthError != "" {
		e.Message = eb.OAuthError
		if eb.OAuthDescription != "" {
			e.Message += ": " + eb.OAuthDescription
		}
	}
	return e.Message != "" || e.I18nKey != "" || len(eb.Errors) > 0
}

// joinFieldErrors renders {"errors": {...}} in a stable order.
func joinFieldErrors(fields map[string]string) string {
	if len(fields) == 0 {
		return ""
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + fields[k]
	}
	return strings.Join(parts, "; ")
}

var (
	htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	htmlDrop  = regexp.MustCompile(`(?is)<(script|style|head)[^>]*>.*?</(script|style|head)>`)
	htmlTag   = regexp.MustCompile(`(?s)<[^>]*>`)
)

// excerpt turns a non-JSON body (an edge's HTML page, plain text) into a
// short, single-line message: an HTML page's title, or its text. clean,
// when not nil, redacts the text once HTML entities are decoded (a secret
// written with entities escapes the redaction of the raw body) and before
// it is cut short (a secret cut in two would escape it too).
func excerpt(body []byte, contentType string, clean func(string) string) string {
	text := string(body)
	if strings.Contains(contentType, "html") || bytes.HasPrefix(body, []byte("<")) {
		if m := htmlTitle.FindStringSubmatch(text); m != nil && strings.TrimSpace(m[1]) != "" {
			text = m[1]
		} else {
			text = htmlTag.ReplaceAllString(htmlDrop.ReplaceAllString(text, " "), " ")
		}
		text = html.UnescapeString(text)
	}
	text = strings.Join(strings.Fields(strings.ToValidUTF8(text, "\uFFFD")), " ")
	if clean != nil {
		text = clean(text)
	}
	if len(text) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "…"
	}
	return text
}
