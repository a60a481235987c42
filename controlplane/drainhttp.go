package controlplane

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/shoal-mesh/shoal/controlplane/xdsserver"
	"github.com/shoal-mesh/shoal/registry"
)

// drainWaitHandler serves POST /drain/wait on the admin port: the drain
// gate over plain HTTP/JSON, for an app without a local sidecar (the
// zero-dependency npm package cannot speak gRPC). The same request and
// answer as a sidecar's /drain/wait:
//
//	{"service","instance_id","address","port","timeout_ms"} → {"converged","waited_ms","pending","proxies"}
func drainWaitHandler(x *xdsserver.Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Service    string `json:"service"`
			InstanceID string `json:"instance_id"`
			Address    string `json:"address"`
			Port       int    `json:"port"`
			TimeoutMS  int64  `json:"timeout_ms"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			http.Error(w, "drain/wait: body: "+err.Error(), http.StatusBadRequest)
			return
		}
		switch {
		case !registry.ValidName(req.Service):
			http.Error(w, "drain/wait: service: not a lowercase DNS label of at most 63 characters", http.StatusBadRequest)
			return
		case req.Address == "":
			http.Error(w, "drain/wait: address is required (the registered address of the instance)", http.StatusBadRequest)
			return
		case req.Port < 1 || req.Port > 65535:
			http.Error(w, "drain/wait: port is outside 1-65535", http.StatusBadRequest)
			return
		case req.TimeoutMS < 0:
			http.Error(w, "drain/wait: timeout_ms is negative", http.StatusBadRequest)
			return
		}
		res := x.WaitRemoved(r.Context(), req.Service, req.Address, uint32(req.Port), time.Duration(req.TimeoutMS)*time.Millisecond)
		pending := res.Pending
		if pending == nil {
			pending = []string{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"converged": res.Converged, "waited_ms": res.Waited.Milliseconds(), "pending": pending, "proxies": res.Clients,
		})
	}
}
