package servicedesktest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/servicedesk-go/servicedesk/internal/forgeapp"
)

// The fake plays Forge too: it signs Forge Invocation Tokens (FITs) as
// Atlassian does (RS256, a key named by kid in a JWKS it serves), and its
// gateway, /ex/jira/{cloudId}, accepts the app system and user tokens it
// forwards with them, as api.atlassian.com does for a Forge remote.

// WithForgeApp makes the server play Forge for the app appID (its ARI,
// "ari:cloud:ecosystem::app/<uuid>", or the bare uuid), installed on this
// site: an RSA key and the JWKS that publishes it ([Server.ForgeJWKSURL];
// [Server.RotateForgeKey] rotates it), FITs signed with it
// ([Server.SignInvocation]), and a gateway for the site's cloud id
// ([Server.ForgeCloudID]) that accepts the tokens they forward, and no
// other credentials. The system token acts as the app, granted the
// customer scopes (manage:servicedesk-customer): it may create, list, add
// and remove customers of every desk. A user token acts with that user's
// permissions. Both are JWTs that expire with the FIT; the gateway answers
// an expired one 401.
// NewServer panics if appID is neither form.
func WithForgeApp(appID string) Option {
	return func(s *Server) { s.forgeAppID = appID }
}

// ForgeCall describes an invocation for [Server.SignInvocation].
type ForgeCall struct {
	Principal   string        // account id of the calling user; "" as for events and triggers
	SystemToken bool          // send x-forge-oauth-system
	UserToken   bool          // send x-forge-oauth-user (needs Principal)
	ModuleKey   string        // app.module.key
	TTL         time.Duration // of the FIT and the tokens; 0: 5 minutes; negative: already expired
}

// ForgeEnvironmentType is app.environment.type in the fake's FITs.
const ForgeEnvironmentType = "DEVELOPMENT"

const (
	forgeIssuer   = "forge/invocation-token"
	forgeInstARI  = "ari:cloud:ecosystem::installation/"
	forgeJWKSPath = "/forge/.well-known/jwks.json"
	forgeTokenTTL = 5 * time.Minute
)

// forgeApp is the Forge app the server plays for.
type forgeApp struct {
	appARI         string
	cloudID        string
	installationID string
	environmentID  string
	keys           []forgeKey // the current last; the JWKS publishes the last two
	tokenSecret    []byte     // signs the forwarded tokens
}

type forgeKey struct {
	kid  string
	priv *rsa.PrivateKey
}

// newForgeApp sets up the app; its ids come from their own random stream,
// so that WithForgeApp changes no other generated id, and are the same for
// the same seed.
func newForgeApp(appID string, seed *uint64) *forgeApp {
	appARI, ok := forgeapp.ARI(appID)
	if !ok {
		panic(fmt.Sprintf("servicedesktest: WithForgeApp: %q is neither an app ARI nor a uuid", appID))
	}
	rng := mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
	if seed != nil {
		rng = mrand.New(mrand.NewPCG(*seed^0xf0f6e, *seed))
	}
	ids := &Server{rng: rng}
	f := &forgeApp{
		appARI:         appARI,
		cloudID:        ids.uuid(),
		installationID: forgeInstARI + ids.uuid(),
		environmentID:  ids.uuid(),
		tokenSecret:    []byte(ids.hex(32)),
	}
	f.rotate()
	return f
}

// rotate signs from now on with a new key, which the JWKS publishes beside
// the one before it.
func (f *forgeApp) rotate() {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("servicedesktest: generating a Forge key: " + err.Error())
	}
	kid := fmt.Sprintf("servicedesktest/%s/%d", f.cloudID[:8], len(f.keys)+1)
	f.keys = append(f.keys, forgeKey{kid: kid, priv: priv})
}

// ForgeJWKSURL is the JWKS that publishes the keys of the server's FITs:
// give it to forge.WithJWKSURL.
func (s *Server) ForgeJWKSURL() string { return s.srv.URL + forgeJWKSPath }

