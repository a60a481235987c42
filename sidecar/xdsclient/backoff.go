package xdsclient

import (
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/backoff"
)

// randFloat64 is the jitter source; tests may replace it.
var randFloat64 = rand.Float64

// backoffDefaults fills zero fields of b from DefaultBackoff.
func backoffDefaults(b backoff.Config) backoff.Config {
	if b.BaseDelay <= 0 {
		b.BaseDelay = DefaultBackoff.BaseDelay
	}
	if b.Multiplier < 1 {
		b.Multiplier = DefaultBackoff.Multiplier
	}
	if b.Jitter <= 0 || b.Jitter > 1 {
		b.Jitter = DefaultBackoff.Jitter
	}
	if b.MaxDelay <= 0 {
		b.MaxDelay = DefaultBackoff.MaxDelay
	}
	return b
}

// backoffDelay returns the wait before reconnect attempt number retries
// (0-based): min(base × multiplier^retries, max), then ±jitter, as in gRPC's
// connection-backoff algorithm.
func backoffDelay(b backoff.Config, retries int) time.Duration {
	d := float64(b.BaseDelay)
	for i := 0; i < retries && d < float64(b.MaxDelay); i++ {
		d *= b.Multiplier
	}
	d = min(d, float64(b.MaxDelay))
	d *= 1 + b.Jitter*(randFloat64()*2-1)
	return max(time.Duration(d), 0)
}
