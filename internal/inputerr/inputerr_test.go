package inputerr

import (
	"errors"
	"testing"
)

func TestError(t *testing.T) {
	t.Parallel()
	sentinel := errors.New("invalid input")
	var err error = &Error{Prefix: "forge", Where: "NewVerifier", Field: "appID", Reason: "must not be empty", Kind: sentinel}
	if got, want := err.Error(), "forge: invalid input: NewVerifier: appID must not be empty"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, sentinel) {
		t.Error("errors.Is(err, Kind) = false")
	}
}
