package forge

// Verify: the checks that make a Forge Invocation Token one Forge sent, for
// this app, and the claims it carries.

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/servicedesk-go/servicedesk/internal/hosts"
)

// fitClaims are the claims of a FIT that Verify reads.
type fitClaims struct {
	jwt.RegisteredClaims
	App struct {
		ID             string `json:"id"`
		APIBaseURL     string `json:"apiBaseUrl"`
		InstallationID string `json:"installationId"`
		Installation   *struct {
			ID       string `json:"id"`
			Contexts []struct {
				CloudID    string `json:"cloudId"`
				APIBaseURL string `json:"apiBaseUrl"`
			} `json:"contexts"`
		} `json:"installation"`
		Environment struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"environment"`
		Module struct {
			Key string `json:"key"`
		} `json:"module"`
	} `json:"app"`
	Context *struct {
		CloudID string `json:"cloudId"`
		SiteURL string `json:"siteUrl"`
	} `json:"context"`
	Principal string          `json:"principal"`
	ICLabel   json.RawMessage `json:"icLabel"`
}

// Verify checks the request's FIT (Authorization: Bearer) and reads the
// tokens Forge forwards (x-forge-oauth-system, x-forge-oauth-user). It
// refuses, with an error wrapping [ErrInvalidInvocation] that says why: a
// missing, oversized or malformed header; a signature that is not RS256 by
// a key of the JWKS (chosen by kid); iss other than forge/invocation-token;
// aud or app.id other than this app; exp, nbf or iat missing or wrong by
// more than [ClockSkew]; app.apiBaseUrl missing or not https://;
// app.installationId and app.installation.id that differ; an Isolated
// Cloud's FIT (icLabel) unless [WithIsolatedCloud] accepts it. Waiting for
// the JWKS, when it must be fetched, is bounded by ctx.
func (v *Verifier) Verify(ctx context.Context, r *http.Request) (*Invocation, error) {
	if ctx == nil {
		return nil, invalidInput("Verifier.Verify", "ctx", "must not be nil")
	}
	if r == nil {
		return nil, invalidInput("Verifier.Verify", "r", "must not be nil")
	}
	raw, err := bearer(r.Header)
	if err != nil {
		return nil, err
	}
	var claims fitClaims
	token, err := v.parser.ParseWithClaims(raw, &claims, v.keyFor(ctx))
	if err != nil {
		return nil, parseError(token, &claims, err)
	}
	inv, err := v.invocation(&claims)
	if err != nil {
		return nil, err
	}
	if inv.system, err = forwarded(r.Header, headerSystemToken); err != nil {
		return nil, err
	}
	if inv.user, err = forwarded(r.Header, headerUserToken); err != nil {
		return nil, err
	}
	return inv, nil
}

// bearer is the token of the one Authorization: Bearer header.
func bearer(h http.Header) (string, error) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", refuse("no Authorization header")
	case len(values) > 1:
		return "", refuse("more than one Authorization header")
	case len(values[0]) > MaxFITBytes:
		return "", refuse(fmt.Sprintf("the Authorization header is larger than %d bytes", MaxFITBytes))
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", refuse("the Authorization header is not a Bearer token")
	}
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", refuse("the Authorization header's bearer token is empty or has spaces in it")
	}
	return token, nil
}

// keyFor picks the key of a token's kid from the JWKS: keyfunc checks the
// key's alg and use against the token, this that it is an RSA public key of
// a sensible size.
func (v *Verifier) keyFor(ctx context.Context) jwt.Keyfunc {
	kf := v.keyfunc.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid == "" {
			// keyfunc would try every key of the set; a FIT names its key.
			return nil, errNoKID
		}
		key, err := kf(t)
		if err != nil {
			return nil, err
		}
		pub, ok := key.(*rsa.PublicKey)
		if !ok || pub.N.BitLen() < 2048 {
			return nil, errNotRSA
		}
		return pub, nil
	}
}

var (
	errNoKID  = errors.New("the token names no key (kid)")
	errNotRSA = errors.New("the JWKS key of the token's kid is not an RSA key of at least 2048 bits")
)

// parseError is the reason the JWT library refused a token, in words that
// never quote it.
func parseError(t *jwt.Token, c *fitClaims, err error) error {
	var ke *keyError
	switch {
	case errors.As(err, &ke):
		return &invocationError{reason: ke.reason, cause: ke.cause}
	case errors.Is(err, errNoKID):
		return refuseWith(errNoKID.Error(), err)
	case errors.Is(err, errNotRSA):
		return refuseWith(errNotRSA.Error(), err)
	case errors.Is(err, keyfunc.ErrKeyfunc):
		// The JWKS key of that kid is for another alg, or for encryption.
		return refuseWith("the JWKS key of the token's kid does not sign RS256", err)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuseWith("the token is not a well-formed JWT", err)
	case t != nil && t.Method != nil && t.Method.Alg() != jwt.SigningMethodRS256.Alg(),
		t != nil && t.Header["alg"] != jwt.SigningMethodRS256.Alg():
		return refuseWith("the token is not signed RS256", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuseWith("the signature does not verify with the JWKS key of the token's kid", err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return refuseWith("the token has no "+missingClaim(c), err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuseWith("the token has expired (exp)", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return refuseWith("the token is not valid yet (nbf)", err)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refuseWith("the token was issued in the future (iat)", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return refuseWith("the token's iss is not "+fitIssuer, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return refuseWith("the token's aud is not this app", err)
	}
	return refuseWith("the token does not verify", err)
}

// missingClaim names the first of the required registered claims that c
// lacks.
func missingClaim(c *fitClaims) string {
	switch {
	case c.ExpiresAt == nil:
		return "exp"
	case c.NotBefore == nil:
		return "nbf"
	case c.Issuer == "":
		return "iss"
	case len(c.Audience) == 0:
		return "aud"
	}
	return "required claim"
}

// invocation checks what the JWT library does not, and reads the claims.
func (v *Verifier) invocation(c *fitClaims) (*Invocation, error) {
	switch {
	case c.IssuedAt == nil:
		return nil, refuse("the token has no iat")
	case c.App.ID != v.appID:
		return nil, refuse("the token's app.id is not its aud")
	}
	var icLabel string // "" when absent or null
	if len(c.ICLabel) > 0 && string(c.ICLabel) != "null" {
		if err := json.Unmarshal(c.ICLabel, &icLabel); err != nil || !v.isolated[icLabel] {
			return nil, refuse("the token comes from an Isolated Cloud (icLabel) this Verifier does not accept (see WithIsolatedCloud)")
		}
	}
	base, err := v.apiBaseURL(c.App.APIBaseURL)
	if err != nil {
		return nil, err
	}
	installation := c.App.InstallationID
	if in := c.App.Installation; in != nil && in.ID != "" {
		if installation != "" && installation != in.ID {
			return nil, refuse("the token's app.installationId and app.installation.id differ")
		}
		installation = in.ID
	}
	if installation == "" {
		return nil, refuse("the token has no app.installationId")
	}
	inv := &Invocation{
		AppID:           c.App.ID,
		EnvironmentType: c.App.Environment.Type,
		EnvironmentID:   c.App.Environment.ID,
		InstallationID:  installation,
		APIBaseURL:      base,
		Principal:       c.Principal,
		ModuleKey:       c.App.Module.Key,
		Expires:         c.ExpiresAt.Time,
		ICLabel:         icLabel,
		v:               v,
	}
	if c.Context != nil {
		inv.CloudID, inv.SiteURL = c.Context.CloudID, c.Context.SiteURL
	}
	if inv.CloudID == "" && c.App.Installation != nil {
		for _, ic := range c.App.Installation.Contexts {
			if strings.TrimRight(ic.APIBaseURL, "/") == base && ic.CloudID != "" {
				inv.CloudID = ic.CloudID
				break
			}
		}
	}
	return inv, nil
}

// apiBaseURL checks app.apiBaseUrl, where the tokens will be sent.
func (v *Verifier) apiBaseURL(raw string) (string, error) {
	if raw == "" {
		return "", refuse("the token has no app.apiBaseUrl")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", refuse("the token's app.apiBaseUrl is not a base URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && v.loopback && hosts.Loopback(u.Hostname()):
	default:
		return "", refuse("the token's app.apiBaseUrl is not https:// (plain http:// to loopback needs WithLoopbackAPIBaseURL)")
	}
	return strings.TrimRight(raw, "/"), nil
}

// forwarded reads one of the tokens Forge forwards: "" when not sent.
func forwarded(h http.Header, name string) (token, error) {
	values := h.Values(name)
	switch {
	case len(values) == 0 || values[0] == "" && len(values) == 1:
		return token{}, nil
	case len(values) > 1:
		return token{}, refuse("more than one " + strings.ToLower(name) + " header")
	case len(values[0]) > MaxTokenBytes:
		return token{}, refuse(fmt.Sprintf("the %s header is larger than %d bytes", strings.ToLower(name), MaxTokenBytes))
	}
	return newToken(strings.TrimSpace(values[0])), nil
}
