package xdsserver

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-mesh/shoal/controlplane/xds"
)

// roleChecked refuses a listener watch whose node asks for an invalid role
// before the gate can hold it: a held watch is opened later, when its
// error can no longer fail the stream, and the proxy would wait forever.
type roleChecked struct{ cache.Cache }

// CreateWatch implements cache.ConfigWatcher for SotW.
func (c roleChecked) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	if err := checkRole(req.GetNode(), req.GetTypeUrl()); err != nil {
		return nil, err
	}
	return c.Cache.CreateWatch(req, sub, ch)
}

// CreateDeltaWatch implements cache.ConfigWatcher for delta.
func (c roleChecked) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	if err := checkRole(req.GetNode(), req.GetTypeUrl()); err != nil {
		return nil, err
	}
	return c.Cache.CreateDeltaWatch(req, sub, ch)
}

// checkRole returns InvalidArgument naming the metadata key when a listener
// request's node asks for an invalid role.
func checkRole(node *corev3.Node, typeURL string) error {
	if typeURL != resource.ListenerType {
		return nil
	}
	if _, err := xds.RoleOf(node); err != nil {
		return status.Error(codes.InvalidArgument, "xds: "+err.Error())
	}
	return nil
}
