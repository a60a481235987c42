//go:build !shoal_slim

package main

import (
	"strings"
	"testing"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// TestPrintStatusResumedDeltaClient: a delta client that resumed up to
// date after a control plane restart is shown as holding its resources,
// not as an empty row.
func TestPrintStatusResumedDeltaClient(t *testing.T) {
	st := &shoalv1.StatusResponse{Ready: true, Clients: []*shoalv1.XdsClient{{
		NodeId: "web-1", Delta: true,
		Resources: []*shoalv1.ResourceStatus{{TypeUrl: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", ResumedResources: 12}},
	}}}
	var b strings.Builder
	if err := printStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "resumed(12)") {
		t.Errorf("status output lacks resumed(12):\n%s", b.String())
	}
}
