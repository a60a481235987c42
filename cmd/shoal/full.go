//go:build !shoal_slim

package main

// fullCommands are the subcommands the slim sidecar build leaves out: the
// control plane (and the etcd server it embeds), the demo, the Kubernetes
// injector, and the CLI commands that link etcd's clientv3 (services and
// instances read etcd with it; routes validates with controlplane/routes,
// which stores routes with it) or the management API's protobuf types and
// YAML (routes, status). Build the slim binary with
//
//	go build -tags shoal_slim -o shoal-sidecar ./cmd/shoal
//
// for a smaller memory footprint next to every app instance.
func fullCommands() []command {
	return []command{
		{"demo", "run a whole mesh on this machine and show each strategy and a failover", runDemo},
		{"controlplane", "run the control plane (embedded etcd by default)", runControlPlane},
		{"inject", "add the sidecar to annotated workloads in manifests: -f FILE|-", runInject},
		{"inject-webhook", "serve the sidecar-injecting Kubernetes admission webhook", runInjectWebhook},
		{"services", "list registered services", runServices},
		{"instances", "list the instances of a service", runInstances},
		{"routes", "manage routes: apply -f FILE, list, get NAME, delete NAME", runRoutes},
		{"ca", "manage the mesh CA: init --dir DIR", runCA},
		{"tokens", "manage join tokens: create --service NAME [--namespace NS] [--ttl 1h] [--uses N]", runTokens},
		{"status", "show the control plane's xDS clients, routes and gossip members", runStatus},
	}
}
