package routes

import (
	"errors"
	"fmt"
)

// Store errors. Callers branch on them with errors.Is.
var (
	// ErrNotFound means there is no route with that name.
	ErrNotFound = errors.New("routes: route not found")
	// ErrAlreadyExists means Create found a route with that name.
	ErrAlreadyExists = errors.New("routes: route already exists")
	// ErrVersionMismatch means Update or Delete was given a version that is
	// no longer the route's current version.
	ErrVersionMismatch = errors.New("routes: route version is not current")
)

// FieldError is an invalid route (or route file): it names the field by its
// path in the route, with proto field names and indexes, e.g.
// "rules[1].destinations[0].weight". Field is empty when the route as a
// whole is at fault (its size).
type FieldError struct {
	// Route is the route's name, when it is known.
	Route string
	// Field is the path of the offending field.
	Field string
	// Reason says what is wrong, in lowercase without trailing punctuation.
	Reason string
	// Doc is the 1-based position of the route in the input given to
	// Parse, and 0 for errors that do not come from parsing.
	Doc int
}

func (e *FieldError) Error() string {
	where := "route"
	if e.Route != "" {
		where = fmt.Sprintf("route %q", e.Route)
	}
	if e.Doc > 0 {
		where += fmt.Sprintf(" (#%d in the input)", e.Doc)
	}
	if e.Field == "" {
		return fmt.Sprintf("routes: invalid %s: %s", where, e.Reason)
	}
	return fmt.Sprintf("routes: invalid %s: %s: %s", where, e.Field, e.Reason)
}

// fieldErr builds a *FieldError with a formatted reason.
func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
