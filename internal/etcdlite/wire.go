package etcdlite

import (
	"google.golang.org/protobuf/proto"

	pb "github.com/shoal-mesh/shoal/internal/etcdlite/internal/etcdpb/etcdserverpb"
)

// The messages are the protobuf code generated from a trimmed copy of
// etcd's rpc.proto (internal/etcdpb, written by tools/protosubset from
// tools/protosubset/etcd.keep): the fields this package sends and reads,
// with etcd's names and numbers; gRPC's protobuf codec carries them, and
// fields outside the subset are ignored.

// gRPC method names (etcdserverpb's services).
const (
	methodRange          = "/etcdserverpb.KV/Range"
	methodPut            = "/etcdserverpb.KV/Put"
	methodDeleteRange    = "/etcdserverpb.KV/DeleteRange"
	methodLeaseGrant     = "/etcdserverpb.Lease/LeaseGrant"
	methodLeaseRevoke    = "/etcdserverpb.Lease/LeaseRevoke"
	methodLeaseKeepAlive = "/etcdserverpb.Lease/LeaseKeepAlive"
	methodWatch          = "/etcdserverpb.Watch/Watch"
)

// retryPolicy says whether a unary call may be sent again after etcd
// answered Unavailable (no leader, leader changed, connection lost
// mid-call), as etcd's client/v3/retry.go names it per RPC.
type retryPolicy uint8

const (
	// repeatable: sending the call twice has the effect of sending it once.
	repeatable retryPolicy = iota
	// nonRepeatable: a second send may apply the call twice.
	nonRepeatable
)

// retryPolicies is the policy of each unary RPC, with the reason
// (clientv3's choice for the same RPC).
var retryPolicies = map[string]retryPolicy{
	// A read.
	methodRange: repeatable,
	// A second Put after a lost answer writes a new revision: watchers
	// see the key twice.
	methodPut: nonRepeatable,
	// A second DeleteRange may delete a key written in between.
	methodDeleteRange: nonRepeatable,
	// A second grant at worst leaves an unused lease that expires on its
	// own; clientv3 retries it too.
	methodLeaseGrant: repeatable,
	// Revoking a revoked lease answers NotFound: no harm done.
	methodLeaseRevoke: repeatable,
}

// unary pairs a unary RPC with its response type.
type unary[Resp proto.Message] struct {
	method string
	new    func() Resp
}

var (
	rpcRange       = unary[*pb.RangeResponse]{methodRange, func() *pb.RangeResponse { return &pb.RangeResponse{} }}
	rpcPut         = unary[*pb.PutResponse]{methodPut, func() *pb.PutResponse { return &pb.PutResponse{} }}
	rpcDeleteRange = unary[*pb.DeleteRangeResponse]{methodDeleteRange, func() *pb.DeleteRangeResponse { return &pb.DeleteRangeResponse{} }}
	rpcLeaseGrant  = unary[*pb.LeaseGrantResponse]{methodLeaseGrant, func() *pb.LeaseGrantResponse { return &pb.LeaseGrantResponse{} }}
	rpcLeaseRevoke = unary[*pb.LeaseRevokeResponse]{methodLeaseRevoke, func() *pb.LeaseRevokeResponse { return &pb.LeaseRevokeResponse{} }}
)
