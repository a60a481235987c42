// Package ui serves the mesh dashboard on the control plane's admin port:
// a live page (/ui/) of services and their callers, instances with their
// health and the share of traffic each got per strategy over the last
// minute, routes, and each proxy's xDS convergence.
//
// The page is static HTML, CSS and vanilla JavaScript embedded in the
// binary (no CDN, no build step). It polls one JSON document, /ui/api/mesh,
// which is made only of management API responses (MeshService.Status and
// Traffic, RegistryService.ListServices and ListInstances,
// RouteService.ListRoutes) called in-process and encoded with protojson, so
// the dashboard shows exactly what `shoal status` and the API show.
package ui

import (
	"bytes"
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

//go:embed assets
var assets embed.FS

// API is the part of the management API the dashboard reads
// (controlplane/api's Server.Local implements it). Calls must be safe for
// concurrent use.
type API interface {
	Status(context.Context, *shoalv1.StatusRequest) (*shoalv1.StatusResponse, error)
	Traffic(context.Context, *shoalv1.TrafficRequest) (*shoalv1.TrafficResponse, error)
	ListServices(context.Context, *shoalv1.ListServicesRequest) (*shoalv1.ListServicesResponse, error)
	ListInstances(context.Context, *shoalv1.ListInstancesRequest) (*shoalv1.ListInstancesResponse, error)
	ListRoutes(context.Context, *shoalv1.ListRoutesRequest) (*shoalv1.ListRoutesResponse, error)
}

// Handler returns the dashboard's handler, to be mounted at /ui/ (it
// handles /ui/ and everything under it).
func Handler(api API, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ui/", http.StripPrefix("/ui/", noCache(http.FileServerFS(static))))
	mux.Handle("GET /ui/api/mesh", meshHandler{api: api, log: log.With("component", "ui")})
	return mux
}

func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

type meshHandler struct {
	api API
	log *slog.Logger
}

var jsonOpts = protojson.MarshalOptions{EmitUnpopulated: true}

// ServeHTTP writes {"status":…, "traffic":…, "services":…, "instances":…,
// "routes":…}, each member the protojson of the API response.
func (h meshHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	parts := []struct {
		name string
		call func() (proto.Message, error)
	}{
		{"status", func() (proto.Message, error) { return h.api.Status(ctx, &shoalv1.StatusRequest{}) }},
		{"traffic", func() (proto.Message, error) { return h.api.Traffic(ctx, &shoalv1.TrafficRequest{}) }},
		{"services", func() (proto.Message, error) { return h.api.ListServices(ctx, &shoalv1.ListServicesRequest{}) }},
		{"instances", func() (proto.Message, error) { return h.api.ListInstances(ctx, &shoalv1.ListInstancesRequest{}) }},
		{"routes", func() (proto.Message, error) { return h.api.ListRoutes(ctx, &shoalv1.ListRoutesRequest{}) }},
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, p := range parts {
		m, err := p.call()
		if err != nil {
			h.log.Warn("dashboard: API call failed", "part", p.name, "err", err)
			http.Error(w, "dashboard: "+p.name+": "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		b, err := jsonOpts.Marshal(m)
		if err != nil {
			http.Error(w, "dashboard: "+p.name+": "+err.Error(), http.StatusInternalServerError)
			return
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`"` + p.name + `":`)
		buf.Write(b)
	}
	buf.WriteByte('}')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}
