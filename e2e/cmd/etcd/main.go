// Command etcd is etcd's own server main (go.etcd.io/etcd/server/v3's
// etcdmain), built from the module shoal already depends on, so the e2e
// tests can run a real etcd configured the way the Kubernetes manifests
// configure the official image: through ETCD_* environment variables.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
