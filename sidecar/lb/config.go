package lb

import (
	"errors"
	"fmt"
	"time"
)

// Defaults filled in for zero Config fields, and DefaultConfig's presets.
const (
	DefaultPanicThreshold    = 50.0
	DefaultExactMaxEndpoints = 10
	DefaultChoiceCount       = 2
	DefaultMinRingSize       = 1024
	DefaultMaxRingSize       = 8 * 1024 * 1024
	DefaultMaglevTableSize   = 65537
	// MaxMaglevTableSize is Envoy's upper bound for Maglev table_size.
	MaxMaglevTableSize = 5000011
)

// Config holds the knobs of all strategies; each strategy reads the common
// fields and its own section. A Config is a value: copied in, never mutated.
type Config struct {
	// PanicThreshold is Envoy's healthy_panic_threshold in percent: when
	// fewer than this share of endpoints is healthy, pickers choose among all
	// endpoints. Zero disables panic mode (as in Envoy); DefaultConfig sets 50.
	PanicThreshold float64
	// LeastRequest configures leastrequest.
	LeastRequest LeastRequestConfig
	// RingHash configures ringhash.
	RingHash RingHashConfig
	// Maglev configures maglev.
	Maglev MaglevConfig
	// LeastLoaded configures leastloaded.
	LeastLoaded LeastLoadedConfig
}

// Defaults of LeastLoadedConfig: gRFC A58's.
const (
	DefaultBlackoutPeriod          = 10 * time.Second
	DefaultWeightExpirationPeriod  = 3 * time.Minute
	DefaultWeightUpdatePeriod      = time.Second
	DefaultErrorUtilizationPenalty = 1.0
	// MinWeightUpdatePeriod is A58's floor for the weight update period.
	MinWeightUpdatePeriod = 100 * time.Millisecond
)

// LeastLoadedConfig configures the least loaded strategy, the fields of
// Envoy's ClientSideWeightedRoundRobin (gRFC A58).
type LeastLoadedConfig struct {
	// BlackoutPeriod is how long an endpoint must have reported load
	// before its weight counts (a fresh instance's first reports are
	// noise). Zero means DefaultBlackoutPeriod.
	BlackoutPeriod time.Duration
	// WeightExpirationPeriod is how long a weight lives without a new
	// report; after it the endpoint takes the mean weight again and the
	// blackout restarts. Zero means DefaultWeightExpirationPeriod.
	WeightExpirationPeriod time.Duration
	// WeightUpdatePeriod is how often pickers recompute weights from the
	// reports. Zero means DefaultWeightUpdatePeriod; values under
	// MinWeightUpdatePeriod are raised to it.
	WeightUpdatePeriod time.Duration
	// ErrorUtilizationPenalty multiplies eps/qps in the weight,
	// qps / (utilization + penalty × eps/qps). Zero means
	// DefaultErrorUtilizationPenalty; a negative value disables the
	// penalty.
	ErrorUtilizationPenalty float64
	// ChoiceCount is the number of weighted random candidates compared on
	// requests in flight. Zero means DefaultChoiceCount.
	ChoiceCount int
}

// WithDefaults returns c with zero fields replaced by their defaults.
func (c LeastLoadedConfig) WithDefaults() LeastLoadedConfig {
	if c.BlackoutPeriod == 0 {
		c.BlackoutPeriod = DefaultBlackoutPeriod
	}
	if c.WeightExpirationPeriod == 0 {
		c.WeightExpirationPeriod = DefaultWeightExpirationPeriod
	}
	if c.WeightUpdatePeriod == 0 {
		c.WeightUpdatePeriod = DefaultWeightUpdatePeriod
	}
	c.WeightUpdatePeriod = max(c.WeightUpdatePeriod, MinWeightUpdatePeriod)
	switch {
	case c.ErrorUtilizationPenalty == 0:
		c.ErrorUtilizationPenalty = DefaultErrorUtilizationPenalty
	case c.ErrorUtilizationPenalty < 0:
		c.ErrorUtilizationPenalty = 0
	}
	if c.ChoiceCount < 2 {
		c.ChoiceCount = DefaultChoiceCount
	}
	return c
}

// LeastRequestConfig configures the least request strategy.
type LeastRequestConfig struct {
	// ExactMaxEndpoints is the largest eligible set that is scanned in full
	// for the least loaded endpoint; larger sets use weighted power of
	// ChoiceCount choices. Zero means DefaultExactMaxEndpoints.
	ExactMaxEndpoints int
	// ChoiceCount is the number of random candidates compared on large sets
	// (Envoy's choice_count). Zero means DefaultChoiceCount.
	ChoiceCount int
}

