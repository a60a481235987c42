package main

// The mTLS mode (--mtls, issue 13): the hop between two proxies over
// mutually authenticated TLS 1.3 with keep-alive, as a mesh runs it.
//
//	wrk → proxy A (plain, loopback) → mTLS → proxy B (terminates TLS) → b1
//
// nginx: A with proxy_ssl (client certificate, verifying B's name) to B, a
// TLS server that requires a client certificate of the bench CA. HAProxy:
// the same with `ssl crt … verify required` on A's server line and B's
// bind line. shoal: sidecar A with an identity (join token) and an
// --upstream port for service bench-mtls, whose one instance is sidecar B
// with an identity and its mTLS inbound listener (registered by itself as
// "tls": "mtls"), in front of b1 as its app. Both proxies are pinned to
// the proxy CPUs with one worker (GOMAXPROCS=1) each, and the CPU of both
// is counted. Every side offers TLS 1.3 only, with ECDSA P-256
// certificates (like the mesh's SVIDs) and TLS_AES_128_GCM_SHA256, the
// suite Go negotiates on CPUs with AES instructions (OpenSSL would pick
// AES-256-GCM by default).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-mesh/shoal/bench/internal/proc"
	"github.com/shoal-mesh/shoal/internal/freeport"
)

// mtlsService is the service sidecar B registers in the mTLS mode, and
// mtlsClientService sidecar A's identity.
const (
	mtlsService       = "bench-mtls"
	mtlsClientService = "bench-client"
	// mtlsServerName is the DNS name in proxy B's certificate that nginx
	// and HAProxy A verify.
	mtlsServerName = "proxy-b.bench"
	// mtlsSuite is the one TLS 1.3 cipher suite nginx and HAProxy offer.
	mtlsSuite = "TLS_AES_128_GCM_SHA256"
)

// benchPKI are the files of the bench CA: nginx and HAProxy use them
// (the shoal sidecars get SVIDs from the control plane's dev CA).
type benchPKI struct {
	CA                string // CA certificate
	ACert, AKey, APEM string // proxy A's client certificate; APEM: both, for HAProxy
	BCert, BKey, BPEM string // proxy B's server certificate
	dir               string
}

// writePKI creates a P-256 CA and a client and a server certificate signed
// by it under dir.
func writePKI(dir string) (*benchPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &benchPKI{dir: dir, CA: filepath.Join(dir, "ca.crt"),
		ACert: filepath.Join(dir, "a.crt"), AKey: filepath.Join(dir, "a.key"), APEM: filepath.Join(dir, "a.pem"),
		BCert: filepath.Join(dir, "b.crt"), BKey: filepath.Join(dir, "b.key"), BPEM: filepath.Join(dir, "b.pem")}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shoal bench CA"},
		NotBefore: now, NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writePEM(p.CA, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, dns []string, certFile, keyFile, both string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
			NotBefore: now, NotAfter: now.Add(48 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return err
		}
		if err := writePEM(keyFile, "PRIVATE KEY", keyDER); err != nil {
			return err
		}
		combined := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
		return os.WriteFile(both, combined, 0o600)
	}
	if err := leaf(2, "proxy-a.bench", x509.ExtKeyUsageClientAuth, []string{"proxy-a.bench"}, p.ACert, p.AKey, p.APEM); err != nil {
		return nil, err
	}
	if err := leaf(3, mtlsServerName, x509.ExtKeyUsageServerAuth, []string{mtlsServerName}, p.BCert, p.BKey, p.BPEM); err != nil {
		return nil, err
	}
	return p, nil
}

