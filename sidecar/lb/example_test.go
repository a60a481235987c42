package lb_test

import (
	"fmt"

	"github.com/shoal-mesh/shoal/sidecar/lb"
	"github.com/shoal-mesh/shoal/sidecar/lb/builtin"
)

// Example shows the sidecar's use of a load balancer: build a picker per
// endpoint-set change, pick per request with the request's hash key,
// bracket the request with Begin/End, and exclude a failed host on retry.
func Example() {
	store := lb.NewLoadStore() // one per cluster: counters survive rebuilds
	eps := []*lb.Endpoint{
		{Address: "10.0.0.1:3001", Weight: 1, Healthy: true},
		{Address: "10.0.0.2:3001", Weight: 1, Healthy: true},
		{Address: "10.0.0.3:3001", Weight: 1, Healthy: false},
	}
	store.Attach(eps)
	bld, err := builtin.Builder(lb.RingHash)
	if err != nil {
		panic(err)
	}
	picker := bld.Build(eps, lb.DefaultConfig()) // publish with an atomic.Pointer

	var info lb.PickInfo
	info.SetHash(lb.HashString("203.0.113.9")) // e.g. the client's source IP
	first, _ := picker.Pick(&info)
	first.Begin()
	first.End() // the attempt failed: retry elsewhere

	info.Exclude(first.Address)
	retry, _ := picker.Pick(&info)
	again, _ := picker.Pick(&lb.PickInfo{Hash: info.Hash, HasHash: true})
	fmt.Println("retry on another host:", retry != first)
	fmt.Println("same key, same host:", again == first)
	fmt.Println("unhealthy host avoided:", first.Healthy && retry.Healthy)
	// Output:
	// retry on another host: true
	// same key, same host: true
	// unhealthy host avoided: true
}
