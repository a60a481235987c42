package sidecar

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"github.com/shoal-mesh/shoal/registry/gossip"
	"github.com/shoal-mesh/shoal/registry/gossip/keyadmin"
	"github.com/shoal-mesh/shoal/sidecar/internal/xdsres"
	"github.com/shoal-mesh/shoal/sidecar/xdsclient"
)

// adminMux serves the admin endpoints.
func (p *Proxy) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !p.applied.Load() {
			http.Error(w, "not ready: no config from the control plane or the state dir yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", p.reg)
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, p.proxy.Clusters())
	})
	mux.HandleFunc("GET /config_dump", p.configDump)
	mux.HandleFunc("POST /drain/wait", p.drainWait)
	if p.cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, r *http.Request) {
		if p.member == nil {
			writeJSON(w, []any{})
			return
		}
		writeJSON(w, membersJSON(p.member.Peers()))
	})
	// Key rotation for operators (shoal gossip keys); member is set after
	// the mux is built, hence the lookup per request.
	mux.Handle(keyadmin.Path, keyadmin.Handler(func() keyadmin.Keyring {
		if p.member == nil {
			return nil
		}
		return p.member
	}, p.log))
	return mux
}

// configDump writes the last applied xDS resources as JSON, with the xDS
// client status and any table build error. Each resource is printed from
// the bytes received, as Envoy's own /config_dump prints it (protojson with
// proto field names, "@type" with Envoy's type URL), showing the fields of
// the sidecar's Envoy subset (sidecar/internal/xdspb).
func (p *Proxy) configDump(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"xds_status": p.xds.Status()}
	if e := p.buildErr.Load(); e != nil {
		out["table_error"] = *e
	}
	if s := p.snap.Load(); s != nil {
		out["versions"] = s.Versions
		out["from_state_dir"] = s.FromState
		out["listeners"] = dump(s, xdsclient.ListenerType)
		out["routes"] = dump(s, xdsclient.RouteType)
		out["clusters"] = dump(s, xdsclient.ClusterType)
		out["endpoints"] = dump(s, xdsclient.EndpointType)
	}
	writeJSON(w, out)
}

// dump prints the resources of typeURL in name order.
func dump(s *xdsclient.Snapshot, typeURL string) []json.RawMessage {
	raw := s.Raw(typeURL)
	out := make([]json.RawMessage, 0, len(raw))
	for _, n := range slices.Sorted(maps.Keys(raw)) {
		b, err := xdsres.JSON(typeURL, raw[n])
		if err != nil {
			b, _ = json.Marshal(map[string]string{"@type": typeURL, "name": n, "error": err.Error()})
		}
		out = append(out, b)
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// memberJSON is one gossip member in /members: the fields of the
// management API's Member (shoal status -o json) under the same snake_case
// names, states and roles by name, plus since and per-instance health.
type memberJSON struct {
	Name      string         `json:"name"`
	Address   string         `json:"address"`
	State     string         `json:"state"`
	Role      string         `json:"role"`
	Since     time.Time      `json:"since"`
	Instances []instanceJSON `json:"instances"`
}

type instanceJSON struct {
	Service string `json:"service"`
	ID      string `json:"id"`
	Healthy bool   `json:"healthy"`
}

func membersJSON(peers []gossip.Peer) []memberJSON {
	out := make([]memberJSON, 0, len(peers))
	for _, p := range peers {
		m := memberJSON{Name: p.Name, Address: p.Addr, State: p.State.String(), Role: p.Role.String(), Since: p.Since, Instances: []instanceJSON{}}
		for _, in := range p.Instances {
			m.Instances = append(m.Instances, instanceJSON{Service: in.Service, ID: in.ID, Healthy: in.Healthy})
		}
		out = append(out, m)
	}
	return out
}
