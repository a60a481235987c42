package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// metaVersion is the first byte of every node metadata blob. A member that
// reads an unknown version treats the node as fronting no instances.
// Version 2 appends the member's ticket (ticket.go); a member without one
// still writes version 1, which every shoal release reads.
const (
	metaVersion       = 1
	metaVersionTicket = 2
)

// ErrMetaTooLarge is returned when the instances a member fronts do not fit
// in memberlist's node metadata (memberlist.MetaMaxSize, 512 bytes). The
// previously published metadata stays in effect.
var ErrMetaTooLarge = fmt.Errorf("gossip: node metadata exceeds %d bytes", memberlist.MetaMaxSize)

// InstanceKey names one registered instance: the service and instance id of
// its etcd key (registry.InstanceKey(Service, ID)).
type InstanceKey struct {
	Service string
	ID      string
}

func (k InstanceKey) String() string { return k.Service + "/" + k.ID }

// InstanceHealth is an instance a member fronts and its app health as the
// member's local checks see it.
type InstanceHealth struct {
	InstanceKey
	Healthy bool
}

// nodeMeta is what a member publishes in memberlist's node metadata.
type nodeMeta struct {
	Role      Role
	Instances []InstanceHealth
	// Ticket is the member's encoded ticket (ticket.go); nil: none.
	Ticket []byte
}

// encodeMeta is a compact binary encoding:
//
//	[version u8][role u8][count uvarint] then per instance
//	[len uvarint][service][len uvarint][id][flags u8 (bit 0: healthy)]
//	and, in version 2, [len uvarint][ticket]
//
// About 25 bytes per instance with typical names, so a member fits well
// over a dozen instances in 512 bytes.
func encodeMeta(m nodeMeta) ([]byte, error) {
	v := byte(metaVersion)
	if len(m.Ticket) > 0 {
		v = metaVersionTicket
	}
	b := []byte{v, byte(m.Role)}
	b = binary.AppendUvarint(b, uint64(len(m.Instances)))
	for _, in := range m.Instances {
		b = appendString(b, in.Service)
		b = appendString(b, in.ID)
		var flags byte
		if in.Healthy {
			flags |= 1
		}
		b = append(b, flags)
	}
	if len(m.Ticket) > 0 {
		b = appendString(b, string(m.Ticket))
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, ErrMetaTooLarge
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errBadMeta = errors.New("gossip: malformed node metadata")

// decodeMeta parses a blob written by encodeMeta. The result does not alias b.
func decodeMeta(b []byte) (nodeMeta, error) {
	if len(b) < 2 || (b[0] != metaVersion && b[0] != metaVersionTicket) {
		return nodeMeta{}, errBadMeta
	}
	m := nodeMeta{Role: Role(b[1])}
	r := metaReader{b: b[2:]}
	n := r.uvarint()
	if n > uint64(len(r.b)) { // every instance takes at least one byte
		return nodeMeta{}, errBadMeta
	}
	m.Instances = make([]InstanceHealth, 0, n)
	for range n {
		var in InstanceHealth
		in.Service = r.string()
		in.ID = r.string()
		in.Healthy = r.byte()&1 != 0
		m.Instances = append(m.Instances, in)
	}
	if b[0] == metaVersionTicket {
		m.Ticket = []byte(r.string())
	}
	if r.bad {
		return nodeMeta{}, errBadMeta
	}
	return m, nil
}

// metaReader reads encodeMeta's fields; any short read sets bad.
type metaReader struct {
	b   []byte
	bad bool
}

func (r *metaReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *metaReader) string() string {
	l := r.uvarint()
	if r.bad || l > uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	s := string(r.b[:l])
	r.b = r.b[l:]
	return s
}

func (r *metaReader) byte() byte {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}
