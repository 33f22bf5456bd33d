// Package forgeapp reads a Forge app's id the same way for package forge
// (NewVerifier) and package servicedesktest (WithForgeApp).
package forgeapp

import (
	"regexp"
	"strings"
)

// ARIPrefix starts an app's ARI; the app's uuid follows it.
const ARIPrefix = "ari:cloud:ecosystem::app/"

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ARI returns the ARI of the app appID names, by its ARI
// ("ari:cloud:ecosystem::app/<uuid>", as app.id in manifest.yml) or by its
// bare uuid, spaces around it aside; the uuid lower-cased, as Forge writes
// it in FITs. ok is false when appID is neither.
func ARI(appID string) (ari string, ok bool) {
	uuid := strings.TrimPrefix(strings.TrimSpace(appID), ARIPrefix)
	if !uuidPattern.MatchString(uuid) {
		return "", false
	}
	return ARIPrefix + strings.ToLower(uuid), true
}
