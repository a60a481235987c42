package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/common/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shoal-mesh/shoal/controlplane/routes"
	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// tuning is a rule's per-cluster proxy settings (issue 17): circuit
// breakers, slow start and stall detection. A cluster is shared by every
// rule that sends to the same destination with the same policy, so a rule
// with settings gets cluster variants of its own, named by a hash of the
// settings (tuning.key): rules with equal settings share them, and
// therefore their circuit-breaker budget, as Envoy counts per cluster.
type tuning struct {
	cb    *shoalv1.CircuitBreakers
	slow  *shoalv1.SlowStart
	stall *shoalv1.StallDetection
	// key names the variant: "cfg-" and 8 hex digits of the settings' hash.
	key string
}

// MetadataKey is the filter_metadata key of shoal-only cluster settings
// (the stall detection of a rule): Envoy and gRPC ignore metadata they do
// not know, and the shoal sidecar reads it.
const MetadataKey = "shoal"

// Slow start's runtime key for aggression: Envoy's RuntimeDouble needs
// one; no runtime layer sets it, so the default value applies.
const slowStartRuntimeKey = "shoal.slow_start.aggression"

// compileTuning checks the rule's proxy settings (the validator's rules,
// repeated so that a route written around the API never yields a resource
// a client NACKs) and returns them, or nil when the rule sets none.
func compileTuning(r *shoalv1.Rule) (*tuning, error) {
	cb, ss, sd := r.GetCircuitBreakers(), r.GetSlowStart(), r.GetStallDetection()
	if cb == nil && ss == nil && sd == nil {
		return nil, nil
	}
	if err := checkCircuitBreakers(cb); err != nil {
		return nil, fmt.Errorf("circuit_breakers: %w", err)
	}
	if err := checkSlowStart(ss); err != nil {
		return nil, fmt.Errorf("slow_start: %w", err)
	}
	if err := checkStall(sd); err != nil {
		return nil, fmt.Errorf("stall_detection: %w", err)
	}
	t := &tuning{cb: cb, slow: ss, stall: sd}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&shoalv1.Rule{CircuitBreakers: cb, SlowStart: ss, StallDetection: sd})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	t.key = "cfg-" + hex.EncodeToString(sum[:4])
	return t, nil
}

func checkCircuitBreakers(cb *shoalv1.CircuitBreakers) error {
	for _, v := range []uint32{cb.GetMaxConnections(), cb.GetMaxPendingRequests(), cb.GetMaxRequests(), cb.GetMaxRetries(), cb.GetMaxRequestsPerEndpoint()} {
		if v > routes.MaxLimit {
			return fmt.Errorf("limit %d is over %d", v, routes.MaxLimit)
		}
	}
	if pe, mr := cb.GetMaxRequestsPerEndpoint(), cb.GetMaxRequests(); pe != 0 && mr != 0 && pe > mr {
		return fmt.Errorf("max_requests_per_endpoint %d is over max_requests %d", pe, mr)
	}
	return nil
}

func checkSlowStart(ss *shoalv1.SlowStart) error {
	if ss == nil {
		return nil
	}
	w, err := checkDuration("window", ss.GetWindow())
	switch {
	case err != nil:
		return err
	case w <= 0 || w > routes.MaxSlowStartWindow:
		return fmt.Errorf("window %v is outside (0, %v]", w, routes.MaxSlowStartWindow)
	case ss.Aggression != nil && !(ss.GetAggression() > 0 && ss.GetAggression() <= routes.MaxSlowStartAggression):
		return fmt.Errorf("aggression %v is outside (0, %d]", ss.GetAggression(), routes.MaxSlowStartAggression)
	case ss.MinWeightPercent != nil && !(ss.GetMinWeightPercent() >= 0 && ss.GetMinWeightPercent() <= 100):
		return fmt.Errorf("min_weight_percent %v is outside 0-100", ss.GetMinWeightPercent())
	}
	return nil
}

func checkStall(sd *shoalv1.StallDetection) error {
	if sd == nil {
		return nil
	}
	if sd.GetDisabled() && (sd.GetMinThreshold() != nil || sd.GetMaxThreshold() != nil) {
		return errors.New("disabled and thresholds are both set")
	}
	mn, err := checkDuration("min_threshold", sd.GetMinThreshold())
	if err != nil {
		return err
	}
	mx, err := checkDuration("max_threshold", sd.GetMaxThreshold())
	if err != nil {
		return err
	}
	if (sd.GetMinThreshold() != nil && (mn <= 0 || mn > routes.MaxStallThreshold)) ||
		(sd.GetMaxThreshold() != nil && (mx <= 0 || mx > routes.MaxStallThreshold)) {
		return fmt.Errorf("thresholds must be in (0, %v]", routes.MaxStallThreshold)
	}
	if sd.GetMinThreshold() != nil && sd.GetMaxThreshold() != nil && mn > mx {
		return fmt.Errorf("max_threshold %v is below min_threshold %v", mx, mn)
	}
	return nil
}

