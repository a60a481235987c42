// Package registry is shoal's instance model and its etcd key schema
// (ARCHITECTURE.md, "Contract: etcd keys"), the registration that keeps an
// instance's key alive, and the Store that lists and watches instances.
//
// Register keeps one instance registered over any LeaseKV: the sidecar
// passes internal/etcdlite's client, so that its binary does not link
// etcd's clientv3; Store.Register does the same over clientv3:
//
//	cli, err := etcdlite.New(etcdlite.Config{Endpoints: []string{"127.0.0.1:2379"}})
//	...
//	reg, err := registry.Register(ctx, cli, registry.Instance{ID: "web-1", Service: "web", Address: "10.0.0.7", Port: 8080}, registry.RegisterOptions{})
//	...
//	defer reg.Close() // revokes the lease: the key is gone at once
//
// Store (store.go, clientv3.go) is built without the shoal_slim tag only:
// the slim sidecar binary leaves clientv3, its gogo protos and zap out
// (issue #7). The control plane and the CLI, which use Store, are not part
// of that build.
package registry
