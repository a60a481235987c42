// Package kubernetes holds the shoal manifests; its tests check them
// without a cluster: every document decodes strictly into its Kubernetes
// type (an unknown or misspelt field fails), and the objects agree with
// each other (selectors, named ports, etcd member URLs, injector flags).
package kubernetes

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/shoal-mesh/shoal/deploy/inject"
)

const ns = "shoal-system"

// object is one decoded document.
type object struct {
	file, apiVersion, kind, name, namespace string
	typed                                   any
}

// newTyped maps apiVersion/kind to the type a document must decode into.
var newTyped = map[string]func() any{
	"v1/Namespace":                       func() any { return &corev1.Namespace{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                  func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                func() any { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
	"admissionregistration.k8s.io/v1/MutatingWebhookConfiguration": func() any {
		return &admissionregistrationv1.MutatingWebhookConfiguration{}
	},
}

// decode decodes every document of a rendered stream; kinds without Go
// types here (cert-manager's) are checked for apiVersion, kind and name only.
func decode(t *testing.T, from string, b []byte) []object {
	t.Helper()
	var out []object
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct{ Name, Namespace string }
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s document %d: %v", from, i+1, err)
		}
		if meta.Kind == "" {
			continue // comments only
		}
		if meta.APIVersion == "" || meta.Metadata.Name == "" {
			t.Errorf("%s document %d: %s without apiVersion or metadata.name", from, i+1, meta.Kind)
		}
		o := object{file: from, apiVersion: meta.APIVersion, kind: meta.Kind, name: meta.Metadata.Name, namespace: meta.Metadata.Namespace}
		if mk, ok := newTyped[meta.APIVersion+"/"+meta.Kind]; ok {
			o.typed = mk()
			if err := yaml.UnmarshalStrict([]byte(doc), o.typed); err != nil {
				t.Errorf("%s: %s %q: %v", from, meta.Kind, meta.Metadata.Name, err)
			}
		}
		out = append(out, o)
	}
	return out
}

// load decodes every document of a file that is not a kustomization
// (the examples).
func load(t *testing.T, file string) []object {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, file, b)
}

// build renders the kustomization in dir with kustomize's own Go API, as
// `kubectl kustomize dir` (and `kubectl apply -k dir`) does.
func build(t *testing.T, dir string) []byte {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b, err := m.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return b
}

// render renders dir's kustomization and decodes its objects.
func render(t *testing.T, dir string) []object {
	t.Helper()
	return decode(t, "kustomize build "+dir, build(t, dir))
}

// base renders the top-level kustomization, the one the README applies.
func base(t *testing.T) []object {
	t.Helper()
	return render(t, ".")
}

// kustomizations returns every directory under deploy/kubernetes that
// holds a kustomization.
func kustomizations(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(path))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// Issue 16: `kubectl apply -k deploy/kubernetes/cert-manager` failed with
// "cycle detected" (the overlay sat inside its own base) while a
// hand-written reader of kustomization.yaml passed. Every kustomization
// here renders with kustomize itself.
func TestEveryKustomizationRenders(t *testing.T) {
	dirs := kustomizations(t)
	for _, want := range []string{".", "base", "cert-manager"} {
		if !slices.Contains(dirs, want) {
			t.Errorf("kustomizations %v: %s is missing", dirs, want)
		}
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			if objs := render(t, dir); len(objs) == 0 {
				t.Errorf("kustomize build %s rendered no objects", dir)
			}
		})
	}
	if !bytes.Equal(build(t, "."), build(t, "base")) {
		t.Error("deploy/kubernetes and deploy/kubernetes/base render differently; the top level is meant to be the base as is")
	}
}

func find[T any](t *testing.T, objs []object, kind, name string) T {
	t.Helper()
	for _, o := range objs {
		if o.kind == kind && o.name == name {
			if v, ok := o.typed.(T); ok {
				return v
			}
		}
	}
	var zero T
	t.Fatalf("no %s %q", kind, name)
	return zero
}

