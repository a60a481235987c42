package inject

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Requested reports whether annotations opt the pod in to injection.
func Requested(annotations map[string]string) bool {
	return annotations[AnnotationInject] == "true"
}

// Injected reports whether spec already has the sidecar: as a native
// sidecar (an init container), or as a regular container (pods injected by
// earlier versions).
func Injected(spec *corev1.PodSpec) bool {
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range cs {
			if c.Name == ContainerName {
				return true
			}
		}
	}
	return false
}

// Pod returns a copy of pod with the sidecar injected when the pod asks for
// it (see Template). pod is not modified; the result never aliases it.
func Pod(pod *corev1.Pod, cfg Config) (*corev1.Pod, error) {
	tpl, err := Template(corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec}, cfg)
	if err != nil {
		name := pod.Name
		if name == "" {
			name = pod.GenerateName + "*"
		}
		return nil, fmt.Errorf("inject: pod %q: %w", name, err)
	}
	out := pod.DeepCopy()
	out.ObjectMeta, out.Spec = tpl.ObjectMeta, tpl.Spec
	return out, nil
}

// Template returns a copy of tpl with the shoal-sidecar container added,
// if tpl is annotated shoal.dev/inject: "true" and has no sidecar yet;
// otherwise an unchanged copy. It is a pure function: tpl is not modified.
// Errors name the annotation at fault (or the Config field).
//
// The sidecar is a native sidecar (KEP-753, Kubernetes >= 1.29): the last
// init container, with restartPolicy Always. The kubelet starts it before
// the app containers and, because it has a startup probe on /ready, starts
// them only once it has a routing config; it keeps running beside them and
// is stopped after them, so a Job's pod completes when its app exits.
//
// Besides the container, it adds an emptyDir volume for the sidecar's last
// good config (--state-dir) and, to app containers without a preStop hook,
// a preStop sleep of cfg.DrainSeconds. The sleep stays with native
// sidecars: the sidecar is signalled only once the app containers have
// exited, so nothing yet takes an instance out of rotation when its pod
// starts terminating; the sleep keeps the app serving for that long, and
// the sidecar deregisters and drains when it is signalled.
func Template(tpl corev1.PodTemplateSpec, cfg Config) (corev1.PodTemplateSpec, error) {
	out := *tpl.DeepCopy()
	if !Requested(out.Annotations) || Injected(&out.Spec) {
		return out, nil
	}
	if err := cfg.validate(); err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	o, err := parseOptions(out.Annotations, out.Labels, out.Spec.Containers)
	if err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	if err := checkConflicts(&out.Spec, o); err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	for i := range out.Spec.Containers {
		c := &out.Spec.Containers[i]
		if c.Lifecycle == nil {
			c.Lifecycle = &corev1.Lifecycle{}
		}
		if c.Lifecycle.PreStop == nil {
			c.Lifecycle.PreStop = &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: cfg.DrainSeconds}}
		}
	}
	out.Spec.InitContainers = append(out.Spec.InitContainers, container(o, cfg))
	out.Spec.Volumes = append(out.Spec.Volumes, corev1.Volume{
		Name:         StateVolume,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
	})
	if cfg.JoinTokenSecret != "" {
		out.Spec.Volumes = append(out.Spec.Volumes, corev1.Volume{
			Name: JoinTokenVolume,
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName:  cfg.JoinTokenSecret,
				Items:       []corev1.KeyToPath{{Key: o.service, Path: "token"}},
				DefaultMode: ptr(int32(0o400)),
			}},
		})
	}
	return out, nil
}

// checkConflicts refuses pods whose containers already use the sidecar's
// ports or whose volumes its volume name.
func checkConflicts(spec *corev1.PodSpec, o options) error {
	for _, v := range spec.Volumes {
		if v.Name == StateVolume || v.Name == JoinTokenVolume {
			return fmt.Errorf("volume %q is reserved for the sidecar", v.Name)
		}
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		for _, p := range c.Ports {
			for _, r := range reservedPorts {
				if p.ContainerPort == r {
					return fmt.Errorf("container %q: port %d is reserved for the sidecar", c.Name, r)
				}
			}
			for _, u := range o.upstreams {
				if strconv.Itoa(int(p.ContainerPort)) == u[1] {
					return fmt.Errorf("annotation %s: port %s is container %q's", AnnotationUpstreams, u[1], c.Name)
				}
			}
		}
	}
	return nil
}

