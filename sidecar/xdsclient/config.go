package xdsclient

import (
	"errors"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/shoal-mesh/shoal/internal/metric"
	corev3 "github.com/shoal-mesh/shoal/sidecar/internal/xdspb/envoy/config/core/v3"
)

// UserAgentName is the node's user_agent_name sent to the control plane.
const UserAgentName = "shoal-sidecar"

// Default values for zero Config fields.
const (
	DefaultSettleTimeout       = 2 * time.Second
	DefaultInitialFetchTimeout = 5 * time.Second
	DefaultNACKRetryDelay      = time.Second
)

// DefaultBackoff is gRPC's connection backoff
// (https://github.com/grpc/grpc/blob/master/doc/connection-backoff.md) with the
// cap lowered from 120 s to 10 s: a sidecar must resync within 15 s of a
// control plane coming back even after a long outage (issue 6), and with
// ±20 % jitter a 10 s cap means at most 12 s between attempts.
var DefaultBackoff = backoff.Config{
	BaseDelay:  time.Second,
	Multiplier: 1.6,
	Jitter:     0.2,
	MaxDelay:   10 * time.Second,
}

// Mode selects the xDS transport variant.
type Mode int

const (
	// ModeDelta (the zero value) is incremental xDS, falling back to SotW for
	// the rest of the Client's life if the server answers Unimplemented.
	ModeDelta Mode = iota
	// ModeSotW is state-of-the-world xDS only.
	ModeSotW
)

// String returns "delta" or "sotw".
func (m Mode) String() string {
	if m == ModeSotW {
		return "sotw"
	}
	return "delta"
}

// ValidateFunc is a consumer check run on the resources of one response after
// they have been decoded and passed the Envoy protos' validation rules. resources holds the resources
// the response adds or updates (for SotW: every resource in it), keyed by name;
// it must not be modified or retained. A non-nil error NACKs the whole
// response with the error text as error_detail, and the previous resources of
// that type are kept. It is called serially on the Client's receive goroutine
// and must not block.
type ValidateFunc func(typeURL string, resources map[string]Resource) error

// Config configures a Client. It is copied by New and never mutated after.
type Config struct {
	// Server is the gRPC target of the ADS server, e.g. "127.0.0.1:18000".
	// Required.
	Server string
	// FallbackServers are more ADS servers of the same mesh (control planes
	// over one etcd), tried in turn when a stream fails; see Client.Run.
	// Nil means Server only.
	FallbackServers []string
	// Node identifies this sidecar; Node.Id is required. It is cloned; an
	// empty user_agent_name becomes UserAgentName. See NewNode.
	Node *Node
	// Mode is ModeDelta (zero value: delta with SotW fallback) or ModeSotW.
	Mode Mode
	// Listeners are the listener names to subscribe to. Nil or empty means a
	// wildcard LDS subscription. Clusters are always wildcard.
	Listeners []string
	// StateDir, if set, is where the last delivered snapshot is persisted and
	// read back at start (static stability). Empty disables persistence.
	StateDir string
	// Backoff paces reconnects of the stream and of the gRPC channel. Zero
	// fields (and a Jitter outside (0, 1]) take DefaultBackoff's values.
	Backoff backoff.Config
	// SettleTimeout bounds how long an incomplete snapshot (a referenced
	// RouteConfiguration or ClusterLoadAssignment missing) is held back.
	// Zero means DefaultSettleTimeout.
	SettleTimeout time.Duration
	// InitialFetchTimeout is how long Run waits for a first complete snapshot
	// from the server before delivering the one saved in StateDir. Zero means
	// DefaultInitialFetchTimeout. A failed stream delivers it at once.
	InitialFetchTimeout time.Duration
	// NACKRetryDelay delays a NACK that repeats the previous one for the same
	// type (same version and error), so a server that re-sends a rejected
	// response at once (go-control-plane SotW does) is not answered in a hot
	// loop. Zero means DefaultNACKRetryDelay.
	NACKRetryDelay time.Duration
	// DialOptions are passed to grpc.NewClient. Nil means insecure transport
	// credentials (loopback or a mesh-internal network).
	DialOptions []grpc.DialOption
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the client's metrics; nil means no metrics.
	Registerer metric.Registerer
	// OnUpdate receives each complete snapshot, serially, on a goroutine
	// owned by Run. It may block only briefly: while it runs, newer snapshots
	// are coalesced (the newest wins). The snapshot must not be modified.
	// Required.
	OnUpdate func(*Snapshot)
	// Validate is an optional consumer check, see ValidateFunc.
	Validate ValidateFunc
}

// NodeInfo is the sidecar's identity, turned into a Node by NewNode.
type NodeInfo struct {
	ID         string // node id, e.g. "orders-1"
	Cluster    string // service cluster, e.g. "orders"
	Service    string // metadata "service"
	InstanceID string // metadata "instance_id"
	Zone       string // locality zone
	Version    string // user_agent_version (the shoal build)
}

// NewNode builds the xDS node identity shoal sidecars send: the metadata
// struct holds "service" and "instance_id" (the control plane's capability
// profile follows user_agent_name).
func NewNode(info NodeInfo) *Node {
	n := &Node{
		Id:      info.ID,
		Cluster: info.Cluster,
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"service":     structpb.NewStringValue(info.Service),
			"instance_id": structpb.NewStringValue(info.InstanceID),
		}},
		Locality:      &corev3.Locality{Zone: info.Zone},
		UserAgentName: UserAgentName,
	}
	if info.Version != "" {
		n.UserAgentVersionType = &corev3.Node_UserAgentVersion{UserAgentVersion: info.Version}
	}
	return n
}

// withDefaults validates c and returns a copy with documented defaults filled.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Server == "" || slices.Contains(c.FallbackServers, ""):
		return c, errors.New("xdsclient: Config.Server is required and FallbackServers must not be empty strings")
	case c.Node.GetId() == "":
		return c, errors.New("xdsclient: Config.Node.Id is required")
	case c.OnUpdate == nil:
		return c, errors.New("xdsclient: Config.OnUpdate is required")
	case c.Mode != ModeDelta && c.Mode != ModeSotW:
		return c, errors.New("xdsclient: unknown Config.Mode")
	}
	c.Node = proto.Clone(c.Node).(*Node)
	if c.Node.UserAgentName == "" {
		c.Node.UserAgentName = UserAgentName
	}
	c.Listeners = append([]string(nil), c.Listeners...)
	c.FallbackServers = append([]string(nil), c.FallbackServers...)
	c.Backoff = backoffDefaults(c.Backoff)
	c.SettleTimeout = orDefault(c.SettleTimeout, DefaultSettleTimeout)
	c.InitialFetchTimeout = orDefault(c.InitialFetchTimeout, DefaultInitialFetchTimeout)
	c.NACKRetryDelay = orDefault(c.NACKRetryDelay, DefaultNACKRetryDelay)
	if c.DialOptions == nil {
		c.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
