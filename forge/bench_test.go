package forge_test

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerify measures Verify on a cached key, once per invocation
// in a backend, beside its baseline: the JWT library checking the same
// token's RS256 signature and registered claims with the key in hand (no
// JWKS, no Forge claims, no forwarded tokens). Compare their ns/op and
// allocs/op in one run (make bench).
func BenchmarkVerify(b *testing.B) {
	a := newAtlassian(b)
	v := a.verifier(b)
	c := claims()
	fit := a.sign(c)
	sys := forwardedToken(b, "", timeOf(c["exp"]))
	usr := forwardedToken(b, testUser, timeOf(c["exp"]))
	r := request(fit, sys, usr)
	ctx := context.Background()
	if _, err := v.Verify(ctx, r); err != nil { // fetches the JWKS
		b.Fatal(err)
	}

	b.Run("baseline=jwt.Parse", func(b *testing.B) {
		pub := &a.signer.priv.PublicKey
		p := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("forge/invocation-token"),
			jwt.WithAudience(testAppARI), jwt.WithExpirationRequired())
		keyfn := func(*jwt.Token) (any, error) { return pub, nil }
		b.ReportAllocs()
		for b.Loop() {
			var rc jwt.RegisteredClaims
			if _, err := p.ParseWithClaims(r.Header.Get("Authorization")[len("Bearer "):], &rc, keyfn); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func timeOf(unix any) time.Time { return time.Unix(unix.(int64), 0) }
