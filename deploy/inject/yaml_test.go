package inject

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const plainDeployment = `# a comment that must survive
apiVersion: apps/v1
kind: Deployment
metadata: {name: plain}
spec:
  template:
    metadata: {labels: {app: plain}}
    spec:
      containers: [{name: app, image: node:22, ports: [{containerPort: 3000}]}]
`

// annotated is a workload of kind whose pod template, at the dotted path
// (empty for a Pod), asks for injection.
func annotated(kind, name, path string) string {
	podMeta := "metadata:\n  labels: {app: " + name + "}\n  annotations: {shoal.dev/inject: \"true\"}\n"
	pod := "spec:\n  containers: [{name: app, image: node:22, ports: [{containerPort: 3000}]}]\n"
	if path == "" {
		return "apiVersion: v1\nkind: Pod\n" + strings.Replace(podMeta, "metadata:\n", "metadata:\n  name: "+name+"\n", 1) + pod
	}
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: " + kind + "\nmetadata:\n  name: " + name + "\n")
	parts := strings.Split(path, ".")
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":\n")
	}
	indent := strings.Repeat("  ", len(parts))
	for _, l := range strings.SplitAfter(podMeta+pod, "\n") {
		if l != "" {
			b.WriteString(indent + l)
		}
	}
	return b.String()
}

func TestYAMLInjectsEveryWorkloadKind(t *testing.T) {
	tests := []struct{ kind, path string }{
		{"Pod", ""},
		{"Deployment", "spec.template"},
		{"StatefulSet", "spec.template"},
		{"DaemonSet", "spec.template"},
		{"ReplicaSet", "spec.template"},
		{"Job", "spec.template"},
		{"CronJob", "spec.jobTemplate.spec.template"},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			in := annotated(tc.kind, "web", tc.path)
			var out bytes.Buffer
			res, err := YAML(strings.NewReader(in), &out, testConfig())
			if err != nil {
				t.Fatalf("%v\n%s", err, in)
			}
			if diff := cmp.Diff([]Result{{Kind: tc.kind, Name: "web", Injected: true}}, res); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			var obj map[string]any
			if err := yaml.Unmarshal(out.Bytes(), &obj); err != nil {
				t.Fatal(err)
			}
			var tpl corev1.PodTemplateSpec
			path := []string{}
			if tc.path != "" {
				path = strings.Split(tc.path, ".")
			}
			if err := remarshal(nested(obj, path...), &tpl); err != nil {
				t.Fatal(err)
			}
			if !Injected(&tpl.Spec) {
				t.Errorf("no sidecar in\n%s", out.String())
			}
			// A native sidecar in every kind: an init container that keeps
			// running (so a Job's pod completes when its app exits: the
			// kubelet stops native sidecars after the app containers).
			if len(tpl.Spec.Containers) != 1 || len(tpl.Spec.InitContainers) != 1 ||
				tpl.Spec.InitContainers[0].Name != ContainerName || tpl.Spec.InitContainers[0].RestartPolicy == nil ||
				*tpl.Spec.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
				t.Errorf("want the app as the only container and the sidecar as an init container with restartPolicy Always:\n%s", out.String())
			}
		})
	}
}

func TestYAMLPassesOtherDocumentsThroughByteForByte(t *testing.T) {
	in := "---\n" + plainDeployment + "--- # a separator with a comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n---\n# only a comment\n"
	var out bytes.Buffer
	if _, err := YAML(strings.NewReader(in), &out, testConfig()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out.String()); diff != "" {
		t.Errorf("(-in +out):\n%s", diff)
	}
}

func TestYAMLIsIdempotent(t *testing.T) {
	in := annotated("Deployment", "web", "spec.template") + "---\n" + plainDeployment
	var once, twice bytes.Buffer
	if _, err := YAML(strings.NewReader(in), &once, testConfig()); err != nil {
		t.Fatal(err)
	}
	res, err := YAML(bytes.NewReader(once.Bytes()), &twice, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(once.String(), twice.String()); diff != "" {
		t.Errorf("second pass changed the output (-once +twice):\n%s", diff)
	}
	for _, r := range res {
		if r.Injected {
			t.Errorf("second pass injected %s %q again", r.Kind, r.Name)
		}
	}
}

func TestYAMLInjectsListItems(t *testing.T) {
	in := "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p\n    labels: {app: p}\n    annotations: {shoal.dev/inject: \"true\"}\n  spec:\n    containers: [{name: app, image: x, ports: [{containerPort: 80}]}]\n"
	var out bytes.Buffer
	res, err := YAML(strings.NewReader(in), &out, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !res[0].Injected || !strings.Contains(out.String(), "name: shoal-sidecar") {
		t.Errorf("results %+v, output:\n%s", res, out.String())
	}
}

func TestYAMLErrorsNameTheDocumentAndWorkload(t *testing.T) {
	in := plainDeployment + "---\n" + strings.Replace(annotated("Deployment", "web", "spec.template"),
		`shoal.dev/inject: "true"`, `shoal.dev/inject: "true", shoal.dev/app-port: "0"`, 1)
	_, err := YAML(strings.NewReader(in), &bytes.Buffer{}, testConfig())
	want := `inject: document 2: Deployment "web": annotation shoal.dev/app-port: 0 is not a port`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}
