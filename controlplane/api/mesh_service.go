package api

import (
	"context"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// meshService implements shoalv1.MeshServiceServer over a StatusSource.
type meshService struct {
	shoalv1.UnimplementedMeshServiceServer
	s *Server
}

var _ shoalv1.MeshServiceServer = (*meshService)(nil)

func (ms *meshService) Status(context.Context, *shoalv1.StatusRequest) (*shoalv1.StatusResponse, error) {
	if src := ms.s.cfg.Status; src != nil {
		if resp := src.Status(); resp != nil {
			return resp, nil
		}
	}
	return &shoalv1.StatusResponse{}, nil
}

func (ms *meshService) Traffic(context.Context, *shoalv1.TrafficRequest) (*shoalv1.TrafficResponse, error) {
	if src := ms.s.cfg.Traffic; src != nil {
		if resp := src.Traffic(); resp != nil {
			return resp, nil
		}
	}
	return &shoalv1.TrafficResponse{}, nil
}
