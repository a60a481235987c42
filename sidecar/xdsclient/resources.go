package xdsclient

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/anypb"

	clusterv3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/cluster/v3"
	"github.com/shoal-mesh/shoal/sidecar/internal/xdsres"
)

// maxErrorDetail bounds the error_detail message of a NACK.
const maxErrorDetail = 4096

// update is a decoded, validated response: what it adds or replaces and
// what it removes.
type update struct {
	typeURL string
	version string
	// upserts holds the resources to add or replace, by name; versions
	// holds their per-resource versions and raw their wire form.
	upserts  map[string]Resource
	versions map[string]string
	raw      map[string][]byte
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
		upserts:  map[string]Resource{},
		versions: map[string]string{},
		raw:      map[string][]byte{},
		full:     full,
	}
}

// add decodes and validates one resource and adds it to u. name, if not
// empty, must match the resource's own name.
func (u *update) add(name, version string, a *anypb.Any) error {
	m, err := decodeResource(u.typeURL, a)
	got := ""
	if m != nil { // m may be set even if invalid: name the culprit
		got = xdsres.Name(m)
	}
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
	// The generated unmarshal copied the bytes out of the response buffer.
	u.raw[got] = a.GetValue()
	return nil
}

// decodeResource decodes a and checks it against the Envoy protos'
// validation rules for the fields the sidecar reads (xdsres.Validate). A
// validation error comes with the decoded resource.
func decodeResource(typeURL string, a *anypb.Any) (Resource, error) {
	if a.GetTypeUrl() != typeURL {
		return nil, fmt.Errorf("type %q in a %q response", a.GetTypeUrl(), typeURL)
	}
	m, err := xdsres.Decode(typeURL, a.GetValue())
	if err != nil && m == nil {
		return nil, fmt.Errorf("unmarshal: %w", err)
	}
	return m, err
}

// routeNames returns the RDS route_config_names l references.
func routeNames(l *Listener) []string {
	var names []string
	hcms, _ := xdsres.HCMs(l) // validated when l was accepted
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
func edsName(c *Cluster) string {
	if _, ok := c.GetClusterDiscoveryType().(*clusterv3.Cluster_Type); !ok || c.GetType() != clusterv3.Cluster_EDS {
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
