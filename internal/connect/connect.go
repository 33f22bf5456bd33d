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
)

// CanonicalRequest returns "METHOD&path&query" for a request to u, where
// basePath is the path of the site's base URL (a Data Center context path,
// or "" on Cloud), which is not part of the canonical path.
//
//   - METHOD is upper case;
//   - path is the escaped path as sent, basePath cut from its front, "&"
//     encoded as "%26", "/" when empty, without a trailing "/";
//   - query leaves out "jwt", sorts the names, sorts repeated values and
//     joins them with ",", percent-encodes names and values per RFC 3986
//     (space as %20, "*" as %2A, "~" kept) and joins the pairs with "&".
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
	// ParseQuery decodes "+" as a space, as Node's querystring does; a
	// malformed pair is left out (the SDK never sends one).
	query, _ := url.ParseQuery(rawQuery)
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
