package sidecar

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sort"

	"github.com/shoal-mesh/shoal/registry/gossip/keyadmin"
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
		writeJSON(w, p.member.Peers())
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
// client status and any table build error. A resource shows the fields the
// sidecar decoded, under Envoy's proto field names (as Envoy's own
// /config_dump prints them): enums by name, durations as "1.5s", Anys with
// their "@type".
func (p *Proxy) configDump(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"xds_status": p.xds.Status()}
	if e := p.buildErr.Load(); e != nil {
		out["table_error"] = *e
	}
	if s := p.snap.Load(); s != nil {
		out["versions"] = s.Versions
		out["from_state_dir"] = s.FromState
		out["listeners"] = dump(s.Listeners)
		out["routes"] = dump(s.Routes)
		out["clusters"] = dump(s.Clusters)
		out["endpoints"] = dump(s.Endpoints)
	}
	writeJSON(w, out)
}

func dump[M any](m map[string]M) []json.RawMessage {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]json.RawMessage, 0, len(m))
	for _, n := range names {
		b, err := json.Marshal(m[n])
		if err != nil {
			continue
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
