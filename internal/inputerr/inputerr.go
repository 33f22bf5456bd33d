// Package inputerr is the error of input refused before anything is done
// with it, for package servicedesk and package forge alike: the same
// text after each package's prefix, wrapping servicedesk.ErrInvalidInput
// (which this package cannot import: servicedesk imports it).
package inputerr

// Error is input refused: where (a function or option), the field, and
// why. Kind is the sentinel it wraps.
type Error struct {
	Prefix               string // the package's: "servicedesk", "forge"
	Where, Field, Reason string
	Kind                 error
}

func (e *Error) Error() string {
	return e.Prefix + ": invalid input: " + e.Where + ": " + e.Field + " " + e.Reason
}

func (e *Error) Unwrap() error { return e.Kind }
