package forge_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: a JWKS
// fetch must end, whatever the JWKS does.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
