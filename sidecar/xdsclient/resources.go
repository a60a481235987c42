package xdsclient

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// hcmType is the type URL of the HTTP connection manager filter config.
const hcmType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// maxErrorDetail bounds the error_detail message of a NACK.
const maxErrorDetail = 4096

// update is a decoded, validated response: what it adds or replaces and
// what it removes.
type update struct {
	typeURL string
	version string
	// upserts holds the resources to add or replace, by name; versions
	// holds their per-resource versions.
	upserts  map[string]proto.Message
	versions map[string]string
	// removed lists names to delete (delta removed_resources).
	removed []string
	// full means the update is the whole state of its type (SotW LDS/CDS):
	// held resources absent from upserts are deleted.
	full bool
}

func newUpdate(typeURL, version string, full bool) *update {
	return &update{
		typeURL:  typeURL,
		version:  version,
		upserts:  map[string]proto.Message{},
		versions: map[string]string{},
		full:     full,
	}
}

// add decodes and validates one resource and adds it to u. name, if not
// empty, must match the resource's own name.
func (u *update) add(name, version string, a *anypb.Any) error {
	m, err := decodeResource(u.typeURL, a)
	got := resourceName(m) // m may be set even if invalid: name the culprit
	if name == "" {
		name = got
	}
	if err != nil {
		return fmt.Errorf("resource %q: %w", name, err)
	}
	switch {
	case name != "" && got != name:
		return fmt.Errorf("resource %q: message is named %q", name, got)
	case got == "":
		return errors.New("resource without a name")
	}
	if _, dup := u.upserts[got]; dup {
		return fmt.Errorf("resource %q: duplicate", got)
	}
	u.upserts[got] = m
	u.versions[got] = version
	return nil
}

// newMessage returns an empty message of a supported type URL.
func newMessage(typeURL string) (proto.Message, error) {
	switch typeURL {
	case ListenerType:
		return &listenerv3.Listener{}, nil
	case RouteType:
		return &routev3.RouteConfiguration{}, nil
	case ClusterType:
		return &clusterv3.Cluster{}, nil
	case EndpointType:
		return &endpointv3.ClusterLoadAssignment{}, nil
	}
	return nil, fmt.Errorf("unsupported type %q", typeURL)
}

// decodeResource unmarshals a and runs ValidateAll on it (and, for
// listeners, on their HTTP connection managers). A validation error comes
// with the unmarshalled message.
func decodeResource(typeURL string, a *anypb.Any) (proto.Message, error) {
	if a.GetTypeUrl() != typeURL {
		return nil, fmt.Errorf("type %q in a %q response", a.GetTypeUrl(), typeURL)
	}
	m, err := newMessage(typeURL)
	if err != nil {
		return nil, err
	}
	if err := a.UnmarshalTo(m); err != nil {
		return nil, fmt.Errorf("unmarshal: %w", err)
	}
	if err := m.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
		return m, err
	}
	if l, ok := m.(*listenerv3.Listener); ok {
		if _, err := listenerHCMs(l); err != nil {
			return m, err
		}
	}
	return m, nil
}

// resourceName returns the xDS name of a supported resource.
func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	case *clusterv3.Cluster:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	}
	return ""
}

// listenerHCMs returns the validated HTTP connection managers of l: in its
// filter chains, default filter chain and API listener.
func listenerHCMs(l *listenerv3.Listener) ([]*hcmv3.HttpConnectionManager, error) {
	var anys []*anypb.Any
	chains := append([]*listenerv3.FilterChain{l.GetDefaultFilterChain()}, l.GetFilterChains()...)
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			if tc := f.GetTypedConfig(); tc.GetTypeUrl() == hcmType {
				anys = append(anys, tc)
			}
		}
	}
	if a := l.GetApiListener().GetApiListener(); a != nil {
		anys = append(anys, a)
	}
	out := make([]*hcmv3.HttpConnectionManager, 0, len(anys))
	for _, a := range anys {
		h := &hcmv3.HttpConnectionManager{}
		if err := a.UnmarshalTo(h); err != nil {
			return nil, fmt.Errorf("http connection manager: %w", err)
		}
		if err := h.ValidateAll(); err != nil {
			return nil, fmt.Errorf("http connection manager: %w", err)
		}
		out = append(out, h)
	}
	return out, nil
}

// routeNames returns the RDS route_config_names l references.
func routeNames(l *listenerv3.Listener) []string {
	hcms, _ := listenerHCMs(l) // validated on decode
	var names []string
	for _, h := range hcms {
		if n := h.GetRds().GetRouteConfigName(); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// edsName returns the EDS service name of c, or "" if c is not an EDS
// cluster. The contract names CLAs by eds_cluster_config.service_name,
// defaulting to the cluster name as Envoy does.
func edsName(c *clusterv3.Cluster) string {
	if c.GetType() != clusterv3.Cluster_EDS {
		return ""
	}
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.GetName()
}

// joinErrors formats errs sorted, bounded by maxErrorDetail.
func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	sort.Strings(msgs)
	s := strings.Join(msgs, "; ")
	if len(s) > maxErrorDetail {
		s = s[:maxErrorDetail] + "..."
	}
	return errors.New(s)
}
