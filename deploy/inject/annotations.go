package inject

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-mesh/shoal/registry"
)

// Annotations read from the pod (template) metadata.
const (
	// AnnotationInject opts a pod in: "true" injects, anything else does not.
	AnnotationInject = "shoal.dev/inject"
	// AnnotationService is the service name (a DNS label). Default: the
	// app.kubernetes.io/name label, then the app label.
	AnnotationService = "shoal.dev/service"
	// AnnotationAppPort is the app's port, a number or the name of a
	// container port. Default: the first port of the first container.
	AnnotationAppPort = "shoal.dev/app-port"
	// AnnotationAppProtocol is http (default), http2, grpc or tcp.
	AnnotationAppProtocol = "shoal.dev/app-protocol"
	// AnnotationUpstreams lists per-upstream local ports:
	// "orders=9001,users=9002" makes 127.0.0.1:9001 reach service orders.
	AnnotationUpstreams = "shoal.dev/upstreams"
	// AnnotationHealthPath is the app's HTTP health path (default: TCP
	// connect).
	AnnotationHealthPath = "shoal.dev/health-path"
	// AnnotationMetadata is instance metadata as k=v,k=v ("version=v2").
	AnnotationMetadata = "shoal.dev/metadata"
)

// options is what the annotations ask for, validated.
type options struct {
	service, protocol, healthPath, metadata string
	appPort                                 int32
	upstreams                               [][2]string // name, port, in annotation order
}

// reservedPorts are the sidecar's own ports inside the pod.
var reservedPorts = []int32{AdminPort, OutboundPort, InboundPort, GossipPort}

// parseOptions reads the annotations of a pod whose containers are cs.
func parseOptions(meta map[string]string, labels map[string]string, cs []corev1.Container) (options, error) {
	var o options
	var err error
	if o.service, err = serviceName(meta, labels); err != nil {
		return o, err
	}
	if o.appPort, err = appPort(meta[AnnotationAppPort], cs); err != nil {
		return o, err
	}
	o.protocol = meta[AnnotationAppProtocol]
	switch registry.Protocol(o.protocol) {
	case "", registry.ProtocolHTTP, registry.ProtocolHTTP2, registry.ProtocolGRPC, registry.ProtocolTCP:
	default:
		return o, fmt.Errorf("annotation %s: %q is not http, http2, grpc or tcp", AnnotationAppProtocol, o.protocol)
	}
	if o.upstreams, err = upstreams(meta[AnnotationUpstreams], o.appPort); err != nil {
		return o, err
	}
	if o.healthPath = meta[AnnotationHealthPath]; o.healthPath != "" && !strings.HasPrefix(o.healthPath, "/") {
		return o, fmt.Errorf("annotation %s: %q must start with /", AnnotationHealthPath, o.healthPath)
	}
	if o.metadata, err = metadata(meta[AnnotationMetadata]); err != nil {
		return o, err
	}
	return o, nil
}

func serviceName(meta, labels map[string]string) (string, error) {
	name := meta[AnnotationService]
	for _, l := range []string{"app.kubernetes.io/name", "app"} {
		if name == "" {
			name = labels[l]
		}
	}
	switch {
	case name == "":
		return "", fmt.Errorf("annotation %s: missing (and no app.kubernetes.io/name or app label to default from)", AnnotationService)
	case !registry.ValidName(name):
		return "", fmt.Errorf("annotation %s: %q is not a lowercase DNS label of at most 63 characters", AnnotationService, name)
	}
	return name, nil
}

// appPort resolves the annotation (a number or a container port name), or
// defaults to the first declared container port.
func appPort(v string, cs []corev1.Container) (int32, error) {
	var p int32
	switch n, err := strconv.ParseInt(v, 10, 32); {
	case v == "":
		for _, c := range cs {
			if len(c.Ports) > 0 {
				p = c.Ports[0].ContainerPort
				break
			}
		}
		if p == 0 {
			return 0, fmt.Errorf("annotation %s: missing, and no container declares a port to default from", AnnotationAppPort)
		}
	case err == nil:
		if n < 1 || n > 65535 {
			return 0, fmt.Errorf("annotation %s: %d is not a port", AnnotationAppPort, n)
		}
		p = int32(n)
	default:
		for _, c := range cs {
			for _, cp := range c.Ports {
				if cp.Name == v && p == 0 {
					p = cp.ContainerPort
				}
			}
		}
		if p == 0 {
			return 0, fmt.Errorf("annotation %s: %q is neither a number nor the name of a container port", AnnotationAppPort, v)
		}
	}
	if slices.Contains(reservedPorts, p) {
		return 0, fmt.Errorf("annotation %s: port %d is the sidecar's own (reserved: %v)", AnnotationAppPort, p, reservedPorts)
	}
	return p, nil
}

func upstreams(v string, appPort int32) ([][2]string, error) {
	var out [][2]string
	seen := map[string]bool{}
	for _, kv := range splitList(v) {
		name, port, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(port)
		switch {
		case !ok || !registry.ValidName(name):
			return nil, fmt.Errorf("annotation %s: %q: want SERVICE=PORT with a DNS-label service name", AnnotationUpstreams, kv)
		case err != nil || n < 1 || n > 65535:
			return nil, fmt.Errorf("annotation %s: %q: bad port %q", AnnotationUpstreams, kv, port)
		case slices.Contains(reservedPorts, int32(n)) || int32(n) == appPort:
			return nil, fmt.Errorf("annotation %s: %q: port %d is taken by the app or the sidecar", AnnotationUpstreams, kv, n)
		case seen[port]:
			return nil, fmt.Errorf("annotation %s: port %s used twice", AnnotationUpstreams, port)
		}
		seen[port] = true
		out = append(out, [2]string{name, port})
	}
	return out, nil
}

func metadata(v string) (string, error) {
	kvs := splitList(v)
	for _, kv := range kvs {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return "", fmt.Errorf("annotation %s: %q: want k=v,k=v", AnnotationMetadata, kv)
		}
	}
	return strings.Join(kvs, ","), nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
