// Package xdstable turns the Envoy resources the sidecar receives over xDS
// (package xdsclient) into its routing table (package route), and overlays
// the health that gossip reports so that an instance gossip calls suspect,
// dead or unhealthy leaves the rotation without waiting for the control
// plane. Build is a pure function: the same snapshot, options and overlay
// give the same table.
package xdstable
