package gossip

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/memberlist"

	"github.com/shoal-mesh/shoal/internal/metric"
)

// Role is what kind of shoal process a member is.
type Role uint8

// Roles. The zero value is invalid so that a forgotten Role fails New.
const (
	RoleSidecar Role = iota + 1
	RoleGateway
	RoleControlPlane
)

func (r Role) String() string {
	switch r {
	case RoleSidecar:
		return "sidecar"
	case RoleGateway:
		return "gateway"
	case RoleControlPlane:
		return "controlplane"
	}
	return "unknown"
}

// SeedSource returns the current seed addresses ("host:port"), e.g. the
// gossip addresses members publish in etcd. It is called from the rejoin
// goroutine, serially, with a context that ends when the Member closes.
type SeedSource func(ctx context.Context) ([]string, error)

// Timing is memberlist's failure-detector and dissemination tuning. See the
// package documentation for the time-to-suspect and time-to-dead it gives.
type Timing struct {
	ProbeInterval           time.Duration // one direct probe of one peer per interval
	ProbeTimeout            time.Duration // direct ack wait before indirect probes
	IndirectChecks          int           // peers asked to probe on our behalf
	SuspicionMult           int           // suspicion timeout = mult × max(1, log10 n) × ProbeInterval
	SuspicionMaxTimeoutMult int           // upper bound factor while confirmations are missing
	GossipInterval          time.Duration // how often queued broadcasts go out
	GossipNodes             int           // fan-out per gossip round
	RetransmitMult          int           // each broadcast is sent mult × ceil(log10(n+1)) times
	PushPullInterval        time.Duration // full-state anti-entropy over TCP
	GossipToTheDeadTime     time.Duration // keep gossiping to the dead this long
	TCPTimeout              time.Duration // push/pull and fallback-ping stream timeout
}

// TimingLAN is the default: loopback and LAN. For a 10-member cluster a
// crashed member is suspected everywhere in about 0.25 s (p99 ≈ 0.6 s) and
// declared dead ≈ 4 s after suspicion, so a 2 s pause is refuted in time.
func TimingLAN() Timing {
	return Timing{
		ProbeInterval:           100 * time.Millisecond,
		ProbeTimeout:            50 * time.Millisecond,
		IndirectChecks:          3,
		SuspicionMult:           40,
		SuspicionMaxTimeoutMult: 3,
		GossipInterval:          50 * time.Millisecond,
		GossipNodes:             4,
		RetransmitMult:          4,
		PushPullInterval:        15 * time.Second,
		GossipToTheDeadTime:     15 * time.Second,
		TCPTimeout:              2 * time.Second,
	}
}

// TimingMemberlistLAN is memberlist's own DefaultLANConfig timing (1 s
// probes, ~5 s to suspect-and-dead at n=10), for comparison and for fleets
// that prefer less traffic over fast reaction.
func TimingMemberlistLAN() Timing {
	d := memberlist.DefaultLANConfig()
	return Timing{
		ProbeInterval: d.ProbeInterval, ProbeTimeout: d.ProbeTimeout,
		IndirectChecks: d.IndirectChecks, SuspicionMult: d.SuspicionMult,
		SuspicionMaxTimeoutMult: d.SuspicionMaxTimeoutMult,
		GossipInterval:          d.GossipInterval, GossipNodes: d.GossipNodes,
		RetransmitMult: d.RetransmitMult, PushPullInterval: d.PushPullInterval,
		GossipToTheDeadTime: d.GossipToTheDeadTime, TCPTimeout: d.TCPTimeout,
	}
}

// SuspicionTimeout is memberlist's minimum suspect → dead timeout for a
// cluster of n members (memberlist util.go suspicionTimeout).
func (t Timing) SuspicionTimeout(n int) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	return time.Duration(float64(t.SuspicionMult) * scale * float64(t.ProbeInterval))
}

