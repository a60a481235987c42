package registry_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shoal-mesh/shoal/registry"
)

func validInstance() registry.Instance {
	return registry.Instance{ID: "orders-1", Service: "orders", Address: "127.0.0.1", Port: 3001}
}

func TestValidateNamesTheField(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(*registry.Instance)
		wantField string
	}{
		{"accepts a minimal instance", func(*registry.Instance) {}, ""},
		{"accepts every optional field", func(in *registry.Instance) {
			in.Protocol, in.Zone, in.Weight, in.Metadata = registry.ProtocolGRPC, "eu-1a", 5, map[string]string{"version": "v1"}
		}, ""},
		{"accepts a host name address", func(in *registry.Instance) { in.Address = "orders-1.internal" }, ""},
		{"accepts an IPv6 address", func(in *registry.Instance) { in.Address = "::1" }, ""},
		{"rejects an upper-case service", func(in *registry.Instance) { in.Service = "Orders" }, "service"},
		{"rejects a service with a slash", func(in *registry.Instance) { in.Service = "a/b" }, "service"},
		{"rejects a 64-character service", func(in *registry.Instance) { in.Service = strings.Repeat("a", 64) }, "service"},
		{"rejects a trailing dash", func(in *registry.Instance) { in.Service = "orders-" }, "service"},
		{"rejects an empty id", func(in *registry.Instance) { in.ID = "" }, "id"},
		{"rejects an id with a slash", func(in *registry.Instance) { in.ID = "a/b" }, "id"},
		{"rejects port 0", func(in *registry.Instance) { in.Port = 0 }, "port"},
		{"rejects port 65536", func(in *registry.Instance) { in.Port = 65536 }, "port"},
		{"rejects an unknown protocol", func(in *registry.Instance) { in.Protocol = "udp" }, "protocol"},
		{"accepts tls mtls (a sidecar's mTLS inbound listener)", func(in *registry.Instance) { in.TLS = registry.TLSMutual }, ""},
		{"rejects another tls mode", func(in *registry.Instance) { in.TLS = "tls" }, "tls"},
		{"rejects a negative weight", func(in *registry.Instance) { in.Weight = -1 }, "weight"},
		{"rejects a huge weight", func(in *registry.Instance) { in.Weight = registry.MaxWeight + 1 }, "weight"},
		{"rejects an empty address", func(in *registry.Instance) { in.Address = "" }, "address"},
		{"rejects an address with a space", func(in *registry.Instance) { in.Address = "a b" }, "address"},
		{"rejects an empty metadata key", func(in *registry.Instance) { in.Metadata = map[string]string{"": "x"} }, "metadata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := validInstance()
			tc.mutate(&in)
			err := in.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *registry.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError", err)
			}
			if fe.Field != tc.wantField {
				t.Errorf("field = %q, want %q (err: %v)", fe.Field, tc.wantField, err)
			}
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Errorf("error %q does not name the field %q", err, tc.wantField)
			}
		})
	}
}

func TestUnmarshalFillsDefaultsAndRoundTrips(t *testing.T) {
	got, err := registry.UnmarshalInstance([]byte(`{"id":"orders-1","service":"orders","address":"127.0.0.1","port":3001,"future":"ignored"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &registry.Instance{ID: "orders-1", Service: "orders", Address: "127.0.0.1", Port: 3001, Protocol: "http", Zone: "local", Weight: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UnmarshalInstance (-want +got):\n%s", diff)
	}
	data, _ := got.Marshal()
	const wantJSON = `{"id":"orders-1","service":"orders","address":"127.0.0.1","port":3001,"protocol":"http","zone":"local","weight":1}`
	if string(data) != wantJSON {
		t.Errorf("Marshal = %s, want %s", data, wantJSON)
	}
}

func TestUnmarshalRejectsMalformed(t *testing.T) {
	for _, in := range []string{``, `{`, `[]`, `{"id":"x","service":"orders","address":"127.0.0.1","port":"80"}`, `{"id":"x","service":"orders","address":"127.0.0.1","port":0}`} {
		if _, err := registry.UnmarshalInstance([]byte(in)); err == nil {
			t.Errorf("UnmarshalInstance(%q) succeeded, want error", in)
		}
	}
}

func TestParseInstanceKey(t *testing.T) {
	svc, id, err := registry.ParseInstanceKey(registry.InstanceKey("orders", "orders-1"))
	if err != nil || svc != "orders" || id != "orders-1" {
		t.Errorf("ParseInstanceKey = %q, %q, %v", svc, id, err)
	}
	for _, k := range []string{"/shoal/v1/instances/orders", "/shoal/v1/instances/orders/", "/shoal/v1/instances/a/b/c", "/other/orders/1"} {
		if _, _, err := registry.ParseInstanceKey(k); err == nil {
			t.Errorf("ParseInstanceKey(%q) succeeded, want error", k)
		}
	}
}
