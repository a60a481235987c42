package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"sigs.k8s.io/yaml"

	"github.com/shoal-mesh/shoal/e2e/harness"
)

// The Kubernetes manifests cannot be applied here (no cluster), but what
// they run can: this test runs deploy/kubernetes/secrets.sh, then a real
// etcd configured by the StatefulSet's ETCD_* environment and a control
// plane with the Deployment's arguments, each with the Secrets mounted as
// the manifests mount them (volume items included). Only what a cluster
// provides is replaced: DNS names and pod IPs by 127.0.0.1 and free ports,
// one etcd member instead of three, and, because the listeners are then on
// loopback where "auto" would not authenticate, --xds-auth and --api-auth
// are forced to required. Then: the control plane serves on the TLS etcd
// with its client certificate; the admin certificate from the script
// applies a route through the API; an anonymous API call is refused; etcd
// refuses a certificate of the mesh CA (its CA is its own) and the revision
// does not move.
func TestKubernetesManifestsRunAuthenticated(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "secrets")
	script := exec.Command(filepath.Join(repo, "deploy/kubernetes/secrets.sh"), "--out", out, "--shoal", harness.Binary(t))
	if b, err := script.CombinedOutput(); err != nil {
		t.Fatalf("secrets.sh: %v\n%s", err, b)
	}
	secrets := map[string]map[string][]byte{}
	for _, name := range []string{"shoal-mesh-ca", "shoal-etcd-tls", "shoal-etcd-client"} {
		b, err := os.ReadFile(filepath.Join(out, "secrets", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			APIVersion string `json:"apiVersion"`
			Kind       string
			Metadata   struct{ Name, Namespace string }
			Type       string
			Data       map[string][]byte
		}
		if err := yaml.UnmarshalStrict(b, &s); err != nil {
			t.Fatalf("%s.yaml: %v", name, err)
		}
		if s.APIVersion != "v1" || s.Kind != "Secret" || s.Metadata.Name != name || s.Metadata.Namespace != "shoal-system" || s.Type != "kubernetes.io/tls" {
			t.Fatalf("%s.yaml: metadata %+v type %s", name, s.Metadata, s.Type)
		}
		secrets[name] = s.Data
	}

	// etcd, from the StatefulSet.
	etcdPod := manifestPod(t, filepath.Join(repo, "deploy/kubernetes/base/etcd.yaml"), "StatefulSet")
	mounts := etcdPod.mount(t, tmp, secrets)
	clientPort, peerPort, metricsPort := harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t)
	c := etcdPod.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	env["ETCD_NAME"] = "shoal-etcd-0"
	expand := func(v string) string {
		v = strings.ReplaceAll(v, "$(ETCD_NAME)", env["ETCD_NAME"])
		v = regexp.MustCompile(`shoal-etcd-\d\.shoal-etcd\.shoal-system\.svc`).ReplaceAllString(v, "127.0.0.1")
		v = strings.NewReplacer("0.0.0.0:2379", clientPort, "127.0.0.1:2379", clientPort,
			"0.0.0.0:2380", peerPort, "127.0.0.1:2380", peerPort, "0.0.0.0:2381", metricsPort).Replace(v)
		return mounts.path(v)
	}
	var etcdEnv []string
	for k, v := range env {
		switch k {
		case "ETCD_INITIAL_CLUSTER":
			v = strings.Split(v, ",")[0] // one member here
		case "ETCD_DATA_DIR":
			v = filepath.Join(tmp, "etcd-data")
		}
		etcdEnv = append(etcdEnv, k+"="+expand(v))
	}
	for _, want := range []string{"ETCD_CLIENT_CERT_AUTH=true", "ETCD_PEER_CLIENT_CERT_AUTH=true"} {
		if !strings.Contains(strings.Join(etcdEnv, "\n"), want) {
			t.Fatalf("etcd environment has no %s: %v", want, etcdEnv)
		}
	}
	etcdBin := filepath.Join(tmp, "etcd")
	if b, err := exec.Command("go", "build", "-o", etcdBin, "./cmd/etcd").CombinedOutput(); err != nil {
		t.Fatalf("build etcd: %v\n%s", err, b)
	}
	etcd := harness.Start(t, etcdBin, etcdEnv)
	harness.Eventually(t, harness.DefaultTimeout, "etcd ready", func() bool {
		if etcd.Exited() {
			t.Fatalf("etcd exited:\n%s", etcd.Output())
		}
		resp, err := http.Get("http://" + metricsPort + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// The control plane, from the Deployment.
	cpPod := manifestPod(t, filepath.Join(repo, "deploy/kubernetes/base/controlplane.yaml"), "Deployment")
	cpMounts := cpPod.mount(t, tmp, secrets)
	xds, api, admin, gossip := harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t)
	var args []string
	for _, a := range cpPod.Containers[0].Args {
		flag, v, _ := strings.Cut(a, "=")
		switch flag {
		case "--etcd-endpoints":
			v = "https://" + clientPort
		case "--xds-listen":
			v = xds
		case "--api-listen":
			v = api
		case "--admin-listen":
			v = admin
		case "--gossip-listen":
			v = gossip
		case "--gossip-join":
			continue // a DNS name of the cluster
		case "--id":
			v = "shoal-controlplane-0"
		case "--insecure", "--xds-auth", "--api-auth", "--etcd-tls":
			t.Fatalf("the control plane's manifest turns authentication off: %s", a)
		}
		if v != "" {
			a = flag + "=" + cpMounts.path(v)
		}
		args = append(args, a)
	}
	args = append(args, "--xds-auth=required", "--api-auth=required")
	cp := harness.Start(t, harness.Binary(t), nil, args...)
	harness.Eventually(t, harness.DefaultTimeout, "control plane ready on the TLS etcd", func() bool {
		if cp.Exited() {
			t.Fatalf("control plane exited:\n%s", cp.Output())
		}
		resp, err := http.Get("http://" + admin + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	adminDir := filepath.Join(out, "admin")
	route := filepath.Join(tmp, "route.yaml")
	os.WriteFile(route, []byte("name: web\nhosts: [web]\nrules:\n  - destinations:\n      - service: web\n    strategy: round_robin\n"), 0o600)
	// TLS to the API but no credentials: Unauthenticated.
	if o, e, code := harness.Shoal(t, "routes", "list", "--api", api, "--ca-bundle", filepath.Join(adminDir, "ca.pem")); code == 0 || !strings.Contains(e, "needs credentials") {
		t.Fatalf("routes list without credentials: exit %d, want a refusal for missing credentials (Unauthenticated)\n%s%s", code, o, e)
	}
	if o, e, code := harness.Shoal(t, "routes", "apply", "-f", route, "--api", api,
		"--cert", filepath.Join(adminDir, "cert.pem"), "--key", filepath.Join(adminDir, "key.pem"),
		"--ca-bundle", filepath.Join(adminDir, "ca.pem")); code != 0 {
		t.Fatalf("routes apply with the admin certificate: exit %d\n%s%s\ncontrol plane:\n%s", code, o, e, cp.Output())
	}

	// etcd: the control plane's client certificate reads the route; the
	// admin certificate (mesh CA) is refused, nothing written.
	ctx, cancel := context.WithTimeout(t.Context(), harness.DefaultTimeout)
	defer cancel()
	etcdCA := x509.NewCertPool()
	etcdCA.AppendCertsFromPEM(secrets["shoal-etcd-client"]["ca.crt"])
	clientCert, err := tls.X509KeyPair(secrets["shoal-etcd-client"]["tls.crt"], secrets["shoal-etcd-client"]["tls.key"])
	if err != nil {
		t.Fatal(err)
	}
	good := tlsEtcdClient(t, clientPort, &tls.Config{RootCAs: etcdCA, Certificates: []tls.Certificate{clientCert}})
	r, err := good.Get(ctx, "/shoal/v1/routes/", clientv3.WithPrefix())
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("routes in etcd: %v, %v", r, err)
	}
	before := r.Header.Revision
	meshCert, err := tls.LoadX509KeyPair(filepath.Join(adminDir, "cert.pem"), filepath.Join(adminDir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]*tls.Config{
		"no client certificate":        {RootCAs: etcdCA},
		"a certificate of the mesh CA": {RootCAs: etcdCA, Certificates: []tls.Certificate{meshCert}},
	} {
		bad := tlsEtcdClient(t, clientPort, tc)
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := bad.Put(wctx, "/shoal/v1/instances/web/rogue", `{"address":"10.6.6.6","port":80}`)
		wcancel()
		if err == nil {
			t.Fatalf("etcd accepted a write with %s", name)
		}
	}
	r, err = good.Get(ctx, "/shoal/v1/routes/", clientv3.WithPrefix())
	if err != nil || r.Header.Revision != before {
		t.Fatalf("etcd revision %d -> %v (%v) after refused writes", before, r, err)
	}
}

func tlsEtcdClient(t *testing.T, addr string, tc *tls.Config) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"https://" + addr}, TLS: tc, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// podSpec is the part of a workload's pod template this test runs.
type podSpec struct {
	Containers []struct {
		Args []string
		Env  []struct {
			Name, Value string
		}
		VolumeMounts []struct {
			Name      string
			MountPath string `json:"mountPath"`
		} `json:"volumeMounts"`
	}
	Volumes []struct {
		Name   string
		Secret *struct {
			SecretName string `json:"secretName"`
			Items      []struct{ Key, Path string }
		}
	}
}

// manifestPod returns the pod template of the document of kind in file.
func manifestPod(t *testing.T, file, kind string) podSpec {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		var w struct {
			Kind string
			Spec struct {
				Template struct{ Spec podSpec }
			}
		}
		if err := yaml.Unmarshal([]byte(doc), &w); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if w.Kind == kind {
			return w.Spec.Template.Spec
		}
	}
	t.Fatalf("%s: no %s", file, kind)
	return podSpec{}
}

// mounts maps a pod's mount paths to the directories standing in for them.
type mounts map[string]string

// mount writes each Secret volume of the pod's first container as the
// kubelet would (every key, or the listed items under their paths) into a
// directory under tmp.
func (p podSpec) mount(t *testing.T, tmp string, secrets map[string]map[string][]byte) mounts {
	t.Helper()
	m := mounts{}
	for _, vm := range p.Containers[0].VolumeMounts {
		for _, v := range p.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			data, ok := secrets[v.Secret.SecretName]
			if !ok {
				t.Fatalf("volume %s: Secret %s is not written by secrets.sh", v.Name, v.Secret.SecretName)
			}
			dir := filepath.Join(tmp, "mounts", v.Name)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			files := map[string]string{}
			for k := range data {
				files[k] = k
			}
			if len(v.Secret.Items) > 0 {
				files = map[string]string{}
				for _, it := range v.Secret.Items {
					if _, ok := data[it.Key]; !ok {
						t.Fatalf("volume %s: Secret %s has no key %s", v.Name, v.Secret.SecretName, it.Key)
					}
					files[it.Key] = it.Path
				}
			}
			for k, path := range files {
				if err := os.WriteFile(filepath.Join(dir, path), data[k], 0o400); err != nil {
					t.Fatal(err)
				}
			}
			m[vm.MountPath] = dir
		}
	}
	return m
}

// path rewrites a value under a mount path to the stand-in directory.
func (m mounts) path(v string) string {
	for mp, dir := range m {
		if v == mp || strings.HasPrefix(v, mp+"/") {
			return dir + strings.TrimPrefix(v, mp)
		}
	}
	return v
}
