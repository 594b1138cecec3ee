package server

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// paths renames a domain field ("name", "groups[2]", "devices[3].name")
// to its path in the request ("device.display_name"). Each RPC passes its
// own.
type paths func(field string) string

// asIs keeps domain field names: they already match the request's fields
// (page_size, page_token, label_selector, ...).
func asIs(field string) string { return field }

// within returns paths that put prefix before each field, after renaming
// the fields in rename (domain name -> proto name).
func within(prefix string, rename map[string]string) paths {
	return func(field string) string {
		head, rest := field, ""
		for i := 0; i < len(field); i++ {
			if field[i] == '[' || field[i] == '.' {
				head, rest = field[:i], field[i:]
				break
			}
		}
		if to, ok := rename[head]; ok {
			head = to
		}
		return prefix + head + rest
	}
}

// deviceFields are the domain fields of a device whose proto name differs.
var deviceFields = map[string]string{"name": "display_name"}

// toStatus turns an error of the store or of this package into the gRPC
// status the caller sees. It is the only place domain errors become codes.
// Errors the caller cannot act on are logged here, once, and reported as a
// generic INTERNAL.
func (s *Server) toStatus(ctx context.Context, err error, p paths) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (made by this package)
	}
	var ve *device.ValidationError
	switch {
	case errors.As(err, &ve) && errors.Is(err, device.ErrFailedPrecondition):
		pf := &errdetails.PreconditionFailure{}
		for _, v := range ve.Violations {
			pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{
				Type: "FIELD", Subject: p(v.Field), Description: v.Description,
			})
		}
		return withDetails(codes.FailedPrecondition, renamed(ve, p).Error(), pf)
	case errors.As(err, &ve):
		return invalidArgument(renamed(ve, p))
	case errors.Is(err, device.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, device.ErrFailedPrecondition):
		return withDetails(codes.FailedPrecondition, err.Error(), &errdetails.PreconditionFailure{
			Violations: []*errdetails.PreconditionFailure_Violation{{Type: "STATE", Description: err.Error()}},
		})
	case errors.Is(err, device.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, device.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, device.ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, device.ErrChangesExpired):
		return status.Error(codes.OutOfRange, err.Error()+"; start over with resume_after = 0")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	s.logger.ErrorContext(ctx, "request failed", "err", err)
	return status.Error(codes.Internal, "internal error")
}

// renamed returns ve with its fields renamed by p.
func renamed(ve *device.ValidationError, p paths) *device.ValidationError {
	out := &device.ValidationError{Cause: ve.Cause, Violations: make([]device.FieldViolation, len(ve.Violations))}
	for i, v := range ve.Violations {
		out.Violations[i] = device.FieldViolation{Field: p(v.Field), Description: v.Description}
	}
	return out
}

// invalidArgument returns INVALID_ARGUMENT with a google.rpc.BadRequest
// listing ve's violations (fields already in request paths).
func invalidArgument(ve *device.ValidationError) error {
	br := &errdetails.BadRequest{}
	for _, v := range ve.Violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
	}
	return withDetails(codes.InvalidArgument, ve.Error(), br)
}

// invalidField is invalidArgument for one field of the request.
func invalidField(field, description string) error {
	return invalidArgument(&device.ValidationError{Violations: []device.FieldViolation{{Field: field, Description: description}}})
}

func withDetails(code codes.Code, msg string, detail protoadapt.MessageV1) error {
	st := status.New(code, msg)
	withD, err := st.WithDetails(detail)
	if err != nil {
		return st.Err()
	}
	return withD.Err()
}
