package inject

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testConfig is DefaultConfig with short, recognizable addresses.
func testConfig() Config {
	c := DefaultConfig()
	c.EtcdEndpoints = []string{"http://etcd-0:2379", "http://etcd-1:2379"}
	c.JoinTokenSecret = "" // the plain mode; TestPodJoinTokenFromSecret covers identities
	c.XDS = "xds:18000"
	c.GossipJoin = []string{"gossip:7946"}
	return c
}

// testPod is a pod with one app container on port 3000 and annotations.
func testPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-abc", Namespace: "shop",
			Labels:      map[string]string{"app": "web"},
			Annotations: annotations,
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "node:22",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 3000}},
		}}},
	}
}

func sidecarOf(t *testing.T, p *corev1.Pod) *corev1.Container {
	t.Helper()
	for i := range p.Spec.InitContainers {
		if p.Spec.InitContainers[i].Name == ContainerName {
			return &p.Spec.InitContainers[i]
		}
	}
	return nil
}

func TestPodArgsFromAnnotations(t *testing.T) {
	base := []string{
		"--etcd=http://etcd-0:2379,http://etcd-1:2379", "--xds=xds:18000",
		"--listen=0.0.0.0:15006", "--outbound=127.0.0.1:15001", "--admin-listen=0.0.0.0:15000",
		"--state-dir=/var/run/shoal", "--drain-timeout=10s",
		"--gossip-listen=$(POD_IP):7946", "--gossip-join=gossip:7946",
	}
	head := func(svc, port string, extra ...string) []string {
		a := []string{"sidecar", "--service=" + svc, "--app-port=" + port, "--app-address=$(POD_IP)", "--instance-id=$(POD_NAME)"}
		return append(a, extra...)
	}
	tests := []struct {
		name        string
		annotations map[string]string
		want        []string
	}{
		{
			name:        "defaults service to the app label and the port to the first container port",
			annotations: map[string]string{AnnotationInject: "true"},
			want:        append(head("web", "3000"), base...),
		},
		{
			name: "wires every optional annotation",
			annotations: map[string]string{
				AnnotationInject: "true", AnnotationService: "orders", AnnotationAppPort: "8080",
				AnnotationAppProtocol: "grpc", AnnotationUpstreams: "users=9002, payments=9003",
				AnnotationHealthPath: "/healthz", AnnotationMetadata: "version=v2,track=canary",
			},
			want: append(append(head("orders", "8080", "--app-protocol=grpc"), base...),
				"--upstream=users=127.0.0.1:9002", "--upstream=payments=127.0.0.1:9003",
				"--health-path=/healthz", "--metadata=version=v2,track=canary"),
		},
		{
			name:        "resolves a named app port",
			annotations: map[string]string{AnnotationInject: "true", AnnotationAppPort: "http"},
			want:        append(head("web", "3000"), base...),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Pod(testPod(tc.annotations), testConfig())
			if err != nil {
				t.Fatal(err)
			}
			sc := sidecarOf(t, got)
			if sc == nil {
				t.Fatal("no sidecar container")
			}
			if diff := cmp.Diff(tc.want, sc.Args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"/shoal-sidecar"}, sc.Command); diff != "" {
				t.Errorf("command: the image's slim sidecar binary (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodAddsProbesEnvVolumeAndPreStop(t *testing.T) {
	got, err := Pod(testPod(map[string]string{AnnotationInject: "true"}), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	sc := sidecarOf(t, got)
	if sc == nil {
		t.Fatal("no sidecar init container")
	}
	// A native sidecar (Kubernetes >= 1.29) that the app waits for.
	if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("restartPolicy = %v, want Always (a native sidecar)", sc.RestartPolicy)
	}
	if p := sc.StartupProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" || p.HTTPGet.Port.IntValue() != AdminPort {
		t.Errorf("startup probe = %+v, want GET /ready on %d (the app starts once the sidecar has a config)", p, AdminPort)
	}
	if len(got.Spec.Containers) != 1 {
		t.Errorf("containers = %d, want the app alone (the sidecar is an init container)", len(got.Spec.Containers))
	}
	if sec := sc.SecurityContext; sec == nil || sec.SeccompProfile == nil || sec.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		!*sec.RunAsNonRoot || !*sec.ReadOnlyRootFilesystem || *sec.AllowPrivilegeEscalation {
		t.Errorf("securityContext = %+v, want Pod Security restricted (RuntimeDefault seccomp, non-root, read-only root)", sec)
	}
	if p := sc.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" || p.HTTPGet.Port.IntValue() != AdminPort {
		t.Errorf("readiness probe = %+v, want GET /ready on %d", p, AdminPort)
	}
	env := map[string]string{}
	for _, e := range sc.Env {
		env[e.Name] = e.ValueFrom.FieldRef.FieldPath
	}
	if diff := cmp.Diff(map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace", "POD_IP": "status.podIP"}, env); diff != "" {
		t.Errorf("downward API env (-want +got):\n%s", diff)
	}
	if sc.Resources.Requests.Cpu().IsZero() || sc.Resources.Requests.Memory().IsZero() {
		t.Errorf("resources = %+v, want requests", sc.Resources)
	}
	app := got.Spec.Containers[0]
	if app.Lifecycle == nil || app.Lifecycle.PreStop == nil || app.Lifecycle.PreStop.Sleep == nil || app.Lifecycle.PreStop.Sleep.Seconds != 10 {
		t.Errorf("app lifecycle = %+v, want a 10 s preStop sleep", app.Lifecycle)
	}
	if n := len(got.Spec.Volumes); n != 1 || got.Spec.Volumes[0].EmptyDir == nil {
		t.Errorf("volumes = %+v, want one emptyDir for the state dir", got.Spec.Volumes)
	}
}

// TestPodJoinTokenFromSecret: with a join token Secret (the default), the
// sidecar mounts its own service's key of the Secret, read-only, as its
// --join-token-file, asks for an identity in the pod's namespace, and
// registers through the control plane: no --etcd.
func TestPodJoinTokenFromSecret(t *testing.T) {
	cfg := testConfig()
	cfg.JoinTokenSecret = "mesh-tokens"
	got, err := Pod(testPod(map[string]string{AnnotationInject: "true", AnnotationService: "orders"}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sc := got.Spec.InitContainers[len(got.Spec.InitContainers)-1]
	a := strings.Join(sc.Args, " ")
	for _, want := range []string{"--join-token-file=" + JoinTokenDir + "/token", "--namespace=$(POD_NAMESPACE)", "--service=orders"} {
		if !strings.Contains(a, want) {
			t.Errorf("args %q: no %s", a, want)
		}
	}
	if strings.Contains(a, "--etcd") {
		t.Errorf("args %q: a sidecar with an identity registers through the control plane, not etcd", a)
	}
	var vol *corev1.Volume
	for i, v := range got.Spec.Volumes {
		if v.Name == JoinTokenVolume {
			vol = &got.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.Secret == nil || vol.Secret.SecretName != "mesh-tokens" || len(vol.Secret.Items) != 1 ||
		vol.Secret.Items[0] != (corev1.KeyToPath{Key: "orders", Path: "token"}) || vol.Secret.Optional != nil {
		t.Fatalf("join token volume %+v, want key orders of Secret mesh-tokens as token (not optional)", vol)
	}
	mounted := false
	for _, m := range sc.VolumeMounts {
		if m.Name == JoinTokenVolume && m.MountPath == JoinTokenDir && m.ReadOnly {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("mounts %+v: no read-only %s at %s", sc.VolumeMounts, JoinTokenVolume, JoinTokenDir)
	}
	// Without etcd endpoints the injector still works in this mode.
	cfg.EtcdEndpoints = nil
	if _, err := Pod(testPod(map[string]string{AnnotationInject: "true"}), cfg); err != nil {
		t.Errorf("join token mode without etcd endpoints: %v", err)
	}
}

// TestPodGossipKeyFromSecret: with a gossip key Secret configured, the
// sidecar reads the key from the Secret through $SHOAL_GOSSIP_KEY and never
// has it in its arguments.
func TestPodGossipKeyFromSecret(t *testing.T) {
	cfg := testConfig()
	cfg.GossipKeySecret = "shoal-gossip"
	got, err := Pod(testPod(map[string]string{AnnotationInject: "true"}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sc := sidecarOf(t, got)
	var ref *corev1.SecretKeySelector
	for _, e := range sc.Env {
		if e.Name == "SHOAL_GOSSIP_KEY" && e.ValueFrom != nil {
			ref = e.ValueFrom.SecretKeyRef
		}
	}
	if ref == nil || ref.Name != "shoal-gossip" || ref.Key != GossipKeySecretKey {
		t.Errorf("SHOAL_GOSSIP_KEY env = %+v, want secretKeyRef shoal-gossip/%s", ref, GossipKeySecretKey)
	}
	for _, a := range sc.Args {
		if strings.HasPrefix(a, "--gossip-key") {
			t.Errorf("sidecar args carry %q; the key must come from the Secret", a)
		}
	}
}

func TestPodKeepsAnExistingPreStop(t *testing.T) {
	pod := testPod(map[string]string{AnnotationInject: "true"})
	hook := &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/drain"}}}
	pod.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: hook}
	got, err := Pod(pod, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(hook, got.Spec.Containers[0].Lifecycle.PreStop); diff != "" {
		t.Errorf("preStop (-want +got):\n%s", diff)
	}
}

func TestPodIsIdempotentAndPure(t *testing.T) {
	pod := testPod(map[string]string{AnnotationInject: "true", AnnotationUpstreams: "users=9002"})
	before := pod.DeepCopy()
	once, err := Pod(pod, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, pod); diff != "" {
		t.Errorf("Pod modified its argument (-before +after):\n%s", diff)
	}
	twice, err := Pod(once, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(once, twice); diff != "" {
		t.Errorf("second injection changed the pod (-once +twice):\n%s", diff)
	}
}

func TestPodLeavesUnannotatedPodsAlone(t *testing.T) {
	for _, v := range []string{"", "false", "enabled"} {
		pod := testPod(map[string]string{AnnotationInject: v})
		got, err := Pod(pod, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(pod, got); diff != "" {
			t.Errorf("inject=%q changed the pod (-want +got):\n%s", v, diff)
		}
	}
}

func TestPodRefusesWithTheAnnotationAtFault(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		mutate      func(*corev1.Pod)
		cfg         func(*Config)
		wantErr     string
	}{
		{
			name:        "no service name anywhere",
			annotations: map[string]string{},
			mutate:      func(p *corev1.Pod) { p.Labels = nil },
			wantErr:     "annotation shoal.dev/service: missing",
		},
		{
			name:        "service name not a DNS label",
			annotations: map[string]string{AnnotationService: "Orders_V2"},
			wantErr:     `annotation shoal.dev/service: "Orders_V2" is not a lowercase DNS label`,
		},
		{
			name:        "no port to default from",
			annotations: map[string]string{},
			mutate:      func(p *corev1.Pod) { p.Spec.Containers[0].Ports = nil },
			wantErr:     "annotation shoal.dev/app-port: missing",
		},
		{
			name:        "unknown named port",
			annotations: map[string]string{AnnotationAppPort: "grpc"},
			wantErr:     `annotation shoal.dev/app-port: "grpc" is neither a number nor the name of a container port`,
		},
		{
			name:        "app port out of range",
			annotations: map[string]string{AnnotationAppPort: "70000"},
			wantErr:     "annotation shoal.dev/app-port: 70000 is not a port",
		},
		{
			name:        "app port is the sidecar's",
			annotations: map[string]string{AnnotationAppPort: "15006"},
			wantErr:     "annotation shoal.dev/app-port: port 15006 is the sidecar's own",
		},
		{
			name:        "malformed upstream",
			annotations: map[string]string{AnnotationUpstreams: "users:9002"},
			wantErr:     `annotation shoal.dev/upstreams: "users:9002": want SERVICE=PORT`,
		},
		{
			name:        "upstream on the app port",
			annotations: map[string]string{AnnotationUpstreams: "users=3000"},
			wantErr:     "annotation shoal.dev/upstreams: \"users=3000\": port 3000 is taken",
		},
		{
			name:        "relative health path",
			annotations: map[string]string{AnnotationHealthPath: "healthz"},
			wantErr:     `annotation shoal.dev/health-path: "healthz" must start with /`,
		},
		{
			name:        "malformed metadata",
			annotations: map[string]string{AnnotationMetadata: "v2"},
			wantErr:     `annotation shoal.dev/metadata: "v2": want k=v,k=v`,
		},
		{
			name:        "unknown protocol",
			annotations: map[string]string{AnnotationAppProtocol: "udp"},
			wantErr:     `annotation shoal.dev/app-protocol: "udp" is not http`,
		},
		{
			name:        "app container on a sidecar port",
			annotations: map[string]string{},
			mutate: func(p *corev1.Pod) {
				p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 15000})
			},
			wantErr: `container "app": port 15000 is reserved for the sidecar`,
		},
		{
			name:        "injector without etcd",
			annotations: map[string]string{},
			cfg:         func(c *Config) { c.EtcdEndpoints = nil },
			wantErr:     "inject: config: etcd endpoints are required",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.annotations[AnnotationInject] = "true"
			pod := testPod(tc.annotations)
			if tc.mutate != nil {
				tc.mutate(pod)
			}
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			_, err := Pod(pod, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), `inject: pod "web-abc": `) {
				t.Errorf("err = %v, want it to name the pod", err)
			}
		})
	}
}
