// Package builtin maps strategy names to the built-in load balancer
// builders. It holds no state: the mapping is a switch, not a registry that
// packages add themselves to.
package builtin

import (
	"fmt"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/leastloaded"
	"github.com/shoal-mesh/shoal/sidecar/lb/leastrequest"
	"github.com/shoal-mesh/shoal/sidecar/lb/maglev"
	"github.com/shoal-mesh/shoal/sidecar/lb/random"
	"github.com/shoal-mesh/shoal/sidecar/lb/ringhash"
	"github.com/shoal-mesh/shoal/sidecar/lb/roundrobin"
)

// Names lists the built-in strategies, default (round robin) first.
func Names() []string {
	return []string{lb.RoundRobin, lb.LeastRequest, lb.RingHash, lb.Maglev, lb.Random, lb.LeastLoaded}
}

// Builder returns the builder registered under name. Safe for concurrent
// use.
func Builder(name string) (lb.Builder, error) {
	switch name {
	case lb.RoundRobin:
		return roundrobin.Builder{}, nil
	case lb.LeastRequest:
		return leastrequest.Builder{}, nil
	case lb.RingHash:
		return ringhash.Builder{}, nil
	case lb.Maglev:
		return maglev.Builder{}, nil
	case lb.Random:
		return random.Builder{}, nil
	case lb.LeastLoaded:
		return leastloaded.Builder{}, nil
	}
	return nil, fmt.Errorf("lb: unknown strategy %q", name)
}