// circuitBreakers is a cluster's circuit_breakers: the defaults, with the
// limits the rule sets, and per_host_thresholds for a per-endpoint limit.
// A client that is not an HTTP proxy gets max_requests only (gRPC reads
// nothing else, gRFC A32).
func (t *translator) circuitBreakers(tu *tuning) *clusterv3.CircuitBreakers {
	cb := tu.circuitBreakers()
	or := func(v, def uint32) *wrapperspb.UInt32Value {
		if v == 0 {
			v = def
		}
		return wrapperspb.UInt32(v)
	}
	th := &clusterv3.CircuitBreakers_Thresholds{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     or(cb.GetMaxConnections(), maxConnections),
		MaxPendingRequests: or(cb.GetMaxPendingRequests(), maxPendingRequests),
		MaxRequests:        or(cb.GetMaxRequests(), maxRequests),
		MaxRetries:         or(cb.GetMaxRetries(), maxRetries),
	}
	out := &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
	if pe := cb.GetMaxRequestsPerEndpoint(); pe != 0 && t.caps.HTTPProxy {
		// Envoy enforces only max_connections per host; the shoal sidecar
		// reads max_requests here.
		out.PerHostThresholds = []*clusterv3.CircuitBreakers_Thresholds{{
			Priority: corev3.RoutingPriority_DEFAULT, MaxRequests: wrapperspb.UInt32(pe),
		}}
	}
	return out
}

// circuitBreakers returns the rule's limits; nil (all defaults) for a
// nil tuning.
func (tu *tuning) circuitBreakers() *shoalv1.CircuitBreakers {
	if tu == nil {
		return nil
	}
	return tu.cb
}

// slowStartConfig is Envoy's slow_start_config of the rule, nil without
// one. Unset aggression and min_weight_percent keep Envoy's defaults (1.0
// and 10), which the shoal sidecar shares.
func slowStartConfig(ss *shoalv1.SlowStart) *clusterv3.Cluster_SlowStartConfig {
	if ss == nil {
		return nil
	}
	c := &clusterv3.Cluster_SlowStartConfig{SlowStartWindow: durationpb.New(ss.GetWindow().AsDuration())}
	if ss.Aggression != nil {
		c.Aggression = &corev3.RuntimeDouble{DefaultValue: ss.GetAggression(), RuntimeKey: slowStartRuntimeKey}
	}
	if ss.MinWeightPercent != nil {
		c.MinWeightPercent = &typev3.Percent{Value: ss.GetMinWeightPercent()}
	}
	return c
}

// commonSlowStartConfig is slowStartConfig in the form the typed
// load-balancing policies take (client_side_weighted_round_robin).
func commonSlowStartConfig(ss *shoalv1.SlowStart) *commonv3.SlowStartConfig {
	c := slowStartConfig(ss)
	if c == nil {
		return nil
	}
	return &commonv3.SlowStartConfig{SlowStartWindow: c.SlowStartWindow, Aggression: c.Aggression, MinWeightPercent: c.MinWeightPercent}
}

// stallMetadata is the cluster metadata carrying the rule's stall
// detection for the shoal sidecar: filter_metadata.shoal.stall_detection
// = {disabled: true} or {min_threshold: "1s", max_threshold: "30s"}.
func stallMetadata(sd *shoalv1.StallDetection) *corev3.Metadata {
	if sd == nil {
		return nil
	}
	fields := map[string]*structpb.Value{}
	if sd.GetDisabled() {
		fields["disabled"] = structpb.NewBoolValue(true)
	}
	if d := sd.GetMinThreshold(); d != nil {
		fields["min_threshold"] = structpb.NewStringValue(d.AsDuration().String())
	}
	if d := sd.GetMaxThreshold(); d != nil {
		fields["max_threshold"] = structpb.NewStringValue(d.AsDuration().String())
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		MetadataKey: {Fields: map[string]*structpb.Value{
			"stall_detection": structpb.NewStructValue(&structpb.Struct{Fields: fields}),
		}},
	}}
}
