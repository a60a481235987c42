//go:build !shoal_slim

package main

import "github.com/spf13/cobra"

// fullCommands are the subcommands the slim sidecar build leaves out: the
// control plane (and the etcd server it embeds), the demo, the Kubernetes
// injector, and the clients of the management API (its protobuf types and
// YAML). Build the slim binary with
//
//	go build -tags shoal_slim -o shoal-sidecar ./cmd/shoal
//
// for a smaller memory footprint next to every app instance.
func fullCommands() []*cobra.Command {
	return []*cobra.Command{
		newDemoCmd(),
		newControlPlaneCmd(),
		newInjectCmd(),
		newInjectWebhookCmd(),
		newServicesCmd(),
		newInstancesCmd(),
		newRoutesCmd(),
		newStatusCmd(),
		newTopCmd(),
	}
}
