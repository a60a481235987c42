package api

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/controlplane/policies"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// policyService implements shoalv1.PolicyServiceServer over policies.Store.
type policyService struct {
	shoalv1.UnimplementedPolicyServiceServer
	s *Server
}

var _ shoalv1.PolicyServiceServer = (*policyService)(nil)

func (ps *policyService) CreatePolicy(ctx context.Context, req *shoalv1.CreatePolicyRequest) (*shoalv1.CreatePolicyResponse, error) {
	p, err := ps.s.cfg.Policies.Create(ctx, req.GetPolicy())
	if err != nil {
		return nil, ps.s.toStatus(err)
	}
	return &shoalv1.CreatePolicyResponse{Policy: p}, nil
}

func (ps *policyService) GetPolicy(ctx context.Context, req *shoalv1.GetPolicyRequest) (*shoalv1.GetPolicyResponse, error) {
	p, err := ps.s.cfg.Policies.Get(ctx, req.GetName())
	if err != nil {
		return nil, ps.status(req.GetName(), err)
	}
	return &shoalv1.GetPolicyResponse{Policy: p}, nil
}

func (ps *policyService) ListPolicies(ctx context.Context, _ *shoalv1.ListPoliciesRequest) (*shoalv1.ListPoliciesResponse, error) {
	all, err := ps.s.cfg.Policies.List(ctx)
	if err != nil {
		return nil, ps.s.toStatus(err)
	}
	return &shoalv1.ListPoliciesResponse{Policies: all}, nil
}

func (ps *policyService) UpdatePolicy(ctx context.Context, req *shoalv1.UpdatePolicyRequest) (*shoalv1.UpdatePolicyResponse, error) {
	p, err := ps.s.cfg.Policies.Update(ctx, req.GetPolicy())
	if err != nil {
		return nil, ps.status(req.GetPolicy().GetName(), err)
	}
	return &shoalv1.UpdatePolicyResponse{Policy: p}, nil
}

func (ps *policyService) DeletePolicy(ctx context.Context, req *shoalv1.DeletePolicyRequest) (*shoalv1.DeletePolicyResponse, error) {
	if err := ps.s.cfg.Policies.Delete(ctx, req.GetName(), req.GetVersion()); err != nil {
		return nil, ps.status(req.GetName(), err)
	}
	return &shoalv1.DeletePolicyResponse{}, nil
}

// status is toStatus naming the policy when there is none by that name.
func (ps *policyService) status(name string, err error) error {
	if errors.Is(err, policies.ErrNotFound) {
		return status.Errorf(codes.NotFound, "policy %q not found", name)
	}
	return ps.s.toStatus(err)
}
