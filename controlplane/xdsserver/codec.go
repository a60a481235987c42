package xdsserver

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-mesh/shoal/internal/xdslimit"
)

// ServerOptions are the gRPC server options the xDS server is meant to run
// with; add them to the *grpc.Server given to Register.
func ServerOptions() []grpc.ServerOption {
	// The send limit is what shoal's proxies accept (xdslimit); a response
	// over it fails on this side, in this server's logs, rather than on
	// every client.
	return []grpc.ServerOption{grpc.ForceServerCodecV2(codec{}), grpc.MaxSendMsgSize(xdslimit.MaxMessageSize)}
}

// codec is gRPC's proto codec except that it marshals into buffers of its
// own instead of buffers from mem.DefaultBufferPool. An xDS server's
// largest messages are each client's first responses, hundreds of KiB to
// MiBs each; gRPC's pool kept the buffers of an initial sync — 400 MiB for
// 200 clients — in its sync.Pools, live for the garbage collector (so
// counted twice against the heap goal), until two collections passed
// without another sync: minutes on an idle control plane. A buffer of its
// own is garbage once written. Requests are decoded as gRPC does.
type codec struct{}

var _ encoding.CodecV2 = codec{}

// Marshal implements encoding.CodecV2.
func (codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("xds codec: marshal %T, want a proto.Message", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// Unmarshal implements encoding.CodecV2.
func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2(protoenc.Name).Unmarshal(data, v)
}

// Name implements encoding.CodecV2: the codec is gRPC's "proto".
func (codec) Name() string { return protoenc.Name }