func TestBaseHasTheExpectedObjects(t *testing.T) {
	var got []string
	for _, o := range base(t) {
		got = append(got, o.kind+"/"+o.name)
		if o.kind != "Namespace" && o.kind != "MutatingWebhookConfiguration" && o.namespace != ns {
			t.Errorf("%s %s: namespace %q, want %s", o.kind, o.name, o.namespace, ns)
		}
	}
	want := []string{
		"Namespace/shoal-system",
		"Service/shoal-etcd", "StatefulSet/shoal-etcd", "PodDisruptionBudget/shoal-etcd",
		"Deployment/shoal-controlplane", "PodDisruptionBudget/shoal-controlplane",
		"Service/shoal-xds", "Service/shoal-api", "Service/shoal-gossip",
		"Deployment/shoal-gateway", "PodDisruptionBudget/shoal-gateway", "Service/shoal-gateway",
		"ServiceAccount/shoal-injector", "Deployment/shoal-injector",
		"PodDisruptionBudget/shoal-injector", "Service/shoal-injector",
		"MutatingWebhookConfiguration/shoal-injector",
		"NetworkPolicy/shoal-etcd", "NetworkPolicy/shoal-controlplane",
		"NetworkPolicy/shoal-gateway", "NetworkPolicy/shoal-injector",
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Errorf("objects:\n got %q\nwant %q", got, want)
	}
}

// podTemplates returns every workload's pod template by workload name.
func podTemplates(objs []object) map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, o := range objs {
		switch w := o.typed.(type) {
		case *appsv1.Deployment:
			out[o.name] = &w.Spec.Template
		case *appsv1.StatefulSet:
			out[o.name] = &w.Spec.Template
		}
	}
	return out
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func TestServicesAndBudgetsSelectPodsAndNamedPorts(t *testing.T) {
	objs := base(t)
	tpls := podTemplates(objs)
	for _, o := range objs {
		var sel map[string]string
		var ports []intstr.IntOrString
		var protos []corev1.Protocol
		switch v := o.typed.(type) {
		case *corev1.Service:
			sel = v.Spec.Selector
			for _, p := range v.Spec.Ports {
				ports, protos = append(ports, p.TargetPort), append(protos, p.Protocol)
			}
		case *policyv1.PodDisruptionBudget:
			sel = v.Spec.Selector.MatchLabels
		default:
			continue
		}
		matched := 0
		for wname, tpl := range tpls {
			if !selects(sel, tpl.Labels) {
				continue
			}
			matched++
			for i, p := range ports {
				if p.Type == intstr.String && !hasPort(tpl.Spec.Containers, p.StrVal, protos[i]) {
					t.Errorf("%s %s: targetPort %q/%s is not a port of %s", o.kind, o.name, p.StrVal, protos[i], wname)
				}
			}
		}
		if matched != 1 {
			t.Errorf("%s %s: selector %v matches %d workloads, want 1", o.kind, o.name, sel, matched)
		}
	}
}

func hasPort(cs []corev1.Container, name string, proto corev1.Protocol) bool {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, c := range cs {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if p.Name == name && pp == proto {
				return true
			}
		}
	}
	return false
}

func TestWorkloadsHaveProbesOnTheirPortsAndResources(t *testing.T) {
	for name, tpl := range podTemplates(base(t)) {
		for _, c := range tpl.Spec.Containers {
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s/%s: want readiness and liveness probes", name, c.Name)
			}
			for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
				if p == nil {
					continue
				}
				port := intstr.IntOrString{}
				switch {
				case p.HTTPGet != nil:
					port = p.HTTPGet.Port
				case p.TCPSocket != nil:
					port = p.TCPSocket.Port
				}
				if port.Type != intstr.String || !hasPort([]corev1.Container{c}, port.StrVal, corev1.ProtocolTCP) {
					t.Errorf("%s/%s: probe port %v is not a named container port", name, c.Name, port.String())
				}
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s/%s: want cpu and memory requests and a memory limit", name, c.Name)
			}
			if strings.HasPrefix(c.Image, "ghcr.io/shoal-mesh/shoal") && c.Image != inject.DefaultImage {
				t.Errorf("%s/%s: image %s, want %s", name, c.Name, c.Image, inject.DefaultImage)
			}
		}
	}
}

