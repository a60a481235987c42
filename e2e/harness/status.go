package harness

import (
	"encoding/json"
	"fmt"
	"testing"
)

// Status mirrors `shoal status -o json` (the proto field names).
type Status struct {
	Ready   bool           `json:"ready"`
	Clients []StatusClient `json:"clients"`
	Members []StatusMember `json:"members"`
}

// StatusClient is one xDS stream in Status.
type StatusClient struct {
	NodeID    string           `json:"node_id"`
	Resources []StatusResource `json:"resources"`
}

// StatusResource is one resource type's state on one client.
type StatusResource struct {
	TypeURL       string `json:"type_url"`
	SentVersion   string `json:"sent_version"`
	AckedVersion  string `json:"acked_version"`
	NackedVersion string `json:"nacked_version"`
}

// StatusMember is one gossip member in Status.
type StatusMember struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Role  string `json:"role"`
	// Instances are the instances whose health the control plane takes
	// from this member ("service/id").
	Instances []string `json:"instances"`
}

// Status runs `shoal status -o json` against the control plane's API.
func (cp *ControlPlane) Status(t testing.TB) (*Status, error) {
	t.Helper()
	out, errOut, code := Shoal(t, "status", "--api", cp.API, "-o", "json")
	if code != 0 {
		return nil, fmt.Errorf("shoal status: exit %d: %s", code, errOut)
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("shoal status -o json: %w", err)
	}
	return &st, nil
}

// Member returns the member named name (nil if absent).
func (s *Status) Member(name string) *StatusMember {
	for i := range s.Members {
		if s.Members[i].Name == name {
			return &s.Members[i]
		}
	}
	return nil
}

// AllAcked reports whether every client in nodes is connected and has
// ACKed the version last sent for every resource type it receives.
func (s *Status) AllAcked(nodes ...string) bool {
	seen := map[string]bool{}
	for _, c := range s.Clients {
		if len(c.Resources) == 0 {
			return false
		}
		for _, r := range c.Resources {
			if r.SentVersion == "" || r.AckedVersion != r.SentVersion {
				return false
			}
		}
		seen[c.NodeID] = true
	}
	for _, n := range nodes {
		if !seen[n] {
			return false
		}
	}
	return true
}

// Sent returns, per node and type URL, the version last sent on the
// node's current stream (types with nothing sent are absent).
func (s *Status) Sent() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, c := range s.Clients {
		out[c.NodeID] = map[string]string{}
		for _, r := range c.Resources {
			if r.SentVersion != "" {
				out[c.NodeID][r.TypeURL] = r.SentVersion
			}
		}
	}
	return out
}

// Settled reports whether every client in nodes is connected, has NACKed
// nothing, and has ACKed whatever was last sent to it. Unlike AllAcked it
// accepts a type with nothing sent on the current stream: a delta client
// that resumed with up-to-date initial_resource_versions is sent nothing.
func (s *Status) Settled(nodes ...string) bool {
	seen := map[string]bool{}
	for _, c := range s.Clients {
		for _, r := range c.Resources {
			if r.NackedVersion != "" || r.AckedVersion != r.SentVersion {
				return false
			}
		}
		seen[c.NodeID] = true
	}
	for _, n := range nodes {
		if !seen[n] {
			return false
		}
	}
	return true
}

// Connected reports whether every node in nodes has an xDS stream.
func (s *Status) Connected(nodes ...string) bool {
	seen := map[string]bool{}
	for _, c := range s.Clients {
		seen[c.NodeID] = true
	}
	for _, n := range nodes {
		if !seen[n] {
			return false
		}
	}
	return true
}
