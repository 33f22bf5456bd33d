package connect

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the claims of a Connect JWT.
type Claims struct {
	jwt.RegisteredClaims
	QSH string `json:"qsh"`
}

// Sign returns an HS256 JWT for one request to u: iss appKey, iat now,
// exp now+ttl, and the request's qsh.
func Sign(appKey, sharedSecret, method string, u *url.URL, basePath string, now time.Time, ttl time.Duration) (string, error) {
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    appKey,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		QSH: QSH(method, u, basePath),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(sharedSecret))
}

// ErrInvalidToken is wrapped by every failure of Verify.
var ErrInvalidToken = errors.New("invalid Connect JWT")

// Verify checks a Connect JWT sent with a request to u: HS256 signed with the
// shared secret of its issuer (secretOf returns it, or false for an unknown
// issuer), current at now, and carrying that request's qsh. It returns the
// issuer, the app key.
func Verify(token string, secretOf func(appKey string) (string, bool), method string, u *url.URL, basePath string, now time.Time) (string, error) {
	var claims Claims
	_, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		iss, err := t.Claims.GetIssuer()
		if err != nil || iss == "" {
			return nil, errors.New("no issuer")
		}
		secret, ok := secretOf(iss)
		if !ok {
			return nil, fmt.Errorf("unknown issuer %q", iss)
		}
		return []byte(secret), nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30*time.Second),
	)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	want := QSH(method, u, basePath)
	if subtle.ConstantTimeCompare([]byte(claims.QSH), []byte(want)) != 1 {
		return "", fmt.Errorf("%w: qsh does not match the request", ErrInvalidToken)
	}
	return claims.Issuer, nil
}
