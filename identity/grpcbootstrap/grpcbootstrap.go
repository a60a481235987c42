// Package grpcbootstrap writes the xDS bootstrap of a proxyless gRPC
// client or server (gRFC A27) that takes its identity from the files
// `shoal identity fetch` keeps fresh:
//
//   - xds_servers: the control plane, over mTLS with the workload's SVID
//     (gRFC A65 "tls" channel credentials), so the xDS port can bind the
//     stream to the node's service;
//   - node: cluster = the SVID's service (the control plane refuses a node
//     claiming another), a locality zone (grpc-js requires one);
//   - certificate_providers: the instance CertProviderInstance, a
//     file_watcher of the same files, which the control plane names in the
//     security config of mTLS clusters and server listeners (gRFC A29);
//   - server_listener_resource_name_template, for xDS-enabled gRPC servers
//     (gRFC A36).
//
// The files are read again every RefreshInterval, so rotation needs no
// restart of the gRPC process.
package grpcbootstrap

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"time"
)

// CertProviderInstance is the certificate provider instance name the
// control plane puts in the security config of proxyless clusters; the
// bootstrap must define it.
const CertProviderInstance = "shoal"

// ServerListenerPrefix starts the name of the listener a proxyless gRPC
// server (gRFC A36) subscribes to; the bootstrap's
// server_listener_resource_name_template is it followed by %s, the
// server's listening IP:port.
const ServerListenerPrefix = "grpc/server?xds.resource.listening_address="

// DefaultRefreshInterval is how often gRPC reads the files again when
// Config.RefreshInterval is zero.
const DefaultRefreshInterval = time.Minute

// RefreshFor is the refresh interval for an SVID valid for another
// remaining: a quarter of it in whole seconds, between 1 s and a minute.
// The holder renews at half the lifetime, so gRPC reads the new files
// while the old certificate is still valid (gRPC's own default, 10 min,
// would miss a short --svid-ttl); reading three small files at most once
// a second costs nothing.
func RefreshFor(remaining time.Duration) time.Duration {
	return min(max((remaining/4).Truncate(time.Second), time.Second), time.Minute)
}

// Config is what a bootstrap says. Server, Dir, CertFile, KeyFile,
// CAFile and Service are required.
type Config struct {
	// Server is the control plane's xDS address (host:port); its serving
	// certificate must name the host.
	Server string
	// Dir holds the files; relative names are made absolute.
	Dir string
	// CertFile, KeyFile and CAFile are the file names in Dir: the SVID
	// with its intermediates, its key, the trust bundle.
	CertFile, KeyFile, CAFile string
	// Service is the workload's service (node.cluster).
	Service string
	// NodeID is node.id; zero means Service.
	NodeID string
	// Zone is node.locality.zone; zero means "local".
	Zone string
	// RefreshInterval; zero means DefaultRefreshInterval.
	RefreshInterval time.Duration
}

type (
	bootstrap struct {
		XDSServers                         []xdsServer         `json:"xds_servers"`
		Node                               node                `json:"node"`
		CertificateProviders               map[string]provider `json:"certificate_providers"`
		ServerListenerResourceNameTemplate string              `json:"server_listener_resource_name_template"`
	}
	xdsServer struct {
		ServerURI      string         `json:"server_uri"`
		ChannelCreds   []channelCreds `json:"channel_creds"`
		ServerFeatures []string       `json:"server_features"`
	}
	channelCreds struct {
		Type   string `json:"type"`
		Config files  `json:"config"`
	}
	// files is both the file_watcher plugin's config and the A65 "tls"
	// channel credentials' config.
	files struct {
		CertificateFile   string `json:"certificate_file"`
		PrivateKeyFile    string `json:"private_key_file"`
		CACertificateFile string `json:"ca_certificate_file"`
		RefreshInterval   string `json:"refresh_interval"`
	}
	node struct {
		ID       string            `json:"id"`
		Cluster  string            `json:"cluster"`
		Locality map[string]string `json:"locality"`
	}
	provider struct {
		PluginName string `json:"plugin_name"`
		Config     files  `json:"config"`
	}
)

// Marshal returns the bootstrap JSON for c.
func Marshal(c Config) ([]byte, error) {
	switch {
	case c.Server == "":
		return nil, errors.New("grpcbootstrap: Config.Server is required")
	case c.Dir == "" || c.CertFile == "" || c.KeyFile == "" || c.CAFile == "":
		return nil, errors.New("grpcbootstrap: Config.Dir and the file names are required")
	case c.Service == "":
		return nil, errors.New("grpcbootstrap: Config.Service is required")
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return nil, err
	}
	if c.NodeID == "" {
		c.NodeID = c.Service
	}
	if c.Zone == "" {
		c.Zone = "local"
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	f := files{
		CertificateFile:   filepath.Join(dir, c.CertFile),
		PrivateKeyFile:    filepath.Join(dir, c.KeyFile),
		CACertificateFile: filepath.Join(dir, c.CAFile),
		// A protobuf JSON Duration ("10s", "0.5s"), as gRPC parses it.
		RefreshInterval: strconv.FormatFloat(c.RefreshInterval.Seconds(), 'f', -1, 64) + "s",
	}
	b := bootstrap{
		XDSServers: []xdsServer{{
			ServerURI:      c.Server,
			ChannelCreds:   []channelCreds{{Type: "tls", Config: f}},
			ServerFeatures: []string{"xds_v3"},
		}},
		Node:                               node{ID: c.NodeID, Cluster: c.Service, Locality: map[string]string{"zone": c.Zone}},
		CertificateProviders:               map[string]provider{CertProviderInstance: {PluginName: "file_watcher", Config: f}},
		ServerListenerResourceNameTemplate: ServerListenerPrefix + "%s",
	}
	return json.MarshalIndent(b, "", "  ")
}
