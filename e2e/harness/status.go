package harness

import (
	"encoding/json"
	"fmt"
	"testing"
)

// Status mirrors `shoal status -o json` (protojson field names).
type Status struct {
	Ready   bool           `json:"ready"`
	Clients []StatusClient `json:"clients"`
	Members []StatusMember `json:"members"`
}

// StatusClient is one xDS stream in Status.
type StatusClient struct {
	NodeID    string           `json:"nodeId"`
	Resources []StatusResource `json:"resources"`
}

// StatusResource is one resource type's state on one client.
type StatusResource struct {
	TypeURL       string `json:"typeUrl"`
	SentVersion   string `json:"sentVersion"`
	AckedVersion  string `json:"ackedVersion"`
	NackedVersion string `json:"nackedVersion"`
}

// StatusMember is one gossip member in Status.
type StatusMember struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Role  string `json:"role"`
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
