package etcdlite

import (
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

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

// rawCodec passes messages through as *[]byte: this package encodes them
// itself. Its name makes the content-type application/grpc+proto, which is
// what etcd expects. It is a call option, never registered globally (that
// would replace the protobuf codec of every other gRPC user in the
// process).
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("etcdlite: codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("etcdlite: codec: cannot unmarshal into %T", v)
	}
	*b = data.Materialize() // a copy: data is freed when this returns
	return nil
}

// Encoding. Proto3 leaves zero scalars out; so do these helpers.

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendInt(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return appendInt(b, num, 1)
}

// field is one decoded field: a varint in v, or length-delimited data.
type field struct {
	num  protowire.Number
	typ  protowire.Type
	v    uint64
	data []byte
}

// isInt and isMsg check the wire type, so that a field of an unexpected
// type is skipped rather than misread.
func (f field) isInt(num protowire.Number) bool { return f.num == num && f.typ == protowire.VarintType }
func (f field) isMsg(num protowire.Number) bool { return f.num == num && f.typ == protowire.BytesType }

// walk calls fn for every field of the message b, in order. Fixed-width
// and group fields (none in the messages read here) are skipped.
func walk(b []byte, fn func(field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed(n)
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.data, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return malformed(n)
		}
		b = b[n:]
		if typ == protowire.VarintType || typ == protowire.BytesType {
			if err := fn(f); err != nil {
				return err
			}
		}
	}
	return nil
}

func malformed(n int) error {
	return fmt.Errorf("etcdlite: malformed response from etcd: %w", protowire.ParseError(n))
}

// headerRevision reads ResponseHeader.revision (field 3).
func headerRevision(b []byte) (int64, error) {
	var rev int64
	err := walk(b, func(f field) error {
		if f.isInt(3) {
			rev = int64(f.v)
		}
		return nil
	})
	return rev, err
}

// leaseResponse is LeaseGrantResponse and LeaseKeepAliveResponse: header
// = 1, ID = 2, TTL = 3, and the grant's error = 4.
type leaseResponse struct {
	id, ttl int64
	err     string
}

func decodeLeaseResponse(b []byte) (leaseResponse, error) {
	var r leaseResponse
	err := walk(b, func(f field) error {
		switch {
		case f.isInt(2):
			r.id = int64(f.v)
		case f.isInt(3):
			r.ttl = int64(f.v)
		case f.isMsg(4):
			r.err = string(f.data)
		}
		return nil
	})
	return r, err
}

// kvResponse is PutResponse and RangeResponse: header = 1, and the
// range's count = 4.
type kvResponse struct {
	revision, count int64
}

func decodeKVResponse(b []byte) (kvResponse, error) {
	var r kvResponse
	err := walk(b, func(f field) error {
		var err error
		switch {
		case f.isMsg(1):
			r.revision, err = headerRevision(f.data)
		case f.isInt(4):
			r.count = int64(f.v)
		}
		return err
	})
	return r, err
}

// watchResponse is the part of a WatchResponse a deletion watch needs.
type watchResponse struct {
	revision        int64 // header.revision (1.3)
	created         bool  // 3
	canceled        bool  // 4
	compactRevision int64 // 5
	cancelReason    string
	deleted         bool // an event (11) of type DELETE (mvccpb.Event.type = 1)
}

func decodeWatchResponse(b []byte) (watchResponse, error) {
	var r watchResponse
	err := walk(b, func(f field) error {
		var err error
		switch {
		case f.isMsg(1):
			r.revision, err = headerRevision(f.data)
		case f.isInt(3):
			r.created = f.v != 0
		case f.isInt(4):
			r.canceled = f.v != 0
		case f.isInt(5):
			r.compactRevision = int64(f.v)
		case f.isMsg(6):
			r.cancelReason = string(f.data)
		case f.isMsg(11):
			err = walk(f.data, func(ef field) error {
				if ef.isInt(1) && ef.v == 1 {
					r.deleted = true
				}
				return nil
			})
		}
		return err
	})
	return r, err
}