// RingHashConfig configures the ring hash strategy (Envoy RingHashLbConfig).
type RingHashConfig struct {
	// MinRingSize is the minimum number of ring entries. Zero means
	// DefaultMinRingSize.
	MinRingSize uint64
	// MaxRingSize caps the number of ring entries. Zero means
	// DefaultMaxRingSize.
	MaxRingSize uint64
	// HashesPerWeight, when non-zero, replaces Envoy's ring sizing: every
	// endpoint gets HashesPerWeight×Weight entries regardless of the other
	// endpoints (capped by MaxRingSize; MinRingSize is ignored). Removing an
	// endpoint then moves only its own keys, where Envoy's sizing grows the
	// survivors' share of the ring and moves about 8 % of their keys too.
	// The ring is then no longer identical to Envoy's. Zero (the default)
	// means Envoy-compatible sizing.
	HashesPerWeight uint64
	// BoundedLoadFactor enables consistent hashing with bounded loads
	// (Mirrokni, Thorup, Zadimoghaddam 2018) with c = BoundedLoadFactor:
	// an endpoint whose in-flight count would exceed c times the average is
	// skipped and the walk continues clockwise. Zero disables it; otherwise
	// it must be at least 1 (Envoy's hash_balance_factor/100).
	BoundedLoadFactor float64
}

// MaglevConfig configures the Maglev strategy (Envoy MaglevLbConfig).
type MaglevConfig struct {
	// TableSize is the lookup table size, a prime. Zero means
	// DefaultMaglevTableSize.
	TableSize uint64
	// BoundedLoadFactor bounds loads as RingHashConfig.BoundedLoadFactor
	// does (Envoy's hash_balance_factor/100 applies to Maglev too): a key
	// whose endpoint is at c times its share of the in-flight requests
	// goes on to the owners of the following table slots. Zero disables
	// it; otherwise it must be at least 1.
	BoundedLoadFactor float64
}

// DefaultConfig returns the configuration Envoy uses when the fields are
// unset: 50 % panic threshold, ring 1024..8M entries, Maglev table 65537.
func DefaultConfig() Config {
	return Config{
		PanicThreshold: DefaultPanicThreshold,
		LeastRequest: LeastRequestConfig{
			ExactMaxEndpoints: DefaultExactMaxEndpoints,
			ChoiceCount:       DefaultChoiceCount,
		},
		RingHash: RingHashConfig{MinRingSize: DefaultMinRingSize, MaxRingSize: DefaultMaxRingSize},
		Maglev:   MaglevConfig{TableSize: DefaultMaglevTableSize},
	}
}

// Validate reports the first invalid field. Builders do not validate; call
// Validate where configuration enters the sidecar.
func (c Config) Validate() error {
	rh := c.RingHash.withDefaults()
	switch {
	case c.PanicThreshold < 0 || c.PanicThreshold > 100:
		return fmt.Errorf("lb: panic threshold %v outside 0..100", c.PanicThreshold)
	case c.LeastRequest.ExactMaxEndpoints < 0:
		return errors.New("lb: least request exact max endpoints is negative")
	case c.LeastLoaded.BlackoutPeriod < 0 || c.LeastLoaded.WeightExpirationPeriod < 0 || c.LeastLoaded.WeightUpdatePeriod < 0:
		return errors.New("lb: least loaded periods must not be negative")
	case c.LeastLoaded.ChoiceCount < 0 || c.LeastLoaded.ChoiceCount == 1:
		return fmt.Errorf("lb: least loaded choice count %d must be at least 2", c.LeastLoaded.ChoiceCount)
	case c.LeastRequest.ChoiceCount < 0 || c.LeastRequest.ChoiceCount == 1:
		return fmt.Errorf("lb: least request choice count %d must be at least 2", c.LeastRequest.ChoiceCount)
	case rh.MinRingSize > rh.MaxRingSize:
		return fmt.Errorf("lb: ring hash min ring size %d exceeds max %d", rh.MinRingSize, rh.MaxRingSize)
	case c.RingHash.BoundedLoadFactor != 0 && c.RingHash.BoundedLoadFactor < 1:
		return fmt.Errorf("lb: bounded load factor %v must be at least 1", c.RingHash.BoundedLoadFactor)
	case c.Maglev.BoundedLoadFactor != 0 && c.Maglev.BoundedLoadFactor < 1:
		return fmt.Errorf("lb: maglev bounded load factor %v must be at least 1", c.Maglev.BoundedLoadFactor)
	case c.Maglev.TableSize != 0 && (c.Maglev.TableSize > MaxMaglevTableSize || !isPrime(c.Maglev.TableSize)):
		return fmt.Errorf("lb: maglev table size %d must be a prime up to %d", c.Maglev.TableSize, MaxMaglevTableSize)
	}
	return nil
}

// WithDefaults returns c with zero fields replaced by their defaults.
func (c LeastRequestConfig) WithDefaults() LeastRequestConfig {
	if c.ExactMaxEndpoints == 0 {
		c.ExactMaxEndpoints = DefaultExactMaxEndpoints
	}
	if c.ChoiceCount < 2 {
		c.ChoiceCount = DefaultChoiceCount
	}
	return c
}

// WithDefaults returns c with zero fields replaced by their defaults.
func (c RingHashConfig) WithDefaults() RingHashConfig { return c.withDefaults() }

func (c RingHashConfig) withDefaults() RingHashConfig {
	if c.MinRingSize == 0 {
		c.MinRingSize = DefaultMinRingSize
	}
	if c.MaxRingSize == 0 {
		c.MaxRingSize = DefaultMaxRingSize
	}
	return c
}

// WithDefaults returns c with zero fields replaced by their defaults.
func (c MaglevConfig) WithDefaults() MaglevConfig {
	if c.TableSize == 0 {
		c.TableSize = DefaultMaglevTableSize
	}
	return c
}

func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
