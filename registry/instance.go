package registry

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
)

// Protocol is the application protocol an instance speaks.
type Protocol string

// Protocols an instance may declare (the ARCHITECTURE.md etcd contract).
const (
	ProtocolHTTP  Protocol = "http"
	ProtocolHTTP2 Protocol = "http2"
	ProtocolGRPC  Protocol = "grpc"
	ProtocolTCP   Protocol = "tcp"
)

// Valid reports whether p is a known protocol. The empty protocol is not
// valid; Normalize turns it into ProtocolHTTP.
func (p Protocol) Valid() bool {
	switch p {
	case ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolTCP:
		return true
	}
	return false
}

// Instance is one registered endpoint of a service, stored as JSON at
// InstanceKey(Service, ID). The JSON field names are a contract shared with
// the Node.js package and with anything that registers through etcdctl.
type Instance struct {
	ID       string            `json:"id"`
	Service  string            `json:"service"`
	Address  string            `json:"address"`
	Port     int               `json:"port"`
	Protocol Protocol          `json:"protocol,omitempty"`
	Zone     string            `json:"zone,omitempty"`
	Weight   int               `json:"weight,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// TLS is TLSMutual when Address:Port is a sidecar's mTLS inbound
	// listener (callers must originate mTLS); empty means plain.
	TLS string `json:"tls,omitempty"`
}

// TLSMutual is the Instance.TLS value of an mTLS endpoint.
const TLSMutual = "mtls"

// Defaults for optional Instance fields.
const (
	DefaultProtocol = ProtocolHTTP
	DefaultWeight   = 1
	DefaultZone     = "local"
	// MaxWeight bounds Instance.Weight so weighted load balancers cannot
	// overflow when summing the weights of many endpoints.
	MaxWeight = 10000
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidName reports whether s is a valid service or route name: a lowercase
// DNS label (RFC 1123) of at most 63 characters.
func ValidName(s string) bool {
	return len(s) <= 63 && dnsLabel.MatchString(s)
}

// instanceID allows the characters a host name, pod name or UUID may use;
// it is a single etcd key segment, so '/' is never allowed.
var instanceID = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._:-]*[A-Za-z0-9])?$`)

// FieldError is a validation error that names the offending field.
type FieldError struct {
	Field  string // JSON field path, e.g. "port" or "metadata.version"
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("registry: invalid instance: %s: %s", e.Field, e.Reason)
}

// Normalize fills the documented defaults of optional fields in place.
func (in *Instance) Normalize() {
	if in.Protocol == "" {
		in.Protocol = DefaultProtocol
	}
	if in.Weight == 0 {
		in.Weight = DefaultWeight
	}
	if in.Zone == "" {
		in.Zone = DefaultZone
	}
}

// Validate checks in against the etcd contract. It returns a *FieldError
// naming the first offending field. Validate does not fill defaults: an
// empty protocol, zone or zero weight is accepted and means the default.
func (in *Instance) Validate() error {
	switch {
	case !ValidName(in.Service):
		return &FieldError{"service", fmt.Sprintf("%q is not a lowercase DNS label of at most 63 characters", in.Service)}
	case len(in.ID) > 253 || !instanceID.MatchString(in.ID):
		return &FieldError{"id", fmt.Sprintf("%q must be 1-253 characters of [A-Za-z0-9._:-], starting and ending alphanumeric", in.ID)}
	case !validAddress(in.Address):
		return &FieldError{"address", fmt.Sprintf("%q is not an IP address or host name", in.Address)}
	case in.Port < 1 || in.Port > 65535:
		return &FieldError{"port", fmt.Sprintf("%d is outside 1-65535", in.Port)}
	case in.Protocol != "" && !in.Protocol.Valid():
		return &FieldError{"protocol", fmt.Sprintf("%q is not one of http, http2, grpc, tcp", in.Protocol)}
	case in.Weight < 0 || in.Weight > MaxWeight:
		return &FieldError{"weight", fmt.Sprintf("%d is outside 1-%d (0 means the default, 1)", in.Weight, MaxWeight)}
	case in.TLS != "" && in.TLS != TLSMutual:
		return &FieldError{"tls", fmt.Sprintf("%q is not %q (or absent for plain)", in.TLS, TLSMutual)}
	case in.Zone != "" && (len(in.Zone) > 128 || strings.ContainsAny(in.Zone, "/ \t\n")):
		return &FieldError{"zone", fmt.Sprintf("%q must be at most 128 characters without '/' or spaces", in.Zone)}
	}
	for k := range in.Metadata {
		if k == "" || len(k) > 253 {
			return &FieldError{"metadata", fmt.Sprintf("key %q must be 1-253 characters", k)}
		}
	}
	return nil
}

func validAddress(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || !instanceID.MatchString(label) || strings.Contains(label, ":") {
			return false
		}
	}
	return true
}

// HostPort returns "address:port", bracketing IPv6 addresses.
func (in *Instance) HostPort() string {
	if a, err := netip.ParseAddr(in.Address); err == nil {
		return netip.AddrPortFrom(a, uint16(in.Port)).String()
	}
	return fmt.Sprintf("%s:%d", in.Address, in.Port)
}

// Marshal encodes in as the contract JSON.
func (in *Instance) Marshal() ([]byte, error) {
	return json.Marshal(in)
}

// UnmarshalInstance decodes and validates the contract JSON and fills
// defaults. Unknown fields are ignored so newer writers can add fields.
func UnmarshalInstance(data []byte) (*Instance, error) {
	var in Instance
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("registry: decode instance: %w", err)
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	in.Normalize()
	return &in, nil
}

// SortInstances orders instances by service, then id.
func SortInstances(ins []*Instance) {
	sort.Slice(ins, func(i, j int) bool {
		if ins[i].Service != ins[j].Service {
			return ins[i].Service < ins[j].Service
		}
		return ins[i].ID < ins[j].ID
	})
}
