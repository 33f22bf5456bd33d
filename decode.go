package servicedesk

import (
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// maxResponseBody caps a success body. A page of 50 customers is about
// 72 KB; anything near this is not an answer from JSM.
const maxResponseBody = 16 << 20

// maxDrain is how much of an unread body is read before closing it, so the
// connection can be reused without reading an endless body.
const maxDrain = 64 << 10

// decodeOptions keep encoding/json's leniency where the v2 decoder is
// strict by default: one customer with a broken byte in its name, or a
// repeated key, must not make a whole page unreadable.
var decodeOptions = json.JoinOptions(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))

// userTypeOptions decode into the caller's own types (Client.Do's v) as
// encoding/json does, for which they were written: case-insensitive names,
// and so on.
var userTypeOptions = json.JoinOptions(jsonv1.DefaultOptionsV1(), decodeOptions)

// encodeBody encodes a request body with encoding/json: request bodies are
// small, and for a small struct it is twice as fast as the v2 encoder (a
// microsecond a call); a caller's type (Client.Do) gets the rules it was
// written for.
// A body that cannot be encoded is the caller's mistake: ErrInvalidInput,
// before anything is sent. A nil body is no body.
func encodeBody(where string, body any) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	b, err := stdjson.Marshal(body)
	if err != nil {
		return nil, invalidInput(where, "body", "cannot be encoded as JSON: "+err.Error())
	}
	return b, nil
}

// errBodyTooLarge ends the reading of a body past maxResponseBody.
var errBodyTooLarge = fmt.Errorf("body larger than %d bytes", maxResponseBody)

// decodeJSON decodes a success body, refusing what is not the JSON answer
// expected: another content type (an HTML login page), a body over
// maxResponseBody, a truncated one, or a value that does not open with
// open ('{' for an object, '[' for an array; 0 for any).
//
// It decodes with github.com/go-json-experiment/json, the future
// encoding/json/v2: nearly three times as fast as encoding/json on a page
// of customers, with half the allocations (BENCHMARKS.md).
func decodeJSON(resp *http.Response, v any, open byte, opts json.Options) error {
	if ct := resp.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return fmt.Errorf("content type %q is not JSON", ct)
	}
	lr := &limitedReader{r: resp.Body, n: maxResponseBody}
	err := json.UnmarshalRead(lr, v, opts)
	switch {
	case lr.exceeded:
		return errBodyTooLarge
	case lr.first == 0:
		return errors.New("empty body")
	case open != 0 && lr.first != open:
		// "null" would decode into a zero value without complaint.
		return fmt.Errorf("body does not start with %q", open)
	case err != nil:
		return err
	}
	if vv, ok := v.(interface{ validate() error }); ok {
		return vv.validate()
	}
	return nil
}

// isJSON reports whether a Content-Type names JSON: application/json or a
// +json type, any parameters. (mime.ParseMediaType would allocate a map.)
func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// limitedReader is io.LimitReader that remembers it cut the body short, and
// the first byte of JSON it passed on.
type limitedReader struct {
	r        io.Reader
	n        int64
	exceeded bool
	first    byte
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		l.exceeded = true
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.first == 0 {
		for _, b := range p[:n] {
			if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
				l.first = b
				break
			}
		}
	}
	return n, err
}

// closeBody drains a bounded amount, so the connection can be reused, and
// closes the body.
func closeBody(body io.ReadCloser) {
	if body != http.NoBody { // a 204 has nothing to drain
		_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	}
	_ = body.Close()
}