// etcdMembers are the client URLs of the etcd StatefulSet's members.
func etcdMembers(t *testing.T, objs []object) (client []string, initialCluster string) {
	sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "shoal-etcd")
	var peers []string
	for i := range int(*sts.Spec.Replicas) {
		host := fmt.Sprintf("%s-%d.%s.%s.svc", sts.Name, i, sts.Spec.ServiceName, ns)
		client = append(client, "https://"+host+":2379")
		peers = append(peers, fmt.Sprintf("%s-%d=https://%s:2380", sts.Name, i, host))
	}
	return client, strings.Join(peers, ",")
}

func TestEtcdClusterIsConsistent(t *testing.T) {
	objs := base(t)
	sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "shoal-etcd")
	svc := find[*corev1.Service](t, objs, "Service", sts.Spec.ServiceName)
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: want headless with publishNotReadyAddresses for bootstrap", svc.Name)
	}
	if *sts.Spec.Replicas != 3 || sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("StatefulSet: replicas %d, policy %s; want 3, Parallel", *sts.Spec.Replicas, sts.Spec.PodManagementPolicy)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	if !regexp.MustCompile(`^gcr\.io/etcd-development/etcd:v3\.6\.\d+$`).MatchString(c.Image) {
		t.Errorf("etcd image %s, want gcr.io/etcd-development/etcd:v3.6.x", c.Image)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	_, want := etcdMembers(t, objs)
	if env["ETCD_INITIAL_CLUSTER"] != want {
		t.Errorf("ETCD_INITIAL_CLUSTER = %s\nwant %s", env["ETCD_INITIAL_CLUSTER"], want)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || c.VolumeMounts[0].MountPath != env["ETCD_DATA_DIR"] {
		t.Errorf("etcd data dir %s is not the claim's mount", env["ETCD_DATA_DIR"])
	}
}

func args(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, a := range c.Args {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		out[k] = v
	}
	return out
}

func TestControlPlaneRunsOnTheEtcdCluster(t *testing.T) {
	objs := base(t)
	d := find[*appsv1.Deployment](t, objs, "Deployment", "shoal-controlplane")
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	a := args(c)
	client, _ := etcdMembers(t, objs)
	if got := a["etcd-endpoints"]; got != strings.Join(client, ",") {
		t.Errorf("--etcd-endpoints=%s\nwant %s", got, strings.Join(client, ","))
	}
	if c.Args[0] != "controlplane" || c.ReadinessProbe.HTTPGet.Path != "/ready" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("args %v, probes %s %s", c.Args, c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	for flag, port := range map[string]string{"xds-listen": "18000", "api-listen": "18001", "admin-listen": "18002", "gossip-listen": "7946"} {
		if !strings.HasSuffix(a[flag], ":"+port) {
			t.Errorf("--%s=%s, want port %s", flag, a[flag], port)
		}
	}
	gossip := find[*corev1.Service](t, objs, "Service", "shoal-gossip")
	if gossip.Spec.ClusterIP != corev1.ClusterIPNone || a["gossip-join"] != "shoal-gossip."+ns+".svc:7946" {
		t.Errorf("gossip seed: Service clusterIP %q, --gossip-join=%s", gossip.Spec.ClusterIP, a["gossip-join"])
	}
	for svc, port := range map[string]int32{"shoal-xds": 18000, "shoal-api": 18001} {
		if s := find[*corev1.Service](t, objs, "Service", svc); s.Spec.Ports[0].Port != port {
			t.Errorf("Service %s: port %d, want %d", svc, s.Spec.Ports[0].Port, port)
		}
	}
}

func TestInjectorMatchesTheInjectPackage(t *testing.T) {
	objs := base(t)
	d := find[*appsv1.Deployment](t, objs, "Deployment", "shoal-injector")
	c := d.Spec.Template.Spec.Containers[0]
	a := args(c)
	def := inject.DefaultConfig()
	want := map[string]string{
		"image": def.Image, "xds": def.XDS, "gossip-join": strings.Join(def.GossipJoin, ","),
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("injector --%s=%s, want %s", k, a[k], v)
		}
	}
	// Injected sidecars get identities from the default join token Secret
	// and register through the control plane: etcd is out of their reach.
	if _, ok := a["etcd"]; ok || def.JoinTokenSecret != "shoal-join-tokens" || len(def.EtcdEndpoints) != 0 {
		t.Errorf("injector --etcd=%q, default join token Secret %q, etcd %v: want identities and no etcd", a["etcd"], def.JoinTokenSecret, def.EtcdEndpoints)
	}
	if _, ok := a["join-token-secret"]; ok {
		t.Errorf("injector --join-token-secret=%s: the default is what the manifests document", a["join-token-secret"])
	}
	mwc := find[*admissionregistrationv1.MutatingWebhookConfiguration](t, objs, "MutatingWebhookConfiguration", "shoal-injector")
	if len(mwc.Webhooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(mwc.Webhooks))
	}
	wh := mwc.Webhooks[0]
	svc := wh.ClientConfig.Service
	switch {
	case *wh.FailurePolicy != admissionregistrationv1.Ignore:
		t.Errorf("failurePolicy %s, want Ignore", *wh.FailurePolicy)
	case wh.NamespaceSelector.MatchLabels["shoal.dev/inject"] != "enabled":
		t.Errorf("namespaceSelector %v, want shoal.dev/inject=enabled", wh.NamespaceSelector)
	case svc == nil || svc.Name != "shoal-injector" || svc.Namespace != ns || *svc.Path != "/mutate" || *svc.Port != 443:
		t.Errorf("clientConfig.service %+v, want shoal-injector.%s:443/mutate", svc, ns)
	case !slices.Equal(wh.AdmissionReviewVersions, []string{"v1"}) || *wh.SideEffects != admissionregistrationv1.SideEffectClassNone:
		t.Errorf("admissionReviewVersions %v sideEffects %v", wh.AdmissionReviewVersions, *wh.SideEffects)
	case mwc.Annotations["cert-manager.io/inject-ca-from"] != ns+"/shoal-injector":
		t.Errorf("cert-manager.io/inject-ca-from = %q", mwc.Annotations["cert-manager.io/inject-ca-from"])
	}
	if got := find[*corev1.Service](t, objs, "Service", "shoal-injector").Spec.Ports[0].Port; got != 443 {
		t.Errorf("injector Service port %d, want 443", got)
	}
	if d.Spec.Template.Spec.Volumes[0].Secret.SecretName != "shoal-injector-tls" {
		t.Errorf("injector TLS secret %q", d.Spec.Template.Spec.Volumes[0].Secret.SecretName)
	}
}