// container builds the sidecar container.
func container(o options, cfg Config) corev1.Container {
	env := []corev1.EnvVar{
		fieldEnv("POD_NAME", "metadata.name"),
		fieldEnv("POD_NAMESPACE", "metadata.namespace"),
		fieldEnv("POD_IP", "status.podIP"),
	}
	if cfg.GossipKeySecret != "" {
		env = append(env, corev1.EnvVar{Name: "SHOAL_GOSSIP_KEY", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: cfg.GossipKeySecret},
				Key:                  GossipKeySecretKey,
			},
		}})
	}
	ready := corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(AdminPort)}}
	return corev1.Container{
		Name:            ContainerName,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		// A native sidecar: an init container that keeps running.
		RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways),
		Command:       []string{SidecarBinary},
		Args:          args(o, cfg),
		Env:           env,
		Ports: []corev1.ContainerPort{
			{Name: "shoal-inbound", ContainerPort: InboundPort, Protocol: corev1.ProtocolTCP},
			{Name: "shoal-admin", ContainerPort: AdminPort, Protocol: corev1.ProtocolTCP},
			{Name: "shoal-gossip", ContainerPort: GossipPort, Protocol: corev1.ProtocolTCP},
			{Name: "shoal-gossip-u", ContainerPort: GossipPort, Protocol: corev1.ProtocolUDP},
		},
		// The app containers start once this passes: the sidecar has a
		// routing config (from the control plane or its state dir). Two
		// minutes without one restarts the sidecar.
		StartupProbe:   &corev1.Probe{ProbeHandler: ready, PeriodSeconds: 1, FailureThreshold: 120},
		ReadinessProbe: &corev1.Probe{ProbeHandler: ready, PeriodSeconds: 2, FailureThreshold: 3},
		Resources:      cfg.Resources,
		VolumeMounts:   mounts(cfg),
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr(true),
			RunAsUser:                ptr(int64(65532)),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

// args are the `shoal sidecar` flags, one element each, in a fixed order.
// $(POD_IP) and $(POD_NAME) are expanded by the kubelet from Env.
func args(o options, cfg Config) []string {
	a := []string{
		"sidecar",
		"--service=" + o.service,
		"--app-port=" + strconv.Itoa(int(o.appPort)),
		"--app-address=$(POD_IP)",
		"--instance-id=$(POD_NAME)",
	}
	if o.protocol != "" {
		a = append(a, "--app-protocol="+o.protocol)
	}
	if cfg.JoinTokenSecret != "" {
		// An identity: mTLS inbound, xDS bound to the service, and
		// registration through the control plane (no etcd access).
		a = append(a, "--join-token-file="+JoinTokenDir+"/token", "--namespace=$(POD_NAMESPACE)")
	} else {
		a = append(a, "--etcd="+strings.Join(cfg.EtcdEndpoints, ","))
	}
	a = append(a,
		"--xds="+cfg.XDS,
		"--listen=0.0.0.0:"+strconv.Itoa(InboundPort),
		"--outbound=127.0.0.1:"+strconv.Itoa(OutboundPort),
		"--admin-listen=0.0.0.0:"+strconv.Itoa(AdminPort),
		"--state-dir="+StateDir,
		"--drain-timeout="+strconv.FormatInt(cfg.DrainSeconds, 10)+"s",
	)
	if len(cfg.GossipJoin) > 0 {
		// Bind the pod IP rather than 0.0.0.0: memberlist would otherwise
		// guess the address to advertise, and refuses pod networks outside
		// the RFC 1918 ranges.
		a = append(a, "--gossip-listen=$(POD_IP):"+strconv.Itoa(GossipPort), "--gossip-join="+strings.Join(cfg.GossipJoin, ","))
	}
	for _, u := range o.upstreams {
		a = append(a, "--upstream="+u[0]+"=127.0.0.1:"+u[1])
	}
	if o.healthPath != "" {
		a = append(a, "--health-path="+o.healthPath)
	}
	if o.metadata != "" {
		a = append(a, "--metadata="+o.metadata)
	}
	return a
}

// mounts are the sidecar's volume mounts: its state dir, and its join
// token when the injector gives sidecars identities.
func mounts(cfg Config) []corev1.VolumeMount {
	m := []corev1.VolumeMount{{Name: StateVolume, MountPath: StateDir}}
	if cfg.JoinTokenSecret != "" {
		m = append(m, corev1.VolumeMount{Name: JoinTokenVolume, MountPath: JoinTokenDir, ReadOnly: true})
	}
	return m
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path},
	}}
}

func ptr[T any](v T) *T { return &v }
