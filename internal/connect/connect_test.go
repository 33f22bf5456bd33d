package connect

import (
	"encoding/json"
	"net/url"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type vector struct {
	Name      string `json:"name"`
	Method    string `json:"method"`
	BaseURL   string `json:"baseUrl"`
	URL       string `json:"url"`
	Canonical string `json:"canonical"`
	QSH       string `json:"qsh"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/qsh-vectors.json")
	require.NoError(t, err)
	var file struct {
		Generator string   `json:"generator"`
		Vectors   []vector `json:"vectors"`
	}
	require.NoError(t, json.Unmarshal(raw, &file))
	require.Equal(t, "atlassian-jwt@2.0.3", file.Generator)
	require.NotEmpty(t, file.Vectors)
	return file.Vectors
}

// TestKnownAnswers checks the canonical request and qsh against the values
// Atlassian's own implementation produced for the same requests.
func TestKnownAnswers(t *testing.T) {
	t.Parallel()
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			u, err := url.Parse(v.URL)
			require.NoError(t, err)
			base, err := url.Parse(v.BaseURL)
			require.NoError(t, err)
			assert.Equal(t, v.Canonical, CanonicalRequest(v.Method, u, base.EscapedPath()))
			assert.Equal(t, v.QSH, QSH(v.Method, u, base.EscapedPath()))
		})
	}
}

func TestCompareUTF16(t *testing.T) {
	t.Parallel()
	// U+FF5E (fullwidth tilde) sorts after U+1F389 (an emoji, a surrogate
	// pair starting 0xD83C) in JavaScript, before it in byte order.
	assert.Positive(t, compareUTF16("\uFF5E", "\U0001F389"))
	assert.Negative(t, compareUTF16("a", "b"))
	assert.Zero(t, compareUTF16("é", "é"))
}

func TestEncode(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "AZaz09-._~", Encode("AZaz09-._~"))
	assert.Equal(t, "%20%2A%2B%21%27%28%29%2F%3F%26%3D%25", Encode(" *+!'()/?&=%"))
	assert.Equal(t, "%C3%A9", Encode("é"))
}
