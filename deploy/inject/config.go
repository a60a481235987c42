package inject

import (
	"errors"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Ports and paths of the injected sidecar. The app must not use these ports.
const (
	ContainerName = "shoal-sidecar"
	InboundPort   = 15006
	AdminPort     = 15000
	OutboundPort  = 15001
	GossipPort    = 7946
	StateVolume   = "shoal-state"
	StateDir      = "/var/run/shoal"
	// JoinTokenVolume holds the service's join token (Config.JoinTokenSecret)
	// at JoinTokenDir/token.
	JoinTokenVolume = "shoal-join-token"
	JoinTokenDir    = "/etc/shoal/join"
)

// Version is the release the manifests in deploy/kubernetes and the
// default image are pinned to (the npm package nodejs/ carries the same
// version); a test checks they agree.
const Version = "0.1.0"

// DefaultImage is the sidecar image when Config.Image is empty: pinned to
// Version, never :latest, so every sidecar of a mesh runs the same build.
const DefaultImage = "ghcr.io/shoal-mesh/shoal:v" + Version

// SidecarBinary is the injected container's command: the image's slim
// sidecar build (Dockerfile: -tags shoal_slim, no control plane), which
// maps a fraction of the full binary's pages (issue #7: < 20 MB RSS with
// 1,000 endpoints, next to every app instance).
const SidecarBinary = "/shoal-sidecar"

// Config is the injector-wide part of the sidecar: where the mesh's etcd,
// control plane and gossip seeds are, and how the container is sized. It is
// copied by value and never modified by this package.
type Config struct {
	// Image is the sidecar image; empty means DefaultImage.
	Image string
	// ImagePullPolicy is the sidecar's pull policy; empty leaves the
	// Kubernetes default (IfNotPresent for a pinned tag).
	ImagePullPolicy corev1.PullPolicy
	// EtcdEndpoints are passed as --etcd: the sidecars register straight
	// in etcd. Required without JoinTokenSecret, unused with it (the
	// sidecars then register through the control plane, and etcd need not
	// be reachable from workloads).
	EtcdEndpoints []string
	// JoinTokenSecret names a Secret in the pod's namespace with one join
	// token per service (data key = the service name, value from `shoal
	// tokens create --service S --namespace NS`). The sidecar mounts its
	// service's key and gets a workload identity from it: mTLS on its
	// inbound port, xDS bound to its service, registration through the
	// control plane. A pod whose service has no key in the Secret waits in
	// ContainerCreating (the kubelet cannot mount it) rather than run
	// outside the mesh's identity. Empty: no identity (plain, trusted
	// networks only).
	JoinTokenSecret string
	// XDS is the control plane's xDS address, passed as --xds (required).
	XDS string
	// GossipJoin are the gossip seeds, passed as --gossip-join; empty
	// disables gossip in the sidecar (health then travels through etcd only).
	GossipJoin []string
	// GossipKeySecret names a Secret in the pod's namespace whose data key
	// GossipKeySecretKey holds the base64 gossip key; the sidecar gets it
	// as $SHOAL_GOSSIP_KEY (never in its arguments). Empty: gossip is not
	// encrypted.
	GossipKeySecret string
	// DrainSeconds is the preStop sleep given to app containers that have no
	// preStop hook of their own, so the app keeps serving while the sidecar
	// deregisters and drains; it is also the sidecar's --drain-timeout.
	// Zero means 10.
	DrainSeconds int64
	// Resources are the sidecar's requests and limits; zero means
	// DefaultConfig's.
	Resources corev1.ResourceRequirements
}

// DefaultJoinTokenSecret is the Secret DefaultConfig's sidecars take
// their join tokens from.
const DefaultJoinTokenSecret = "shoal-join-tokens"

// GossipKeySecretKey is the data key read from Config.GossipKeySecret.
const GossipKeySecretKey = "gossip-key"

// DefaultConfig returns the in-cluster defaults matching
// deploy/kubernetes: identities from the shoal-join-tokens Secret of each
// namespace (and registration through the control plane, so no etcd), the
// control plane behind the shoal-xds Service, and gossip seeds from the
// headless shoal-gossip Service in namespace shoal-system.
func DefaultConfig() Config {
	return Config{
		Image:           DefaultImage,
		XDS:             "shoal-xds.shoal-system.svc:18000",
		JoinTokenSecret: DefaultJoinTokenSecret,
		GossipJoin:      []string{"shoal-gossip.shoal-system.svc:7946"},
		DrainSeconds:    10,
		Resources:       defaultResources(),
	}
}

func defaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("50m"),
			corev1.ResourceMemory: resource.MustParse("32Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("128Mi"),
		},
	}
}

// validate checks the required fields and fills the documented defaults.
func (c *Config) validate() error {
	switch {
	case len(c.EtcdEndpoints) == 0 && c.JoinTokenSecret == "":
		return errors.New("inject: config: etcd endpoints are required without a join token Secret")
	case c.XDS == "":
		return errors.New("inject: config: xDS address is required")
	}
	if c.Image == "" {
		c.Image = DefaultImage
	}
	if c.DrainSeconds == 0 {
		c.DrainSeconds = 10
	}
	if c.Resources.Requests == nil && c.Resources.Limits == nil {
		c.Resources = defaultResources()
	}
	return nil
}
