package api

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/controlplane/policies"
	"github.com/shoal-mesh/shoal/controlplane/routes"
)

// toStatus maps the errors of the packages behind the API to gRPC status
// errors: an invalid route is InvalidArgument with the field path in the
// message; the store's sentinels are NotFound, AlreadyExists and Aborted;
// etcd being unreachable is Unavailable; anything else is Internal.
func (s *Server) toStatus(err error) error {
	if err == nil {
		return nil
	}
	var fe *routes.FieldError
	var pe *policies.FieldError
	switch {
	case errors.As(err, &fe):
		return status.Error(codes.InvalidArgument, fe.Error())
	case errors.As(err, &pe):
		return status.Error(codes.InvalidArgument, pe.Error())
	case errors.Is(err, policies.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, policies.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, policies.ErrVersionMismatch):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, routes.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, routes.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, routes.ErrVersionMismatch):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	// The etcd client's errors carry a gRPC status of their own.
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			return status.Error(st.Code(), err.Error())
		}
	}
	s.log.Error("internal error", "err", err)
	return status.Error(codes.Internal, err.Error())
}