// ForgeCloudID is the site's cloud id, in the gateway's URL
// (/ex/jira/{cloudId}) and the FITs. It is the same for the same
// [WithSeed]; "" without [WithForgeApp].
func (s *Server) ForgeCloudID() string {
	if s.forge == nil {
		return ""
	}
	return s.forge.cloudID
}

// ForgeInstallationID is app.installation.id in the server's FITs; ""
// without [WithForgeApp].
func (s *Server) ForgeInstallationID() string {
	if s.forge == nil {
		return ""
	}
	return s.forge.installationID
}

// RotateForgeKey makes the server sign FITs with a new key (a new kid),
// as Atlassian rotates its keys. The JWKS publishes it at once, beside the
// key before it.
func (s *Server) RotateForgeKey() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forge == nil {
		panic("servicedesktest: RotateForgeKey: the server plays no Forge app: add WithForgeApp")
	}
	s.forge.rotate()
}

// SignInvocation sets on r the headers Forge sends to a remote: a FIT for
// the app whose app.apiBaseUrl is the fake's gateway for its cloud id, and
// the tokens asked for. A call with a Principal is a UI call: its FIT has
// a context (cloudId, siteUrl) and a principal. It fails without
// [WithForgeApp], and for a user token without a Principal that is an
// account of the server.
func (s *Server) SignInvocation(r *http.Request, call ForgeCall) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.forge
	switch {
	case f == nil:
		return errors.New("servicedesktest: SignInvocation: the server plays no Forge app: add WithForgeApp")
	case r == nil:
		return errors.New("servicedesktest: SignInvocation: r is nil")
	case call.UserToken && call.Principal == "":
		return errors.New("servicedesktest: SignInvocation: a user token needs a Principal")
	case call.UserToken && s.accounts[call.Principal] == nil:
		return fmt.Errorf("servicedesktest: SignInvocation: Principal %q is no account of the server", call.Principal)
	}
	ttl := call.TTL
	if ttl == 0 {
		ttl = forgeTokenTTL
	}
	now := time.Now()
	iat, exp := now, now.Add(ttl)
	if ttl < 0 { // issued a while ago, and expired by now
		iat = exp.Add(-forgeTokenTTL)
	}
	gateway := s.forgeGatewayURL()
	claims := jwt.MapClaims{
		"iss": forgeIssuer,
		"aud": f.appARI,
		"iat": iat.Unix(),
		"nbf": iat.Unix(),
		"exp": exp.Unix(),
		"jti": s.uuid(),
		"app": map[string]any{
			"id":             f.appARI,
			"version":        "1.0.0",
			"installationId": f.installationID,
			"apiBaseUrl":     gateway,
			"environment":    map[string]any{"type": ForgeEnvironmentType, "id": f.environmentID},
			"module":         map[string]any{"type": "core:endpoint", "key": call.ModuleKey},
			"installation": map[string]any{
				"id":       f.installationID,
				"contexts": []any{map[string]any{"name": "jira", "cloudId": f.cloudID, "apiBaseUrl": gateway}},
			},
		},
	}
	if call.Principal != "" {
		claims["principal"] = call.Principal
		claims["context"] = map[string]any{"cloudId": f.cloudID, "siteUrl": s.publicURL}
	}
	key := f.keys[len(f.keys)-1]
	fit := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	fit.Header["kid"] = key.kid
	signed, err := fit.SignedString(key.priv)
	if err != nil {
		return fmt.Errorf("servicedesktest: SignInvocation: %w", err)
	}
	r.Header.Set("Authorization", "Bearer "+signed)
	r.Header.Del("X-Forge-Oauth-System")
	r.Header.Del("X-Forge-Oauth-User")
	if call.SystemToken {
		tok, err := f.forwardedToken("", iat, exp)
		if err != nil {
			return err
		}
		r.Header.Set("X-Forge-Oauth-System", tok)
	}
	if call.UserToken {
		tok, err := f.forwardedToken(call.Principal, iat, exp)
		if err != nil {
			return err
		}
		r.Header.Set("X-Forge-Oauth-User", tok)
	}
	return nil
}

