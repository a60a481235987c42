//go:build !shoal_slim

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-mesh/shoal/deploy/inject"
	"github.com/shoal-mesh/shoal/internal/certfile"
)

// injectFlags are the injector-wide settings `shoal inject` and
// `shoal inject-webhook` share.
type injectFlags struct {
	image, etcd, xds, gossipJoin, gossipKeySecret, pullPolicy string
	joinTokenSecret                                           string
	drain                                                     time.Duration
}

func (f *injectFlags) register(fs *pflag.FlagSet) {
	d := inject.DefaultConfig()
	fs.StringVar(&f.image, "image", d.Image, "sidecar image")
	fs.StringVar(&f.pullPolicy, "image-pull-policy", "", "sidecar imagePullPolicy (default: the Kubernetes default)")
	fs.StringVar(&f.joinTokenSecret, "join-token-secret", d.JoinTokenSecret, "Secret in the pod's namespace with a join token per service (data key: the service name): sidecars get workload identities (mTLS, xDS bound to their service) and register through the control plane; empty: no identities, sidecars register in etcd (--etcd)")
	fs.StringVar(&f.etcd, "etcd", "", "with --join-token-secret=\"\": comma-separated etcd endpoints the sidecars register in")
	fs.StringVar(&f.xds, "xds", d.XDS, "control plane xDS address the sidecars subscribe to")
	fs.StringVar(&f.gossipJoin, "gossip-join", strings.Join(d.GossipJoin, ","), "comma-separated gossip seeds; empty disables gossip in sidecars")
	fs.StringVar(&f.gossipKeySecret, "gossip-key-secret", "", "Secret in the pod's namespace whose data key \""+inject.GossipKeySecretKey+"\" holds the base64 gossip key (sidecars get it as $SHOAL_GOSSIP_KEY); empty: gossip unencrypted")
	fs.DurationVar(&f.drain, "drain", time.Duration(d.DrainSeconds)*time.Second, "app preStop sleep and sidecar drain timeout (whole seconds)")
}

func (f *injectFlags) config() (inject.Config, error) {
	switch corev1.PullPolicy(f.pullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return inject.Config{}, fmt.Errorf("--image-pull-policy %q: want Always, IfNotPresent or Never", f.pullPolicy)
	}
	if f.drain < time.Second {
		return inject.Config{}, fmt.Errorf("--drain %v: want at least 1s", f.drain)
	}
	if _, err := checkHostPorts("--xds", f.xds); err != nil {
		return inject.Config{}, err
	}
	switch {
	case f.joinTokenSecret == "" && f.etcd == "":
		return inject.Config{}, usageErrorf("--etcd: required with --join-token-secret=\"\" (sidecars without identities register in etcd)")
	case f.joinTokenSecret != "" && f.etcd != "":
		return inject.Config{}, usageErrorf("--etcd: sidecars with identities (--join-token-secret %s) register through the control plane; give --join-token-secret=\"\" to register in etcd", f.joinTokenSecret)
	case f.etcd != "":
		if _, err := checkURLList("--etcd", f.etcd, "http", "https"); err != nil {
			return inject.Config{}, err
		}
	}
	if f.gossipJoin != "" {
		if _, err := checkHostPorts("--gossip-join", f.gossipJoin); err != nil {
			return inject.Config{}, err
		}
	}
	cfg := inject.DefaultConfig()
	cfg.Image, cfg.XDS = f.image, f.xds
	cfg.ImagePullPolicy = corev1.PullPolicy(f.pullPolicy)
	cfg.EtcdEndpoints, cfg.GossipJoin = splitList(f.etcd), splitList(f.gossipJoin)
	cfg.DrainSeconds = int64(f.drain / time.Second)
	cfg.GossipKeySecret = f.gossipKeySecret
	cfg.JoinTokenSecret = f.joinTokenSecret
	return cfg, nil
}

// newInjectCmd is `shoal inject -f FILE|-`: like `linkerd inject`, it
// writes the manifests to stdout with every workload annotated
// shoal.dev/inject: "true" given the sidecar.
func newInjectCmd() *cobra.Command {
	var f injectFlags
	var file string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "inject -f FILE|-",
		Short: "add the sidecar to annotated workloads in manifests: -f FILE|-",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("-f FILE or -f - is required")
			}
			return runInject(file, quiet, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "manifest file, or - for standard input (required)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "do not report injected workloads on stderr")
	f.register(cmd.Flags())
	return cmd
}

func runInject(file string, quiet bool, f injectFlags, stdout, stderr io.Writer) error {
	in := io.Reader(os.Stdin)
	if file != "-" {
		fh, err := os.Open(file)
		if err != nil {
			return err
		}
		defer fh.Close()
		in = fh
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	results, err := inject.YAML(in, stdout, cfg)
	if err != nil {
		return err
	}
	if !quiet {
		for _, r := range results {
			verb := "skipped (not annotated shoal.dev/inject: \"true\", or already injected)"
			if r.Injected {
				verb = "injected"
			}
			fmt.Fprintf(stderr, "%s %q %s\n", strings.ToLower(r.Kind), r.Name, verb)
		}
	}
	return nil
}

// webhookFlags are the flags of `shoal inject-webhook` beyond injectFlags.
type webhookFlags struct {
	listen, certFile, keyFile, logLevel string
}

// newInjectWebhookCmd is `shoal inject-webhook`: the mutating admission
// webhook over TLS. The key pair is re-read when its files change, so a
// certificate rotated by cert-manager is picked up without a restart.
func newInjectWebhookCmd() *cobra.Command {
	var f injectFlags
	var w webhookFlags
	cmd := &cobra.Command{
		Use:   "inject-webhook --tls-cert FILE --tls-key FILE",
		Short: "serve the sidecar-injecting Kubernetes admission webhook",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if w.certFile == "" || w.keyFile == "" {
				return usageErrorf("--tls-cert and --tls-key are required")
			}
			if err := checkHostPort("--listen", w.listen); err != nil {
				return err
			}
			return runInjectWebhook(cmd.Context(), f, w, cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&w.listen, "listen", ":8443", "HTTPS address (the API server calls POST /mutate)")
	fs.StringVar(&w.certFile, "tls-cert", "", "TLS certificate file (PEM, required)")
	fs.StringVar(&w.keyFile, "tls-key", "", "TLS key file (PEM, required)")
	fs.StringVar(&w.logLevel, "log-level", "info", "debug, info, warn or error")
	f.register(fs)
	return cmd
}

func runInjectWebhook(ctx context.Context, f injectFlags, w webhookFlags, stderr io.Writer) error {
	cfg, err := f.config()
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, w.logLevel)
	if err != nil {
		return err
	}
	wh, err := inject.NewWebhook(cfg, log)
	if err != nil {
		return err
	}
	kp := &certfile.KeyPair{CertFile: w.certFile, KeyFile: w.keyFile}
	if _, err := kp.Get(); err != nil {
		return fmt.Errorf("inject-webhook: load key pair: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /mutate", wh)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := kp.Get()
			if err != nil {
				return nil, fmt.Errorf("inject-webhook: load key pair: %w", err)
			}
			return c, nil
		}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	l, err := net.Listen("tcp", w.listen)
	if err != nil {
		return err
	}
	log.Info("inject webhook serving", "addr", l.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(l, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