func writePEM(file, typ string, der []byte) error {
	return os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// nginxMTLSConfs are nginx A (plain listener, proxy_ssl with a client
// certificate to B, verifying B's name; the upstream keeps 256 idle TLS
// connections, as in nginxConf) and nginx B (TLS 1.3 listener requiring a
// client certificate of the CA, keep-alive to b1).
func nginxMTLSConfs(dirA, dirB, listenA, listenB, backend string, pki *benchPKI) (a, b string) {
	a = nginxConf(dirA, listenA, "rr", []string{listenB})
	a = strings.Replace(a, "            proxy_pass http://backend;\n", fmt.Sprintf(`            proxy_pass https://backend;
            proxy_ssl_certificate %s;
            proxy_ssl_certificate_key %s;
            proxy_ssl_trusted_certificate %s;
            proxy_ssl_verify on;
            proxy_ssl_name %s;
            proxy_ssl_server_name on;
            proxy_ssl_protocols TLSv1.3;
            proxy_ssl_conf_command Ciphersuites %s;
            proxy_ssl_session_reuse on;
`, pki.ACert, pki.AKey, pki.CA, mtlsServerName, mtlsSuite), 1)
	b = nginxConf(dirB, listenB, "rr", []string{backend})
	b = strings.Replace(b, "        listen "+listenB+";\n", fmt.Sprintf(`        listen %s ssl;
        keepalive_requests 1000000;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_client_certificate %s;
        ssl_verify_client on;
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites %s;
`, listenB, pki.BCert, pki.BKey, pki.CA, mtlsSuite), 1)
	return a, b
}

// haproxyMTLSConfs are HAProxy A (plain frontend, a server line with ssl,
// a client certificate and verification of B's name, http-reuse always)
// and HAProxy B (an ssl bind requiring a client certificate of the CA).
func haproxyMTLSConfs(listenA, listenB, backend string, pki *benchPKI) (a, b string) {
	a = haproxyConf(listenA, "rr", []string{listenB})
	a = strings.Replace(a, "    server b1 "+listenB+"\n", fmt.Sprintf(
		"    server b1 %s ssl crt %s ca-file %s verify required verifyhost %s sni str(%s) ssl-min-ver TLSv1.3 ciphersuites %s\n",
		listenB, pki.APEM, pki.CA, mtlsServerName, mtlsServerName, mtlsSuite), 1)
	b = haproxyConf(listenB, "rr", []string{backend})
	b = strings.Replace(b, "    bind "+listenB+"\n", fmt.Sprintf(
		"    bind %s ssl crt %s ca-file %s verify required ssl-min-ver TLSv1.3 ciphersuites %s\n",
		listenB, pki.BPEM, pki.CA, mtlsSuite), 1)
	return a, b
}

// startPair starts proxy B and then proxy A for the mTLS mode, both on the
// proxy CPUs; the instance's CPU and RSS are both processes'.
func (h *harness) startPair(ctx context.Context, proxy, dir string) (*instance, error) {
	if h.pki == nil {
		var err error
		if h.pki, err = writePKI(filepath.Join(h.work, "pki")); err != nil {
			return nil, err
		}
	}
	addrs, err := freeport.Addrs(2)
	if err != nil {
		return nil, err
	}
	listenA, listenB := addrs[0], addrs[1]
	dirA, dirB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{dirA, dirB} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	var confA, confB string
	var argv func(d, conf string) []string
	switch proxy {
	case "nginx":
		confA, confB = nginxMTLSConfs(dirA, dirB, listenA, listenB, h.backends[0].addr, h.pki)
		argv = func(d, conf string) []string {
			return []string{h.cfg.NginxBin, "-p", d, "-c", conf, "-e", filepath.Join(d, "nginx-error.log")}
		}
	case "haproxy":
		confA, confB = haproxyMTLSConfs(listenA, listenB, h.backends[0].addr, h.pki)
		argv = func(_, conf string) []string { return []string{h.cfg.HAProxyBin, "-db", "-f", conf} }
	default:
		return nil, fmt.Errorf("no mTLS pair for %q", proxy)
	}
	var procs [2]*proc.Proc
	for i, side := range []struct{ name, dir, conf string }{{"b", dirB, confB}, {"a", dirA, confA}} {
		file := filepath.Join(side.dir, proxy+".conf")
		if err := os.WriteFile(file, []byte(side.conf), 0o644); err != nil {
			return nil, err
		}
		p, err := h.ps.Start(proc.Spec{Name: proxy + "-mtls-" + side.name, Args: argv(side.dir, file), CPUs: h.proxyCPUs()})
		if err != nil {
			if i == 1 {
				h.ps.Stop(procs[0], 3*time.Second)
			}
			return nil, err
		}
		procs[i] = p
	}
	inst, err := h.ready(ctx, &instance{addr: listenA, root: procs[1], also: []*proc.Proc{procs[0]}})
	if err != nil {
		h.ps.Stop(procs[0], 3*time.Second)
		return nil, fmt.Errorf("%w\nproxy B: %s", err, procs[0].Tail())
	}
	return inst, nil
}

// createMTLSTokens makes the join tokens of sidecars A and B, each good for
// every measurement of the run.
func (h *harness) createMTLSTokens(ctx context.Context, env *shoalEnv) error {
	for _, svc := range []string{mtlsService, mtlsClientService} {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := exec.CommandContext(cctx, h.cfg.ShoalBin, "tokens", "create", "--api", env.api,
			"--service", svc, "--uses", "1000", "--ttl", "24h").Output()
		cancel()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			return fmt.Errorf("shoal tokens create --service %s: %w: %s", svc, err, strings.TrimSpace(stderr))
		}
		file := filepath.Join(h.work, svc+".token")
		if err := os.WriteFile(file, out, 0o600); err != nil {
			return err
		}
		env.tokens = append(env.tokens, file)
	}
	return nil
}

