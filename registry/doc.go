// Package registry is shoal's instance model and its etcd key schema
// (ARCHITECTURE.md, "Contract: etcd keys") and the registration that keeps
// an instance's key alive.
//
// Register keeps one instance registered over any LeaseKV: the sidecar
// passes internal/etcdlite's client, so that its binary does not link
// etcd's clientv3, its gogo protos and zap (issue #7); etcdstore's
// Store.Register does the same over clientv3:
//
//	cli, err := etcdlite.New(etcdlite.Config{Endpoints: []string{"127.0.0.1:2379"}})
//	...
//	reg, err := registry.Register(ctx, cli, registry.Instance{ID: "web-1", Service: "web", Address: "10.0.0.7", Port: 8080}, registry.RegisterOptions{})
//	...
//	defer reg.Close() // revokes the lease: the key is gone at once
//
// Listing and watching instances needs clientv3 and lives in
// registry/etcdstore, for the control plane and the CLI; this package
// imports no etcd client, so the slim sidecar build links it as it is.
package registry
