// Package etcdstore lists, watches and registers shoal's instances in etcd
// with clientv3, for the control plane and the CLI. It is kept out of
// package registry so that registry imports no etcd client: the slim
// sidecar binary (-tags shoal_slim, see cmd/shoal/full.go) registers with
// registry.Register over internal/etcdlite and links neither clientv3, its
// gogo protos nor zap (issue #7).
//
//	cli, err := etcdclient.New([]string{"127.0.0.1:2379"})
//	...
//	st := etcdstore.New(cli, logger)
//	reg, err := st.Register(ctx, registry.Instance{ID: "web-1", Service: "web", Address: "10.0.0.7", Port: 8080}, registry.RegisterOptions{})
//	...
//	defer reg.Close()
//	ins, rev, err := st.List(ctx, "web") // sorted by service and id
//	...
//	err = st.Watch(ctx, func(b etcdstore.Batch) { ... }) // blocks until ctx is done
package etcdstore
