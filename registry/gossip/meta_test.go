package gossip

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMetaRoundTrips(t *testing.T) {
	tests := []struct {
		name string
		meta nodeMeta
	}{
		{"control plane, no instances", nodeMeta{Role: RoleControlPlane, Instances: []InstanceHealth{}}},
		{"sidecar, two instances", nodeMeta{Role: RoleSidecar, Instances: []InstanceHealth{
			{InstanceKey: InstanceKey{Service: "orders", ID: "orders-1"}, Healthy: true},
			{InstanceKey: InstanceKey{Service: "payments", ID: "p-2"}, Healthy: false},
		}}},
		{"sidecar with a ticket (version 2)", nodeMeta{Role: RoleSidecar, Instances: []InstanceHealth{
			{InstanceKey: InstanceKey{Service: "web", ID: "web-1"}, Healthy: true},
		}, Ticket: []byte("\x03web\x01\x02sg")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeMeta(tc.meta)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.meta, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMetaRefusesOverflow(t *testing.T) {
	var m nodeMeta
	m.Role = RoleSidecar
	for i := 0; ; i++ {
		m.Instances = append(m.Instances, InstanceHealth{
			InstanceKey: InstanceKey{Service: "orders", ID: fmt.Sprintf("orders-%04d", i)}})
		if _, err := encodeMeta(m); err != nil {
			if !errors.Is(err, ErrMetaTooLarge) {
				t.Fatalf("err = %v, want ErrMetaTooLarge", err)
			}
			t.Logf("%d instances of ~20-byte keys fit in 512 bytes", i)
			if i < 15 {
				t.Errorf("only %d instances fit, want at least 15", i)
			}
			return
		}
	}
}

func TestDecodeMetaRejectsMalformed(t *testing.T) {
	good, _ := encodeMeta(nodeMeta{Role: RoleSidecar, Instances: []InstanceHealth{
		{InstanceKey: InstanceKey{Service: "a", ID: "b"}}}})
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"unknown version", []byte{9, 1, 0}},
		{"truncated", good[:len(good)-1]},
		{"absurd count", []byte{metaVersion, 1, 0xff, 0xff, 0x03}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeMeta(tc.in); err == nil {
				t.Errorf("decodeMeta(%x) = nil error", tc.in)
			}
		})
	}
}

func TestSplitCompoundKeepsWholeParts(t *testing.T) {
	// two parts announced, the second truncated: memberlist keeps the first.
	buf := []byte{2, 0, 2, 0, 5, 'h', 'i', 'x'}
	parts, err := splitCompound(buf)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]byte{[]byte("hi")}, parts); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
}
