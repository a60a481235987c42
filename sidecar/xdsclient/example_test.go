package xdsclient_test

import (
	"context"
	"fmt"

	"github.com/shoal-mesh/shoal/sidecar/xdsclient"
)

// This example has no Output comment: it is compiled, not run (it
// needs a control plane).
func ExampleNew() {
	c, err := xdsclient.New(xdsclient.Config{
		Server: "127.0.0.1:18000",
		Node: xdsclient.NewNode(xdsclient.NodeInfo{
			ID: "orders-1", Cluster: "orders", Service: "orders", InstanceID: "orders-1", Zone: "local",
		}),
		Listeners: []string{"outbound", "inbound"},
		StateDir:  "/var/lib/shoal/xds",
		OnUpdate: func(s *xdsclient.Snapshot) {
			// Build the routing table from s and swap it in atomically.
			fmt.Println(len(s.Names(xdsclient.ListenerType)), s.Complete())
		},
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Run blocks, reconnecting, until ctx is done. Status() serves /config_dump.
	if err := c.Run(ctx); err != nil {
		panic(err)
	}
}
