package servicedesk_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: every call
// and iterator must clean up after itself.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
