// Package etcdserver runs a single-member embedded etcd
// (go.etcd.io/etcd/server/v3/embed) for `shoal controlplane` and tests.
package etcdserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Config configures an embedded etcd member.
type Config struct {
	// Dir is the data directory; required.
	Dir string
	// ClientURL is where clients connect, e.g. "http://127.0.0.1:2379";
	// required. The HTTP/JSON gateway (/v3/kv/put, ...) is served there too.
	ClientURL string
	// PeerURL is the raft peer URL; required (single member, but etcd needs
	// one to bind).
	PeerURL string
	// Name of the member; zero means "shoal".
	Name string
	// StartTimeout bounds the wait for the server to become ready; zero
	// means 30s.
	StartTimeout time.Duration
	// TLS, when set, serves clients and peers with TLS and requires client
	// certificates signed by its TrustedCAFile (ClientURL and PeerURL must
	// then be https).
	TLS *TLSFiles
	// Logger receives a one-line summary; etcd's own zap logs are kept at
	// error level.
	Logger *slog.Logger
}

// TLSFiles are the PEM files of an etcd member's TLS: its certificate
// (used to serve and, between peers, as a client), its key and the CA
// that client certificates must chain to.
type TLSFiles struct {
	CertFile, KeyFile, TrustedCAFile string
	// AllowedCNs, when not empty, admits only client certificates with
	// one of these subject common names (etcd's --client-cert-allowed-cn).
	AllowedCNs []string
}

// Server is a running embedded etcd.
type Server struct {
	e *embed.Etcd
}

// Start starts etcd and waits until it serves clients.
func Start(cfg Config) (*Server, error) {
	switch {
	case cfg.Dir == "":
		return nil, errors.New("etcdserver: Config.Dir is required")
	case cfg.ClientURL == "":
		return nil, errors.New("etcdserver: Config.ClientURL is required")
	case cfg.PeerURL == "":
		return nil, errors.New("etcdserver: Config.PeerURL is required")
	}
	if cfg.Name == "" {
		cfg.Name = "shoal"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	curl, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("etcdserver: client url: %w", err)
	}
	purl, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("etcdserver: peer url: %w", err)
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	ec.ListenClientUrls = []url.URL{*curl}
	ec.AdvertiseClientUrls = []url.URL{*curl}
	ec.ListenPeerUrls = []url.URL{*purl}
	ec.AdvertisePeerUrls = []url.URL{*purl}
	ec.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, purl.String())
	if t := cfg.TLS; t != nil {
		if curl.Scheme != "https" || purl.Scheme != "https" {
			return nil, errors.New("etcdserver: TLS needs https client and peer URLs")
		}
		ti := embed.NewConfig().ClientTLSInfo
		ti.CertFile, ti.KeyFile, ti.TrustedCAFile, ti.ClientCertAuth = t.CertFile, t.KeyFile, t.TrustedCAFile, true
		ec.PeerTLSInfo = ti
		ti.AllowedCNs = t.AllowedCNs
		ec.ClientTLSInfo = ti
	}
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Metrics would register on the global Prometheus registry; keep them off.
	ec.Metrics = "basic"
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("etcdserver: start: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcdserver: start: %w", err)
	case <-time.After(cfg.StartTimeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("etcdserver: not ready after %s", cfg.StartTimeout)
	}
	if cfg.Logger != nil {
		cfg.Logger.Info("embedded etcd ready", "client_url", cfg.ClientURL, "data_dir", cfg.Dir)
	}
	return &Server{e: e}, nil
}

// Err reports a fatal server error.
func (s *Server) Err() <-chan error { return s.e.Err() }

// Close stops the server and waits for it.
func (s *Server) Close() { s.e.Close() }