func TestCertManagerOverlay(t *testing.T) {
	objs := render(t, "cert-manager")
	var kinds []string
	baseObjs := 0
	for _, o := range objs {
		if o.apiVersion != "cert-manager.io/v1" {
			baseObjs++
			continue
		}
		kinds = append(kinds, o.kind+"/"+o.name)
		if o.namespace != ns {
			t.Errorf("%s %s: namespace %s", o.kind, o.name, o.namespace)
		}
	}
	if want := len(base(t)); baseObjs != want {
		t.Errorf("overlay renders %d objects besides cert-manager's, want the base's %d", baseObjs, want)
	}
	if !slices.Contains(kinds, "Certificate/shoal-injector") {
		t.Errorf("overlay objects %v: no Certificate/shoal-injector (named by inject-ca-from)", kinds)
	}

	// Every certificate Secret a base pod mounts is issued here (join
	// tokens and the gossip key are not certificates), by an Issuer of the
	// overlay; the mesh CA's chain ends in the self-signed root and the
	// etcd CA is a CA of its own.
	b, err := os.ReadFile("cert-manager/certificate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	certs := map[string]certManagerSpec{} // by secretName
	issuers := map[string]string{}        // Issuer name -> CA secret ("" for self-signed)
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		var o struct {
			APIVersion string `json:"apiVersion"`
			Kind       string
			Metadata   struct{ Name, Namespace string }
			Spec       certManagerSpec
		}
		if err := yaml.UnmarshalStrict([]byte(doc), &o); err != nil {
			t.Fatalf("certificate.yaml document %d: %v", i+1, err)
		}
		switch o.Kind {
		case "Certificate":
			certs[o.Spec.SecretName] = o.Spec
		case "Issuer":
			switch {
			case o.Spec.SelfSigned != nil:
				issuers[o.Metadata.Name] = ""
			case o.Spec.CA != nil:
				issuers[o.Metadata.Name] = o.Spec.CA.SecretName
			default:
				t.Errorf("Issuer %s: neither selfSigned nor ca", o.Metadata.Name)
			}
		}
	}
	for name, pt := range podTemplates(base(t)) {
		for _, v := range pt.Spec.Volumes {
			if v.Secret == nil || v.Secret.SecretName == "shoal-join-tokens" {
				continue
			}
			if _, ok := certs[v.Secret.SecretName]; !ok {
				t.Errorf("%s mounts Secret %s, which the overlay does not issue", name, v.Secret.SecretName)
			}
		}
	}
	// chain follows a Secret's issuers up to its self-signed root.
	chain := func(secret string) (out []string) {
		for range 5 {
			c, ok := certs[secret]
			if !ok {
				return append(out, "?"+secret)
			}
			ca, ok := issuers[c.IssuerRef.Name]
			if !ok || ca == "" {
				return append(out, c.IssuerRef.Name)
			}
			out = append(out, ca)
			secret = ca
		}
		return out
	}
	for secret, want := range map[string]string{
		"shoal-mesh-ca": "shoal-mesh-root shoal-selfsigned", "shoal-admin": "shoal-mesh-ca shoal-mesh-root shoal-selfsigned",
		"shoal-etcd-tls": "shoal-etcd-ca shoal-selfsigned", "shoal-etcd-client": "shoal-etcd-ca shoal-selfsigned",
	} {
		if got := strings.Join(chain(secret), " "); got != want {
			t.Errorf("Secret %s: issued by %s, want %s", secret, got, want)
		}
	}
	if c := certs["shoal-mesh-ca"]; !c.IsCA || c.PrivateKey.Algorithm != "ECDSA" || c.PrivateKey.Encoding != "PKCS8" || !slices.Equal(c.URIs, []string{"spiffe://shoal.local"}) {
		t.Errorf("shoal-mesh-ca: %+v, want an ECDSA PKCS#8 CA of spiffe://shoal.local", c)
	}
	if c := certs["shoal-admin"]; c.CommonName != "shoal admin" || !slices.Equal(c.URIs, []string{"spiffe://shoal.local/ns/shoal-system/svc/admin"}) {
		t.Errorf("shoal-admin: %+v, want the admin SPIFFE ID", c)
	}
}

