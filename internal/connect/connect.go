// Package connect implements what Atlassian Connect needs of a request: the
// canonical request and its query string hash (qsh), and HS256 JWTs that
// carry it. The rules follow Atlassian's own implementation (the npm package
// atlassian-jwt), against which testdata/qsh-vectors.json was produced.
package connect

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// CanonicalRequest returns "METHOD&path&query" for a request to u, where
// basePath is the path of the site's base URL (a Data Center context path,
// or "" on Cloud), which is not part of the canonical path.
//
//   - METHOD is upper case;
//   - path is the escaped path as sent, basePath cut from its front, "&"
//     encoded as "%26", "/" when empty, without a trailing "/";
//   - query is read as Node's querystring reads it (see parseQuery: bytes
//     that are not UTF-8 become U+FFFD), leaves out "jwt", sorts the names,
//     sorts repeated values and joins them with ",", percent-encodes names
//     and values per RFC 3986 (space as %20, "*" as %2A, "~" kept) and
//     joins the pairs with "&".
//
// The body is not part of it.
func CanonicalRequest(method string, u *url.URL, basePath string) string {
	var b strings.Builder
	b.WriteString(strings.ToUpper(method))
	b.WriteByte('&')
	b.WriteString(canonicalPath(u.EscapedPath(), basePath))
	b.WriteByte('&')
	writeCanonicalQuery(&b, u.RawQuery)
	return b.String()
}

// QSH returns the query string hash of a request: the hex SHA-256 of its
// canonical request.
func QSH(method string, u *url.URL, basePath string) string {
	sum := sha256.Sum256([]byte(CanonicalRequest(method, u, basePath)))
	return hex.EncodeToString(sum[:])
}

func canonicalPath(path, basePath string) string {
	path = strings.TrimPrefix(path, strings.TrimRight(basePath, "/"))
	if path == "" {
		return "/"
	}
	path = strings.ReplaceAll(path, "&", "%26")
	if path[0] != '/' {
		path = "/" + path
	}
	if len(path) > 1 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	return path
}

func writeCanonicalQuery(b *strings.Builder, rawQuery string) {
	if rawQuery == "" {
		return
	}
	query := parseQuery(rawQuery)
	delete(query, "jwt")
	names := make([]string, 0, len(query))
	for name := range query {
		names = append(names, name)
	}
	slices.SortFunc(names, compareUTF16)
	for i, name := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(Encode(name))
		b.WriteByte('=')
		values := slices.Clone(query[name])
		slices.SortFunc(values, compareUTF16)
		for j, v := range values {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(Encode(v))
		}
	}
}

// parseQuery reads a raw query as Node's querystring.parse does, which is
// what atlassian-jwt hashes: pairs split on "&" (empty pieces skipped),
// name and value on the first "=", "+" as a space, valid %XX escapes
// decoded and invalid ones kept as they are, and the bytes then read as
// UTF-8 with every ill-formed sequence replaced by U+FFFD.
// (url.ParseQuery drops a pair with a bad escape and keeps invalid UTF-8,
// so its canonical request would differ, and the server would answer 401.)
func parseQuery(rawQuery string) map[string][]string {
	query := map[string][]string{}
	for piece := range strings.SplitSeq(rawQuery, "&") {
		if piece == "" {
			continue
		}
		name, value, _ := strings.Cut(piece, "=")
		name, value = unescape(name), unescape(value)
		query[name] = append(query[name], value)
	}
	return query
}

func unescape(s string) string {
	if !strings.ContainsAny(s, "+%") && isASCII(s) {
		return s
	}
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			buf = append(buf, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			buf = append(buf, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			buf = append(buf, c)
		}
	}
	return toWellFormedUTF8(buf)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// toWellFormedUTF8 decodes b as the WHATWG Encoding Standard's UTF-8
// decoder does (as JavaScript does): each maximal subpart of an ill-formed
// sequence becomes one U+FFFD. strings.ToValidUTF8 would merge a run of
// them into one; utf8.DecodeRune would make one per byte.
func toWellFormedUTF8(b []byte) string {
	var out strings.Builder
	out.Grow(len(b))
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			out.WriteByte(c)
			i++
			continue
		}
		need, lower, upper := 0, byte(0x80), byte(0xBF)
		switch {
		case 0xC2 <= c && c <= 0xDF:
			need = 1
		case c == 0xE0:
			need, lower = 2, 0xA0
		case c == 0xED:
			need, upper = 2, 0x9F
		case 0xE1 <= c && c <= 0xEF:
			need = 2
		case c == 0xF0:
			need, lower = 3, 0x90
		case c == 0xF4:
			need, upper = 3, 0x8F
		case 0xF1 <= c && c <= 0xF3:
			need = 3
		}
		j := i + 1
		for k := 0; k < need; k++ {
			if j >= len(b) || b[j] < lower || b[j] > upper {
				break
			}
			lower, upper = 0x80, 0xBF
			j++
		}
		if need == 0 || j-i != need+1 {
			out.WriteRune(utf8.RuneError)
			i = j
			continue
		}
		out.Write(b[i:j])
		i = j
	}
	return out.String()
}

// compareUTF16 orders strings as JavaScript's default sort does: by UTF-16
// code units, which differs from Go's byte order above U+FFFF.
func compareUTF16(a, b string) int {
	if isASCII(a) && isASCII(b) {
		return strings.Compare(a, b)
	}
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Encode percent-encodes s per RFC 3986: everything but ALPHA, DIGIT and
// "-", ".", "_", "~", with upper-case hex.
func Encode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	out := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			out = append(out, c)
			continue
		}
		out = append(out, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return string(out)
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