// startShoalPair starts sidecar B (identity bench-mtls, mTLS inbound
// listener, b1 as its app, registered by itself) and sidecar A (identity
// bench-client, --upstream bench-mtls), fresh for each measurement, and
// waits until a request through A reaches b1.
func (h *harness) startShoalPair(ctx context.Context, dir string) (*instance, error) {
	env := h.shoal
	addrs, err := freeport.Addrs(8)
	if err != nil {
		return nil, err
	}
	upstream, inA, outA, adminA, gossipA := addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]
	inB, adminB, gossipB := addrs[5], addrs[6], addrs[7]
	_, appPort, _ := strings.Cut(h.app.addr, ":")
	_, b1Port, _ := strings.Cut(h.backends[0].addr, ":")
	extra := strings.Fields(os.Getenv("SHOAL_BENCH_SIDECAR_ARGS"))
	common := func(adminAddr, gossip, state string) []string {
		return []string{"--etcd", "http://" + env.etcd, "--xds", env.xds, "--admin-listen", adminAddr,
			"--state-dir", filepath.Join(dir, state), "--gossip-listen", gossip, "--gossip-join", env.gossip,
			"--drain-timeout", "1s"}
	}
	// B keeps one instance id for the whole run: a B that did not
	// deregister cannot leave a second, dead endpoint behind.
	pB, err := h.ps.Start(proc.Spec{
		Name: "shoal-sidecar-mtls-b",
		Args: append(append([]string{h.cfg.sidecarBin(), "sidecar", "--service", mtlsService, "--instance-id", "mtls-b",
			"--app-port", b1Port, "--listen", inB, "--outbound", "", "--join-token-file", env.tokens[0]},
			common(adminB, gossipB, "state-b")...), extra...),
		CPUs: h.proxyCPUs(),
		Env:  []string{"GOMAXPROCS=1"},
	})
	if err != nil {
		return nil, err
	}
	pA, err := h.ps.Start(proc.Spec{
		Name: "shoal-sidecar-mtls-a",
		Args: append(append([]string{h.cfg.sidecarBin(), "sidecar", "--service", mtlsClientService, "--app-port", appPort,
			"--no-register", "--listen", inA, "--outbound", outA, "--upstream", mtlsService + "=" + upstream,
			"--join-token-file", env.tokens[1]}, common(adminA, gossipA, "state-a")...), extra...),
		CPUs: h.proxyCPUs(),
		Env:  []string{"GOMAXPROCS=1"},
	})
	if err != nil {
		h.ps.Stop(pB, 3*time.Second)
		return nil, err
	}
	inst, err := h.ready(ctx, &instance{addr: upstream, root: pA, also: []*proc.Proc{pB}})
	if err != nil {
		h.ps.Stop(pB, 3*time.Second)
		return nil, fmt.Errorf("%w\nsidecar B: %s", err, pB.Tail())
	}
	// The hop must be mTLS: A counts its upstream handshakes.
	err = poll(ctx, 10*time.Second, pA, func() error {
		m, err := getBody("http://"+adminA+"/metrics", 2*time.Second)
		if err != nil {
			return err
		}
		if !strings.Contains(m, `shoal_sidecar_tls_handshakes_total{direction="upstream",result="ok"}`) {
			return fmt.Errorf("sidecar A counts no mTLS handshake to B")
		}
		return nil
	})
	if err != nil {
		h.ps.Stop(pA, 3*time.Second)
		h.ps.Stop(pB, 3*time.Second)
		return nil, err
	}
	return inst, nil
}