// certManagerSpec is the part of cert-manager's Certificate and Issuer
// specs the overlay uses (decoded strictly: a misspelt field fails).
type certManagerSpec struct {
	IsCA        bool     `json:"isCA"`
	CommonName  string   `json:"commonName"`
	SecretName  string   `json:"secretName"`
	Duration    string   `json:"duration"`
	RenewBefore string   `json:"renewBefore"`
	DNSNames    []string `json:"dnsNames"`
	IPAddresses []string `json:"ipAddresses"`
	URIs        []string `json:"uris"`
	Usages      []string `json:"usages"`
	PrivateKey  struct {
		Algorithm      string `json:"algorithm"`
		Size           int    `json:"size"`
		Encoding       string `json:"encoding"`
		RotationPolicy string `json:"rotationPolicy"`
	} `json:"privateKey"`
	IssuerRef struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
	} `json:"issuerRef"`
	SelfSigned *struct{} `json:"selfSigned"`
	CA         *struct {
		SecretName string `json:"secretName"`
	} `json:"ca"`
}

// The images are pinned to the release, never :latest: the kustomization's
// tag, the injector's --image and inject.DefaultImage agree, and the npm
// package carries the same version.
func TestImagesArePinnedToTheVersion(t *testing.T) {
	if strings.HasSuffix(inject.DefaultImage, ":latest") || !strings.HasSuffix(inject.DefaultImage, ":v"+inject.Version) {
		t.Errorf("inject.DefaultImage = %s, want tag v%s", inject.DefaultImage, inject.Version)
	}
	for name, tpl := range podTemplates(base(t)) {
		for _, c := range tpl.Spec.Containers {
			if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
				t.Errorf("%s/%s: image %s is not pinned", name, c.Name, c.Image)
			}
		}
	}
	b, err := os.ReadFile("../../nodejs/package.json")
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct{ Version string }
	if err := yaml.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	if pkg.Version != inject.Version {
		t.Errorf("nodejs/package.json version %s, inject.Version %s: one release, one version", pkg.Version, inject.Version)
	}
}

