package forge_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds Verify arbitrary Authorization headers: it must never
// panic, and never accept one that is not, byte for byte, a FIT Atlassian
// signed for this app.
func FuzzVerify(f *testing.F) {
	a := newAtlassian(f)
	v := a.verifier(f)
	valid := a.sign(claims())
	parts := strings.Split(valid, ".")
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, seed := range []string{
		"Bearer " + valid,
		"bearer " + valid,
		"Bearer " + none,
		"Bearer " + parts[0] + "." + parts[1] + ".",
		"Bearer " + parts[0] + ".." + parts[2],
		"Bearer " + valid + "=",
		"Bearer " + strings.ToUpper(valid),
		"Bearer " + parts[1] + "." + parts[0] + "." + parts[2],
		"Bearer eyJhbGciOiJSUzI1NiJ9.e30.",
		"Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6MX0.e30.AAAA",
		"Bearer a.b.c",
		"Bearer ...",
		"Bearer ",
		"Basic " + valid,
		"JWT " + valid,
		"",
		"Bearer\x00" + valid,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r, _ := http.NewRequest(http.MethodPost, "https://remote.example.com/", nil)
		r.Header["Authorization"] = []string{header}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		inv, err := v.Verify(ctx, r)
		if err != nil {
			if strings.Contains(err.Error(), valid) {
				t.Fatalf("the error quotes the token: %v", err)
			}
			return
		}
		scheme, tok, _ := strings.Cut(header, " ")
		if !strings.EqualFold(scheme, "Bearer") || tok != valid || inv.AppID != testAppARI {
			t.Fatalf("accepted %q", header)
		}
	})
}
