// Package inject adds the shoal sidecar to Kubernetes pods.
//
// Injection is opt-in per pod: a pod, or the pod template of a Deployment,
// StatefulSet, DaemonSet, ReplicaSet, Job or CronJob, annotated
// shoal.dev/inject: "true" gets a shoal-sidecar container whose flags come
// from the other shoal.dev/* annotations (see the Annotation* constants) and
// from the injector's Config (etcd, xDS and gossip seeds, image, resources).
//
// Three entry points share one pure function, [Template]:
//
//   - [Pod] and [Template] mutate typed objects (k8s.io/api) and are what
//     tests and other Go code call;
//   - [YAML] rewrites a multi-document YAML stream (`shoal inject -f`),
//     changing annotated workloads only and passing every other document
//     through byte for byte;
//   - [Webhook] is a mutating admission webhook (admission.k8s.io/v1) that
//     answers with an RFC 6902 JSON patch.
//
// The YAML and webhook paths both express the injection as a JSON patch
// computed by [Diff] between the typed pod before and after [Template] and
// applied with [ApplyPatch]: fields the typed API does not know survive, and
// `shoal inject` output differs from its input only where the sidecar went.
//
// Injection is idempotent: a pod that already has a shoal-sidecar container
// is returned unchanged.
//
//	cfg := inject.DefaultConfig()
//	out, err := inject.Pod(pod, cfg) // pod is not modified
package inject