// Every workload passes Pod Security "restricted": non-root, the
// runtime's seccomp profile, no privilege escalation, no capabilities, and
// a read-only root filesystem (etcd included).
func TestWorkloadsAreRestricted(t *testing.T) {
	for name, tpl := range podTemplates(base(t)) {
		psc := tpl.Spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and seccompProfile RuntimeDefault", name, psc)
		}
		for _, c := range tpl.Spec.Containers {
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("%s/%s: securityContext %+v, want no privilege escalation, a read-only root, capabilities dropped", name, c.Name, sc)
			}
		}
	}
}

func TestExamplesParseAndInject(t *testing.T) {
	files, _ := filepath.Glob("examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		load(t, f)
		in, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := inject.YAML(bytes.NewReader(in), new(bytes.Buffer), inject.DefaultConfig())
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !slices.ContainsFunc(res, func(r inject.Result) bool { return r.Injected }) {
			t.Errorf("%s: nothing injected", f)
		}
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	for _, want := range []string{
		"FROM golang:" + string(goVer[1]) + " AS build",
		"CGO_ENABLED=0",
		"./cmd/shoal",
		"FROM gcr.io/distroless/static",
		`ENTRYPOINT ["/shoal"]`,
		"-tags shoal_slim",
		"/out/shoal-sidecar /shoal-sidecar",
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// Everything in the base authenticates: no container turns it off, etcd
// serves clients and peers over TLS with client certificates from a mounted
// Secret, the control planes hold the mesh CA and etcd's client
// certificate, and the gateway a join token. (e2e/kubernetes_test.go runs
// etcd and the control plane with these settings and secrets.sh's Secrets.)
func TestEverythingAuthenticates(t *testing.T) {
	objs := base(t)
	for name, pt := range podTemplates(objs) {
		for _, c := range append(slices.Clone(pt.Spec.InitContainers), pt.Spec.Containers...) {
			for _, a := range c.Args {
				if a == "--insecure" || regexp.MustCompile(`^--(xds-auth|api-auth|etcd-tls)=off$`).MatchString(a) {
					t.Errorf("%s/%s: %s turns authentication off", name, c.Name, a)
				}
			}
		}
	}
	secretVolume := func(pt *corev1.PodTemplateSpec, c corev1.Container, path string) string {
		for _, vm := range c.VolumeMounts {
			if path != vm.MountPath && !strings.HasPrefix(path, vm.MountPath+"/") {
				continue
			}
			for _, v := range pt.Spec.Volumes {
				if v.Name == vm.Name && v.Secret != nil {
					return v.Secret.SecretName
				}
			}
		}
		return ""
	}

	sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "shoal-etcd")
	etcd := sts.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range etcd.Env {
		env[e.Name] = e.Value
	}
	for _, k := range []string{"ETCD_LISTEN_CLIENT_URLS", "ETCD_ADVERTISE_CLIENT_URLS", "ETCD_LISTEN_PEER_URLS", "ETCD_INITIAL_ADVERTISE_PEER_URLS"} {
		if !strings.HasPrefix(env[k], "https://") {
			t.Errorf("etcd %s=%s, want https", k, env[k])
		}
	}
	if env["ETCD_CLIENT_CERT_AUTH"] != "true" || env["ETCD_PEER_CLIENT_CERT_AUTH"] != "true" {
		t.Errorf("etcd client/peer certificate auth: %q/%q, want true", env["ETCD_CLIENT_CERT_AUTH"], env["ETCD_PEER_CLIENT_CERT_AUTH"])
	}
	for _, k := range []string{"ETCD_CERT_FILE", "ETCD_KEY_FILE", "ETCD_TRUSTED_CA_FILE", "ETCD_PEER_CERT_FILE", "ETCD_PEER_KEY_FILE", "ETCD_PEER_TRUSTED_CA_FILE"} {
		if got := secretVolume(&sts.Spec.Template, etcd, env[k]); got != "shoal-etcd-tls" {
			t.Errorf("etcd %s=%s is in Secret %q, want shoal-etcd-tls", k, env[k], got)
		}
	}

	d := find[*appsv1.Deployment](t, objs, "Deployment", "shoal-controlplane")
	cp := d.Spec.Template.Spec.Containers[0]
	a := args(cp)
	for flag, secret := range map[string]string{
		"ca-dir": "shoal-mesh-ca", "etcd-cacert": "shoal-etcd-client", "etcd-cert": "shoal-etcd-client", "etcd-key": "shoal-etcd-client",
	} {
		if got := secretVolume(&d.Spec.Template, cp, a[flag]); got != secret {
			t.Errorf("control plane --%s=%s is in Secret %q, want %s", flag, a[flag], got, secret)
		}
	}
	// --ca-dir reads ca.crt, ca.key and root.crt: the tls Secret's keys
	// are mapped to those names.
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret == nil || v.Secret.SecretName != "shoal-mesh-ca" {
			continue
		}
		got := map[string]string{}
		for _, it := range v.Secret.Items {
			got[it.Key] = it.Path
		}
		if want := map[string]string{"tls.crt": "ca.crt", "tls.key": "ca.key", "ca.crt": "root.crt"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("shoal-mesh-ca items %v, want %v", got, want)
		}
	}

	gw := find[*appsv1.Deployment](t, objs, "Deployment", "shoal-gateway")
	gc := gw.Spec.Template.Spec.Containers[0]
	if got := secretVolume(&gw.Spec.Template, gc, args(gc)["join-token-file"]); got != "shoal-join-tokens" {
		t.Errorf("gateway --join-token-file=%s is in Secret %q, want shoal-join-tokens", args(gc)["join-token-file"], got)
	}
}

// The NetworkPolicies: only control planes reach etcd's client port and
// only etcd members its peer port; xDS and gossip only from meshed
// namespaces and shoal-system; each policy selects one workload and names
// ports its containers have.
func TestNetworkPolicies(t *testing.T) {
	objs := base(t)
	pods := podTemplates(objs)
	labelsOf := func(name string) map[string]string { return pods[name].Labels }
	for _, o := range objs {
		np, ok := o.typed.(*networkingv1.NetworkPolicy)
		if !ok {
			continue
		}
		var target *corev1.PodTemplateSpec
		for name, pt := range pods {
			if selects(np.Spec.PodSelector.MatchLabels, pt.Labels) {
				if target != nil {
					t.Errorf("NetworkPolicy %s selects more than one workload (%s)", np.Name, name)
				}
				target = pt
			}
		}
		if target == nil {
			t.Errorf("NetworkPolicy %s selects no workload", np.Name)
			continue
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				proto := corev1.ProtocolTCP
				if p.Protocol != nil {
					proto = *p.Protocol
				}
				if p.Port == nil || p.Port.Type != intstr.String || !hasPort(target.Spec.Containers, p.Port.StrVal, proto) {
					t.Errorf("NetworkPolicy %s: port %v/%s is not a named port of its pods", np.Name, p.Port, proto)
				}
			}
		}
	}
	// from returns the peers allowed on a named port (nil: anyone).
	from := func(np *networkingv1.NetworkPolicy, port string) (peers []networkingv1.NetworkPolicyPeer, open bool) {
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port.StrVal == port {
					if len(rule.From) == 0 {
						open = true
					}
					peers = append(peers, rule.From...)
				}
			}
		}
		return peers, open
	}
	etcd := find[*networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "shoal-etcd")
	for port, only := range map[string]string{"client": "shoal-controlplane", "peer": "shoal-etcd"} {
		peers, open := from(etcd, port)
		if open || len(peers) != 1 || peers[0].NamespaceSelector != nil || !selects(peers[0].PodSelector.MatchLabels, labelsOf(only)) ||
			selects(peers[0].PodSelector.MatchLabels, labelsOf("shoal-gateway")) {
			t.Errorf("etcd port %s: from %+v (open %v), want only %s pods", port, peers, open, only)
		}
	}
	cp := find[*networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "shoal-controlplane")
	for _, port := range []string{"xds", "gossip"} {
		peers, open := from(cp, port)
		meshed := false
		for _, p := range peers {
			if p.NamespaceSelector != nil && p.NamespaceSelector.MatchLabels["shoal.dev/inject"] == "enabled" {
				meshed = true
			}
		}
		if open || !meshed {
			t.Errorf("control plane port %s: from %+v (open %v), want meshed namespaces only", port, peers, open)
		}
	}
}