// forgeGatewayURL is app.apiBaseUrl: the gateway for the site's cloud id.
// Callers hold s.mu.
func (s *Server) forgeGatewayURL() string {
	return s.srv.URL + "/ex/jira/" + s.forge.cloudID
}

// forwardedToken is a token the gateway accepts: acting as the account
// sub, or as the app when sub is "".
func (f *forgeApp) forwardedToken(sub string, iat, exp time.Time) (string, error) {
	claims := jwt.MapClaims{
		"iss": "servicedesktest",
		"aud": "api.atlassian.com",
		"iat": iat.Unix(),
		"exp": exp.Unix(),
		"app": f.appARI,
		// The app's scopes, as the manifest would grant them.
		"scope": "manage:servicedesk-customer read:jira-user",
	}
	if sub != "" {
		claims["sub"] = sub
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(f.tokenSecret)
	if err != nil {
		return "", fmt.Errorf("servicedesktest: SignInvocation: %w", err)
	}
	return tok, nil
}

// serveForgeJWKSRequest answers a request for the JWKS, which is Forge's
// CDN in truth: recorded, and subject to injected faults, but not to
// Jira's latency or rate limits.
func (s *Server) serveForgeJWKSRequest(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := &statusWriter{ResponseWriter: w}
	at := time.Now()
	defer func() { s.record(r, sw.status, at) }()
	if f := s.fault(r, forgeJWKSPath); f != nil {
		sw.status = f.fail(sw, r, func(w http.ResponseWriter) { s.serveForgeJWKS(w, r) })
		return
	}
	s.serveForgeJWKS(sw, r)
}

// serveForgeJWKS publishes the keys of the current and the previous FITs.
func (s *Server) serveForgeJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "GET only"})
		return
	}
	keys := []map[string]string{}
	for _, k := range s.forge.keys[max(0, len(s.forge.keys)-2):] {
		keys = append(keys, map[string]string{
			"kty": "RSA",
			"alg": "RS256",
			"use": "sig",
			"kid": k.kid,
			"n":   base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes()),
			"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes()),
		})
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// gatewayKey marks a request that came in through the Forge gateway.
type gatewayKey struct{}

// forgeGateway maps a request to the gateway (/ex/jira/{cloudId}/rest/...)
// onto the site's own API, marked so that authenticate accepts the Forge
// tokens, and only them, on it. Callers hold s.mu.
func (s *Server) forgeGateway(r *http.Request) (*http.Request, bool) {
	if s.forge == nil {
		return r, false
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/ex/jira/"+s.forge.cloudID+"/")
	if !ok {
		return r, false
	}
	u := *r.URL
	raw := s.contextPath + "/" + rest
	u.Path, u.RawPath = raw, ""
	if strings.Contains(raw, "%") {
		u.Path, _ = url.PathUnescape(raw)
		u.RawPath = raw
	}
	r2 := r.WithContext(context.WithValue(r.Context(), gatewayKey{}, true))
	r2.URL = &u
	return r2, true
}

func onGateway(r *http.Request) bool {
	on, _ := r.Context().Value(gatewayKey{}).(bool)
	return on
}

// authenticateForge accepts a token the fake forwarded with a FIT: as the
// app (the system token) or as the user it names. Callers hold s.mu.
func (s *Server) authenticateForge(r *http.Request) (principal, bool) {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if scheme != "Bearer" || s.forge == nil {
		return principal{}, false
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(cred, &claims, func(*jwt.Token) (any, error) { return s.forge.tokenSecret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuer("servicedesktest"))
	if err != nil {
		return principal{}, false
	}
	p := principal{app: s.forge.appARI, forge: true}
	if claims.Subject != "" {
		if p.user = s.accounts[claims.Subject]; p.user == nil {
			return principal{}, false
		}
	}
	return p, true
}