// Config configures a Member. It is copied by New and never mutated after.
type Config struct {
	// Name is the node name, unique in the cluster. Required.
	Name string
	// Role is what this member is. Required.
	Role Role
	// Instances are the instances this member fronts, with their initial
	// health. Nil: none (a control plane).
	Instances []InstanceHealth
	// BindAddr is the address to listen on (UDP and TCP). Empty: 127.0.0.1.
	BindAddr string
	// BindPort is the port; 0 picks a free port (see Member.Port).
	BindPort int
	// AdvertiseAddr and AdvertisePort are what peers dial. Empty/0: the
	// bind address and the bound port.
	AdvertiseAddr string
	AdvertisePort int
	// Seeds are "host:port" addresses to join and to re-join periodically.
	Seeds []string
	// SeedSource, if set, is asked for seeds at every rejoin, in addition
	// to Seeds.
	SeedSource SeedSource
	// RejoinInterval is how often seeds not currently alive in the view are
	// re-joined, so that a healed partition re-merges (memberlist#222).
	// Zero: 10 s. Negative: never.
	RejoinInterval time.Duration
	// Keys are 32-byte AES-256-GCM keys; Keys[0] is the primary. Empty: no
	// encryption (and no key rotation later).
	Keys [][]byte
	// Ticket is this member's encoded ticket from the control plane
	// (SignTicket), published in its metadata. Nil: none (members that
	// require tickets then ignore its health claims). See SetTicket.
	Ticket []byte
	// TicketKeys are the public keys tickets must be signed by (the mesh
	// CA's). Non-empty: other members' health claims count only for
	// instances of the service their valid ticket names. Empty: every
	// member's claims count, as before identities. See SetTicketKeys.
	TicketKeys []crypto.PublicKey
	// Label is the cluster label bound into every packet and stream; members
	// with different labels never talk. Empty: "shoal".
	Label string
	// Timing is the failure-detector tuning. Zero: TimingLAN().
	Timing Timing
	// Logger receives the member's and memberlist's logs. Nil: slog.Default().
	Logger *slog.Logger
	// Registerer receives the shoal_gossip_* metrics. Nil: not exported.
	// The control plane registers the registry it passes here on its own.
	Registerer metric.Registerer
}

// DefaultConfig returns a Config with the documented defaults filled in.
func DefaultConfig(name string, role Role) Config {
	return Config{Name: name, Role: role, BindAddr: "127.0.0.1", Label: "shoal",
		RejoinInterval: 10 * time.Second, Timing: TimingLAN()}
}

func (c *Config) validateAndDefault() error {
	switch {
	case c.Name == "":
		return errors.New("gossip: config: Name is required")
	case c.Role < RoleSidecar || c.Role > RoleControlPlane:
		return fmt.Errorf("gossip: config: invalid Role %d", c.Role)
	case c.BindPort < 0 || c.BindPort > 65535:
		return fmt.Errorf("gossip: config: invalid BindPort %d", c.BindPort)
	}
	for i, k := range c.Keys {
		if err := memberlist.ValidateKey(k); err != nil || len(k) != 32 {
			return fmt.Errorf("gossip: config: key %d: want 32 bytes (AES-256), got %d", i, len(k))
		}
	}
	if c.BindAddr == "" {
		c.BindAddr = "127.0.0.1"
	}
	if c.Label == "" {
		c.Label = "shoal"
	}
	if c.RejoinInterval == 0 {
		c.RejoinInterval = 10 * time.Second
	}
	if c.Timing == (Timing{}) {
		c.Timing = TimingLAN()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// ParseKeys parses a gossip key setting: base64 32-byte keys separated by
// commas or white space, the first one primary (it encrypts; every key
// decrypts). Several keys let a member (re)started in the middle of a key
// rotation join both the members still on the old key and those already on
// the new one. Empty s is no encryption (nil).
func ParseKeys(s string) ([][]byte, error) {
	var keys [][]byte
	for i, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		k, err := base64.StdEncoding.DecodeString(f)
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("gossip key %d: want 32 bytes, base64-encoded", i+1)
		}
		if slices.ContainsFunc(keys, func(o []byte) bool { return bytes.Equal(o, k) }) {
			return nil, fmt.Errorf("gossip key %d: given twice", i+1)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
