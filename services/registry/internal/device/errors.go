package device

import (
	"errors"
	"fmt"
	"strings"
)

// Errors a Store returns, wrapped with the id or field they are about. Test
// with errors.Is; the server turns them into gRPC codes.
var (
	// ErrNotFound: the device, group or rule does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an object with that id already exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the caller's expected version is not the current one.
	ErrConflict = errors.New("version conflict")
	// ErrFailedPrecondition: the request is well formed but the state of
	// the store refuses it (a device names a group that does not exist; a
	// group to delete still has members).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrInvalid: the request is malformed (bad id, too-long name, bad
	// selector, a page token from another query...).
	ErrInvalid = errors.New("invalid argument")
	// ErrChangesExpired: the changes after the requested sequence number
	// are no longer retained; the reader must start again from a snapshot.
	ErrChangesExpired = errors.New("changes no longer retained")
)

// FieldViolation says what is wrong with one field of a request. Field is
// a path such as "name", "groups[2]", "labels" or "devices[17].id".
type FieldViolation struct {
	Field       string
	Description string
}

// ValidationError lists every field-level problem of a request. It wraps
// ErrInvalid, or ErrFailedPrecondition when the fields are well formed but
// the store's state refuses them (see MissingGroupsError).
type ValidationError struct {
	Violations []FieldViolation
	// Cause is ErrInvalid or ErrFailedPrecondition; nil means ErrInvalid.
	Cause error
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(e.Unwrap().Error())
	for i, v := range e.Violations {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(v.Field)
		b.WriteString(": ")
		b.WriteString(v.Description)
	}
	return b.String()
}

// Unwrap returns ErrInvalid or ErrFailedPrecondition.
func (e *ValidationError) Unwrap() error {
	if e.Cause == nil {
		return ErrInvalid
	}
	return e.Cause
}

// violations collects FieldViolations; err returns nil when there are none.
type violations []FieldViolation

func (vs *violations) add(field, format string, args ...any) {
	*vs = append(*vs, FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (vs violations) err() error {
	if len(vs) == 0 {
		return nil
	}
	return &ValidationError{Violations: vs}
}

// InvalidField returns a ValidationError (ErrInvalid) about one field.
func InvalidField(field, format string, args ...any) error {
	return &ValidationError{Violations: []FieldViolation{{Field: field, Description: fmt.Sprintf(format, args...)}}}
}

// MissingGroupsError is the error a Store returns when a device names
// groups that do not exist: ErrFailedPrecondition, one violation per
// missing group on field prefix+"groups" (prefix is "" for a single device,
// "devices[i]." in a batch).
func MissingGroupsError(prefix string, missing []string) error {
	e := &ValidationError{Cause: ErrFailedPrecondition}
	for _, g := range missing {
		e.Violations = append(e.Violations, FieldViolation{
			Field:       prefix + "groups",
			Description: fmt.Sprintf("group %q does not exist; create it first", g),
		})
	}
	return e
}

// GroupHasMembersError is the error a Store returns when DeleteGroup is
// asked to delete a group that still has members without force.
func GroupHasMembersError(id string, members int) error {
	return fmt.Errorf("%w: group %q has %d members; remove them or delete with force", ErrFailedPrecondition, id, members)
}

// WithPrefix returns err with prefix put before every violation's field
// when err is a ValidationError, and err unchanged otherwise. Batch
// operations use it to say which element is wrong ("devices[3].").
func WithPrefix(prefix string, err error) error {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	out := &ValidationError{Cause: ve.Cause, Violations: make([]FieldViolation, len(ve.Violations))}
	for i, v := range ve.Violations {
		out.Violations[i] = FieldViolation{Field: prefix + v.Field, Description: v.Description}
	}
	return out
}
